"""experiments.ucf11 end to end on small generated stores: run directory, resume after SIGKILL, bad input."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, STARTUP_MARKERS, kill_after_line, make_store, read_scalars, run_cli

RUN_FILES = {"config.json", "history.csv", "metrics.json", "model.keras", "curves.png", "confusion.png"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """11 classes x 3 groups x 2 clips of 4-8 frames at the paper's 160x120 (the UCF11 TT shapes need it)."""
    return make_store(tmp_path_factory.mktemp("train") / "ucf11.h5", num_classes=11, groups=3, clips_per_group=2,
                      lengths=(4, 8))


def history_rows(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def saved_model_on_test_clips(store_path, run_dir, max_len):
    """The saved model on the run's test clips, read straight from the store one clip at a time (no padding, no
    data pipeline): returns (true labels, probabilities)."""
    import ttrnn
    from ttrnn.data.splits import make_split
    from ttrnn.store import FrameStore
    model = ttrnn.load_model(run_dir / "model.keras")
    with FrameStore(store_path) as fs:
        rows = make_split(fs, "paper", 0).test
        labels = np.asarray(fs.index["label"])[rows]
        probs = np.stack([np.asarray(model(fs.read(int(r), max_len)[None], training=False))[0] for r in rows])
    return labels, probs


def test_tt_gru_run_writes_a_complete_run_directory(store, tmp_path):
    out = tmp_path / "run"
    res = run_cli("experiments.ucf11", "--data", store, "--use-tt", "--epochs", "2", "--lr", "1e-3",
                  "--max-len", "6", "--out", out, "--workers", "1", "--quiet", "--intra-op", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    assert RUN_FILES <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("params_total", "epoch_seconds", "peak_rss_mb", "command", "versions"):
        assert key in metrics, key
    assert metrics["params_input_to_hidden"] == 3232  # the paper's TT-GRU count
    assert metrics["num_train"] + metrics["num_test"] == 66 and metrics["num_test"] == 14
    assert len(metrics["epoch_seconds"]) == 2
    config = json.loads((out / "config.json").read_text())
    assert config["threads"]["intra_op"] == 2
    assert [r["epoch"] for r in history_rows(out)] == ["1", "2"]
    # the saved model, on the test clips read independently of the trainer, reproduces the run's evaluation
    labels, probs = saved_model_on_test_clips(store, out, 6)
    pred = probs.argmax(1)
    confusion = np.zeros((11, 11), int)
    np.add.at(confusion, (labels, pred), 1)
    assert np.array_equal(metrics["confusion"], confusion)
    assert metrics["accuracy"] == pytest.approx(np.mean(pred == labels))
    top5 = np.mean([label in np.argsort(-p)[:5] for label, p in zip(labels, probs)])
    assert metrics["top5"] == pytest.approx(top5)
    test_loss = -np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1)))
    assert metrics["test_loss"] == pytest.approx(test_loss, rel=1e-4)
    assert float(history_rows(out)[-1]["test_loss"]) == pytest.approx(test_loss, rel=1e-4)
    # a finished run is not trained again
    again = run_cli("experiments.ucf11", "--data", store, "--use-tt", "--epochs", "2", "--lr", "1e-3",
                    "--max-len", "6", "--out", out, "--workers", "1", "--quiet")
    assert again.returncode == 0 and "already finished" in again.stdout


def checkpoint_arrays(run_dir):
    with np.load(run_dir / "checkpoint.npz") as data:
        return {k: data[k] for k in data.files if k != "state"}


