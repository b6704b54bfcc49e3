"""Runs that cannot mix, lie or hang, through the real CLI (`experiments.ucf11`) on a tiny store of
16x12 frames with the plain GRU: one writer per run directory, a diverged run stopped and never reported, a resume
only onto the same data, SIGTERM, readers that cannot start, a full disk; and (slow) kills at several moments of a
run with dropout, resumed to the uninterrupted run's losses and weights."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, kill_after_line, make_store, moving_square_clip

COMMON = ["--max-len", "4", "--batch-size", "4", "--lr", "1e-3", "--quiet", "--no-tensorboard", "--intra-op", "1"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """3 classes x 3 groups x 2 clips of 3-5 frames at 16x12: 14 training and 4 test clips (paper fold 0)."""
    return make_store(tmp_path_factory.mktemp("safety") / "ucf11.h5", num_classes=3, groups=3, clips_per_group=2,
                      lengths=(3, 5), size=(16, 12))


def command(data, out, *extra, fault=None):
    head = [str(REPO / "tests" / "faults.py"), fault] if fault else ["-m", "experiments.ucf11"]
    return [sys.executable, *head, "--data", str(data), "--out", str(out), *COMMON, *map(str, extra)]


def run(cmd, timeout=600):
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=REPO, timeout=timeout)


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip()]


def history(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def checkpoint_arrays(run_dir):
    with np.load(run_dir / "checkpoint.npz") as data:
        return {k: data[k] for k in data.files if k != "state"}


def checkpoint_epochs(run_dir):
    with np.load(run_dir / "checkpoint.npz") as data:
        return len(json.loads(bytes(data["state"]).decode())["history"])


def copy_store(store, path):
    """A copy of the store at `path`: its index file and (schema 2) its folder of clip shards."""
    shutil.copy(store, path)
    shards = Path(f"{store}.clips")
    if shards.is_dir():
        shutil.copytree(shards, Path(f"{path}.clips"))
    return path


def add_clips(path, count):
    """Append `count` new clips (a new group of class 0) to the store at `path`."""
    from ttrnn.store import FrameStore, StoreWriter, store_params
    with FrameStore(path) as fs:
        classes = list(fs.classes)
    rng = np.random.default_rng(7)
    with StoreWriter(path, store_params("ucf11", 16, 12, compression="lzf", classes=classes)) as writer:
        for k in range(count):
            writer.add_clip(f"v_added_{k:02d}", moving_square_clip(0, 4, 12, 16, rng), classes[0], 0, "v_added",
                            f"added/{k}.mpg", 25.0)


def test_two_trainings_on_one_out_one_refused_the_others_result_intact(store, tmp_path):
    """Started together on one --out: one trains, the other is refused in one line naming the holder's PID and
    host (exit 2, before TensorFlow); the directory holds the winner's epochs and the accuracy it printed."""
    out = tmp_path / "run"
    procs = [subprocess.Popen(command(store, out, "--epochs", "2", "--seed", seed), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO) for seed in (1, 1)]
    results = [(p.pid, p.returncode, *p.communicate(timeout=600), p.wait()) for p in procs]
    done = [r for r in results if r[4] == 0]
    refused = [r for r in results if r[4] != 0]
    assert len(done) == 1 and len(refused) == 1, results
    pid, _, out_text, _, _ = done[0]
    _, _, _, err, code = refused[0]
    assert code == 2 and len(error_lines(err)) == 1, err
    assert f"is in use by PID {pid} on " in err and "one writer per run directory" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"test accuracy: {metrics['accuracy']:.4f}" in out_text
    assert [r["epoch"] for r in history(out)] == ["1", "2"]


def test_lr_1e30_stops_at_the_step_no_metrics_not_in_tables(store, tmp_path):
    """--lr 1e30: the first non-finite loss ends the run with one line (epoch, step, last finite loss, the
    learning-rate hint), exit 1, no metrics.json and no checkpoint (no epoch was good); tables do not list it."""
    out = tmp_path / "run"
    res = run(command(store, out, "--epochs", "2", "--lr", "1e30"))
    assert res.returncode == 1, res.stderr[-2000:]
    lines = error_lines(res.stderr)
    assert len(lines) == 1 and "training diverged: loss" in lines[0] and "at epoch 1, step" in lines[0], res.stderr
    assert "last finite training loss" in lines[0] and "learning rate 1e+30 is likely too high" in lines[0]
    assert not (out / "metrics.json").exists() and not (out / "checkpoint.npz").exists()
    tables = run([sys.executable, "-m", "experiments.tables", str(tmp_path), "--json"])
    assert tables.returncode == 0 and json.loads(tables.stdout)["num_runs"] == 0


