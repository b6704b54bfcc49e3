"""Fully decomposed recurrent layers: the recurrent kernel in a format (`recurrent_format`) and the integrated
matrix over [x, h] (`integrated=True`), against Keras's own GRU / LSTM / SimpleRNN run on the dense kernels
reconstructed from the same weights: outputs, and the gradients w.r.t. the input and every weight (through the
reconstruction), every format x cell, on TensorFlow here and on JAX in a subprocess (this file run as a script:
`KERAS_BACKEND=jax python tests/layers/test_fully_decomposed.py OUT.npz`). Also: the recurrent factors against
TensorLy, the weights' order, `.keras` round trips, uint8 frames through the padded integrated matrix, bad
arguments."""

import math
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

import ttrnn
from ttrnn.formats import FORMAT_NAMES
from ttrnn.layers import layer_class
from ttrnn.layers.cells import CELLS

REPO = Path(__file__).resolve().parents[2]
N, M, B, T, D = (4, 3), (2, 3), 3, 5, 12              # frames of 12 values, 6 units
RECURRENT_N = (3, 2)                                 # the recurrent kernel's input modes: 6 = 3 x 2
INTEGRATED_N = (5, 4)                                # 20 rows >= 12 + 6: rows 18, 19 are padding
CELL_NAMES = tuple(cell.NAME for cell in CELLS)
VARIANTS = ("recurrent", "integrated")
CASES = [(fmt, cell, variant) for variant in VARIANTS for fmt in FORMAT_NAMES for cell in CELL_NAMES]
TOL = 1e-5
# The normal pass: these; the whole matrix of formats x cells x variants is slow (about 2 s a case).
QUICK = {("tt", "GRU", "recurrent"), ("tt", "LSTM", "recurrent"), ("bt", "SimpleRNN", "recurrent"),
         ("ht", "LSTM", "integrated"), ("tr", "GRU", "integrated")}


def make(fmt, cell, variant, **kwargs):
    """The `fmt` layer of `cell`, its recurrent kernel in `fmt` too, or integrated (on 20 padded rows)."""
    ranks = [1, 2, 1] if fmt == "tt" else 2
    if variant == "recurrent":
        kwargs.update(recurrent_format=fmt, recurrent_input_modes=RECURRENT_N, recurrent_output_modes=M,
                      recurrent_ranks=ranks)
        n = N
    else:
        kwargs.update(integrated=True)
        n = INTEGRATED_N
    if cell == "GRU":
        kwargs.setdefault("reset_after", True)
    layer = layer_class(fmt, cell)(list(n), list(M), ranks, **kwargs)
    layer.build((None, T, D))
    rng = np.random.default_rng(FORMAT_NAMES.index(fmt) * 7 + CELL_NAMES.index(cell))
    # weights of one scale: the dense kernels' entries near 0.3, so that the gates are not saturated
    layer.set_weights([rng.standard_normal(w.shape).astype("float32") * (0.6 if len(w.shape) > 1 else 0.3)
                       for w in layer.get_weights()])
    return layer


def batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, D)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[0, 3:] = False                               # padded tail
    mask[1, 1:3] = False                              # masked steps in the middle
    return x, mask


def keras_reference(layer, cell):
    common = dict(return_sequences=True, go_backwards=True)
    ref = {"GRU": lambda: keras.layers.GRU(layer.units, reset_after=True, **common),
           "LSTM": lambda: keras.layers.LSTM(layer.units, **common),
           "SimpleRNN": lambda: keras.layers.SimpleRNN(layer.units, **common)}[cell]()
    ref.build((None, T, D))
    return ref


def losses(layer, cell):
    """Two functions of (the layer's trainable values, x): ours, and Keras's layer on the dense kernels that
    the layer's `full_kernel()` / `recurrent_kernel` reconstruct from those values."""
    ref = keras_reference(layer, cell)
    x, mask = batch()
    fixed = [np.asarray(v) for v in layer.non_trainable_variables]       # the dropout seed's state
    ref_fixed = [np.asarray(v) for v in ref.non_trainable_variables]

    def ours(values, x):
        out, _ = layer.stateless_call(values, fixed, x, mask=mask)
        return ops.sum(ops.sin(out))

    def theirs(values, x):
        with keras.StatelessScope(state_mapping=list(zip(layer.trainable_variables, values))):
            dense = [layer.full_kernel(), layer.recurrent_kernel, layer.bias.value]
        out, _ = ref.stateless_call(dense, ref_fixed, x, mask=mask)
        return ops.sum(ops.sin(out))

    return ours, theirs, x


