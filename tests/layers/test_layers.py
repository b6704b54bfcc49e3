"""TTDense against the dense reference x @ full(cores) + b; uint8 input; bad arguments; save/load."""

import keras
import numpy as np
import pytest
from tensorly.tt_matrix import tt_matrix_to_matrix

import ttrnn

N, M, R = (3, 4, 2), (2, 3, 2), (1, 3, 2, 1)


@pytest.fixture(autouse=True)
def _seed():
    """Every layer starts from the same weights on every run, so a tolerance is checked on the same numbers."""
    keras.utils.set_random_seed(1234)


def test_ttdense_matches_dense_reference():
    layer = ttrnn.TTDense(N, M, R, activation="tanh", bias_initializer="random_normal")
    x = np.random.default_rng(0).standard_normal((5, 2, 24)).astype("float32")
    y = np.asarray(layer(x))
    cores = [np.asarray(c, dtype="float64") for c in layer.tt_cores]
    ref = np.tanh(x @ tt_matrix_to_matrix(cores) + np.asarray(layer.bias))
    assert y.shape == (5, 2, 12)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer.full_kernel()), tt_matrix_to_matrix(cores), rtol=1e-5, atol=1e-6)


def test_ttdense_uint8_input_is_cast():
    layer = ttrnn.TTDense(N, M, R)
    x = np.random.default_rng(1).integers(0, 256, (4, 24), dtype=np.uint8)
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(layer(x.astype("float32"))), rtol=1e-6)


def test_ttdense_param_count_and_attributes():
    layer = ttrnn.TTDense((8, 20, 20, 18), (4, 4, 4, 4), (1, 4, 4, 4, 1))
    assert layer.tt_param_count == 2976
    layer.build((None, 57600))
    assert len(layer.tt_cores) == 4
    assert sum(int(np.prod(c.shape)) for c in layer.tt_cores) == 2976


@pytest.mark.parametrize("kwargs, match", [
    (dict(tt_input_shape=(3, 4), tt_output_shape=(2, 3, 2), tt_ranks=(1, 2, 1)), "same number of modes"),
    (dict(tt_input_shape=N, tt_output_shape=M, tt_ranks=(1, 2, 1)), "length"),
    (dict(tt_input_shape=N, tt_output_shape=M, tt_ranks=(2, 3, 2, 1)), "first and last rank"),
    (dict(tt_input_shape=N, tt_output_shape=(2, 0, 2), tt_ranks=R), "non-positive"),
])
def test_ttdense_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ttrnn.TTDense(**kwargs)


def test_ttdense_input_dim_mismatch_at_build():
    layer = ttrnn.TTDense(N, M, R)
    with pytest.raises(ValueError, match="product 24 but the input dimension is 25"):
        layer(np.zeros((2, 25), "float32"))


def test_ttdense_save_load_round_trip(tmp_path):
    inp = keras.Input((24,))
    model = keras.Model(inp, ttrnn.TTDense(N, M, R, activation="relu", kernel_regularizer="l2")(inp))
    x = np.random.default_rng(2).standard_normal((3, 24)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert loaded.layers[-1].get_config()["tt_ranks"] == list(R)


def test_every_public_layer_is_exported_by_ttrnn_itself():
    """`ttrnn/__init__.py` names its layers without importing Keras; the list must match `ttrnn.layers`."""
    import ttrnn.layers

    classes = [name for name in ttrnn.layers.__all__
               if isinstance(getattr(ttrnn.layers, name), type) and issubclass(getattr(ttrnn.layers, name),
                                                                               keras.layers.Layer)]
    assert sorted(classes) == sorted(name for name in ttrnn.__all__ if name not in
                                     ("load_model", "tensorize", "tensorize_model"))
    assert all(getattr(ttrnn, name) is getattr(ttrnn.layers, name) for name in classes)
