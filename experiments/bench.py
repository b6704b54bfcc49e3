"""Benchmarks: `python -m experiments.bench [SECTION ...] [--quick] [--json]` (no section = all).

Sections (compare figures within one run only: the machine is shared, cases are timed round-robin, best of N):
- `tt`: frames/s of the TT input projection, a TT-GRU train step (the trainer's step on tensors in memory), the
  original TT-RNN scheme and a dense GRU on the UCF11 paper configuration (batch 16, uint8 frames 160x120x3,
  pixels - 128; T = 100, `--quick` 16), the TT-GRU step with the opt-in bfloat16 first contraction, one LSTM
  train step per kernel format (tt, tr, bt, cp, ht at ~3.3 k kernel parameters) and its ratio to TT-LSTM's; the sgemm
  rate of this machine and the TT-GRU step's fraction of the FLOP floor:
  `fraction = ttgru_step frames/s x 9.73 MFLOP / sgemm FLOP/s`, 9.73 MFLOP = the minimum forward + backward of
  the TT projection of one frame (`tt_train_flops`: core by core from the last core, 3.86 M forward; backward two
  products per contraction except the first, whose input is the frames and needs no gradient; recurrence not
  counted). Next to the
  best-vs-best ratio of the TT-GRU step to the original scheme, the median and range of the per-round ratios
  (`ttgru_step_vs_original_scheme_per_round`): on a shared machine the spread shows how far one figure can be trusted.
- `store`: frames/s reading clips with the training reader (`ttrnn.data.ReaderPool`, 1 and N worker processes)
  from a bench-generated store, and decode frames/s of preprocessing (`preprocess.video.decode`).
- `train`: end-to-end training frames/s from a bench-generated store (UCF11 length distribution scaled down,
  `BatchFeed` + worker processes + `tf.data`, the paper TT-GRU model, the trainer's step) vs the same model's
  train step on the same batches held in memory; padding waste with and without bucketing; peak RSS (in
  subprocesses) vs clip count and of one train step at max-len 450, 900 and 1,492 (batch 16), with its slope
  per padded time step.
- `scale` (only when named: ~30 min): a real training epoch and evaluation of the trainer CLI at max-len 450 and
  1,492 on a UCF11-size store (1,600 clips, UCF11 lengths, ~45 GB; written once at `--store`), with peak RSS.
- `epoch` (only when named: ~10 min): a real trainer epoch (TT-GRU, batch 16, `--max-lens`' first, default 450)
  on a store larger than a memory budget (`--budget-gb`, default 4: UCF11's length spread, 1.25x the budget),
  evicted from the page cache before each run, for the reader/allocator arrangement before issue 22 (`plain`) and
  the default (`streaming`), interleaved (`--repeats` rounds, the faster run of each kept): end-to-end padded
  frames/s and its ratio to the trainer's own step on the same padded frames in memory (same run), the share of
  system CPU, page faults/s and disk bytes/s during the epoch (the trainer's `epoch_usage`) against `dd`'s rate
  on the same store, evaluation seconds and peak RSS.
`--quick` is a smoke pass (every section runs and its arithmetic holds; the figures mean nothing): the smallest
sizes that still exercise each section's code, one timed repeat after the tracing call, in `tt` the headline cases
only (no bfloat16 step, no per-format LSTM rows; T = 2, sgemm 512x512), `versions` at T = 2, `store` 4 clips of 8
frames, `train` 16 clips of 2-14 frames and its RSS jobs (one stream, two step lengths) in one child process.
`--json` prints one JSON object per line (`name`, `value`, `unit`, `section`), else a markdown table.
"""

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from experiments.families.rnn import FORMATS  # LSTM train-step rows at ~3.3 k kernel parameters each
from experiments.report import peak_rss_mb
from tf_config.console import add_console_args, quiet_console
from tf_config.memory import add_memory_args, apply_memory
from ttrnn.cli import OneLineParser

UCF11_CLASSES = 11
PIXEL_SHIFT = -128.0            # the paper's pixel scaling (ttrnn.layers.pixels, scaling="paper")
SGEMM_N = 2048                  # --quick: QUICK_SGEMM_N (the rate of a smaller product: a smoke figure)
QUICK_SGEMM_N = 512
SGEMM_REPS = 4


def paper_tt(dataset="ucf11"):
    """(input modes n, hidden modes m, ranks r) of the paper's TT layer on `dataset` (ttrnn.models.PAPER_SHAPES;
    UCF11: 160x120x3 frames as 8x20x20x18, 4x4x4x4 hidden, ranks 4)."""
    from ttrnn.models.shapes import PAPER_SHAPES
    shapes = PAPER_SHAPES[dataset]
    return shapes["tt_input_shape"], shapes["tt_output_shape"], shapes["tt_ranks"]


def gates_first(m, gates=3):
    """Hidden modes with the gates folded into the first mode (the GRU's kernel: x3, the LSTM's: x4)."""
    return (m[0] * gates,) + tuple(m[1:])


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
    """Per-round speed ratios `slow / fast` (each round times both back to back): median, min, max."""
    ratios = sorted(r[slow] / r[fast] for r in rounds)
    return float(np.median(ratios)), ratios[0], ratios[-1]


# ---- section: tt --------------------------------------------------------------------------------------------
def _tt_projection(x, seed=0, jit=False):
    """(a) TT projection alone (all frames at once, `tt_matmul` as the layers use it), fwd + bwd w.r.t. the
    cores; without XLA by default (faster here: TF's oneDNN matmuls beat XLA's CPU dot on these shapes)."""
    import tensorflow as tf

    from ttrnn.formats import tt

    n, m, r = paper_tt()
    cores = [tf.Variable(c * 0.1) for c in tt.random_cores(n, gates_first(m), r, seed=seed)]
    flat = tf.constant(x.reshape(-1, x.shape[-1]))

    @tf.function(jit_compile=jit)
    def step():
        with tf.GradientTape() as tape:
            y = tt.tt_matmul(flat, cores, shift=PIXEL_SHIFT)       # uint8 in, cast inside
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, cores)

    return lambda: [g.numpy() for g in step()]


def _train_step(model, batch_size):
    """The trainer's own step (`experiments.steps.make_train_step`: default strategy, Adam 1e-4, categorical
    cross-entropy plus the model's regularization losses): a tf.function `step((x, y_one_hot)) -> loss`."""
    import keras
    import tensorflow as tf

    from experiments.steps import make_train_step

    return make_train_step(tf.distribute.get_strategy(), model, keras.optimizers.Adam(1e-4),
                                   keras.losses.CategoricalCrossentropy(reduction=None), batch_size)


def _keras_train_step(layer, x, y, jit_compile="auto"):
    """`layer` -> Dense softmax head as a Keras model, trained by the trainer's own step (`_train_step`) on
    tensors already in memory, as the original scheme gets them. `jit_compile=True` wraps that step in XLA
    (models with TT layers then need `layer.supports_jit = True`)."""
    import keras
    import tensorflow as tf

    inp = keras.Input(x.shape[1:], dtype="uint8")
    out = keras.layers.Dense(UCF11_CLASSES, activation="softmax")(layer(inp))
    model = keras.Model(inp, out)
    step = _train_step(model, len(x))
    if jit_compile is True:
        step = tf.function(step.python_function, jit_compile=True)
    batch = (tf.constant(x), tf.constant(np.eye(UCF11_CLASSES, dtype=np.float32)[y]))
    return lambda: float(step(batch))


