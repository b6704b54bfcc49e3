"""What the bench sections share: timing, the trainer's step, the UCF11 length spread and bench stores, the trainer
CLI and its step run in subprocesses (with the store evicted from the page cache and the disk's own rate beside
them), the protocol that times cases living in separate processes, and the other tree `--against` names.

Timing rule of every section: compare figures within one run only. A section's cases are timed round-robin
(`timed_interleaved` in one process, `interleave_workers` across processes), best of N, so that load from other
processes on a shared machine hits all cases alike; where the spread matters a section also reports the per-round
ratios (`round_ratios`).

Imports: this module imports only the standard library and NumPy at module level (TensorFlow, Keras and ttrnn
inside the functions): the CLI rejects bad arguments before TensorFlow starts, and the `versions` worker imports
this module beside another tree's `ttrnn`.
"""

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

TREE = Path(__file__).resolve().parents[2]      # the tree this bench belongs to (its ttrnn, experiments, ...)
UCF11_CLASSES = 11
BATCH = 16                                      # the paper's UCF11 batch
PIXEL_SHIFT = -128.0                            # the paper's pixel scaling (ttrnn.layers.pixels, scaling="paper")
FRAME_SHAPE = (120, 160, 3)                     # UCF11 frames as the paper feeds them: 160x120 RGB, uint8
UCF11_TRAIN_CLIPS = 1280                        # the paper's 5-fold split of UCF11's 1,600 clips
UCF11_LENGTHS = (204, 1492, 483.7)              # min, max, mean of the paper's UCF11 clips (frames)


# ---- timing -------------------------------------------------------------------------------------------------
def timed_interleaved(fns, repeats, warmup=1, rounds=None):
    """Best wall time (s) of each callable in `fns` (dict), timing them round-robin so that load from other
    processes on a shared machine hits all cases alike; `warmup` untimed calls each first (compilation).
    `rounds` (a list, optional) receives each round's times as a dict."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        times = {}
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name] = time.perf_counter() - t0
            best[name] = min(best[name], times[name])
        if rounds is not None:
            rounds.append(times)
    return best


def round_ratios(rounds, slow, fast):
    """Per-round speed ratios `slow / fast` (each round times both back to back): median, min, max. The
    best-vs-best ratio favours whichever case is noisier (its best is luckier); the range shows what one figure
    is worth."""
    ratios = sorted(r[slow] / r[fast] for r in rounds)
    return float(np.median(ratios)), ratios[0], ratios[-1]


def trainer_step(model, batch_size):
    """The trainer's own step (`experiments.steps.make_train_step`: default strategy, Adam 1e-4, categorical
    cross-entropy plus the model's regularization losses): a tf.function `step((x, y_one_hot)) -> loss`."""
    import keras
    import tensorflow as tf

    from experiments.steps import make_train_step

    return make_train_step(tf.distribute.get_strategy(), model, keras.optimizers.Adam(1e-4),
                           keras.losses.CategoricalCrossentropy(reduction=None), batch_size)


# ---- cases in separate processes: one step per request, round-robin -----------------------------------------
def spawn_worker(cmd, env=None, cwd=TREE):
    """Start a worker `cmd` (see `serve_steps`) with pipes to its stdin and stdout; its stderr is ours."""
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def worker_line(proc, name):
    """The next JSON line of worker `name`, or a one-line error when it stopped."""
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"error: the {name} worker stopped (exit status {proc.wait()})")
    return json.loads(line)


def serve_steps(step, info=None):
    """The worker's side: print `{"ready": true, **info}`, then run `step()` once per line read from stdin and
    print `{"seconds": ...}` (its wall time) for each, until stdin closes. Build and warm the step up first."""
    print(json.dumps({"ready": True, **(info or {})}), flush=True)
    for _ in sys.stdin:
        t0 = time.perf_counter()
        step()
        print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)


