"""The memory-bounded projection (ttrnn.layers.projection) computes what the whole-batch path computes, for every
kernel format.

Oracle: the whole-batch path (`tt.tt_matmul`, itself tested against the dense reconstruction and TensorLy in
test_tt.py) and a TT layer with `projection_block=0`; values and gradients must agree to float32 rounding.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import ttrnn
from ttrnn.formats import tt
from ttrnn.layers.projection import project_in_blocks

N, M, R = (6, 10, 12), (2, 3, 2), (1, 3, 2, 1)    # frames of 720 values (12x20x3), 12 outputs
D = 720                                               # tt.merge_tail leaves two cores: the chain has a step
B, T = 3, 11                                          # T = 11: blocks of 2 or 4 steps leave a partial last block


def frames(seed=0):
    x = np.random.default_rng(seed).integers(0, 256, (B, T, D), dtype=np.uint8)
    x[0, :4] = 0                                      # pre-padding, as the data pipeline writes it
    return x


def grads_of(fn, variables):
    with tf.GradientTape() as tape:
        out = fn()
        loss = tf.reduce_sum(tf.sin(out))             # a non-linear loss: every output gets its own gradient
    return loss, tape.gradient(loss, variables)


def assert_close(a, b, tol=1e-5):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.max(np.abs(a - b)) <= tol * max(1.0, np.max(np.abs(b))), np.max(np.abs(a - b))


@pytest.mark.parametrize("block_steps", [1, 2, 4, 11, 20])
@pytest.mark.parametrize("keep_first", [True, False])
def test_blocks_equal_whole_batch(block_steps, keep_first):
    cores = [tf.Variable(c * 0.3) for c in tt.random_cores(N, M, R, seed=1)]
    x = tf.constant(frames())
    mask = tf.constant(np.random.default_rng(2).choice([0.0, 2.0], (B, 1, D)).astype(np.float32))
    scale, shift = mask / 255.0, -0.5 * mask           # a dropout mask per clip on top of pixel scaling
    ref_loss, ref_grads = grads_of(lambda: tt.tt_matmul(x, cores, scale=scale, shift=shift), cores)
    loss, got = grads_of(lambda: project_in_blocks(x, tt.first_matrix(cores), tt.rest, cores, scale, shift,
                                                   block_steps, keep_first=keep_first), cores)
    assert_close(loss, ref_loss)
    for g, r in zip(got, ref_grads):
        assert_close(g, r)
    z = project_in_blocks(x, tt.first_matrix(cores), tt.rest, cores, scale, shift, block_steps)
    assert z.shape == (B, T, 12)
    assert_close(z, tt.tt_matmul(x, cores, scale=scale, shift=shift))


def test_bfloat16_first_contraction_in_blocks():
    cores = [tf.Variable(c * 0.3) for c in tt.random_cores(N, M, R, seed=3)]
    x = tf.constant(frames(4))
    ref = tt.tt_matmul(x, cores, shift=-128.0, first_dtype="bfloat16")
    got = project_in_blocks(x, tt.first_matrix(cores), tt.rest, cores, None, -128.0, 3, compute_dtype="bfloat16")
    assert got.dtype == tf.float32
    assert_close(got, ref, tol=2e-2)                  # both round the product to bfloat16


def layer_pair(cls, ranks=R, **kwargs):
    """Two identical seeded layers (same weights, same dropout seed): the whole-batch path and the blocks."""
    plain = cls(N, M, ranks, projection_block=0, seed=7, **kwargs)
    blocked = cls(N, M, ranks, projection_block=2 * B, seed=7, **kwargs)   # 2 time steps per block
    for layer in (plain, blocked):
        layer.build((B, T, D))
    blocked.set_weights(plain.get_weights())
    return plain, blocked


@pytest.mark.parametrize("cls,kwargs", [
    (ttrnn.TTGRU, dict(dropout=0.3, recurrent_dropout=0.2)),
    (ttrnn.TTGRU, dict(preset="paper", go_backwards=True, return_sequences=True)),
    (ttrnn.TTLSTM, dict(dropout=0.3, return_sequences=True)),
    (ttrnn.TTSimpleRNN, dict(go_backwards=True)),
    (ttrnn.TRGRU, dict(ranks=2, dropout=0.3)),                 # every format goes through its first_matrix / rest
    (ttrnn.BTLSTM, dict(ranks=2, blocks=2, return_sequences=True)),
    (ttrnn.CPGRU, dict(ranks=3)),
    (ttrnn.HTSimpleRNN, dict(ranks=2, go_backwards=True)),
])
def test_layer_loss_and_gradients_match_whole_batch(cls, kwargs):
    plain, blocked = layer_pair(cls, input_scale=1 / 255, input_shift=-0.5, **kwargs)
    assert blocked.block_steps(tf.constant(frames())) == 2 and plain.block_steps(tf.constant(frames())) is None
    x = tf.constant(frames(5))
    mask = tf.constant(np.any(frames(5) != 0, axis=-1))
    results = []
    for layer in (plain, blocked):
        results.append(grads_of(lambda: layer(x, mask=mask, training=True), layer.trainable_variables))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert_close(loss_b, loss_a)
    for a, b in zip(grads_a, grads_b):
        assert_close(b, a)


def test_paper_model_routes_long_uint8_clips_through_blocks_and_saves():
    """The paper model's TT layer takes the bounded path for uint8 clips (one model call, in a tf.function)
    and the setting survives a .keras round trip."""
    from ttrnn.models import rnn_classifier

    model = rnn_classifier(3, (12, 20, 3), tt_input_shape=N, tt_output_shape=M, tt_ranks=R)
    layer = model.get_layer("input_to_hidden")
    assert layer.projection_block is None and layer.block_steps(tf.constant(frames())) >= 1
    out = tf.function(lambda v: model(v, training=True))(tf.constant(frames().reshape(B, T, 12, 20, 3)))
    assert out.shape == (B, 3) and np.all(np.isfinite(out))
    layer.projection_block = 0
    assert layer.block_steps(tf.constant(frames())) is None
    assert keras.layers.deserialize(keras.layers.serialize(layer)).projection_block == 0


def test_bad_projection_block():
    with pytest.raises(ValueError, match="projection_block"):
        ttrnn.TTGRU(N, M, R, projection_block=-1)


def test_default_choice_per_batch_under_one_trace():
    """With one trace for all shapes (reduce_retracing, as the trainer's step), the default layer decides per
    batch: > WHOLE_BATCH_FRAMES frames in blocks, else whole; gradients equal the whole-batch layer's."""
    from ttrnn.layers.kernel import WHOLE_BATCH_FRAMES

    auto = ttrnn.TTGRU(N, M, R, seed=3)
    plain = ttrnn.TTGRU(N, M, R, projection_block=0, seed=3)
    for layer in (auto, plain):
        layer.build((None, None, D))
    plain.set_weights(auto.get_weights())

    def loss_and_grads(layer):
        @tf.function(reduce_retracing=True)
        def step(x):
            return grads_of(lambda: layer(x, training=True), layer.trainable_variables)
        return step

    steps = {layer: loss_and_grads(layer) for layer in (auto, plain)}
    batch = 16
    for t in (WHOLE_BATCH_FRAMES // batch - 8, WHOLE_BATCH_FRAMES // batch + 8, WHOLE_BATCH_FRAMES // batch + 24):
        x = tf.constant(np.random.default_rng(t).integers(0, 256, (batch, t, D), dtype=np.uint8))
        (loss_a, grads_a), (loss_b, grads_b) = steps[auto](x), steps[plain](x)
        assert_close(loss_a, loss_b)
        for a, b in zip(grads_a, grads_b):
            assert_close(a, b)
    assert steps[auto].experimental_get_tracing_count() <= 2          # the third shape reused a relaxed trace
