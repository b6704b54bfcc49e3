"""The input kernel of the ttrnn layers: `x @ W` through any kernel format, and the one place that decides how.

A `Kernel` is a format (`ttrnn.formats`) plus its weights on a host layer. `project` computes
`((x * scale + shift) @ W)` for frames `x` `(..., D)`, float or uint8 (raw frames are cast inside the format's
first contraction, whose gradient recomputes the cast: no float copy of them is kept). Whole uint8 clips
`(B, T, D)` can instead go through the bounded projection a few time steps at a time (`ttrnn.layers.projection` on
TensorFlow, `ttrnn.layers.jax_projection` on JAX: the format's `first_matrix` / `rest` per block), so memory stays near
the uint8 frames' own size however long the clips are. The policy, measured (docs/performance.md): batches of
more than `WHOLE_BATCH_FRAMES` frames go in blocks of `PROJECTION_BLOCK_FRAMES` frames, smaller ones whole.
"""

import contextlib
import importlib
import sys

import keras
import numpy as np
from keras import ops

from ttrnn.formats import tt
from ttrnn.formats.common import is_float

# The export path: plain ops only (`exporting`).
_PLAIN_OPS = {"depth": 0}
EXPORTERS = "keras.src.export"           # Keras's exporters' package: model.export, keras.export.ExportArchive

PROJECTION_BLOCK_FRAMES = 32      # frames per block of the bounded projection
WHOLE_BATCH_FRAMES = 2048         # at most this many frames (B x T) go whole by default
# The bounded projection per backend (a module with `project_in_blocks`); other backends project whole batches.
BLOCKS = {"tensorflow": "ttrnn.layers.projection", "jax": "ttrnn.layers.jax_projection"}


@contextlib.contextmanager
def plain_ops():
    """Within it, the ttrnn layers take their export path (`exporting`) whatever traces them."""
    _PLAIN_OPS["depth"] += 1
    try:
        yield
    finally:
        _PLAIN_OPS["depth"] -= 1


def exporting():
    """Whether the layers take their export path now: inside `plain_ops()`, or while Keras's exporters trace the
    model (`model.export(path, format=...)` to a SavedModel, ONNX or LiteRT, or `keras.export.ExportArchive`).

    The export path computes the same function with plain ops that every exporter and runtime takes: the whole
    projection (no block loop: its TensorList concat is no ONNX op), integer frames cast to float first (no
    XLA-compiled cast), Keras's loop (`keras.ops.scan`: a while loop of plain ops; no XLA-compiled fused scan,
    which ONNX and LiteRT's builtin ops cannot hold). Training and `predict` keep the fast path.

    Keras marks an export trace in no other way, so this looks for a frame of its exporters' package on the call
    stack: a few microseconds per call, once per trace in a traced function.
    """
    if _PLAIN_OPS["depth"]:
        return True
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(EXPORTERS):
            return True
        frame = frame.f_back
    return False


