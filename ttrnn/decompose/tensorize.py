"""Trained dense layers -> ttrnn layers: `ttrnn.tensorize(layer, decomposition="tt", input_modes, output_modes,
ranks)` .

A `keras.layers.SimpleRNN` / `GRU` / `LSTM` becomes the ttrnn recurrent layer of that format (`TTGRU`, `CPLSTM`,
...) built through its public constructor: its input kernel `(D, gates * units)` decomposed (`ttrnn.decompose`)
over the modes `n` -> `(gates * m_0, m_1, ...)`, which is how ttrnn folds the gates (the dense kernel's column
blocks are the gates in Keras order), the recurrent kernel and the biases copied, activations and the options
ttrnn supports carried over. A `keras.layers.Dense` becomes the Dense layer of the format (`TTDense`, `CPDense`,
...). At full ranks (`ranks="full"`) the new layer computes what the old one did.

`recurrent_format` decomposes the recurrent kernel `(units, gates * units)` too, the same way (over
`recurrent_input_modes` -> `(gates * m_0, m_1, ...)`, default the layer's output modes both ways) at
`recurrent_ranks`: the fully decomposed layer (`ttrnn.TTGRU`'s `recurrent_format`), equal to the dense one at
full ranks.

`tensorize_model(model, ...)` rebuilds a functional or Sequential model with its first dense / recurrent layer
(or the one named) tensorized and every other layer's weights kept.
"""

import math

import keras
import numpy as np

from ttrnn import decompose as dec
from ttrnn import layers
from ttrnn.formats import DEFAULT_RANKS, FORMAT_NAMES

__all__ = ["tensorize", "tensorize_model", "layer_class", "TensorizeError"]

# Keras options carried over as they are (ttrnn's recurrent layers take the same names and meanings).
_CARRIED = ("activation", "recurrent_activation", "use_bias", "dropout", "recurrent_dropout", "return_sequences",
            "return_state", "go_backwards", "unroll", "zero_output_for_mask")


class TensorizeError(ValueError):
    """A layer or setting ttrnn cannot tensorize (one line)."""


def layer_class(kind, decomposition):
    """The ttrnn class for a Keras layer kind (`Dense`, `SimpleRNN`, `GRU`, `LSTM`: `ttrnn.layers.KINDS`) and a
    format, or TensorizeError (one line) for a combination ttrnn has no layer for."""
    if decomposition not in FORMAT_NAMES:
        raise TensorizeError(f"unknown decomposition {decomposition!r} (choose from "
                             f"{', '.join(FORMAT_NAMES)})")
    if kind not in layers.KINDS:
        raise TensorizeError(f"cannot tensorize a {kind} layer (Dense, SimpleRNN, GRU and LSTM can be)")
    return layers.layer_class(decomposition, kind)


def _check_settings(layer, kind):
    config = layer.get_config()
    if kind == "Dense":
        return config
    if config.get("stateful"):   # its states belong to the batch it was run on: tensorize the weights only
        raise TensorizeError(f"{layer.name}: a stateful layer; tensorize the model built with stateful=False, then "
                             "make a stateful copy of the result (ttrnn.models.stateful_copy)")
    return config


def _modes(layer, kind, input_modes, output_modes, gates):
    kernel = np.asarray(layer.get_weights()[0])
    d_in, out = kernel.shape
    units = out // gates
    if math.prod(input_modes) != d_in:
        raise TensorizeError(f"{layer.name}: input_modes {list(input_modes)} have product {math.prod(input_modes)}, "
                             f"the layer's input dimension is {d_in}")
    if math.prod(output_modes) != units:
        raise TensorizeError(f"{layer.name}: output_modes {list(output_modes)} have product "
                             f"{math.prod(output_modes)}, the layer has {units} units")
    return kernel


