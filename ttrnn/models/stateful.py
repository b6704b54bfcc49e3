"""A stateful copy of a trained recurrent model: the same weights, the recurrent layers `stateful=True`, a fixed
batch size and any number of time steps per call, so a long video (or a camera) can go through it chunk by chunk
with the states carried from one call to the next (Keras's `stateful` semantics: `keras.layers.RNN`)."""

import copy

import keras


def is_recurrent(layer):
    """Whether `layer` is a recurrent layer that can be stateful (a ttrnn one or Keras's `keras.layers.RNN`)."""
    from ttrnn.layers.recurrent import FormatRNN
    return isinstance(layer, (FormatRNN, keras.layers.RNN))


def stateful_copy(model, batch_size=1):
    """`model` (a functional model of uint8 frames, e.g. `ttrnn.models.paper_model(..., "gru")`) rebuilt with
    every recurrent layer `stateful=True`, its input `(batch_size, None, ...)` (any chunk length) and the same
    weights.

    Call `copy.predict_on_batch(chunk)` (or `copy(chunk)`) on successive chunks `(batch_size, t, ...)` of the same
    videos: each call starts from the states the previous call ended with; after the last chunk of a video the
    output equals `model` on the whole video (the same frames, in one call). `copy.reset_state()` is not a Keras
    model method: call `reset_states(copy)` (every recurrent layer's `reset_state()`) before the next videos.

    On JAX, Keras's jitted `predict_on_batch` does not carry the state variables from call to call (they are not
    tracked, as Keras's own; its stateful GRU / LSTM behave the same): call the copy itself there.

    ValueError if `model` has no recurrent layer (e.g. the TT-MLP) or more than one input.
    """
    if not any(is_recurrent(layer) for layer in model.layers):
        raise ValueError(f"model {model.name!r} has no recurrent layer: only recurrent models can be stateful")
    if len(model.inputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(model.inputs)} inputs; a stateful copy takes one")
    config = copy.deepcopy(model.get_config())
    recurrent = {layer.name for layer in model.layers if is_recurrent(layer)}
    for entry in config["layers"]:
        if entry["class_name"] == "InputLayer":
            shape = list(entry["config"]["batch_shape"])
            entry["config"]["batch_shape"] = [int(batch_size), None] + shape[2:]
        elif entry["config"].get("name") in recurrent:
            entry["config"]["stateful"] = True
            entry.pop("build_config", None)        # built for any batch size: rebuilt on the fixed one
    clone = model.__class__.from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def reset_states(model):
    """Zero the states of every stateful recurrent layer of `model` (before the next videos)."""
    for layer in model.layers:
        if is_recurrent(layer) and getattr(layer, "stateful", False):
            layer.reset_state()
