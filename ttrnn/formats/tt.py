"""The TT-matrix format on `keras.ops`: shape checks, parameter count, `full`, the TT contraction chain, the
format-aware initializers; `TensorTrain` is the format, the other names are its TT-specific helpers and thin
aliases (`tt_matmul` is `TensorTrain.matmul`, `core_initializers` is `TensorTrain.initializers`).

Convention (TensorLy's TT-matrix and t3f): core k has shape `(r_k, n_k, m_k, r_{k+1})` with input modes
`n`, output modes `m` and ranks `r` (`r_0 = r_d = 1`). The dense equivalent `W = full(cores)` is the
row-major `(prod n, prod m)` matrix: `W[(i_0..i_{d-1}), (j_0..j_{d-1})] = G_0[:, i_0, j_0, :] ... G_{d-1}[:, i_{d-1},
j_{d-1}, :]`, and a TT layer computes `y = x @ W`.

`x @ W` contracts from the last core to the first (as the original TT-RNN code): with image-like inputs the last
input modes are large and `r_d = 1`, so the first contraction shrinks the data fastest; trailing cores are first
merged (`merge_tail`, the rule `common.tail_count`) so that contraction is a deep, compute-efficient matmul
(`first_matrix`), then `rest` contracts the other cores, one 2-D matmul and a transpose each. The block-term, CP
and HT formats rewrite themselves as TT cores and use the same chain (with `max_width`).

Complexity, in multiply-adds per input row `x` `(D,)` with the last t cores merged: the first contraction
`D * r_{d-t} * prod(m_{d-t}..m_{d-1})`, then `sum_{k < d-t} r_k r_{k+1} prod(n_0..n_k) prod(m_k..m_{d-1})`,
against `D * prod(m)` for a dense `x @ W`. The UCF11 TT-GRU (n = 8·20·20·18, m = 12·4·4·4, ranks 4, t = 2):
3.69 M + 0.19 M against 44.2 M. `full(cores)` costs about `prod(n) * prod(m) * r` and is for tests and export.
"""

import math

import keras
import numpy as np
from keras import ops

from ttrnn.formats.base import Format
from ttrnn.formats.common import MAX_FIRST_WIDTH, MERGE_INNER, int_tuple, tail_count


def check_tt_shape(tt_input_shape, tt_output_shape, tt_ranks, input_dim=None):
    """Validate a TT-matrix specification; return `(n, m, r)` as tuples of ints.

    Raises `ValueError` naming the mismatch: unequal numbers of modes, a rank list of the wrong length,
    `r_0` or `r_d` not 1, non-positive entries, or `prod(n) != input_dim` (when `input_dim` is given).
    """
    n, m, r = int_tuple(tt_input_shape, "tt_input_shape"), int_tuple(tt_output_shape, "tt_output_shape"), \
        int_tuple(tt_ranks, "tt_ranks")
    if len(n) != len(m):
        raise ValueError(f"tt_input_shape {list(n)} has {len(n)} modes but tt_output_shape {list(m)} has {len(m)}; "
                         "they must have the same number of modes")
    if len(r) != len(n) + 1:
        raise ValueError(f"tt_ranks {list(r)} has length {len(r)}; expected len(tt_input_shape) + 1 = {len(n) + 1}")
    if r[0] != 1 or r[-1] != 1:
        raise ValueError(f"tt_ranks {list(r)}: the first and last rank must be 1 (got r_0={r[0]}, r_d={r[-1]})")
    if input_dim is not None and math.prod(n) != int(input_dim):
        raise ValueError(f"tt_input_shape {list(n)} has product {math.prod(n)} but the input dimension is "
                         f"{int(input_dim)}")
    return n, m, r


def core_shapes(n, m, r):
    """Shapes `(r_k, n_k, m_k, r_{k+1})` of the d cores."""
    return [(r[k], n[k], m[k], r[k + 1]) for k in range(len(n))]


