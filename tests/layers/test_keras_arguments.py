"""Keras's RNN arguments `stateful` (with `reset_state`), `zero_output_for_mask`, `unroll` and `implementation` on
every format and cell, against Keras's own GRU / LSTM / SimpleRNN given the layer's dense weights (`full_kernel()`)."""

import keras
import numpy as np
import pytest

from ttrnn.formats import FORMAT_NAMES
from ttrnn.layers import layer_class
from ttrnn.layers.cells import CELLS

N, M = (4, 3), (2, 3)                      # input 12, units 6
B, T = 3, 5
TOL = 1e-5
# Every format x cell; the normal pass takes TT's three cells and one cell of each other format (each cell twice),
# the slow pass the rest (each case is a few eager calls, each compiling the fused loop: ~1-3 s on 2 cores).
NORMAL = {("tt", "SimpleRNN"), ("tt", "GRU"), ("tt", "LSTM"), ("tr", "GRU"), ("bt", "LSTM"), ("cp", "SimpleRNN"),
          ("ht", "GRU")}
LAYERS = [pytest.param(fmt, cell.NAME, id=f"{fmt}-{cell.NAME}",
                       marks=() if (fmt, cell.NAME) in NORMAL else pytest.mark.slow)
          for fmt in FORMAT_NAMES for cell in CELLS]


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


def make(fmt, cell, **kw):
    """A layer of `fmt` and `cell` with a random bias; GRU `reset_after=False` (the dense kernel's layout is the
    same either way; the "paper" choice checks the other bias layout than the Keras default)."""
    ranks = [1, 2, 1] if fmt == "tt" else 2
    if cell == "GRU":
        kw.setdefault("reset_after", False)
    return layer_class(fmt, cell)(N, M, ranks, bias_initializer="random_normal", seed=1, **kw)


def keras_twin(layer, cell, batch=None, **kw):
    """Keras's layer with `layer`'s dense weights and the same arguments `kw`."""
    if cell == "GRU":
        ref = keras.layers.GRU(layer.units, reset_after=layer.reset_after, **kw)
    elif cell == "LSTM":
        ref = keras.layers.LSTM(layer.units, **kw)
    else:
        ref = keras.layers.SimpleRNN(layer.units, **kw)
    ref.build((batch, T, 12))
    ref.set_weights([np.asarray(layer.full_kernel()), np.asarray(layer.recurrent_kernel), np.asarray(layer.bias)])
    return ref


def batch(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, 12)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[0, 3:] = False                    # padded tail: the last step masked
    mask[1, 1:3] = False                   # masked steps in the middle
    return x, mask


def close(ours, ref):
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= TOL * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("fmt, cell", LAYERS)
def test_stateful_carries_states_across_calls_and_reset_state_zeroes_them(fmt, cell):
    layer = make(fmt, cell, stateful=True, return_state=True)
    layer.build((B, T, 12))
    ref = keras_twin(layer, cell, batch=B, stateful=True, return_state=True)
    x1, _ = batch(1)
    x2, _ = batch(2)
    for x in (x1, x2):                                       # two calls: the second starts from the first's states
        for a, b in zip(layer(x), ref(x)):
            close(a, b)
    for a, b in zip(layer.states, ref.states):               # the variables hold the last states
        close(a, b)
    layer.reset_state()
    ref.reset_state()
    assert all(not np.asarray(v).any() for v in layer.states)
    for a, b in zip(layer(x2), ref(x2)):                     # after the reset: as from zeros
        close(a, b)
    layer.reset_states()                                     # Keras's other name
    fresh = make(fmt, cell, return_state=True)
    fresh.build((B, T, 12))
    fresh.set_weights(layer.get_weights())
    for a, b in zip(layer(x1), fresh(x1)):
        close(a, b)


