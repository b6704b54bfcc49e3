"""Dense -> format (ttrnn.decompose) and layer tensorization (ttrnn.tensorize): exact at full ranks, TT / TR / CP
as good as TensorLy's own decompositions, BT / HT within the bounds their definitions give (NumPy checks),
tensorized GRU / LSTM / SimpleRNN / Dense layers computing what the dense ones did."""
import math

import keras
import numpy as np
import pytest
import tensorly as tl
from tensorly.decomposition import parafac, tensor_ring, tensor_train_matrix

import ttrnn
from ttrnn.decompose import decompose, full_ranks, interleaved, make_format, relative_error, tr_als
from ttrnn.decompose.tensorize import TensorizeError
from ttrnn.formats.ht import dimension_tree, post_order

N, M = (3, 4, 2), (2, 3, 2)          # small modes: every test here takes well under a second


def structured(n, m, rank=3, noise=0.05, seed=0):
    """A TT-matrix of `rank` plus Gaussian noise (a trained kernel is neither random nor exactly low rank)."""
    rng = np.random.default_rng(seed)
    r = [1] + [rank] * (len(n) - 1) + [1]
    cores = [rng.standard_normal((r[k], n[k], m[k], r[k + 1])).astype("float32") for k in range(len(n))]
    w = np.asarray(make_format("tt", n, m, r).full(cores), np.float64)
    w /= np.linalg.norm(w)
    return w + noise * rng.standard_normal(w.shape) / math.sqrt(w.size)


def reconstruct(fmt, weights):
    return np.asarray(fmt.full(weights), np.float64)


@pytest.mark.parametrize("name", ["tt", "tr", "bt", "cp", "ht"])
def test_full_ranks_reconstruct_exactly(name):
    w = np.random.default_rng(1).standard_normal((math.prod(N), math.prod(M)))
    fmt = make_format(name, N, M, "full")
    weights = decompose(w, fmt)
    assert [a.shape for a in weights] == [s for _, s in fmt.weight_shapes()]
    assert relative_error(reconstruct(fmt, weights), w) <= 1e-5


def test_tt_equals_tensorly_tensor_train_matrix():
    w = structured(N, M)
    fmt = make_format("tt", N, M, 2)
    ours = relative_error(reconstruct(fmt, decompose(w, fmt)), w)
    theirs = relative_error(tl.tt_matrix_to_tensor(tensor_train_matrix(w.reshape(N + M), [1, 2, 2, 1]))
                            .reshape(w.shape), w)
    assert ours <= 1.01 * theirs and ours < 0.5


def test_tr_as_good_as_tensorly_tensor_ring_and_its_als_finds_the_ring():
    """Against TensorLy's TR-SVD (`tensor_ring`) where it applies; and the ALS sweeps after ttrnn's TR-SVD find
    the ring under the noise: error about the noise's 0.05 (TR-SVD alone: 0.34)."""
    n, m = (4, 5), (6, 4)                      # D_1 = 4 >= r_0 r_1: where TensorLy's TR-SVD applies
    rng = np.random.default_rng(3)
    ring = [rng.standard_normal((2, d, 2)) for d in n + m]                     # a ring of ranks 2, plus noise
    w = tl.tr_to_tensor(ring).reshape(math.prod(n), math.prod(m))
    w = w / np.linalg.norm(w) + 0.05 * rng.standard_normal(w.shape) / math.sqrt(w.size)
    fmt = make_format("tr", n, m, [2, 2, 3, 2])
    ours = relative_error(reconstruct(fmt, decompose(w, fmt)), w)
    theirs = relative_error(tl.tr_to_tensor(tensor_ring(w.reshape(n + m), [2, 2, 3, 2, 2])).reshape(w.shape), w)
    assert ours <= 1.01 * theirs and ours < 0.06, (ours, theirs)


@pytest.mark.parametrize("sweeps", [1, 5])
def test_tr_als_sweeps_equal_tensorly_tensor_ring_als_from_the_same_start(sweeps):
    """ttrnn's TR-ALS sweep (`ttrnn.decompose.tr_als`, run after its TR-SVD) against TensorLy's `tensor_ring_als`. That
    one starts only from its own random ring, so both start from it (TensorLy's `random_tr`, same seed): the same
    tensor after each number of sweeps (the least-squares fit of each core is unique; the cores' gauge is not)."""
    from tensorly.decomposition import tensor_ring_als
    w = structured((4, 5, 3), (3, 4, 2))
    t = w.reshape(4, 5, 3, 3, 4, 2)
    start = tl.random.random_tr(t.shape, [3] * 7, random_state=tl.check_random_state(7))
    ours = tl.tr_to_tensor(tr_als(t, [np.array(c, np.float64) for c in start], sweeps, tol=0))
    theirs = tl.tr_to_tensor(tensor_ring_als(t, 3, n_iter_max=sweeps, tol=0, random_state=7))
    assert relative_error(ours, theirs) < 1e-9


