"""Kernel formats (ttrnn.formats): `full` against TensorLy (TR, BT, CP) or a NumPy reference written from the HT
definition, the fast contraction against `x @ full`, parameter counts by the papers' formulas, Glorot variance."""

import math

import numpy as np
import pytest
import tensorly as tl

from ttrnn import formats
from ttrnn.formats.ht import dimension_tree

N, M = (4, 3, 5), (2, 3, 2)
NAMES = formats.FORMAT_NAMES


def random_weights(fmt, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype("float64") for _, s in fmt.weight_shapes()]


def interleaved_to_matrix(w, n, m):
    """Tensor over `(n_1 m_1, ..., n_d m_d)` → `(prod n, prod m)` (the reshape / permute rule of docs/layers.md)."""
    d = len(n)
    w = np.reshape(w, [v for pair in zip(n, m) for v in pair])
    return np.transpose(w, [2 * k for k in range(d)] + [2 * k + 1 for k in range(d)]).reshape(math.prod(n), -1)


def ht_reference(leaves, transfers, tree):
    """HT by its definition: `U_t = (U_left ⊗ U_right) B_t`, leaves `(n_k m_k, r_k)`, transfers in post-order."""
    queue = list(transfers)

    def node(t):
        if isinstance(t, int):
            return leaves[t]
        left, right = node(t[0]), node(t[1])
        b = queue.pop(0)
        kron = np.einsum("ia,jb->ijab", left, right).reshape(left.shape[0] * right.shape[0], -1)
        return kron @ b.reshape(-1, b.shape[2])

    return node(tree)


def oracle(name, fmt, ws):
    if name == "tt":        # TensorLy's TT-matrix: cores (r, n, m, r'), tensor (n_1..n_d, m_1..m_d)
        return tl.tt_matrix_to_tensor([np.asarray(w) for w in ws]).reshape(fmt.input_dim, fmt.output_dim)
    if name == "tr":
        return tl.tr_to_tensor([np.asarray(w) for w in fmt.factors(ws)]).reshape(fmt.input_dim, fmt.output_dim)
    if name == "bt":
        return sum(interleaved_to_matrix(tl.tucker_to_tensor((np.asarray(c), [np.asarray(u) for u in us])), fmt.n,
                                         fmt.m) for c, us in fmt.factors(ws))
    if name == "cp":
        w, fs = fmt.factors(ws)
        return interleaved_to_matrix(tl.cp_to_tensor((np.asarray(w), [np.asarray(f) for f in fs])), fmt.n, fmt.m)
    leaves, transfers = fmt.factors(ws)
    return interleaved_to_matrix(ht_reference([np.asarray(u) for u in leaves], [np.asarray(b) for b in transfers],
                                              dimension_tree(0, len(fmt.n))), fmt.n, fmt.m)


@pytest.mark.parametrize("name, ranks, blocks", [("tr", 3, None), ("tr", [2, 3, 1, 2, 4, 3], None),
                                                 ("bt", 2, 3), ("bt", [2, 3, 1], 1), ("cp", 4, None),
                                                 ("ht", 3, None), ("ht", [2, 3, 2, 4, 1], None)])
def test_full_equals_independent_reconstruction(name, ranks, blocks):
    fmt = formats.make(name, N, M, ranks, blocks)
    ws = random_weights(fmt)
    np.testing.assert_allclose(np.asarray(fmt.full(ws)), oracle(name, fmt, ws), rtol=1e-5, atol=1e-8)


