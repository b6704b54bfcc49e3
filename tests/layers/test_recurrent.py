"""TT recurrent layers against Keras's own GRU / LSTM / SimpleRNN given the TT layer's dense weights."""

import keras
import numpy as np
import pytest

import ttrnn
from ttrnn.formats import tt
from ttrnn.layers.activations import hard_sigmoid

N, M, R = (4, 3), (2, 3), (1, 3, 1)          # input 12, units 6
B, T = 3, 7


@pytest.fixture(autouse=True)
def _seed():
    """Every layer starts from the same weights on every run, so a tolerance is checked on the same numbers."""
    keras.utils.set_random_seed(1234)


def masked_batch(seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, 12)).astype("float32")
    x[0, 5:] = 0        # padded tail
    x[1, 2:4] = 0       # masked steps in the middle
    return x.astype(dtype)


def reference_layer(layer, **kwargs):
    """The Keras layer with the TT layer's dense weights."""
    common = dict(return_sequences=layer.return_sequences, go_backwards=layer.go_backwards)
    if isinstance(layer, ttrnn.TTGRU):
        ref = keras.layers.GRU(layer.units, reset_after=layer.reset_after, recurrent_activation="sigmoid", **common)
    elif isinstance(layer, ttrnn.TTLSTM):
        ref = keras.layers.LSTM(layer.units, recurrent_activation="sigmoid", **common)
    else:
        ref = keras.layers.SimpleRNN(layer.units, **common)
    ref.build((None, T, 12))
    ref.set_weights([np.asarray(layer.full_kernel()), np.asarray(layer.recurrent_kernel), np.asarray(layer.bias)])
    return ref


def with_masking(layer):
    inp = keras.Input((T, 12))
    return keras.Model(inp, layer(keras.layers.Masking(0.0)(inp)))


CASES = [(ttrnn.TTGRU, dict(reset_after=False)), (ttrnn.TTGRU, dict(reset_after=True)),
         (ttrnn.TTLSTM, {}), (ttrnn.TTSimpleRNN, {})]


@pytest.mark.parametrize("cls, kw", CASES, ids=["gru", "gru_reset_after", "lstm", "simple_rnn"])
@pytest.mark.parametrize("seq, back, chunk", [(False, False, 1), (True, False, 3), (True, True, 0),
                                              (False, True, 2)])
def test_matches_keras_reference_on_masked_input(cls, kw, seq, back, chunk):
    layer = cls(N, M, R, return_sequences=seq, go_backwards=back, time_chunk=chunk,
                bias_initializer="random_normal", **kw)
    x = masked_batch()
    ours = with_masking(layer).predict(x, verbose=0)
    ref = with_masking(reference_layer(layer)).predict(x, verbose=0)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() / np.abs(ref).max() <= 1e-5


@pytest.mark.parametrize("cls", [ttrnn.TTGRU, ttrnn.TTLSTM])
def test_mask_argument_and_return_state(cls):
    layer = cls(N, M, R, return_state=True, bias_initializer="random_normal")
    x = masked_batch(1)
    mask = np.any(x != 0, axis=-1)
    ours = layer(x, mask=mask)
    ref = reference_layer(layer)
    ref.return_state = True
    expected = ref(x, mask=mask)
    assert len(ours) == len(expected) == 1 + cls.N_STATES
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_uint8_input_equals_float_input():
    layer = ttrnn.TTGRU(N, M, R)
    x = np.random.default_rng(2).integers(0, 256, (B, T, 12), dtype=np.uint8)
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(layer(x.astype("float32"))), rtol=1e-6)


@pytest.mark.parametrize("cls, chunk", [(ttrnn.TTGRU, 2), (ttrnn.TTLSTM, 0)])
def test_input_scale_and_shift_on_uint8_equal_prescaled_float(cls, chunk):
    """uint8 frames scaled inside the layer (per chunk) give the outputs and weight gradients of the same
    layer fed the pre-scaled float frames; the scaling survives get_config."""
    import tensorflow as tf

    x = (masked_batch(3) * 60).clip(0, 255).astype("uint8")
    scaled = cls(N, M, R, time_chunk=chunk, input_scale=1 / 255, input_shift=-0.5)
    plain = cls(N, M, R, time_chunk=chunk)
    scaled.build((None, T, 12))
    plain.build((None, T, 12))
    plain.set_weights(scaled.get_weights())
    mask = x.any(axis=-1)

    def run(layer, inputs):
        with tf.GradientTape() as tape:
            y = layer(inputs, mask=mask)
            loss = tf.reduce_sum(y * y)
        return np.asarray(y), [np.asarray(g) for g in tape.gradient(loss, layer.trainable_weights)]

    y, grads = run(scaled, x)
    y_ref, grads_ref = run(plain, x.astype("float32") / 255 - 0.5)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    for g, g_ref in zip(grads, grads_ref):
        np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-5 * np.abs(g_ref).max())
    config = scaled.get_config()
    assert (config["input_scale"], config["input_shift"]) == (1 / 255, -0.5)
    assert cls.from_config(config).input_shift == -0.5