def tt_param_count(n, m, r):
    """Number of TT-core parameters: `sum_k r_k n_k m_k r_{k+1}` (bias not included)."""
    n, m, r = check_tt_shape(n, m, r)
    return int(sum(math.prod(s) for s in core_shapes(n, m, r)))


def full(cores):
    """Dense `(prod n, prod m)` matrix of a TT-matrix given as a list of cores `(r_k, n_k, m_k, r_{k+1})`."""
    w = ops.reshape(cores[0], (cores[0].shape[1], cores[0].shape[2], cores[0].shape[3]))  # (N, M, r)
    for core in cores[1:]:
        rk, nk, mk, rk1 = core.shape
        a, b = w.shape[0], w.shape[1]
        w = ops.einsum("abr,rnms->anbms", w, core)
        w = ops.reshape(w, (a * nk, b * mk, rk1))
    return ops.reshape(w, (w.shape[0], w.shape[1]))


def row_indices(n, start, count):
    """The mode indices of rows `[start, start + count)` of a `(prod n, .)` matrix in row-major order: one int
    array `(count,)` per mode."""
    return np.unravel_index(np.arange(start, start + count), tuple(int(v) for v in n))


def rows(cores, start, count):
    """Rows `[start, start + count)` of `full(cores)`, `(count, prod m)`, without forming it: each row of a
    TT-matrix is the chain `G_1[:, i_1] G_2[:, i_2] ... G_d[:, i_d]` of its modes' core slices, so every core is
    gathered at the rows' indices and the d chains are contracted side by side.

    Complexity: `count * prod(m) * r^2` multiply-adds (the chain's last product dominates); the gradient reaches
    the gathered slices only.
    """
    idx = row_indices([int(c.shape[1]) for c in cores], start, count)
    w = None
    for core, i in zip(cores, idx):
        g = ops.take(core, i, axis=1)                              # (r, count, m, r')
        if w is None:
            w = ops.reshape(g, tuple(g.shape[1:]))                 # r_0 = 1: (count, m_1, r_1)
            continue
        b, a = int(w.shape[1]), int(g.shape[2])
        w = ops.reshape(ops.einsum("cbr,rcms->cbms", w, g), (count, b * a, int(g.shape[3])))
    return ops.reshape(w, (count, int(w.shape[1])))


def _tail(cores, max_inner, max_width):
    """`common.tail_count` for a core list (any number of cores may merge)."""
    def width(t):                                    # r m of the merged last t cores
        return int(cores[-t].shape[0]) * math.prod(int(c.shape[2]) for c in cores[-t:])

    return tail_count([int(c.shape[1]) for c in cores], width, len(cores), max_inner, max_width)


def merge_tail(cores, max_inner=MERGE_INNER, max_width=None):
    """Merge the trailing cores into one while the product of their input modes stays <= `max_inner`.

    Returns an equivalent, shorter core list. Used by `first_matrix`: the first (only full-size) contraction then
    reads each frame once with a deep inner dimension and writes a much smaller intermediate (UCF11: 18·20 = 360
    input values → 4·16 = 64 outputs, instead of 18 → 16), faster fwd+bwd (docs/performance.md).
    `max_width` also caps the merged core's `r m` (formats whose TT form has wide ranks, `ttrnn.formats.bt`).
    """
    cores = list(cores)
    t = _tail(cores, max_inner, max_width)
    merged = cores[-1]
    for a in reversed(cores[-t:-1]):
        ra, na, ma, _ = (int(s) for s in a.shape)
        _, nb, mb, rb = (int(s) for s in merged.shape)
        merged = ops.reshape(ops.einsum("anmr,rpqs->anpmqs", a, merged), (ra, na * nb, ma * mb, rb))
    return cores[:-t] + [merged]