def tensorize(layer, decomposition="tt", input_modes=None, output_modes=None, ranks=None, blocks=None,
              recurrent_format=None, recurrent_ranks=None, recurrent_input_modes=None, recurrent_output_modes=None,
              recurrent_blocks=None):
    """The ttrnn counterpart of a built Keras `Dense` / `SimpleRNN` / `GRU` / `LSTM` `layer`, its kernel
    decomposed at `ranks` (an int, the format's rank list, "full" or None = `formats.DEFAULT_RANKS`), built and
    holding the weights. `input_modes` / `output_modes`: `prod n` = input dimension, `prod m` = units.
    `recurrent_format` (recurrent layers): the recurrent kernel decomposed too, in that format over
    `recurrent_input_modes` -> `recurrent_output_modes` (None: `output_modes` both; products = units) at
    `recurrent_ranks` (as `ranks`) with `recurrent_blocks` (bt)."""
    kind = type(layer).__name__
    cls = layer_class(kind, decomposition)
    if not layer.built or not layer.weights:
        raise TensorizeError(f"{layer.name}: the layer has no weights yet (build or train it first)")
    if input_modes is None or output_modes is None:
        raise TensorizeError("give input_modes and output_modes (prod n = input dimension, prod m = units)")
    config = _check_settings(layer, kind)
    recurrent_given = [recurrent_ranks, recurrent_input_modes, recurrent_output_modes, recurrent_blocks]
    if recurrent_format is None and any(v is not None for v in recurrent_given):
        raise TensorizeError("recurrent_ranks, recurrent_input_modes, recurrent_output_modes and recurrent_blocks "
                             "need recurrent_format")
    if recurrent_format is not None and kind == "Dense":
        raise TensorizeError(f"{layer.name}: a Dense layer has no recurrent kernel (recurrent_format)")
    if recurrent_format is not None and recurrent_format not in FORMAT_NAMES:
        raise TensorizeError(f"unknown recurrent_format {recurrent_format!r} (choose from "
                             f"{', '.join(FORMAT_NAMES)})")
    gates = 1 if kind == "Dense" else cls.GATES
    n, m = [int(v) for v in input_modes], [int(v) for v in output_modes]
    kernel = _modes(layer, kind, n, m, gates)
    folded_m = [m[0] * gates] + m[1:]          # the gates in the first output mode, as the ttrnn layers hold them
    if ranks is None:
        ranks = DEFAULT_RANKS[decomposition]
    fmt = dec.make_format(decomposition, n, folded_m, ranks, blocks)
    factors = dec.decompose(kernel, fmt)
    kwargs = {k: config[k] for k in _CARRIED if k in config}
    kwargs["name"] = layer.name
    if kind == "GRU":
        kwargs["reset_after"] = config["reset_after"]
    if kind == "Dense":
        kwargs = {"activation": config["activation"], "use_bias": config["use_bias"], "name": layer.name}
    rest = [np.asarray(w) for w in layer.get_weights()[1:]]
    if recurrent_format is not None:       # the recurrent kernel (rest[0]) decomposed the same way
        rn = [int(v) for v in (m if recurrent_input_modes is None else recurrent_input_modes)]
        rm = [int(v) for v in (m if recurrent_output_modes is None else recurrent_output_modes)]
        for name, modes in (("recurrent_input_modes", rn), ("recurrent_output_modes", rm)):
            if math.prod(modes) != math.prod(m):
                raise TensorizeError(f"{layer.name}: {name} {modes} have product {math.prod(modes)}, the layer has "
                                     f"{math.prod(m)} units")
        rfmt = dec.make_format(recurrent_format, rn, [rm[0] * gates] + rm[1:],
                               DEFAULT_RANKS[recurrent_format] if recurrent_ranks is None else recurrent_ranks,
                               recurrent_blocks)
        rest = dec.decompose(rest[0], rfmt) + rest[1:]
        kwargs.update(recurrent_format=recurrent_format, recurrent_input_modes=rn, recurrent_output_modes=rm,
                      recurrent_ranks=list(rfmt.ranks), recurrent_blocks=rfmt.blocks)
    if decomposition == "tt":
        new = cls(n, m, list(fmt.ranks), **kwargs)
    else:
        new = cls(n, m, list(fmt.ranks), blocks=fmt.blocks, **kwargs)
    new.build((None, None, kernel.shape[0]) if kind != "Dense" else (None, kernel.shape[0]))
    new.set_weights(factors + rest)
    return new


def _target(model, layer_name):
    if layer_name is not None:
        return model.get_layer(layer_name)
    for layer in model.layers:
        if type(layer).__name__ in layers.KINDS and type(layer).__name__ != "Dense":
            return layer
    for layer in model.layers:
        if type(layer).__name__ == "Dense":
            return layer
    raise TensorizeError(f"model {model.name} has no Dense, SimpleRNN, GRU or LSTM layer to tensorize")


def tensorize_model(model, decomposition="tt", input_modes=None, output_modes=None, ranks=None, blocks=None,
                    layer_name=None, **recurrent):
    """A copy of `model` (functional or Sequential) with one layer tensorized (`layer_name`, default the first
    recurrent layer, else the first Dense) and every other layer's weights kept. Returns `(new_model, new_layer)`.
    `recurrent`: `tensorize`'s `recurrent_format`, `recurrent_ranks`, ... (the recurrent kernel decomposed too)."""
    old = _target(model, layer_name)
    new_layer = tensorize(old, decomposition, input_modes, output_modes, ranks, blocks, **recurrent)

    def clone(layer):
        if layer is old:
            return new_layer
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    for src, dst in zip(model.layers, copy.layers):
        if src is not old and src.weights:
            dst.set_weights(src.get_weights())
    return copy, new_layer