# TensorLy's SVD start warns when the rank (5) exceeds a mode's size (4) and uses 4 vectors there: its own choice
@pytest.mark.filterwarnings("ignore:Trying to compute SVD with n_eigenvecs:UserWarning")
def test_cp_as_good_as_tensorly_parafac():
    w = structured(N, M)
    fmt = make_format("cp", N, M, 5)
    ours = relative_error(reconstruct(fmt, decompose(w, fmt)), w)
    x = interleaved(w, N, M)
    theirs = relative_error(tl.cp_to_tensor(parafac(x, 5, init="svd", n_iter_max=100, tol=1e-8)), x)
    assert ours <= 1.01 * theirs and ours < 0.9


def discarded(t, modes, rank):
    """The squared singular values of t's matricization over `modes` beyond `rank`."""
    mat = np.moveaxis(t, modes, range(len(modes))).reshape(math.prod(t.shape[k] for k in modes), -1)
    s = np.linalg.svd(mat, compute_uv=False)
    return float(np.sum(s[rank:] ** 2))


def leaves(node):
    return [node] if isinstance(node, int) else leaves(node[0]) + leaves(node[1])


# the second: node matricizations of 1,536 x 1,280 and 1,280 x 1,536, whose bases come from a Gram matrix of
# their shorter side (the Gram route of ttrnn.decompose.matrices, tall and wide)
@pytest.mark.parametrize("n, m", [(N, M), ((12, 8, 10, 8), (4, 4, 4, 4))])
def test_ht_within_the_hierarchical_svd_bound(n, m):
    """Grasedyck (2010): ||W - W_HT||^2 <= sum over the non-root nodes of the discarded singular values^2, and no
    HT of these ranks does better than the largest node's discarded singular values^2."""
    w = structured(n, m, noise=0.2)
    fmt = make_format("ht", n, m, 2)
    t = interleaved(w, n, m)
    nodes = post_order(dimension_tree(0, len(n)))[:-1]
    tails = [discarded(t, leaves(v), r) for v, r in zip(nodes, fmt.ranks)]
    error = np.linalg.norm(reconstruct(fmt, decompose(w, fmt)) - w)
    assert math.sqrt(max(tails)) * (1 - 1e-6) <= error <= math.sqrt(sum(tails)) * (1 + 1e-6) and error > 0


def hosvd_projection(t, rank):
    """T x_k U_k U_k^T with U_k the leading left singular vectors of each unfolding (De Lathauwer 2000)."""
    us = [np.linalg.svd(np.moveaxis(t, k, 0).reshape(t.shape[k], -1), full_matrices=False)[0][:, :rank]
          for k in range(t.ndim)]                       # all from T itself (not the sequentially truncated one)
    for k, u in enumerate(us):
        t = np.moveaxis(np.tensordot(u @ u.T, np.moveaxis(t, k, 0), axes=1), 0, k)
    return t


def test_bt_one_block_is_the_hosvd_and_more_blocks_beat_the_greedy_fit():
    """One block = the truncated HOSVD (error^2 <= sum_k discarded_k); two blocks at least as good as the greedy
    HOSVD of W and then of its residual, computed here from the definition."""
    w = structured(N, M, noise=0.2)
    t = interleaved(w, N, M)
    one = make_format("bt", N, M, 2, blocks=1)
    two = make_format("bt", N, M, 2, blocks=2)
    e1 = np.linalg.norm(reconstruct(one, decompose(w, one)) - w)
    e2 = np.linalg.norm(reconstruct(two, decompose(w, two)) - w)
    first = hosvd_projection(t, 2)
    assert e1 == pytest.approx(np.linalg.norm(t - first), rel=1e-5)
    assert e1 <= math.sqrt(sum(discarded(t, [k], 2) for k in range(len(N)))) * (1 + 1e-6)
    greedy = np.linalg.norm(t - first - hosvd_projection(t - first, 2))
    assert e2 <= greedy * (1 + 1e-5) and e2 < e1


def test_ht_recovers_an_exactly_low_rank_matrix():
    """A TT-matrix of rank 2 over the interleaved modes has HT ranks <= 4: every discarded singular value is 0, so
    the hierarchical SVD at ranks 4 must reproduce it."""
    w = structured(N, M, rank=2, noise=0.0)
    fmt = make_format("ht", N, M, 4)
    assert relative_error(reconstruct(fmt, decompose(w, fmt)), w) < 1e-5


