"""The recurrent loop that every ttrnn recurrent layer runs (`FormatRNN`), and its presets.

A recurrent layer is a kernel (`ttrnn.layers.kernel.Kernel`: the input-to-hidden matrix `W` in a tensor format),
a cell (`ttrnn.layers.cells`: one SimpleRNN / GRU / LSTM step) and this loop. The public classes (`ttrnn.TTGRU`
and the 14 others, written out in `ttrnn.layers.simple_rnn`, `ttrnn.layers.gru` and `ttrnn.layers.lstm`) are
`FormatRNN` subclasses that name the cell and the format and take the format's constructor arguments
(`ttrnn.layers.kernel.TTArguments` / `FormatArguments`).

One factorized matrix maps a frame `(D,)` to all gate pre-activations `(gates * units,)`: the first output mode is
multiplied by the number of gates, so the dense kernel's column blocks are the gates in Keras order and
`full_kernel()`, `recurrent_kernel`, `bias` drop into `keras.layers.GRU` / `LSTM` / `SimpleRNN` (`set_weights`).

The loop: by default (`time_chunk=0`) all frames are projected first, batch-major, straight from the uint8 frames
(`Kernel.project`), then the recurrence scans over the small projections `(T, B, gates * units)`: on TensorFlow
with `ttrnn.layers.fused_scan` (XLA loops with a hand-scheduled backward pass), elsewhere, or with
`recurrence="keras"`, with Keras's loop (`keras.ops.scan`: `lax.scan` on JAX, a `tf.while_loop` on TensorFlow, a
Python loop on PyTorch). `time_chunk=k > 0` projects k frames at a time inside Keras's loop. `unroll=True` writes
the steps out one by one (Keras's `unroll`). While Keras's exporters trace a model (`model.export`), the layers take
their export path (`ttrnn.layers.kernel.exporting`): the whole projection with plain ops, then on TensorFlow the
while loop of `ttrnn.layers.plain_scan`, which tf2onnx and the LiteRT converter take.

The recurrent kernel `U` `(units, gates * units)` is one dense weight by default. With `recurrent_format` it is
factorized too, in any format on its own modes (`recurrent_input_modes` -> `recurrent_output_modes`, the gates
folded into the first output mode as for `W`); with `integrated=True` the layer holds one factorized matrix `V`
over `[x_t, h_{t-1}]` for all gates (FDHT's integrate-then-decompose, Yin et al., CVPR 2021), rows `[0, D)` for
the input, `[D, D + units)` for the state, padding after them. Either way every loop still takes a dense `U`:
`recurrent_kernel` forms it once per call (`Format.full` of the recurrent factors, or `Format.rows` of `V`'s
state rows), a cost that does not grow with the batch or the clip length, and the gradient flows through that
reconstruction into the factors. So the fused scan, Keras's loop, `unroll`, stateful layers and the export path
are the same code for every variant. The integrated input part is `[x_t, 0] @ V`: the frames padded with zeros
to V's rows inside the projection (`ttrnn.layers.kernel.pad_rows`), so uint8 frames and the bounded projection
work as for `W`. Why this layout: the frames come first, so their padding is at the end of each row and the
frames' own values keep their offsets; the state's rows are one contiguous block that `Format.rows` reads off
together; rows after it absorb the padding that an uneven `D + units` needs to factor into even modes.

Keras's RNN arguments are all here, with Keras's meaning (`keras.layers.RNN`): `stateful` (the states in variables
carried from call to call, `reset_state()`; the same loops run from them), `zero_output_for_mask`, `unroll`, and
`implementation`, which is accepted and saved but changes nothing (one kernel projects every gate).

Compilation: on TensorFlow the layers declare `supports_jit = False`, so `jit_compile="auto"` runs the contractions
on oneDNN without XLA (faster on CPU: oneDNN beats XLA's CPU dot on them); set `layer.supports_jit = True` to force
XLA. On JAX they declare True (JAX has only XLA: False would run the step op by op). Figures: docs/performance.md.
"""

import importlib
import math

import keras
from keras import ops
from keras.src.utils import tracking