def test_column_blocks_are_gates_in_keras_order():
    """The gate factor sits in the first output mode, so the dense kernel's column block g is gate g."""
    layer = ttrnn.TTLSTM(N, M, R)
    layer.build((None, T, 12))
    assert [tuple(c.shape) for c in layer.tt_cores] == [(1, 4, 8, 3), (3, 3, 3, 1)]
    w = np.asarray(layer.full_kernel())
    cores = [np.asarray(c) for c in layer.tt_cores]
    u = layer.units
    for g in range(4):   # gate g's own TT-matrix: slice g of the first core's output mode
        gate_cores = [cores[0][:, :, g * 2:(g + 1) * 2, :], cores[1]]
        np.testing.assert_allclose(w[:, g * u:(g + 1) * u], np.asarray(tt.full(gate_cores)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls, expected", [(ttrnn.TTGRU, 3232), (ttrnn.TTLSTM, 3360)])
def test_ucf11_param_counts(cls, expected):
    assert cls((8, 20, 20, 18), (4, 4, 4, 4), (1, 4, 4, 4, 1)).tt_param_count == expected


@pytest.mark.parametrize("cls, n, expected", [
    (ttrnn.TTGRU, (10, 18, 13, 30), 2944), (ttrnn.TTLSTM, (10, 18, 13, 30), 3104),
    (ttrnn.TTGRU, (4, 20, 20, 36), 3328), (ttrnn.TTLSTM, (4, 20, 20, 36), 3392),
])
def test_other_dataset_param_counts(cls, n, expected):
    layer = cls(n, (4, 4, 4, 4), (1, 4, 4, 4, 1))
    layer.build((None, None, int(np.prod(n))))
    assert layer.tt_param_count == expected == sum(int(np.prod(c.shape)) for c in layer.tt_cores)


def test_presets_and_overrides():
    modern, paper = ttrnn.TTGRU(N, M, R), ttrnn.TTGRU(N, M, R, preset="paper")
    assert modern.reset_after and not paper.reset_after
    assert isinstance(modern.kernel_initializer, tt.TTGlorotNormal)
    assert isinstance(paper.kernel_initializer, tt.FlatGlorotUniform)
    assert paper.recurrent_activation is hard_sigmoid and paper.shared_recurrent_dropout
    assert modern.recurrent_activation is keras.activations.sigmoid and not modern.shared_recurrent_dropout
    custom = ttrnn.TTGRU(N, M, R, preset="paper", reset_after=True, recurrent_activation="sigmoid")
    assert custom.reset_after and custom.recurrent_activation is keras.activations.sigmoid
    with pytest.raises(ValueError, match="preset"):
        ttrnn.TTGRU(N, M, R, preset="old")


def test_paper_preset_matches_keras_gru_with_hard_sigmoid():
    layer = ttrnn.TTGRU(N, M, R, preset="paper", return_sequences=True, bias_initializer="random_normal")
    x = masked_batch(3)
    ours = with_masking(layer).predict(x, verbose=0)
    ref = reference_layer(layer)
    ref.cell.recurrent_activation = hard_sigmoid
    expected = with_masking(ref).predict(x, verbose=0)
    assert np.abs(ours - expected).max() / np.abs(expected).max() <= 1e-5


def test_hard_sigmoid_is_keras2_version():
    x = np.array([-3.0, -2.5, -1.0, 0.0, 1.0, 2.5, 3.0], "float32")
    np.testing.assert_allclose(np.asarray(hard_sigmoid(x)), np.clip(0.2 * x + 0.5, 0, 1), rtol=1e-6)


@pytest.mark.parametrize("cls", [ttrnn.TTGRU, ttrnn.TTLSTM, ttrnn.TTSimpleRNN])
@pytest.mark.parametrize("preset", ["modern", "paper"])
def test_dropout_in_training_only(cls, preset):
    layer = cls(N, M, R, preset=preset, dropout=0.3, recurrent_dropout=0.3, seed=4)
    x = masked_batch(4)
    a, b = np.asarray(layer(x, training=False)), np.asarray(layer(x, training=False))
    np.testing.assert_array_equal(a, b)
    trained = np.asarray(layer(x, training=True))
    assert np.isfinite(trained).all() and not np.allclose(trained, a)


def test_unit_forget_bias():
    layer = ttrnn.TTLSTM(N, M, R)
    layer.build((None, T, 12))
    bias = np.asarray(layer.bias)
    np.testing.assert_array_equal(bias[6:12], 1.0)
    np.testing.assert_array_equal(np.delete(bias, np.s_[6:12]), 0.0)
    off = ttrnn.TTLSTM(N, M, R, unit_forget_bias=False)
    off.build((None, T, 12))
    np.testing.assert_array_equal(np.asarray(off.bias), 0.0)


FUSED_CASES = [(ttrnn.TTGRU, {}), (ttrnn.TTGRU, dict(preset="paper")), (ttrnn.TTLSTM, {}), (ttrnn.TTSimpleRNN, {}),
               (ttrnn.TTGRU, dict(return_sequences=True, go_backwards=True)),
               (ttrnn.TTLSTM, dict(return_sequences=True, return_state=True)),
               (ttrnn.TTGRU, dict(recurrent_dropout=0.3, dropout=0.2)),
               (ttrnn.TTGRU, dict(preset="paper", recurrent_dropout=0.3)),
               (ttrnn.TTLSTM, dict(recurrent_dropout=0.3, go_backwards=True)),
               (ttrnn.TTSimpleRNN, dict(activation="relu", return_sequences=True))]


@pytest.mark.parametrize("cls, kw", FUSED_CASES, ids=[f"{c.__name__}-{'-'.join(k) or 'default'}"
                                                      for c, k in FUSED_CASES])
def test_fused_recurrence_matches_keras_loop_values_and_gradients(cls, kw):
    """recurrence="fused" (XLA loops, hand-scheduled backward) against Keras's loop under TF autodiff: outputs and
    gradients w.r.t. inputs, every weight and the initial state, on masked input whose length (21) is not a
    multiple of the fused loop's padding; dropout masks come from the same seed in both."""
    import tensorflow as tf

    steps = 21
    rng = np.random.default_rng(5)
    x = tf.constant(rng.standard_normal((B, steps, 12)).astype("float32"))
    mask = np.ones((B, steps), bool)
    mask[0, 15:] = False
    mask[1, :3] = False
    mask[2, 5:9] = False
    results = []
    for recurrence in ("keras", "fused"):
        layer = cls(N, M, R, recurrence=recurrence, seed=3, bias_initializer="random_normal", **kw)
        layer.build((B, steps, 12))
        if recurrence == "keras":
            weights = layer.get_weights()
        layer.set_weights(weights)
        if not results:                                  # the same initial state for both loops
            h0 = tf.constant(rng.standard_normal((B, layer.units)).astype("float32"))
        training = bool(kw.get("dropout") or kw.get("recurrent_dropout"))

        @tf.function
        def run(x):
            with tf.GradientTape() as tape:
                tape.watch([x, h0])
                out = layer(x, mask=tf.constant(mask), training=training, initial_state=[h0] * layer.N_STATES)
                out = out if isinstance(out, list) else [out]
                loss = sum(tf.reduce_sum(tf.sin(o * (i + 1))) for i, o in enumerate(out))
            return out, tape.gradient(loss, [x, h0] + layer.trainable_weights)

        results.append(run(x))
    (ref_out, ref_grads), (out, grads) = results
    for a, b in zip(ref_out + ref_grads, out + grads):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(a).max())


def test_fused_recurrence_under_mixed_bfloat16_policy():
    """Under Keras's mixed_bfloat16 policy both recurrences run forward and backward, agree to bf16 precision,
    and give float32 gradients for the float32 variables."""
    import tensorflow as tf

    x = np.random.default_rng(2).integers(1, 256, size=(B, T, 12), dtype=np.uint8)
    results = []
    for recurrence in ("keras", "fused"):
        layer = ttrnn.TTGRU(N, M, R, recurrence=recurrence, dtype="mixed_bfloat16", input_scale=1 / 255)
        layer.build((B, T, 12))
        if recurrence == "keras":
            weights = layer.get_weights()
        layer.set_weights(weights)
        with tf.GradientTape() as tape:
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, "float32") ** 2)
        grads = tape.gradient(loss, layer.trainable_weights)
        assert y.dtype == tf.bfloat16 and all(g.dtype == tf.float32 for g in grads)
        results.append(np.asarray(tf.cast(y, "float32")))
    assert np.abs(results[0] - results[1]).max() <= 3e-2 * max(1.0, np.abs(results[0]).max())


