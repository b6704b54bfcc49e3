"""Kernel formats: a `(prod n, prod m)` matrix as small factors, one module each.

`tt` tensor train (TT-RNN, Yang et al. 2017), `tr` tensor ring (TR-LSTM, Pan et al. 2019), `bt` block-term
Tucker (BT-LSTM, Ye et al. 2018), `cp` canonical polyadic, `ht` hierarchical Tucker (HT-LSTM, Yin et al. 2020).
Each is a `ttrnn.formats.base.Format` subclass; `make(name, ...)` builds one.

The names, ranks and `make` are importable without Keras (the CLIs check `--decomposition` before TensorFlow
starts); the format classes and `FORMATS` (name -> class) load Keras on first use.
"""

import importlib

FORMAT_NAMES = ("tt", "tr", "bt", "cp", "ht")
"""The format names, in the order tables list them: the values of `--decomposition` and of `layer_class`."""
DEFAULT_RANKS = {"tt": 4, "tr": 6, "bt": 4, "cp": 9, "ht": 7}
"""Ranks of each format when none are given: about the TT-LSTM's kernel budget on UCF11 (input modes 8x20x20x18,
output modes 4x4x4x4): tt 3,360 parameters, tr 3,384, bt (2 blocks) 3,392, cp 3,249, ht 3,255."""
DEFAULT_BLOCKS = 2
"""Blocks of the bt format (block-term Tucker) when none are given."""

_CLASSES = {"tt": ("ttrnn.formats.tt", "TensorTrain"), "tr": ("ttrnn.formats.tr", "TensorRing"),
            "bt": ("ttrnn.formats.bt", "BlockTerm"), "cp": ("ttrnn.formats.cp", "CP"),
            "ht": ("ttrnn.formats.ht", "HierarchicalTucker")}

__all__ = ["FORMAT_NAMES", "FORMATS", "DEFAULT_RANKS", "DEFAULT_BLOCKS", "make", "format_class", "TensorTrain",
           "TensorRing", "BlockTerm", "CP", "HierarchicalTucker"]


def format_class(name):
    """The `Format` subclass of the format `name` (one of `FORMAT_NAMES`)."""
    if name not in _CLASSES:
        raise ValueError(f"unknown kernel format {name!r} (choose from {', '.join(FORMAT_NAMES)})")
    module, cls = _CLASSES[name]
    return getattr(importlib.import_module(module), cls)


def make(name, input_modes, output_modes, ranks=None, blocks=None):
    """The format `name` over the given modes; `ranks=None` → `DEFAULT_RANKS[name]`, `blocks` for bt only."""
    cls = format_class(name)
    if blocks is not None and name != "bt":
        raise ValueError(f"blocks applies to the bt format only, not {name!r}")
    ranks = DEFAULT_RANKS[name] if ranks is None else ranks
    if name == "bt":
        return cls(input_modes, output_modes, ranks, DEFAULT_BLOCKS if blocks is None else blocks)
    return cls(input_modes, output_modes, ranks)


def __getattr__(name):
    if name == "FORMATS":
        return {fmt: format_class(fmt) for fmt in FORMAT_NAMES}
    for fmt, (_, cls) in _CLASSES.items():
        if name == cls:
            return format_class(fmt)
    raise AttributeError(f"module 'ttrnn.formats' has no attribute {name!r}")
