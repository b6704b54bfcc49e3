"""Section `tt`: train-step rates of the TT layers on the UCF11 paper configuration, and how close the TT-GRU step
comes to the machine's matmul rate.

Input: batch 16 of T uint8 frames (160x120x3 = 57,600 values as the TT modes 8x20x20x18, pixels - 128; T = 100,
`--quick` 2, `--frames`), hidden modes 4x4x4x4, ranks 4. Each case is built and traced once, then timed
round-robin with the others (`--repeats`, default 5, best taken); a rate is batch x T / best seconds.

Rows (frames/s unless said):
- `tt_projection`: the TT projection alone (`ttrnn.formats.tt.tt_matmul` on all frames at once, forward + backward
  with respect to the cores);
- `ttgru_step`: a `ttrnn.TTGRU` + softmax classifier trained by the trainer's own step on tensors in memory;
- `original_scheme`: the original authors' arrangement of the same model (Yang et al.'s Theano TT_GRU: the TT
  contraction inside every recurrent step, core by core from the last core, no XLA), forward + backward + Adam;
- `dense_gru`: `keras.layers.GRU` on the flat frames, the same classifier and step;
- `ttgru_step_bf16`: the TT-GRU step with `projection_dtype="bfloat16"` (the first contraction in bfloat16);
- `{fmt}lstm_step` per kernel format (tt, tr, bt, cp, ht; TT at the paper's ranks, the others at
  `ttrnn.formats.DEFAULT_RANKS`, ~3.3 k kernel parameters each) and `{fmt}lstm_step_vs_ttlstm_step`;
- `tt{cell}_fd_step` / `tt{cell}_integrated_step` (cell gru, lstm): the same step with the recurrent kernel in TT
  too (fully decomposed: `recurrent_format="tt"` on the paper's hidden modes, default ranks) and with FDHT's
  integrate-then-decompose (one TT matrix over [x_t, h_{t-1}] on the paper's integrated input modes, the paper's
  ranks), interleaved with the input-only `tt{cell}_step` on the same frames; `..._vs_tt{cell}_step` is their
  frames/s over the input-only one's (best vs best, and the median and range of the per-round ratios);
- `sgemm`: GFLOP/s of a chain of float32 (2048, 2048) matmuls through TensorFlow (all cores), timed with the rest;
- `ttgru_step_vs_original_scheme` (best vs best) and `..._per_round` (median and range of the per-round ratios);
- `ttgru_step_flop_fraction` = ttgru_step frames/s x F / sgemm FLOP/s, where F is the FLOP floor of the TT
  projection of one frame, forward + backward (`tt_train_flops`; the recurrence is not counted):
      forward   f_k = 2 s_k r_k m_k for each contraction k = d-1, ..., 0 (last core first), s_k the values
                entering it (s_{d-1} = prod n; s_{k-1} = s_k / (n_k r_{k+1}) x r_k m_k);
      backward  two products (input and core gradient) per contraction except the first, which reads the
                frames: they need no gradient, so it has its core gradient only;
      F = sum_k f_k + f_{d-1} + 2 sum_{k<d-1} f_k  (UCF11 TT-GRU, gates in the first mode: 3.86 + 5.87 = 9.73 M).
`--quick`: the headline cases only (no bfloat16 step, no per-format LSTM rows, no fully decomposed or
integrated rows), sgemm (512, 512).
`--chunks 0,1,4`: also TT-GRU steps with those `time_chunk` values, and the projection and step under XLA.
"""

import numpy as np

from experiments.bench.common import BATCH, PIXEL_SHIFT, UCF11_CLASSES, round_ratios, timed_interleaved, trainer_step

SGEMM_N = 2048                  # --quick: QUICK_SGEMM_N (the rate of a smaller product: a smoke figure)
QUICK_SGEMM_N = 512
SGEMM_REPS = 4
DECOMPOSED = ("fd", "integrated")   # the recurrent weights factorized too: fully decomposed, integrated


def paper_tt(dataset="ucf11"):
    """(input modes n, hidden modes m, ranks r) of the paper's TT layer on `dataset` (ttrnn.models.PAPER_SHAPES;
    UCF11: 160x120x3 frames as 8x20x20x18, 4x4x4x4 hidden, ranks 4)."""
    from ttrnn.models import PAPER_SHAPES

    shapes = PAPER_SHAPES[dataset]
    return shapes["tt_input_shape"], shapes["tt_output_shape"], shapes["tt_ranks"]


