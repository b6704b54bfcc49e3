"""Kernel formats: a `(prod n, prod m)` matrix as small factors, one module each.

`tt` tensor train (TT-RNN), `tr` tensor ring (TR-LSTM), `bt` block-term Tucker (BT-LSTM), `cp` canonical
polyadic, `ht` hierarchical Tucker (HT-LSTM). Each is a `ttrnn.formats.base.Format` subclass; `make(name, ...)`
builds one. `DEFAULT_RANKS` give ~3.3 k input-to-hidden parameters for the UCF11 LSTM (8x20x20x18 → 4x4x4x4),
the TT-LSTM's budget.
"""

from ttrnn.format_names import FORMAT_NAMES
from ttrnn.formats.bt import BlockTerm
from ttrnn.formats.cp import CP
from ttrnn.formats.ht import HierarchicalTucker
from ttrnn.formats.tr import TensorRing
from ttrnn.formats.tt import TensorTrain

# name -> class, in the order of ttrnn.format_names (the one list of names, Keras-free, that the CLIs check);
# a name without a class here fails at import
_BY_NAME = {cls.NAME: cls for cls in (TensorTrain, TensorRing, BlockTerm, CP, HierarchicalTucker)}
FORMATS = {name: _BY_NAME[name] for name in FORMAT_NAMES}
# UCF11 LSTM kernel parameters at these ranks: tt 3,360  tr 3,384  bt (2 blocks) 3,392  cp 3,249  ht 3,255
DEFAULT_RANKS = {"tt": 4, "tr": 6, "bt": 4, "cp": 9, "ht": 7}
DEFAULT_BLOCKS = 2


def make(name, input_modes, output_modes, ranks=None, blocks=None):
    """The format `name` over the given modes; `ranks=None` → `DEFAULT_RANKS[name]`, `blocks` for bt only."""
    if name not in FORMATS:
        raise ValueError(f"unknown kernel format {name!r} (choose from {', '.join(FORMATS)})")
    if blocks is not None and name != "bt":
        raise ValueError(f"blocks applies to the bt format only, not {name!r}")
    ranks = DEFAULT_RANKS[name] if ranks is None else ranks
    if name == "bt":
        return BlockTerm(input_modes, output_modes, ranks, DEFAULT_BLOCKS if blocks is None else blocks)
    return FORMATS[name](input_modes, output_modes, ranks)
