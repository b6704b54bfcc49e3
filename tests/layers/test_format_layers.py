"""TR / BT / CP / HT recurrent layers against Keras's own GRU / LSTM / SimpleRNN given their dense weights,
`.keras` round trips, `factors` / `kernel_param_count`, and the TT layers' saved files from before the formats."""

import math
from pathlib import Path

import keras
import numpy as np
import pytest

import ttrnn
from ttrnn import formats
from ttrnn.layers import layer_class
from ttrnn.layers.cells import CELLS

N, M = (4, 3), (2, 3)                      # input 12, units 6
B, T = 3, 6
DATA = Path(__file__).resolve().parents[1] / "fixtures"
OTHER_FORMATS = [fmt for fmt in formats.FORMAT_NAMES if fmt != "tt"]      # TT's own tests: test_recurrent.py
LAYERS = {(fmt, cell.NAME): layer_class(fmt, cell.NAME) for fmt in OTHER_FORMATS for cell in CELLS}


def masked_batch(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, 12)).astype("float32")
    x[0, 4:] = 0        # padded tail
    x[1, 1:3] = 0       # masked steps in the middle
    return x, np.any(x != 0, axis=-1)


def keras_reference(layer, cell):
    common = dict(return_sequences=layer.return_sequences, go_backwards=layer.go_backwards)
    if cell == "GRU":
        ref = keras.layers.GRU(layer.units, reset_after=False, **common)
    elif cell == "LSTM":
        ref = keras.layers.LSTM(layer.units, **common)
    else:
        ref = keras.layers.SimpleRNN(layer.units, **common)
    ref.build((None, T, 12))
    ref.set_weights([np.asarray(layer.full_kernel()), np.asarray(layer.recurrent_kernel), np.asarray(layer.bias)])
    return ref


CASES = [(f, c, True, True) for f, c in LAYERS] + [(f, "GRU", False, False) for f in OTHER_FORMATS]


@pytest.mark.parametrize("fmt, cell, seq, back", CASES, ids=[f"{f}-{c}-{'seq-back' if s else 'last'}"
                                                             for f, c, s, _ in CASES])
def test_matches_keras_layer_with_dense_weights(fmt, cell, seq, back):
    kw = dict(reset_after=False) if cell == "GRU" else {}
    layer = LAYERS[fmt, cell](N, M, 2, return_sequences=seq, go_backwards=back, bias_initializer="random_normal",
                              seed=1, **kw)
    x, mask = masked_batch()
    ours = np.asarray(layer(x, mask=mask))
    ref = np.asarray(keras_reference(layer, cell)(x, mask=mask))
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())
    clone = type(layer).from_config(layer.get_config())          # every constructor argument round-trips
    assert clone.get_config() == layer.get_config()


def test_uint8_frames_and_keras_recurrence_equal_float_and_fused():
    x = np.random.default_rng(2).integers(0, 256, (B, T, 12), dtype=np.uint8)
    fused = ttrnn.HTLSTM(N, M, 2, input_scale=1 / 255.0, input_shift=-0.5, return_sequences=True)
    loop = ttrnn.HTLSTM(N, M, 2, input_scale=1 / 255.0, input_shift=-0.5, return_sequences=True,
                        recurrence="keras", time_chunk=2)
    loop.build((None, T, 12))
    fused.build((None, T, 12))
    loop.set_weights(fused.get_weights())
    ref = np.asarray(fused(x.astype("float32")))      # the layer scales float frames the same way
    np.testing.assert_allclose(np.asarray(fused(x)), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(loop(x)), ref, rtol=1e-5, atol=1e-6)


