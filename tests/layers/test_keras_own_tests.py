"""Keras's own GRU / LSTM / SimpleRNN tests, the ones shipped in the installed Keras
(`keras/src/layers/rnn/{gru,lstm,simple_rnn}_test.py`), run on the TT layers with one core.

With one core (`tt_input_shape=[D]`, `tt_output_shape=[units]`, `tt_ranks=[1, 1]`) the TT kernel is a dense
`(D, gates * units)` matrix, so a TT layer built with Keras's arguments must compute Keras's numbers: every test
method of Keras's classes runs here unchanged, with `layers.GRU` / `LSTM` / `SimpleRNN` in its module swapped for
the TT layer of one core (`one_core`). A TT layer needs its input size when it is made, which Keras's tests give
only to the call: `INPUT_SIZE` is the size each test method feeds (read from Keras's test source; a method it
does not list fails, so a new Keras test is not silently skipped).

Skipped: the methods Keras itself skips on this backend (e.g. the torch cuDNN check), by Keras's own marks.
`test_basics` (Keras's `run_layer_test`) is in the slow pass.
"""

import importlib
import types

import keras
import pytest

import ttrnn

KERAS_TESTS = {name: importlib.import_module(f"keras.src.layers.rnn.{name}_test")
               for name in ("gru", "lstm", "simple_rnn")}
# The input size D of each Keras test method's sequences (`input_shape=(3, 2, 4)`, `np.arange(24).reshape((2, 4, 3))`,
# ...), by method name (the prefix before absl's parameter index).
INPUT_SIZE = {"test_basics": 4, "test_correctness": 4, "test_statefulness": 4, "test_pass_initial_state": 3,
              "test_pass_return_state": 3, "test_masking": 3, "test_legacy_implementation_argument": 4,
              "test_stateful_with_symbolic_batch_size": 10, "test_torch_cudnn_dispatch_fires": 5}


def one_core(cls, dim):
    """`cls` (e.g. `ttrnn.TTGRU`) as Keras's layer: `cls(units, **kwargs)` with one TT core `(1, dim, units, 1)`;
    `get_config` in Keras's terms (`units`), so that Keras's serialization checks rebuild it."""

    class OneCore(cls):
        def __init__(self, units, **kwargs):
            for name in ("tt_input_shape", "tt_output_shape", "tt_ranks"):
                kwargs.pop(name, None)
            super().__init__(tt_input_shape=[dim], tt_output_shape=[units], tt_ranks=[1, 1], **kwargs)

        def get_config(self):
            config = super().get_config()
            for name in ("tt_input_shape", "tt_output_shape", "tt_ranks"):
                config.pop(name)
            return {**config, "units": self.units}

    OneCore.__name__ = OneCore.__qualname__ = f"OneCore{cls.__name__}"
    return keras.saving.register_keras_serializable(package=f"one_core_{dim}")(OneCore)


def _with_tt_layers(keras_class, module, tt_class, keras_name):
    """A subclass of Keras's test class whose methods see `layers.<keras_name>` as `tt_class` with one core."""

    class TTVersion(keras_class):
        def setUp(self):
            super().setUp()
            method = self._testMethodName
            base = next((name for name in INPUT_SIZE if method == name or method.startswith(name)), None)
            assert base is not None, f"Keras test {method} feeds an input size INPUT_SIZE does not list"
            shim = types.SimpleNamespace(**{n: getattr(module.layers, n) for n in dir(module.layers)
                                            if not n.startswith("_")})
            setattr(shim, keras_name, one_core(tt_class, INPUT_SIZE[base]))
            patcher = pytest.MonkeyPatch()
            patcher.setattr(module, "layers", shim)
            self.addCleanup(patcher.undo)

    def test_basics(self):
        keras_class.test_basics(self)

    # Keras's `run_layer_test` cases (build, call, serialization, a training step, mixed precision: ~20 s a class
    # on 2 cores) in the slow pass; its numeric cases in the normal one.
    TTVersion.test_basics = pytest.mark.slow(test_basics)
    TTVersion.__name__ = TTVersion.__qualname__ = f"Test{tt_class.__name__}OneCoreKeras{keras_class.__name__}"
    return TTVersion


TestTTGRUKerasTests = _with_tt_layers(KERAS_TESTS["gru"].GRUTest, KERAS_TESTS["gru"], ttrnn.TTGRU, "GRU")
TestTTLSTMKerasTests = _with_tt_layers(KERAS_TESTS["lstm"].LSTMTest, KERAS_TESTS["lstm"], ttrnn.TTLSTM, "LSTM")
TestTTSimpleRNNKerasTests = _with_tt_layers(KERAS_TESTS["simple_rnn"].SimpleRNNTest, KERAS_TESTS["simple_rnn"],
                                            ttrnn.TTSimpleRNN, "SimpleRNN")
