"""experiments.ucf11 end to end on small generated stores: run directory, resume after SIGKILL, bad input."""
import csv
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import REPO, make_store, run_cli

RUN_FILES = {"config.json", "history.csv", "metrics.json", "model.keras", "curves.png", "confusion.png"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """11 classes x 3 groups x 2 clips of 4-8 frames at the paper's 160x120 (the UCF11 TT shapes need it)."""
    return make_store(tmp_path_factory.mktemp("train") / "ucf11.h5", num_classes=11, groups=3, clips_per_group=2,
                      lengths=(4, 8))


def history_rows(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def test_tt_gru_run_writes_a_complete_run_directory(store, tmp_path):
    out = tmp_path / "run"
    res = run_cli("experiments.ucf11", "--data", store, "--use-tt", "--epochs", "2", "--lr", "1e-3",
                  "--max-len", "6", "--out", out, "--workers", "1", "--quiet", "--intra-op", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    assert RUN_FILES <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "mean_class_accuracy", "top5", "params_input_to_hidden", "params_total",
                "epoch_seconds", "peak_rss_mb", "num_train", "num_test", "command", "versions"):
        assert key in metrics, key
    assert metrics["params_input_to_hidden"] == 3232  # the paper's TT-GRU count
    assert metrics["num_train"] + metrics["num_test"] == 66 and metrics["num_test"] == 14
    assert len(metrics["epoch_seconds"]) == 2 and 0 <= metrics["accuracy"] <= 1
    config = json.loads((out / "config.json").read_text())
    assert config["threads"]["intra_op"] == 2
    assert [r["epoch"] for r in history_rows(out)] == ["1", "2"]
    # the saved model loads back and predicts like the run's final evaluation would
    check = subprocess.run([sys.executable, "-c", (
        "import keras, numpy as np, ttrnn, sys\n"
        "m = ttrnn.load_model(sys.argv[1])\n"
        "x = np.random.default_rng(0).integers(0, 255, (2, 6, 120, 160, 3)).astype('uint8')\n"
        "p = m.predict(x, verbose=0)\n"
        "print(p.shape, np.allclose(p.sum(1), 1, atol=1e-4))\n"), str(out / "model.keras")],
        capture_output=True, text=True, cwd=REPO)
    assert "(2, 11) True" in check.stdout, check.stderr[-2000:]
    # a finished run is not trained again
    again = run_cli("experiments.ucf11", "--data", store, "--use-tt", "--epochs", "2", "--lr", "1e-3",
                    "--max-len", "6", "--out", out, "--workers", "1", "--quiet")
    assert again.returncode == 0 and "already finished" in again.stdout


def test_sigkill_then_same_command_resumes(store, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "experiments.ucf11", "--data", str(store), "--use-tt", "--epochs", "3",
           "--max-len", "8", "--out", str(out), "--workers", "0", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "history.csv").exists() and len(history_rows(out)) >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = len(history_rows(out))
    assert 1 <= saved < 3, "the first run should be killed after epoch 1 and before the end"
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"resuming {out} after epoch {saved}" in res.stdout
    assert [r["epoch"] for r in history_rows(out)] == ["1", "2", "3"]
    assert len(json.loads((out / "metrics.json").read_text())["epoch_seconds"]) == 3


@pytest.mark.parametrize("args, message", [
    (["--data", "{missing}"], "no store at"),
    (["--data", "{wrong}"], "'celebfaces' store"),
    (["--data", "{notastore}"], "not a ttrnn frame store"),
    (["--data", "{store}", "--max-len", "0"], "--max-len must be >= 1"),
    (["--data", "{store}", "--model", "transformer"], "unknown model"),
    (["--data", "{store}", "--protocol", "logo", "--fold", "7"], "out of range"),
    (["--data", "{store}", "--threads-preset", "nope"], "nope"),
    (["--data", "{store}", "--projection-dtype", "bfloat16"], "--projection-dtype applies to TT"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(store, tmp_path, args, message):
    wrong = make_store(tmp_path / "celeb.h5", num_classes=2, groups=1, clips_per_group=1, lengths=(2, 2),
                       size=(16, 12), dataset="celebfaces")
    notastore = tmp_path / "plain.h5"
    import h5py
    with h5py.File(notastore, "w") as f:
        f["x"] = np.zeros(3)
    subst = {"{missing}": tmp_path / "missing.h5", "{wrong}": wrong, "{notastore}": notastore, "{store}": store}
    out = tmp_path / "out"
    res = run_cli("experiments.ucf11", *[subst.get(a, a) for a in args], "--out", out, "--quiet")
    assert res.returncode == 2
    lines = [l for l in res.stderr.splitlines() if l.strip() and not l.startswith(("I0000", "E0000", "W0000",
                                                                                     "WARNING: All log"))]
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists()


def test_dense_gru_baseline_builds_and_trains_a_step():
    """The paper's plain GRU: a dense 57,600 x 768 input kernel (44,236,800 weights), however slow."""
    import keras
    import tensorflow as tf
    from ttrnn.models import input_to_hidden_params, paper_model
    model = paper_model("ucf11", "gru", 11, use_tt=False)
    assert input_to_hidden_params(model) == 44_236_800
    opt = keras.optimizers.Adam(1e-4)
    x = np.random.default_rng(0).integers(0, 255, (2, 3, 120, 160, 3)).astype("uint8")
    y = keras.utils.to_categorical([1, 4], 11)
    before = model.get_layer("input_to_hidden").cell.kernel.numpy()[:5, :5].copy()
    with tf.GradientTape() as tape:
        loss = keras.losses.categorical_crossentropy(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    assert np.isfinite(float(tf.reduce_mean(loss)))
    assert not np.allclose(before, model.get_layer("input_to_hidden").cell.kernel.numpy()[:5, :5])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_paper_preset_plain_rnn_uses_the_keras1_hard_sigmoid(cell):
    """--preset paper without TT: Keras-1 hard_sigmoid gates (and the GRU's reset gate before the matmul)."""
    from ttrnn.activations import hard_sigmoid
    from ttrnn.models import paper_model
    model = paper_model("ucf11", cell, 11, use_tt=False, preset="paper", frame_shape=(12, 16, 3))
    layer = model.get_layer("input_to_hidden")
    assert layer.cell.recurrent_activation is hard_sigmoid
    if cell == "gru":
        assert layer.cell.reset_after is False
    x = np.random.default_rng(0).integers(0, 255, (2, 3, 12, 16, 3)).astype("uint8")
    assert model.predict(x, verbose=0).shape == (2, 11)