def test_full_kernel_has_gate_blocks_of_the_folded_format():
    """BT-GRU's `factors` (gates folded into the first output mode) rebuild `full_kernel()` through TensorLy."""
    import tensorly as tl

    layer = ttrnn.BTGRU(N, M, [2, 3], blocks=2, seed=0)
    layer.build((None, T, 12))
    n, m = layer.kernel_format.n, layer.kernel_format.m
    assert m == (6, 3)
    total = sum(tl.tucker_to_tensor((np.asarray(c), [np.asarray(u) for u in us])) for c, us in layer.factors)
    dense = np.transpose(total.reshape(n[0], m[0], n[1], m[1]), (0, 2, 1, 3)).reshape(12, 18)
    np.testing.assert_allclose(np.asarray(layer.full_kernel()), dense, rtol=1e-5, atol=1e-7)


def test_keras_round_trip(tmp_path):
    inp = keras.Input((T, 12), dtype="uint8")
    # (TR and CP get_config / from_config round trips: test_matches_keras_layer_with_dense_weights)
    outs = [ttrnn.BTLSTM(N, M, 2, blocks=3, name="bt")(inp),
            ttrnn.HTGRU(N, M, [2, 2, 1], preset="paper", name="ht")(inp)]
    model = keras.Model(inp, keras.layers.Concatenate()(outs))
    x = np.random.default_rng(3).integers(0, 256, (2, T, 12), dtype=np.uint8)
    model.save(tmp_path / "m.keras")
    loaded = ttrnn.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-6)
    assert loaded.get_layer("bt").blocks == 3 and loaded.get_layer("ht").ranks == [2, 2, 1]
    assert loaded.get_layer("ht").reset_after is False


def test_tt_layers_saved_before_the_formats_refactor_still_load():
    model = ttrnn.load_model(DATA / "tt_layers_v1.keras")
    x, y = np.load(DATA / "tt_layers_v1_x.npy"), np.load(DATA / "tt_layers_v1_y.npy")
    np.testing.assert_allclose(np.asarray(model(x)), y, rtol=1e-6, atol=1e-7)
    gru = model.get_layer("gru")
    assert gru.factors == gru.tt_cores and gru.kernel_param_count == gru.tt_param_count


UCF11_N, UCF11_M = (8, 20, 20, 18), (4, 4, 4, 4)


@pytest.mark.parametrize("cls, ranks, blocks, expected", [
    (ttrnn.BTLSTM, 4, 2, 3392), (ttrnn.BTGRU, 4, 2, 3136),                        # docs/layers.md
    (ttrnn.TRLSTM, 6, None, 6 * 6 * (8 + 20 + 20 + 18 + 16 + 4 + 4 + 4)),      # sum_k r_k dim_k r_{k+1}
    (ttrnn.CPGRU, 9, None, 9 * (1 + 8 * 12 + 20 * 4 + 20 * 4 + 18 * 4)),       # R (1 + sum n_k m_k)
    (ttrnn.HTSimpleRNN, 7, None, 7 * (8 * 4 + 20 * 4 + 20 * 4 + 18 * 4) + 2 * 7 ** 3 + 7 ** 2),
])
def test_ucf11_kernel_param_counts(cls, ranks, blocks, expected):
    kw = {} if blocks is None else dict(blocks=blocks)
    layer = cls(UCF11_N, UCF11_M, ranks, **kw)
    assert layer.kernel_param_count == expected
    assert sum(math.prod(s) for _, s in layer.kernel_format.weight_shapes()) == expected


def test_default_ranks_keep_the_tt_lstm_budget():
    """`ranks=None`: every format within 10 % of the TT-LSTM's 3,360 on the UCF11 LSTM."""
    for fmt in OTHER_FORMATS:
        count = LAYERS[fmt, "LSTM"](UCF11_N, UCF11_M).kernel_param_count
        assert abs(count - 3360) <= 336, (fmt, count)
    assert formats.DEFAULT_RANKS["tt"] == 4


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="blocks applies to the bt format only"):
        ttrnn.TRGRU(N, M, 2, blocks=2)
    with pytest.raises(ValueError, match="product 12 but the input dimension is 10"):
        ttrnn.CPLSTM(N, M, 2)(np.zeros((2, 3, 10), "float32"))