@pytest.mark.parametrize("cls", [ttrnn.TTGRU, ttrnn.TTLSTM])
def test_bfloat16_projection_is_close_and_serializes(cls, tmp_path):
    """projection_dtype="bfloat16" changes only the rounding of the first TT contraction (uint8 frames)."""
    x = np.random.default_rng(1).integers(1, 256, size=(B, T, 12), dtype=np.uint8)
    outs = []
    for dtype in (None, "bfloat16"):
        inp = keras.Input((T, 12), dtype="uint8")
        layer = cls(N, M, R, input_scale=1 / 255, input_shift=-0.5, projection_dtype=dtype, name="tt")
        model = keras.Model(inp, layer(inp))
        if dtype is None:
            weights = model.get_weights()
        else:
            model.set_weights(weights)
        outs.append(model.predict(x, verbose=0))
    err = np.abs(outs[1] - outs[0]).max() / np.abs(outs[0]).max()
    # bfloat16's unit roundoff is 2^-8 = 0.0039; after 7 steps of the recurrence the error grows to a few
    # hundredths for some seeds (most on CPUs with native bfloat16 matmuls, whose rounding differs from an
    # emulated cast's); 6e-2 is ~15 roundoffs, and a no-op cast (0) still fails
    assert 0 < err <= 6e-2
    assert model.get_layer("tt").get_config()["projection_dtype"] == "bfloat16"
    model.save(tmp_path / "m.keras")
    again = ttrnn.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), outs[1])
    with pytest.raises(ValueError, match="projection_dtype"):
        cls(N, M, R, projection_dtype="float16")


