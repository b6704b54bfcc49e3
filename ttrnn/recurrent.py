"""TT recurrent layers: `TTSimpleRNN`, `TTGRU`, `TTLSTM` (Yang, Krompass, Tresp, ICML 2017).

One TT-matrix maps a frame `(prod n,)` to all gate pre-activations `(gates * units,)`: the first output mode is
multiplied by the number of gates (GRU 3, LSTM 4), so the dense kernel's column blocks `[g*units, (g+1)*units)`
are the gates in Keras order (z, r, h) / (i, f, c, o) and `full_kernel()`, `recurrent_kernel`, `bias` drop into
`keras.layers.GRU` / `LSTM` / `SimpleRNN` via `set_weights`.

Arrangement (chosen by measurement, see `experiments/bench.py tt` and docs/performance.md): by default
(`time_chunk=0`) all frames are projected through the TT cores first, batch-major, straight from the uint8 frames
(`tt.tt_matmul` casts and scales inside the first contraction, whose custom gradient recomputes the cast, so no
float copy of the frames is stored), then the recurrence scans over the small projections `(T, B, gates*units)`
with `ttrnn.fused_scan` (`recurrence="fused"`: XLA-compiled forward and backward loops with a hand-scheduled
backward pass; 1.4x Keras's loop on the modern TT-GRU's recurrence, 3.4x with the paper preset's recurrent
dropout). `time_chunk=k > 0` instead projects k frames at a time inside Keras's loop. Measured (UCF11 config,
batch 16, 2 shared cores, paper model train step): all-at-once from uint8 1.13-1.27x faster than chunks of 1, 2,
8 or 16 frames at T = 100 and 400.

XLA for the whole model: the layers declare `supports_jit = False`, so `model.compile(jit_compile="auto")` runs
the TT contractions without XLA (only the recurrence loops are compiled). Measured on the UCF11 config (2 CPU
cores): TF's oneDNN matmuls ran the TT contractions 1.3-2.4x faster than XLA's CPU dot, and the projection
dominates the step. Keras downgrades an explicit `jit_compile=True` (with a
warning) for such models; set `layer.supports_jit = True` before compiling to force XLA (tested to work).
"""

import math

import keras
from keras import ops
from keras.src import backend

from ttrnn import formats, tt
from ttrnn.activations import hard_sigmoid
from ttrnn.layers import add_kernel_weights, cast_input

DEFAULT_TIME_CHUNK = 0
# Frames per block of the bounded projection (ttrnn.projection); measured in docs/performance.md.
PROJECTION_BLOCK_FRAMES = 32
# By default, batches of at most this many frames (B x T; a float copy of 470 MB at 160x120x3) are projected whole:
# the README demo (batch 16, T 32-48), two runs side by side, epochs 2-6: median 43.9 s whole vs 50.2 s in blocks,
# same losses; at T = 450 blocks were 1.25x faster (docs/performance.md).
WHOLE_BATCH_FRAMES = 2048

PRESETS = {
    # New users: format-aware Glorot weights, logistic gates, cuDNN-style GRU, Keras-style per-gate recurrent dropout.
    "modern": {"kernel_initializer": lambda: tt.TTGlorotNormal(), "recurrent_activation": "sigmoid",
               "reset_after": True, "shared_recurrent_dropout": False},
    # What the original Theano/Keras-2 code computed.
    "paper": {"kernel_initializer": lambda: tt.FlatGlorotUniform(), "recurrent_activation": hard_sigmoid,
              "reset_after": False, "shared_recurrent_dropout": True},
}


class StepOps:
    """A cell step's uses of the recurrent kernel and of activations, evaluated directly (Keras's loop)."""

    def __init__(self, kernel):
        self.kernel = kernel

    def matmul(self, a, lo, hi):
        """`a @ kernel[:, lo:hi]`."""
        return ops.matmul(a, self.kernel[:, lo:hi])

    def act(self, fn, x):
        return fn(x)


