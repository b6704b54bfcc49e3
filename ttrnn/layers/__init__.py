"""Keras layers whose input kernel is a tensor format (`ttrnn.formats`), each public class written out in the module
of its kind:

- `ttrnn.layers.simple_rnn`, `ttrnn.layers.gru`, `ttrnn.layers.lstm`: `TTSimpleRNN`, `TTGRU`, `TTLSTM` (Yang,
  Krompass, Tresp, ICML 2017) and the TR / BT / CP / HT ones. Each is a kernel (`ttrnn.layers.kernel`), a cell
  (`ttrnn.layers.cells`) and the loop (`ttrnn.layers.recurrent.FormatRNN`).
- `ttrnn.layers.dense`: `TTDense` (the TT-MLP's layer), `TRDense`, `BTDense`, `CPDense`, `HTDense`.
- `PixelScaling` (uint8 frames → scaled, masked) and the Keras-1 `hard_sigmoid` of the "paper" preset.
- The backend fast paths the loop and the kernel pick: `fused_scan` (TensorFlow time loop), `projection` and
  `jax_projection` (long uint8 clips in blocks of time steps); and the export path's loop of plain ops,
  `plain_scan`, taken while Keras's `model.export` traces a model (`ttrnn.layers.kernel.exporting`).

Importing this package registers every class with Keras's serialization (package "ttrnn": "ttrnn>TTGRU", ...).
"""

from ttrnn.formats import FORMAT_NAMES
from ttrnn.layers.activations import hard_sigmoid
from ttrnn.layers.cells import CELLS
from ttrnn.layers.dense import BTDense, CPDense, HTDense, TRDense, TTDense
from ttrnn.layers.gru import BTGRU, CPGRU, HTGRU, TRGRU, TTGRU
from ttrnn.layers.lstm import BTLSTM, CPLSTM, HTLSTM, TRLSTM, TTLSTM
from ttrnn.layers.pixels import PixelScaling
from ttrnn.layers.simple_rnn import BTSimpleRNN, CPSimpleRNN, HTSimpleRNN, TRSimpleRNN, TTSimpleRNN

DENSE_LAYERS = (TTDense, TRDense, BTDense, CPDense, HTDense)
"""The Dense layers, one per format in `ttrnn.formats.FORMAT_NAMES` order."""
RECURRENT_LAYERS = (TTSimpleRNN, TTGRU, TTLSTM, TRSimpleRNN, TRGRU, TRLSTM, BTSimpleRNN, BTGRU, BTLSTM,
                    CPSimpleRNN, CPGRU, CPLSTM, HTSimpleRNN, HTGRU, HTLSTM)
"""The recurrent layers: for each format, its SimpleRNN, GRU and LSTM."""
# What `layer_class` looks up: (format, kind) → class, kind a cell's NAME or "Dense".
_BY_KIND = {**{(cls.FORMAT, cls.CELL.NAME): cls for cls in RECURRENT_LAYERS},
            **{(cls.FORMAT, "Dense"): cls for cls in DENSE_LAYERS}}
KINDS = tuple(cell.NAME for cell in CELLS) + ("Dense",)
"""The layer kinds `layer_class` takes: "SimpleRNN", "GRU", "LSTM" (the cells of `ttrnn.layers.cells`) and "Dense"."""

__all__ = [cls.__name__ for cls in DENSE_LAYERS + RECURRENT_LAYERS] + [
    "PixelScaling", "hard_sigmoid", "DENSE_LAYERS", "RECURRENT_LAYERS", "KINDS", "layer_class"]


def layer_class(fmt, kind):
    """The public layer of format `fmt` (one of `ttrnn.formats.FORMAT_NAMES`) and `kind` (one of `KINDS`:
    "SimpleRNN", "GRU", "LSTM", "Dense"): `layer_class("bt", "LSTM") is BTLSTM`. ValueError names the choices."""
    if fmt not in FORMAT_NAMES:
        raise ValueError(f"unknown kernel format {fmt!r} (choose from {', '.join(FORMAT_NAMES)})")
    if kind not in KINDS:
        raise ValueError(f"unknown layer kind {kind!r} (choose from {', '.join(KINDS)})")
    return _BY_KIND[fmt, kind]