def interleave_workers(procs, repeats):
    """The parent's side: wait for every worker of `procs` ({name: Popen}) to be ready, ask them for one step in
    turn, `repeats` rounds, then close them. Returns (rounds: [{name: seconds}], {name: its ready line})."""
    ready = {name: worker_line(proc, name) for name, proc in procs.items()}
    rounds = []
    for _ in range(repeats):
        times = {}
        for name, proc in procs.items():
            proc.stdin.write("step\n")
            proc.stdin.flush()
            times[name] = worker_line(proc, name)["seconds"]
        rounds.append(times)
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    return rounds, ready


# ---- another tree: a git revision of this repository or a folder ----------------------------------------------
def other_tree(against, dest):
    """(root, label) of the tree `--against` names: an existing folder holding `ttrnn/` (a checkout, an unpacked
    release, a site-packages folder) as it is; else `against` is a git revision of this repository, exported with
    `git archive` into the empty folder `dest` (reads the repository only: no worktree, branch or index change)."""
    if (Path(against) / "ttrnn" / "__init__.py").is_file():
        return Path(against).resolve(), str(against)
    git = ["git", "-C", str(TREE)]
    sha = subprocess.run([*git, "rev-parse", "--verify", "--short", f"{against}^{{commit}}"], capture_output=True,
                         text=True)
    if sha.returncode != 0:
        raise SystemExit(f"python -m experiments.bench: error: --against {against}: neither a folder holding "
                         f"ttrnn/ nor a revision of the git repository at {TREE}")
    tar = subprocess.run([*git, "archive", "--format=tar", sha.stdout.strip()], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
        archive.extractall(dest, filter="data")
    return Path(dest).resolve(), f"{against} ({sha.stdout.strip()})"


# ---- the UCF11 length spread and bench stores ----------------------------------------------------------------
def ucf11_lengths(count=UCF11_TRAIN_CLIPS, seed=0):
    """Clip lengths shaped like UCF11's: log-normal above the minimum, clipped to [204, 1492], mean 483.7
    (bisection on the log-mean); the shortest and longest clips are set to 204 and 1,492 exactly."""
    lo, hi, mean = UCF11_LENGTHS
    z = np.random.default_rng(seed).standard_normal(count)
    a, b = 0.0, 10.0
    for _ in range(60):
        mu = (a + b) / 2
        lengths = np.clip(lo + np.exp(mu + 0.9 * z), lo, hi)
        a, b = (mu, b) if lengths.mean() < mean else (a, mu)
    lengths = np.round(lengths).astype(int)
    lengths[np.argmin(lengths)], lengths[np.argmax(lengths)] = lo, hi
    return lengths


def make_store(path, lengths, seed=0, compression="lzf"):
    """A bench store at `path` with one clip of `preprocess.synthetic.moving_block_frames` per entry of
    `lengths` (11 classes, round-robin)."""
    from preprocess.synthetic import moving_block_frames
    from ttrnn.store import StoreWriter, store_params

    classes = [f"class{c:02d}" for c in range(UCF11_CLASSES)]
    rng = np.random.default_rng(seed)
    params = store_params("bench", FRAME_SHAPE[1], FRAME_SHAPE[0], compression=compression, classes=classes)
    with StoreWriter(path, params, overwrite=True) as writer:
        for i, t in enumerate(lengths):
            label = i % UCF11_CLASSES
            writer.add_clip(f"clip{i:05d}", moving_block_frames(int(t), rng), classes[label], label,
                            f"g{i % 5}", f"bench/clip{i:05d}.avi", 29.97)
    return path


def store_files(path):
    """The files of the store at `path`: the index file and, for schema 2, every clip's shard."""
    from ttrnn.store import FrameStore

    with FrameStore(path) as store:
        return list(dict.fromkeys([str(path)] + [store.shard_path(i) for i in range(len(store))]))


def store_bytes(path):
    """The store's bytes on disk: its index file and every shard (`FrameStore.nbytes`)."""
    from ttrnn.store import FrameStore

    with FrameStore(path) as store:
        return store.nbytes()


def drop_from_page_cache(path):
    """Evict the store's pages from the page cache (posix_fadvise DONTNEED on each of its files: no root needed,
    nothing else evicted), so the next read comes from the disk, as it does for a store larger than memory."""
    for name in store_files(path):
        fd = os.open(name, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def dd_rate(path, block=8 << 20):
    """Bytes/s of reading the store's files from a cold page cache one after the other in 8 MB requests (what
    `dd bs=8M` does per file): what the disk gives a sequential reader."""
    drop_from_page_cache(path)
    buf, total = bytearray(block), 0
    t0 = time.perf_counter()
    for name in store_files(path):
        with open(name, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
    return total / (time.perf_counter() - t0)


# ---- the trainer CLI and its step in subprocesses ------------------------------------------------------------
def trainer_argv(store, max_len, out, *extra):
    """The trainer command of the scale and epoch sections: TT-GRU, batch 16, one epoch, quiet."""
    return ["--data", str(Path(store).resolve()), "--model", "gru", "--use-tt", "--max-len", str(max_len),
            "--batch-size", str(BATCH), "--epochs", "1", "--quiet", "--out", str(out), *extra]


def run_trainer(store, max_len, out, extra=(), tree=TREE):
    """One epoch of `tree`'s trainer CLI (`python -m experiments.ucf11`, TT-GRU, batch 16) on `store` in a fresh
    process started in `tree` (its ttrnn, experiments and tf_config): (metrics.json, wall seconds)."""
    cmd = [sys.executable, "-m", "experiments.ucf11", *trainer_argv(store, max_len, out, *extra)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tree, env=dict(os.environ, PYTHONPATH=str(tree)))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"max-len {max_len}: the trainer in {tree} exited {proc.returncode}: {tail}")
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    return metrics, wall


def bench_child(*args):
    """The command line of a child `python -m experiments.bench ARGS` of this tree (see `spawn_worker`)."""
    return [sys.executable, "-m", "experiments.bench", *map(str, args)]


def epoch_step_child(argv, every=1):
    """`--epoch-step-child ARGV_JSON`: the trainer's own build and train step for that trainer command, run on
    in-memory batches of exactly the shapes (and order) of its first training epoch (`every`-th batch of it
    only: the same mix of lengths at a fraction of the time), twice: the first pass traces and compiles as the
    trainer's first epoch does, the second is warm. Prints JSON: the epoch's padded frames, the sample's, and the
    seconds of each pass (the step only: each batch is made a tensor before its step is timed)."""
    import tensorflow as tf

    import tf_config.cluster
    import tf_config.threads
    from experiments import train
    from experiments.ucf11 import SPEC

    args = train.build_parser(SPEC).parse_args(argv)
    tf_config.threads.apply_threads(args)
    r = train.build(args, SPEC, tf_config.cluster.make_strategy(args))
    step = train.train_step(r)
    feed = r.train_feed
    epoch = [(len(pos), feed.batch_length(pos)) for pos, _ in feed.epoch_plan(0)]
    shapes = epoch[::every]
    rng = np.random.default_rng(0)
    passes = []
    for _ in range(2):
        seconds = 0.0
        for b, t in shapes:
            x = tf.constant(np.broadcast_to(rng.integers(1, 256, (1, t, 1, 1, 3), dtype=np.uint8),
                                            (b, t) + FRAME_SHAPE))
            y = tf.constant(np.eye(len(r.store.classes), dtype=np.float32)[np.arange(b) % len(r.store.classes)])
            t0 = time.perf_counter()
            float(step((x, y))["loss"])
            seconds += time.perf_counter() - t0
        passes.append(seconds)
    r.reader.close()
    print(json.dumps({"padded_frames": int(sum(b * t for b, t in epoch)),
                      "sample_frames": int(sum(b * t for b, t in shapes)), "cold_s": passes[0], "warm_s": passes[1]}))


def run_step_child(argv, every=1):
    """`epoch_step_child(argv, every)` in a fresh process (the trainer's allocator and threads): its JSON."""
    cmd = bench_child("--epoch-step-child", json.dumps(argv), "--step-every", every)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=TREE)
    if proc.returncode != 0:
        raise RuntimeError(f"epoch step child failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
