"""The store's crash promises, tried as a user would break them: SIGKILLs at random moments of
`preprocess.ucf11 --workers 2`, a tmpfs that fills up, two writers at once. Every check compares the clips a
store lists with a clean build's (one module fixture)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import helpers
import numpy as np
import pytest

from preprocess import ucf11
from preprocess.synthetic import make_dataset
from ttrnn.store import STORE_RECORD, FrameStore, shard_dir
from ttrnn.store.schema import read_record

SIZE = "32x24"
KILLS = 30


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """12 tiny clips (32x24, 8-12 frames): a whole run takes well under a second past Python's start-up."""
    return make_dataset(tmp_path_factory.mktemp("kill") / "UCF11", classes=3, groups=2, clips_per_group=2,
                        frames=(8, 12), size=(32, 24), seed=5)


def _clean_build(tree, out, codec):
    assert ucf11.build_store(tree, out, size=(32, 24), workers=2, compression=codec, progress=False)["stored"] == 12
    with FrameStore(out) as s:
        return {cid: s.read(i) for i, cid in enumerate(s.index["clip_id"])}


@pytest.fixture(scope="module")
def clean(tree, tmp_path_factory):
    """{clip_id: frames} of an uninterrupted build: the reference every damaged-or-not store is held to."""
    return _clean_build(tree, tmp_path_factory.mktemp("clean") / "clean.h5", "raw")


@pytest.fixture(scope="module")
def clean_jpeg(tree, tmp_path_factory):
    return _clean_build(tree, tmp_path_factory.mktemp("clean") / "clean_jpeg.h5", "jpeg")


def _env(**extra):
    return dict(os.environ, PYTHONPATH=str(helpers.REPO), **extra)


def _alive(pid):
    """True while `pid` runs (not yet exited: a zombie's state in /proc is Z)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for_commit(out, started, pid, commits=1):
    """Until store `out` has had `commits` indexes written after `started` (ns), or the run `pid` ended."""
    seen, last = 0, started
    while seen < commits and _alive(pid):
        m = _mtime(out)
        if m > last:
            seen, last = seen + 1, m
        time.sleep(0.001)


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return 0


def assert_sound(out, clean):
    """The store opens, lists each clip once, every listed clip equals the clean build's; returns how many."""
    if not os.path.exists(out):
        return 0
    with FrameStore(out) as s:
        ids = list(s.index["clip_id"])
        assert len(ids) == len(set(ids))
        for i, cid in enumerate(ids):
            assert s.index["length"][i] == len(clean[cid])
            np.testing.assert_array_equal(s.read(i), clean[cid])
        return len(ids)


def assert_complete(out, clean):
    assert assert_sound(out, clean) == len(clean)
    with FrameStore(out) as s:
        listed = sorted(os.path.basename(s.shard_path(i)) for i in range(len(s)))
        record = read_record(out)   # the store record says what the index says beyond its rows
        assert (record["uid"], record["failed"]) == (s.uid, [list(f) for f in s.failed])
        assert record["params"]["classes"] == s.classes and record["params"]["codec"] == s.codec
    files = sorted(os.listdir(shard_dir(out)))
    assert files == sorted(listed + [".lock", STORE_RECORD])  # no temporaries, no unlisted shards left behind
    assert not [n for n in os.listdir(os.path.dirname(out)) if ".tmp-" in n]


