"""The paper's models and the loader of saved ones.

- `ttrnn.models.shapes` (no Keras): the paper's TT shapes per dataset and the frame-size check.
- `ttrnn.models.shapes` also: the input modes of the RNNs over CNN features (`feature_input_modes`).
- `ttrnn.models.paper` (Keras): TT-GRU / TT-LSTM, plain GRU / LSTM, TT-MLP classifiers of uint8 frames, and
  `feature_classifier` (the same RNNs over per-frame CNN features).
- `ttrnn.models.saving` : `load_model` for `.keras` files built from ttrnn layers.
- `ttrnn.models.stateful` (Keras): `stateful_copy` of a trained recurrent model (chunk by chunk, states carried)
  and `reset_states`.

The baselines (TSN, C3D, 3D-ResNets, non-local) are `ttrnn.baselines`. Names load lazily, so that
`ttrnn.models.shapes` is read before TensorFlow starts.
"""

import importlib

_NAMES = {
    **{name: "ttrnn.models.shapes" for name in ("PAPER_SHAPES", "MLP_FRAMES", "check_frame_shape",
                                                "FEATURE_INPUT_MODES", "FEATURE_OUTPUT_SHAPE", "factor_modes",
                                                "feature_input_modes", "check_feature_modes",
                                                "integrated_input_modes")},
    **{name: "ttrnn.models.paper" for name in ("paper_model", "rnn_classifier", "tt_mlp_classifier",
                                               "tensor_rnn_layer", "input_to_hidden_params", "RNN_MODELS",
                                               "feature_classifier",
                                               "MODELS", "MLP_HIDDEN_SHAPE")},
    "load_model": "ttrnn.models.saving",
    **{name: "ttrnn.models.stateful" for name in ("stateful_copy", "reset_states")},
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'ttrnn.models' has no attribute {name!r}")
