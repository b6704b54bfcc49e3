"""ttrnn: Tensor-Train RNNs (Yang, Krompass, Tresp, ICML 2017) and their tensor-ring, block-term, CP and
hierarchical-Tucker successors on Keras 3.

Layers are exported lazily (module-level `__getattr__`) so that `import ttrnn.store` and the preprocessing
workers never start TensorFlow.
"""

import importlib

_LAYERS = {
    **{f"{fmt}Dense": "ttrnn.layers" for fmt in ("TT", "TR", "BT", "CP", "HT")},
    "TTSimpleRNN": "ttrnn.recurrent",
    "TTGRU": "ttrnn.recurrent",
    "TTLSTM": "ttrnn.recurrent",
    **{f"{fmt}{cell}": "ttrnn.recurrent" for fmt in ("TR", "BT", "CP", "HT") for cell in ("SimpleRNN", "GRU", "LSTM")},
    "PixelScaling": "ttrnn.pixels",
    "load_model": "ttrnn.saving",
    "tensorize": "ttrnn.tensorizing",
    "tensorize_model": "ttrnn.tensorizing",
}
_SUBMODULES = ("tt", "format_names", "formats", "kernel", "cells", "layers", "recurrent", "activations", "store",
               "data", "models", "baselines", "pixels", "splits", "sampling", "saving", "decompose", "tensorizing")

__all__ = list(_LAYERS)


def __getattr__(name):
    if name in _LAYERS:
        return getattr(importlib.import_module(_LAYERS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"ttrnn.{name}")
    raise AttributeError(f"module 'ttrnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAYERS) | set(_SUBMODULES))