@pytest.mark.parametrize("kwargs, match", [
    (dict(tt_input_shape=(4, 3), tt_output_shape=(2, 3), tt_ranks=(1, 3, 3, 1)), "length"),
    (dict(tt_input_shape=(4, 3), tt_output_shape=(2, 3), tt_ranks=(1, 3, 2)), "first and last rank"),
    (dict(tt_input_shape=(4, -3), tt_output_shape=(2, 3), tt_ranks=R), "non-positive"),
    (dict(tt_input_shape=(4, 3), tt_output_shape=(2, 3, 1), tt_ranks=R), "same number of modes"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ttrnn.TTGRU(**kwargs)


def test_input_dim_mismatch_at_build():
    with pytest.raises(ValueError, match="product 12 but the input dimension is 10"):
        ttrnn.TTLSTM(N, M, R)(np.zeros((2, 3, 10), "float32"))


@pytest.mark.parametrize("cls, kw", [(ttrnn.TTGRU, dict(preset="paper", recurrent_dropout=0.2)),
                                     (ttrnn.TTLSTM, dict(return_sequences=True, time_chunk=2)),
                                     (ttrnn.TTSimpleRNN, dict(go_backwards=True, activation="relu"))])
def test_save_load_round_trip(tmp_path, cls, kw):
    inp = keras.Input((T, 12), dtype="uint8")
    out = cls(N, M, R, **kw)(keras.layers.Masking(0)(inp))
    model = keras.Model(inp, out)
    x = (masked_batch(5) * 40).clip(0, 255).astype("uint8")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    original, restored = model.layers[-1].get_config(), loaded.layers[-1].get_config()
    assert original == restored


def test_trains_under_xla():
    inp = keras.Input((T, 12), dtype="uint8")
    layer = ttrnn.TTGRU(N, M, R, input_scale=1 / 255)     # scaled pixels: no saturated gates, no zero gradient
    assert not layer.supports_jit          # "auto" picks the faster non-XLA path; XLA must still work
    layer.supports_jit = True
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(layer(inp)))
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=True)
    x = np.random.default_rng(6).integers(0, 256, (4, T, 12), dtype=np.uint8)
    before = [np.asarray(w).copy() for w in model.layers[1].tt_cores]
    loss = model.train_on_batch(x, np.array([0, 1, 0, 1]))
    assert np.isfinite(loss)
    assert any(not np.allclose(a, np.asarray(b)) for a, b in zip(before, model.layers[1].tt_cores))
