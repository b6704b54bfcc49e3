"""TensorBoard logging: a run killed after its first checkpoint and resumed leaves exactly one point per epoch and
tag, equal to history.csv; and that run's console shows none of TensorFlow's start-up lines."""
import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np

from helpers import REPO, make_store
from test_console import STARTUP_MARKERS


def history_rows(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def read_scalars(log_dir):
    """{tag: {step: value}} from every event file under log_dir, read with TensorFlow's own event reader."""
    import tensorflow as tf
    points = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                steps = points.setdefault(value.tag, {})
                assert event.step not in steps, f"{value.tag}: epoch {event.step} logged twice"
                steps[event.step] = float(tf.make_ndarray(value.tensor))
    return points


def test_kill_and_resume_logs_each_epoch_once(tmp_path):
    store = make_store(tmp_path / "ucf11.h5", num_classes=4, groups=3, clips_per_group=2, lengths=(3, 5),
                       size=(32, 24))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "experiments.ucf11", "--data", str(store), "--model", "gru", "--epochs", "3",
           "--max-len", "4", "--batch-size", "8", "--out", str(out), "--workers", "0", "--quiet"]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TTRNN_VERBOSE")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "history.csv").exists() and len(history_rows(out)) >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 1 <= len(history_rows(out)) < 3, "the first run should be killed after epoch 1 and before the end"

    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resuming" in res.stdout
    assert not any(m in res.stderr for m in STARTUP_MARKERS), res.stderr  # the quiet console, in a real run

    history = history_rows(out)
    train, test = read_scalars(out / "tensorboard" / "train"), read_scalars(out / "tensorboard" / "test")
    assert set(train) == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate", "epoch_seconds"}
    assert set(test) == {"epoch_loss", "epoch_accuracy"}
    for points in (*train.values(), *test.values()):
        assert sorted(points) == [1, 2, 3]
    for split, points in (("train", train), ("test", test)):
        for metric in ("loss", "accuracy"):
            logged = [points[f"epoch_{metric}"][e] for e in (1, 2, 3)]
            np.testing.assert_allclose(logged, [float(r[f"{split}_{metric}"]) for r in history], rtol=1e-6)
    assert [train["epoch_learning_rate"][e] for e in (1, 2, 3)] == [np.float32(1e-4)] * 3  # ucf11's Adam 1e-4
