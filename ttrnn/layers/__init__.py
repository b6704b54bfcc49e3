"""Keras layers whose input kernel is a tensor format (`ttrnn.formats`).

- Recurrent: `TTSimpleRNN`, `TTGRU`, `TTLSTM` (Yang, Krompass, Tresp, ICML 2017) and the TR / BT / CP / HT ones;
  each a kernel (`ttrnn.layers.kernel`), a cell (`ttrnn.layers.cells`) and the loop (`ttrnn.layers.recurrent`).
- Dense: `TTDense` (the TT-MLP's layer), `TRDense`, `BTDense`, `CPDense`, `HTDense` (`ttrnn.layers.dense`).
- `PixelScaling` (uint8 frames → scaled, masked) and the Keras-1 `hard_sigmoid` of the "paper" preset.

Importing this package registers every class with Keras's serialization (package "ttrnn").
"""

from ttrnn.layers.activations import hard_sigmoid
from ttrnn.layers.dense import BTDense, CPDense, HTDense, TRDense, TTDense
from ttrnn.layers.pixels import PixelScaling
from ttrnn.layers.recurrent import (
                                    BTGRU,
                                    BTLSTM,
                                    CPGRU,
                                    CPLSTM,
                                    HTGRU,
                                    HTLSTM,
                                    TRGRU,
                                    TRLSTM,
                                    TTGRU,
                                    TTLSTM,
                                    BTSimpleRNN,
                                    CPSimpleRNN,
                                    HTSimpleRNN,
                                    TRSimpleRNN,
                                    TTSimpleRNN,
)

DENSE_LAYERS = (TTDense, TRDense, BTDense, CPDense, HTDense)
RECURRENT_LAYERS = (TTSimpleRNN, TTGRU, TTLSTM, TRSimpleRNN, TRGRU, TRLSTM, BTSimpleRNN, BTGRU, BTLSTM,
                    CPSimpleRNN, CPGRU, CPLSTM, HTSimpleRNN, HTGRU, HTLSTM)

__all__ = [cls.__name__ for cls in DENSE_LAYERS + RECURRENT_LAYERS] + ["PixelScaling", "hard_sigmoid"]
