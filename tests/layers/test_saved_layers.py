"""The public layers as a user and a saved file see them: a model holding every layer, saved by ttrnn 0.1.0, loads
and predicts the same; every class round-trips `get_config` / `from_config` under its registered name; every class
is written out in the source with a docstring that documents each constructor argument and runs its example."""

import doctest
import inspect
import itertools
import re
from pathlib import Path

import keras
import numpy as np
import pytest

import ttrnn
from ttrnn.formats import FORMAT_NAMES
from ttrnn.layers import DENSE_LAYERS, KINDS, RECURRENT_LAYERS, layer_class
from ttrnn.layers.dense import FormatDense
from ttrnn.layers.recurrent import FormatRNN

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LAYERS = DENSE_LAYERS + RECURRENT_LAYERS
N, M = (4, 3), (2, 3)                      # inputs of 12 values, 6 units


def small_layer(cls, **kwargs):
    ranks = [1, 2, 1] if cls.FORMAT == "tt" else 2
    return cls(N, M, ranks, **kwargs)


def test_model_saved_by_0_1_0_loads_and_predicts_the_same():
    model = ttrnn.load_model(FIXTURES / "layers_0_1_0.keras")
    x, y = np.load(FIXTURES / "layers_0_1_0_x.npy"), np.load(FIXTURES / "layers_0_1_0_y.npy")
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=0, atol=1e-6)
    assert {type(layer) for layer in model.layers} >= set(LAYERS)          # the file holds every public layer


def test_the_layer_table_is_every_format_times_every_kind():
    assert len(LAYERS) == len(FORMAT_NAMES) * len(KINDS) == len(set(LAYERS))
    for fmt, kind in itertools.product(FORMAT_NAMES, KINDS):
        cls = layer_class(fmt, kind)
        assert cls.__name__ == f"{fmt.upper()}{kind}" and cls.FORMAT == fmt
        assert getattr(ttrnn, cls.__name__) is cls                          # the lazy top-level name
    with pytest.raises(ValueError, match="unknown kernel format 'xx'"):
        layer_class("xx", "GRU")
    with pytest.raises(ValueError, match="unknown layer kind 'RNN'"):
        layer_class("tt", "RNN")


RECURRENT_OPTIONS = dict(preset="paper", activation="relu", dropout=0.1, recurrent_dropout=0.2,
                         return_sequences=True, return_state=True, go_backwards=True, time_chunk=2, recurrence="keras",
                         projection_dtype="bfloat16", projection_block=0, input_scale=0.5, input_shift=-1.0, seed=3,
                         kernel_regularizer="l2", recurrent_constraint="non_neg", name="layer")
DENSE_OPTIONS = dict(activation="tanh", use_bias=False, kernel_regularizer="l1", bias_initializer="ones", name="layer")


@pytest.mark.parametrize("cls", LAYERS, ids=lambda cls: cls.__name__)
def test_config_round_trips_under_the_registered_name(cls):
    options = RECURRENT_OPTIONS if cls in RECURRENT_LAYERS else DENSE_OPTIONS
    layer = small_layer(cls, **options)
    config = layer.get_config()
    clone = cls.from_config(config)
    assert type(clone) is cls and clone.get_config() == config
    assert keras.saving.get_registered_name(cls) == f"ttrnn>{cls.__name__}"
    assert keras.saving.get_registered_object(f"ttrnn>{cls.__name__}") is cls
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is cls and restored.get_config() == config
    if cls in RECURRENT_LAYERS:
        assert clone.preset == "paper" and clone.time_chunk == 2 and clone.projection_block == 0


def constructor_arguments(cls):
    """Every argument a user can pass: the format's (the first base's `__init__`), the loop's and the cell's."""
    base = FormatRNN if cls in RECURRENT_LAYERS else FormatDense
    names = list(inspect.signature(cls.__init__).parameters) + list(inspect.signature(base.__init__).parameters)
    names += list(cls.CELL.OPTIONS) if cls in RECURRENT_LAYERS else []
    skip = {"self", "input_modes", "output_modes", "ranks", "blocks"} if cls.FORMAT == "tt" else {"self"}
    return [name if name != "kwargs" else "**kwargs" for name in dict.fromkeys(names) if name not in skip]


@pytest.mark.parametrize("cls", LAYERS, ids=lambda cls: cls.__name__)
def test_written_out_with_every_argument_documented(cls):
    source = inspect.getsource(cls)
    assert source.startswith(f'@keras.saving.register_keras_serializable(package="ttrnn")\nclass {cls.__name__}(')
    doc = cls.__doc__
    args = doc[doc.index("\n    Args:\n"):doc.index("\n    Call arguments:\n")]
    documented = {name for line in re.findall(r"^ {8}(\S[^:]*):", args, re.M) for name in line.split(", ")}
    assert set(constructor_arguments(cls)) == documented
    for section in ("Returns:", "Attributes:", "References:", "Example"):
        assert f"\n    {section}" in doc, section


@pytest.mark.parametrize("cls", LAYERS, ids=lambda cls: cls.__name__)
def test_docstring_example_runs(cls):
    finder, runner = doctest.DocTestFinder(recurse=False), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(cls, cls.__name__, globs={}):
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0 and attempted >= 5
