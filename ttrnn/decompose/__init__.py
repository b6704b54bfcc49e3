"""Dense → format: the way back from a format's `full()`.

- `decompose(W, fmt)` (`ttrnn.decompose.matrices`, NumPy only): a dense `(prod n, prod m)` matrix as the
  factors of a `ttrnn.formats` format (TT-SVD, TR-SVD + TR-ALS, CP-ALS, block-term HOSVD, hierarchical SVD);
  `tr_als` the tensor-ring sweeps on their own.
- `ttrnn.decompose.tensorize` (Keras): a trained `keras.layers.Dense` / `SimpleRNN` / `GRU` / `LSTM` as the
  ttrnn layer of a format (`ttrnn.tensorize`, `ttrnn.tensorize_model`).

Importing this package does not start TensorFlow: the Keras half loads when `ttrnn.decompose.tensorize` is
imported.
"""

from ttrnn.decompose.matrices import decompose, full_ranks, interleaved, make_format, relative_error, tr_als

__all__ = ["decompose", "full_ranks", "make_format", "interleaved", "relative_error", "tr_als"]