def test_ht_four_modes_balanced_tree_against_reference():
    fmt = formats.make("ht", (2, 3, 2, 2), (2, 2, 3, 1), 2)
    assert fmt.tree == ((0, 1), (2, 3))
    ws = random_weights(fmt, 1)
    np.testing.assert_allclose(np.asarray(fmt.full(ws)), oracle("ht", fmt, ws), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n, m", [(N, M), ((8, 20, 20, 18), (2, 1, 2, 1))])
def test_matmul_equals_x_at_full_float_and_uint8(name, n, m):
    fmt = formats.make(name, n, m, 3)
    ws = [w.astype("float32") for w in random_weights(fmt, 2)]
    w = np.asarray(fmt.full(ws), dtype="float64")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, fmt.input_dim)).astype("float32")
    ref = x.astype("float64") @ w
    got = np.asarray(fmt.matmul(x, ws))
    assert got.shape == (2, 3, fmt.output_dim)
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()
    xi = rng.integers(0, 256, (4, fmt.input_dim), dtype=np.uint8)
    ref = (xi * 0.5 - 64.0) @ w
    got = np.asarray(fmt.matmul(xi, ws, scale=0.5, shift=-64.0))
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("n, m, ranks, blocks", [((3, 4), (2, 5), [2, 3], 1), (N, M, [1, 4, 2], 2),
                                                 ((4, 3, 5, 2), (2, 3, 2, 2), [3, 1, 2, 4], 2),
                                                 ((2, 3, 2, 2, 3), (2, 1, 3, 2, 2), [2, 1, 3, 2, 2], 3)])
def test_block_term_contraction_any_core_mode(n, m, ranks, blocks):
    """The TT form puts each block's core at a mode that depends on the ranks: check it for 2-5 modes."""
    fmt = formats.make("bt", n, m, ranks, blocks)
    ws = [w.astype("float32") for w in random_weights(fmt, 6)]
    x = np.random.default_rng(7).standard_normal((5, fmt.input_dim)).astype("float32")
    ref = x.astype("float64") @ oracle("bt", fmt, [w.astype("float64") for w in ws])
    got = np.asarray(fmt.matmul(x, ws))
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


def test_first_matrix_and_rest_compose_to_matmul():
    fmt = formats.make("bt", (8, 20, 20, 18), (12, 4, 4, 4), 4, 2)
    ws = [w.astype("float32") for w in random_weights(fmt, 4)]
    x = np.random.default_rng(5).integers(0, 256, (3, fmt.input_dim), dtype=np.uint8)
    mat = np.asarray(fmt.first_matrix(ws))
    assert mat.shape == (18, 2 * 4 * 4)            # widening merges are refused (MAX_FIRST_WIDTH)
    y1 = x.astype("float32").reshape(-1, mat.shape[0]) @ mat
    got, ref = np.asarray(fmt.rest(y1, ws)), np.asarray(fmt.matmul(x, ws))
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("start, count", [(0, 60), (17, 9), (41, 19)])
def test_rows_equal_the_independent_reconstructions_rows_with_gradients(name, start, count):
    """`rows` (an integrated layer's state rows) against TensorLy / the HT definition, and its gradient against
    the gradient of the same rows sliced from `full` (the chain rule through the reconstruction)."""
    import tensorflow as tf
    fmt = formats.make(name, N, M, None if name != "tt" else [1, 3, 2, 1], 2 if name == "bt" else None)
    ws = random_weights(fmt, 7)
    ref = oracle(name, fmt, ws)[start:start + count]
    got = np.asarray(fmt.rows(ws, start, count))
    assert got.shape == (count, fmt.output_dim)
    assert np.abs(got - ref).max() <= 1e-10 * np.abs(ref).max()
    probe = np.random.default_rng(8).standard_normal(ref.shape)
    variables = [tf.Variable(w) for w in ws]
    with tf.GradientTape(persistent=True) as tape:
        by_rows = tf.reduce_sum(fmt.rows(variables, start, count) * probe)
        by_full = tf.reduce_sum(fmt.full(variables)[start:start + count] * probe)
    for a, b in zip(tape.gradient(by_rows, variables), tape.gradient(by_full, variables)):
        a, b = np.asarray(a), np.asarray(b)
        assert np.abs(a - b).max() <= 1e-10 * max(np.abs(b).max(), 1.0)