def _ttgru(time_chunk=None, xla=False, projection_dtype=None):
    import ttrnn
    from ttrnn.layers import recurrent

    chunk = recurrent.DEFAULT_TIME_CHUNK if time_chunk is None else time_chunk
    layer = ttrnn.TTGRU(*paper_tt(), time_chunk=chunk, input_shift=PIXEL_SHIFT,
                        projection_dtype=projection_dtype)
    layer.supports_jit = xla or layer.supports_jit      # xla=True: override the layer's opt-out of XLA
    return layer


def _format_lstm(fmt):
    """The UCF11 LSTM with a `fmt` input kernel: TT at the paper's ranks, others at ttrnn.formats.DEFAULT_RANKS."""
    from ttrnn.models import tensor_rnn_layer

    n, m, r = paper_tt()
    return tensor_rnn_layer(fmt, "lstm", n, m, tt_ranks=r, input_shift=PIXEL_SHIFT)


def _original_scheme(x, y, seed=0):
    """(c) Reference: the original Theano-era arrangement — the TT contraction runs inside every recurrent
    step (as TT_GRU.step did, core by core from the last, one 2-D matmul + transpose per core), no XLA;
    fwd + bwd + Adam update; same dense classifier head as the Keras models."""
    import keras
    import tensorflow as tf

    from ttrnn.formats import tt

    n, m, r = paper_tt()
    units = int(np.prod(m))
    cores = [tf.Variable(c * 0.1) for c in tt.random_cores(n, gates_first(m), r, seed=seed)]
    rec = tf.Variable(keras.initializers.Orthogonal(seed=seed)((units, 3 * units)))
    bias = tf.Variable(tf.zeros(3 * units))
    dense = tf.Variable(tf.random.normal((units, UCF11_CLASSES), stddev=0.05, seed=seed))
    weights = cores + [rec, bias, dense]
    opt = keras.optimizers.Adam(1e-4)
    xs = tf.constant(np.swapaxes(x, 0, 1))                            # (T, B, D) uint8
    labels = tf.constant(y)

    def gru_step(h, x_t):
        zx = tt.tt_matmul(tf.cast(x_t, tf.float32) + PIXEL_SHIFT, cores, max_inner=0) + bias   # core by core
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


def _sgemm(n=SGEMM_N, reps=SGEMM_REPS):
    """`reps` float32 (n, n) @ (n, n) matmuls (TF / oneDNN, all cores): the machine's sgemm rate."""
    import tensorflow as tf

    a = tf.random.normal((n, n), seed=1)
    b = tf.random.normal((n, n), stddev=n ** -0.5, seed=2)

    @tf.function
    def run():
        out = a
        for _ in range(reps):               # a chain, so no two matmuls are the same expression
            out = tf.matmul(out, b)
        return out

    return lambda: run().numpy()


def tt_forward_flops(n, m, r):
    """FLOPs of `x @ full(cores)` for one input row contracted core by core from the last (no merging):
    sum over cores of 2 x (values entering the step) x r_k m_k. UCF11 TT-GRU (m_0 x 3): 3.86 M."""
    return sum(tt_step_flops(n, m, r))


def tt_step_flops(n, m, r):
    """FLOPs of each contraction of one input row, last core first, core by core (the cheapest order for image
    frames: the last modes are large and r_d = 1; merging cores or starting from the first only adds FLOPs)."""
    size, steps = int(np.prod(n)), []
    for k in range(len(n) - 1, -1, -1):
        steps.append(2 * size * r[k] * m[k])
        size = size // (n[k] * r[k + 1]) * r[k] * m[k]
    return steps


def tt_train_flops(n, m, r):
    """Minimum FLOPs per frame of the TT projection's forward + backward pass: forward one product per
    contraction; backward two (input and core gradient) for every contraction but the first, which reads the
    frames: frames need no gradient, so it has only its core gradient. UCF11 TT-GRU: 3.86 + 5.87 = 9.73 M."""
    steps = tt_step_flops(n, m, r)
    return sum(steps) + steps[0] + 2 * sum(steps[1:])


def _dense_gru():
    import keras

    return keras.layers.GRU(int(np.prod(paper_tt()[1])))


def bench_tt(args):
    """Frames/s on the UCF11 config: batch 16 of uint8 frames 8x20x20x18 = 57,600 → TT-GRU 4x4x4x4, ranks 4."""
    batch = 16
    frames = args.frames or (2 if args.quick else 100)      # quick: a smoke pass (traces dominate, not frames)
    repeats = args.repeats or (1 if args.quick else 5)
    sgemm_n = QUICK_SGEMM_N if args.quick else SGEMM_N
    rng = np.random.default_rng(0)
    tt_n, tt_m, tt_r = paper_tt()
    x = rng.integers(0, 256, size=(batch, frames, int(np.prod(tt_n))), dtype=np.uint8)
    y = rng.integers(0, UCF11_CLASSES, size=(batch,))
    n = batch * frames
    cases = [
        ("tt_projection", lambda: _tt_projection(x)),
        ("ttgru_step", lambda: _keras_train_step(_ttgru(), x, y)),
        ("original_scheme", lambda: _original_scheme(x, y)),
        ("dense_gru", lambda: _keras_train_step(_dense_gru(), x, y)),
        ("sgemm", lambda: _sgemm(sgemm_n)),
    ]
    if not args.quick:  # --quick is a smoke pass: the headline cases only (each case is a model build + trace)
        cases += [("ttgru_step_bf16", lambda: _keras_train_step(_ttgru(projection_dtype="bfloat16"), x, y))]
        cases += [(f"{fmt}lstm_step", lambda f=fmt: _keras_train_step(_format_lstm(f), x, y)) for fmt in FORMATS]
    if args.chunks:
        cases.append(("tt_projection_xla", lambda: _tt_projection(x, jit=True)))
        cases.append(("ttgru_step_xla", lambda: _keras_train_step(_ttgru(xla=True), x, y, jit_compile=True)))
    for chunk in args.chunks or []:
        cases.append((f"ttgru_step_chunk{chunk}", lambda c=chunk: _keras_train_step(_ttgru(c), x, y)))
    rounds = []
    best = timed_interleaved({name: make() for name, make in cases}, repeats, rounds=rounds)
    sgemm = SGEMM_REPS * 2 * sgemm_n ** 3 / best.pop("sgemm")
    fps = {name: n / seconds for name, seconds in best.items()}
    for name, value in fps.items():
        yield {"name": name, "value": round(value, 1), "unit": "frames/s"}
    flops = tt_forward_flops(tt_n, gates_first(tt_m), tt_r)
    yield {"name": "sgemm", "value": round(sgemm / 1e9, 1), "unit": f"GFLOP/s ({sgemm_n}x{sgemm_n} float32)"}
    yield {"name": "ttgru_step_vs_original_scheme", "value": round(fps["ttgru_step"] / fps["original_scheme"], 2),
           "unit": "x"}
    median, low, high = round_ratios(rounds, "original_scheme", "ttgru_step")
    yield {"name": "ttgru_step_vs_original_scheme_per_round", "value": round(median, 2),
           "unit": f"x (median of {len(rounds)} rounds, range {low:.2f}-{high:.2f}: the machine's noise)"}
    if "ttgru_step_bf16" in fps:
        yield {"name": "ttgru_step_bf16_vs_original_scheme",
               "value": round(fps["ttgru_step_bf16"] / fps["original_scheme"], 2),
               "unit": "x (projection_dtype='bfloat16' vs the float32 original scheme)"}
    train_flops = tt_train_flops(tt_n, gates_first(tt_m), tt_r)
    yield {"name": "ttgru_step_flop_fraction", "value": round(fps["ttgru_step"] * train_flops / sgemm, 3),
           "unit": f"of sgemm ({train_flops / 1e6:.2f} MFLOP/frame: forward {flops / 1e6:.2f} + backward "
                   f"{(train_flops - flops) / 1e6:.2f}, the first contraction's backward only its core gradient)"}
    for fmt in FORMATS[1:] if "ttlstm_step" in fps else ():
        params = _format_lstm(fmt).kernel_param_count
        yield {"name": f"{fmt}lstm_step_vs_ttlstm_step", "value": round(fps[f"{fmt}lstm_step"] / fps["ttlstm_step"], 2),
               "unit": f"x ({params:,} kernel parameters vs TT-LSTM 3,360)"}
    RESULTS["ttgru_step"] = fps["ttgru_step"]


