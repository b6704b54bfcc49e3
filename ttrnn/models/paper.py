"""Builders for the paper's models: TT-GRU / TT-LSTM, plain GRU / LSTM, TT-MLP, with its per-dataset TT shapes; and
the same RNNs over per-frame CNN features (`feature_classifier`), the setting of the paper's successors.

The paper's models take uint8 frames (batch, T, H, W, 3), the feature models float16 features (batch, T, F); all
return class probabilities (softmax, or sigmoid for the multi-label Hollywood2). The input-to-hidden layer of every
model is named "input_to_hidden", which is what the paper's "# Parameters" column counts (`input_to_hidden_params`).
"""
import math

import keras

from ttrnn.formats import FORMAT_NAMES
from ttrnn.layers.pixels import PixelScaling
from ttrnn.models.shapes import (  # noqa: F401 (re-exported)
    FEATURE_OUTPUT_SHAPE,
    MLP_FRAMES,
    PAPER_SHAPES,
    check_feature_modes,
    check_frame_shape,
    feature_input_modes,
    integrated_input_modes,
)

L2_ALPHA = 1e-2  # the original: Dense(..., kernel_regularizer=l2(1e-2)) on the classifier
MLP_HIDDEN_SHAPE = (4, 4, 4, 4)
"""The TT-MLP's hidden TT output modes: 256 hidden units."""
RNN_MODELS = ("gru", "lstm")
"""The recurrent paper models (`paper_model`'s `model`)."""
MODELS = ("gru", "lstm", "mlp")
"""Every paper model: the two RNNs and the TT-MLP."""


def _head(h, num_classes, multilabel):
    return keras.layers.Dense(num_classes, activation="sigmoid" if multilabel else "softmax",
                              kernel_regularizer=keras.regularizers.L2(L2_ALPHA), name="classifier")(h)


def tensor_rnn_layer(decomposition, cell, input_modes, output_modes, tt_ranks=None, ranks=None, blocks=None,
                     **kwargs):
    """The `decomposition`-format GRU / LSTM (`ttrnn.TTGRU`, `ttrnn.TRLSTM`, ...).

    TT: `ranks` (an int R → `[1, R, .., R, 1]`, or the list) overrides `tt_ranks`. Other formats: `ranks=None`
    → `ttrnn.formats.DEFAULT_RANKS`; `blocks` for bt (default 2).
    """
    from ttrnn import formats
    from ttrnn.layers import layer_class
    if decomposition not in FORMAT_NAMES:
        raise ValueError(f"unknown decomposition {decomposition!r} (choose from {', '.join(FORMAT_NAMES)})")
    cls = layer_class(decomposition, cell.upper())
    if decomposition == "tt":
        if blocks is not None:
            raise ValueError("blocks applies to the bt decomposition only")
        if ranks is not None:
            tt_ranks = formats.TensorTrain(input_modes, output_modes, ranks).ranks
        return cls(tt_input_shape=list(input_modes), tt_output_shape=list(output_modes), tt_ranks=list(tt_ranks),
                   **kwargs)
    return cls(list(input_modes), list(output_modes), ranks, blocks, **kwargs)