@pytest.mark.parametrize("cell", [c.NAME for c in CELLS])
def test_stateful_in_a_model_with_masking_and_predict(cell):
    """A stateful layer in a model with a fixed batch size, masked inputs, run by `predict` (a traced function):
    states carried from one `predict` to the next, as Keras's layer."""
    layer = make("tt", cell, stateful=True)
    inp = keras.Input((T, 12), batch_size=B)
    model = keras.Model(inp, layer(keras.layers.Masking(0.0)(inp)))
    ref_inp = keras.Input((T, 12), batch_size=B)
    ref = keras.Model(ref_inp, keras_twin(layer, cell, batch=B, stateful=True)(keras.layers.Masking(0.0)(ref_inp)))
    x, mask = batch(3)
    x[~mask] = 0.0
    for _ in range(2):
        close(model.predict(x, batch_size=B, verbose=0), ref.predict(x, batch_size=B, verbose=0))
    layer.reset_state()
    ref.layers[-1].reset_state()
    close(model.predict(x, batch_size=B, verbose=0), ref.predict(x, batch_size=B, verbose=0))


def test_stateful_batch_size_rules():
    """As keras.layers.RNN: a stateful layer needs a static batch size when built, and a call with another static
    batch size is refused; a traced call with an unknown batch size runs (the variables' size decides)."""
    with pytest.raises(ValueError, match="batch size must be static"):
        make("tt", "GRU", stateful=True)(keras.Input((T, 12)))
    layer = make("tt", "GRU", stateful=True)
    x, _ = batch()
    layer(x)
    with pytest.raises(ValueError, match="batch size of the input sequences must be the same"):
        layer(x[:2])
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        traced = tf.function(lambda v: layer(v), input_signature=[tf.TensorSpec((None, T, 12), tf.float32)])
        assert tuple(traced(x).shape) == (B, layer.units)


def test_stateful_states_are_not_weights():
    """As Keras: the state variables are not among the layer's variables (not saved, not counted)."""
    stateful, plain = make("tt", "LSTM", stateful=True), make("tt", "LSTM")
    for layer in (stateful, plain):
        layer.build((B, T, 12))
    assert len(stateful.variables) == len(plain.variables)
    assert len(stateful.states) == 2
    assert plain.states is None
    plain.reset_state()                                      # nothing to reset: no error, as Keras


@pytest.mark.parametrize("use_tt", [True, False], ids=["tt", "keras"])
def test_stateful_copy_of_a_paper_model_equals_the_whole_clip(use_tt):
    """`ttrnn.models.stateful_copy`: a clip fed in chunks to the stateful copy ends where the model does on the
    whole clip; `reset_states` starts the next clip from zeros."""
    from ttrnn.models import reset_states, rnn_classifier, stateful_copy

    model = rnn_classifier(3, (4, 6, 3), cell="gru", use_tt=use_tt, tt_input_shape=(4, 6, 3),
                           tt_output_shape=(2, 2, 2), tt_ranks=(1, 2, 2, 1), dropout=0.0, recurrent_dropout=0.0)
    rng = np.random.default_rng(0)
    clip = rng.integers(1, 255, (1, 10, 4, 6, 3), dtype="uint8")
    whole = model.predict(clip, verbose=0)
    streaming = stateful_copy(model, batch_size=1)
    # On JAX Keras's jitted predict does not carry untracked state variables (Keras's own stateful layers neither):
    # the model is called there
    run = streaming.predict_on_batch if keras.backend.backend() == "tensorflow" else streaming
    for _ in range(2):                                      # a second clip after reset_states: the same again
        for t0 in range(0, 10, 4):
            out = run(clip[:, t0:t0 + 4])
        close(out, whole)
        reset_states(streaming)
    with pytest.raises(ValueError, match="no recurrent layer"):
        from ttrnn.models import tt_mlp_classifier
        stateful_copy(tt_mlp_classifier(3, (4, 6, 3), (24, 6, 3), hidden_shape=(2, 2, 2), tt_ranks=(1, 2, 2, 1)))


# zero_output_for_mask and unroll together with the arguments they interact with (sequences, direction, states)
ARGUMENT_CASES = [
    dict(zero_output_for_mask=True, return_state=True),                 # the last step masked: a zero output
    dict(zero_output_for_mask=True, return_sequences=True, go_backwards=True),
    dict(unroll=True, zero_output_for_mask=True, return_sequences=True, return_state=True),
]