def test_full_ranks_are_the_maximal_ones():
    assert full_ranks("tt", N, M) == [1, 6, 4, 1]
    assert full_ranks("cp", N, M) == 24          # 6 * 12 * 4 / 12


def test_wrong_matrix_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(24, 12\)"):
        decompose(np.zeros((5, 5)), make_format("tt", N, M, 2))


X = np.random.default_rng(0).standard_normal((2, 5, 24)).astype("float32")


@pytest.mark.parametrize("kind, kwargs, name", [(keras.layers.GRU, {}, f) for f in ("tt", "tr", "bt", "cp", "ht")] + [
    (keras.layers.GRU, {"reset_after": False}, "tt"), (keras.layers.LSTM, {}, "tt"), (keras.layers.LSTM, {}, "ht"),
    (keras.layers.SimpleRNN, {}, "cp")])
def test_tensorized_recurrent_layer_at_full_ranks_computes_the_dense_one(kind, kwargs, name):
    layer = kind(12, return_sequences=True, **kwargs)
    layer(X)
    bias = layer.weights[-1]
    bias.assign(np.random.default_rng(2).standard_normal(bias.shape).astype("float32"))   # biases copied too
    new = ttrnn.tensorize(layer, name, input_modes=(2, 3, 4), output_modes=(2, 3, 2), ranks="full")
    assert type(new).__name__ == name.upper() + kind.__name__
    ref = layer(X).numpy()
    assert np.abs(new(X).numpy() - ref).max() <= 1e-5 * np.abs(ref).max()


def test_tensorized_dense_and_model():
    inp = keras.Input((5, 24))
    h = keras.layers.GRU(12, name="rnn")(inp)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="head")(h))
    new_model, layer = ttrnn.tensorize_model(model, "tt", (2, 3, 4), (2, 3, 2), "full")
    assert type(layer).__name__ == "TTGRU"
    np.testing.assert_allclose(new_model(X).numpy(), model(X).numpy(), atol=1e-5)


@pytest.mark.parametrize("name", ["tt", "tr", "bt", "cp", "ht"])
def test_tensorized_dense_at_full_ranks_computes_the_dense_one(name):
    dense = keras.layers.Dense(12, activation="relu")
    dense(X)
    new = ttrnn.tensorize(dense, name, (2, 3, 4), (2, 3, 2), "full")
    assert type(new).__name__ == name.upper() + "Dense"
    np.testing.assert_allclose(new(X).numpy(), dense(X).numpy(), atol=1e-5)


def test_low_rank_tensorization_keeps_the_recurrent_weights():
    layer = keras.layers.LSTM(12)
    layer(X)
    new = ttrnn.tensorize(layer, "tt", (2, 3, 4), (2, 3, 2), ranks=2)
    assert new.tt_ranks == [1, 2, 2, 1]
    np.testing.assert_array_equal(new.recurrent_kernel.numpy(), layer.weights[1].numpy())
    np.testing.assert_array_equal(new.bias.numpy(), layer.weights[2].numpy())


@pytest.mark.parametrize("make, call, match", [
    (lambda: keras.layers.Dense(12), dict(decomposition="qr"), "unknown decomposition"),
    (lambda: keras.layers.GRU(12, stateful=True), dict(), "stateful"),
    (lambda: keras.layers.GRU(12), dict(input_modes=(2, 3, 3)), "product 18"),
    (lambda: keras.layers.GRU(12), dict(output_modes=(2, 2, 2)), "12 units"),
    (lambda: keras.layers.Conv1D(12, 3), dict(), "Conv1D"),
])
def test_unsupported_layers_and_settings_are_one_line_errors(make, call, match):
    layer = make()
    layer(X[:, :, :] if not isinstance(layer, keras.layers.Dense) else X[:, 0])
    args = dict(decomposition="tt", input_modes=(2, 3, 4), output_modes=(2, 3, 2), ranks=2) | call
    with pytest.raises(TensorizeError, match=match):
        ttrnn.tensorize(layer, **args)


def test_unroll_and_zero_output_for_mask_are_carried_over():
    inp = keras.Input((5, 24))
    layer = keras.layers.GRU(12, return_sequences=True, unroll=True, zero_output_for_mask=True)
    keras.Model(inp, layer(keras.layers.Masking(0.0)(inp)))
    x = X.copy()
    x[0, :2] = 0.0                                                 # two masked steps: zero outputs there
    new = ttrnn.tensorize(layer, "tt", (2, 3, 4), (2, 3, 2), "full")
    assert new.unroll and new.zero_output_for_mask
    mask = np.any(x != 0, axis=-1)
    ref = layer(x, mask=mask).numpy()
    np.testing.assert_allclose(new(x, mask=mask).numpy(), ref, atol=1e-5)
    assert np.all(ref[0, :2] == 0)
