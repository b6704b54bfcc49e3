"""Small generated stores for the training tests, written straight through the store writer (no video codec)."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ttrnn.store import StoreWriter, store_params

UCF11_CLASSES = ["basketball", "biking", "diving", "golf_swing", "horse_riding", "soccer_juggling", "swing",
                 "tennis_swing", "trampoline_jumping", "volleyball_spiking", "walking"]
PREFIX = ["shooting", "biking", "diving", "golf", "riding", "juggle", "swing", "tennis", "jumping", "spiking",
          "walk_dog"]
REPO = Path(__file__).resolve().parents[1]
SPY = REPO / "tests" / "epoch_spy.py"   # the trainer with a spy on its checkpoints (helpers.run_spied)
# TensorFlow's C++ start-up lines (fd 2) that the quiet console (tf_config.console) keeps off stderr
STARTUP_MARKERS = ("absl::InitializeLog", "cudart_stub.cc", "cuda_platform.cc", "cpu_feature_guard.cc",
                   "To enable the following instructions", "XLA service", "Compiled cluster using XLA",
                   "exceeds 10% of free system memory")


def moving_square_clip(label, length, height, width, rng):
    """uint8 (T, H, W, 3): a bright square moving in a class-specific direction over a noisy dark background."""
    frames = rng.integers(0, 40, size=(length, height, width, 3), dtype=np.uint8)
    angle = 2 * np.pi * label / 11.0
    y0, x0 = height / 2, width / 2
    s = max(4, height // 5)
    for t in range(length):
        r = (t / max(1, length - 1) - 0.5) * 0.6
        y = int(np.clip(y0 + r * height * np.sin(angle), 0, height - s))
        x = int(np.clip(x0 + r * width * np.cos(angle), 0, width - s))
        frames[t, y:y + s, x:x + s] = 230
    return frames


def make_store(path, num_classes=4, groups=3, clips_per_group=2, lengths=(6, 12), size=(160, 120), seed=0,
               compression="lzf", dataset="ucf11"):
    """A UCF11-like store of moving squares; returns its path."""
    rng = np.random.default_rng(seed)
    width, height = size
    classes = UCF11_CLASSES[:num_classes]
    params = store_params(dataset, width, height, compression=compression, classes=classes)
    with StoreWriter(path, params) as writer:
        for c, name in enumerate(classes):
            for g in range(1, groups + 1):
                group = f"v_{PREFIX[c]}_{g:02d}"
                for k in range(1, clips_per_group + 1):
                    clip_id = f"{group}_{k:02d}"
                    length = int(rng.integers(lengths[0], lengths[1] + 1))
                    writer.add_clip(clip_id, moving_square_clip(c, length, height, width, rng), name, c, group,
                                    f"{name}/{group}/{clip_id}.mpg", 25.0)
    return Path(path)


# Runs a CLI's main() in a fresh interpreter and reports on stdout whether TensorFlow got imported.
DRIVER = """
import importlib, sys
module = importlib.import_module(sys.argv[1])
try:
    rc = module.main(sys.argv[2:])
except SystemExit as exc:
    rc = exc.code
print("TENSORFLOW_IMPORTED", "tensorflow" in sys.modules)
sys.exit(rc)
"""


def run_main(module, *args, env=None, cwd=REPO, timeout=120):
    """Run `module.main(args)` in a fresh interpreter with a bare environment (no TF_CONFIG, no SLURM); its stdout
    ends with "TENSORFLOW_IMPORTED True|False"."""
    full_env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-c", DRIVER, module, *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd)


def run_cli(module, *args, env=None, timeout=600, cwd=None):
    """Run `python -m module args...`; returns the CompletedProcess (text output)."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd or REPO)


def run_spied(*args, timeout=600):
    """`experiments.ucf11 args...` through tests/epoch_spy.py (the weights and optimizer after every epoch land in
    the run directory as spy-epoch*.npz and spy.json); returns the CompletedProcess."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(SPY), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)


def run_side_by_side(*commands, timeout=900):
    """Start every `python ARGS...` command at once and wait for all (independent runs: each spends much of its time
    on its own TensorFlow start and compilation); returns their CompletedProcesses in order. A command is a list
    such as ["-m", "experiments.ucf11", ...] or [SPY, ...] (tests/epoch_spy.py)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, *map(str, cmd)], cwd=REPO, env=env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for cmd in commands]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def spied_epochs(run_dir):
    """(spy.json as a dict, [weights arrays of epoch 0, 1, ...]) of a run made by `run_spied`."""
    import json
    run_dir = Path(run_dir)
    spy = json.loads((run_dir / "spy.json").read_text())
    epochs = []
    for k in range(len(spy["epochs"]) + 1):
        with np.load(run_dir / f"spy-epoch{k}.npz") as data:
            epochs.append({key: data[key] for key in data.files})
    return spy, epochs


def read_scalars(log_dir):
    """{tag: {step: value}} from every event file under log_dir, read with TensorFlow's own event reader; a step
    logged twice for one tag fails."""
    import tensorflow as tf
    points = {}
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                steps = points.setdefault(value.tag, {})
                assert event.step not in steps, f"{value.tag}: epoch {event.step} logged twice"
                steps[event.step] = float(tf.make_ndarray(value.tensor))
    return points


# TensorFlow's gRPC server failing to bind a port that `experiments.launch` picked (free_ports binds, releases, and
# another process may take the port before the worker binds it).
PORT_TAKEN = ("address already in use", "failed to add port", "could not start grpc server", "failed to bind")


def launch_workers(workers, command, retries=3, timeout=300, env=None):
    """`python -m experiments.launch --workers N -- command...`, started again on fresh ports (at most `retries`
    times) when a worker could not bind its port; returns the last CompletedProcess."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    full_env.pop("TF_CONFIG", None)
    full_env.update(env or {})
    for _ in range(retries):
        proc = subprocess.run([sys.executable, "-m", "experiments.launch", "--workers", str(workers), "--",
                               *map(str, command)], capture_output=True, text=True, env=full_env, timeout=timeout,
                              cwd=REPO)
        if proc.returncode == 0 or not any(m in proc.stderr.lower() for m in PORT_TAKEN):
            return proc
    return proc


def kill_after_line(proc, line_start, then=0.0, timeout=600):
    """SIGKILL the started `proc` (text stdout) `then` seconds after it prints a line starting with `line_start` (at
    once with then=0); a watchdog ends a run that hangs. Returns whether the line came."""
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    seen = False
    try:
        for line in proc.stdout:
            if line.startswith(line_start):
                seen = True
                time.sleep(then)
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        watchdog.cancel()
        proc.stdout.close()
    return seen