@pytest.mark.parametrize("kw", ARGUMENT_CASES, ids=lambda kw: "-".join(kw))
@pytest.mark.parametrize("fmt, cell", LAYERS)
def test_arguments_match_keras_on_masked_input(fmt, cell, kw):
    layer = make(fmt, cell, **kw)
    x, mask = batch()
    ours = layer(x, mask=mask)
    # Keras's twin runs its loop, unrolled or not (the same numbers; on JAX its unrolled loop drops
    # zero_output_for_mask, which its loop applies)
    ref = keras_twin(layer, cell, **{k: v for k, v in kw.items() if k != "unroll"})(x, mask=mask)
    ours, ref = (ours, ref) if isinstance(ref, (list, tuple)) else ([ours], [ref])
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        close(a, b)
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


@pytest.mark.parametrize("time_chunk", [0, 2])
def test_unroll_equals_the_loop_and_needs_a_static_length(time_chunk):
    """`unroll=True` changes nothing but speed (with or without time chunks); as Keras, it refuses sequences of
    unknown length."""
    x, mask = batch()
    loop = make("tt", "LSTM", return_sequences=True, time_chunk=time_chunk)
    unrolled = make("tt", "LSTM", return_sequences=True, time_chunk=time_chunk, unroll=True)
    loop.build(x.shape)
    unrolled.build(x.shape)
    unrolled.set_weights(loop.get_weights())
    close(unrolled(x, mask=mask), loop(x, mask=mask))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        layer = make("tt", "GRU", unroll=True)
        traced = tf.function(lambda v: layer(v), input_signature=[tf.TensorSpec((B, None, 12), tf.float32)])
        with pytest.raises(ValueError, match="Cannot unroll"):
            traced(x)


@pytest.mark.parametrize("cell", ["GRU", "LSTM", "SimpleRNN"])
def test_implementation_is_accepted_and_changes_nothing(cell):
    """Keras's `implementation` (1: one matmul per gate, 2: one for all): here the kernel projects every gate at
    once whatever it says; 0 is a value old Keras configs hold. Other values are refused."""
    x, mask = batch()
    outputs = []
    for implementation in (0, 1, 2):
        layer = make("cp", cell, implementation=implementation)
        assert layer.get_config()["implementation"] == implementation
        outputs.append(np.asarray(layer(x, mask=mask)))
        keras.utils.set_random_seed(1234)
    close(outputs[0], outputs[1])
    close(outputs[0], outputs[2])
    with pytest.raises(ValueError, match="implementation"):
        make("tt", cell, implementation=3)


@pytest.mark.parametrize("fmt, cell", LAYERS)
def test_one_seed_generator_as_keras(fmt, cell):
    """Dropout and recurrent dropout draw from one seed generator per layer, as Keras's cells: the same
    non-trainable variables as Keras's layer, with and without dropout."""
    for kw in ({}, dict(dropout=0.5, recurrent_dropout=0.5)):
        layer = make(fmt, cell, **kw)
        x, _ = batch()
        layer(x, training=True)
        ref = keras_twin(layer, cell, **kw)
        ref(x, training=True)
        assert [v.shape for v in layer.non_trainable_variables] == [v.shape for v in ref.non_trainable_variables]
        assert len(layer.non_trainable_variables) == 1


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="a TensorFlow trace of unknown length")
@pytest.mark.parametrize("kw", [dict(recurrence="keras"), dict(time_chunk=2)], ids=["keras-loop", "time-chunk"])
def test_keras_loop_traced_for_any_length(kw):
    """Keras's loop in a trace of unknown batch size and length (what `predict` makes after a few lengths) runs and
    equals the eager call, masked steps included."""
    import tensorflow as tf

    layer = make("tt", "LSTM", return_sequences=True, **kw)
    x, mask = batch()
    expected = layer(x, mask=mask)
    traced = tf.function(lambda v, m: layer(v, mask=m), input_signature=[
        tf.TensorSpec((None, None, 12), tf.float32), tf.TensorSpec((None, None), tf.bool)])
    close(traced(x, mask), expected)