def test_killed_run_resumed_without_out_equals_an_uninterrupted_run(store, tmp_path):
    """Same seed, dropout and recurrent dropout 0.25 (the checkpoint holds the dropout seed generators' states): a
    run killed at its epoch-2 line and resumed by the same command (no --out: it finds its runs/ directory) ends
    with the weights, optimizer slots and seed states of a run that was never interrupted (started side by side
    with the killed one), to 1e-6; tests/test_run_safety.py kills at more moments (slow). Uses the
    paper preset, checked in the saved model. The resumed run's TensorBoard has exactly one point per epoch and
    tag, equal to history.csv, and its console (TF_CPP_MIN_LOG_LEVEL unset) shows none of TensorFlow's start-up
    lines."""
    args = ["--data", str(store), "--use-tt", "--preset", "paper", "--epochs", "3", "--max-len", "4",
            "--lr", "1e-3", "--workers", "0", "--quiet"]
    cmd = [sys.executable, "-m", "experiments.ucf11", *args]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TTRNN_VERBOSE")}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    work = tmp_path / "cwd"
    work.mkdir()
    with open(tmp_path / "straight.err", "w") as err:   # a file: nobody reads a pipe while the other run goes
        straight = subprocess.Popen(cmd + ["--out", str(tmp_path / "straight")], cwd=REPO, env=env,
                                    stdout=subprocess.DEVNULL, stderr=err)
    killed = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    kill_after_line(killed, "epoch 2/")  # epoch 1's checkpoint is on disk once its line is printed
    assert straight.wait(timeout=600) == 0, (tmp_path / "straight.err").read_text()[-2000:]
    run_dir, = (work / "runs").glob("ucf11-tt_gru-*")
    saved = len(history_rows(run_dir))
    assert 1 <= saved < 3 and not (run_dir / "metrics.json").exists()
    res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"resuming {run_dir.relative_to(work)} after epoch {saved}" in res.stdout
    assert not any(m in res.stderr for m in STARTUP_MARKERS), res.stderr  # the quiet console, in a real run
    assert [p.name for p in (work / "runs").iterdir()] == [run_dir.name]  # no second run directory
    history = history_rows(run_dir)
    assert [r["epoch"] for r in history] == ["1", "2", "3"]

    ref, got = checkpoint_arrays(tmp_path / "straight"), checkpoint_arrays(run_dir)
    assert ref.keys() == got.keys() and any(k.startswith("o") for k in ref) and any(k.startswith("s") for k in ref)
    for key in ref:  # weights w*, optimizer iterations and Adam moments o*, dropout seed states s*
        np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=1e-6, err_msg=key)
    for a, b in zip(history_rows(tmp_path / "straight"), history):
        for key in ("train_loss", "test_loss"):
            assert abs(float(a[key]) - float(b[key])) <= 1e-6, key
    import ttrnn
    layer = ttrnn.load_model(run_dir / "model.keras").get_layer("input_to_hidden")
    assert layer.preset == "paper" and layer.reset_after is False and layer.shared_recurrent_dropout

    # TensorBoard after the kill: the board is rewritten from history.csv, so no epoch appears twice
    train, test = read_scalars(run_dir / "tensorboard" / "train"), read_scalars(run_dir / "tensorboard" / "test")
    assert set(train) == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate", "epoch_seconds"}
    assert set(test) == {"epoch_loss", "epoch_accuracy"}
    for points in (*train.values(), *test.values()):
        assert sorted(points) == [1, 2, 3]
    for split, points in (("train", train), ("test", test)):
        for metric in ("loss", "accuracy"):
            logged = [points[f"epoch_{metric}"][e] for e in (1, 2, 3)]
            np.testing.assert_allclose(logged, [float(r[f"{split}_{metric}"]) for r in history], rtol=1e-6)
    assert [train["epoch_learning_rate"][e] for e in (1, 2, 3)] == [np.float32(1e-3)] * 3   # --lr 1e-3 (Adam)


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
    lines = [line for line in res.stderr.splitlines()
             if line.strip() and not line.startswith(("I0000", "E0000", "W0000", "WARNING: All log"))]
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists()


def test_dense_gru_baseline_builds_and_trains_a_step():
    """The paper's plain GRU: a dense 57,600 x 768 input kernel (44,236,800 weights), however slow."""
    import keras
    import tensorflow as tf

    from ttrnn.models import input_to_hidden_params, paper_model
    # Seeded: on raw pixels - 128 most of the 768 gate pre-activations saturate, so whether a given corner of the
    # kernel gets a gradient above Adam's epsilon depends on the draw; the whole kernel is compared below.
    keras.utils.set_random_seed(1)
    model = paper_model("ucf11", "gru", 11, use_tt=False)
    assert input_to_hidden_params(model) == 44_236_800
    opt = keras.optimizers.Adam(1e-4)
    x = np.random.default_rng(0).integers(0, 255, (2, 3, 120, 160, 3)).astype("uint8")
    y = keras.utils.to_categorical([1, 4], 11)
    kernel = model.get_layer("input_to_hidden").cell.kernel
    before = kernel.numpy().copy()
    with tf.GradientTape() as tape:
        loss = keras.losses.categorical_crossentropy(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    assert np.isfinite(float(tf.reduce_mean(loss)))
    assert np.all(np.isfinite(kernel.numpy())) and not np.array_equal(before, kernel.numpy())


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_paper_preset_plain_rnn_uses_the_keras1_hard_sigmoid(cell):
    """--preset paper without TT: Keras-1 hard_sigmoid gates (and the GRU's reset gate before the matmul)."""
    from ttrnn.layers.activations import hard_sigmoid
    from ttrnn.models import paper_model
    model = paper_model("ucf11", cell, 11, use_tt=False, preset="paper", frame_shape=(12, 16, 3))
    layer = model.get_layer("input_to_hidden")
    assert layer.cell.recurrent_activation is hard_sigmoid
    if cell == "gru":
        assert layer.cell.reset_after is False
    x = np.random.default_rng(0).integers(0, 255, (2, 3, 12, 16, 3)).astype("uint8")
    assert model.predict(x, verbose=0).shape == (2, 11)
