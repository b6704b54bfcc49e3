"""`ttrnn.tensorize` with `recurrent_format`: the recurrent kernel of a Keras GRU / LSTM / SimpleRNN decomposed
too; at full ranks the fully decomposed layer computes what the Keras layer did (and its recurrent factors
rebuild the Keras recurrent kernel); at low ranks it has fewer parameters; bad arguments are one line."""

import keras
import numpy as np
import pytest

import ttrnn
from ttrnn.decompose.tensorize import TensorizeError

N, M, T = (4, 3), (2, 3), 5


def keras_layer(kind):
    layer = {"GRU": lambda: keras.layers.GRU(6, return_sequences=True),
             "LSTM": lambda: keras.layers.LSTM(6, return_sequences=True),
             "SimpleRNN": lambda: keras.layers.SimpleRNN(6, return_sequences=True)}[kind]()
    layer.build((None, T, 12))
    rng = np.random.default_rng(1)
    layer.set_weights([0.4 * rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()])
    return layer


@pytest.mark.parametrize("kind, fmt, rec", [("GRU", "tt", "tt"), ("LSTM", "ht", "tr"), ("SimpleRNN", "cp", "bt")])
def test_full_ranks_equal_the_keras_layer(kind, fmt, rec):
    old = keras_layer(kind)
    new = ttrnn.tensorize(old, fmt, N, M, ranks="full", recurrent_format=rec, recurrent_ranks="full",
                          recurrent_input_modes=[3, 2])
    assert new.recurrent_format == rec and new.recurrent_input_modes == [3, 2]
    np.testing.assert_allclose(np.asarray(new.recurrent_kernel), old.get_weights()[1], rtol=1e-4, atol=1e-5)
    x = np.random.default_rng(2).standard_normal((2, T, 12)).astype("float32")
    np.testing.assert_allclose(np.asarray(new(x)), np.asarray(old(x)), rtol=1e-4, atol=1e-5)


def test_low_ranks_have_fewer_parameters_and_the_model_copy_keeps_the_rest():
    inputs = keras.Input((T, 12))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras_layer("LSTM")(inputs)))
    copy, layer = ttrnn.tensorize_model(model, "tt", N, M, ranks=2, recurrent_format="tt", recurrent_ranks=2)
    assert layer.recurrent_param_count < 6 * 24 and copy.count_params() < model.count_params()
    np.testing.assert_array_equal(copy.layers[-1].get_weights()[0], model.layers[-1].get_weights()[0])


@pytest.mark.parametrize("kwargs, message", [
    (dict(recurrent_ranks=2), "need recurrent_format"),
    (dict(recurrent_format="xx"), "unknown recurrent_format"),
    (dict(recurrent_format="tt", recurrent_output_modes=[2, 2]), "have product 4, the layer has 6 units"),
])
def test_bad_recurrent_arguments(kwargs, message):
    with pytest.raises(TensorizeError, match=message) as info:
        ttrnn.tensorize(keras_layer("GRU"), "tt", N, M, **kwargs)
    assert "\n" not in str(info.value)
