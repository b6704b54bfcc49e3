"""Feature stores (`ttrnn.features`, `python -m experiments.features`): the stored features against the backbone's
own `model.predict` on the same decoded frames, the frame store's index and splits carried over, thinning, resume,
a SIGKILL during extraction, and the one-line errors.

The backbone is InceptionV3 at its smallest input (75 px; 107 px for the unpooled 2x2 map) with random weights saved
to a file (`--weights PATH`), so every run loads the same backbone and nothing is downloaded.

Float16 tolerance: a stored value is the float32 feature rounded to float16, so it is within half a float16 unit in
the last place: 2^-11 of the value for normal numbers (|v| >= 2^-14), 2^-25 absolutely below (subnormals). The
assertion allows that plus 2e-6 of the clip's largest |feature| for the float32 difference between the extraction's
batches and `predict`'s: the backbone's sums of large terms round differently with the batch shape, so a small
feature can differ by ~1e-4 of itself but never by more than ~6e-7 of the largest (measured on ResNet50 and
InceptionV3 with random weights).
"""
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import REPO, make_store, run_cli, run_main
from ttrnn.store import FrameStore, StoreWriter

keras = pytest.importorskip("keras")

from ttrnn.features import (  # noqa: E402 (after the importorskip)
    BACKBONES,
    backbone_model,
    backbone_name,
    extract_frames,
    extract_store,
    feature_width,
)

SIZE = 75
MAP_SIZE = 107    # InceptionV3's smallest input with a 2x2 last feature map
HALF_ULP, SUBNORMAL, BATCH_NOISE = 2.0 ** -11, 2.0 ** -25, 2e-6


def assert_float16_of(stored, reference):
    """`stored` (float16) is `reference` (float32) rounded to float16, within the module's tolerance."""
    stored, reference = np.asarray(stored), np.asarray(reference, np.float32)
    assert stored.dtype == np.float16 and stored.shape == reference.shape
    allowed = HALF_ULP * np.abs(reference) + SUBNORMAL + BATCH_NOISE * np.abs(reference).max()
    excess = np.abs(stored.astype(np.float32) - reference) - allowed
    assert excess.max() <= 0, f"off by {excess.max()} beyond the float16 tolerance"


def assert_float32_of(stored, reference):
    """`stored` (float32) equals `reference` but for the batch shape's rounding (module docstring)."""
    assert np.asarray(stored).dtype == np.float32
    np.testing.assert_allclose(stored, reference, rtol=1e-6, atol=BATCH_NOISE * np.abs(reference).max())


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """A frame store (JPEG, 3 classes x 2 groups x 2 clips of 3-7 frames at 96x72) with two splits."""
    path = tmp_path_factory.mktemp("frames") / "frames.h5"
    make_store(path, num_classes=3, groups=2, clips_per_group=2, lengths=(3, 7), size=(96, 72), compression="jpeg")
    with FrameStore(path) as s:
        ids = [str(c) for c in s.index["clip_id"]]
    with StoreWriter.reopen(path) as w:
        w.set_splits({"split01": {"train": ids[:8], "test": ids[8:]}, "split02": {"train": ids[4:], "test": ids[:4]}})
        w.set_failed([("basketball/v_shooting_09/bad.mpg", "no decodable frames")])
    return path


@pytest.fixture(scope="module")
def model_and_weights(tmp_path_factory):
    """The backbone (random init) and its weights file, which `--weights PATH` loads into an identical one."""
    model = backbone_model("inceptionv3", image_size=SIZE)
    path = tmp_path_factory.mktemp("weights") / "inceptionv3.weights.h5"
    model.get_layer("inceptionv3").save_weights(str(path))
    return model, path