RESULTS = {}      # figures later sections reuse


# ---- section: versions --------------------------------------------------------------------------------------
def _paper_model_step(x, y, uint8_in=True, time_chunk=0, fuse_cast=True, three_matmuls=False,
                      recurrence="fused"):
    """The paper TT-GRU classifier's train step (ttrnn.models, dropout 0.25 / 0.25), traced once here with the
    arrangement of one version of docs/performance.md's table. `three_matmuls=True` reproduces the cost of the
    versions before v4, whose cell ran one recurrent matmul per gate although the paper preset's gates share one
    dropout mask: here with one mask per gate (same FLOPs and ops; different masks)."""
    import keras
    import tensorflow as tf

    from ttrnn import models
    from ttrnn.layers.pixels import PixelScaling

    model = models.paper_model("ucf11", "gru", UCF11_CLASSES)
    layer = model.get_layer("input_to_hidden")
    layer.time_chunk = time_chunk
    layer.recurrence = recurrence
    layer.shared_recurrent_dropout = not three_matmuls
    if not uint8_in:          # v0: the whole padded batch cast to float32 before the TT layer
        frames = keras.Input(model.input.shape[1:], dtype="uint8")
        layer.input_shift = 0.0
        h = layer(PixelScaling("paper", name="pixels_float")(frames))
        model = keras.Model(frames, model.get_layer("classifier")(h))
    step = _train_step(model, len(x))
    batch = (tf.constant(x), tf.constant(np.eye(UCF11_CLASSES, dtype=np.float32)[y]))
    with contextlib.nullcontext() if fuse_cast else _unfused_cast():
        step(batch)                                         # trace under this version's settings
    return lambda: float(step(batch))


def _unfused_cast():
    """The versions before the fused cast (v0-v1): the library's `cast_affine` patched, while a step is traced,
    to plain Cast, Mul and Add ops (the library has no switch for it)."""
    from unittest import mock

    from keras import ops

    from ttrnn.formats import common

    def plain(x, dtype, scale, shift):
        return common.affine(ops.cast(x, dtype), scale, shift)

    return mock.patch.object(common, "cast_affine", plain)


_OLD = dict(three_matmuls=True, recurrence="keras")
VERSIONS = [
    ("v0_float_batch_chunk2", dict(uint8_in=False, time_chunk=2, fuse_cast=False, **_OLD)),
    ("v1_uint8_chunk2", dict(uint8_in=True, time_chunk=2, fuse_cast=False, **_OLD)),
    ("v2_uint8_fused_cast_chunk2", dict(uint8_in=True, time_chunk=2, fuse_cast=True, **_OLD)),
    ("v3_uint8_fused_cast_all_frames", dict(uint8_in=True, time_chunk=0, fuse_cast=True, **_OLD)),
    ("v4_one_matmul_shared_mask", dict(uint8_in=True, time_chunk=0, fuse_cast=True, recurrence="keras")),
    ("v5_fused_recurrence", dict(uint8_in=True, time_chunk=0, fuse_cast=True)),
]


def bench_versions(args):
    """The paper TT-GRU model's train step (batch 16, T frames) in each version of docs/performance.md."""
    batch = 16
    frames = args.frames or (2 if args.quick else 100)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 256, size=(batch, frames) + FRAME_SHAPE, dtype=np.uint8)
    y = rng.integers(0, UCF11_CLASSES, size=(batch,))
    fns = {name: _paper_model_step(x, y, **kw) for name, kw in VERSIONS}
    best = timed_interleaved(fns, args.repeats or (1 if args.quick else 3), warmup=0)
    base = batch * frames / best[VERSIONS[0][0]]
    for name, _ in VERSIONS:
        fps = batch * frames / best[name]
        yield {"name": name, "value": round(fps, 1), "unit": f"frames/s ({fps / base:.2f}x v0)"}


# ---- shared: bench stores and the UCF11 length distribution --------------------------------------------------
UCF11_TRAIN_CLIPS = 1280
UCF11_LENGTHS = (204, 1492, 483.7)      # min, max, mean of the paper's UCF11 clips (frames)
FRAME_SHAPE = (120, 160, 3)


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


def synthetic_frames(t, rng):
    """uint8 (t, 120, 160, 3) frames that compress like video: smooth background, a moving block, mild noise."""
    h, w, _ = FRAME_SHAPE
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([(xx * rng.uniform(0.5, 1.5) + yy * rng.uniform(0.5, 1.5) + 60 * c) % 256 for c in range(3)], -1)
    frames = np.empty((t,) + FRAME_SHAPE, np.uint8)
    for i in range(t):
        img = bg.copy()
        cx, cy = int(20 + (i * 3) % (w - 40)), int(20 + (i * 2) % (h - 40))
        img[cy - 15:cy + 15, cx - 15:cx + 15] = 255
        img += rng.integers(0, 8, img.shape)
        frames[i] = np.clip(img, 1, 255)        # no all-zero frame: zero frames are padding
    return frames


def make_store(path, lengths, seed=0, compression="lzf"):
    """A bench store at `path` with one clip per entry of `lengths` (11 classes, round-robin)."""
    from ttrnn.store import StoreWriter, store_params

    classes = [f"class{c:02d}" for c in range(UCF11_CLASSES)]
    rng = np.random.default_rng(seed)
    params = store_params("bench", FRAME_SHAPE[1], FRAME_SHAPE[0], compression=compression, classes=classes)
    with StoreWriter(path, params, overwrite=True) as writer:
        for i, t in enumerate(lengths):
            label = i % UCF11_CLASSES
            writer.add_clip(f"clip{i:05d}", synthetic_frames(int(t), rng), classes[label], label,
                            f"g{i % 5}", f"bench/clip{i:05d}.avi", 29.97)
    return path


# ---- section: store -----------------------------------------------------------------------------------------
STORE_CODECS = (("raw", None), ("lzf", None), ("gzip", None), ("jpeg", 95), ("jpeg", 90))