def first_matrix(cores, max_inner=MERGE_INNER, max_width=None):
    """The matrix `(k, r m)` of the first contraction: the merged last core, `k` = its input modes (r_d = 1)."""
    last = merge_tail(cores, max_inner, max_width)[-1]
    rk, nk, mk, rk1 = (int(s) for s in last.shape)
    return ops.reshape(ops.transpose(last, (1, 3, 0, 2)), (nk * rk1, rk * mk))


def rest(y1, cores, max_inner=MERGE_INNER, max_width=None):
    """Everything after the first contraction: `y1` `(frames * prod n_head, r m_tail)` → `(frames, prod m)`.

    Each step is one 2-D matmul plus a transpose that moves the finished output mode to the front.
    """
    head = cores[:-_tail(cores, max_inner, max_width)]
    m_tail = math.prod(int(c.shape[2]) for c in cores[len(head):])
    m_total = math.prod(int(c.shape[2]) for c in cores)
    res = ops.transpose(ops.reshape(y1, (-1, m_tail)))               # (m_tail, ... r)
    for k in range(len(head) - 1, -1, -1):
        rk, nk, mk, rk1 = (int(s) for s in head[k].shape)
        mat = ops.reshape(ops.transpose(head[k], (1, 3, 0, 2)), (nk * rk1, rk * mk))
        res = ops.matmul(ops.reshape(res, (-1, nk * rk1)), mat)      # (..., r_k m_k)
        res = ops.transpose(ops.reshape(res, (-1, mk)))              # (m_k, ... r_k)
    return ops.transpose(ops.reshape(res, (m_total, -1)))            # (frames, prod m)


def tt_matmul(x, cores, max_inner=MERGE_INNER, scale=None, shift=None, first_dtype=None):
    """`(x * scale + shift) @ full(cores)` without forming it: `TensorTrain.matmul` (`Format.matmul`) for these
    cores; `max_inner` bounds the merged tail (0: core by core)."""
    return TensorTrain.from_cores(cores, max_inner).matmul(x, cores, scale, shift, first_dtype)


@keras.saving.register_keras_serializable(package="ttrnn")
class TTGlorotNormal(keras.initializers.Initializer):
    """TT-aware Glorot: i.i.d. normal cores scaled so the dense equivalent has Glorot variance.

    An entry of `full(cores)` is a sum of `prod(r_1..r_{d-1})` products of d core entries, so with core std `s`
    its variance is `prod(r_inner) * s^(2d)`; we choose `s` so this equals `2 / (prod n + prod m)`.
    The same rule serves every kernel format (`format_initializers`: i.i.d. normal weights with the format's
    `glorot_std()`). Used through `core_initializers` / `format_initializers`; called on a single shape it
    falls back to Keras Glorot normal.
    """

    def __init__(self, seed=None):
        self.seed = seed

    def format_initializers(self, fmt):
        std = fmt.glorot_std()
        return [keras.initializers.RandomNormal(stddev=std, seed=_seed(self.seed, k))
                for k in range(len(fmt.weight_shapes()))]

    def core_initializers(self, n, m, r):
        return self.format_initializers(TensorTrain(n, m, r))

    def __call__(self, shape, dtype=None):
        return keras.initializers.GlorotNormal(seed=self.seed)(shape, dtype=dtype)

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package="ttrnn")
class FlatGlorotUniform(keras.initializers.Initializer):
    """The original TT-RNN code's core init: Keras 2.0 `glorot_uniform` on the flat 1-D vector of all cores.

    Keras 2.0's `_compute_fans` has no rule for 1-D shapes ("no specific assumptions") and sets
    `fan_in = fan_out = sqrt(L)` for a vector of length L; `glorot_uniform` then samples
    U(-limit, limit) with `limit = sqrt(3 / max(1, sqrt(L)))`. L is the total number of core parameters
    (of any format's weights, `format_initializers`).
    """

    def __init__(self, seed=None):
        self.seed = seed

    def limit(self, n, m, r):
        return self._limit(tt_param_count(n, m, r))

    @staticmethod
    def _limit(total):
        return math.sqrt(3.0 / max(1.0, math.sqrt(total)))

    def format_initializers(self, fmt):
        lim = self._limit(fmt.param_count())
        return [keras.initializers.RandomUniform(-lim, lim, seed=_seed(self.seed, k))
                for k in range(len(fmt.weight_shapes()))]

    def core_initializers(self, n, m, r):
        return self.format_initializers(TensorTrain(n, m, r))

    def __call__(self, shape, dtype=None):
        lim = math.sqrt(3.0 / max(1.0, math.sqrt(math.prod(shape))))
        return keras.initializers.RandomUniform(-lim, lim, seed=self.seed)(shape, dtype=dtype)

    def get_config(self):
        return {"seed": self.seed}


