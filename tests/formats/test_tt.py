"""TT math: parameter counts, full() against TensorLy, tt_matmul against x @ full(), shape validation."""

import numpy as np
import pytest
from tensorly.tt_matrix import tt_matrix_to_matrix

from ttrnn.formats import tt

UCF11 = ((8, 20, 20, 18), (4, 4, 4, 4))


def gates(m, g):
    return (m[0] * g,) + tuple(m[1:])


@pytest.mark.parametrize("n, m, ranks, g, expected", [
    (*UCF11, (1, 4, 4, 4, 1), 1, 2976), (*UCF11, (1, 4, 4, 4, 1), 3, 3232), (*UCF11, (1, 4, 4, 4, 1), 4, 3360),
    (*UCF11, (1, 3, 3, 3, 1), 1, 1752), (*UCF11, (1, 3, 3, 3, 1), 3, 1944), (*UCF11, (1, 3, 3, 3, 1), 4, 2040),
    (*UCF11, (1, 5, 5, 5, 1), 1, 4520), (*UCF11, (1, 5, 5, 5, 1), 3, 4840), (*UCF11, (1, 5, 5, 5, 1), 4, 5000),
    ((10, 18, 13, 30), (4, 4, 4, 4), (1, 4, 4, 4, 1), 3, 2944),
    ((10, 18, 13, 30), (4, 4, 4, 4), (1, 4, 4, 4, 1), 4, 3104),
    ((4, 20, 20, 36), (4, 4, 4, 4), (1, 4, 4, 4, 1), 3, 3328),
    ((4, 20, 20, 36), (4, 4, 4, 4), (1, 4, 4, 4, 1), 4, 3392),
])
def test_param_counts(n, m, ranks, g, expected):
    assert tt.tt_param_count(n, gates(m, g), ranks) == expected


def random_spec(rng, d):
    n = tuple(int(v) for v in rng.integers(2, 5, d))
    m = tuple(int(v) for v in rng.integers(1, 4, d))
    r = (1,) + tuple(int(v) for v in rng.integers(1, 5, d - 1)) + (1,)
    return n, m, r