def test_backbone_table_and_model():
    assert BACKBONES["inceptionv3"][3] == BACKBONES["resnet50"][3] == 2048
    assert backbone_name("inception_v3") == "inceptionv3"   # TSN's spelling
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'"):
        backbone_name("vgg16")
    with pytest.raises(ValueError, match="at least 75"):
        backbone_model("inceptionv3", image_size=64)
    model = backbone_model("resnet50", image_size=32)
    assert model.output_shape == (None, 2048)
    x = np.random.default_rng(0).integers(0, 256, (5, 40, 50, 3), dtype=np.uint8)
    out = extract_frames(model, x, batch=2)
    assert_float16_of(out, model.predict(x, verbose=0))


@pytest.mark.parametrize("pooling, size, width", [("avg", SIZE, 2048), ("none", MAP_SIZE, 2 * 2 * 2048)])
def test_features_equal_the_backbones_predict(frames, model_and_weights, tmp_path, pooling, size, width):
    """Pooled features, and the unpooled 2x2x2048 map (`pooling="none"`) of the same weights."""
    model, weights = model_and_weights
    if pooling != "avg":
        model = backbone_model("inceptionv3", weights=weights, pooling=pooling, image_size=size)
        assert model.output_shape == (None, width) == (None, feature_width("inceptionv3", pooling, size))
    out = tmp_path / "features.h5"
    summary = extract_store(frames, out, "inceptionv3", weights=weights, pooling=pooling, image_size=size, batch=4,
                            workers=0)
    assert summary["status"] == 0 and summary["new"] == 12 and summary["skipped"] == 0
    with FrameStore(frames) as src, FrameStore(out) as feat:
        assert feat.features == {"backbone": "inceptionv3", "weights": str(weights), "pooling": pooling,
                                 "width": width, "image_size": size, "source": str(frames), "source_uid": src.uid,
                                 "frame_skip": 1, "fps": None}
        assert feat.frame_shape == (width,) and feat.dtype == np.float16 and feat.codec == "float16"
        assert (feat.attrs["width"], feat.attrs["height"], feat.attrs["dataset"]) == (96, 72, "ucf11")
        for field in ("clip_id", "class_name", "label", "group", "length", "source", "fps"):
            assert (feat.index[field] == src.index[field]).all(), field
        assert feat.classes == src.classes and (feat.label_matrix() == src.label_matrix()).all()
        assert {n: {p: r.tolist() for p, r in sp.items()} for n, sp in feat.splits.items()} == \
            {n: {p: r.tolist() for p, r in sp.items()} for n, sp in src.splits.items()}
        assert feat.failed == src.failed
        for i in range(len(src)):
            assert_float16_of(feat.read(i), model.predict(src.read(i), verbose=0))
        assert feat.read(3, max_len=2, frame_skip=2).shape == (2, width)


def test_float32_thinning_and_resume(frames, model_and_weights, tmp_path):
    model, weights = model_and_weights
    out = tmp_path / "thin.h5"
    kw = dict(weights=weights, image_size=SIZE, batch=3, workers=1, dtype="float32")
    extract_store(frames, out, "inceptionv3", frame_skip=2, **kw)
    with StoreWriter.reopen(out) as w:           # three clips lost: the next run computes those and nothing else
        w.drop(sorted(w.done_ids)[:3])
    again = extract_store(frames, out, "inceptionv3", frame_skip=2, **kw)
    assert (again["new"], again["skipped"]) == (3, 9)
    with FrameStore(frames) as src, FrameStore(out) as feat:
        assert feat.dtype == np.float32 and len(feat) == 12
        for i in range(len(src)):
            assert_float32_of(feat.read(i), model.predict(src.read(i, frame_skip=2), verbose=0))
    resampled = tmp_path / "fps.h5"
    extract_store(frames, resampled, "inceptionv3", fps=10.0, **kw)   # 25 frames/s stored -> every 2.5th frame
    with FrameStore(frames) as src, FrameStore(resampled) as feat:
        assert feat.features["fps"] == 10.0
        n = int(src.index["length"][0])
        idx = np.floor(np.arange(int(np.ceil(n * 10 / 25))) * 2.5 + 1e-6).astype(int)
        assert_float32_of(feat.read(0), model.predict(src.read_frames(0, idx), verbose=0))
    with pytest.raises(Exception, match="different parameters .*features.frame_skip: store 2 vs now 1"):
        extract_store(frames, out, "inceptionv3", **kw)


