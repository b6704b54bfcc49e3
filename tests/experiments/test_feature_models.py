"""RNNs over CNN features: the input modes of a feature width (`ttrnn.models.factor_modes`, the per-width table),
`feature_classifier` in every format and cell (padded steps masked; the plain LSTM against Keras's own LSTM; its
`input_scale` against scaled features), and
the tables' parameter counts of the feature models (param_counts.json) against the built models."""
import math

import keras
import numpy as np
import pytest

from experiments import param_counts
from ttrnn.formats import FORMAT_NAMES
from ttrnn.models import (
    FEATURE_INPUT_MODES,
    check_feature_modes,
    factor_modes,
    feature_classifier,
    feature_input_modes,
    input_to_hidden_params,
)


@pytest.mark.parametrize("width", [2048, 1536, 1280, 1024, 576, 512, 960, 2039, 6, 1])
def test_factor_modes_multiply_to_the_width(width):
    modes = factor_modes(width, 4)
    assert len(modes) == 4 and math.prod(modes) == width and list(modes) == sorted(modes)
    check_feature_modes(width, modes)


def test_the_width_table_is_the_rule_and_balanced():
    assert feature_input_modes(2048) == (4, 8, 8, 8)
    for width, modes in FEATURE_INPUT_MODES.items():
        assert modes == factor_modes(width, 4)
        assert max(modes) / min(modes) <= 3      # balanced: no mode far larger than another
    assert factor_modes(2039) == (1, 1, 1, 2039)          # a prime: one mode holds it
    assert factor_modes(2048, 3) == (8, 16, 16)
    with pytest.raises(ValueError, match="multiply to 256, not the feature width 512"):
        check_feature_modes(512, (4, 4, 4, 4))


def features(batch, steps, width, seed=0):
    """float16 features as a backbone's average pool gives them: non-negative, none all zero."""
    rng = np.random.default_rng(seed)
    return (np.abs(rng.standard_normal((batch, steps, width))) + 0.01).astype(np.float16)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("fmt", list(FORMAT_NAMES) + [None])
def test_padded_steps_are_masked(fmt, cell):
    """Zero pre-padding (the data feed's) changes nothing: the same probabilities with and without it."""
    keras.utils.set_random_seed(0)
    model = feature_classifier(5, 64, cell=cell, use_tt=fmt is not None, decomposition=fmt or "tt",
                               output_modes=(2, 2, 2, 2))
    x = features(2, 5, 64)
    padded = np.concatenate([np.zeros((2, 3, 64), np.float16), x], axis=1)
    p, q = (keras.ops.convert_to_numpy(model(a, training=False)) for a in (x, padded))
    np.testing.assert_allclose(p, q, atol=1e-6)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert model.inputs[0].dtype == "float16" and model.output.shape == (None, 5)


def test_plain_lstm_equals_keras_lstm_on_the_float32_features():
    keras.utils.set_random_seed(1)
    model = feature_classifier(4, 32, cell="lstm", use_tt=False, units=8)
    ref = keras.Sequential([keras.Input((None, 32)), keras.layers.LSTM(8), keras.layers.Dense(4, "softmax")])
    ref.layers[0].set_weights(model.get_layer("input_to_hidden").get_weights())
    ref.layers[1].set_weights(model.get_layer("classifier").get_weights())
    x = features(3, 6, 32, seed=2)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(ref(x.astype("f4"))),
                               atol=1e-6)


@pytest.mark.parametrize("fmt", ["tt", "tr", None])
def test_input_scale_is_the_features_times_a_constant(fmt):
    """`input_scale=s` on features x gives what the same weights give on s * x (fed as float32), padding masked;
    no weight is added."""
    kwargs = dict(cell="lstm", use_tt=fmt is not None, decomposition=fmt or "tt", output_modes=(2, 2, 2, 2),
                  units=16, dropout=0.0, recurrent_dropout=0.0)
    keras.utils.set_random_seed(3)
    scaled = feature_classifier(4, 64, input_scale=250.0, **kwargs)
    plain = feature_classifier(4, 64, dtype="float32", **kwargs)
    assert len(scaled.weights) == len(plain.weights)
    plain.set_weights(scaled.get_weights())
    x = features(2, 5, 64, seed=4) * np.float16(0.004)          # a random InceptionV3's scale
    padded = np.concatenate([np.zeros((2, 2, 64), np.float16), x], axis=1)
    expect = keras.ops.convert_to_numpy(plain(x.astype("f4") * 250.0))
    for a in (x, padded):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(scaled(a)), expect, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="input_scale must be > 0"):
        feature_classifier(4, 64, input_scale=0.0)


def test_float32_stores_and_bad_modes():
    model = feature_classifier(3, 48, cell="gru", input_modes=(2, 2, 3, 4), dtype="float32")
    assert model.inputs[0].dtype == "float32"
    with pytest.raises(ValueError, match="multiply to 64, not the feature width 48"):
        feature_classifier(3, 48, input_modes=(2, 2, 4, 4))


@pytest.mark.parametrize("label", ["tt_lstm", "tr_lstm", "lstm"])    # the CNN-feature table's labels
def test_tables_feature_counts_equal_the_built_models(label):
    fmt, _, cell = label.rpartition("_")
    model = feature_classifier(11, 2048, cell=cell, use_tt=bool(fmt), decomposition=fmt or "tt")
    assert param_counts.read_cached_features()[label] == param_counts.feature_counts()[label] == \
        input_to_hidden_params(model)


@pytest.mark.parametrize("kwargs, name", [(dict(recurrent_decomposition="tt"), "tt_lstm_fd"),
                                          (dict(integrated=True), "tt_lstm_integrated"),
                                          (dict(decomposition="ht", integrated=True), "ht_lstm_integrated")])
def test_feature_classifier_fully_decomposed_and_integrated(kwargs, name):
    """Over features the recurrent kernel factorizes too, or one matrix holds [features, state]: the layer equals
    Keras's LSTM on its dense kernels (so the rows it reads are the right ones) and the model counts its parts."""
    import keras

    from ttrnn.models import feature_classifier, integrated_input_modes
    model = feature_classifier(3, 96, output_modes=(2, 2, 2), input_scale=0.5, dropout=0.0, recurrent_dropout=0.0,
                               dtype="float32", **kwargs)
    assert model.name == name
    layer = model.get_layer("input_to_hidden")
    if kwargs.get("integrated"):
        assert tuple(layer.kernel_format.n) == integrated_input_modes(96 + 8, 3) and layer.recurrent_param_count == 0
    else:
        assert layer.recurrent_param_count == layer.recurrent_kernel_format.param_count() < 8 * 32
    x = np.random.default_rng(0).standard_normal((2, 5, 96)).astype("float32")
    ref = keras.layers.LSTM(8)
    ref.build((None, 5, 96))
    ref.set_weights([np.asarray(layer.full_kernel()), np.asarray(layer.recurrent_kernel), np.asarray(layer.bias)])
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(ref(x * 0.5)), atol=1e-5)   # its input_scale