from ttrnn import formats
from ttrnn.formats import tt
from ttrnn.formats.common import is_float
from ttrnn.layers.activations import hard_sigmoid
from ttrnn.layers.cells import StepOps
from ttrnn.layers.kernel import Kernel, exporting, pad_rows

DEFAULT_TIME_CHUNK = 0
# The recurrence's fast path per backend (a module with `fused_scan`); other backends run Keras's loop.
FAST_SCAN = {"tensorflow": "ttrnn.layers.fused_scan"}
# The recurrence on the export path per backend (a module with `plain_scan`); other backends run Keras's loop.
PLAIN_SCAN = {"tensorflow": "ttrnn.layers.plain_scan"}

PRESETS = {
    # New users: format-aware Glorot weights, logistic gates, cuDNN-style GRU, Keras-style per-gate recurrent dropout.
    "modern": {"kernel_initializer": lambda: tt.TTGlorotNormal(), "recurrent_activation": "sigmoid",
               "reset_after": True, "shared_recurrent_dropout": False},
    # What the original Theano/Keras-2 code computed.
    "paper": {"kernel_initializer": lambda: tt.FlatGlorotUniform(), "recurrent_activation": hard_sigmoid,
              "reset_after": False, "shared_recurrent_dropout": True},
}
# Keras's values of `implementation` (0: a legacy value its configs may hold); here the kernel always projects every
# gate at once, so the value changes nothing.
IMPLEMENTATIONS = (0, 1, 2)
# The serialized weight settings: `{kernel,recurrent,bias}_{initializer,regularizer,constraint}`.
_SERIALIZED = {"initializer": keras.initializers, "regularizer": keras.regularizers, "constraint": keras.constraints}


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


