"""What the kernel formats share, in one module that `base` and every format import (and that imports none of
them): argument checks, the tail-merge rule, the affine map on the frames and the first contraction from
integer frames.

The first contraction `reshape(cast(x) * scale + shift, (-1, k)) @ mat` is the only step of `x @ W` that reads
the frames (~90 % of the FLOPs). For integer frames (raw uint8 video) it casts inside and recomputes the cast in
its gradient, so no float copy of the frames is kept for the backward pass.
"""

import math

import keras
from keras import ops

MERGE_INNER = 512       # most input values the first matrix merges (a deep matmul that reads each frame once)
MAX_FIRST_WIDTH = 256   # widest first matrix a non-TT format merges trailing modes into (4x TT's at the paper shapes)


def int_tuple(values, name):
    """`values` as a non-empty tuple of positive ints, or ValueError naming `name`."""
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a list of positive integers, got {values!r}") from None
    if not out:
        raise ValueError(f"{name} must not be empty")
    bad = [v for v in out if v <= 0]
    if bad:
        raise ValueError(f"{name} {list(out)} has non-positive entries {bad}; all entries must be positive")
    return out


def rank_tuple(ranks, length, name="ranks"):
    """An int rank repeated `length` times, or a list of `length` positive ranks."""
    if isinstance(ranks, (int, float)) and not isinstance(ranks, bool):
        ranks = [int(ranks)] * length
    out = int_tuple(ranks, name)
    if len(out) != length:
        raise ValueError(f"{name} {list(out)} has length {len(out)}; expected {length} (or one int)")
    return out


def is_float(x):
    return "float" in str(ops.convert_to_tensor(x).dtype)


def affine(x, scale, shift):
    x = x if scale is None else x * scale
    return x if shift is None else x + shift


def tail_count(input_modes, width, limit, max_inner=MERGE_INNER, max_width=None):
    """The tail-merge rule: how many trailing input modes the first matrix merges, at least one and at most
    `limit`: as many as keep the product of their input modes `<= max_inner` (a deep matmul) and, given
    `max_width`, the merged matrix's width `width(t) <= max_width` (a wide one multiplies the FLOPs)."""
    t = 1
    while (t < limit and math.prod(input_modes[-(t + 1):]) <= max_inner
           and (max_width is None or width(t + 1) <= max_width)):
        t += 1
    return t


def permute_interleaved(w, n, m):
    """`w` `(n_1, m_1, ..., n_d, m_d)` (any leading reshape of it) → the `(prod n, prod m)` matrix."""
    d = len(n)
    w = ops.reshape(w, [v for pair in zip(n, m) for v in pair])
    w = ops.transpose(w, [2 * k for k in range(d)] + [2 * k + 1 for k in range(d)])
    return ops.reshape(w, (math.prod(n), math.prod(m)))


_FUSED = {}


def cast_affine(x, dtype, scale, shift):
    """`cast(x) * scale + shift` in one pass over memory: on TensorFlow an XLA-compiled elementwise kernel (its
    speed-up in docs/performance.md; the matmuls stay on oneDNN), elsewhere plain ops (XLA fuses them on JAX)."""
    if keras.backend.backend() != "tensorflow":
        return affine(ops.cast(x, dtype), scale, shift)
    import tensorflow as tf

    key = tf.as_dtype(dtype).name
    if key not in _FUSED:
        _FUSED[key] = tf.function(lambda x, a, b: tf.cast(x, key) * a + b, jit_compile=True, autograph=False)
    one = tf.constant(1.0, key) if scale is None else scale
    zero = tf.constant(0.0, key) if shift is None else shift
    return _FUSED[key](x, one, zero)


def first_contraction(x, mat, scale=None, shift=None, compute_dtype=None):
    """`reshape(cast(x) * scale + shift, (-1, k)) @ mat` for integer `x` `(..., D)`, `mat` `(k, c)` → `(rows, c)`.

    Custom gradient: d mat = xf^T @ dy with `xf` recomputed from the integer `x`, so the backward pass keeps
    only the integer frames (4x less memory than a float32 copy); no gradient to `x`, `scale` or `shift`.
    `compute_dtype` (e.g. "bfloat16") is the dtype of the product; the result has `mat`'s dtype.
    """
    k = int(mat.shape[0])
    out_dtype = mat.dtype
    dtype = compute_dtype or out_dtype
    args = [x, mat] + [ops.convert_to_tensor(v, dtype) for v in (scale, shift) if v is not None]
    has_scale, has_shift = scale is not None, shift is not None

    @ops.custom_gradient
    def contract(*args):
        xi, m = args[0], args[1]
        rest = list(args[2:])
        sc = rest.pop(0) if has_scale else None
        sh = rest.pop(0) if has_shift else None

        def xf():
            return ops.reshape(cast_affine(xi, dtype, sc, sh), (-1, k))

        def grad(*upstream, **kwargs):
            dy = kwargs.get("upstream", upstream[-1] if upstream else None)
            d_mat = ops.matmul(ops.transpose(xf()), ops.cast(dy, dtype))
            return (None, ops.cast(d_mat, out_dtype)) + (None,) * (len(args) - 2)

        return ops.cast(ops.matmul(xf(), ops.cast(m, dtype)), out_dtype), grad

    return contract(*args)
