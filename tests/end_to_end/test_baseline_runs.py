"""TSN and C3D through the shared trainer: complete run directories, sparse reads, the weights options, TSN's
--freeze-epochs read after every epoch."""
import json

import numpy as np
import pytest
from helpers import SPY, make_store, run_cli, run_side_by_side, spied_epochs

from ttrnn.data import BatchFeed, InputSpec
from ttrnn.store import FrameStore

RUN_FILES = {"config.json", "history.csv", "metrics.json", "model.keras", "curves.png", "confusion.png"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """11 classes x 1 group x 1 clip of 16-20 frames at 160x120."""
    return make_store(tmp_path_factory.mktemp("baselines") / "ucf11.h5", num_classes=11, groups=1,
                      clips_per_group=1, lengths=(16, 20))


def assert_complete_run_directory(out, model):
    assert RUN_FILES <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "mean_class_accuracy", "top5", "params_total"} <= set(metrics)
    assert metrics["model"] == model


@pytest.fixture(scope="module")
def runs(store, tmp_path_factory):
    """The C3D run and the TSN run, side by side -> {"c3d": run dir, "tsn": run dir}.

    TSN: MobileNetV2, 2 segments, 3 epochs, --freeze-epochs 2, read after every epoch (tests/epoch_spy.py). 6 classes
    x 1 clip at 24x16 (TSN resizes to 224; > 5 classes: top-5 is reported), 1 held out: one class is missing from
    the 5 training clips, so the head's bias gets a gradient even while the random backbone's features are ~1e-13
    and the predictions uniform (balanced classes would cancel it exactly)."""
    root = tmp_path_factory.mktemp("baseline_runs")
    tsn_store = make_store(root / "tsn.h5", num_classes=6, groups=1, clips_per_group=1, lengths=(3, 4), size=(24, 16))
    c3d, tsn = run_side_by_side(
        ["-m", "experiments.ucf11", "--data", store, "--model", "c3d", "--width", "0.125", "--epochs", "1",
         "--batch-size", "4", "--protocol", "logo", "--out", root / "c3d", "--workers", "0", "--quiet"],
        [SPY, "--data", tsn_store, "--model", "tsn", "--backbone", "mobilenet_v2", "--segments", "2",
         "--freeze-epochs", "2", "--epochs", "3", "--lr", "0.01", "--batch-size", "8", "--protocol", "holdout",
         "--workers", "0", "--quiet", "--out", root / "tsn"])
    assert c3d.returncode == 0, c3d.stderr[-3000:]
    assert tsn.returncode == 0, tsn.stderr[-3000:]
    return {"c3d": root / "c3d", "tsn": root / "tsn"}


def test_c3d_run_writes_a_complete_run_directory(runs):
    assert_complete_run_directory(runs["c3d"], "c3d")


@pytest.fixture(scope="module")
def tsn_run(runs):
    return runs["tsn"]


def test_tsn_run_writes_a_complete_run_directory(tsn_run):
    assert_complete_run_directory(tsn_run, "tsn_mobilenet_v2")


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
    lines = [line for line in res.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "weights file not found" in lines[0] and "missing.weights.h5" in lines[0], res.stderr


def test_freeze_epochs_holds_the_backbone_for_the_first_n_epochs(tsn_run):
    """--freeze-epochs 2 over 3 epochs (TSN): the backbone's weights (kernels and BatchNorm statistics) stay what
    the build made during epochs 1 and 2 and change in epoch 3; the classifier head changes in every epoch."""
    out = tsn_run
    spy, epochs = spied_epochs(out)
    assert len(epochs) == 4                                   # the start and epochs 1..3
    backbone = [i for i, b in enumerate(spy["backbone"]) if b]
    head = [i for i, b in enumerate(spy["backbone"]) if not b]
    kernels = [i for i in backbone if spy["trainable"][i]]
    statistics = [i for i in backbone if not spy["trainable"][i]]   # BatchNorm moving mean / variance
    assert kernels and statistics and [spy["paths"][i].split("/")[-1] for i in head] == ["kernel", "bias"]

    def changed(indices, a, b):
        return [i for i in indices if not np.array_equal(epochs[a][f"w{i}"], epochs[b][f"w{i}"])]

    for epoch in (1, 2):                                       # frozen: not one value moved
        assert changed(backbone, epoch - 1, epoch) == [], f"backbone changed in frozen epoch {epoch}"
    for epoch in (1, 2, 3):                                    # the head trains throughout
        assert changed(head, epoch - 1, epoch) == head, f"head did not train in epoch {epoch}"
    # epoch 3: unfrozen, every trainable backbone weight takes an Adam step and BatchNorm updates its statistics
    assert changed(kernels, 2, 3) == kernels
    assert changed(statistics, 2, 3) == statistics