def value_and_grads(fn, values, x):
    """`fn(values, x)` and its gradients w.r.t. `values` and `x`, as NumPy, on this backend."""
    if keras.backend.backend() == "jax":
        import jax

        loss, (dv, dx) = jax.value_and_grad(fn, argnums=(0, 1))(values, x)
    else:
        import tensorflow as tf

        values, x = [tf.convert_to_tensor(v) for v in values], tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(values + [x])
            loss = fn(values, x)
        *dv, dx = tape.gradient(loss, values + [x])
    return [np.asarray(loss)] + [np.asarray(g) for g in dv] + [np.asarray(dx)]


def case_results(fmt, cell, variant):
    """{"ours": [loss, d weights..., d x], "keras": [...]}: the two should agree."""
    layer = make(fmt, cell, variant, return_sequences=True, go_backwards=True)
    ours, theirs, x = losses(layer, cell)
    values = [np.asarray(v) for v in layer.trainable_variables]
    return {"ours": value_and_grads(ours, values, x), "keras": value_and_grads(theirs, values, x)}


def assert_agree(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= TOL * max(1.0, np.abs(b).max())


@pytest.mark.parametrize("fmt, cell, variant", [
    pytest.param(*case, marks=() if case in QUICK else pytest.mark.slow, id="-".join(case)) for case in CASES])
def test_outputs_and_gradients_equal_keras_on_the_dense_kernels(fmt, cell, variant):
    results = case_results(fmt, cell, variant)
    assert_agree(results["ours"], results["keras"])
    assert np.abs(results["ours"][-1]).max() > 0       # the gradient reaches the input


def worker(out):
    """This file as a script: every case's results on this backend, into `out` (.npz)."""
    arrays = {}
    for fmt, cell, variant in CASES:
        for side, values in case_results(fmt, cell, variant).items():
            for k, v in enumerate(values):
                arrays[f"{fmt}_{cell}_{variant}_{side}_{k}"] = v
    np.savez(out, **arrays)


@pytest.fixture(scope="module")
def jax_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("fully_decomposed") / "jax.npz"
    env = dict(os.environ, PYTHONPATH=str(REPO), KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, __file__, str(out)], env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, f"jax worker failed:\n{proc.stderr[-3000:]}"
    return dict(np.load(out))


@pytest.mark.slow
@pytest.mark.parametrize("fmt, cell, variant", CASES, ids=[f"{f}-{c}-{v}" for f, c, v in CASES])
def test_jax_outputs_and_gradients_equal_keras_and_tensorflow(jax_results, fmt, cell, variant):
    def side(name):
        return [jax_results[key] for key in sorted((k for k in jax_results if k.startswith(
            f"{fmt}_{cell}_{variant}_{name}_")), key=lambda k: int(k.rsplit("_", 1)[1]))]

    assert_agree(side("ours"), side("keras"))                      # JAX: ours = Keras's
    assert_agree(side("ours"), case_results(fmt, cell, variant)["ours"])   # JAX = TensorFlow


@pytest.mark.parametrize("fmt", ["tt", "tr", "cp"])
def test_recurrent_factors_reconstruct_to_tensorlys(fmt):
    """The recurrent factors (gates folded into the first output mode) rebuild `recurrent_kernel` through
    TensorLy's own reconstruction of the format."""
    import tensorly as tl
    from tensorly.tt_matrix import tt_matrix_to_matrix

    layer = make(fmt, "LSTM", "recurrent")
    factors = layer.recurrent_factors
    n, m = RECURRENT_N, (4 * M[0],) + M[1:]
    if fmt == "tt":
        dense = tt_matrix_to_matrix([np.asarray(c) for c in factors])
    elif fmt == "tr":
        dense = tl.tr_to_tensor([np.asarray(c) for c in factors]).reshape(math.prod(n), math.prod(m))
    else:
        weights, fs = factors
        t = tl.cp_to_tensor((np.asarray(weights), [np.asarray(f) for f in fs]))     # (n_0, m_0, n_1, m_1)
        dense = np.transpose(t.reshape(n[0], m[0], n[1], m[1]), (0, 2, 1, 3)).reshape(math.prod(n), math.prod(m))
    np.testing.assert_allclose(np.asarray(layer.recurrent_kernel), dense, rtol=1e-5, atol=1e-6)
    assert layer.recurrent_param_count == sum(int(np.prod(w.shape)) for w in layer.recurrent_weights)


def test_weights_keep_their_order_and_names():
    """Input factors, then the recurrent kernel (dense, or its factors, or none when integrated), then the bias:
    a dense-recurrent layer's weights list is as before, so its saved files load."""
    dense = ttrnn.TTGRU([4, 3], [2, 3], [1, 2, 1])
    dense.build((None, T, D))
    assert [w.name for w in dense.weights] == ["tt_core_0", "tt_core_1", "recurrent_kernel", "bias"]
    assert dense.recurrent_factors is None and dense.recurrent_kernel is dense.weights[2]
    rec = make("tt", "GRU", "recurrent")
    assert [w.name for w in rec.weights] == ["tt_core_0", "tt_core_1", "recurrent_tt_core_0", "recurrent_tt_core_1",
                                             "bias"]
    integ = make("ht", "LSTM", "integrated")
    assert [w.name for w in integ.weights] == ["ht_leaf_0", "ht_leaf_1", "ht_transfer_0", "bias"]
    assert tuple(integ.full_kernel().shape) == (D, 24) and tuple(integ.recurrent_kernel.shape) == (6, 24)
    full = np.asarray(integ.kernel.full())                 # the one matrix: input rows, then the state's
    np.testing.assert_allclose(np.asarray(integ.recurrent_kernel), full[D:D + 6], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_keras_file_round_trip(tmp_path, variant):
    layer = make("bt", "LSTM", variant, return_sequences=True)
    frames = keras.Input((T, D))
    model = keras.Model(frames, layer(frames))
    x, _ = batch()
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = ttrnn.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-6, atol=1e-6)
    config = loaded.layers[-1].get_config()
    assert config["integrated"] == (variant == "integrated")
    assert config["recurrent_format"] == (None if variant == "integrated" else "bt")
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("fmt", ["tt", "ht"])
def test_integrated_uint8_frames_with_shift_equal_float(fmt):
    """Padded rows stay zero through `x * scale + shift` (the shift is not added to them), on every loop."""
    x = np.random.default_rng(3).integers(0, 256, (B, T, D), dtype=np.uint8)
    kwargs = dict(input_scale=1 / 255.0, input_shift=-0.5, return_sequences=True)
    fused = make(fmt, "GRU", "integrated", **kwargs)
    ref = np.asarray(fused(x.astype("float32")))
    np.testing.assert_allclose(np.asarray(fused(x)), ref, rtol=1e-5, atol=1e-6)
    for options in (dict(recurrence="keras", time_chunk=2), dict(projection_block=3), dict(unroll=True)):
        other = make(fmt, "GRU", "integrated", **kwargs, **options)
        other.set_weights(fused.get_weights())
        np.testing.assert_allclose(np.asarray(other(x)), ref, rtol=1e-5, atol=1e-6)
    # the same function as the layer over the dense matrix of rows [x, h]: Keras's GRU with those kernels
    gru = keras.layers.GRU(6, reset_after=True, return_sequences=True)
    gru.build((None, T, D))
    gru.set_weights([np.asarray(fused.full_kernel()), np.asarray(fused.recurrent_kernel), np.asarray(fused.bias)])
    np.testing.assert_allclose(np.asarray(gru(x / 255.0 - 0.5)), ref, rtol=1e-5, atol=1e-6)


def test_training_with_dropout_reaches_every_factor():
    import tensorflow as tf

    x, _ = batch()
    for variant in VARIANTS:
        layer = make("tt", "LSTM", variant, dropout=0.3, recurrent_dropout=0.3, seed=1)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.sin(layer(x, training=True)))
        grads = tape.gradient(loss, layer.trainable_variables)
        assert all(np.abs(np.asarray(g)).max() > 0 for g in grads)


@pytest.mark.parametrize("kwargs, message", [
    (dict(integrated=True, recurrent_format="tt"), "recurrent_format must be None"),
    (dict(recurrent_ranks=2), "give recurrent_format too"),
    (dict(recurrent_format="xx"), "unknown recurrent_format"),
    (dict(recurrent_format="tt", recurrent_input_modes=[2, 2]), "not to the layer's 6 units"),
    (dict(recurrent_format="cp", recurrent_blocks=2), "blocks applies to the bt format only"),
])
def test_bad_recurrent_arguments_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        ttrnn.CPGRU([4, 3], [2, 3], **kwargs)
    assert "\n" not in str(info.value)


def test_integrated_needs_rows_for_input_and_state():
    layer = ttrnn.TTLSTM([4, 4], [2, 3], [1, 2, 1], integrated=True)          # 16 < 12 + 6
    with pytest.raises(ValueError, match="fewer than the input's 12 values plus 6 units"):
        layer.build((None, T, D))


if __name__ == "__main__":
    worker(sys.argv[1])