class FormatRNN(keras.layers.Layer):
    """A recurrent layer whose input kernel is in a tensor format: the time loop over a `Kernel` and a cell.

    It does what every recurrent layer does whatever its cell and format: the weights (`build`: the kernel's
    factors, `recurrent_kernel` `(units, GATES * units)`, `bias` in the cell's layout), the presets, input scaling,
    dropout masks, masking, initial and returned states, the state variables of a stateful layer, `go_backwards`,
    `zero_output_for_mask`, the choice of time loop, `get_config`.

    A subclass sets `CELL` (a `ttrnn.layers.cells` class) with its `GATES` and `N_STATES` (the per-cell bases
    `FormatSimpleRNN`, `FormatGRU`, `FormatLSTM`) and `FORMAT` (a name of `ttrnn.formats.FORMAT_NAMES`), and puts
    the format's constructor arguments in front of it (`ttrnn.layers.kernel.TTArguments` / `FormatArguments`),
    which call this constructor with `input_modes, output_modes, ranks, blocks`. The recurrent kernel's own
    arguments (`recurrent_format`, its modes, ranks, blocks; `integrated`) are checked by `_recurrent_spec`. The
    cell's own options (GRU `reset_after`, LSTM `unit_forget_bias`) arrive in `kwargs` and go to the cell. Every
    argument is documented on the public classes (e.g. `ttrnn.TTGRU`).
    """

    FORMAT = None
    CELL = None
    GATES = None
    N_STATES = None

    def __init__(self, input_modes, output_modes, ranks=None, blocks=None, preset="modern", activation="tanh",
                 recurrent_activation=None, use_bias=True, kernel_initializer=None,
                 recurrent_initializer=None, bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, shared_recurrent_dropout=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False, zero_output_for_mask=False,
                 implementation=2, time_chunk=DEFAULT_TIME_CHUNK, input_scale=1.0, input_shift=0.0, seed=None,
                 projection_dtype=None, recurrence="fused", projection_block=None, recurrent_format=None,
                 recurrent_input_modes=None, recurrent_output_modes=None, recurrent_ranks=None,
                 recurrent_blocks=None, integrated=False, **kwargs):
        options = {name: kwargs.pop(name, default) for name, default in self.CELL.OPTIONS.items()}
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        _check_choice("preset", preset, sorted(PRESETS))
        p = PRESETS[preset]
        self.preset = preset
        # Gate factor in the first output mode: column blocks of full_kernel() are the gates.
        spec = formats.make(self.FORMAT, input_modes, output_modes, ranks, blocks)
        self.units = math.prod(spec.m)
        gates = (spec.m[0] * self.CELL.GATES,) + spec.m[1:]
        self.kernel = Kernel(formats.make(self.FORMAT, spec.n, gates, spec.ranks, spec.blocks))
        self.kernel_format = self.kernel.format
        self.kernel_param_count = self.kernel_format.param_count()
        self._recurrent_spec(spec.m, recurrent_format, recurrent_input_modes, recurrent_output_modes,
                             recurrent_ranks, recurrent_blocks, integrated)
        options = {k: p.get(k) if v is None else v for k, v in options.items()}
        self.cell = self.CELL(self.units, keras.activations.get(activation), keras.activations.get(
            p["recurrent_activation"] if recurrent_activation is None else recurrent_activation), **options)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(
            p["kernel_initializer"]() if kernel_initializer is None else kernel_initializer)
        if recurrent_initializer is None:        # a dense U: orthogonal, as Keras; factors: as the input kernel's
            recurrent_initializer = "orthogonal" if self.recurrent is None else p["kernel_initializer"]()
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
        self.dropout, self.recurrent_dropout = float(dropout), float(recurrent_dropout)
        self.shared_recurrent_dropout = bool(
            p["shared_recurrent_dropout"] if shared_recurrent_dropout is None else shared_recurrent_dropout)
        self.return_sequences, self.return_state, self.go_backwards = return_sequences, return_state, go_backwards
        self.stateful, self.unroll = bool(stateful), bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        _check_choice("implementation", implementation, IMPLEMENTATIONS)
        self.implementation = implementation
        self.states = None                                   # the state variables of a stateful layer (build)
        self._expected_batch_size = None
        if int(time_chunk) < 0:
            raise ValueError(f"time_chunk must be >= 0 (0 = project all frames at once), got {time_chunk}")
        self.time_chunk = int(time_chunk)
        _check_choice("recurrence", recurrence, ("fused", "keras"))
        self.recurrence = recurrence
        _check_choice("projection_dtype", projection_dtype, (None, "float32", "bfloat16"))
        self.projection_dtype = None if projection_dtype == "float32" else projection_dtype
        if projection_block is not None and int(projection_block) < 0:
            raise ValueError(f"projection_block must be >= 0 (0 = whole batch at once) or None, got {projection_block}")
        self.projection_block = None if projection_block is None else int(projection_block)
        self.input_scale, self.input_shift = float(input_scale), float(input_shift)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        # TensorFlow: faster without XLA (module docstring); JAX has only XLA (False would run eagerly).
        self.supports_jit = keras.backend.backend() != "tensorflow"
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def _recurrent_spec(self, output_modes, recurrent_format, input_modes, modes, ranks, blocks, integrated):
        """The recurrent kernel's arguments checked, kept as attributes, and its `Kernel` (`self.recurrent`, None
        for a dense `U` or an integrated layer). ValueError (one line) for a bad combination."""
        self.integrated, self.input_dim = bool(integrated), None
        given = {name: value for name, value in (("recurrent_input_modes", input_modes),
                                                 ("recurrent_output_modes", modes), ("recurrent_ranks", ranks),
                                                 ("recurrent_blocks", blocks)) if value is not None}
        if self.integrated and recurrent_format is not None:
            raise ValueError("integrated=True puts the recurrent weights in the one factorized matrix over [x, h]: "
                             f"recurrent_format must be None, got {recurrent_format!r}")
        if recurrent_format is None and given:
            raise ValueError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to a factorized recurrent "
                             "kernel only: give recurrent_format too")
        self.recurrent_format, self.recurrent = recurrent_format, None
        self.recurrent_input_modes = self.recurrent_output_modes = self.recurrent_ranks = None
        self.recurrent_blocks = self.recurrent_kernel_format = None
        self.recurrent_param_count = 0 if self.integrated else self.units * self.CELL.GATES * self.units
        if recurrent_format is None:
            return
        if recurrent_format not in formats.FORMAT_NAMES:
            raise ValueError(f"unknown recurrent_format {recurrent_format!r} (choose from "
                             f"{', '.join(formats.FORMAT_NAMES)}, or None for a dense recurrent kernel)")
        input_modes = output_modes if input_modes is None else input_modes
        modes = output_modes if modes is None else modes
        spec = formats.make(recurrent_format, input_modes, modes, ranks, blocks)
        for name, dim in (("recurrent_input_modes", spec.input_dim), ("recurrent_output_modes", spec.output_dim)):
            if dim != self.units:
                raise ValueError(f"{name} multiply to {dim}, not to the layer's {self.units} units")
        gates = (spec.m[0] * self.CELL.GATES,) + spec.m[1:]
        self.recurrent = Kernel(formats.make(recurrent_format, spec.n, gates, spec.ranks, spec.blocks),
                                prefix="recurrent_")
        self.recurrent_kernel_format = self.recurrent.format
        self.recurrent_input_modes, self.recurrent_output_modes = list(spec.n), list(spec.m)
        self.recurrent_ranks, self.recurrent_blocks = list(spec.ranks), spec.blocks
        self.recurrent_param_count = self.recurrent_kernel_format.param_count()

    activation = property(lambda self: self.cell.activation)
    recurrent_activation = property(lambda self: self.cell.recurrent_activation)

    # ---- weights -------------------------------------------------------------------------------------------
    def build(self, input_shape):
        self.input_dim = int(input_shape[-1])
        if not self.integrated:
            self.kernel_format.check_input_dim(self.input_dim)
        elif self.kernel_format.input_dim < self.input_dim + self.units:
            raise ValueError(f"integrated=True: the input modes {list(self.kernel_format.n)} multiply to "
                             f"{self.kernel_format.input_dim}, fewer than the input's {self.input_dim} values plus "
                             f"{self.units} units = {self.input_dim + self.units} rows of [x, h]")
        self.kernel_weights = self.kernel.build(self, self.kernel_initializer, self.kernel_regularizer,
                                                self.kernel_constraint)
        # The weights in this order whatever the recurrent kernel (saved files index them): the input kernel's
        # factors, the recurrent kernel (a dense U, or its factors; none when integrated), the bias.
        self._recurrent_kernel = None
        self.recurrent_weights = []
        if self.recurrent is not None:
            self.recurrent_weights = self.recurrent.build(self, self.recurrent_initializer,
                                                          self.recurrent_regularizer, self.recurrent_constraint)
        elif not self.integrated:
            self._recurrent_kernel = self.add_weight(
                shape=(self.units, self.CELL.GATES * self.units), name="recurrent_kernel",
                initializer=self.recurrent_initializer, regularizer=self.recurrent_regularizer,
                constraint=self.recurrent_constraint)
            self.recurrent_weights = [self._recurrent_kernel]
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=self.cell.bias_shape(), name="bias",
                                        initializer=self.cell.bias_initializer(self.bias_initializer),
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        if self.stateful:                                    # as keras.layers.RNN.build
            if self.states is not None:
                self.reset_state()
            else:
                if input_shape[0] is None:
                    raise ValueError("When using `stateful=True` in a RNN, the batch size must be static. Found "
                                     f"dynamic batch size: sequence.shape={tuple(input_shape)}")
                self._create_state_variables(int(input_shape[0]))
                self._expected_batch_size = int(input_shape[0])

    @property
    def recurrent_kernel(self):
        """`U` `(units, GATES * units)`, dense: the weight itself (no `recurrent_format`), the reconstruction of
        the recurrent factors (`Format.full`), or an integrated layer's rows `[D, D + units)` of its one matrix
        (`Format.rows`). The time loop runs on this matrix, computed once per call: the gradient flows through
        the reconstruction into the factors."""
        if self.integrated:
            return self.kernel.rows(self.input_dim, self.units)
        if self.recurrent is not None:
            return self.recurrent.full()
        return self._recurrent_kernel

    @property
    def recurrent_factors(self):
        """The recurrent kernel's factors in its format's documented layout (`ttrnn.formats.<name>`); None for a
        dense `U` or an integrated layer (whose one matrix's factors are `factors`)."""
        return None if self.recurrent is None else self.recurrent.factors()

    def _create_state_variables(self, batch_size):
        """The states of a stateful layer, `N_STATES` variables `(batch_size, units)` of zeros. As Keras's RNN, they
        are not tracked: not among the layer's weights, not saved; `reset_state()` zeroes them."""
        # Keras's own scope for this (keras.layers.RNN uses it through a decorator): no public API does it.
        with tracking.DotNotTrackScope(), keras.name_scope(self.name, caller=self):
            self.states = [keras.Variable(ops.zeros((batch_size, self.units), dtype=self.variable_dtype),
                                          trainable=False, dtype=self.variable_dtype, name="rnn_state")
                           for _ in range(self.CELL.N_STATES)]

    def reset_state(self):
        """Zero the states of a stateful layer (nothing to do for a layer that is not stateful or not built)."""
        if self.states is not None:
            for v in self.states:
                v.assign(ops.zeros_like(v.value))

    def reset_states(self):
        """Alias of `reset_state` (Keras keeps both names)."""
        self.reset_state()

    # ---- forward -------------------------------------------------------------------------------------------
    def _project(self, x, dp_mask, training=False, plain=False):
        """`x` `(..., B, D)` frames (uint8 or float) → `(..., B, gates*units)` pre-activations incl. input bias:
        `((x * input_scale + input_shift) * dp_mask) @ W` (`Kernel.project`); `plain`: the export path (integer
        frames cast first, the whole projection: `ttrnn.layers.kernel.exporting`)."""
        x = ops.convert_to_tensor(x)
        if (is_float(x) or plain) and x.dtype != self.compute_dtype:
            x = ops.cast(x, self.compute_dtype)
        scale = None if self.input_scale == 1.0 else self.input_scale
        shift = None if self.input_shift == 0.0 else self.input_shift
        if dp_mask is not None:
            scale = dp_mask if scale is None else dp_mask * scale
            shift = None if shift is None else dp_mask * shift
        if self.integrated:                                  # [x, 0] @ W: the input's rows of the one matrix
            x, scale, shift = pad_rows(x, scale, shift, self.kernel_format.input_dim)
        z = self.kernel.project(x, scale, shift, self.projection_dtype, self.projection_block, training,
                                bounded=self._bounded() and not plain)
        bias = self.cell.input_bias(self.bias)
        return z if bias is None else z + bias

    def _bounded(self):
        """Whole clips may take the bounded projection: not with chunks (they are projected inside the loop) nor
        under forced XLA on TensorFlow (`supports_jit = True`: the blocks' dynamic shapes do not compile)."""
        return not (self.time_chunk or (self.supports_jit and keras.backend.backend() == "tensorflow"))

    def block_steps(self, x):
        """Time steps per block of the bounded projection this layer takes for the clips `x` `(B, T, D)`, or None
        for the whole-batch path (`Kernel.block_steps`, with `projection_block`)."""
        return self.kernel.block_steps(x, self.projection_block) if self._bounded() else None

    def _masks(self, batch, dim, h, training):
        """The input-dropout mask `(B, D)` and the recurrent ones (1 shared or one per gate), None when off."""
        if not training:
            return None, None
        dp = rec = None
        if self.dropout > 0:
            dp = keras.random.dropout(ops.ones((batch, dim), dtype=self.compute_dtype), self.dropout,
                                      seed=self.seed_generator)
        if self.recurrent_dropout > 0:
            count = 1 if self.shared_recurrent_dropout else self.CELL.GATES
            rec = [keras.random.dropout(ops.ones_like(h), self.recurrent_dropout, seed=self.seed_generator)
                   for _ in range(count)]
        return dp, rec

    def _initial_states(self, x, initial_state):
        """The states the loop starts from: `initial_state` if given, else the state variables of a stateful layer,
        else zeros. A stateful layer checks a static batch size against its variables' (as Keras)."""
        if self.stateful and self._expected_batch_size is not None and x.shape[0] is not None \
                and x.shape[0] != self._expected_batch_size:
            raise ValueError("If an RNN is stateful, the batch size of the input sequences must be the same as the "
                             f"batch size of the initial state. Expected batch size: {self._expected_batch_size}, "
                             f"received batch size: {x.shape[0]}")
        if initial_state is not None:
            states = initial_state if isinstance(initial_state, (list, tuple)) else [initial_state]
        elif self.stateful:
            states = [ops.convert_to_tensor(v) for v in self.states]
            if keras.backend.backend() == "torch":          # the assign after the loop is in place (as Keras)
                states = [ops.copy(s) for s in states]
        else:
            batch = ops.shape(x)[0]
            return [ops.zeros((batch, self.units), dtype=self.compute_dtype) for _ in range(self.CELL.N_STATES)]
        return [ops.cast(s, self.compute_dtype) for s in states]

    def call(self, sequences, initial_state=None, mask=None, training=False):
        x = ops.convert_to_tensor(sequences)
        batch, steps = ops.shape(x)[0], ops.shape(x)[1]
        if self.unroll and x.shape[1] is None:
            raise ValueError("Cannot unroll a RNN if the time dimension is undefined: give the sequences a static "
                             "length (e.g. `keras.Input(shape=(T, D))`)")
        states = self._initial_states(x, initial_state)
        plain = exporting()                                  # the export path: plain ops only
        time_chunk = 0 if plain else self.time_chunk         # (speed and memory only: exports project first)
        step_mask = ops.ones((batch, steps), dtype="bool") if mask is None else ops.cast(mask, "bool")
        dp_mask, rec_masks = self._masks(batch, x.shape[-1], states[0], training)
        if not time_chunk:                                   # project every frame, batch-major, then recur
            x = self._project(x, None if dp_mask is None else dp_mask[:, None, :], training, plain)
        if self.go_backwards:
            x, step_mask = ops.flip(x, axis=1), ops.flip(step_mask, axis=1)
        x = ops.transpose(x, (1, 0, 2))                      # (T, B, D|GU), time-major
        step_mask = ops.transpose(step_mask, (1, 0))         # (T, B)
        rec_bias = self.cell.recurrent_bias(self.bias)
        kernel = self.recurrent_kernel                       # dense U: reconstructed once per call if factorized
        fast = FAST_SCAN.get(keras.backend.backend())
        export_loop = PLAIN_SCAN.get(keras.backend.backend())
        if self.unroll:
            outputs, final = self._unrolled_loop(x, step_mask, states, kernel, rec_bias, rec_masks, dp_mask,
                                                 time_chunk)
        elif plain and export_loop:                          # the backend's loop of plain ops
            outputs, final = importlib.import_module(export_loop).plain_scan(
                self.cell.step, x, step_mask, states, kernel, rec_bias, rec_masks,
                return_sequences=self.return_sequences)
        elif self.recurrence == "fused" and not time_chunk and fast and not plain:   # the backend's own loop
            outputs, final = importlib.import_module(fast).fused_scan(
                self.cell.step, x, step_mask, states, ops.convert_to_tensor(kernel), rec_bias,
                rec_masks, return_sequences=self.return_sequences)
        else:
            outputs, final = self._keras_loop(x, step_mask, states, kernel, rec_bias, rec_masks, dp_mask,
                                              time_chunk)
        if self.stateful:
            for variable, state in zip(self.states, final):
                variable.assign(ops.cast(state, variable.dtype))
        last = final[0]
        if self.zero_output_for_mask and mask is not None:   # as Keras: zeros at masked steps, states carried
            if self.return_sequences:
                outputs = ops.where(step_mask[:, :, None], outputs, ops.zeros_like(outputs))
            last = ops.where(step_mask[-1][:, None], last, ops.zeros_like(last))
        return self._outputs(outputs, last, final)

    def _keras_loop(self, x, step_mask, states, kernel, rec_bias, rec_masks, dp_mask, time_chunk):
        """Keras's loop (`keras.ops.scan`) over chunks of `time_chunk` steps (1 when projected already): each
        chunk projects its frames (time_chunk > 0), then runs the cell step by step. The carry is the states
        and the chunk's outputs, and so are the per-chunk outputs (TensorFlow's `ops.scan` wants them alike)."""
        chunk, steps, batch = time_chunk or 1, ops.shape(x)[0], ops.shape(x)[1]
        if chunk > 1:                                        # pad T to a multiple of the chunk, padding masked
            pad = (-steps) % chunk
            x = ops.pad(x, [[0, pad], [0, 0], [0, 0]])
            step_mask = ops.pad(step_mask, [[0, pad], [0, 0]], constant_values=False)
        x = ops.reshape(x, (-1, chunk, batch, x.shape[-1]))
        step_mask = ops.reshape(step_mask, (-1, chunk, batch, 1))
        step_ops = StepOps(kernel)
        # Keras's TensorFlow scan fails on several sequences of unknown length (it checks their static lengths
        # against each other with a method None lacks): then the mask travels as one more input channel.
        packed = keras.backend.backend() == "tensorflow" and x.shape[0] is None
        xs = ops.concatenate([x, ops.cast(step_mask, x.dtype)], axis=-1) if packed else (x, step_mask)

        def scan_step(carry, inputs):
            # (chunk, B, D|GU), (chunk, B, 1)
            xc, mc = (inputs[..., :-1], inputs[..., -1:] > 0) if packed else inputs
            zc = self._project(xc, dp_mask) if time_chunk else xc
            carry, outs = list(carry[:-1]), []
            for j in range(chunk):
                new = self.cell.step(zc[j], carry, step_ops, rec_bias, rec_masks)
                carry = [ops.where(mc[j], s_new, s_old) for s_new, s_old in zip(new, carry)]
                outs.append(carry[0])                        # masked step: previous output, as Keras
            carry = carry + [ops.stack(outs, axis=0)]
            return carry, carry

        init = list(states) + [ops.zeros((chunk, batch, self.units), dtype=states[0].dtype)]
        final, per_chunk = ops.scan(scan_step, init, xs)
        outputs = ops.reshape(per_chunk[-1], (-1, batch, self.units))[:steps] if self.return_sequences else None
        return outputs, list(final[:-1])

    def _unrolled_loop(self, x, step_mask, states, kernel, rec_bias, rec_masks, dp_mask, time_chunk):
        """The steps written out one by one (`unroll=True`, a static number of steps): no loop op, the same
        results as `_keras_loop`. `time_chunk > 0` still projects that many frames per contraction."""
        steps = x.shape[0]
        chunk = time_chunk or steps
        step_ops, carry, outs = StepOps(kernel), list(states), []
        for t0 in range(0, steps, chunk):
            zc = self._project(x[t0:t0 + chunk], dp_mask) if time_chunk else x
            for t in range(t0, min(steps, t0 + chunk)):
                new = self.cell.step(zc[t - t0], carry, step_ops, rec_bias, rec_masks)
                m = step_mask[t][:, None]
                carry = [ops.where(m, s_new, s_old) for s_new, s_old in zip(new, carry)]
                outs.append(carry[0])
        outputs = ops.stack(outs, axis=0) if self.return_sequences else None
        return outputs, carry

    def _outputs(self, outputs, last, final):
        """`outputs` `(T, B, U)` time-major (return_sequences), the last output and the final states → what
        `call` returns."""
        if self.return_sequences:
            output = ops.reshape(ops.transpose(outputs, (1, 0, 2)), (ops.shape(outputs)[1], -1, self.units))
        else:
            output = last
        return [output] + final if self.return_state else output

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        return [output_mask] + [None] * self.CELL.N_STATES if self.return_state else output_mask

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, steps = sequences_shape[0], sequences_shape[1]
        out = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        return [out] + [(batch, self.units)] * self.CELL.N_STATES if self.return_state else out

    def get_config(self):
        config = super().get_config()
        config.update(self.format_config())
        config.update({f"{w}_{part}": module.serialize(getattr(self, f"{w}_{part}"))
                       for part, module in _SERIALIZED.items() for w in ("kernel", "recurrent", "bias")})
        config.update({name: getattr(self, name) for name in (
            "preset", "use_bias", "dropout", "recurrent_dropout", "shared_recurrent_dropout", "return_sequences",
            "return_state", "go_backwards", "stateful", "unroll", "zero_output_for_mask", "implementation",
            "time_chunk", "recurrence", "projection_dtype", "projection_block",
            "input_scale", "input_shift", "seed", "recurrent_format", "recurrent_input_modes",
            "recurrent_output_modes", "recurrent_ranks", "recurrent_blocks", "integrated")})
        config.update({"activation": keras.activations.serialize(self.activation),
                       "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
                       "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer)})
        config.update(self.cell.config())
        return config
