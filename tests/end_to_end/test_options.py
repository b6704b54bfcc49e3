"""The documented training options through the real CLI, on the cheapest run that shows each works: the plain GRU on
a store of 16x12 frames (none of these options depends on the paper's 160x120). --seed, --patience, --optimizer
sgd, --scaling unit / PixelScaling, and the preprocessing CLIs (preprocess.synthetic, --fps)."""
import csv
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from helpers import REPO, make_store, read_scalars, run_cli, run_spied, spied_epochs

from ttrnn.store import FrameStore

SMALL = ["--model", "gru", "--max-len", "4", "--batch-size", "8", "--workers", "0", "--quiet", "--intra-op", "1"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """6 classes x 2 groups x 2 clips of 3-5 frames at 16x12."""
    return make_store(tmp_path_factory.mktemp("options") / "ucf11.h5", num_classes=6, groups=2, clips_per_group=2,
                      lengths=(3, 5), size=(16, 12))


def start(store, out, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "experiments.ucf11", "--data", str(store), *SMALL, *map(str, args),
                             "--out", str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(procs):
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]


def checkpoint(run_dir):
    with np.load(run_dir / "checkpoint.npz") as data:
        return {k: data[k] for k in data.files if k != "state"}


def history(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def seed_runs(store, tmp_path_factory):
    """Three 2-epoch runs side by side: a and b with --seed 5, c with --seed 6 and a learning rate too small to move
    its weights (defaults otherwise: Adam, dropout 0.25, pixel scaling 'paper')."""
    root = tmp_path_factory.mktemp("seeds")
    runs = {name: root / name for name in "abc"}
    finish([start(store, runs["a"], "--epochs", "2", "--seed", 5),
            start(store, runs["b"], "--epochs", "2", "--seed", 5),
            start(store, runs["c"], "--epochs", "2", "--seed", 6, "--lr", "1e-12")])  # c: still its initial weights
    return runs


def test_same_seed_same_run_other_seed_another(seed_runs):
    """Initialization, shuffling and dropout masks all follow --seed (dropout on: the default 0.25)."""
    a, b, c = (checkpoint(seed_runs[n]) for n in "abc")
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-7, err_msg=key)
    assert any(not np.allclose(a[k], c[k]) for k in a if k.startswith("w"))
    assert [r["train_loss"] for r in history(seed_runs["a"])] == [r["train_loss"] for r in history(seed_runs["b"])]
    # the initialization follows the seed: c (lr 1e-12) still holds the weights of a fresh build seeded with 6
    import keras

    from ttrnn.models import paper_model
    keras.utils.set_random_seed(6)
    fresh = paper_model("ucf11", "gru", 6, use_tt=False, frame_shape=(12, 16, 3)).get_weights()
    assert len(fresh) == len([k for k in c if k.startswith("w")])
    for i, w in enumerate(fresh):
        np.testing.assert_allclose(c[f"w{i}"], w, rtol=1e-6, atol=1e-7, err_msg=f"w{i}")


def test_patience_stops_after_n_epochs_without_a_better_test_loss(store, tmp_path):
    out = tmp_path / "run"
    finish([start(store, out, "--epochs", "12", "--patience", "2", "--lr", "0.05", "--optimizer", "sgd")])
    losses = [float(r["test_loss"]) for r in history(out)]
    # the rule, replayed on the recorded losses: stop once `patience` epochs in a row did not beat the best
    best, stale, expected = None, 0, len(losses)
    for epoch, loss in enumerate(losses, 1):
        if best is None or loss < best:
            best, stale = loss, 0
        else:
            stale += 1
        if stale >= 2:
            expected = epoch
            break
    assert len(losses) == expected
    assert len(losses) < 12, "this run should stop early (lr 0.05 SGD on 24 clips); the rule was not exercised"
    assert json.loads((out / "metrics.json").read_text())["epochs"] == len(losses)


SGD_LR, SGD_EPOCHS, SGD_BATCH = 0.5, 3, 32


@pytest.fixture(scope="module")
def sgd_run(store, tmp_path_factory):
    """--optimizer sgd --scaling unit, 3 epochs of one step each (batch 32 > the 19 training clips), no dropout,
    read after every epoch (tests/epoch_spy.py)."""
    out = tmp_path_factory.mktemp("sgd") / "run"
    res = run_spied("--data", store, *SMALL, "--epochs", SGD_EPOCHS, "--optimizer", "sgd", "--lr", SGD_LR,
                    "--batch-size", SGD_BATCH, "--dropout", "0", "--recurrent-dropout", "0", "--scaling", "unit",
                    "--out", out)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_sgd_and_unit_scaling_reach_the_model(sgd_run, seed_runs):
    """--optimizer sgd: momentum SGD, one slot per weight (Adam keeps two); --scaling unit: the saved model's
    PixelScaling maps pixels to pixel / 255 (the default run's to pixel - 128)."""
    sgd, adam = sgd_run, seed_runs["a"]
    weights = [k for k in checkpoint(sgd) if k.startswith("w")]
    slots = {name: [k for k in checkpoint(d) if k.startswith("o")] for name, d in (("sgd", sgd), ("adam", adam))}
    trainable = len(weights)  # the plain GRU + classifier: every weight is trainable
    # SGD: iterations + one momentum per weight (its learning rate is a schedule, not a variable);
    # Adam: iterations + learning rate + two moments per weight
    assert len(slots["sgd"]) == 1 + trainable and len(slots["adam"]) == 2 + 2 * trainable
    import ttrnn
    pixels = ttrnn.load_model(sgd / "model.keras").get_layer("pixels")
    frames = np.array([[[[[0, 51, 255]]]]], dtype=np.uint8)
    np.testing.assert_allclose(np.asarray(pixels(frames)), [[[0, 0.2, 1]]], rtol=1e-6)
    default = ttrnn.load_model(adam / "model.keras").get_layer("pixels")
    np.testing.assert_allclose(np.asarray(default(frames)), [[[-128, -77, 127]]], rtol=1e-6)


def readme_sgd_rate(lr, step, steps_per_epoch, epochs):
    """The documented TSN recipe, step `step` (0-based) of a run: lr x0.1 at 1/3 and x0.01 at 2/3 of the epochs, i.e.
    once the step starts at or after epoch E/3 (2E/3): step / steps_per_epoch >= E/3."""
    total = steps_per_epoch * epochs
    return lr * 0.1 ** ((3 * step >= total) + (3 * step >= 2 * total))


def test_sgd_uses_the_documented_momentum_weight_decay_and_schedule(sgd_run):
    """--optimizer sgd over 3 epochs of one step each: the optimizer the trainer built has momentum 0.9 and weight
    decay 1e-4, its schedule gives every step the documented rate (lr, lr/10, lr/100), and the weights show it: Keras's
    SGD step is w <- w (1 - wd lr_k) + m_k (m_k the new momentum slot), so the decay each epoch took, fitted from
    the weights before and after and the slot, is 1e-4 x that epoch's rate. TensorBoard's epoch_learning_rate
    shows the same rates."""
    out, lr, epochs = sgd_run, SGD_LR, SGD_EPOCHS
    spy, weights = spied_epochs(out)
    num_train = json.loads((out / "config.json").read_text())["num_train"]
    per_epoch = -(-num_train // SGD_BATCH)
    assert per_epoch == 1, "this test reads one step per epoch from the weights"
    expected = [readme_sgd_rate(lr, s, per_epoch, epochs) for s in range(per_epoch * epochs)]
    np.testing.assert_allclose(expected, [lr, lr / 10, lr / 100])
    final = spy["epochs"][-1]
    assert final["config"]["momentum"] == pytest.approx(0.9) and final["config"]["weight_decay"] == pytest.approx(1e-4)
    assert final["config"]["nesterov"] is False
    np.testing.assert_allclose(final["step_learning_rates"], expected, rtol=1e-6)
    for k, rec in enumerate(spy["epochs"], 1):
        assert rec["iterations"] == k * per_epoch
        if k < epochs:   # the rate its next step will use
            assert rec["learning_rate"] == pytest.approx(expected[k * per_epoch], rel=1e-6)
    # the decay each epoch's step applied, fitted on every trainable weight: c_k = wd x lr_k
    for k in range(1, epochs + 1):
        prev, now = weights[k - 1], weights[k]
        num = den = 0.0
        for j, i in enumerate(spy["trainable_index"]):
            w0, w1, m = (a.astype(np.float64) for a in (prev[f"w{i}"], now[f"w{i}"], now[f"m{j}"]))
            num += float(np.sum(w0 * (w0 + m - w1)))
            den += float(np.sum(w0 * w0))
        assert num / den == pytest.approx(1e-4 * expected[k - 1], rel=0.02), f"epoch {k}"
    board = read_scalars(out / "tensorboard" / "train")["epoch_learning_rate"]
    np.testing.assert_allclose([board[k] for k in range(1, epochs + 1)], expected, rtol=1e-6)


def test_sgd_schedule_boundaries_follow_the_readme():
    """The schedule the trainer builds for runs whose steps per epoch divide the clips exactly or not and whose
    epochs are or are not a multiple of 3: every step's rate is the documented one."""
    from argparse import Namespace

    from experiments.train import build_optimizer
    for num_train, batch, epochs in [(19, 32, 3), (16, 4, 3), (17, 4, 3), (16, 4, 4), (10, 3, 5), (8, 8, 2),
                                     (100, 16, 30)]:
        args = Namespace(optimizer="sgd", batch_size=batch, epochs=epochs)
        optimizer, schedule = build_optimizer(args, 0.1, num_train)
        per_epoch = -(-num_train // batch)
        steps = range(per_epoch * epochs)
        got = [float(schedule(s)) for s in steps]
        np.testing.assert_allclose(got, [readme_sgd_rate(0.1, s, per_epoch, epochs) for s in steps], rtol=1e-6,
                                   err_msg=f"{num_train} clips, batch {batch}, {epochs} epochs")
        assert optimizer.momentum == pytest.approx(0.9) and optimizer.weight_decay == pytest.approx(1e-4)


def test_synthetic_and_preprocess_fps_clis(tmp_path):
    """preprocess.synthetic writes a UCF11-layout tree; preprocess.ucf11 --fps 10 resamples it in time."""
    src = tmp_path / "videos"
    res = run_cli("preprocess.synthetic", src, "--classes", "2", "--groups", "1", "--clips-per-group", "1",
                  "--frames", "9", "--size", "32x24")
    assert res.returncode == 0, res.stderr
    videos = sorted(p for p in src.rglob("*") if p.suffix in (".mpg", ".avi"))
    assert len(videos) == 2 and len({p.parent.parent.name for p in videos}) == 2  # <class>/<group>/<clip>
    res = run_cli("preprocess.ucf11", src, tmp_path / "s.h5", "--fps", "10", "--size", "32x24", "--codec", "raw",
                  "--quiet")
    assert res.returncode == 0, res.stderr
    with FrameStore(tmp_path / "s.h5") as s:
        assert s.attrs["fps"] == 10.0 and len(s) == 2
        for i in range(len(s)):
            # 9 source frames at 29.97 fps; output frame j (at j / 10 s) is the source frame on screen then,
            # floor(j * 2.997): 0, 2, 5, 8 (j = 4 would be frame 11, past the end)
            assert s.index["fps"][i] == pytest.approx(29.97, abs=1e-3)
            cap, source = cv2.VideoCapture(str(src / s.index["source"][i])), []
            while (frame := cap.read())[0]:
                source.append(cv2.cvtColor(frame[1], cv2.COLOR_BGR2RGB))
            cap.release()
            np.testing.assert_array_equal(s.read(i), np.stack(source)[[0, 2, 5, 8]])


@pytest.mark.slow   # multi-process / slow-format end to end: .ci/run runs it in its slow pass
def test_cluster_spec_and_worker_index_on_the_real_cli(store, tmp_path):
    """Two workers started by hand with --cluster-spec FILE --worker-index I (no TF_CONFIG, no launcher): one run,
    written by the chief. Fresh ports and a new start when a worker lost its port to another process."""
    from helpers import PORT_TAKEN

    from experiments.launch import free_ports
    for attempt in range(3):
        spec = tmp_path / f"cluster{attempt}.json"
        spec.write_text(json.dumps({"worker": [f"localhost:{p}" for p in free_ports(2)]}))
        out = tmp_path / f"run{attempt}"
        procs = [start(store, out, "--epochs", "1", "--cluster-spec", spec, "--worker-index", i) for i in (0, 1)]
        try:
            errors = [p.communicate(timeout=600)[1] for p in procs]
        finally:
            for p in procs:
                p.kill()
        if all(p.returncode == 0 for p in procs) or not any(m in e.lower() for e in errors for m in PORT_TAKEN):
            break
    assert [p.returncode for p in procs] == [0, 0], errors[0][-1500:] + errors[1][-1500:]
    config = json.loads((out / "config.json").read_text())
    assert config["cluster"]["kind"] == "multi_worker" and config["cluster"]["num_replicas"] == 2
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