def test_a_damaged_clip_is_recorded_and_the_rest_stored(frames, model_and_weights, tmp_path):
    _, weights = model_and_weights
    copy = tmp_path / "copy.h5"
    subprocess.run(["cp", "-r", str(frames), str(copy)], check=True)
    subprocess.run(["cp", "-r", f"{frames}.clips", f"{copy}.clips"], check=True)
    with FrameStore(copy) as s:
        victim, shard = str(s.index["clip_id"][5]), s.shard_path(5)
    data = bytearray(open(shard, "rb").read())
    data[-200:-100] = bytes(100)                  # zeros over JPEG bytes of the last frame
    open(shard, "wb").write(bytes(data))
    out = tmp_path / "features.h5"
    summary = extract_store(copy, out, "inceptionv3", weights=weights, image_size=SIZE, batch=4, workers=0)
    assert summary["status"] == 1 and [c for c, _ in summary["failed"]] == [victim] and summary["new"] == 11
    with FrameStore(out) as feat:
        assert victim not in set(feat.index["clip_id"]) and len(feat) == 11
        assert (f"frame store clip {victim}" in dict(feat.failed))


def test_cli_errors_are_one_line(frames, tmp_path):
    missing = run_main("experiments.features", tmp_path / "nope.h5", tmp_path / "out.h5", "--weights", "none")
    assert missing.returncode == 2 and "store not found" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    assert "TENSORFLOW_IMPORTED False" in missing.stdout        # refused before TensorFlow starts
    small = run_cli("experiments.features", frames, tmp_path / "out.h5", "--weights", "none", "--image-size", "60")
    assert small.returncode == 2 and small.stderr.strip().endswith("at least 75 pixels, got 60")
    absent = run_cli("experiments.features", frames, tmp_path / "out.h5", "--weights", tmp_path / "none.weights.h5")
    assert absent.returncode == 2 and "weights file not found" in absent.stderr
    assert not (tmp_path / "out.h5").exists()                     # nothing written for bad input
    both = run_main("experiments.features", frames, tmp_path / "out.h5", "--frame-skip", "2", "--fps", "5")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


@pytest.mark.slow
def test_sigkill_during_extraction_then_the_same_command(frames, model_and_weights, tmp_path):
    """SIGKILL once the first clips are committed, the same command again: every clip once, each equal to an
    uninterrupted run's (`test_features_equal_the_backbones_predict`'s reference, the backbone's predict)."""
    model, weights = model_and_weights
    out = tmp_path / "features.h5"
    cmd = [sys.executable, "-m", "experiments.features", str(frames), str(out), "--weights", str(weights),
           "--image-size", str(SIZE), "--batch", "2", "--workers", "0"]
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:                      # progress lines: "features -> features.h5: 2/12 clip (..)"
        if line.startswith("features -> ") and int(line.split(": ")[1].split("/")[0]) >= 3:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    with FrameStore(out) as partial:
        kept = len(partial)
    assert 0 < kept < 12
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    new, there = (int(v) for v in re.search(r"\((\d+) new, (\d+) already there, 0 failed\)", done.stdout).groups())
    assert new + there == 12 and there >= kept    # shards published after the last commit are adopted, not redone
    with FrameStore(frames) as src, FrameStore(out) as feat:
        assert sorted(feat.index["clip_id"].tolist()) == sorted(src.index["clip_id"].tolist())   # each once
        assert len(os.listdir(f"{out}.clips")) == 12 + 2           # the shards, store.json and .lock
        for i in range(len(src)):
            assert_float16_of(feat.read(i), model.predict(src.read(i), verbose=0))