@pytest.mark.slow
def test_divergence_after_a_good_epoch_keeps_its_checkpoint(store, tmp_path):
    """The learning rate blown up after epoch 1 (tests/faults.py): the run stops in a later epoch with one line,
    and the checkpoint it keeps is epoch 1's, finite, from which the same command would continue."""
    out = tmp_path / "run"
    res = run(command(store, out, "--epochs", "3", fault="lr-blows-up"))
    assert res.returncode == 1, res.stderr[-2000:]
    lines = error_lines(res.stderr)
    assert len(lines) == 1 and "training diverged" in lines[0] and "the checkpoint of epoch 1 is kept" in lines[0]
    assert checkpoint_epochs(out) == 1 and not (out / "metrics.json").exists()
    assert all(np.isfinite(a).all() for a in checkpoint_arrays(out).values())
    assert [r["epoch"] for r in history(out)] == ["1"]


def test_sigterm_mid_epoch_with_workers_then_resume_and_a_changed_store_refused(store, tmp_path):
    """SIGTERM in epoch 2 of a run with 2 reader workers: the resume line, exit 143, nothing else on stderr (no
    traceback, no BrokenPipe, no leaked semaphores); the same command resumes after epoch 1 and finishes. A copy of
    the interrupted run directory, resumed after clips were added to the store, is refused in one line saying
    what changed."""
    data = copy_store(store, tmp_path / "store.h5")
    out = tmp_path / "run"
    cmd = command(data, out, "--epochs", "3", "--workers", "2")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO)
    watchdog = threading.Timer(600, proc.kill)
    watchdog.start()
    for line in proc.stdout:
        if line.startswith("epoch 1/"):   # printed once epoch 1 is saved; epoch 2 starts right away
            proc.send_signal(signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=600)
    watchdog.cancel()
    assert proc.returncode == 143, err
    assert error_lines(err) == ["python -m experiments.ucf11: interrupted; rerun the same command to continue from "
                                "the last saved epoch"], err
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    res = run(cmd)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"resuming {out} after epoch 1 of 3" in res.stdout
    assert [r["epoch"] for r in history(out)] == ["1", "2", "3"] and (out / "metrics.json").exists()

    add_clips(data, 6)
    res = run(command(data, copy, "--epochs", "3", "--workers", "2"))
    assert res.returncode == 2, res.stderr
    lines = error_lines(res.stderr)
    assert len(lines) == 1 and f"{copy} was trained on other data" in lines[0], res.stderr
    assert "store clips 18 -> 24" in lines[0] and "added" in lines[0] and "another --out" in lines[0]
    assert not (copy / "metrics.json").exists()