def rnn_classifier(num_classes, frame_shape, cell="gru", use_tt=True, tt_input_shape=None, tt_output_shape=None,
                   tt_ranks=None, units=None, preset="modern", dropout=0.25, recurrent_dropout=0.25,
                   scaling="paper", multilabel=False, max_len=None, name=None, projection_dtype=None,
                   decomposition="tt", ranks=None, blocks=None, recurrent_decomposition=None, recurrent_ranks=None,
                   integrated=False, recurrent_input_shape=None, recurrent_output_shape=None):
    """(TT-)GRU / (TT-)LSTM over frames -> Dense classifier, as the original Experiment_*.py.

    frames uint8 (B, T, *frame_shape) -> PixelScaling (masks zero padding) -> RNN (last state) -> Dense.
    use_tt=False gives the plain Keras GRU / LSTM with a dense (H*W*C, gates*units) input kernel.
    `decomposition` (with use_tt): the input kernel's format, tt (default), tr, bt, cp or ht, with `ranks`
    (an int or the format's list) and `blocks` (bt) — `tensor_rnn_layer`.
    `recurrent_decomposition`: the hidden-to-hidden kernel in that format too (None: dense), on the modes
    `recurrent_input_shape` -> `recurrent_output_shape` (None: `tt_output_shape` both) at `recurrent_ranks`
    (None: the format's default). `integrated=True`: one `decomposition` matrix over `[x_t, h_{t-1}]` for all
    gates (Yin et al., CVPR 2021); `tt_input_shape` are then its input modes, multiplying to at least H*W*C + units
    (`ttrnn.TTGRU`'s `integrated`).
    `projection_dtype="bfloat16"`: the TT layer's first contraction runs in bfloat16 (TT models only).
    """
    if projection_dtype not in (None, "float32") and not use_tt:
        raise ValueError("projection_dtype applies to TT models only (use_tt=True)")
    if cell not in RNN_MODELS:
        raise ValueError(f"unknown recurrent cell {cell!r} (choose from {', '.join(RNN_MODELS)})")
    _check_recurrent(use_tt, recurrent_decomposition, recurrent_ranks, integrated)
    frames = keras.Input((max_len,) + tuple(frame_shape), dtype="uint8", name="frames")
    # TT layers take the uint8 frames and cast + scale one time chunk at a time (docs/performance.md).
    pixels = PixelScaling(scaling, cast=not use_tt, name="pixels")
    x = pixels(frames)
    if use_tt:
        if integrated:
            _check_integrated_rows(frame_shape, tt_input_shape, tt_output_shape)
        else:
            check_frame_shape(frame_shape, tt_input_shape)
        scale, shift = pixels.affine()
        recurrent = {}
        if recurrent_decomposition is not None:
            recurrent = dict(recurrent_format=recurrent_decomposition, recurrent_ranks=recurrent_ranks,
                             recurrent_input_modes=list(recurrent_input_shape or tt_output_shape),
                             recurrent_output_modes=list(recurrent_output_shape or tt_output_shape))
        rnn = tensor_rnn_layer(decomposition, cell, tt_input_shape, tt_output_shape, tt_ranks, ranks, blocks,
                               preset=preset, dropout=dropout, recurrent_dropout=recurrent_dropout,
                               input_scale=scale, input_shift=shift, projection_dtype=projection_dtype,
                               integrated=integrated, name="input_to_hidden", **recurrent)
    else:
        rnn = _plain_rnn(cell, units or math.prod(tt_output_shape), preset, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, name="input_to_hidden")
    h = rnn(x)
    outputs = _head(h, num_classes, multilabel)
    return keras.Model(frames, outputs,
                       name=name or _label(use_tt, decomposition, cell, recurrent_decomposition, integrated))


def _label(use_tt, decomposition, cell, recurrent_decomposition, integrated):
    """The model's name, the run label of experiments' rnn family: gru, tt_gru, tt_gru_fd[_<format>],
    ht_lstm_integrated, ..."""
    label = (f"{decomposition}_" if use_tt else "") + cell
    if recurrent_decomposition is not None:
        label += "_fd" + ("" if recurrent_decomposition == decomposition else f"_{recurrent_decomposition}")
    return label + ("_integrated" if integrated else "")


def _check_recurrent(use_tt, recurrent_decomposition, recurrent_ranks, integrated):
    """ValueError (one line) for a recurrent decomposition or integrated model the arguments cannot build."""
    if recurrent_decomposition is not None and recurrent_decomposition not in FORMAT_NAMES:
        raise ValueError(f"unknown recurrent_decomposition {recurrent_decomposition!r} (choose from "
                         f"{', '.join(FORMAT_NAMES)}, or None for a dense recurrent kernel)")
    if not use_tt and (recurrent_decomposition is not None or integrated or recurrent_ranks is not None):
        raise ValueError("recurrent_decomposition, recurrent_ranks and integrated apply to the tensorized models "
                         "(use_tt=True), not the plain GRU / LSTM")
    if integrated and (recurrent_decomposition is not None or recurrent_ranks is not None):
        raise ValueError("integrated=True factorizes input and recurrent weights as one matrix in the "
                         "decomposition's format: no recurrent_decomposition or recurrent_ranks")
    if recurrent_ranks is not None and recurrent_decomposition is None:
        raise ValueError("recurrent_ranks needs recurrent_decomposition (the recurrent kernel's format)")


