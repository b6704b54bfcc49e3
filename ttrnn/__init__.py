"""ttrnn: Tensor-Train RNNs (Yang, Krompass, Tresp, ICML 2017) and their tensor-ring, block-term, CP and
hierarchical-Tucker successors on Keras 3.

The package by concern, in the order data flows:

- `ttrnn.store`: the frame store (HDF5 index + shard files) that `preprocess` writes and training reads.
- `ttrnn.data`: splits, frame sampling and the streaming batch feed from a store.
- `ttrnn.formats`: the tensor formats of a `(prod n, prod m)` matrix (tt, tr, bt, cp, ht).
- `ttrnn.layers`: Keras layers with a format as input kernel (`TTGRU`, `TTDense`, ...).
- `ttrnn.models`: the paper's models; `ttrnn.baselines`: TSN, C3D, 3D-ResNets, non-local.
- `ttrnn.features`: per-frame CNN features of `keras.applications` backbones, and feature stores.
- `ttrnn.decompose`: dense matrices and trained Keras layers → formats.

Names are exported lazily (module-level `__getattr__`), so that `import ttrnn.store` and the preprocessing
workers never start TensorFlow.
"""

import importlib

_LAYERS = ("TTDense", "TRDense", "BTDense", "CPDense", "HTDense",
           "TTSimpleRNN", "TTGRU", "TTLSTM", "TRSimpleRNN", "TRGRU", "TRLSTM", "BTSimpleRNN", "BTGRU", "BTLSTM",
           "CPSimpleRNN", "CPGRU", "CPLSTM", "HTSimpleRNN", "HTGRU", "HTLSTM", "PixelScaling")
_NAMES = {
    **{name: "ttrnn.layers" for name in _LAYERS},
    "load_model": "ttrnn.models.saving",
    "tensorize": "ttrnn.decompose.tensorize",
    "tensorize_model": "ttrnn.decompose.tensorize",
}
# Subpackages reachable as attributes (`ttrnn.formats`); `tt` is the TT format module, `ttrnn.formats.tt`.
_SUBPACKAGES = {name: f"ttrnn.{name}" for name in ("store", "data", "formats", "layers", "models", "baselines",
                                                   "decompose", "features")}
_SUBPACKAGES["tt"] = "ttrnn.formats.tt"

__all__ = list(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(_SUBPACKAGES[name])
    raise AttributeError(f"module 'ttrnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_NAMES) | set(_SUBPACKAGES))