class Kernel:
    """`fmt`'s weights on a host layer and the projection through them. `build(layer, ...)` creates the weights
    (`layer.add_weight`, in the format's order, so a layer's saved variables keep their order); `prefix` goes in
    front of the weights' names (a recurrent kernel's: "recurrent_")."""

    def __init__(self, fmt, prefix=""):
        self.format = fmt
        self.prefix = prefix
        self.weights = None

    def build(self, layer, initializer, regularizer=None, constraint=None):
        inits = self.format.initializers(initializer)
        self.weights = [layer.add_weight(shape=shape, name=self.prefix + name, initializer=init,
                                         regularizer=regularizer,
                                         constraint=constraint)
                        for (name, shape), init in zip(self.format.weight_shapes(), inits)]
        return self.weights

    def full(self):
        """The dense `(prod n, prod m)` matrix."""
        return self.format.full(self.weights)

    def rows(self, start, count):
        """Rows `[start, start + count)` of the dense matrix, `(count, prod m)` (`Format.rows`: no full matrix)."""
        return self.format.rows(self.weights, start, count)

    def factors(self):
        """The weights in the format's documented layout (`ttrnn.formats.<name>`)."""
        return self.format.factors(self.weights)

    def block_steps(self, x, block=None):
        """Time steps per block of the bounded projection for whole uint8 clips `x` `(B, T, D)`, or None for the
        whole-batch path (float or non-clip input, `block=0`, or a backend without blocks). `block`: frames per
        block, None = `PROJECTION_BLOCK_FRAMES`."""
        block = PROJECTION_BLOCK_FRAMES if block is None else block
        if not block or len(x.shape) != 3 or is_float(x) or keras.backend.backend() not in BLOCKS:
            return None
        if x.shape[0] is None:            # a trace for any batch size (reduce_retracing): decided at run time
            return ops.maximum(1, block // ops.shape(x)[0])
        steps = max(1, block // x.shape[0])
        # One block would be the whole batch: the plain path is the same memory and skips the loop (faster,
        # docs/performance.md).
        return None if x.shape[1] is not None and x.shape[1] <= steps else steps

    def project(self, x, scale=None, shift=None, dtype=None, block=None, training=False, bounded=True):
        """`(x * scale + shift) @ W`: `x` `(..., D)` → `(..., P)`; `dtype` of the first contraction (None or
        "bfloat16", integer `x` only); `block` as in `block_steps` (given: always blocks when they apply; None:
        blocks above `WHOLE_BATCH_FRAMES` frames); `bounded=False` never blocks; `training` keeps the blocks'
        first products for the backward pass (else they are recomputed)."""
        def whole():
            return self.format.matmul(x, self.weights, scale=scale, shift=shift, first_dtype=dtype)

        def blocks():
            fmt, weights = self.format, list(self.weights)
            blocked = importlib.import_module(BLOCKS[keras.backend.backend()]).project_in_blocks
            return blocked(x, fmt.first_matrix(weights), fmt.rest, weights, scale, shift, steps, dtype,
                           keep_first=bool(training))

        steps = self.block_steps(x, block) if bounded else None
        if steps is None:
            return whole()
        if block is not None:                              # asked for explicitly: always blocks
            return _static_shape(blocks(), x)
        if x.shape[0] is not None and x.shape[1] is not None:
            return _static_shape(blocks(), x) if x.shape[0] * x.shape[1] > WHOLE_BATCH_FRAMES else whole()
        # one trace for every padded length: decided per batch
        return _static_shape(ops.cond(ops.shape(x)[0] * ops.shape(x)[1] > WHOLE_BATCH_FRAMES, blocks, whole), x)


def pad_rows(x, scale, shift, rows):
    """`[x, 0]`: frames `x` `(..., D)` (float or uint8) padded with zeros to `rows` values, and `scale` / `shift`
    (None, a number, or a tensor over `(..., D)`, e.g. a dropout mask) padded alike, with zeros, so that the padded
    values stay 0 through `x * scale + shift`. An integrated layer's matrix has the input in its first D rows
    (`ttrnn.layers.recurrent.FormatRNN`, `integrated`): `[x, 0] @ W` is the input part of `[x, h] @ W`."""
    pad = rows - int(x.shape[-1])
    if pad == 0:
        return x, scale, shift

    def padded(v):
        return ops.pad(v, [[0, 0]] * (len(v.shape) - 1) + [[0, pad]])

    if shift is not None:
        if isinstance(shift, (int, float)):            # a number: a vector that is 0 on the padding
            shift = np.concatenate([np.full(int(x.shape[-1]), shift, "float32"), np.zeros(pad, "float32")])
        else:
            shift = padded(shift)
    if scale is not None and not isinstance(scale, (int, float)):
        scale = padded(scale)
    return padded(x), scale, shift


def _static_shape(z, x):
    """`z` `(B, T, P)` with the static sizes of `x` `(B, T, D)` where the blocks' loop lost them (a traced
    TensorFlow graph): a stateful layer's states have a static batch size, which the time loop's states must
    keep. No op is added."""
    if keras.backend.backend() == "tensorflow" and hasattr(z, "set_shape"):
        z.set_shape(tuple(x.shape[:-1]) + (z.shape[-1],))
    return z


class KernelAttributes:
    """What a layer with a `Kernel` (`self.kernel`) offers about it, whatever its format."""

    integrated = False          # a recurrent layer's one matrix over [x_t, h_{t-1}] (`FormatRNN`, `integrated`)

    def full_kernel(self):
        """Dense input kernel `(prod n, prod m)` (recurrent layers: `m_0 * gates`, the gate blocks in Keras order;
        an integrated layer's: the first D rows of its one matrix, `(D, gates * units)`)."""
        w = self.kernel.full()
        return w[:self.input_dim] if self.integrated else w

    @property
    def factors(self):
        """The kernel's factors in the format's documented layout (`ttrnn.formats.<name>`)."""
        return self.kernel.factors()


class TTArguments(KernelAttributes):
    """The TT format's constructor arguments for a layer with a `Kernel` (`FormatRNN`, `FormatDense`):
    `tt_input_shape`, `tt_output_shape`, `tt_ranks` (d + 1 ranks, `r_0 = r_d = 1`), kept as attributes of those
    names; attributes `tt_cores`, `tt_param_count`. It comes first in the public TT classes' bases
    (`class TTGRU(TTArguments, FormatGRU)`): it checks and converts its arguments, passes them on as
    `input_modes, output_modes, ranks`, then reads the kernel the layer made."""

    def __init__(self, tt_input_shape, tt_output_shape, tt_ranks, **kwargs):
        n, m, r = tt.check_tt_shape(tt_input_shape, tt_output_shape, tt_ranks)
        super().__init__(n, m, r, **kwargs)
        self.tt_input_shape, self.tt_output_shape, self.tt_ranks = list(n), list(m), list(r)
        self.tt_kernel_output_shape = list(self.kernel_format.m)
        self.tt_param_count = self.kernel_param_count

    def build(self, input_shape):
        tt.check_tt_shape(self.tt_input_shape, self.tt_output_shape, self.tt_ranks,
                          input_dim=None if self.integrated else input_shape[-1])
        super().build(input_shape)
        self.tt_cores = self.kernel_weights

    def format_config(self):
        """The format's constructor arguments, for `get_config`."""
        return {"tt_input_shape": self.tt_input_shape, "tt_output_shape": self.tt_output_shape,
                "tt_ranks": self.tt_ranks}


class FormatArguments(KernelAttributes):
    """Every other format's constructor arguments: `input_modes`, `output_modes`, `ranks` (None = the format's
    default), `blocks` (block-term only), kept as attributes of those names. It comes first in the public classes'
    bases (`class BTLSTM(FormatArguments, FormatLSTM)`)."""

    def __init__(self, input_modes, output_modes, ranks=None, blocks=None, **kwargs):
        super().__init__(input_modes, output_modes, ranks, blocks, **kwargs)
        self.input_modes, self.output_modes = list(self.kernel_format.n), [int(v) for v in output_modes]
        self.ranks, self.blocks = list(self.kernel_format.ranks), self.kernel_format.blocks

    def format_config(self):
        """The format's constructor arguments, for `get_config`."""
        return {"input_modes": self.input_modes, "output_modes": self.output_modes, "ranks": self.ranks,
                "blocks": self.blocks}
