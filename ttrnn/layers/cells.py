"""The recurrent cells of the ttrnn layers as plain step objects: gates, bias layout and one step.

A cell knows nothing of kernel formats, loops or masks; a layer (`ttrnn.layers.recurrent`) holds one and runs its
`step(z, states, f, rec_bias, rec_masks) -> new_states` for every time step: `z` `(batch, gates * units)` the
projected input plus the input bias, `states` a list of `N_STATES` `(batch, units)` (the first is the output),
`f` the step's only uses of the recurrent kernel and of activations (`f.matmul(a, lo, hi) = a @ kernel[:, lo:hi]`,
`f.act(fn, x) = fn(x)`: `StepOps` evaluates them; `ttrnn.layers.fused_scan` records and replays them), `rec_masks` None
or a list of 1 (shared) or `GATES` recurrent-dropout masks. The gates sit in Keras order in the column blocks of
the kernels, so `full_kernel()`, `recurrent_kernel` and `bias` drop into `keras.layers.GRU` / `LSTM` / `SimpleRNN`.
"""

import keras
from keras import ops


class StepOps:
    """A cell step's uses of the recurrent kernel and of activations, evaluated directly (Keras's loop)."""

    def __init__(self, kernel):
        self.kernel = kernel

    def matmul(self, a, lo, hi):
        """`a @ kernel[:, lo:hi]`."""
        return ops.matmul(a, self.kernel[:, lo:hi])

    def act(self, fn, x):
        return fn(x)


class SimpleRNNCell:
    """Elman step `h_t = activation(x_t W + h_{t-1} U + b)`. `OPTIONS`: the cell's own constructor arguments
    (name → the layer's default; None → the layer's preset) that its layer accepts and saves in its config."""

    NAME = "SimpleRNN"
    GATES = 1
    N_STATES = 1
    OPTIONS = {}

    def __init__(self, units, activation, recurrent_activation):
        self.units = units
        self.activation = activation
        self.recurrent_activation = recurrent_activation

    def bias_shape(self):
        return (self.GATES * self.units,)

    def bias_initializer(self, initializer):
        return initializer

    def input_bias(self, bias):
        """The part of `bias` added to the projected input (all of it but for the GRU with `reset_after`)."""
        return bias

    def recurrent_bias(self, bias):
        """The part of `bias` added to the recurrent matmul products inside the step, or None."""
        return None

    def config(self):
        return {name: getattr(self, name) for name in self.OPTIONS}

    def step(self, z, states, f, rec_bias, rec_masks):
        h = states[0] if rec_masks is None else states[0] * rec_masks[0]
        out = z + f.matmul(h, 0, self.units)
        out = f.act(self.activation, out) if self.activation is not None else out
        return [out]


class GRUCell(SimpleRNNCell):
    """GRU step, gates z, r, h; `reset_after=False`: the reset gate before the recurrent matmul (the original's),
    True: after it, with the bias `(2, 3U)` (input and recurrent rows), as cuDNN and Keras's default."""

    NAME = "GRU"
    GATES = 3
    OPTIONS = {"reset_after": None}

    def __init__(self, units, activation, recurrent_activation, reset_after=True):
        super().__init__(units, activation, recurrent_activation)
        self.reset_after = bool(reset_after)

    def bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def input_bias(self, bias):
        return bias[0] if self.reset_after and bias is not None else bias

    def recurrent_bias(self, bias):
        return bias[1] if self.reset_after and bias is not None else None

    def step(self, z, states, f, rec_bias, rec_masks):
        # Gates z and r side by side: one add and one activation for both, split once (the backward of a split
        # is one concatenate; of column slices, one pad per slice: faster, docs/performance.md).
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


class LSTMCell(SimpleRNNCell):
    """LSTM step, gates i, f, c, o, states `[h, c]`; `unit_forget_bias` (default True, as Keras and the
    original): the forget-gate bias starts at 1."""

    NAME = "LSTM"
    GATES = 4
    N_STATES = 2
    OPTIONS = {"unit_forget_bias": True}

    def __init__(self, units, activation, recurrent_activation, unit_forget_bias=True):
        super().__init__(units, activation, recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    def bias_initializer(self, initializer):
        if not self.unit_forget_bias:
            return initializer
        u = self.units

        def init(shape, dtype=None):
            return ops.concatenate([initializer((u,), dtype=dtype), keras.initializers.get("ones")((u,), dtype=dtype),
                                    initializer((2 * u,), dtype=dtype)])
        return init

    def step(self, z, states, f, rec_bias, rec_masks):
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


# The cells of the recurrent layers (`ttrnn.layers.simple_rnn`, `gru`, `lstm`); `NAME` is each layer kind's name.
CELLS = (SimpleRNNCell, GRUCell, LSTMCell)
