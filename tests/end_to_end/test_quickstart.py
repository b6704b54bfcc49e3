"""The README's quickstart and the other dataset demos, exactly as a new user runs them (marked slow: the
quickstart trains 30 epochs on 330 synthetic clips at 160x120; `.ci/run` runs these after the suite)."""
import json

import pytest
from helpers import run_cli

RUN_FILES = {"config.json", "history.csv", "metrics.json", "model.keras", "curves.png", "confusion.png"}


@pytest.mark.slow
def test_quickstart_ucf11_demo(tmp_path):
    """`python -m experiments.ucf11 --demo`: synthetic videos -> store -> TT-GRU (paper shapes) -> accuracy."""
    out = tmp_path / "run"
    res = run_cli("experiments.ucf11", "--demo", "--quiet", "--out", out, env={"TTRNN_CACHE": str(tmp_path / "c")},
                  timeout=3600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert RUN_FILES <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "tt_gru" and metrics["params_input_to_hidden"] == 3232
    assert metrics["epochs"] == 30 and metrics["num_train"] + metrics["num_test"] == 330
    assert metrics["accuracy"] > 1 / 11  # it learns: better than chance over 11 classes
    assert "test accuracy" in res.stdout


@pytest.mark.slow
@pytest.mark.parametrize("dataset, key", [("hollywood2", "map"), ("celebfaces", "accuracy")])
def test_other_demos_run_one_epoch(tmp_path, dataset, key):
    out = tmp_path / "run"
    res = run_cli(f"experiments.{dataset}", "--demo", "--epochs", "1", "--quiet", "--out", out,
                  env={"TTRNN_CACHE": str(tmp_path / "c")}, timeout=3600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert RUN_FILES <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == dataset and 0 <= metrics[key] <= 1 and metrics["epochs"] == 1
