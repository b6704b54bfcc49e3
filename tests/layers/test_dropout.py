"""Dropout of the TT recurrent layers against its definition (variational dropout, Gal & Ghahramani 2016):
each kept unit is scaled by 1/(1-p), a unit is dropped with probability p, one mask per sequence (the same at every
time step, a new one for every sequence), and for the recurrent state either one mask per gate (Keras, the modern
preset) or one mask shared by all gates (the original code, the paper preset).

The masks are read back from outside the layer: the input mask by inverting an orthogonal TT kernel, the recurrent
masks from the gradient with respect to the recurrent kernel (zeroed, so the forward pass does not depend on the
mask and the gradient with dropout is the gradient without it with masked rows)."""
import keras
import numpy as np
import pytest

import ttrnn

P = 0.3


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(7)


def orthogonal(n, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q.astype("float32")


def test_input_mask_rate_scale_and_one_mask_per_sequence():
    """x = 1, W orthogonal, no recurrence, linear: the outputs are mask @ W, so the mask is outputs @ W.T."""
    layer = ttrnn.TTSimpleRNN([16, 16], [16, 16], [1, 1, 1], activation=None, use_bias=False, dropout=P,
                              return_sequences=True, seed=1)
    batch, steps = 64, 5
    x = np.ones((batch, steps, 256), "float32")
    layer.build(x.shape)
    layer.tt_cores[0].assign(orthogonal(16, 0).reshape(1, 16, 16, 1))
    layer.tt_cores[1].assign(orthogonal(16, 1).reshape(1, 16, 16, 1))
    layer.recurrent_kernel.assign(np.zeros((256, 256), "float32"))
    w = np.asarray(layer.full_kernel())
    np.testing.assert_allclose(w @ w.T, np.eye(256), atol=1e-5)

    masks = np.asarray(layer(x, training=True)) @ w.T                        # (batch, steps, 256)
    kept = masks > 0.5
    np.testing.assert_allclose(masks[kept], 1 / (1 - P), rtol=1e-4)       # scaled by 1/(1-p)
    np.testing.assert_allclose(masks[~kept], 0, atol=1e-4)
    assert abs((~kept[:, 0]).mean() - P) < 0.02                            # 16,384 draws: 5.5 sigma
    assert (kept == kept[:, :1]).all()                                     # the same mask at every step
    assert len({row.tobytes() for row in kept[:, 0]}) == batch             # a new mask for every sequence
    np.testing.assert_allclose(np.asarray(layer(x, training=False)) @ w.T, 1, atol=1e-4)  # none in inference


def recurrent_gradient(layer, x, h0, training):
    """d(sum(out * weights)) / d recurrent_kernel for one sequence, as a NumPy array (units, gates * units)."""
    import tensorflow as tf
    weights = np.random.default_rng(5).standard_normal((1, layer.units)).astype("float32")
    with tf.GradientTape() as tape:
        out = layer(x, initial_state=[h0] * layer.N_STATES, training=training)
        loss = tf.reduce_sum(out * weights)
    return tape.gradient(loss, layer.recurrent_kernel).numpy()


@pytest.mark.parametrize("cls, preset, shared", [(ttrnn.TTGRU, "modern", False), (ttrnn.TTGRU, "paper", True),
                                                 (ttrnn.TTLSTM, "modern", False), (ttrnn.TTLSTM, "paper", True),
                                                 (ttrnn.TTSimpleRNN, "modern", True)])
def test_recurrent_masks_rate_scale_constant_in_time_shared_or_per_gate(cls, preset, shared):
    layer = cls([2, 2], [16, 16], [1, 2, 1], preset=preset, recurrent_dropout=P, seed=2, time_chunk=1,
                bias_initializer="random_normal")
    x = np.random.default_rng(0).standard_normal((1, 3, 4)).astype("float32")
    h0 = np.random.default_rng(1).uniform(0.5, 1.5, (1, layer.units)).astype("float32")
    layer.build(x.shape)
    layer.recurrent_kernel.assign(np.zeros(layer.recurrent_kernel.shape, "float32"))
    plain = recurrent_gradient(layer, x, h0, training=False)
    dropped = recurrent_gradient(layer, x, h0, training=True)

    u = layer.units
    masks = []
    for g in range(cls.GATES):
        a, b = plain[:, g * u:(g + 1) * u], dropped[:, g * u:(g + 1) * u]
        if not a.any():  # paper GRU: with U = 0 the reset gate does not reach the output; its mask is unseen
            continue
        # dropped = diag(mask) @ plain: one factor per row (unit), the same for all 3 steps' contributions
        ratio = (a * b).sum(1) / (a * a).sum(1)
        np.testing.assert_allclose(b, ratio[:, None] * a, rtol=1e-4, atol=1e-5 * np.abs(a).max())
        kept = ratio > 0.5
        np.testing.assert_allclose(ratio[kept], 1 / (1 - P), rtol=1e-4)
        np.testing.assert_allclose(ratio[~kept], 0, atol=1e-4)
        masks.append(kept)
    assert len(masks) >= min(cls.GATES, 2)
    rate = 1 - np.concatenate(masks).mean()
    assert abs(rate - P) < (0.12 if shared else 0.07)                      # 256 or 3-4 x 256 draws: 4 sigma
    same = all((m == masks[0]).all() for m in masks)
    assert same == shared or cls.GATES == 1