def gates_first(m, gates=3):
    """Hidden modes with the gates folded into the first mode (the GRU's kernel: x3, the LSTM's: x4)."""
    return (m[0] * gates,) + tuple(m[1:])


# ---- the FLOP model -------------------------------------------------------------------------------------------
def tt_step_flops(n, m, r):
    """FLOPs of each contraction of one input row with TT cores of input modes `n`, output modes `m`, ranks `r`,
    last core first, core by core: 2 x (values entering the contraction) x r_k m_k. The cheapest order for image
    frames: the last modes are large and r_d = 1; merging cores or starting from the first only adds FLOPs."""
    size, steps = int(np.prod(n)), []
    for k in range(len(n) - 1, -1, -1):
        steps.append(2 * size * r[k] * m[k])
        size = size // (n[k] * r[k + 1]) * r[k] * m[k]
    return steps


def tt_forward_flops(n, m, r):
    """FLOPs of `x @ full(cores)` for one input row contracted core by core from the last (no merging): the sum
    of `tt_step_flops`. UCF11 TT-GRU (m_0 x 3): 3.86 M."""
    return sum(tt_step_flops(n, m, r))


def tt_train_flops(n, m, r):
    """Minimum FLOPs per frame of the TT projection's forward + backward pass: forward one product per
    contraction; backward two (input and core gradient) for every contraction but the first, which reads the
    frames: frames need no gradient, so it has only its core gradient. UCF11 TT-GRU: 3.86 + 5.87 = 9.73 M."""
    steps = tt_step_flops(n, m, r)
    return sum(steps) + steps[0] + 2 * sum(steps[1:])


# ---- the cases: each a builder returning the callable that is timed -------------------------------------------
def tt_projection_case(x, seed=0, jit=False):
    """The TT projection alone (all frames at once, `tt_matmul` as the layers use it), forward + backward with
    respect to the cores; without XLA by default (TF's oneDNN matmuls beat XLA's CPU dot on these shapes)."""
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


def classifier_step_case(layer, x, y, jit_compile="auto"):
    """`layer` -> Dense softmax head as a Keras model, trained by the trainer's own step (`trainer_step`) on
    tensors already in memory, as the original scheme gets them. `jit_compile=True` wraps that step in XLA
    (models with TT layers then need `layer.supports_jit = True`)."""
    import keras
    import tensorflow as tf

    inp = keras.Input(x.shape[1:], dtype="uint8")
    out = keras.layers.Dense(UCF11_CLASSES, activation="softmax")(layer(inp))
    model = keras.Model(inp, out)
    step = trainer_step(model, len(x))
    if jit_compile is True:
        step = tf.function(step.python_function, jit_compile=True)
    batch = (tf.constant(x), tf.constant(np.eye(UCF11_CLASSES, dtype=np.float32)[y]))
    return lambda: float(step(batch))


def ttgru_layer(time_chunk=None, xla=False, projection_dtype=None):
    """The UCF11 `ttrnn.TTGRU` (uint8 frames, pixels - 128); `time_chunk` None keeps the layer's default;
    `xla=True` overrides the layer's opt-out of XLA."""
    import ttrnn

    chunk = {} if time_chunk is None else {"time_chunk": time_chunk}
    layer = ttrnn.TTGRU(*paper_tt(), input_shift=PIXEL_SHIFT, projection_dtype=projection_dtype, **chunk)
    layer.supports_jit = xla or layer.supports_jit
    return layer


def format_lstm_layer(fmt):
    """The UCF11 LSTM with a `fmt` input kernel: TT at the paper's ranks, others at ttrnn.formats.DEFAULT_RANKS."""
    from ttrnn.models import tensor_rnn_layer

    n, m, r = paper_tt()
    return tensor_rnn_layer(fmt, "lstm", n, m, tt_ranks=r, input_shift=PIXEL_SHIFT)


def decomposed_layer(cell, integrated=False):
    """The UCF11 TT-GRU / TT-LSTM (`cell`) with its recurrent kernel in TT on the paper's hidden modes
    (`ttrnn.models.PAPER_SHAPES` recurrent modes, the format's default ranks), or with `integrated=True` one TT
    matrix over [x_t, h_{t-1}] on the paper's integrated input modes and ranks, as `ttrnn.models.paper_model`
    builds them."""
    from ttrnn.models import PAPER_SHAPES, tensor_rnn_layer

    shapes = PAPER_SHAPES["ucf11"]
    n, m, r = paper_tt()
    if integrated:
        return tensor_rnn_layer("tt", cell, shapes["integrated_input_shape"], m, tt_ranks=r, integrated=True,
                                input_shift=PIXEL_SHIFT)
    return tensor_rnn_layer("tt", cell, n, m, tt_ranks=r, recurrent_format="tt",
                            recurrent_input_modes=shapes["recurrent_input_shape"],
                            recurrent_output_modes=shapes["recurrent_output_shape"], input_shift=PIXEL_SHIFT)