def bench_store(args):
    """Reader frames/s (training reader, 1 and N processes), decode frames/s (preprocess.video.decode), then per
    codec: bytes per frame and ratio to raw, encode and decode frames/s on one core, mean absolute error vs raw
    (`--videos DIR`: on those clips), the JPEG decoders side by side, and H.264 through PyAV where installed."""
    import tempfile

    from preprocess import synthetic, video
    from ttrnn import data

    clips, frames = (4, 8) if args.quick else (24, 120)
    workers = max(2, data.default_workers())
    plans = [data.ClipPlan(i, max_len=None) for i in range(clips)]
    pools, cases = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for compression in ("lzf", "none"):
            path = make_store(f"{tmp}/{compression}.h5", [frames] * clips, compression=compression)
            for w in (0, 1, workers):                       # 0 = in the training process
                pool = data.ReaderPool(path, workers=w)
                list(pool.imap(plans[:1], 1))               # start the workers before timing
                pools.append(pool)

                def run(pool=pool, w=w):
                    for _ in pool.imap(plans, 2 * max(1, w)):
                        pass
                cases[f"store_read_{compression}_{w}_workers"] = run
        clip = synthetic_frames(frames, np.random.default_rng(1))[..., ::-1]
        avi = f"{tmp}/clip.avi"
        synthetic.write_video(avi, np.ascontiguousarray(clip))
        cases["decode"] = lambda: video.decode(avi)
        best = timed_interleaved(cases, args.repeats or (1 if args.quick else 3), warmup=0)
        for pool in pools:
            pool.close()
        for name, seconds in best.items():
            n = frames if name == "decode" else clips * frames
            yield {"name": name, "value": round(n / seconds, 1), "unit": "frames/s"}
        yield from bench_codecs(codec_clips(args.videos, frames), tmp, args.repeats or (1 if args.quick else 3))


def codec_clips(videos, frames):
    """The clips the codec figures are measured on: `--videos DIR`'s files decoded at 160x120 (all frames),
    else 4 bench-generated clips of `frames` frames."""
    from preprocess.ingest import walk_videos
    from preprocess.video import decode
    if videos:
        paths = walk_videos(videos)
        if not paths:
            raise SystemExit(f"python -m experiments.bench: error: no videos in {videos}")
        return [decode(p, size=(FRAME_SHAPE[1], FRAME_SHAPE[0]))[0] for p in paths]
    rng = np.random.default_rng(3)
    return [synthetic_frames(frames, rng) for _ in range(4)]


def bench_codecs(clips, tmp, repeats):
    """Rows per codec of STORE_CODECS (+ h264 when PyAV is importable) on `clips` [uint8 (T, 120, 160, 3)]."""
    import time

    from ttrnn.store import FrameStore, StoreWriter, store_params
    n = sum(len(c) for c in clips)
    raw_bytes = n * int(np.prod(FRAME_SHAPE))
    results = {}
    for codec, quality in STORE_CODECS:
        name = codec if quality is None else f"{codec}{quality}"
        path = f"{tmp}/codec_{name}.h5"
        enc = dec = float("inf")
        for _ in range(repeats):  # best of N: the machine is shared
            t0 = time.process_time()
            with StoreWriter(path, store_params("bench", FRAME_SHAPE[1], FRAME_SHAPE[0], compression=codec,
                                                classes=["c"], quality=quality), overwrite=True) as w:
                for i, c in enumerate(clips):
                    w.add_clip(f"c{i:03d}", c, "c", 0, "", f"c{i}.avi", 25.0)
            enc = min(enc, time.process_time() - t0)
            with FrameStore(path) as st:
                t0 = time.process_time()
                got = [st.read(i) for i in range(len(st))]
                dec = min(dec, time.process_time() - t0)
                size = st.nbytes()
        mae = float(np.mean([np.abs(g.astype(np.int16) - c).mean() for g, c in zip(got, clips)]))
        results[name] = (size, enc, dec, mae)
    h264 = _h264_figures(clips, repeats)
    if h264:
        results["h264"] = h264
    for name, (size, enc, dec, mae) in results.items():
        yield {"name": f"codec_{name}_bytes_per_frame", "value": round(size / n, 1),
               "unit": f"bytes/frame ({raw_bytes / size:.2f}x smaller than raw)"}
        yield {"name": f"codec_{name}_encode", "value": round(n / enc, 1), "unit": "frames/s per core (CPU time)"}
        yield {"name": f"codec_{name}_decode", "value": round(n / dec, 1), "unit": "frames/s per core (CPU time)"}
        yield {"name": f"codec_{name}_mae", "value": round(mae, 3), "unit": "levels, mean |frame - raw|"}
    yield from _jpeg_decoders(clips, repeats)