# A launcher process that has imported the CLI once and forks one child per run: each child is the CLI process
# (it runs `preprocess.ucf11.main(argv)` in a session of its own, forks its 2 decode workers and is killed
# like one) without paying Python's start-up for every kill. A child asked for a `delay` gets a slow writer: it
# sleeps that long before adding each published shard to its index (`StoreWriter.add_shard`), which widens the
# window between a shard's publication and the commit that lists it, so that kills land there whatever the load.
LAUNCHER = """
import importlib, json, os, sys, time
from preprocess import transcode, ucf11
from ttrnn.store import StoreWriter

def slow_writer(delay):
    add_shard = StoreWriter.add_shard
    def slow_add_shard(self, name):
        time.sleep(delay)
        return add_shard(self, name)
    StoreWriter.add_shard = slow_add_shard

for line in sys.stdin:
    msg = json.loads(line)
    if "wait" in msg:
        print(json.dumps(os.waitstatus_to_exitcode(os.waitpid(msg["wait"], 0)[1])), flush=True)
        continue
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if msg["delay"]:
            slow_writer(msg["delay"])
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os.dup2(os.open(msg["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
        os._exit(importlib.import_module(msg["module"]).main(msg["argv"]))
    print(json.dumps(pid), flush=True)
"""


class Launcher:
    def __init__(self):
        self.p = subprocess.Popen([sys.executable, "-c", LAUNCHER], env=_env(), cwd=helpers.REPO, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def _ask(self, msg):
        self.p.stdin.write(json.dumps(msg) + "\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def start(self, argv, delay=0, stderr=os.devnull, module="preprocess.ucf11"):
        """pid of a new child running `python -m module argv` (stderr to the file `stderr`), its writer slowed by
        `delay` seconds per clip."""
        return self._ask({"argv": [str(a) for a in argv], "delay": delay, "stderr": str(stderr), "module": module})

    def wait(self, pid):
        """The child's exit code (negative: killed by that signal)."""
        return self._ask({"wait": pid})

    def run(self, argv, tmp_path):
        """(exit code, stderr text) of a whole run."""
        err = tmp_path / f"stderr-{time.monotonic_ns()}"
        rc = self.wait(self.start(argv, stderr=err))
        return rc, err.read_text()

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


@pytest.fixture(scope="module")
def launcher():
    la = Launcher()
    yield la
    la.close()


def _argv(tree, out, *extra):
    """The preprocess command of these tests: raw frames (compared bit for bit) unless `extra` names a codec."""
    codec = () if "--codec" in extra else ("--codec", "raw")
    return [tree, out, "--size", SIZE, "--workers", "2", "--quiet", *codec, *extra]


@pytest.mark.parametrize("codec", ["raw", "jpeg"])
def test_sigkill_at_random_moments_never_damages_and_rerun_completes(tree, clean, clean_jpeg, launcher, tmp_path,
                                                                     codec):
    """30 SIGKILLs of running writers at random moments: half uniform over a whole run (start-up, pool, index
    creation, shards, commits, the end), half uniform over its writing phase; half of them kill the process
    group (workers too), the rest only the writer (its workers die with it). The writing-phase kills start after
    the writer's third commit (clips are going in), with the writer slowed by 10 ms per clip so that the window
    is there whatever the load. After each: the store is sound; when it got complete, the next run is an
    --overwrite rebuild (killed too). Then the same command, uninterrupted, completes the store. Raw frames and
    JPEG-95 ones (each held to a clean build in its codec)."""
    rng = np.random.default_rng(2017)
    out = tmp_path / "k.h5"
    argv = _argv(tree, out, "--codec", codec)
    clean = clean if codec == "raw" else clean_jpeg
    for _ in range(2):  # the second of two whole runs sets the span the uniform kill moments are drawn from
        t0 = time.perf_counter()
        pid = launcher.start([tree, tmp_path / "span.h5"] + argv[2:] + ["--overwrite"])
        assert launcher.wait(pid) == 0
        span = time.perf_counter() - t0
    partial, overwrite, live, k = 0, False, 0, 0
    while live < KILLS and k < 2 * KILLS:  # a kill that came after the run ended does not count
        k += 1
        started = time.time_ns()
        if k % 2:  # in the writing phase
            pid = launcher.start(argv + (["--overwrite"] if overwrite else []), delay=0.01)
            _wait_for_commit(out, started, pid, commits=3 if overwrite else 2)
            time.sleep(rng.uniform(0, 0.12))
        else:
            pid = launcher.start(argv + (["--overwrite"] if overwrite else []))
            time.sleep(rng.uniform(0, span))
        alive = _alive(pid)
        live += alive
        if not alive and k % 2 == 0:  # this run ended before its moment (resumes are shorter): draw earlier
            span *= 0.8
        if k % 4 < 2:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
        launcher.wait(pid)
        n = assert_sound(out, clean)
        partial += 0 < n < len(clean)
        overwrite = n == len(clean)
    assert launcher.wait(launcher.start(argv)) == 0
    # most kills hit running writers, and several left a partly written store (not a statistics test: the
    # bounds only make sure the kills landed where they matter, even on loaded cores)
    assert live == KILLS and partial >= 3, (k, live, partial)
    print(f"{k} kills: {live} of a running writer, {partial} left a partly written store")
    assert_complete(out, clean)


def test_sigkill_between_shard_and_commit_loses_nothing(tree, clean, launcher, tmp_path):
    """A kill after shards are published but before the index lists them (the writer sleeps in that window
    here): the rerun adopts them, so nothing is decoded twice and nothing is lost."""
    out = tmp_path / "w.h5"
    pid = launcher.start(_argv(tree, out), delay=0.3)
    deadline = time.time() + 60
    while time.time() < deadline and len(_shards(out)) < 3:
        time.sleep(0.01)
    os.killpg(pid, signal.SIGKILL)
    launcher.wait(pid)
    listed, shards = assert_sound(out, clean), len(_shards(out))
    assert shards > listed  # published, not yet committed
    s = ucf11.build_store(tree, out, size=(32, 24), workers=2, compression="raw", progress=False)
    assert s["skipped"] == shards and s["decoded"] == 12 - shards and s["stored"] == 12
    assert_complete(out, clean)


def _shards(out):
    d = shard_dir(out)
    return [n for n in os.listdir(d) if n.startswith("c-")] if os.path.isdir(d) else []


@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs (root only); yields (mount point, remount(size))."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")

    def remount(size):
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True)
    try:
        yield mnt, remount
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("codec", ["raw", "jpeg"])
def test_full_disk_is_one_line_exit_1_and_resumes(tree, clean, clean_jpeg, tmpfs, launcher, tmp_path, codec):
    """Several sizes of a full tmpfs: one line naming the disk and the bytes needed, exit 1 (runtime), no traceback, no
    hang; committed clips intact; after the tmpfs grows the same command completes the store, no phantom
    failure entries."""
    mnt, remount = tmpfs
    ref = clean if codec == "raw" else clean_jpeg
    out = mnt / "s.h5"
    for size in (["48k", "96k", "160k", "240k"] if codec == "raw" else ["40k", "64k"]):
        shutil.rmtree(shard_dir(out), ignore_errors=True)
        if out.exists():
            out.unlink()
        remount(size)
        rc, err = launcher.run(_argv(tree, out, "--codec", codec), tmp_path)
        lines = err.strip().splitlines()
        assert rc == 1 and len(lines) == 1 and "Traceback" not in err, (size, err)
        assert "disk full" in lines[0] and str(mnt) in lines[0] and "bytes needed" in lines[0], lines[0]
        assert assert_sound(out, ref) < 12
        remount("4m")
        rc, err = launcher.run(_argv(tree, out, "--codec", codec), tmp_path)
        assert rc == 0, err
        assert_complete(out, ref)
        assert FrameStore(out).failed == []


