"""What every kernel format shares: mode/rank checks, the Glorot variance rule, and `x @ W` from
`first_matrix` / `rest`.

A format describes a `(prod n, prod m)` matrix `W` by a list of small weight tensors. A `Format` instance is the
shape (modes, ranks, blocks) and does the math on a given weight list: `full(weights)` builds `W`,
`matmul(x, weights)` computes `x @ W` without forming it, in two steps:

    y1 = reshape(x * scale + shift, (-1, k)) @ first_matrix(weights)      # (rows, c), rows = frames * D / k
    y  = rest(y1, weights)                                               # (frames, prod m)

The first step is the only one that reads the frames (the full-size contraction, ~90 % of the FLOPs); for
integer frames it runs through `common.first_contraction`, which casts inside and recomputes the cast in its
gradient, so no float copy of the frames is kept. `factors(weights)` is the format's public, documented view.
"""

import math

import keras
from keras import ops

from ttrnn.formats.common import (
    MAX_FIRST_WIDTH,
    MERGE_INNER,
    affine,
    first_contraction,
    int_tuple,
    is_float,
    tail_count,
)


class Format:
    """A kernel format over input modes `n` and output modes `m` (subclasses add ranks, blocks, the math).

    Subclasses set `NAME`, `MIN_MODES` and implement `_check_ranks`, `weight_shapes`, `variance_terms`,
    `factors`, `full`, `rows`, `first_matrix`, `rest`.
    """

    NAME = None
    MIN_MODES = 1

    def __init__(self, input_modes, output_modes, ranks, blocks=None):
        self.n = int_tuple(input_modes, "input_modes")
        self.m = int_tuple(output_modes, "output_modes")
        if len(self.n) != len(self.m):
            raise ValueError(f"input_modes {list(self.n)} has {len(self.n)} modes but output_modes {list(self.m)} "
                             f"has {len(self.m)}; they must have the same number of modes")
        if len(self.n) < self.MIN_MODES:
            raise ValueError(f"the {self.NAME} format needs at least {self.MIN_MODES} modes, got {len(self.n)}")
        self.d = len(self.n)
        self.blocks = blocks
        self.ranks = self._check_ranks(ranks)

    # ---- shapes ---------------------------------------------------------------------------------------------
    @property
    def input_dim(self):
        return math.prod(self.n)

    @property
    def output_dim(self):
        return math.prod(self.m)

    def check_input_dim(self, input_dim):
        if math.prod(self.n) != int(input_dim):
            raise ValueError(f"input_modes {list(self.n)} have product {math.prod(self.n)} but the input dimension "
                             f"is {int(input_dim)}")

    def param_count(self):
        """Number of kernel parameters (the sum of the weight sizes)."""
        return int(sum(math.prod(s) for _, s in self.weight_shapes()))

    # ---- initializers ---------------------------------------------------------------------------------------
    def glorot_std(self):
        """Std of i.i.d. zero-mean weights for which an entry of `full` has variance `2 / (prod n + prod m)`.

        An entry of `full` is a sum of `terms` uncorrelated products of `factors` weight entries
        (`variance_terms`), so its variance is `terms * std^(2 * factors)`.
        """
        terms, n_factors = self.variance_terms()
        target = 2.0 / (self.input_dim + self.output_dim)
        return (target / terms) ** (1.0 / (2 * n_factors))

    def initializers(self, initializer):
        """One Keras initializer per weight: format-aware ones (`format_initializers`) get the format,
        any other Keras initializer is applied to each weight on its own."""
        init = keras.initializers.get(initializer)
        if hasattr(init, "format_initializers"):
            return init.format_initializers(self)
        return [init] * len(self.weight_shapes())

    # ---- contraction ----------------------------------------------------------------------------------------
    def matmul(self, x, weights, scale=None, shift=None, first_dtype=None):
        """`(x * scale + shift) @ full(weights)` without forming it: `x` `(..., prod n)` → `(..., prod m)`.

        Integer `x` (raw uint8 frames) is cast inside the first contraction (see the module docstring);
        `first_dtype="bfloat16"` runs that contraction in bfloat16 (integer `x` only).

        Complexity: `D * c` multiply-adds per row of `x` for the first contraction (`first_matrix` is `(k, c)`),
        which dominates, plus the format's `rest` (the TT chain's count: `ttrnn.formats.tt`); `full(weights)`,
        `D * prod(m)` values, is never formed.
        """
        lead = ops.shape(x)[:-1]
        mat = self.first_matrix(weights)
        k = int(mat.shape[0])
        if is_float(x):
            y1 = ops.matmul(ops.reshape(affine(x, scale, shift), (-1, k)), mat)
        else:
            y1 = first_contraction(x, mat, scale, shift, first_dtype)
        return ops.reshape(self.rest(y1, weights), tuple(lead) + (self.output_dim,))

    def rows(self, weights, start, count):
        """Rows `[start, start + count)` of `full(weights)` without forming it: `(count, prod m)`.

        A layer that reads a block of rows of its matrix (an integrated layer's state rows, `ttrnn.layers`) calls
        this once per call, so it must cost far less than `full`: the TT-chain formats gather each core at the
        rows' mode indices (`ttrnn.formats.tt.rows`), the tensor ring its input cores
        (`ttrnn.formats.tr.TensorRing.rows`). The gradient reaches the gathered slices.
        """
        raise NotImplementedError

    def tail_modes(self, width):
        """How many trailing input modes the first matrix merges (`common.tail_count`, never all d modes):
        `width(t)` is the first matrix's width when t modes are merged."""
        return tail_count(self.n, width, self.d - 1, MERGE_INNER, MAX_FIRST_WIDTH)

    def config(self):
        """The constructor arguments (for a layer's get_config)."""
        return {"input_modes": list(self.n), "output_modes": list(self.m), "ranks": list(self.ranks),
                "blocks": self.blocks}

