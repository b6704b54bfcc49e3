"""experiments.hollywood2 and experiments.celebfaces end to end on generated video trees (paper frame sizes, few
frames), and the Celebrities paper split against the original code's procedure."""
import json
import os

import numpy as np
import pytest
from helpers import run_side_by_side

from preprocess import celebfaces, hollywood2
from ttrnn.store import FrameStore

RUN_FILES = {"config.json", "history.csv", "metrics.json", "model.keras", "curves.png", "confusion.png"}


@pytest.fixture(scope="module")
def h2_store(hollywood2_tree, tmp_path_factory):
    """24 generated multi-label clips (12 train / 12 test) at the paper's 234x100."""
    out = tmp_path_factory.mktemp("h2store") / "hollywood2.h5"
    assert hollywood2.build_store(hollywood2_tree, out, workers=1, progress=False)["status"] == 0
    return out


@pytest.fixture(scope="module")
def celeb_store(celebfaces_tree, tmp_path_factory):
    """4 people x 2 clips at 160x120."""
    out = tmp_path_factory.mktemp("celebstore") / "celebfaces.h5"
    assert celebfaces.build_store(celebfaces_tree, out, workers=1, progress=False)["status"] == 0
    return out


@pytest.fixture(scope="module")
def runs(h2_store, celeb_store, tmp_path_factory):
    """The Hollywood2 TT-GRU and Celebrities TT-LSTM runs, started side by side (independent: two processes, each
    with one TensorFlow start and compilation) -> {name: (run dir, CompletedProcess-like result)}."""
    root = tmp_path_factory.mktemp("dataset_runs")
    h2, celeb = run_side_by_side(
        ["-m", "experiments.hollywood2", "--data", h2_store, "--use-tt", "--epochs", "1", "--max-len", "8",
         "--batch-size", "8", "--out", root / "hollywood2", "--workers", "0", "--quiet"],
        ["-m", "experiments.celebfaces", "--data", celeb_store, "--model", "lstm", "--use-tt", "--epochs", "1",
         "--max-len", "6", "--fold", "4", "--out", root / "celebfaces", "--workers", "0", "--quiet"])
    return {"hollywood2": (root / "hollywood2", h2), "celebfaces": (root / "celebfaces", celeb)}


def test_hollywood2_tt_gru_end_to_end_reports_map(runs):
    out, res = runs["hollywood2"]
    assert res.returncode == 0, res.stderr[-2000:]
    assert RUN_FILES <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["map"] <= 1 and len(metrics["average_precision"]) == 12
    assert metrics["params_input_to_hidden"] == 2944  # the paper's Hollywood2 TT-GRU count
    assert metrics["protocol"] == "store" and metrics["model"] == "tt_gru" and metrics["dataset"] == "hollywood2"
    # the standard split of the tree (half test), 15 % of the training clips held out for validation
    assert (metrics["num_train"], metrics["num_val"], metrics["num_test"]) == (10, 2, 12)
    config = json.loads((out / "config.json").read_text())
    assert config["lr"] == 1e-3 and config["args"]["batch_size"] == 8
    # the allocator settings applied before TensorFlow started, and the training epoch's own resource usage
    assert config["allocator"]["allocator"] == "tuned" and config["allocator"]["mallopt"]["M_MMAP_MAX"] == 0
    usage = metrics["epoch_usage"][0]
    assert 0 < usage["wall_s"] <= metrics["epoch_seconds"][0] + 0.01 and usage["user_s"] > 0
    assert usage["minor_faults"] > 0 and usage["sys_s"] >= 0
    assert "test map" in res.stdout


def test_celebfaces_tt_lstm_end_to_end_reports_accuracy(runs):
    out, res = runs["celebfaces"]
    assert res.returncode == 0, res.stderr[-2000:]
    assert RUN_FILES <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1 and metrics["classes"] == [f"person_{p:02d}" for p in range(1, 5)]
    assert metrics["params_input_to_hidden"] == 3392  # the paper's Celebrities TT-LSTM count
    assert metrics["protocol"] == "paper" and metrics["fold"] == 4
    assert (metrics["num_train"], metrics["num_test"]) == (7, 1)  # np.array_split(8, 5): the last fold has 1
    config = json.loads((out / "config.json").read_text())
    assert config["lr"] == 1e-3 and config["args"]["batch_size"] == 16 and config["args"]["max_len"] == 6


def original_celebfaces_folds(file_names, folds=5):
    """The original Experiment_CelebFaces.py: sorted listdir, np.random.seed(11111986), choice, array_split."""
    files = sorted(file_names)
    np.random.seed(11111986)
    clips = np.array(files)[np.random.choice(range(len(files)), len(files), False)]
    return [set(clips[idx]) for idx in np.array_split(np.arange(len(files)), folds)]


def test_celebfaces_paper_split_is_the_original_codes(celeb_store):
    from experiments.celebfaces import make_split
    with FrameStore(celeb_store) as store:
        names = [os.path.basename(s) for s in store.index["source"]]
        reference = original_celebfaces_folds(names)
        seen = []
        for fold in range(5):
            split = make_split(store, "paper", fold)
            test = {names[i] for i in split.test}
            assert test == reference[fold]
            train, tested = set(split.train), set(split.test)
            assert train | tested == set(range(len(store))) and not train & tested
            seen += sorted(test)
        assert sorted(seen) == sorted(names)  # every clip is tested exactly once
        with pytest.raises(ValueError, match="out of range"):
            make_split(store, "paper", 5)


def test_hollywood2_splits_standard_only(h2_store):
    from experiments.hollywood2 import make_split
    with FrameStore(h2_store) as store:
        split = make_split(store, "store", 0)
        sources = store.index["source"]
        assert all("train" in sources[i] for i in split.train) and all("test" in sources[i] for i in split.test)
        assert len(split.train) == len(split.test) == 12
        with pytest.raises(ValueError, match="no random folds"):
            make_split(store, "paper", 0)