@pytest.mark.parametrize("d", [2, 3, 4, 5])
def test_full_matches_tensorly(d):
    n, m, r = random_spec(np.random.default_rng(d), d)
    cores = tt.random_cores(n, m, r, seed=d)
    w = np.asarray(tt.full(cores))
    ref = tt_matrix_to_matrix([c.astype("float64") for c in cores])
    assert w.shape == (np.prod(n), np.prod(m))
    np.testing.assert_allclose(w, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("d", [2, 3, 4, 5])
@pytest.mark.parametrize("max_inner", [0, 16, tt.MERGE_INNER])
def test_tt_matmul_equals_dense(d, max_inner):
    rng = np.random.default_rng(10 + d)
    n, m, r = random_spec(rng, d)
    cores = tt.random_cores(n, m, r, seed=d)
    x = rng.standard_normal((2, 3, int(np.prod(n)))).astype("float32")
    ref = x.astype("float64") @ tt_matrix_to_matrix([c.astype("float64") for c in cores])
    y = np.asarray(tt.tt_matmul(x, cores, max_inner=max_inner))
    assert y.shape == (2, 3, int(np.prod(m)))
    assert np.abs(y - ref).max() / np.abs(ref).max() <= 1e-5


def test_bfloat16_first_contraction_on_uint8_frames():
    """first_dtype="bfloat16": frames are exact in bf16, the merged core and the result are rounded (8-bit
    mantissa), so the result is within a few 1e-3 of the dense product; gradients likewise."""
    import tensorflow as tf

    n, m, r = (4, 6, 5), (3, 2, 2), (1, 3, 2, 1)
    rng = np.random.default_rng(3)
    cores = [tf.Variable(c) for c in tt.random_cores(n, m, r, seed=3)]
    x = rng.integers(0, 256, size=(5, int(np.prod(n))), dtype=np.uint8)
    dense = (x.astype("float64") - 128) @ tt_matrix_to_matrix([c.numpy().astype("float64") for c in cores])
    grads = {}
    for dtype in (None, "bfloat16"):
        with tf.GradientTape() as tape:
            y = tt.tt_matmul(x, cores, shift=-128.0, first_dtype=dtype)
            loss = tf.reduce_sum(y * y)
        grads[dtype] = [g.numpy() for g in tape.gradient(loss, cores)]
        err = np.abs(y.numpy() - dense).max() / np.abs(dense).max()
        assert y.dtype == tf.float32
        assert err <= (1e-5 if dtype is None else 2e-2), (dtype, err)
        assert dtype is None or err > 1e-6          # the bf16 path did run in bf16
    for g32, g16 in zip(grads[None], grads["bfloat16"]):
        assert np.abs(g16 - g32).max() / np.abs(g32).max() <= 5e-2


def test_merge_tail_is_exact_and_shorter():
    cores = tt.random_cores((8, 20, 20, 18), (12, 4, 4, 4), (1, 4, 4, 4, 1))
    merged = tt.merge_tail(cores)
    assert [tuple(c.shape) for c in merged][-1] == (4, 360, 16, 1)
    np.testing.assert_allclose(np.asarray(tt.full(merged))[:50], np.asarray(tt.full(cores))[:50], rtol=1e-4,
                               atol=1e-3)


@pytest.mark.parametrize("args, match", [
    (((2, 3), (2, 2, 2), (1, 2, 1)), "same number of modes"),
    (((2, 3), (2, 2), (1, 2, 2, 1)), "length"),
    (((2, 3), (2, 2), (2, 2, 1)), "first and last rank"),
    (((2, 3), (2, 2), (1, 2, 3)), "first and last rank"),
    (((2, 0), (2, 2), (1, 2, 1)), "non-positive"),
    (((2, 3), (2, -1), (1, 2, 1)), "non-positive"),
    (((2, 3), (2, 2), (1, 0, 1)), "non-positive"),
])
def test_bad_shapes_raise(args, match):
    with pytest.raises(ValueError, match=match):
        tt.check_tt_shape(*args)


def test_input_dim_mismatch_raises():
    with pytest.raises(ValueError, match="product 6 but the input dimension is 7"):
        tt.check_tt_shape((2, 3), (2, 2), (1, 2, 1), input_dim=7)


def test_tt_glorot_gives_glorot_variance_of_dense_equivalent():
    n, m, r = (6, 7, 8), (3, 4, 5), (1, 3, 4, 1)
    inits = tt.TTGlorotNormal(seed=1).core_initializers(n, m, r)
    ws = [np.asarray(tt.full([init(s) for init, s in zip(inits, tt.core_shapes(n, m, r))]))
          for _ in range(20)]
    var = np.var(np.concatenate([w.ravel() for w in ws]))
    target = 2.0 / (np.prod(n) + np.prod(m))
    assert 0.7 * target < var < 1.3 * target


def test_flat_glorot_uniform_uses_keras2_rule_for_1d_shapes():
    # Keras 2.0: fan_in = fan_out = sqrt(L) for a 1-D shape, limit = sqrt(3 / sqrt(L)).
    init = tt.FlatGlorotUniform(seed=0)
    n, m, r = (8, 20, 20, 18), (12, 4, 4, 4), (1, 4, 4, 4, 1)
    assert init.limit(n, m, r) == pytest.approx(np.sqrt(3.0 / np.sqrt(3232)))
    values = np.concatenate([np.asarray(i(s)).ravel() for i, s in
                             zip(init.core_initializers(n, m, r), tt.core_shapes(n, m, r))])
    assert values.size == 3232
    assert np.abs(values).max() <= init.limit(n, m, r)
    assert np.abs(values).max() > 0.9 * init.limit(n, m, r)


def test_tt_matmul_on_uint8_with_affine_matches_float_values_and_core_gradients():
    """Integer frames are cast inside the first contraction (custom gradient recomputing the cast); values and
    core gradients equal plain autodiff through the float path."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    n, m, r = (3, 4, 5), (2, 3, 2), (1, 2, 3, 1)
    cores = [tf.Variable(c) for c in tt.random_cores(n, m, r, seed=4)]
    x = rng.integers(0, 256, (2, 3, 60), dtype=np.uint8)
    scale = (rng.random((3, 60)) > 0.3).astype("float32") / 255.0       # e.g. dropout mask x pixel scale
    shift = -0.5 * np.ones((3, 60), "float32")

    def run(fn):
        with tf.GradientTape() as tape:
            y = fn()
            loss = tf.reduce_sum(y * tf.sin(y))
        return np.asarray(y), [np.asarray(g) for g in tape.gradient(loss, cores)]

    y, grads = run(lambda: tt.tt_matmul(tf.constant(x), cores, scale=scale, shift=shift))
    y_ref, grads_ref = run(lambda: tt.tt_matmul(tf.constant(x.astype("float32") * scale + shift), cores))
    assert y.shape == (2, 3, 12)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5 * np.abs(y_ref).max())
    for g, g_ref in zip(grads, grads_ref):
        np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-5 * np.abs(g_ref).max())
