"""The report reuses the last epoch's test evaluation (no second pass over the test clips), and a run
resumed after its last epoch, with nothing left to train, evaluates once. Counted by a spy on
`experiments.trainer.evaluation.evaluate` (what the epoch loop and the report call) in the trainer's own process."""
import json
import subprocess
import sys

import pytest
from helpers import REPO, make_store

SPY = """
import json, sys
from experiments import ucf11
from experiments.trainer import evaluation
calls = []
real = evaluation.evaluate
def spy(predict, feed, multilabel):
    calls.append(len(feed.rows))
    return real(predict, feed, multilabel)
evaluation.evaluate = spy
code = ucf11.main(sys.argv[1:])
print("EVALUATIONS " + json.dumps(calls))
sys.exit(code)
"""


def run_spied(*args):
    res = subprocess.run([sys.executable, "-c", SPY, *map(str, args)], capture_output=True, text=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.split("EVALUATIONS ")[-1])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("fm") / "s.h5", num_classes=3, groups=2, clips_per_group=3,
                      lengths=(4, 8), size=(16, 12), compression="none")


def test_final_metrics_are_the_last_epochs_evaluation_without_a_second_pass(store, tmp_path):
    out = tmp_path / "run"
    argv = ("--data", store, "--epochs", "1", "--max-len", "8", "--batch-size", "4", "--out", out,
            "--quiet", "--no-tensorboard")
    calls = run_spied(*argv)
    metrics = json.loads((out / "metrics.json").read_text())
    test_clips = metrics["num_test"]
    assert calls == [test_clips]                          # the epoch's, none in the report
    last = [line.split(",") for line in (out / "history.csv").read_text().splitlines()]
    row = dict(zip(last[0], last[-1]))
    assert float(row["test_loss"]) == pytest.approx(metrics["test_loss"], rel=1e-6)
    assert float(row["test_accuracy"]) == pytest.approx(metrics["accuracy"], abs=1e-9)
    # resumed with every epoch done but no metrics.json: nothing to train, so the report evaluates once
    (out / "metrics.json").unlink()
    assert run_spied(*argv) == [test_clips]
    again = json.loads((out / "metrics.json").read_text())
    assert again["test_loss"] == pytest.approx(metrics["test_loss"], rel=1e-5)
    assert again["accuracy"] == metrics["accuracy"]