def test_two_writers_at_once_one_is_refused(tree, clean, launcher, tmp_path):
    """Two runs started together on a new path: one writes the store, the other is refused in one line (the
    writer sleeps a little per clip so that the runs overlap whatever the start-up times)."""
    out = tmp_path / "two.h5"
    errs = [tmp_path / "e0", tmp_path / "e1"]
    pids = [launcher.start(_argv(tree, out), delay=0.05, stderr=e) for e in errs]
    codes = [launcher.wait(p) for p in pids]
    assert sorted(codes) == [0, 1], codes
    refused = errs[codes.index(1)].read_text().strip().splitlines()
    assert len(refused) == 1 and "another process" in refused[0], refused
    assert_complete(out, clean)


def _flip_first_chunk(store_path, row):
    """Flip one byte inside the first compressed chunk of clip `row` (helpers.make_store writes lzf)."""
    with FrameStore(store_path) as s:
        shard, cid = s.shard_path(row), str(s.index["clip_id"][row])
    with h5py.File(shard, "r") as f:
        off = f["frames"].id.get_chunk_info(0).byte_offset + 10
    with open(shard, "r+b") as fh:
        fh.seek(off)
        b = fh.read(1)
        fh.seek(off)
        fh.write(bytes([b[0] ^ 1]))
    return cid


