"""A feature store through the store's own API (no backbone): float16 (T, F) clips written and read back bit for
bit, their checksums, the index rebuilt from the shards, `preprocess.check`, and what a frame-store API refuses."""
import numpy as np
import pytest

from tests.helpers import run_cli
from ttrnn.store import (
    CorruptClipError,
    FrameStore,
    StoreError,
    StoreWriter,
    feature_params,
    is_feature_store,
    params_of,
    rebuild_index,
    recoded_params,
    store_params,
)

WIDTH = 24
FEATURES = {"backbone": "resnet50", "weights": None, "pooling": "avg", "width": WIDTH, "image_size": 32,
            "source": "/data/frames.h5", "source_uid": "0" * 32, "frame_skip": 1, "fps": None}


def write(path, dtype="float16", clips=5, seed=0):
    """A feature store of `clips` random clips; returns {clip_id: features}."""
    rng = np.random.default_rng(seed)
    params = feature_params(store_params("ucf11", 160, 120, classes=["a", "b"]), FEATURES, dtype)
    want = {}
    with StoreWriter(path, params) as w:
        for k in range(clips):
            x = rng.standard_normal((3 + k, WIDTH)).astype(dtype)
            want[f"c{k}"] = x
            w.add_clip(f"c{k}", x, "ab"[k % 2], k % 2, f"g{k}", f"src/{k}.avi", 25.0)
        w.set_splits({"split01": {"train": ["c0", "c1", "c2"], "test": ["c3", "c4"]}})
    return want


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_write_read_back(tmp_path, dtype):
    want = write(tmp_path / "f.h5", dtype)
    with FrameStore(tmp_path / "f.h5") as s:
        assert s.features == FEATURES and s.frame_shape == (WIDTH,) and s.dtype == np.dtype(dtype)
        assert is_feature_store(params_of(tmp_path / "f.h5")) and not is_feature_store(store_params("x", 2, 2))
        for i, cid in enumerate(s.index["clip_id"]):
            assert np.array_equal(s.read(i), want[cid]) and s.read(i).dtype == np.dtype(dtype)
        assert np.array_equal(s.read(4, max_len=2, frame_skip=3), want["c4"][[0, 3]])
        assert np.array_equal(s.read_frames(2, [0, 0, 4]), want["c2"][[0, 0, 4]])
        out = np.zeros((9, WIDTH), dtype)
        assert s.read_into(1, out) == 4 and np.array_equal(out[5:], want["c1"]) and not out[:5].any()
        s.direct = True                                    # O_DIRECT reads of the same bytes, where supported
        assert np.array_equal(s.read(3), want["c3"])


def test_wrong_shape_or_dtype_is_refused(tmp_path):
    write(tmp_path / "f.h5")
    with StoreWriter.reopen(tmp_path / "f.h5") as w:
        with pytest.raises(ValueError, match=r"expected float16 \(T>0, 24\)"):
            w.add_clip("x", np.zeros((3, WIDTH), np.float32), "a", 0, "g", "s", 25.0)
        with pytest.raises(ValueError, match="expected float16"):
            w.add_clip("y", np.zeros((3, 4, 4, 3), np.uint8), "a", 0, "g", "s", 25.0)
    with pytest.raises(StoreError, match="feature dtype must be"):
        feature_params(store_params("ucf11", 1, 1), FEATURES, "int8")
    with pytest.raises(StoreError, match="cannot be transcoded"):
        recoded_params(params_of(tmp_path / "f.h5"), "jpeg")
    with pytest.raises(StoreError, match="feature store already"):
        feature_params(params_of(tmp_path / "f.h5"), FEATURES)


def test_damage_check_and_rebuild(tmp_path):
    path = tmp_path / "f.h5"
    want = write(path)
    with FrameStore(path) as s:
        shard = s.shard_path(2)
    data = bytearray(open(shard, "rb").read())
    with FrameStore(path) as s:   # flip one byte inside clip c2's features
        offset = s.clip_extent(2)[1]
    data[offset + 5] ^= 0xFF
    open(shard, "wb").write(bytes(data))
    with FrameStore(path) as s, pytest.raises(CorruptClipError, match="clip c2 .* frame 0 fails its checksum"):
        s.read(2)
    check = run_cli("preprocess.check", path, "--quiet")
    assert check.returncode == 1 and "1 damaged" in check.stdout
    open(path, "wb").write(b"not an index")            # the index lost: rebuilt from the shards
    report = rebuild_index(path)
    assert report["clips"] == 4 and len(report["damaged"]) == 1 and report["params_from"] == "store record"
    with FrameStore(path) as s:
        assert s.features == FEATURES and sorted(s.index["clip_id"]) == ["c0", "c1", "c3", "c4"]
        assert np.array_equal(s.read(2), want["c3"])
        assert sorted(s.index["clip_id"][s.splits["split01"]["test"]]) == ["c3", "c4"]