def _jpeg_decoders(clips, repeats):
    """The JPEG-95 frames decoded by OpenCV (imdecode + BGR->RGB) and by simplejpeg (into the row), interleaved."""
    import time

    import cv2

    from ttrnn.store import decode_jpeg_into, encode_frames
    frames = np.concatenate(clips)
    coded = encode_frames(frames, "jpeg", 95)
    off = coded["offsets"]
    pieces = [coded["bytes"][off[t]:off[t + 1]] for t in range(len(frames))]
    out = np.empty(FRAME_SHAPE, np.uint8)

    def opencv():
        for p in pieces:
            cv2.cvtColor(cv2.imdecode(p, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB, dst=out)

    def simplejpeg():
        for p in pieces:
            decode_jpeg_into(p, out)
    best = {"opencv": float("inf"), "simplejpeg": float("inf")}
    for _ in range(repeats + 2):  # interleaved, CPU time: on a loaded machine wall time measures the others
        for name, fn in (("opencv", opencv), ("simplejpeg", simplejpeg)):
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    for name, seconds in best.items():
        yield {"name": f"jpeg_decoder_{name}", "value": round(len(pieces) / seconds, 1),
               "unit": f"frames/s per core, CPU time ({best['opencv'] / seconds:.2f}x OpenCV's)"}


def _h264_figures(clips, repeats, crf=15):
    """(bytes, encode CPU s, decode CPU s, MAE) of each clip as an H.264 stream (PyAV, libx264 at `crf`,
    yuv420p, GOP 12), or None when PyAV is not installed (it is optional: measured, not a store codec)."""
    try:
        import av
    except ImportError:
        return None
    import io
    import time
    size, enc, dec, errs = 0, float("inf"), float("inf"), []
    for _ in range(repeats):
        t0, blobs = time.process_time(), []
        for c in clips:
            buf = io.BytesIO()
            with av.open(buf, "w", format="mp4") as box:
                st = box.add_stream("libx264", rate=25, options={"crf": str(crf), "g": "12", "threads": "1"})
                st.height, st.width, st.pix_fmt = c.shape[1], c.shape[2], "yuv420p"
                for f in c:
                    box.mux(st.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
                box.mux(st.encode())
            blobs.append(buf.getvalue())
        enc = min(enc, time.process_time() - t0)
        t0, got = time.process_time(), []
        for b in blobs:
            with av.open(io.BytesIO(b)) as box:
                box.streams.video[0].thread_count = 1
                got.append(np.stack([f.to_ndarray(format="rgb24") for f in box.decode(video=0)]))
        dec = min(dec, time.process_time() - t0)
    size = sum(len(b) for b in blobs)
    errs = [np.abs(g.astype(np.int16) - c).mean() for g, c in zip(got, clips)]
    return size, enc, dec, float(np.mean(errs))


# ---- section: train -----------------------------------------------------------------------------------------
def bench_train(args):
    """End-to-end training from a store vs in-memory, padding waste, peak RSS."""
    import tempfile

    import tensorflow as tf

    from ttrnn import data, models
    from ttrnn.store import FrameStore

    scale = 100 if args.quick else 8           # quick: 16 clips of 2-14 frames, one batch an epoch
    clips = 16 if args.quick else 48
    lengths = np.maximum(2, ucf11_lengths(clips, seed=1) // scale)
    max_len = UCF11_LENGTHS[1] // scale
    batch = 16
    spec = data.InputSpec(max_len=max_len, pad_multiple=16 if not args.quick else 4)
    # quick: one stream job and two step lengths (the fewest that give a slope), in one child started now
    clip_counts, frames = ((8,), 8) if args.quick else ((16, 64), 120)
    rss_lengths = (16, 64) if args.quick else (450, 900, 1492)
    jobs = [["stream", count, frames] for count in clip_counts] + [["step", length, batch] for length in rss_lengths]
    rss_peaks = start_rss_children(jobs, together=args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        stores = {c: FrameStore(make_store(f"{tmp}/train_{c}.h5", lengths, compression=c))
                  for c in ("lzf", "none")}
        model = models.paper_model("ucf11", "gru", UCF11_CLASSES)
        step = _train_step(model, batch)
        feeds, readers = {}, []
        for compression, store in stores.items():
            for w in sorted({0, 2, data.default_workers()}):    # 0 = read in the tf.data thread
                reader = data.ReaderPool(store.path, workers=w)
                readers.append(reader)
                feeds[f"{compression}_store_{w}_workers"] = data.BatchFeed(
                    store, np.arange(len(store)), spec, batch, training=True, seed=0, reader=reader)
        feed = next(iter(feeds.values()))
        real = int(feed.lengths.sum())
        in_memory = [(tf.constant(x), tf.constant(y)) for x, y in feed.batches(0)]
        padded = sum(int(np.prod(x.shape[:2])) for x, _ in in_memory)
        for x, y in in_memory:                              # trace every padded length once
            step((x, y))

        def from_store(dataset):
            def run():
                for _ in data.map_batches(dataset, step):    # as the trainer consumes its batches
                    pass
            return run

        def from_memory():
            for x, y in in_memory:
                step((x, y))

        cases = {name: from_store(f.dataset(lambda: 0)) for name, f in feeds.items()}
        cases["memory"] = from_memory
        best = timed_interleaved(cases, args.repeats or (1 if args.quick else 3), warmup=1)
        for reader in readers:
            reader.close()
        for store in stores.values():
            store.close()
    mem = real / best.pop("memory")
    yield {"name": "train_in_memory", "value": round(mem, 1), "unit": "frames/s (real frames)"}
    for name, seconds in best.items():
        yield {"name": f"train_end_to_end_{name}", "value": round(real / seconds, 1),
               "unit": f"frames/s (real frames; {real / seconds / mem:.2f}x in memory)"}
    default = f"{args.compression}_store_{data.default_workers()}_workers"
    yield {"name": "train_end_to_end_vs_in_memory", "value": round(real / best[default] / mem, 3),
           "unit": f"x ({default.replace('_', ' ')}: the trainer's default reader)"}
    yield {"name": "train_padded_fps", "value": round(padded / best[default], 1),
           "unit": f"padded frames/s (end to end, {default.replace('_', ' ')})"}
    ucf = ucf11_lengths()
    for bucket in (True, False):
        waste = padding_waste(ucf, data.InputSpec(max_len=UCF11_LENGTHS[1]), batch, bucket)
        yield {"name": f"padding_waste_{'bucketed' if bucket else 'unbucketed'}", "value": round(100 * waste, 2),
               "unit": "% (padded / real frames, UCF11 lengths, max-len 1492, batch 16)"}
    lengths = rss_lengths
    peaks = rss_peaks()
    for count, peak in zip(clip_counts, peaks):
        yield {"name": f"peak_rss_{count}_clips", "value": peak, "unit": "MB (stream a store through a train step)"}
    peaks = peaks[len(clip_counts):]
    for length, peak in zip(lengths, peaks):
        yield {"name": f"peak_rss_max_len_{length}", "value": peak, "unit": f"MB (train step, batch {batch})"}
    slope = np.polyfit(lengths, peaks, 1)[0]
    yield {"name": "peak_rss_per_padded_step", "value": round(float(slope), 3),
           "unit": f"MB per padded time step (least-squares slope over max-len {'/'.join(map(str, lengths))}, "
                   f"batch {batch}; uint8 frames alone: {batch * np.prod(FRAME_SHAPE) / 2 ** 20:.2f})"}


def padding_waste(lengths, spec, batch, bucket, epochs=3):
    """Padded frames / real frames of the trainer's batching (data.plan_batches, data.padded_length)."""
    from ttrnn import data

    lengths = np.array([spec.effective_length(n) for n in lengths])
    real = padded = 0
    for epoch in range(epochs):
        rng = np.random.RandomState(epoch)
        for positions in data.plan_batches(lengths, batch, True, rng, bucket=bucket):
            t = data.padded_length(lengths[positions], spec)
            real += int(lengths[positions].sum())
            padded += t * len(positions)
    return (padded - real) / real


def start_rss_children(jobs, together=False):
    """Peak RSS (MB) of each job, each in a fresh `python -m experiments.bench --rss-child ...` process, or
    (`together`, the smoke pass: one TensorFlow start instead of one per job) all in one process in the order
    given, each figure then the process's peak so far (a job's own peak when jobs come in growing order).
    Returns the function that waits for the figures: `together` starts its child now, beside the caller's own
    work (the smoke pass: its TensorFlow start and tracing overlap the train section's, on the second core);
    separate children run one after the other when the figures are asked for."""
    import subprocess

    def start(group):
        spec = ";".join(",".join(str(v) for v in job) for job in group)
        cmd = [sys.executable, "-m", "experiments.bench", "--rss-child", spec]
        return spec, len(group), subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def collect(spec, n, proc):
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"RSS child {spec} failed: {err.strip().splitlines()[-1:]}")
        return [float(v) for v in out.strip().splitlines()[-n:]]

    if together:
        child = start(jobs)
        return lambda: collect(*child)
    return lambda: [peak for job in jobs for peak in collect(*start([job]))]


def rss_child_main(jobs):
    """`JOB;JOB...`: each job in turn, printing the process's peak RSS (MB) after each (`start_rss_children`)."""
    for job in jobs.split(";"):
        rss_job(job)
        print(peak_rss_mb(), flush=True)


def rss_job(job):
    """`step,T,B`: one paper TT-GRU train step on T real frames per clip, batch B.
    `stream,N,T`: one epoch of N clips of T frames from a temporary store through BatchFeed + train step."""
    import tempfile

    import tensorflow as tf

    from ttrnn import data, models
    from ttrnn.store import FrameStore

    kind, a, b = job.split(",")
    a, b = int(a), int(b)
    model = models.paper_model("ucf11", "gru", UCF11_CLASSES)
    step = _train_step(model, b if kind == "step" else 16)
    if kind == "step":               # the batch comes through tf.data as in the trainer (no extra copy)
        def batch():
            x = data.aligned_empty((b, a) + FRAME_SHAPE)
            x[:] = np.random.default_rng(0).integers(1, 256, (a, 1, 1, 3), dtype=np.uint8)   # no padding frame
            yield x, np.eye(UCF11_CLASSES, dtype=np.float32)[np.arange(b) % UCF11_CLASSES]
        spec = (tf.TensorSpec((b, a) + FRAME_SHAPE, tf.uint8), tf.TensorSpec((b, UCF11_CLASSES), tf.float32))
        for x, y in tf.data.Dataset.from_generator(batch, output_signature=spec):
            step((x, y))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            store = FrameStore(make_store(f"{tmp}/rss.h5", [b] * a))
            reader = data.ReaderPool(store.path, workers=data.default_workers())
            feed = data.BatchFeed(store, np.arange(a), data.InputSpec(max_len=b), 16, training=True, reader=reader)
            for _ in data.map_batches(feed.dataset(lambda: 0), step):
                pass
            reader.close()


# ---- section: scale -----------------------------------------------------------------------------------------
SCALE_CLIPS = 1600                       # UCF11: 1,600 clips, 11 classes, 25 groups
SCALE_GROUPS = 25


def scale_frames(t, rng, pool):
    """uint8 (t, 120, 160, 3): frames cycled from a small pool of noisy backgrounds plus a moving bright block
    (cheap enough to write a UCF11-size store in minutes; nothing here is all-zero padding)."""
    h, w, _ = FRAME_SHAPE
    start = int(rng.integers(len(pool)))
    frames = pool[(start + np.arange(t)) % len(pool)]
    for i in range(t):
        cx, cy = int(15 + (i * 3) % (w - 30)), int(15 + (i * 2) % (h - 30))
        frames[i, cy - 15:cy + 15, cx - 15:cx + 15] = 255
    return frames


def scale_pool(videos=None, seed=0):
    """uint8 (N, 120, 160, 3): the frames a scale store cycles through. `videos` (a folder): every frame of its
    clips decoded at 160x120, so that a coded store's size is a real video's; else 32 generated noisy
    backgrounds (raw stores: the content does not matter)."""
    if videos:
        frames = np.concatenate(codec_clips(videos, 0))
        return np.maximum(frames, 1)         # no all-zero frame: zero frames are padding
    rng = np.random.default_rng(seed)
    return np.stack([synthetic_frames(1, rng)[0] for _ in range(32)])


def make_scale_store(path, count=SCALE_CLIPS, lengths=None, seed=0, codec="raw", pool=None):
    """A UCF11-size store in the UCF11 schema (11 classes, 25 groups, `ucf11_lengths`) at `path` in `codec`
    (JPEG at its default quality), its frames cycled from `pool` (`scale_pool()` if None); returns `path`. An
    existing store with the same clip lengths and codec is reused (the full raw one is ~45 GB: generate it once)."""
    from ttrnn.store import FrameStore, StoreWriter, store_params

    lengths = ucf11_lengths(count, seed) if lengths is None else np.asarray(lengths)
    try:
        with FrameStore(path) as store:
            if store.codec == codec and np.array_equal(np.sort(store.index["length"]), np.sort(lengths)):
                return path
    except Exception:                 # absent, partial or not a store: write it anew
        pass
    rng = np.random.default_rng(seed)
    pool = scale_pool(seed=seed) if pool is None else pool
    classes = [f"class{c:02d}" for c in range(UCF11_CLASSES)]
    params = store_params("ucf11", FRAME_SHAPE[1], FRAME_SHAPE[0], compression=codec, classes=classes)
    with StoreWriter(path, params, overwrite=True) as writer:
        for i, t in enumerate(lengths):
            label, group = i % UCF11_CLASSES, f"g{(i // UCF11_CLASSES) % SCALE_GROUPS + 1:02d}"
            clip_id = f"v_{classes[label]}_{group}_{i:05d}"
            writer.add_clip(clip_id, scale_frames(int(t), rng, pool), classes[label], label,
                            f"v_{classes[label]}_{group}", f"{classes[label]}/{clip_id}.mpg", 29.97)
    return path


def scale_run(store, max_len, out, extra=()):
    """One epoch of the trainer CLI (TT-GRU, batch 16) on `store` in a fresh process: metrics.json + wall time."""
    import subprocess

    cmd = [sys.executable, "-m", "experiments.ucf11", *trainer_argv(store, max_len, out, *extra)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"max-len {max_len}: the trainer exited {proc.returncode}: {tail}")
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    return metrics, wall


def trainer_argv(store, max_len, out, *extra):
    """The trainer command of the scale and epoch sections: TT-GRU, batch 16, one epoch, quiet."""
    return ["--data", str(store), "--model", "gru", "--use-tt", "--max-len", str(max_len), "--batch-size", "16",
            "--epochs", "1", "--quiet", "--out", str(out), *extra]


def scale_store_path(store, codec, several):
    """Where the scale store of `codec` lives: `store` itself for one codec, `STEM.CODEC.h5` beside it for several."""
    store = Path(store)
    return store.with_name(f"{store.stem}.{codec}{store.suffix or '.h5'}") if several else store


def bench_scale(args):
    """Per codec (`--codecs`, default raw,jpeg): a UCF11-size store (frames cycled from `--videos` when given),
    then a real training epoch + evaluation at max-len 450 and 1,492 from a cold page cache: seconds, padded
    frames/s against the trainer's own step on the same padded lengths (measured once per max-len, on every
    `--step-every`-th batch of the epoch's plan, in memory), system CPU, page faults, bytes read against dd, peak
    RSS. Measured, not projected (~1 h on 2 cores for both codecs; not for CI)."""
    import tempfile

    count = 40 if args.quick else SCALE_CLIPS
    lengths = np.maximum(24, ucf11_lengths(count) // 8) if args.quick else ucf11_lengths(count)
    codecs = args.codecs or ("raw", "jpeg")
    max_lens = args.max_lens or ((48, 96) if args.quick else (450, 1492))
    yield {"name": "scale_load", "value": round(os.getloadavg()[1], 2),
           "unit": f"load average (5 min) at the start; {cpu_model()}"}
    with tempfile.TemporaryDirectory() as tmp:
        pool = scale_pool(args.videos)
        stores = {}
        for codec in codecs:
            store = stores[codec] = scale_store_path(args.store or f"{tmp}/scale.h5", codec, len(codecs) > 1)
            t0 = time.perf_counter()
            make_scale_store(store, lengths=lengths, codec=codec, pool=pool)
            source = f"frames of {args.videos}" if args.videos else "generated frames"
            yield {"name": f"scale_{codec}_store_gb", "value": round(store_bytes(store) / 1e9, 3),
                   "unit": f"GB ({count} clips, UCF11 lengths, {source}; written or reused in "
                           f"{time.perf_counter() - t0:.0f} s: {store})"}
            yield {"name": f"scale_{codec}_dd_read", "value": round(dd_rate(store) / 1e6, 1),
                   "unit": "MB/s (the store's files read in 8 MB requests, cold cache)"}
        for max_len in max_lens:
            step = run_step_child(trainer_argv(stores[codecs[0]], max_len, f"{tmp}/step{max_len}"),
                                  every=args.step_every or (1 if args.quick else 4))
            step_fps = step["sample_frames"] / step["warm_s"]
            yield {"name": f"scale_step_max_len_{max_len}", "value": round(step_fps, 1),
                   "unit": f"padded frames/s (the trainer's step alone, warm, on {step['sample_frames']} of the "
                           f"epoch's {step['padded_frames']} padded frames in memory)"}
            for codec in codecs:
                yield from scale_rows(codec, max_len, stores[codec], step, step_fps, f"{tmp}/{codec}{max_len}")


def scale_rows(codec, max_len, store, step, step_fps, out):
    """The rows of one scale run: `codec`'s store at `max_len`, evicted from the page cache first."""
    drop_from_page_cache(store)
    metrics, wall = scale_run(store, max_len, out, extra=("--no-tensorboard",))
    train, u = metrics["epoch_seconds"][0], metrics["epoch_usage"][0]
    fps, cpu = step["padded_frames"] / train, u["user_s"] + u["sys_s"]
    key = f"scale_{codec}_max_len_{max_len}"
    yield {"name": f"{key}_epoch", "value": round(train, 1),
           "unit": f"s training ({metrics['num_train']} clips, batch 16, TT-GRU)"}
    yield {"name": f"{key}_fps", "value": round(fps, 1),
           "unit": f"padded frames/s end to end ({fps / step_fps:.3f}x the warm step)"}
    yield {"name": f"{key}_system_cpu", "value": round(100 * u["sys_s"] / max(cpu, 1e-9), 2),
           "unit": f"% of the epoch's CPU time in the kernel ({cpu / u['wall_s']:.2f} cores busy)"}
    yield {"name": f"{key}_faults_per_s", "value": round(u["minor_faults"] / u["wall_s"], 1),
           "unit": "minor page faults/s over the epoch"}
    yield {"name": f"{key}_read", "value": round((u["read_bytes"] or 0) / u["wall_s"] / 1e6, 2),
           "unit": "MB/s from the disk over the epoch"}
    if metrics.get("eval_seconds"):
        yield {"name": f"{key}_eval", "value": round(metrics["eval_seconds"][0], 1),
               "unit": f"s evaluation ({metrics['num_test']} clips)"}
    yield {"name": f"{key}_wall", "value": round(wall, 1),
           "unit": "s (the whole command: start, epoch, evaluation, report)"}
    yield {"name": f"{key}_peak_rss", "value": metrics["peak_rss_mb"], "unit": "MB"}


def cpu_model():
    """`lscpu`'s model name and the widest AVX the CPU has (AVX2 / AVX-512), for the figures' context."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "CPU unknown"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    avx = "AVX-512" if "avx512f" in text else "AVX2" if "avx2" in text else "no AVX2"
    return f"{model}, {avx}, {os.cpu_count()} CPUs"


# ---- section: epoch -----------------------------------------------------------------------------------------
PUBLISHED_EPOCH_SECONDS = {1492: ("paper, quad-core Xeon E7-4850 v2", 1872), 450: ("community port", 400),
                           900: ("community port", 1700)}
ARRANGEMENTS = {"plain": ("--reader", "plain", "--allocator", "default"),     # before issue 22
                "page_cache": ("--reader", "page-cache", "--allocator", "tuned"),  # session 8: no O_DIRECT
                "streaming": ("--reader", "streaming", "--allocator", "tuned")}  # the defaults


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


def epoch_store_lengths(budget_bytes, quick, seed=0):
    """Clip lengths of a store 1.25x larger than `budget_bytes`: UCF11's spread (`ucf11_lengths`; /8, at least
    24 frames, with --quick), at least 40 clips so the paper split leaves test clips."""
    frame = int(np.prod(FRAME_SHAPE))
    mean = UCF11_LENGTHS[2] / (8 if quick else 1)
    count = max(40, int(np.ceil(1.25 * budget_bytes / (mean * frame))))
    lengths = ucf11_lengths(count, seed)
    return np.maximum(24, lengths // 8) if quick else lengths


def epoch_step_child(argv, every=1):
    """`--epoch-step-child ARGV_JSON`: the trainer's own build and train step for that trainer command, run on
    in-memory batches of exactly the shapes (and order) of its first training epoch (`every`-th batch of it
    only: the same mix of lengths at a fraction of the time), twice: the first pass traces and compiles as the
    trainer's first epoch does, the second is warm. Prints JSON: the epoch's padded frames, the sample's, and the
    seconds of each pass (the step only: each batch is made a tensor before its step is timed)."""
    import tensorflow as tf

    import tf_config.cluster
    import tf_config.memory
    import tf_config.threads
    from experiments import train
    from experiments.ucf11 import SPEC

    args = train.build_parser(SPEC).parse_args(argv)
    tf_config.memory.apply_memory(args.allocator)
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
    import subprocess

    cmd = [sys.executable, "-m", "experiments.bench", "--epoch-step-child", json.dumps(argv),
           "--step-every", str(every)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"epoch step child failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def epoch_rows(m):
    """The epoch section's rows from its measurements `m` (pure arithmetic, tested on its own):
    m = {"store_bytes", "budget_bytes", "clips", "dd_bytes_per_s", "max_len", "load",
         "step": {"padded_frames", "cold_s", "warm_s"},
         "runs": {arrangement: {"train_s", "eval_s", "usage": {wall_s, user_s, sys_s, minor_faults, read_bytes},
                                "peak_rss_mb"}}}."""
    step, frames, L = m["step"], m["step"]["padded_frames"], m["max_len"]
    step_fps = frames / step["cold_s"]
    rows = [{"name": "epoch_store_gb", "value": round(m["store_bytes"] / 1e9, 3),
             "unit": f"GB ({m['clips']} clips, UCF11 spread) > budget {m['budget_bytes'] / 1e9:.2f} GB; evicted "
                     f"from the page cache before every run; load {m['load']}"},
            {"name": "epoch_dd_read", "value": round(m["dd_bytes_per_s"] / 1e6, 1),
             "unit": "MB/s (the store's files read in 8 MB requests as dd bs=8M, cold cache)"},
            {"name": f"epoch_step_max_len_{L}", "value": round(step_fps, 1),
             "unit": f"padded frames/s (the trainer's step alone on the epoch's {frames} padded frames in memory, "
                     f"first pass: traces and compiles as epoch 1 does)"},
            {"name": f"epoch_step_warm_max_len_{L}", "value": round(frames / step["warm_s"], 1),
             "unit": "padded frames/s (the same, second pass)"}]
    for name, run in m["runs"].items():
        u, fps = run["usage"], frames / run["train_s"]
        cpu = u["user_s"] + u["sys_s"]
        read = (u["read_bytes"] or 0) / u["wall_s"]
        rows += [{"name": f"epoch_{name}_max_len_{L}", "value": round(run["train_s"], 1),
                  "unit": f"s training ({' '.join(ARRANGEMENTS[name])})"},
                 {"name": f"epoch_{name}_fps", "value": round(fps, 1),
                  "unit": f"padded frames/s end to end ({fps / step_fps:.3f}x the step)"},
                 {"name": f"epoch_{name}_vs_step", "value": round(fps / step_fps, 3),
                  "unit": "x (end to end / step, same padded frames; goal 0.8)"},
                 {"name": f"epoch_{name}_system_cpu", "value": round(100 * u["sys_s"] / max(cpu, 1e-9), 2),
                  "unit": f"% of the trainer's CPU time in the kernel ({cpu / u['wall_s']:.2f} cores busy)"},
                 {"name": f"epoch_{name}_faults_per_s", "value": round(u["minor_faults"] / u["wall_s"], 1),
                  "unit": "minor page faults/s"},
                 {"name": f"epoch_{name}_read", "value": round(read / 1e6, 2),
                  "unit": f"MB/s from the disk ({read / m['dd_bytes_per_s']:.3f}x dd)"},
                 {"name": f"epoch_{name}_eval", "value": round(run["eval_s"], 1), "unit": "s evaluation"},
                 {"name": f"epoch_{name}_peak_rss", "value": round(run["peak_rss_mb"], 1), "unit": "MB"}]
    for old in ("plain", "page_cache"):
        if {old, "streaming"} <= set(m["runs"]):
            ratio = m["runs"][old]["train_s"] / m["runs"]["streaming"]["train_s"]
            rows.append({"name": f"epoch_streaming_vs_{old}", "value": round(ratio, 3),
                         "unit": f"x ({old} training seconds / streaming, interleaved in this run)"})
    return rows


def bench_epoch(args):
    """A real trainer epoch on a store larger than a memory budget (`--budget-gb`), evicted from the page cache
    before each run, for each reader/allocator arrangement (plain, page-cache, streaming; `--repeats` rounds, the
    faster run of each kept), beside the trainer's own step on the same padded frames in memory (same run)."""
    import tempfile

    budget = (args.budget_gb if args.budget_gb else (0.1 if args.quick else 4.0)) * 1e9
    max_len = (args.max_lens or [48 if args.quick else 450])[0]
    lengths = epoch_store_lengths(budget, args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or f"{tmp}/epoch.h5"
        make_scale_store(store, lengths=lengths)
        m = {"store_bytes": store_bytes(store), "budget_bytes": budget, "clips": len(lengths),
             "max_len": max_len, "load": "/".join(f"{v:.1f}" for v in os.getloadavg()),
             "dd_bytes_per_s": dd_rate(store), "runs": {}}
        m["step"] = run_step_child(trainer_argv(store, max_len, f"{tmp}/step", *ARRANGEMENTS["streaming"]))
        for k in range(args.repeats or 1):
            for name in ARRANGEMENTS:
                drop_from_page_cache(store)
                metrics, _ = scale_run(store, max_len, f"{tmp}/{name}{k}",
                                       extra=("--no-tensorboard", *ARRANGEMENTS[name]))
                run = {"train_s": metrics["epoch_seconds"][0], "eval_s": metrics["eval_seconds"][0],
                       "usage": metrics["epoch_usage"][0], "peak_rss_mb": metrics["peak_rss_mb"]}
                if name not in m["runs"] or run["train_s"] < m["runs"][name]["train_s"]:
                    m["runs"][name] = run
    yield from epoch_rows(m)


SECTIONS = {"tt": bench_tt, "versions": bench_versions, "store": bench_store, "train": bench_train,
            "epoch": bench_epoch, "scale": bench_scale}
DEFAULT_SECTIONS = ("tt", "versions", "store", "train")   # epoch (a 5 GB store, ~10 min) and scale (~30 min): by name


def parse_args(argv=None):
    p = OneLineParser(prog="python -m experiments.bench", description=__doc__.splitlines()[0])
    p.add_argument("sections", nargs="*", default=[],
                   help=f"what to benchmark: {', '.join(SECTIONS)} (default: all but scale)")
    p.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--epoch-step-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--budget-gb", type=float, default=None,
                   help="epoch: the memory budget the store must exceed (default 4 GB; quick 0.1)")
    p.add_argument("--compression", default="none", choices=("lzf", "none"),
                   help="train/epoch: which bench store's end-to-end rate is the headline and feeds the epoch "
                        "projection (both are measured; default none: raw frames)")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--videos", default=None,
                   help="store: measure the codecs on the videos in this folder (decoded at 160x120); "
                        "scale: cycle their frames through the store")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.add_argument("--frames", type=int, default=None, help="tt, versions: frames per clip (default 100, quick 2)")
    p.add_argument("--repeats", type=int, default=None, help="timed repetitions, best taken")
    p.add_argument("--chunks", type=lambda s: [int(v) for v in s.split(",")], default=None,
                   help="tt: also time TTGRU train steps with these time_chunk values, e.g. 0,1,4, "
                        "and the projection / TTGRU step forced under XLA")
    p.add_argument("--max-lens", type=lambda v: [int(x) for x in v.split(",")], default=None,
                   help="scale: the max-lens to train at (default 450,1492; quick 48,96); epoch: the first (default 450; quick 48)")
    p.add_argument("--codecs", type=lambda v: v.split(","), default=None,
                   help="scale: the store codecs to train from, e.g. raw,jpeg (default raw,jpeg)")
    p.add_argument("--step-every", type=int, default=None,
                   help="scale: time the step alone on every N-th batch of the epoch's plan (default 4; quick 1)")
    p.add_argument("--store", default=None,
                   help="scale / epoch: the store to train on (written there first if absent or of other lengths "
                        "or codec; scale with several --codecs: STEM.CODEC.h5 beside it, raw ~45 GB)")
    add_console_args(p)
    add_memory_args(p)
    args = p.parse_args(argv)
    for name in args.sections:
        if name not in SECTIONS:
            p.error(f"argument sections: invalid choice: {name!r} (choose from {', '.join(SECTIONS)})")
    for name in ("frames", "repeats"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.chunks and min(args.chunks) < 0:
        p.error("--chunks values must be >= 0")
    if args.budget_gb is not None and not args.budget_gb > 0:
        p.error("--budget-gb must be > 0")
    from ttrnn.store import CODECS
    for codec in args.codecs or ():
        if codec not in CODECS:
            p.error(f"--codecs: invalid codec {codec!r} (choose from {', '.join(CODECS)})")
    if args.step_every is not None and args.step_every < 1:
        p.error("--step-every must be >= 1")
    if args.max_lens and min(args.max_lens) < 1:
        p.error("--max-lens values must be >= 1")
    return args


def quiet_retracing():
    """Drop TensorFlow's "triggered tf.function retracing" warning in this process: the bench builds one train step
    per case on purpose (each a different model, `make_train_step` each time, each traced once) and TensorFlow
    counts all of them as retraces of one function (it keys them by the function's code). Nothing else is
    filtered; a retrace within one case still shows in its time."""
    import logging

    logging.getLogger("tensorflow").addFilter(lambda r: "triggered tf.function retracing" not in r.getMessage())


def main(argv=None):
    args = parse_args(argv)
    quiet_console(args.verbose)
    quiet_retracing()
    if args.epoch_step_child:        # applies the allocator of the trainer command it times
        epoch_step_child(json.loads(args.epoch_step_child), args.step_every or 1)
        return 0
    apply_memory(args.allocator)     # before TensorFlow starts, as the trainer does (tf_config.memory)
    if args.rss_child:
        rss_child_main(args.rss_child)
        return 0
    rows = []
    for section in args.sections or list(DEFAULT_SECTIONS):
        for row in SECTIONS[section](args):
            rows.append(row)
            if args.json:
                print(json.dumps({**row, "section": section}), flush=True)
    if not args.json:
        print("| name | value | unit |\n|---|---:|---|")
        for row in rows:
            print(f"| {row['name']} | {row['value']:,.{3 if abs(row['value']) < 10 else 1}f} | {row['unit']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
