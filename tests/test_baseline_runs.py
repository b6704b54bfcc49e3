"""TSN and C3D through the shared trainer: complete run directories, sparse reads, the weights options."""
import json

import numpy as np
import pytest

from ttrnn.data import BatchFeed, InputSpec
from ttrnn.store import FrameStore

from helpers import make_store, run_cli

RUN_FILES = {"config.json", "history.csv", "metrics.json", "model.keras", "curves.png", "confusion.png"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """11 classes x 1 group x 1 clip of 16-20 frames at 160x120."""
    return make_store(tmp_path_factory.mktemp("baselines") / "ucf11.h5", num_classes=11, groups=1,
                      clips_per_group=1, lengths=(16, 20))


@pytest.mark.parametrize("model_args", [["--model", "c3d", "--width", "0.125"],
                                        ["--model", "tsn", "--backbone", "mobilenet_v2", "--segments", "2"]])
def test_baseline_runs_write_complete_run_directories(store, tmp_path, model_args):
    out = tmp_path / "run"
    res = run_cli("experiments.ucf11", "--data", store, *model_args, "--epochs", "1", "--batch-size", "4",
                  "--protocol", "logo", "--out", out, "--workers", "0", "--quiet")
    assert res.returncode == 0, res.stderr[-3000:]
    assert RUN_FILES <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "mean_class_accuracy", "top5", "params_total"} <= set(metrics)
    assert metrics["model"] in ("c3d", "tsn_mobilenet_v2")


def test_tsn_reads_only_the_sampled_frames(store, monkeypatch):
    """Count frames that leave the store: TSN with 3 segments reads 3 frames per clip, never a whole clip."""
    counts = {"frames": 0, "whole_reads": 0}
    real_frames, real_read = FrameStore.read_frames, FrameStore.read

    def counting_frames(self, i, idx):
        out = real_frames(self, i, idx)
        counts["frames"] += len(np.unique(idx))
        return out

    def counting_read(self, *a, **k):
        counts["whole_reads"] += 1
        return real_read(self, *a, **k)

    monkeypatch.setattr(FrameStore, "read_frames", counting_frames)
    monkeypatch.setattr(FrameStore, "read", counting_read)
    fs = FrameStore(store)
    feed = BatchFeed(fs, np.arange(len(fs)), InputSpec("tsn", num_frames=3), 4, training=True, seed=0)
    batches = list(feed.batches())
    assert sum(len(x) for x, _ in batches) == len(fs)
    assert counts == {"frames": 3 * len(fs), "whole_reads": 0}
    stored = int(fs.index["length"].sum())
    assert counts["frames"] / stored < 0.2  # 3 of 16-20 frames per clip


def test_weights_options(store, tmp_path):
    out = tmp_path / "run"
    res = run_cli("experiments.ucf11", "--data", store, "--model", "tsn", "--backbone", "mobilenet_v2",
                  "--weights", tmp_path / "missing.weights.h5", "--epochs", "1", "--out", out, "--quiet",
                  env={"KERAS_HOME": str(tmp_path / "keras_home")})
    assert res.returncode == 2 and not out.exists()
    assert "Traceback" not in res.stderr
    lines = [l for l in res.stderr.splitlines() if "error:" in l]
    assert len(lines) == 1 and "weights file not found" in lines[0] and "missing.weights.h5" in lines[0], res.stderr