# UCF11 input-to-hidden shapes: input 8x20x20x18, hidden 4x4x4x4, gates folded into the first output mode.
UCF11_N = (8, 20, 20, 18)


@pytest.mark.parametrize("gates, name, ranks, blocks, expected", [
    (4, "bt", 4, 2, 3392), (3, "bt", 4, 2, 3136),          # BT-LSTM / BT-GRU (docs/layers.md)
    (4, "tt", [1, 4, 4, 4, 1], None, 3360), (3, "tt", [1, 4, 4, 4, 1], None, 3232),   # the TT-RNN paper's
])
def test_ucf11_parameter_counts(gates, name, ranks, blocks, expected):
    assert formats.make(name, UCF11_N, (4 * gates, 4, 4, 4), ranks, blocks).param_count() == expected


@pytest.mark.parametrize("name, ranks, formula", [
    ("tr", [2, 3, 4, 5, 6, 7], lambda n, m, r: sum(r[k] * d * r[(k + 1) % 6] for k, d in enumerate(n + m))),
    ("bt", [2, 3, 4], lambda n, m, r: 3 * (sum(a * b * c for a, b, c in zip(n, m, r)) + math.prod(r))),
    ("cp", 5, lambda n, m, r: 5 * (1 + sum(a * b for a, b in zip(n, m)))),
    ("ht", [2, 3, 4, 5, 1], lambda n, m, r: n[0] * m[0] * 2 + n[1] * m[1] * 3 + n[2] * m[2] * 4 + 3 * 4 * 5
     + 2 * 5 * 1),                                        # tree (0, (1, 2)): post-order 0, 1, 2, (1,2), root
])
def test_parameter_count_formulas(name, ranks, formula):
    fmt = formats.make(name, N, M, ranks, 3 if name == "bt" else None)
    assert fmt.param_count() == formula(N, M, ranks)


@pytest.mark.parametrize("name", NAMES)
def test_glorot_initializer_variance_on_ucf11_lstm_shapes(name):
    """Rows of the dense kernel (read through the fast contraction) have variance ~ 2 / (fan_in + fan_out)."""
    import ttrnn

    fmt = formats.make(name, UCF11_N, (16, 4, 4, 4))
    target = 2.0 / (fmt.input_dim + fmt.output_dim)
    rows = np.zeros((64, fmt.input_dim), "float32")
    rows[np.arange(64), np.random.default_rng(0).choice(fmt.input_dim, 64, replace=False)] = 1
    ratios = []
    for seed in range(3):
        inits = fmt.initializers(ttrnn.formats.tt.TTGlorotNormal(seed=10 * seed))
        ws = [init(s) for init, (_, s) in zip(inits, fmt.weight_shapes())]
        ratios.append(np.var(np.asarray(fmt.matmul(rows, ws))) / target)
    assert 0.5 < np.mean(ratios) < 2.0, ratios


@pytest.mark.parametrize("name, args, match", [
    ("tr", ((2, 3), (2, 2), [1, 2, 3]), "expected 4"),
    ("bt", ((2, 3), (2,), 2), "same number of modes"),
    ("cp", ((2, 3), (2, 2), [2, 3]), "one rank"),
    ("ht", ((2, 3), (2, 2), [2, 2, 2]), "root"),
    ("bt", ((6,), (2,), 2), "at least 2 modes"),
    ("tt", ((2, 3), (2, 2), 0), "non-positive"),
])
def test_bad_shapes_raise_clear_errors(name, args, match):
    with pytest.raises(ValueError, match=match):
        formats.make(name, *args)


def test_unknown_format_and_blocks_outside_bt():
    with pytest.raises(ValueError, match="unknown kernel format"):
        formats.make("xx", (2,), (2,))
    with pytest.raises(ValueError, match="blocks applies to the bt format only"):
        formats.make("tr", (2, 2), (2, 2), 2, blocks=3)
