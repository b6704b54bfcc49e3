"""One TT-LSTM train step on each Keras backend, timed interleaved, and the peak memory of a long-clip step:
`python -m experiments.bench_backends [--backends tensorflow,jax,torch] [--frames 32] [--repeats 5] [--memory]`.

Each backend runs in a process of its own (`KERAS_BACKEND` is read when Keras is imported) that builds the model
once, warms it up, then runs one `model.train_on_batch` (Keras's own step on every backend) each time the parent
asks: the parent asks the backends in turn, round after round, so load from other processes on a shared machine
hits all alike; it reports the best frames/s of each backend and its ratio to TensorFlow's (and the per-round
median). Model: the UCF11 configuration (uint8 frames 8x20x20x18 = 57,600, TT-LSTM 4x4x4x4, ranks 4, pixels -
128), a softmax over 11 classes, Adam 1e-4, batch 16. `--memory`: instead, one process per backend in turn runs
one train step of the paper TT-GRU model (`ttrnn.models.paper_model`) at `--frames` (e.g. 1492) and reports its
peak RSS. The `experiments` CLIs themselves run on TensorFlow (tf.data, tf.distribute).
"""

import argparse
import json
import os
import resource
import sys

import numpy as np

from experiments.bench.common import interleave_workers, round_ratios, serve_steps, spawn_worker, worker_line
from tf_config.console import add_console_args, quiet_console
from ttrnn.cli import OneLineParser
from ttrnn.models.shapes import PAPER_SHAPES

BATCH = 16
CLASSES = 11
UCF11 = PAPER_SHAPES["ucf11"]
N, M, R = UCF11["tt_input_shape"], UCF11["tt_output_shape"], UCF11["tt_ranks"]


def _batch(frames):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 256, size=(BATCH, frames, int(np.prod(N))), dtype=np.uint8)
    return x, np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, BATCH)]


def _lstm_model(frames):
    import keras

    import ttrnn

    inp = keras.Input((frames, int(np.prod(N))), dtype="uint8")
    h = ttrnn.TTLSTM(N, M, R, input_shift=-128.0)(inp)
    model = keras.Model(inp, keras.layers.Dense(CLASSES, activation="softmax")(h))
    model.compile(keras.optimizers.Adam(1e-4), "categorical_crossentropy")
    return model


def _gru_model(frames):
    import keras

    from ttrnn.models import paper_model

    model = paper_model("ucf11", "gru", CLASSES, max_len=frames)            # frames (T, 120, 160, 3)
    model.compile(keras.optimizers.Adam(1e-4), "categorical_crossentropy")
    return model


def worker(frames, memory):
    """Build and warm up, then one train step per line on stdin (`experiments.bench.common.serve_steps`); with
    `memory`, one step of the paper TT-GRU model instead, printing the peak RSS."""
    x, y = _batch(frames)
    if memory:
        x = x.reshape(BATCH, frames, 120, 160, 3)
        model = _gru_model(frames)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
        model.train_on_batch(x, y)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
        print(json.dumps({"peak_gib": peak, "before_gib": before}), flush=True)
        return
    model = _lstm_model(frames)
    for _ in range(2):
        model.train_on_batch(x, y)
    serve_steps(lambda: model.train_on_batch(x, y))


def _spawn(backend, frames, memory):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    args = [sys.executable, "-m", "experiments.bench_backends", "--worker", "--frames", str(frames)]
    return spawn_worker(args + (["--memory"] if memory else []), env=env)


def bench_steps(backends, frames, repeats):
    """Rows `ttlstm_step_{backend}`: best frames/s of each backend's worker, asked in turn `repeats` rounds."""
    rounds, _ = interleave_workers({b: _spawn(b, frames, False) for b in backends}, repeats)
    frames_per_step = BATCH * frames
    for b in backends:
        best = min(r[b] for r in rounds)
        row = {"name": f"ttlstm_step_{b}", "value": round(frames_per_step / best, 1), "unit": "frames/s"}
        if b != "tensorflow" and "tensorflow" in backends:
            median, low, high = round_ratios(rounds, "tensorflow", b)
            row["unit"] += (f" ({min(r['tensorflow'] for r in rounds) / best:.2f}x tensorflow, per-round median "
                            f"{median:.2f}, range {low:.2f}-{high:.2f})")
        yield row


def bench_memory(backends, frames):
    for b in backends:                                     # one at a time: the machine's memory is shared
        proc = _spawn(b, frames, True)
        result = worker_line(proc, b)
        proc.wait()
        yield {"name": f"ttgru_step_peak_rss_{b}", "value": round(result["peak_gib"], 2),
               "unit": f"GiB (T = {frames}, batch {BATCH}; {result['before_gib']:.2f} GiB before the step)"}


def main(argv=None):
    parser = OneLineParser(prog="python -m experiments.bench_backends", description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch", help="comma-separated (default %(default)s)")
    parser.add_argument("--frames", type=int, default=None, help="T (default 32; --memory: 1492)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default %(default)s)")
    parser.add_argument("--memory", action="store_true", help="peak RSS of one paper TT-GRU step instead")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    add_console_args(parser)
    args = parser.parse_args(argv)
    quiet_console(args.verbose)          # TensorFlow's start-up lines, of this process and its workers
    frames = args.frames or (1492 if args.memory else 32)
    if args.worker:
        return worker(frames, args.memory)
    backends = [b for b in args.backends.split(",") if b]
    bad = [b for b in backends if b not in ("tensorflow", "jax", "torch")]
    if bad:
        parser.error(f"unknown backend {bad[0]!r} (choose from tensorflow, jax, torch)")
    rows = bench_memory(backends, frames) if args.memory else bench_steps(backends, frames, args.repeats)
    for row in rows:
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