def _check_integrated_rows(frame_shape, input_shape, output_shape):
    """ValueError unless the integrated matrix's input modes hold the frame's values and the state's."""
    rows = math.prod(frame_shape) + math.prod(output_shape)
    if math.prod(input_shape) < rows:
        raise ValueError(f"the integrated input modes {tuple(input_shape)} multiply to {math.prod(input_shape)}, "
                         f"fewer than the {math.prod(frame_shape)} values of a {tuple(frame_shape)} frame plus "
                         f"{math.prod(output_shape)} units = {rows}")


def _plain_rnn(cell, units, preset, **kwargs):
    """Keras's own GRU / LSTM with the paper presets (the paper preset: hard sigmoid gates, reset_after=False)."""
    if preset == "paper":
        from ttrnn.layers.activations import hard_sigmoid
        kwargs["recurrent_activation"] = hard_sigmoid
    if cell == "gru":
        return keras.layers.GRU(units, reset_after=(preset != "paper"), **kwargs)
    return keras.layers.LSTM(units, **kwargs)


def feature_classifier(num_classes, width, cell="lstm", use_tt=True, input_modes=None,
                       output_modes=FEATURE_OUTPUT_SHAPE, ranks=None, units=None, preset="modern", dropout=0.25,
                       recurrent_dropout=0.25, multilabel=False, max_len=None, name=None, projection_dtype=None,
                       decomposition="tt", blocks=None, dtype="float16", input_scale=1.0,
                       recurrent_decomposition=None, recurrent_ranks=None, integrated=False):
    """(tensorized) GRU / LSTM over per-frame CNN features -> Dense classifier: the successors' CNN-feature setting
    (TR-LSTM, Pan et al., AAAI 2019; tednet's UCF11 feature benchmark) on this package's layers.

    features (B, T, F) as stored (float16) -> Masking(0) (cast to float32; the all-zero steps the data feed
    pre-pads with are masked, as `PixelScaling` masks all-zero frames) -> RNN (last state) -> Dense, as
    `rnn_classifier` minus the pixel scaling: features enter as they were stored. A step whose features are all
    exactly zero is masked too: pooled features of a trained backbone never are, but a randomly initialized one
    can give them (a random MobileNetV2 at 64x64 gives nothing else).

    Args:
        num_classes: classifier outputs.
        width: F, values per feature vector (2,048 for InceptionV3 and ResNet50's average pool).
        cell: "gru" or "lstm".
        use_tt: a tensorized input-to-hidden kernel in the `decomposition` format (tt, tr, bt, cp, ht) over
            `input_modes` -> `output_modes`; False: Keras's GRU / LSTM with a dense (F, gates*units) kernel.
        input_modes: modes whose product is F; default `feature_input_modes(F)` (2,048 -> 4x8x8x8).
        output_modes: hidden modes (default 4x4x4x4 = 256 units, the paper's).
        ranks: the format's ranks (an int or its list); default the TT-RNN paper's 4 for tt,
            `ttrnn.formats.DEFAULT_RANKS` otherwise.
        units: hidden units of the plain GRU / LSTM (default the product of `output_modes`).
        preset, dropout, recurrent_dropout, projection_dtype, blocks: as `rnn_classifier`.
        multilabel: sigmoid outputs (else softmax).
        max_len: fixed T of the input, or None (any length).
        dtype: the input's dtype, the feature store's ("float16", or "float32" for a store made so).
        input_scale: a constant (not trained) the features are multiplied by before the input kernel, so that they
            reach it at about unit scale whatever the backbone: a randomly initialized InceptionV3's average-pooled
            features are about 4e-4 (their kernel's projection is then near zero and learns slowly), a random
            ResNet50's about 2. The trainer's `--input-scale auto` (its default) measures 1 / RMS on training
            clips. Tensorized layers apply it per time chunk (their `input_scale`); the plain GRU / LSTM through a
            Rescaling layer.
        recurrent_decomposition, recurrent_ranks: the hidden-to-hidden kernel in a format too, on `output_modes`
            both ways (as `rnn_classifier`).
        integrated: one `decomposition` matrix over `[x_t, h_{t-1}]` (as `rnn_classifier`); `input_modes` are then
            its modes, multiplying to at least F + units (default `integrated_input_modes(F + units)`).

    Cost per step: the kernel's projection of F values (a 2,048 x 1,024 dense LSTM kernel: 2.1 M multiply-adds; the
    TT kernel at ranks 4: about 50 k) plus the recurrent (units, gates*units) product.
    """
    if projection_dtype not in (None, "float32") and not use_tt:
        raise ValueError("projection_dtype applies to tensorized models only (use_tt=True)")
    if cell not in RNN_MODELS:
        raise ValueError(f"unknown recurrent cell {cell!r} (choose from {', '.join(RNN_MODELS)})")
    _check_recurrent(use_tt, recurrent_decomposition, recurrent_ranks, integrated)
    width = int(width)
    features = keras.Input((max_len, width), dtype=str(dtype), name="features")
    # Keras casts a float16 input to the layer's float32 before the call; the mask marks steps not all zero.
    x = keras.layers.Masking(0.0, dtype="float32", name="steps")(features)
    input_scale = float(input_scale)
    if not input_scale > 0:
        raise ValueError(f"input_scale must be > 0, got {input_scale}")
    kwargs = dict(dropout=dropout, recurrent_dropout=recurrent_dropout, name="input_to_hidden")
    if use_tt and input_scale != 1.0:
        kwargs["input_scale"] = input_scale
    elif input_scale != 1.0:       # scaling keeps zero steps zero: the mask Masking computed still holds
        x = keras.layers.Rescaling(input_scale, name="input_scale")(x)
    if use_tt:
        if integrated:
            input_modes = tuple(input_modes or integrated_input_modes(width + math.prod(output_modes),
                                                                      len(output_modes)))
            _check_integrated_rows((width,), input_modes, output_modes)
            kwargs["integrated"] = True
        else:
            input_modes = tuple(input_modes or feature_input_modes(width, len(output_modes)))
            check_feature_modes(width, input_modes)
        if recurrent_decomposition is not None:
            kwargs.update(recurrent_format=recurrent_decomposition, recurrent_ranks=recurrent_ranks,
                          recurrent_input_modes=list(output_modes), recurrent_output_modes=list(output_modes))
        tt_ranks = (1,) + (PAPER_SHAPES["ucf11"]["tt_ranks"][1],) * (len(input_modes) - 1) + (1,)
        rnn = tensor_rnn_layer(decomposition, cell, input_modes, output_modes, tt_ranks, ranks, blocks,
                               preset=preset, projection_dtype=projection_dtype, **kwargs)
    else:
        rnn = _plain_rnn(cell, units or math.prod(output_modes), preset, **kwargs)
    return keras.Model(features, _head(rnn(x), num_classes, multilabel),
                       name=name or _label(use_tt, decomposition, cell, recurrent_decomposition, integrated))