def test_damaged_clip_crosses_the_reader_pool_as_one_line(tmp_path):
    """The reader processes raise CorruptClipError; the line the trainer prints is found in what arrives."""
    from ttrnn.data import ClipPlan, ReaderPool
    from ttrnn.store import corrupt_clip_line
    store = helpers.make_store(tmp_path / "s.h5", num_classes=2, groups=1, clips_per_group=2, lengths=(3, 3),
                               size=(16, 12))
    cid = _flip_first_chunk(store, 1)
    with ReaderPool(store, workers=1) as pool:
        with pytest.raises(Exception) as e:
            list(pool.imap([ClipPlan(row=r) for r in (0, 1)], window=2))
    line = corrupt_clip_line(e.value)
    assert line and cid in line and str(store) in line and "\n" not in line
    assert corrupt_clip_line(ValueError("something else")) is None


@pytest.mark.slow
def test_training_on_a_damaged_clip_stops_with_one_line(tmp_path):
    store = helpers.make_store(tmp_path / "s.h5", num_classes=11, groups=3, clips_per_group=1, lengths=(2, 3),
                               size=(16, 12))
    cid = _flip_first_chunk(store, 5)
    r = helpers.run_cli("experiments.ucf11", "--data", store, "--epochs", "1", "--max-len", "3", "--out",
                        tmp_path / "run", "--quiet")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and cid in lines[0] and "damaged" in lines[0], r.stderr[-2000:]
    attrs = json.loads((tmp_path / "run" / "config.json").read_text())["store"]["attrs"]
    assert (attrs["codec"], attrs["quality"]) == ("lzf", None)  # the run records how its frames were stored


def test_transcode_killed_then_rerun_gives_the_complete_store(tree, clean, launcher, tmp_path):
    """raw -> jpeg: 6 SIGKILLs at random moments, each leaving a sound store (every listed clip equal to an
    uninterrupted transcode's); the same command then completes it, no clip twice, no leftovers."""
    src = tmp_path / "raw.h5"
    assert ucf11.build_store(tree, src, size=(32, 24), workers=2, compression="raw", progress=False)["stored"] == 12
    argv = lambda out: [src, out, "--codec", "jpeg", "--quality", "90", "--workers", "2", "--quiet"]  # noqa: E731
    t0 = time.perf_counter()
    assert launcher.wait(launcher.start(argv(tmp_path / "ref.h5"), module="preprocess.transcode")) == 0
    span = time.perf_counter() - t0
    with FrameStore(tmp_path / "ref.h5") as s:
        ref = {cid: s.read(i) for i, cid in enumerate(s.index["clip_id"])}
        assert s.codec == "jpeg" and s.quality == 90 and len(ref) == 12
    for cid, frames in ref.items():  # the transcode holds the raw frames as JPEG-90 keeps them
        assert np.abs(frames.astype(int) - clean[cid]).mean() < 6
    rng = np.random.default_rng(22)
    out = tmp_path / "t.h5"
    for k in range(6):
        pid = launcher.start(argv(out), module="preprocess.transcode")
        time.sleep(rng.uniform(0, span))
        os.killpg(pid, signal.SIGKILL)
        launcher.wait(pid)
        assert_sound(out, ref)
    assert launcher.wait(launcher.start(argv(out), module="preprocess.transcode")) == 0
    assert_complete(out, ref)
