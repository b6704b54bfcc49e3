"""Docstrings of the public layers, assembled per format and cell by the registration loops
(`ttrnn.layers.recurrent`, `ttrnn.layers`)."""

_TT_ARGS_DOC = """
    Args:
        tt_input_shape: input modes `n`; `prod(n)` must equal the frame dimension `D`.
        tt_output_shape: output modes `m`; `units = prod(m)`.{gates}
        tt_ranks: `d + 1` ranks, `r_0 = r_d = 1`.
"""

_FORMAT_ARGS_DOC = """
    Args:
        input_modes: input modes `n`; `prod(n)` must equal the frame dimension `D`.
        output_modes: output modes `m`; `units = prod(m)`.{gates}
        ranks: an int or the format's rank list (`ttrnn.formats.<name>`); None = `formats.DEFAULT_RANKS`.
        blocks: block-term formats only: the number of terms (default 2).
"""

_ARGS_DOC = """
        preset: "modern" (default) or "paper"; sets the defaults of `kernel_initializer`,
            `recurrent_activation`, `reset_after` (GRU) and `shared_recurrent_dropout`. Explicit arguments win.
            - modern: `TTGlorotNormal` cores (dense equivalent has Glorot variance), sigmoid gates,
              `reset_after=True`, one recurrent-dropout mask per gate (as `keras.layers.GRU/LSTM`).
            - paper: what the original TT-RNN code (Keras 2 / Theano) computed: `FlatGlorotUniform` cores
              (Keras 2.0 glorot_uniform on the flat 1-D core vector: U(±sqrt(3/sqrt(L)))), Keras-1/2
              `hard_sigmoid` = clip(0.2x + 0.5, 0, 1) gates, GRU reset gate applied before the recurrent
              matmul (`reset_after=False`), and ONE recurrent-dropout mask (fixed per sequence) shared by all
              gates' recurrent matmuls. The original's input `dropout` argument had no effect (its mask was
              all ones); here `dropout` does what it says and both presets default it to 0. The original TT_GRU
              also added its bias twice (a 2x reparametrisation of a zero-initialised bias); not reproduced.
        activation, recurrent_activation, use_bias: as in Keras.
        kernel_initializer / kernel_regularizer / kernel_constraint: for the kernel's factors (each weight).
        recurrent_*, bias_*: as in Keras; `bias` has the Keras layout.
        dropout: input dropout, one mask per sequence on the raw frame, shared by all gates (the single TT
            matrix projects all gates at once, like Keras `implementation=2`).
        recurrent_dropout: variational dropout on the previous hidden state in the recurrent matmuls.
        shared_recurrent_dropout: one mask for all gates (paper) instead of one per gate (Keras).
        return_sequences, return_state, go_backwards: as in Keras (masked steps carry the state through and
            repeat the previous output, as Keras 3 with its default `zero_output_for_mask=False`).
        time_chunk: frames projected per TT contraction inside the scan (1 = per step, 0 = all frames before
            the recurrence). Only speed changes.
        recurrence: "fused" (default) runs the time loop with the backend's fast path when `time_chunk=0`
            (TensorFlow: `ttrnn.layers.fused_scan`, XLA-compiled loops with a hand-scheduled backward pass); "keras" runs
            Keras's loop (`keras.ops.scan`) under the backend's autodiff (the reference the fused loop is tested
            against; on JAX and PyTorch always). Only speed changes.
        projection_block: frames per block when whole uint8 clips are projected (`ttrnn.layers.kernel`: memory
            near the uint8 frames' size at any clip length); None = the measured default: batches of more than
            `WHOLE_BATCH_FRAMES` frames in blocks of `PROJECTION_BLOCK_FRAMES`, smaller ones whole; 0 = always
            the whole batch at once (a float copy of every frame of the batch lives during the contraction).
            Only memory and speed change.
        input_scale, input_shift: the layer sees `x * input_scale + input_shift` (default 1, 0). Lets raw uint8
            frames enter the layer, which casts and scales one time chunk at a time (the models use this for
            the pixel scaling: a float32 copy of a whole padded batch is 4x the uint8 frames).
        seed: seed for the dropout masks.
    Call: `layer(sequences, initial_state=None, mask=None, training=False)`, `sequences` `(batch, T, D)` float
    or uint8 (cast inside); `mask` `(batch, T)` bool (or from an upstream `keras.layers.Masking(0.0)`).
    Attributes: `factors` (the format's documented layout), `kernel_param_count` (kernel factors only),
    `full_kernel()`, `recurrent_kernel`, `bias`; TT layers also `tt_cores` and `tt_param_count`.
"""

_SIMPLE_DOC = """{name}: Elman RNN `h_t = activation(x_t W + h_{{t-1}} U + b)` with a {fmt} input kernel `W`; matches
    `keras.layers.SimpleRNN` given `full_kernel()`, `recurrent_kernel`, `bias`.
"""
_GRU_DOC = """{name}: GRU with a {fmt} input kernel (gates z, r, h); matches `keras.layers.GRU` with the same
    `reset_after` given `full_kernel()`, `recurrent_kernel`, `bias` (bias `(3U,)`, or `(2, 3U)` when
    `reset_after=True`, as Keras). Extra arg `reset_after`: None → preset (modern True, paper False).
"""
_LSTM_DOC = """{name}: LSTM with a {fmt} input kernel (gates i, f, c, o); matches `keras.layers.LSTM` given
    `full_kernel()`, `recurrent_kernel`, `bias` `(4U,)`. States `[h, c]`. Extra arg `unit_forget_bias`
    (default True).
"""
_FORMAT_NAMES = {"tt": "TT-matrix", "tr": "tensor-ring", "bt": "block-term Tucker", "cp": "CP",
                 "ht": "hierarchical-Tucker"}


_GATES = " The kernel's first output mode is `m_0 * gates`."
_DOCS = {"SimpleRNN": _SIMPLE_DOC, "GRU": _GRU_DOC, "LSTM": _LSTM_DOC}


def recurrent_doc(name, fmt, cell):
    """The docstring of the recurrent layer `name` (format `fmt`, cell "SimpleRNN" / "GRU" / "LSTM")."""
    head = _DOCS[cell].format(name=name, fmt=_FORMAT_NAMES[fmt])
    return head + (_TT_ARGS_DOC if fmt == "tt" else _FORMAT_ARGS_DOC).format(gates=_GATES) + _ARGS_DOC


_DENSE_DOC = """{name}: Dense layer `y = activation(x @ W + b)` with `W` `(prod n, prod m)` stored as a {fmt} matrix.
"""
_DENSE_ARGS_DOC = """        activation, use_bias, bias_*: as in `keras.layers.Dense`; the layer has `prod(m)` units.
        kernel_initializer: for the kernel's factors; default `TTGlorotNormal` (the dense equivalent has Glorot
            variance, for every format). A plain Keras initializer is applied to each factor separately.
        kernel_regularizer / kernel_constraint: applied to each factor.
    Input `(..., prod n)` float or uint8 (cast inside the first contraction); output `(..., prod m)`.
    Attributes: `factors`, `kernel_param_count`, `full_kernel()`, `bias`; `TTDense` also `tt_cores` and
    `tt_param_count`.
"""


def dense_doc(name, fmt):
    """The docstring of the Dense layer `name` (format `fmt`)."""
    args = (_TT_ARGS_DOC if fmt == "tt" else _FORMAT_ARGS_DOC).format(gates="")
    return _DENSE_DOC.format(name=name, fmt=_FORMAT_NAMES[fmt]) + args + _DENSE_ARGS_DOC