def dense_gru_layer():
    """`keras.layers.GRU` with as many units as the TT-GRU (4x4x4x4 = 256)."""
    import keras

    return keras.layers.GRU(int(np.prod(paper_tt()[1])))


def original_scheme_case(x, y, seed=0):
    """The original authors' arrangement (Yang et al.'s Theano TT_GRU.step): the TT contraction runs inside
    every recurrent step, core by core from the last (one 2-D matmul + transpose per core), no XLA; forward +
    backward + Adam update; the same dense classifier head as the Keras models."""
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


def sgemm_case(n=SGEMM_N, reps=SGEMM_REPS):
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


def bench_tt(args):
    """The section's rows (module docstring), in order."""
    from ttrnn.formats import FORMAT_NAMES

    frames = args.frames or (2 if args.quick else 100)      # quick: a smoke pass (traces dominate, not frames)
    repeats = args.repeats or (1 if args.quick else 5)
    sgemm_n = QUICK_SGEMM_N if args.quick else SGEMM_N
    rng = np.random.default_rng(0)
    tt_n, tt_m, tt_r = paper_tt()
    x = rng.integers(0, 256, size=(BATCH, frames, int(np.prod(tt_n))), dtype=np.uint8)
    y = rng.integers(0, UCF11_CLASSES, size=(BATCH,))
    n = BATCH * frames
    cases = [
        ("tt_projection", lambda: tt_projection_case(x)),
        ("ttgru_step", lambda: classifier_step_case(ttgru_layer(), x, y)),
        ("original_scheme", lambda: original_scheme_case(x, y)),
        ("dense_gru", lambda: classifier_step_case(dense_gru_layer(), x, y)),
        ("sgemm", lambda: sgemm_case(sgemm_n)),
    ]
    if not args.quick:  # --quick is a smoke pass: the headline cases only (each case is a model build + trace)
        cases += [("ttgru_step_bf16", lambda: classifier_step_case(ttgru_layer(projection_dtype="bfloat16"), x, y))]
        cases += [(f"{fmt}lstm_step", lambda f=fmt: classifier_step_case(format_lstm_layer(f), x, y))
                  for fmt in FORMAT_NAMES]
        cases += [(f"tt{cell}_{kind}_step",
                   lambda c=cell, k=kind: classifier_step_case(decomposed_layer(c, k == "integrated"), x, y))
                  for cell in ("gru", "lstm") for kind in DECOMPOSED]
    if args.chunks:
        cases.append(("tt_projection_xla", lambda: tt_projection_case(x, jit=True)))
        cases.append(("ttgru_step_xla", lambda: classifier_step_case(ttgru_layer(xla=True), x, y, jit_compile=True)))
    for chunk in args.chunks or []:
        cases.append((f"ttgru_step_chunk{chunk}", lambda c=chunk: classifier_step_case(ttgru_layer(c), x, y)))
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
    ttlstm_params = format_lstm_layer("tt").kernel_param_count if "ttlstm_step" in fps else None
    for fmt in FORMAT_NAMES[1:] if "ttlstm_step" in fps else ():
        params = format_lstm_layer(fmt).kernel_param_count
        yield {"name": f"{fmt}lstm_step_vs_ttlstm_step", "value": round(fps[f"{fmt}lstm_step"] / fps["ttlstm_step"], 2),
               "unit": f"x ({params:,} kernel parameters vs TT-LSTM {ttlstm_params:,})"}
    for cell in ("gru", "lstm"):
        base = f"tt{cell}_step"
        for name in [f"tt{cell}_{kind}_step" for kind in DECOMPOSED if f"tt{cell}_{kind}_step" in fps]:
            median, low, high = round_ratios(rounds, base, name)
            yield {"name": f"{name}_vs_{base}", "value": round(fps[name] / fps[base], 2),
                   "unit": f"x (best vs best; per round median {median:.2f}, range {low:.2f}-{high:.2f})"}
