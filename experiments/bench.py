"""Benchmarks: `python -m experiments.bench SECTION [SECTION ...] [--quick] [--json]`.

Sections (more will be added): `tt` — frames/s of the TT input projection, a TTGRU train step, the original
TT-RNN scheme and a dense GRU on the UCF11 paper configuration. Compare figures within one run only (the
machine is shared). `--json` prints one JSON object per line (`name`, `value`, `unit`), else a markdown table.
"""

import argparse
import json
import sys
import time

import numpy as np

# UCF11 paper configuration (Yang et al. 2017): 160x120x3 frames, 4x4x4x4 hidden, ranks 4.
UCF11_N = (8, 20, 20, 18)
UCF11_M = (4, 4, 4, 4)
UCF11_R = (1, 4, 4, 4, 1)
UCF11_CLASSES = 11


def timed_interleaved(fns, repeats, warmup=1):
    """Best wall time (s) of each callable in `fns` (dict), timing them round-robin so that load from other
    processes on a shared machine hits all cases alike; `warmup` untimed calls each first (compilation)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


# ---- section: tt --------------------------------------------------------------------------------------------
def _tt_projection(x, seed=0, jit=False):
    """(a) TT projection alone (all frames at once, `tt_matmul` as the layers use it), fwd + bwd w.r.t. the
    cores; without XLA by default (faster here: TF's oneDNN matmuls beat XLA's CPU dot on these shapes)."""
    import tensorflow as tf

    from ttrnn import tt

    m = (UCF11_M[0] * 3,) + UCF11_M[1:]
    cores = [tf.Variable(c * 0.1) for c in tt.random_cores(UCF11_N, m, UCF11_R, seed=seed)]
    flat = tf.constant(x.reshape(-1, x.shape[-1]))

    @tf.function(jit_compile=jit)
    def step():
        with tf.GradientTape() as tape:
            y = tt.tt_matmul(tf.cast(flat, tf.float32), cores)
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, cores)

    return lambda: [g.numpy() for g in step()]


def _keras_train_step(layer, x, y, jit_compile="auto"):
    """A compiled Keras model (defaults as users get them: jit_compile="auto") and its train step."""
    import keras

    inp = keras.Input(x.shape[1:], dtype="uint8")
    out = keras.layers.Dense(UCF11_CLASSES, activation="softmax")(layer(inp))
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy",
                  jit_compile=jit_compile)
    return lambda: model.train_on_batch(x, y)


def _ttgru(time_chunk=None, xla=False):
    import ttrnn
    from ttrnn import recurrent

    chunk = recurrent.DEFAULT_TIME_CHUNK if time_chunk is None else time_chunk
    layer = ttrnn.TTGRU(UCF11_N, UCF11_M, UCF11_R, time_chunk=chunk)
    layer.supports_jit = xla or layer.supports_jit      # xla=True: override the layer's opt-out of XLA
    return layer


def _original_scheme(x, y, seed=0):
    """(c) Reference: the original Theano-era arrangement — the TT contraction runs inside every recurrent
    step (as TT_GRU.step did, core by core from the last, one 2-D matmul + transpose per core), no XLA;
    fwd + bwd + Adam update; same dense classifier head as the Keras models."""
    import keras
    import tensorflow as tf

    from ttrnn import tt

    units = int(np.prod(UCF11_M))
    m = (UCF11_M[0] * 3,) + UCF11_M[1:]
    cores = [tf.Variable(c * 0.1) for c in tt.random_cores(UCF11_N, m, UCF11_R, seed=seed)]
    rec = tf.Variable(keras.initializers.Orthogonal(seed=seed)((units, 3 * units)))
    bias = tf.Variable(tf.zeros(3 * units))
    dense = tf.Variable(tf.random.normal((units, UCF11_CLASSES), stddev=0.05, seed=seed))
    weights = cores + [rec, bias, dense]
    opt = keras.optimizers.Adam(1e-4)
    xs = tf.constant(np.swapaxes(x, 0, 1))                            # (T, B, D) uint8
    labels = tf.constant(y)

    def gru_step(h, x_t):
        zx = tt.tt_matmul(tf.cast(x_t, tf.float32), cores, max_inner=0) + bias   # core by core, no merging
        inner = h @ rec[:, :2 * units]
        z = tf.sigmoid(zx[:, :units] + inner[:, :units])
        r = tf.sigmoid(zx[:, units:2 * units] + inner[:, units:])
        hh = tf.tanh(zx[:, 2 * units:] + (r * h) @ rec[:, 2 * units:])
        return z * h + (1 - z) * hh

    @tf.function(jit_compile=False)
    def step():
        with tf.GradientTape() as tape:
            h = tf.scan(gru_step, xs, initializer=tf.zeros((xs.shape[1], units)))[-1]
            logits = h @ dense
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        opt.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return loss

    return lambda: float(step())


def _dense_gru():
    import keras

    return keras.layers.GRU(int(np.prod(UCF11_M)))


def bench_tt(args):
    """Frames/s on the UCF11 config: batch 16 of uint8 frames 8x20x20x18 = 57,600 → TT-GRU 4x4x4x4, ranks 4."""
    batch = 16
    frames = args.frames or (6 if args.quick else 100)
    repeats = args.repeats or (2 if args.quick else 3)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(batch, frames, int(np.prod(UCF11_N))), dtype=np.uint8)
    y = rng.integers(0, UCF11_CLASSES, size=(batch,))
    n = batch * frames
    cases = [
        ("tt_projection", lambda: _tt_projection(x)),
        ("ttgru_step", lambda: _keras_train_step(_ttgru(), x, y)),
        ("original_scheme", lambda: _original_scheme(x, y)),
        ("dense_gru", lambda: _keras_train_step(_dense_gru(), x, y)),
    ]
    if args.chunks:
        cases.append(("tt_projection_xla", lambda: _tt_projection(x, jit=True)))
        cases.append(("ttgru_step_xla", lambda: _keras_train_step(_ttgru(xla=True), x, y, jit_compile=True)))
    for chunk in args.chunks or []:
        cases.append((f"ttgru_step_chunk{chunk}", lambda c=chunk: _keras_train_step(_ttgru(c), x, y)))
    best = timed_interleaved({name: make() for name, make in cases}, repeats)
    for name, seconds in best.items():
        yield {"name": name, "value": round(n / seconds, 1), "unit": "frames/s"}


SECTIONS = {"tt": bench_tt}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__.splitlines()[0])
    p.add_argument("sections", nargs="+", choices=sorted(SECTIONS), help="what to benchmark")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.add_argument("--frames", type=int, default=None, help="tt: frames per clip (default 100, quick 6)")
    p.add_argument("--repeats", type=int, default=None, help="timed repetitions, best taken")
    p.add_argument("--chunks", type=lambda s: [int(v) for v in s.split(",")], default=None,
                   help="tt: also time TTGRU train steps with these time_chunk values, e.g. 0,1,4, "
                        "and the projection / TTGRU step forced under XLA")
    args = p.parse_args(argv)
    for name in ("frames", "repeats"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.chunks and min(args.chunks) < 0:
        p.error("--chunks values must be >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    rows = []
    for section in args.sections:
        for row in SECTIONS[section](args):
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    if not args.json:
        print("| name | value | unit |\n|---|---:|---|")
        for row in rows:
            print(f"| {row['name']} | {row['value']:,.1f} | {row['unit']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