def test_sigterm_while_a_finished_run_writes_its_report_is_no_interruption(store, tmp_path):
    """SIGTERM while the finished run saves model.keras (tests/faults.py), with 2 reader workers: the run is
    complete, so exit 0 with its result and nothing on stderr, not "interrupted; rerun" with exit 143."""
    out = tmp_path / "run"
    res = run(command(store, out, "--epochs", "1", "--workers", "2", fault="sigterm-while-saving"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert error_lines(res.stderr) == [] and "test accuracy: " in res.stdout
    assert (out / "metrics.json").exists() and (out / "model.keras").exists()


def test_store_removed_before_the_workers_start_fails_at_once_in_one_line(store, tmp_path):
    """The store deleted after the trainer opened it, before its 2 reader workers start (tests/faults.py): exit 1
    with the workers' reason in one line, no respawned workers' tracebacks."""
    data = copy_store(store, tmp_path / "store.h5")
    res = run(command(data, tmp_path / "run", "--epochs", "1", "--workers", "2", fault="store-vanishes"),
              timeout=300)
    assert res.returncode == 1, res.stderr[-3000:]
    lines = error_lines(res.stderr)
    assert len(lines) == 1 and f"the readers cannot open the store {data}" in lines[0], res.stderr[-3000:]


def test_reader_pool_that_cannot_open_its_store_raises_at_start(tmp_path):
    from ttrnn.data import ReaderError, ReaderPool
    for workers in (0, 2):
        pool = ReaderPool(tmp_path / "missing.h5", workers=workers)
        with pytest.raises(ReaderError, match="the readers cannot open the store .*missing.h5"):
            pool.start()
        pool.close()


# A pool whose worker takes 60 s per read, closed while another thread waits on one (run as a script: its 'spawn'
# worker imports this file as its main module, so the worker's `read_plan` is the slow one).
PENDING_READ = """
import sys, threading, time
from ttrnn import data
from ttrnn.data import readers
real_read = readers.read_plan
def slow_read(store, plan):
    time.sleep(60)
    return real_read(store, plan)
readers.read_plan = slow_read
if __name__ == "__main__":
    pool = data.ReaderPool(sys.argv[1], workers=1).start()
    outcome = []
    def read():
        try:
            next(pool.imap([data.ClipPlan(0)], window=1))
            outcome.append("read")
        except data.ReaderError as exc:
            outcome.append(str(exc))
    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(1.0)
    t0 = time.perf_counter()
    pool.close()
    reader.join(10)
    print(outcome, reader.is_alive(), round(time.perf_counter() - t0, 1))
"""


def test_reader_pool_closed_ends_a_read_pending_in_another_thread(store, tmp_path):
    """close() while a tf.data-like thread waits on a read of the pool: the wait ends with a ReaderError within a
    second, instead of blocking that thread (and the teardown of its iterator) forever."""
    script = tmp_path / "pending_read.py"
    script.write_text(PENDING_READ)
    res = subprocess.run([sys.executable, str(script), str(store)], capture_output=True, text=True, env=ENV,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    outcome, alive, seconds = res.stdout.split("]")[0] + "]", *res.stdout.split("]")[1].split()
    assert "closed while a read was pending" in outcome and alive == "False" and float(seconds) < 5, res.stdout


def test_interrupts_at_random_moments_are_raised_between_batches(store):
    """200 epochs of a feed through tf.data and a traced step, each hit by SIGINT at a random moment (tests/
    interrupt_stress.py): every interrupt is raised at a check_interrupt() between batches, none inside TensorFlow,
    and the process ends normally (raised where the signal landed, this loop corrupted TensorFlow's heap)."""
    res = subprocess.run([sys.executable, str(REPO / "tests" / "interrupt_stress.py"), str(store), "200", "1"],
                         capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    counts = json.loads(res.stdout.splitlines()[-1])
    assert counts == {"epochs": 200, "interrupts": 200, "raised_elsewhere": 0}, counts


DEFERRED = """
import os, signal, time
from ttrnn.cli import Terminated, check_interrupt, deferred_interrupts, handle_interrupts
handle_interrupts()
seen = []
try:
    os.kill(os.getpid(), signal.SIGTERM); time.sleep(0.2)
except Terminated:
    seen.append("outside: at once")
with deferred_interrupts():
    os.kill(os.getpid(), signal.SIGTERM); time.sleep(0.2)
    seen.append("inside: waits")
    try:
        check_interrupt()
    except Terminated:
        seen.append("inside: at the check")
    check_interrupt()
    seen.append("raised once")
    os.kill(os.getpid(), signal.SIGINT); time.sleep(0.2)
    try:
        os.kill(os.getpid(), signal.SIGINT); time.sleep(0.2)
    except KeyboardInterrupt as exc:
        seen.append(f"second: at once {type(exc).__name__}")
try:
    with deferred_interrupts():
        os.kill(os.getpid(), signal.SIGTERM); time.sleep(0.2)
except Terminated:
    seen.append("pending at the end: raised on leaving")
print(seen)
"""


def test_signals_inside_deferred_interrupts_wait_for_the_check():
    """Outside deferred_interrupts() a SIGTERM raises at once; inside, at the next check_interrupt() and once; a
    second signal while one is pending raises at once; one still pending is raised when the block ends."""
    res = subprocess.run([sys.executable, "-c", DEFERRED], capture_output=True, text=True, env=ENV, cwd=REPO,
                         timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == str(["outside: at once", "inside: waits", "inside: at the check", "raised once",
                                      "second: at once KeyboardInterrupt", "pending at the end: raised on leaving"])


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 MB tmpfs mounted for the test (root only), unmounted after it."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a tmpfs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory):
    """Fill the file system of `directory` to the last byte; returns the filler file."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass
    return filler


def test_disk_full_under_out_then_resume_after_freeing_space(store, small_tmpfs, tmp_path):
    """The tmpfs under --out filled right after epoch 1 was saved (the run stopped meanwhile with SIGSTOP): a later
    write fails in one line naming the file (exit 1), no temporary file is left, the epoch-1 checkpoint still
    loads; a truncated copy of it is named in one line; with the space freed the same command resumes."""
    out = small_tmpfs / "run"
    cmd = command(store, out, "--epochs", "3")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO)
    for line in proc.stdout:
        if line.startswith("epoch 1/"):
            proc.send_signal(signal.SIGSTOP)
            filler = fill(small_tmpfs)
            proc.send_signal(signal.SIGCONT)
            break
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err[-2000:]
    lines = error_lines(err)
    assert len(lines) == 1 and f"cannot write {out}/" in lines[0] and "No space left on device" in lines[0], err
    assert "rerun the same command" in lines[0]
    assert not list(out.glob("*.tmp")) and not (out / "metrics.json").exists()
    saved = checkpoint_epochs(out)
    assert saved >= 1 and all(np.isfinite(a).all() for a in checkpoint_arrays(out).values())

    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    data = (damaged / "checkpoint.npz").read_bytes()
    (damaged / "checkpoint.npz").write_bytes(data[:len(data) // 3])
    res = run(command(store, damaged, "--epochs", "3"))
    assert res.returncode == 1 and len(error_lines(res.stderr)) == 1, res.stderr
    assert f"cannot read the checkpoint {damaged / 'checkpoint.npz'}" in res.stderr

    filler.unlink()
    res = run(cmd)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"resuming {out} after epoch {saved} of 3" in res.stdout
    assert [r["epoch"] for r in history(out)] == ["1", "2", "3"] and (out / "metrics.json").exists()


@pytest.mark.slow
def test_killed_at_several_moments_resumes_to_the_uninterrupted_run(store, tmp_path):
    """Dropout 0.25 and recurrent dropout 0.25 on, shuffled batches, 3 epochs. One run is SIGKILLed at its epoch-1
    line, again as its resume starts (before a step), again 1 s into its next resume's training, and then resumed
    to the end: its per-epoch losses and final weights, optimizer slots and dropout seed states equal those of an
    uninterrupted run started beside it (<= 1e-6)."""
    args = ["--epochs", "3", "--dropout", "0.25", "--recurrent-dropout", "0.25", "--workers", "0"]
    straight = subprocess.Popen(command(store, tmp_path / "straight", *args), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO)
    out = tmp_path / "killed"
    cmd = command(store, out, *args)
    kills = [("epoch 1/", 0.0), ("resuming ", 0.0), ("ucf11 gru: ", 1.0)]
    for line_start, then in kills:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV,
                                cwd=REPO)
        assert kill_after_line(proc, line_start, then), line_start
        assert not (out / "metrics.json").exists()
    res = run(cmd)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resuming " in res.stdout
    _, err = straight.communicate(timeout=600)
    assert straight.returncode == 0, err[-2000:]
    ref, got = history(tmp_path / "straight"), history(out)
    assert [r["epoch"] for r in got] == ["1", "2", "3"]
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        np.testing.assert_allclose([float(r[key]) for r in got], [float(r[key]) for r in ref], rtol=0, atol=1e-6,
                                   err_msg=key)
    ref_arrays, got_arrays = checkpoint_arrays(tmp_path / "straight"), checkpoint_arrays(out)
    assert ref_arrays.keys() == got_arrays.keys() and any(k.startswith("s") for k in ref_arrays)
    for key in ref_arrays:
        np.testing.assert_allclose(got_arrays[key], ref_arrays[key], rtol=0, atol=1e-6, err_msg=key)