class _Recurrent(keras.layers.Layer):
    """Shared machinery over any kernel format: input projection, scan, masking, dropout, states, config.

    Format classes (`_TTLayer`, `_FormatLayer`) set `FORMAT` and the constructor's format arguments; cell
    mixins (`_SimpleRNNCell`, `_GRUCell`, `_LSTMCell`) set `GATES`, `N_STATES` and implement `_build_bias` and
    `_step(z, states, f, rec_bias, rec_masks) -> new_states`: one timestep, `z` `(batch, gates * units)` the
    projected input plus input bias, `f` a `StepOps` (`f.matmul(a, lo, hi) = a @ recurrent_kernel[:, lo:hi]` and
    `f.act(fn, x) = fn(x)`: the step's only uses of the recurrent kernel and of activations, so `fused_scan` can
    record and replay them), `rec_masks` None or a list of 1 (shared) or `GATES` recurrent-dropout masks.
    """

    GATES = 1
    N_STATES = 1
    FORMAT = None

    def __init__(self, input_modes, output_modes, ranks=None, blocks=None, preset="modern", activation="tanh",
                 recurrent_activation=None, use_bias=True, kernel_initializer=None,
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, shared_recurrent_dropout=None, return_sequences=False,
                 return_state=False, go_backwards=False, time_chunk=DEFAULT_TIME_CHUNK, input_scale=1.0,
                 input_shift=0.0, seed=None, projection_dtype=None,
                 recurrence="fused", projection_block=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
        p = PRESETS[preset]
        self.preset = preset
        # Gate factor in the first output mode: column blocks of full_kernel() are the gates.
        spec = formats.make(self.FORMAT, input_modes, output_modes, ranks, blocks)
        self.units = math.prod(spec.m)
        self.kernel_format = formats.make(self.FORMAT, spec.n, (spec.m[0] * self.GATES,) + spec.m[1:],
                                          spec.ranks, spec.blocks)
        self.kernel_param_count = self.kernel_format.param_count()
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(
            p["recurrent_activation"] if recurrent_activation is None else recurrent_activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(
            p["kernel_initializer"]() if kernel_initializer is None else kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        for name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= float(rate) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {rate}")
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.shared_recurrent_dropout = bool(
            p["shared_recurrent_dropout"] if shared_recurrent_dropout is None else shared_recurrent_dropout)
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        if int(time_chunk) < 0:
            raise ValueError(f"time_chunk must be >= 0 (0 = project all frames at once), got {time_chunk}")
        self.time_chunk = int(time_chunk)
        if recurrence not in ("fused", "keras"):
            raise ValueError(f"recurrence must be 'fused' or 'keras', got {recurrence!r}")
        self.recurrence = recurrence
        if projection_dtype not in (None, "float32", "bfloat16"):
            raise ValueError(f"projection_dtype must be None, 'float32' or 'bfloat16', got {projection_dtype!r}")
        self.projection_dtype = None if projection_dtype == "float32" else projection_dtype
        if projection_block is not None and int(projection_block) < 0:
            raise ValueError(f"projection_block must be >= 0 (0 = whole batch at once) or None, got {projection_block}")
        self.projection_block = None if projection_block is None else int(projection_block)
        self.input_scale = float(input_scale)
        self.input_shift = float(input_shift)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self.supports_jit = False     # measured faster without XLA (module docstring)
        self.input_spec = keras.layers.InputSpec(ndim=3)

    # ---- weights -------------------------------------------------------------------------------------------
    def build(self, input_shape):
        self.kernel_format.check_input_dim(input_shape[-1])
        self.kernel_weights = add_kernel_weights(self, self.kernel_format, self.kernel_initializer,
                                                 self.kernel_regularizer, self.kernel_constraint)
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.GATES * self.units), name="recurrent_kernel",
            initializer=self.recurrent_initializer, regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint)
        self.bias = self._build_bias() if self.use_bias else None

    def _build_bias(self):
        return self.add_weight(shape=(self.GATES * self.units,), name="bias", initializer=self.bias_initializer,
                               regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def _input_bias(self):
        return self.bias

    def full_kernel(self):
        """Dense input-to-hidden kernel `(prod n, gates * units)`, gate blocks in Keras order."""
        return self.kernel_format.full(self.kernel_weights)

    @property
    def factors(self):
        """The kernel's factors in the format's documented layout (`ttrnn.formats.<name>`)."""
        return self.kernel_format.factors(self.kernel_weights)

    # ---- forward -------------------------------------------------------------------------------------------
    def _project(self, x, dp_mask, training=False):
        """`x` `(..., B, D)` frames (uint8 or float) → `(..., B, gates*units)` pre-activations incl. input bias.

        Computes `((x * input_scale + input_shift) * dp_mask) @ W`; uint8 frames are cast inside the format's
        first contraction (`Format.matmul`), whose gradient recomputes the cast: no float copy of them is kept.
        Whole uint8 clips `(B, T, D)` go through `ttrnn.projection` a few time steps at a time
        (`projection_block`, the format's `first_matrix` / `rest`), so memory stays near the uint8 frames' own
        size however long the clips are.
        """
        x = ops.convert_to_tensor(x)
        if "float" in str(x.dtype):
            x = cast_input(x, self.compute_dtype)
        scale = None if self.input_scale == 1.0 else self.input_scale
        shift = None if self.input_shift == 0.0 else self.input_shift
        if dp_mask is not None:
            scale = dp_mask if scale is None else dp_mask * scale
            shift = None if shift is None else dp_mask * shift

        def whole():
            return self.kernel_format.matmul(x, self.kernel_weights, scale=scale, shift=shift,
                                             first_dtype=self.projection_dtype)

        def blocks():
            from ttrnn.projection import project_in_blocks

            fmt, weights = self.kernel_format, list(self.kernel_weights)
            return project_in_blocks(x, fmt.first_matrix(weights), fmt.rest, weights, scale, shift, block_steps,
                                     self.projection_dtype, keep_first=bool(training))

        block_steps = self._block_steps(x)
        if block_steps is None:
            z = whole()
        elif self.projection_block is not None:            # asked for explicitly: always blocks
            z = blocks()
        elif x.shape[0] is not None and x.shape[1] is not None:
            z = blocks() if x.shape[0] * x.shape[1] > WHOLE_BATCH_FRAMES else whole()
        else:                                              # one trace for every padded length: decide per batch
            import tensorflow as tf

            z = tf.cond(ops.shape(x)[0] * ops.shape(x)[1] > WHOLE_BATCH_FRAMES, blocks, whole)
        bias = self._input_bias() if self.use_bias else None
        return z if bias is None else z + bias

    def _block_steps(self, x):
        """Time steps per block of the bounded projection for these whole clips `x` `(B, T, D)`, or None for the
        whole-batch path (float frames, `projection_block=0`, chunked or non-TensorFlow recurrence, or XLA forced
        with `supports_jit = True`: the blocks' dynamic shapes do not compile)."""
        block = PROJECTION_BLOCK_FRAMES if self.projection_block is None else self.projection_block
        if not block or "float" in str(x.dtype) or self.time_chunk or self.supports_jit \
                or keras.backend.backend() != "tensorflow":
            return None
        if x.shape[0] is None:            # a trace for any batch size (reduce_retracing): decided at run time
            return ops.maximum(1, block // ops.shape(x)[0])
        steps = max(1, block // x.shape[0])
        # One block would be the whole batch: the plain path is the same memory and skips the loop (blocks
        # measured 0.87-0.92x at T = 1). Batches of <= WHOLE_BATCH_FRAMES frames go whole by default (_project).
        return None if x.shape[1] is not None and x.shape[1] <= steps else steps

    def _recurrent_masks(self, h, training):
        if not (training and self.recurrent_dropout > 0):
            return None
        ones = ops.ones_like(h)
        count = 1 if self.shared_recurrent_dropout else self.GATES
        return [keras.random.dropout(ones, self.recurrent_dropout, seed=self.seed_generator)
                for _ in range(count)]

    def call(self, sequences, initial_state=None, mask=None, training=False):
        x = ops.convert_to_tensor(sequences)
        batch = ops.shape(x)[0]
        steps = ops.shape(x)[1]
        if initial_state is None:
            states = [ops.zeros((batch, self.units), dtype=self.compute_dtype) for _ in range(self.N_STATES)]
        else:
            states = [ops.cast(s, self.compute_dtype) for s in
                      (initial_state if isinstance(initial_state, (list, tuple)) else [initial_state])]
        step_mask = ops.ones((batch, steps), dtype="bool") if mask is None else ops.cast(mask, "bool")
        dp_mask = None
        if training and self.dropout > 0:
            dp_mask = keras.random.dropout(ops.ones((batch, x.shape[-1]), dtype=self.compute_dtype),
                                           self.dropout, seed=self.seed_generator)
        rec_masks = self._recurrent_masks(states[0], training)

        chunk = self.time_chunk
        project = chunk > 0
        if not project:                                      # project every frame, batch-major, then recur
            x = self._project(x, None if dp_mask is None else dp_mask[:, None, :], training)
            chunk = 1
        if self.go_backwards:
            x, step_mask = ops.flip(x, axis=1), ops.flip(step_mask, axis=1)
        x = ops.transpose(x, (1, 0, 2))                      # (T, B, D|GU), time-major
        step_mask = ops.transpose(step_mask, (1, 0))         # (T, B)
        if self._fused():                                    # XLA loops over the projections, own backward
            from ttrnn.fused_scan import fused_scan

            outputs, final = fused_scan(self._step, x, step_mask, states, ops.convert_to_tensor(self.recurrent_kernel),
                                        self._recurrent_bias(), rec_masks, return_sequences=self.return_sequences)
            return self._outputs(outputs, final)
        if chunk > 1:                                        # pad T to a multiple of the chunk, padding masked
            pad = (-steps) % chunk
            x = ops.pad(x, [[0, pad], [0, 0], [0, 0]])
            step_mask = ops.pad(step_mask, [[0, pad], [0, 0]], constant_values=False)
        x = ops.reshape(x, (-1, chunk, batch, x.shape[-1]))
        step_mask = ops.reshape(step_mask, (-1, chunk, batch, 1))

        rec_bias = self._recurrent_bias()
        step_ops = StepOps(self.recurrent_kernel)

        def scan_step(inputs, carry):
            xc, mc = inputs                                  # (chunk, B, D|GU), (chunk, B, 1)
            zc = self._project(xc, dp_mask) if project else xc
            carry = list(carry)
            outs = []
            for j in range(chunk):
                new = self._step(zc[j], carry, step_ops, rec_bias, rec_masks)
                carry = [ops.where(mc[j], s_new, s_old) for s_new, s_old in zip(new, carry)]
                outs.append(carry[0])                        # masked step: previous output, as Keras
            return ops.stack(outs, axis=0), carry

        # Keras's own RNN loop (what keras.layers.RNN runs on), time-major over chunks.
        # (input_length is passed because the inputs are a tuple; it is the number of chunks.)
        n_chunks = x.shape[0] if x.shape[0] is not None else ops.shape(x)[0]
        _, outputs, final = backend.rnn(scan_step, (x, step_mask), states, time_major=True,
                                        input_length=n_chunks, return_all_outputs=self.return_sequences)
        if self.return_sequences:
            outputs = ops.reshape(outputs, (-1, batch, self.units))[:steps]
        return self._outputs(outputs, list(final))

    def _fused(self):
        """`ttrnn.fused_scan` runs the recurrence: when asked, all frames are projected first, on TensorFlow."""
        return self.recurrence == "fused" and self.time_chunk == 0 and keras.backend.backend() == "tensorflow"

    def _outputs(self, outputs, final):
        """`outputs` `(T, B, U)` time-major (return_sequences) and the final states → what `call` returns."""
        if self.return_sequences:
            output = ops.reshape(ops.transpose(outputs, (1, 0, 2)), (ops.shape(outputs)[1], -1, self.units))
        else:
            output = final[0]
        if self.return_state:
            return [output] + final
        return output

    def _recurrent_bias(self):
        """Bias added to the recurrent matmul products inside the step (GRU with reset_after), else None."""
        return None

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * self.N_STATES
        return output_mask

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, steps = sequences_shape[0], sequences_shape[1]
        out = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return [out] + [(batch, self.units)] * self.N_STATES
        return out

    def get_config(self):
        config = super().get_config()
        config.update(self._format_config())
        config.update({
            "preset": self.preset,
            "activation": keras.activations.serialize(self.activation),
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": keras.constraints.serialize(self.recurrent_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "shared_recurrent_dropout": self.shared_recurrent_dropout,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "time_chunk": self.time_chunk,
            "recurrence": self.recurrence,
            "projection_dtype": self.projection_dtype,
            "projection_block": self.projection_block,
            "input_scale": self.input_scale,
            "input_shift": self.input_shift,
            "seed": self.seed,
        })
        return config


_TT_ARGS_DOC = """
    Args:
        tt_input_shape: input modes `n`; `prod(n)` must equal the frame dimension `D`.
        tt_output_shape: hidden modes `m`; `units = prod(m)`. The TT kernel's first output mode is
            `m_0 * gates`.
        tt_ranks: `d + 1` ranks, `r_0 = r_d = 1`.
"""

_FORMAT_ARGS_DOC = """
    Args:
        input_modes: input modes `n`; `prod(n)` must equal the frame dimension `D`.
        output_modes: hidden modes `m`; `units = prod(m)`. The kernel's first output mode is `m_0 * gates`.
        ranks: an int or the format's rank list (`ttrnn.formats.<name>`); None = `formats.DEFAULT_RANKS`.
        blocks: block-term formats only: the number of terms (default 2).
"""

_ARGS_DOC = """
        preset: "modern" (default) or "paper"; sets the defaults of `kernel_initializer`,
            `recurrent_activation`, `reset_after` (GRU) and `shared_recurrent_dropout`. Explicit arguments win.
            - modern: `TTGlorotNormal` cores (dense equivalent has Glorot variance), sigmoid gates,
              `reset_after=True`, one recurrent-dropout mask per gate (as `keras.layers.GRU/LSTM`).
            - paper: what the original TT-RNN code (Keras 2 / Theano) computed: `FlatGlorotUniform` cores
              (Keras 2.0 glorot_uniform on the flat 1-D core vector: U(±sqrt(3/sqrt(L)))), Keras-1/2
              `hard_sigmoid` = clip(0.2x + 0.5, 0, 1) gates, GRU reset gate applied before the recurrent
              matmul (`reset_after=False`), and ONE recurrent-dropout mask (fixed per sequence) shared by all
              gates' recurrent matmuls. The original's input `dropout` argument had no effect (its mask was
              all ones); here `dropout` does what it says and both presets default it to 0. The original TT_GRU
              also added its bias twice (a 2x reparametrisation of a zero-initialised bias); not reproduced.
        activation, recurrent_activation, use_bias: as in Keras.
        kernel_initializer / kernel_regularizer / kernel_constraint: for the kernel's factors (each weight).
        recurrent_*, bias_*: as in Keras; `bias` has the Keras layout.
        dropout: input dropout, one mask per sequence on the raw frame, shared by all gates (the single TT
            matrix projects all gates at once, like Keras `implementation=2`).
        recurrent_dropout: variational dropout on the previous hidden state in the recurrent matmuls.
        shared_recurrent_dropout: one mask for all gates (paper) instead of one per gate (Keras).
        return_sequences, return_state, go_backwards: as in Keras (masked steps carry the state through and
            repeat the previous output, as Keras 3 with its default `zero_output_for_mask=False`).
        time_chunk: frames projected per TT contraction inside the scan (1 = per step, 0 = all frames before
            the recurrence). Only speed changes.
        recurrence: "fused" (default) runs the time loop with `ttrnn.fused_scan` (XLA-compiled loops with a
            hand-scheduled backward pass) when `time_chunk=0` on TensorFlow; "keras" runs Keras's RNN loop
            under TF autodiff (the reference the fused loop is tested against). Only speed changes.
        projection_block: frames per block when whole uint8 clips are projected (`ttrnn.projection`: memory
            near the uint8 frames' size at any clip length); None = the measured default: batches of more than
            `WHOLE_BATCH_FRAMES` frames in blocks of `PROJECTION_BLOCK_FRAMES`, smaller ones whole; 0 = always
            the whole batch at once (a float copy of every frame of the batch lives during the contraction).
            Only memory and speed change.
        input_scale, input_shift: the layer sees `x * input_scale + input_shift` (default 1, 0). Lets raw uint8
            frames enter the layer, which casts and scales one time chunk at a time (the models use this for
            the pixel scaling: a float32 copy of a whole padded batch is 4x the uint8 frames).
        seed: seed for the dropout masks.
    Call: `layer(sequences, initial_state=None, mask=None, training=False)`, `sequences` `(batch, T, D)` float
    or uint8 (cast inside); `mask` `(batch, T)` bool (or from an upstream `keras.layers.Masking(0.0)`).
    Attributes: `factors` (the format's documented layout), `kernel_param_count` (kernel factors only),
    `full_kernel()`, `recurrent_kernel`, `bias`; TT layers also `tt_cores` and `tt_param_count`.
"""



class _TTLayer(_Recurrent):
    """The TT format with the TT-RNN arguments `tt_input_shape`, `tt_output_shape`, `tt_ranks` (d + 1 ranks)."""

    FORMAT = "tt"

    def __init__(self, tt_input_shape, tt_output_shape, tt_ranks, **kwargs):
        n, m, r = tt.check_tt_shape(tt_input_shape, tt_output_shape, tt_ranks)
        super().__init__(n, m, r, **kwargs)
        self.tt_input_shape, self.tt_output_shape, self.tt_ranks = list(n), list(m), list(r)
        self.tt_kernel_output_shape = list(self.kernel_format.m)
        self.tt_param_count = self.kernel_param_count

    def build(self, input_shape):
        tt.check_tt_shape(self.tt_input_shape, self.tt_output_shape, self.tt_ranks, input_dim=input_shape[-1])
        super().build(input_shape)
        self.tt_cores = self.kernel_weights

    def _format_config(self):
        return {"tt_input_shape": self.tt_input_shape, "tt_output_shape": self.tt_output_shape,
                "tt_ranks": self.tt_ranks}


class _FormatLayer(_Recurrent):
    """Any other format, with `input_modes`, `output_modes`, `ranks`, `blocks`."""

    def __init__(self, input_modes, output_modes, ranks=None, blocks=None, **kwargs):
        super().__init__(input_modes, output_modes, ranks, blocks, **kwargs)
        self.input_modes, self.output_modes = list(self.kernel_format.n), [int(v) for v in output_modes]
        self.ranks, self.blocks = list(self.kernel_format.ranks), self.kernel_format.blocks

    def _format_config(self):
        return {"input_modes": self.input_modes, "output_modes": self.output_modes, "ranks": self.ranks,
                "blocks": self.blocks}


class _SimpleRNNCell:
    """Elman step `h_t = activation(x_t W + h_{t-1} U + b)`."""

    GATES = 1
    N_STATES = 1

    def _step(self, z, states, f, rec_bias, rec_masks):
        h = states[0] if rec_masks is None else states[0] * rec_masks[0]
        out = z + f.matmul(h, 0, self.units)
        out = f.act(self.activation, out) if self.activation is not None else out
        return [out]


class _GRUCell:
    """GRU step, gates z, r, h; `reset_after` (None → the preset's: modern True, paper False = reset gate before
    the recurrent matmul, as the original)."""

    GATES = 3
    N_STATES = 1

    def __init__(self, *args, reset_after=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.reset_after = bool(PRESETS[self.preset]["reset_after"] if reset_after is None else reset_after)

    def _build_bias(self):
        shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
        return self.add_weight(shape=shape, name="bias", initializer=self.bias_initializer,
                               regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def _input_bias(self):
        return self.bias[0] if self.reset_after else self.bias

    def _recurrent_bias(self):
        return self.bias[1] if self.reset_after and self.use_bias else None

    def _step(self, z, states, f, rec_bias, rec_masks):
        # Gates z and r side by side: one add and one activation for both, split once (the backward of a split
        # is one concatenate; of column slices, one pad per slice: 1.4x faster fused recurrence, measured).
        u = self.units
        h = states[0]
        x_zr, x_h = ops.split(z, [2 * u], axis=-1)
        shared = rec_masks is None or len(rec_masks) == 1
        if shared:                      # one matmul for the gates that see the same (masked) state
            hm = h if rec_masks is None else h * rec_masks[0]
            inner = f.matmul(hm, 0, 3 * u if self.reset_after else 2 * u)
            if rec_bias is not None:
                inner = inner + rec_bias
            rec_zr, rec_h = ops.split(inner, [2 * u], axis=-1) if self.reset_after else (inner, None)
        else:
            rec_zr = ops.concatenate([f.matmul(h * rec_masks[0], 0, u), f.matmul(h * rec_masks[1], u, 2 * u)], axis=-1)
            if rec_bias is not None:
                rec_zr = rec_zr + rec_bias[:2 * u]
        zg, rg = ops.split(f.act(self.recurrent_activation, x_zr + rec_zr), 2, axis=-1)
        hh = h if rec_masks is None else h * rec_masks[-1]
        if self.reset_after:
            if not shared:
                rec_h = f.matmul(hh, 2 * u, 3 * u)
                if rec_bias is not None:
                    rec_h = rec_h + rec_bias[2 * u:]
            rec_h = rg * rec_h
        else:
            rec_h = f.matmul(rg * hh, 2 * u, 3 * u)
        cand = f.act(self.activation, x_h + rec_h)
        return [zg * h + (1.0 - zg) * cand]

    def get_config(self):
        config = super().get_config()
        config["reset_after"] = self.reset_after
        return config


class _LSTMCell:
    """LSTM step, gates i, f, c, o, states `[h, c]`; `unit_forget_bias` (default True, as Keras and the
    original): forget-gate bias starts at 1."""

    GATES = 4
    N_STATES = 2

    def __init__(self, *args, unit_forget_bias=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _build_bias(self):
        u, init = self.units, self.bias_initializer
        if self.unit_forget_bias:
            def init(shape, dtype=None):
                return ops.concatenate([
                    self.bias_initializer((u,), dtype=dtype),
                    keras.initializers.get("ones")((u,), dtype=dtype),
                    self.bias_initializer((2 * u,), dtype=dtype),
                ])
        return self.add_weight(shape=(4 * u,), name="bias", initializer=init,
                               regularizer=self.bias_regularizer, constraint=self.bias_constraint)

    def _step(self, z, states, f, rec_bias, rec_masks):
        u = self.units
        h, c = states
        if rec_masks is None or len(rec_masks) == 1:
            z = z + f.matmul(h if rec_masks is None else h * rec_masks[0], 0, 4 * u)
        else:
            z = z + ops.concatenate([f.matmul(h * rec_masks[g], g * u, (g + 1) * u) for g in range(4)], axis=-1)
        z_if, z_c, z_o = ops.split(z, [2 * u, 3 * u], axis=-1)       # gates i, f side by side: one activation
        i, fg = ops.split(f.act(self.recurrent_activation, z_if), 2, axis=-1)
        c = fg * c + i * f.act(self.activation, z_c)
        o = f.act(self.recurrent_activation, z_o)
        h = o * f.act(self.activation, c)
        return [h, c]

    def get_config(self):
        config = super().get_config()
        config["unit_forget_bias"] = self.unit_forget_bias
        return config


_SIMPLE_DOC = """{name}: Elman RNN `h_t = activation(x_t W + h_{{t-1}} U + b)` with a {fmt} input kernel `W`; matches
    `keras.layers.SimpleRNN` given `full_kernel()`, `recurrent_kernel`, `bias`.
"""
_GRU_DOC = """{name}: GRU with a {fmt} input kernel (gates z, r, h); matches `keras.layers.GRU` with the same
    `reset_after` given `full_kernel()`, `recurrent_kernel`, `bias` (bias `(3U,)`, or `(2, 3U)` when
    `reset_after=True`, as Keras). Extra arg `reset_after`: None → preset (modern True, paper False).
"""
_LSTM_DOC = """{name}: LSTM with a {fmt} input kernel (gates i, f, c, o); matches `keras.layers.LSTM` given
    `full_kernel()`, `recurrent_kernel`, `bias` `(4U,)`. States `[h, c]`. Extra arg `unit_forget_bias`
    (default True).
"""
_FORMAT_NAMES = {"tt": "TT-matrix", "tr": "tensor-ring", "bt": "block-term Tucker", "cp": "CP",
                 "ht": "hierarchical-Tucker"}


def _doc(template, name, fmt):
    head = template.format(name=name, fmt=_FORMAT_NAMES[fmt])
    return head + (_TT_ARGS_DOC if fmt == "tt" else _FORMAT_ARGS_DOC) + _ARGS_DOC


@keras.saving.register_keras_serializable(package="ttrnn")
class TTSimpleRNN(_SimpleRNNCell, _TTLayer):
    __doc__ = _doc(_SIMPLE_DOC, "TTSimpleRNN", "tt")


@keras.saving.register_keras_serializable(package="ttrnn")
class TTGRU(_GRUCell, _TTLayer):
    __doc__ = _doc(_GRU_DOC, "TTGRU", "tt")


@keras.saving.register_keras_serializable(package="ttrnn")
class TTLSTM(_LSTMCell, _TTLayer):
    __doc__ = _doc(_LSTM_DOC, "TTLSTM", "tt")


@keras.saving.register_keras_serializable(package="ttrnn")
class TRSimpleRNN(_SimpleRNNCell, _FormatLayer):
    __doc__ = _doc(_SIMPLE_DOC, "TRSimpleRNN", "tr")
    FORMAT = "tr"


@keras.saving.register_keras_serializable(package="ttrnn")
class TRGRU(_GRUCell, _FormatLayer):
    __doc__ = _doc(_GRU_DOC, "TRGRU", "tr")
    FORMAT = "tr"


@keras.saving.register_keras_serializable(package="ttrnn")
class TRLSTM(_LSTMCell, _FormatLayer):
    __doc__ = _doc(_LSTM_DOC, "TRLSTM", "tr")
    FORMAT = "tr"


@keras.saving.register_keras_serializable(package="ttrnn")
class BTSimpleRNN(_SimpleRNNCell, _FormatLayer):
    __doc__ = _doc(_SIMPLE_DOC, "BTSimpleRNN", "bt")
    FORMAT = "bt"


@keras.saving.register_keras_serializable(package="ttrnn")
class BTGRU(_GRUCell, _FormatLayer):
    __doc__ = _doc(_GRU_DOC, "BTGRU", "bt")
    FORMAT = "bt"


@keras.saving.register_keras_serializable(package="ttrnn")
class BTLSTM(_LSTMCell, _FormatLayer):
    __doc__ = _doc(_LSTM_DOC, "BTLSTM", "bt")
    FORMAT = "bt"


@keras.saving.register_keras_serializable(package="ttrnn")
class CPSimpleRNN(_SimpleRNNCell, _FormatLayer):
    __doc__ = _doc(_SIMPLE_DOC, "CPSimpleRNN", "cp")
    FORMAT = "cp"


@keras.saving.register_keras_serializable(package="ttrnn")
class CPGRU(_GRUCell, _FormatLayer):
    __doc__ = _doc(_GRU_DOC, "CPGRU", "cp")
    FORMAT = "cp"


@keras.saving.register_keras_serializable(package="ttrnn")
class CPLSTM(_LSTMCell, _FormatLayer):
    __doc__ = _doc(_LSTM_DOC, "CPLSTM", "cp")
    FORMAT = "cp"


@keras.saving.register_keras_serializable(package="ttrnn")
class HTSimpleRNN(_SimpleRNNCell, _FormatLayer):
    __doc__ = _doc(_SIMPLE_DOC, "HTSimpleRNN", "ht")
    FORMAT = "ht"


@keras.saving.register_keras_serializable(package="ttrnn")
class HTGRU(_GRUCell, _FormatLayer):
    __doc__ = _doc(_GRU_DOC, "HTGRU", "ht")
    FORMAT = "ht"


@keras.saving.register_keras_serializable(package="ttrnn")
class HTLSTM(_LSTMCell, _FormatLayer):
    __doc__ = _doc(_LSTM_DOC, "HTLSTM", "ht")
    FORMAT = "ht"
