"""Regularizers and constraints of the TT layers (documented constructor arguments): the losses equal the NumPy
formula on the layer's own cores / kernels, and a constraint holds after an optimizer step that pushes past it."""
import keras
import numpy as np
import pytest

import ttrnn


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(3)


def test_ttdense_regularizer_losses_are_the_formula_on_cores_and_bias():
    layer = ttrnn.TTDense([3, 4], [2, 3], [1, 2, 1], kernel_regularizer=keras.regularizers.L2(0.1),
                          bias_regularizer=keras.regularizers.L1(0.2), bias_initializer="random_normal")
    layer(np.ones((2, 12), "float32"))
    cores = [np.asarray(c) for c in layer.tt_cores]
    expected = 0.1 * sum((c ** 2).sum() for c in cores) + 0.2 * np.abs(np.asarray(layer.bias)).sum()
    assert float(sum(keras.ops.convert_to_numpy(loss) for loss in layer.losses)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("cls", [ttrnn.TTGRU, ttrnn.TTLSTM, ttrnn.TTSimpleRNN])
def test_recurrent_regularizers_cover_cores_recurrent_kernel_and_bias(cls):
    layer = cls([3, 4], [2, 3], [1, 2, 1], kernel_regularizer=keras.regularizers.L2(0.1),
                recurrent_regularizer=keras.regularizers.L1(0.3), bias_regularizer=keras.regularizers.L2(0.2),
                activity_regularizer=keras.regularizers.L2(0.05), bias_initializer="random_normal")
    x = np.random.default_rng(0).standard_normal((2, 4, 12)).astype("float32")
    out = np.asarray(layer(x))
    expected = (0.1 * sum((np.asarray(c) ** 2).sum() for c in layer.tt_cores)
                + 0.3 * np.abs(np.asarray(layer.recurrent_kernel)).sum()
                + 0.2 * (np.asarray(layer.bias) ** 2).sum()
                + 0.05 * (out ** 2).sum() / len(out))  # Keras divides the activity loss by the batch size
    assert float(sum(keras.ops.convert_to_numpy(loss) for loss in layer.losses)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("cls", [ttrnn.TTDense, ttrnn.TTGRU])
def test_constraints_hold_after_an_optimizer_step(cls):
    kwargs = dict(kernel_constraint=keras.constraints.NonNeg(), bias_constraint=keras.constraints.MaxNorm(0.5))
    if cls is ttrnn.TTGRU:
        kwargs["recurrent_constraint"] = keras.constraints.NonNeg()
        x = np.ones((2, 3, 12), "float32")
    else:
        x = np.ones((2, 12), "float32")
    layer = cls([3, 4], [2, 3], [1, 2, 1], bias_initializer="ones", **kwargs)
    import tensorflow as tf
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x)) * 100.0  # a big step: every weight is pushed down, many below zero
    grads = tape.gradient(loss, layer.trainable_variables)
    before = [np.asarray(v).copy() for v in layer.trainable_variables]
    keras.optimizers.SGD(1.0).apply_gradients(zip(grads, layer.trainable_variables))
    assert any(((b - np.asarray(g)) < 0).any() for b, g in zip(before, grads))  # unconstrained: negative
    for core in layer.tt_cores:
        assert np.asarray(core).min() >= 0
    if cls is ttrnn.TTGRU:
        assert np.asarray(layer.recurrent_kernel).min() >= 0
    norms = np.sqrt((np.asarray(layer.bias) ** 2).sum(axis=0))  # MaxNorm: along axis 0
    assert norms.max() <= 0.5 + 1e-6
