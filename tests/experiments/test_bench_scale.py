"""The bench's FLOP floor and its UCF11-size store, checked against hand arithmetic and the trainer."""

from pathlib import Path

import numpy as np

from experiments.bench import scale, tt


def test_tt_train_flops_is_the_minimum_chain_by_hand():
    n, m, r = (8, 20, 20, 18), (12, 4, 4, 4), (1, 4, 4, 4, 1)      # UCF11 TT-GRU (gates in the first mode)
    # contractions from the last core: values entering x r_k m_k x 2
    f3 = 2 * 57600 * 4 * 4                       # 57,600 frame values, core 3 (r 4, m 4)
    f2 = 2 * (57600 // 18 * 16) * 4 * 4          # 51,200 values, core 2
    f1 = 2 * (51200 // 80 * 16) * 4 * 4          # 10,240 values, core 1
    f0 = 2 * (10240 // 80 * 16) * 1 * 12         # 2,048 values, core 0 (r_0 = 1, m_0 = 12)
    assert tt.tt_step_flops(n, m, r) == [f3, f2, f1, f0]
    assert tt.tt_forward_flops(n, m, r) == f3 + f2 + f1 + f0 == 3_858_432
    # backward: the frames need no gradient, so the first contraction has one product (its core gradient)
    assert tt.tt_train_flops(n, m, r) == (f3 + f2 + f1 + f0) + f3 + 2 * (f2 + f1 + f0) == 9_732_096


def test_scale_store_is_a_ucf11_store_the_trainer_accepts(tmp_path):
    from experiments.train import open_store
    from experiments.ucf11 import SPEC

    lengths = np.array([3, 5, 4] * 11)
    path = scale.make_scale_store(tmp_path / "scale.h5", lengths=lengths)
    store = open_store(path, SPEC)
    assert len(store) == 33 and sorted(store.index["length"]) == sorted(lengths)
    assert {g[-3:] for g in store.index["group"]} == {"g01", "g02", "g03"} and len(store.classes) == 11
    frames = store.read(0)
    assert frames.shape == (3, 120, 160, 3) and frames.reshape(3, -1).max(axis=1).min() > 0   # no padding frame
    store.close()
    mtime = path.stat().st_mtime_ns
    assert scale.make_scale_store(path, lengths=lengths) == path and path.stat().st_mtime_ns == mtime   # reused


def test_scale_store_of_each_codec_holds_the_pool_frames(tmp_path):
    """The scale store in JPEG: the trainer's UCF11 store, frames within JPEG-95's error of the raw store's (same
    pool, same seed), reused only when its codec matches; several codecs get one file each."""
    from ttrnn.store import FrameStore

    lengths = np.array([3, 5, 4] * 11)
    pool = scale.scale_pool(seed=1)
    raw = scale.make_scale_store(tmp_path / "s.raw.h5", lengths=lengths, pool=pool)
    jpeg = scale.make_scale_store(tmp_path / "s.jpeg.h5", lengths=lengths, codec="jpeg", pool=pool)
    with FrameStore(raw) as r, FrameStore(jpeg) as j:
        assert (r.codec, j.codec, j.quality) == ("raw", "jpeg", 95)
        err = np.abs(r.read(5).astype(int) - j.read(5)).mean()
        assert 0 < err < 5 and j.nbytes() < r.nbytes()     # generated noise: 3.3 levels (real video: 1.8)
    scale.make_scale_store(raw, lengths=lengths, codec="jpeg", pool=pool)     # other codec: written anew
    with FrameStore(raw) as r:
        assert r.codec == "jpeg"
    assert scale.scale_store_path("/d/scale.h5", "jpeg", True) == Path("/d/scale.jpeg.h5")
    assert scale.scale_store_path("/d/scale.h5", "jpeg", False) == Path("/d/scale.h5")
