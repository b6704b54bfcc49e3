"""experiments.hmdb51: the official split semantics (split files: 1 = train, 2 = test, 0 = in neither) through the
trainer on a feature store and on a frame store of a synthetic HMDB51 layout, `--split` usage errors, and (slow) the
demo end to end."""
import json
import os
from pathlib import Path

import pytest
from helpers import run_cli

CLASSES = 3


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A synthetic HMDB51 tree (3 classes x 3 titles x 2 clips of 4-6 frames at 160x120), its frame store and its
    ResNet50 feature store (random weights, 32x32 input)."""
    from preprocess import hmdb51
    from preprocess.synthetic import write_synthetic_hmdb51
    from ttrnn.features import extract_store
    root = tmp_path_factory.mktemp("hmdb51")
    write_synthetic_hmdb51(root / "tree", classes=CLASSES, groups=3, clips_per_group=2, frames=(4, 6), seed=2)
    frames = root / "hmdb51.h5"
    assert hmdb51.build_store(str(root / "tree" / "hmdb51_org"), str(frames), workers=0, progress=False)[
        "status"] == 0
    features = root / "hmdb51-resnet50.h5"
    assert extract_store(str(frames), str(features), "resnet50", image_size=32, batch=8, workers=0)["status"] == 0
    return root / "tree" / "testTrainMulti_7030_splits", frames, features


def split_counts(lists, split):
    """(train, test) clip counts of official split `split`, read from the split files themselves."""
    ids = [line.split()[1] for name in os.listdir(lists) if name.endswith(f"_test_split{split}.txt")
           for line in Path(lists, name).read_text().splitlines() if line.strip()]
    return ids.count("1"), ids.count("2")


@pytest.mark.parametrize("split", [1, 3])
def test_split_n_trains_on_ones_and_tests_on_twos_over_features(stores, tmp_path, split):
    lists, _, features = stores
    out = tmp_path / "run"
    res = run_cli("experiments.hmdb51", "--data", features, "--split", str(split), "--model", "lstm", "--use-tt",
                  "--epochs", "1", "--out", out, "--workers", "0", "--quiet", "--no-tensorboard")
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    train, test = split_counts(lists, split)
    assert 0 < test and train + test < CLASSES * 6          # the clips marked 0 are in neither side
    assert (metrics["num_train"], metrics["num_test"]) == (train, test)
    assert (metrics["dataset"], metrics["model"], metrics["protocol"], metrics["fold"]) == \
        ("hmdb51", "tt_lstm", "store", split - 1)
    assert metrics["features"]["backbone"] == "resnet50" and metrics["features"]["width"] == 2048


def test_tt_gru_on_the_frame_store_uses_ucf11_shapes(stores, tmp_path):
    lists, frames, _ = stores
    out = tmp_path / "run"
    res = run_cli("experiments.hmdb51", "--data", frames, "--split", "2", "--model", "gru", "--use-tt", "--epochs",
                  "1", "--max-len", "4", "--out", out, "--workers", "0", "--quiet", "--no-tensorboard")
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["params_input_to_hidden"] == 3232 and metrics["features"] is None   # the paper's UCF11 TT-GRU
    assert (metrics["num_train"], metrics["num_test"]) == split_counts(lists, 2)


@pytest.mark.parametrize("args, message", [
    (["--split", "4"], "argument --split: invalid choice: 4"),
    (["--model", "tsn"], "--model tsn trains on frames"),
])
def test_usage_errors_are_one_line(stores, tmp_path, args, message):
    res = run_cli("experiments.hmdb51", "--data", stores[2], *args, "--out", tmp_path / "run")
    assert res.returncode == 2, res.stderr[-2000:]
    assert message in res.stderr and "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.slow   # a few minutes on two cores: synthetic tree -> frames -> features -> 40 epochs
def test_demo_runs_end_to_end(tmp_path):
    env = dict(os.environ, TTRNN_CACHE=str(tmp_path / "cache"))
    out = tmp_path / "demo"
    res = run_cli("experiments.hmdb51", "--demo", "--out", out, "--quiet", "--no-tensorboard", env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "tt_lstm" and metrics["fold"] == 0 and metrics["features"]["weights"] is None
    assert metrics["features"]["pooling"] == "none" and metrics["features"]["width"] == 2 * 2 * 2048
    config = json.loads((out / "config.json").read_text())
    assert config["store"]["synthetic"] and config["store"]["features"]["backbone"] == "resnet50"