def _seed(seed, k):
    return None if seed is None else int(seed) + k


def core_initializers(initializer, n, m, r):
    """One Keras initializer per core: `TensorTrain(n, m, r).initializers(initializer)`."""
    return TensorTrain(n, m, r).initializers(initializer)


def random_cores(n, m, r, seed=0, dtype="float32"):
    """NumPy cores with standard-normal entries (for tests and benchmarks)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in core_shapes(n, m, r)]


class TensorTrain(Format):
    """The TT-matrix format (module docstring): `ranks` an int R (`[1, R, ..., R, 1]`) or the d + 1 ranks.
    `factors` = the cores `(r_k, n_k, m_k, r_{k+1})`. `max_inner` bounds the merged tail of the contraction."""

    NAME = "tt"

    def __init__(self, input_modes, output_modes, ranks, blocks=None, max_inner=MERGE_INNER):
        self.max_inner = max_inner
        super().__init__(input_modes, output_modes, ranks, blocks)

    @classmethod
    def from_cores(cls, cores, max_inner=MERGE_INNER):
        """The format of a core list `(r_k, n_k, m_k, r_{k+1})`."""
        shapes = [tuple(int(v) for v in c.shape) for c in cores]
        return cls([s[1] for s in shapes], [s[2] for s in shapes], [s[0] for s in shapes] + [shapes[-1][3]],
                   max_inner=max_inner)

    def _check_ranks(self, ranks):
        if isinstance(ranks, (int, float)) and not isinstance(ranks, bool):
            ranks = [1] + [int(ranks)] * (self.d - 1) + [1]
        return check_tt_shape(self.n, self.m, ranks)[2]

    def weight_shapes(self):
        return [(f"tt_core_{k}", s) for k, s in enumerate(core_shapes(self.n, self.m, self.ranks))]

    def variance_terms(self):
        return math.prod(self.ranks[1:-1]), self.d

    def factors(self, weights):
        return list(weights)

    def full(self, weights):
        return full(weights)

    def rows(self, weights, start, count):
        return rows(weights, start, count)

    def first_matrix(self, weights):
        return first_matrix(weights, self.max_inner)

    def rest(self, y1, weights):
        return rest(y1, weights, self.max_inner)


class ViaTensorTrain(Format):
    """A format contracted through its exactly equal TT cores (`tt_cores(weights)`, built per step from small
    factors): block-term, CP and HT, whose TT forms have wide ranks, so the merged first matrix is capped at
    `MAX_FIRST_WIDTH` columns. The TT chain's 2-D matmuls and transposes ran faster than batched einsums over the
    Tucker factors (docs/performance.md)."""

    def tt_cores(self, weights):
        raise NotImplementedError

    def rows(self, weights, start, count):
        """Rows of `full(weights)` through the TT cores' gathered slices (`ttrnn.formats.tt.rows`)."""
        return rows(self.tt_cores(weights), start, count)

    def first_matrix(self, weights):
        return first_matrix(self.tt_cores(weights), max_width=MAX_FIRST_WIDTH)

    def rest(self, y1, weights):
        return rest(y1, self.tt_cores(weights), max_width=MAX_FIRST_WIDTH)