def tt_mlp_classifier(num_classes, frame_shape, tt_input_shape, hidden_shape=MLP_HIDDEN_SHAPE, tt_ranks=(1, 4, 4, 4, 1),
                      num_frames=MLP_FRAMES, dropout=0.25, scaling="paper", multilabel=False, name="tt_mlp"):
    """TT-MLP: `num_frames` frames (ascending) concatenated -> TTDense to 256 hidden (ReLU) -> classifier."""
    import ttrnn
    check_frame_shape(frame_shape, tt_input_shape, frames=num_frames)
    frames = keras.Input((num_frames,) + tuple(frame_shape), dtype="uint8", name="frames")
    x = PixelScaling(scaling, mask_padding=False, name="pixels")(frames)
    x = keras.layers.Flatten(name="concat_frames")(x)
    h = ttrnn.TTDense(tt_input_shape=list(tt_input_shape), tt_output_shape=list(hidden_shape),
                      tt_ranks=list(tt_ranks), activation="relu", name="input_to_hidden")(x)
    h = keras.layers.Dropout(dropout)(h)
    return keras.Model(frames, _head(h, num_classes, multilabel), name=name)


def paper_model(dataset, model, num_classes, use_tt=True, preset="modern", frame_shape=None, multilabel=False,
                scaling="paper", dropout=0.25, recurrent_dropout=0.25, max_len=None, projection_dtype=None,
                decomposition="tt", ranks=None, blocks=None, recurrent_decomposition=None, recurrent_ranks=None,
                integrated=False):
    """The paper's `model` in ('gru', 'lstm', 'mlp') for `dataset` in PAPER_SHAPES, with its TT shapes.

    `frame_shape` defaults to the paper's frame size for the dataset; the TT input modes must factor it.
    `decomposition` / `ranks` / `blocks`: the recurrent models' input kernel format on the same modes
    (`rnn_classifier`); the TT-MLP is TT only.
    Fully decomposed models (beyond the paper, `rnn_classifier`): `recurrent_decomposition` puts the recurrent
    kernel in that format on the dataset's `recurrent_input_shape` -> `recurrent_output_shape`, at
    `recurrent_ranks` (None: the format's default, as `ranks`); `integrated=True` builds one `decomposition`
    matrix over `[x_t, h_{t-1}]` on the dataset's `integrated_input_shape` (HT is FDHT's, Yin et al., CVPR 2021;
    the shapes are ours: `PAPER_SHAPES`). ValueError for the TT-MLP or the plain models with either.
    """
    if dataset not in PAPER_SHAPES:
        raise ValueError(f"no paper shapes for dataset {dataset!r} (have {', '.join(PAPER_SHAPES)})")
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r} (choose from {', '.join(MODELS)})")
    shapes = PAPER_SHAPES[dataset]
    width, height = shapes["frame_size"]
    frame_shape = tuple(frame_shape or (height, width, 3))
    if model == "mlp":
        if recurrent_decomposition is not None or recurrent_ranks is not None or integrated:
            raise ValueError("the TT-MLP has no recurrent kernel (no recurrent_decomposition, recurrent_ranks, "
                             "integrated)")
        if decomposition != "tt" or ranks is not None or blocks is not None:
            raise ValueError("the TT-MLP has a TT kernel with the paper's ranks (no decomposition, ranks, blocks)")
        if projection_dtype not in (None, "float32"):
            raise ValueError("projection_dtype applies to the TT-GRU / TT-LSTM models, not the TT-MLP")
        return tt_mlp_classifier(num_classes, frame_shape, shapes["mlp_input_shape"], tt_ranks=shapes["tt_ranks"],
                                 dropout=dropout, scaling=scaling, multilabel=multilabel)
    input_shape = shapes["integrated_input_shape" if integrated else "tt_input_shape"]
    return rnn_classifier(num_classes, frame_shape, cell=model, use_tt=use_tt,
                          tt_input_shape=input_shape, tt_output_shape=shapes["tt_output_shape"],
                          tt_ranks=shapes["tt_ranks"], units=shapes["units"], preset=preset, dropout=dropout,
                          recurrent_dropout=recurrent_dropout, scaling=scaling, multilabel=multilabel,
                          max_len=max_len, projection_dtype=projection_dtype, decomposition=decomposition,
                          ranks=ranks, blocks=blocks, recurrent_decomposition=recurrent_decomposition,
                          recurrent_ranks=recurrent_ranks, integrated=integrated,
                          recurrent_input_shape=shapes["recurrent_input_shape"],
                          recurrent_output_shape=shapes["recurrent_output_shape"])


def input_to_hidden_params(model):
    """The paper's '# Parameters': weights of the input-to-hidden map only (the kernel's factors in any format, TT
    cores, or the dense input kernel). An integrated layer's one matrix holds the hidden-to-hidden weights too:
    its whole count. The whole model's: `model.count_params()`."""
    layer = model.get_layer("input_to_hidden")
    if hasattr(layer, "kernel_param_count"):
        return int(layer.kernel_param_count)
    if hasattr(layer, "tt_param_count"):
        return int(layer.tt_param_count)
    cell = getattr(layer, "cell", layer)
    return int(math.prod(cell.kernel.shape))
