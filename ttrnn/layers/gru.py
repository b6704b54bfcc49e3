"""Gated recurrent unit layers whose input kernel is a tensor format: `TTGRU` (the TT-GRU of Yang et al., ICML
2017), `TRGRU`, `BTGRU`, `CPGRU`, `HTGRU`.

Over 400 lines because it is five public classes, each written out with its whole docstring (as Keras's own
`keras/src/layers/rnn/gru.py`); the code they share is short and lives elsewhere: `FormatGRU` below (the cell and
its option), the loop `ttrnn.layers.recurrent.FormatRNN`, the step `ttrnn.layers.cells.GRUCell` and the format's
constructor arguments `ttrnn.layers.kernel.TTArguments` / `FormatArguments`.
"""

import keras

from ttrnn.layers.cells import GRUCell
from ttrnn.layers.kernel import FormatArguments, TTArguments
from ttrnn.layers.recurrent import FormatRNN


class FormatGRU(FormatRNN):
    """The GRU over any kernel format: `FormatRNN` with `ttrnn.layers.cells.GRUCell` (gates z, r, h; one state
    `h`). The public classes below put a format's constructor arguments in front of it and set `FORMAT`."""

    CELL = GRUCell
    GATES = GRUCell.GATES
    N_STATES = GRUCell.N_STATES

    @property
    def reset_after(self):
        """True: the reset gate multiplies the recurrent product `h_{t-1} U_h + b'_h` (cuDNN, Keras's default);
        False: it multiplies `h_{t-1}` before the product (the original TT-GRU). Read-only: a constructor argument."""
        return self.cell.reset_after


@keras.saving.register_keras_serializable(package="ttrnn")
class TTGRU(TTArguments, FormatGRU):
    """Gated recurrent unit whose input kernel is a TT-matrix: the TT-GRU of Yang et al. (ICML 2017).

    For each step `t` of a sequence of inputs `x_t` `(D,)`, with the input kernel `W = [W_z | W_r | W_h]`
    `(D, 3 units)`, the dense recurrent kernel `U = [U_z | U_r | U_h]` `(units, 3 units)` and the bias `b` (`sigma` is
    `recurrent_activation`, `phi` is `activation`):

        z_t = sigma(x_t W_z + h_{t-1} U_z + b_z)                        update gate
        r_t = sigma(x_t W_r + h_{t-1} U_r + b_r)                        reset gate
        g_t = phi(x_t W_h + (r_t * h_{t-1}) U_h + b_h)                  candidate, reset_after=False
        g_t = phi(x_t W_h + b_h + r_t * (h_{t-1} U_h + b'_h))           candidate, reset_after=True
        h_t = z_t * h_{t-1} + (1 - z_t) * g_t

    `W` is a TT-matrix (`ttrnn.formats.tt`): `d` cores `G_k` `(r_k, n_k, m_k, r_{k+1})`, `r_0 = r_d = 1`, and over
    row-major multi-indices

        W[(i_0..i_{d-1}), (j_0..j_{d-1})] = G_0[:, i_0, j_0, :] G_1[:, i_1, j_1, :] ... G_{d-1}[:, i_{d-1}, j_{d-1}, :]

    with `sum_k r_k n_k m_k r_{k+1}` parameters. The gates are folded into the kernel's first output mode (`3 m_0`), so
    the column blocks of `full_kernel()` are z, r, h in Keras's order: with `recurrent_kernel` and `bias` (`(3 units,)`,
    or `(2, 3 units)`, input and recurrent rows, when `reset_after=True`) they drop into `keras.layers.GRU` with the
    same `reset_after` (`set_weights`), which then computes the same outputs.

    Cost per step: `x_t W` is a chain of small matmuls over the factors (`ttrnn.formats.base.Format.matmul`,
    multiply-adds counted in `ttrnn.formats.tt`), not the `D * 3 units` of a dense kernel, and runs for all steps before
    the recurrence; then `h_{t-1} U`, `units * 3 units` (a factorized `U`, `recurrent_format`, is formed
    once per call, before the loop). `W` is never formed.

    Args:
        tt_input_shape: the input modes `n = (n_0, ..., n_{d-1})`; `prod(n)` must equal the input size `D`.
        tt_output_shape: the output modes `m`, as many as `n`; `units = prod(m)`.
        tt_ranks: the `d + 1` TT ranks `(r_0, ..., r_d)`, `r_0 = r_d = 1`.
        reset_after: where the reset gate applies (the equations above); None: the preset's (modern True, as cuDNN and
            Keras; paper False, as the original TT-GRU).
        preset: "modern" (default) or "paper": the defaults of `kernel_initializer`, `recurrent_activation`,
            `reset_after` and `shared_recurrent_dropout` (explicit arguments win). modern: `TTGlorotNormal` factors (the
            dense `W` has Glorot variance), sigmoid gates, `reset_after=True`, one recurrent-dropout mask per gate, as
            `keras.layers.GRU`. paper: what the original TT-RNN code (Keras 2 / Theano) computed: `FlatGlorotUniform`
            factors, Keras-1 `hard_sigmoid` gates, `reset_after=False`, one recurrent-dropout mask shared by the gates.
        activation: `phi` (default "tanh"; None: linear).
        recurrent_activation: `sigma`; None: the preset's (sigmoid, or Keras-1 `hard_sigmoid` `clip(0.2 x + 0.5, 0, 1)`:
            `ttrnn.layers.hard_sigmoid`).
        use_bias: whether the layer has the bias `b` (default True).
        kernel_initializer: for the kernel's factors; None: the preset's. A format-aware initializer
            (`ttrnn.tt.TTGlorotNormal`, `ttrnn.tt.FlatGlorotUniform`) scales the factors for the format; any other Keras
            initializer is applied to each factor on its own.
        recurrent_initializer: for `recurrent_kernel`; None: "orthogonal", as Keras (dense `U`), or the preset's
            format-aware `kernel_initializer` (factorized `U`: `recurrent_format`).
        bias_initializer: for `bias` (default "zeros").
        kernel_regularizer, kernel_constraint: applied to each factor of the kernel.
        recurrent_regularizer, recurrent_constraint: for `recurrent_kernel` (each of its factors if factorized).
        bias_regularizer, bias_constraint: for `bias`.
        activity_regularizer: on the layer's output.
        dropout: input dropout rate in [0, 1): one mask per sequence on the input values, shared by the gates (one
            kernel projects them all, as Keras's `implementation=2`).
        recurrent_dropout: rate in [0, 1) of variational dropout on `h_{t-1}` in the recurrent matmul, one mask per
            sequence.
        shared_recurrent_dropout: one recurrent mask shared by the gates (paper) or one per gate (modern, Keras); None:
            the preset's.
        return_sequences: return every step's output `(batch, T, units)`, not only the last `(batch, units)`.
        return_state: also return the final state `h`.
        go_backwards: process the sequence in reverse (and return the outputs reversed, as Keras).
        stateful: keep each call's final states in variables (`states`) and start the next call from them, the sample
            at index i of a batch continuing the one at index i of the previous batch (as `keras.layers.RNN`): the
            batch size must be static when the layer is built (e.g. `keras.Input(..., batch_size=B)`) and the same
            in every call; `reset_state()` zeroes the states. For long sequences fed chunk by chunk (a video as it
            plays: `ttrnn.models.stateful_copy`). On TensorFlow the same fused loop runs, from the variables' states.
        unroll: write the time loop out step by step, as Keras (the sequences then need a static length); only speed
            and memory change (no loop op: faster for a few steps, memory and graph grow with them).
        zero_output_for_mask: with a mask, a masked step outputs zeros (its states are still carried through), as
            Keras, also in the last-step output when the last step is masked; False (default): it repeats the
            previous output.
        implementation: Keras's 1 (one matmul per gate) or 2 (one for all gates), or the legacy 0: accepted, saved,
            and without effect (only speed differs in Keras): the kernel here always projects every gate at once.
        time_chunk: inputs projected per contraction inside the time loop (1: one step at a time); 0 (default): all
            steps before the recurrence. Only speed and memory change.
        recurrence: "fused" (default): with `time_chunk=0` on TensorFlow, the time loop of `ttrnn.layers.fused_scan`
            (XLA loops, hand-scheduled backward pass); "keras": Keras's loop (`keras.ops.scan`), which the other
            backends always run. Only speed changes.
        projection_dtype: None or "float32"; "bfloat16": the first contraction of integer inputs in bfloat16.
        projection_block: frames per block when whole uint8 clips are projected (`ttrnn.layers.kernel`: memory near the
            clips' own size however long they are); None: blocks of `PROJECTION_BLOCK_FRAMES` for batches of more than
            `WHOLE_BATCH_FRAMES` frames, smaller ones whole; 0: always whole.
        input_scale, input_shift: the layer sees `x * input_scale + input_shift` (default 1 and 0), so raw uint8 frames
            can enter it (where the paper models apply their pixel scaling).
        seed: seed of the dropout masks.
        recurrent_format: None (default): `U` is one dense weight, `(units, 3 units)`; or a format name of
            `ttrnn.formats.FORMAT_NAMES`: `U` factorized in that format, with the gates folded into its first output
            mode as in `W`. The time loop runs on the dense `U` as ever (fused scan, Keras's loop, unroll, stateful,
            export): it is reconstructed once per call (`Format.full`: about `units * 3 units * rank` multiply-adds,
            against `T * batch * units * 3 units` for the recurrence), and the gradient flows through the
            reconstruction into the factors.
        recurrent_input_modes, recurrent_output_modes: `U`'s modes, each multiplying to `units` (e.g. 4x4x4x4 ->
            4x4x4x4, folded to 3·4x4x4x4); None: `tt_output_shape` both.
        recurrent_ranks: `U`'s ranks, as the format's `ranks`; None: `ttrnn.formats.DEFAULT_RANKS`.
        recurrent_blocks: `U`'s blocks (bt only; None: `ttrnn.formats.DEFAULT_BLOCKS`).
        integrated: True: integrate-then-decompose (FDHT, Yin et al., CVPR 2021): one factorized matrix `V` over
            `[x_t, h_{t-1}]` for all gates, in this layer's format, its input modes `tt_input_shape` multiplying to
            `N >= D + units`: rows `[0, D)` are `W`, rows `[D, D + units)` are `U`, the rest padding (never read; for
            a `D + units` without even factors). The input part is `[x_t, 0] @ V` through the factors (uint8 frames
            and the bounded projection included); `U` is rows `[D, D + units)` of `V`, formed once per call
            (`Format.rows`). `recurrent_format` must be None, and `recurrent_initializer`, `recurrent_regularizer`,
            `recurrent_constraint` do not apply (the `kernel_*` ones cover `V`).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        sequences: `(batch, T, D)` inputs, float or uint8 (integer inputs are cast inside the first contraction, which
            keeps no float copy of them).
        initial_state: None (zeros, or a stateful layer's `states`) or `[h]`, each `(batch, units)`.
        mask: `(batch, T)` bool, False for the steps to skip (or from an upstream `keras.layers.Masking`): a skipped
            step carries the state through and repeats the previous output, as Keras.
        training: whether dropout applies.

    Returns:
        `(batch, units)`, or `(batch, T, units)` with `return_sequences`; with `return_state` the list `[output, h]`,
        each state `(batch, units)`.

    Attributes:
        units: `prod(m)`.
        kernel_format: the kernel's `ttrnn.formats` object (first output mode `3 m_0`).
        kernel_param_count: the number of the kernel's parameters (what the paper's "# Parameters" column counts).
        factors: the kernel's weights in the format's documented layout.
        full_kernel(): the dense `W` (integrated: rows `[0, D)` of the one matrix) `(D, 3 units)`.
        recurrent_kernel: `U` `(units, 3 units)`, dense: the weight, or reconstructed from its factors
            (`recurrent_format`) or from the integrated matrix's rows `[D, D + units)`.
        recurrent_factors: `U`'s factors in its format's layout (`recurrent_format`), else None.
        recurrent_kernel_format, recurrent_param_count: `U`'s `ttrnn.formats` object (or None) and its number of
            parameters (dense: `units * 3 units`; integrated: 0, they are in `kernel_param_count`).
        bias: `b` in Keras's layout.
        states, reset_state(): a stateful layer's state variables (`[h]`) and their reset to zeros.
        tt_cores, tt_param_count: the cores `G_k` (the same list as `factors`) and `kernel_param_count`.
        reset_after: the cell's option (read-only).

    References:
        Y. Yang, D. Krompass, V. Tresp. Tensor-Train Recurrent Neural Networks for Video Classification. ICML 2017
            (arXiv:1707.01786).
        I. Oseledets. Tensor-Train Decomposition. SIAM J. Sci. Comput. 33(5), 2011 (the format).

    Example (UCF11 frames, 160 x 120 x 3 = 57,600 values, to 256 units):

    >>> import numpy as np
    >>> import ttrnn
    >>> layer = ttrnn.TTGRU(tt_input_shape=[8, 20, 20, 18], tt_output_shape=[4, 4, 4, 4],
    ...                     tt_ranks=[1, 4, 4, 4, 1])
    >>> layer.kernel_param_count
    3232
    >>> frames = np.zeros((2, 10, 57600), "uint8")            # (batch, T, D)
    >>> tuple(layer(frames).shape)
    (2, 256)
    """

    FORMAT = "tt"


@keras.saving.register_keras_serializable(package="ttrnn")
class TRGRU(FormatArguments, FormatGRU):
    """Gated recurrent unit whose input kernel is a tensor ring (TR-RNN, Pan et al., AAAI 2019).

    For each step `t` of a sequence of inputs `x_t` `(D,)`, with the input kernel `W = [W_z | W_r | W_h]`
    `(D, 3 units)`, the dense recurrent kernel `U = [U_z | U_r | U_h]` `(units, 3 units)` and the bias `b` (`sigma` is
    `recurrent_activation`, `phi` is `activation`):

        z_t = sigma(x_t W_z + h_{t-1} U_z + b_z)                        update gate
        r_t = sigma(x_t W_r + h_{t-1} U_r + b_r)                        reset gate
        g_t = phi(x_t W_h + (r_t * h_{t-1}) U_h + b_h)                  candidate, reset_after=False
        g_t = phi(x_t W_h + b_h + r_t * (h_{t-1} U_h + b'_h))           candidate, reset_after=True
        h_t = z_t * h_{t-1} + (1 - z_t) * g_t

    `W` is a tensor ring (`ttrnn.formats.tr`): `2d` cores `Z_k` `(r_k, dim_k, r_{k+1})` over
    `dim = (n_0, ..., n_{d-1}, m_0, ..., m_{d-1})`, the ring closed (`r_{2d} = r_0`), and

        W[(i_0..i_{d-1}), (j_0..j_{d-1})] = trace(Z_0[:, i_0, :] ... Z_{d-1}[:, i_{d-1}, :]
                                                  Z_d[:, j_0, :] ... Z_{2d-1}[:, j_{d-1}, :])

    with `sum_k r_k dim_k r_{k+1}` parameters. The gates are folded into the kernel's first output mode (`3 m_0`), so
    the column blocks of `full_kernel()` are z, r, h in Keras's order: with `recurrent_kernel` and `bias` (`(3 units,)`,
    or `(2, 3 units)`, input and recurrent rows, when `reset_after=True`) they drop into `keras.layers.GRU` with the
    same `reset_after` (`set_weights`), which then computes the same outputs.

    Cost per step: `x_t W` is a chain of small matmuls over the factors (`ttrnn.formats.base.Format.matmul`,
    multiply-adds counted in `ttrnn.formats.tt`), not the `D * 3 units` of a dense kernel, and runs for all steps before
    the recurrence; then `h_{t-1} U`, `units * 3 units` (a factorized `U`, `recurrent_format`, is formed
    once per call, before the loop). `W` is never formed.

    Args:
        input_modes: the input modes `n = (n_0, ..., n_{d-1})`; `prod(n)` must equal the input size `D`.
        output_modes: the output modes `m`, as many as `n`; `units = prod(m)`.
        ranks: an int R (every ring rank) or the `2d` ring ranks `(r_0, ..., r_{2d-1})`; None:
            `ttrnn.formats.DEFAULT_RANKS["tr"]` (6).
        blocks: must be None (the block-term format's argument).
        reset_after: where the reset gate applies (the equations above); None: the preset's (modern True, as cuDNN and
            Keras; paper False, as the original TT-GRU).
        preset: "modern" (default) or "paper": the defaults of `kernel_initializer`, `recurrent_activation`,
            `reset_after` and `shared_recurrent_dropout` (explicit arguments win). modern: `TTGlorotNormal` factors (the
            dense `W` has Glorot variance), sigmoid gates, `reset_after=True`, one recurrent-dropout mask per gate, as
            `keras.layers.GRU`. paper: what the original TT-RNN code (Keras 2 / Theano) computed: `FlatGlorotUniform`
            factors, Keras-1 `hard_sigmoid` gates, `reset_after=False`, one recurrent-dropout mask shared by the gates.
        activation: `phi` (default "tanh"; None: linear).
        recurrent_activation: `sigma`; None: the preset's (sigmoid, or Keras-1 `hard_sigmoid` `clip(0.2 x + 0.5, 0, 1)`:
            `ttrnn.layers.hard_sigmoid`).
        use_bias: whether the layer has the bias `b` (default True).
        kernel_initializer: for the kernel's factors; None: the preset's. A format-aware initializer
            (`ttrnn.tt.TTGlorotNormal`, `ttrnn.tt.FlatGlorotUniform`) scales the factors for the format; any other Keras
            initializer is applied to each factor on its own.
        recurrent_initializer: for `recurrent_kernel`; None: "orthogonal", as Keras (dense `U`), or the preset's
            format-aware `kernel_initializer` (factorized `U`: `recurrent_format`).
        bias_initializer: for `bias` (default "zeros").
        kernel_regularizer, kernel_constraint: applied to each factor of the kernel.
        recurrent_regularizer, recurrent_constraint: for `recurrent_kernel` (each of its factors if factorized).
        bias_regularizer, bias_constraint: for `bias`.
        activity_regularizer: on the layer's output.
        dropout: input dropout rate in [0, 1): one mask per sequence on the input values, shared by the gates (one
            kernel projects them all, as Keras's `implementation=2`).
        recurrent_dropout: rate in [0, 1) of variational dropout on `h_{t-1}` in the recurrent matmul, one mask per
            sequence.
        shared_recurrent_dropout: one recurrent mask shared by the gates (paper) or one per gate (modern, Keras); None:
            the preset's.
        return_sequences: return every step's output `(batch, T, units)`, not only the last `(batch, units)`.
        return_state: also return the final state `h`.
        go_backwards: process the sequence in reverse (and return the outputs reversed, as Keras).
        stateful: keep each call's final states in variables (`states`) and start the next call from them, the sample
            at index i of a batch continuing the one at index i of the previous batch (as `keras.layers.RNN`): the
            batch size must be static when the layer is built (e.g. `keras.Input(..., batch_size=B)`) and the same
            in every call; `reset_state()` zeroes the states. For long sequences fed chunk by chunk (a video as it
            plays: `ttrnn.models.stateful_copy`). On TensorFlow the same fused loop runs, from the variables' states.
        unroll: write the time loop out step by step, as Keras (the sequences then need a static length); only speed
            and memory change (no loop op: faster for a few steps, memory and graph grow with them).
        zero_output_for_mask: with a mask, a masked step outputs zeros (its states are still carried through), as
            Keras, also in the last-step output when the last step is masked; False (default): it repeats the
            previous output.
        implementation: Keras's 1 (one matmul per gate) or 2 (one for all gates), or the legacy 0: accepted, saved,
            and without effect (only speed differs in Keras): the kernel here always projects every gate at once.
        time_chunk: inputs projected per contraction inside the time loop (1: one step at a time); 0 (default): all
            steps before the recurrence. Only speed and memory change.
        recurrence: "fused" (default): with `time_chunk=0` on TensorFlow, the time loop of `ttrnn.layers.fused_scan`
            (XLA loops, hand-scheduled backward pass); "keras": Keras's loop (`keras.ops.scan`), which the other
            backends always run. Only speed changes.
        projection_dtype: None or "float32"; "bfloat16": the first contraction of integer inputs in bfloat16.
        projection_block: frames per block when whole uint8 clips are projected (`ttrnn.layers.kernel`: memory near the
            clips' own size however long they are); None: blocks of `PROJECTION_BLOCK_FRAMES` for batches of more than
            `WHOLE_BATCH_FRAMES` frames, smaller ones whole; 0: always whole.
        input_scale, input_shift: the layer sees `x * input_scale + input_shift` (default 1 and 0), so raw uint8 frames
            can enter it (where the paper models apply their pixel scaling).
        seed: seed of the dropout masks.
        recurrent_format: None (default): `U` is one dense weight, `(units, 3 units)`; or a format name of
            `ttrnn.formats.FORMAT_NAMES`: `U` factorized in that format, with the gates folded into its first output
            mode as in `W`. The time loop runs on the dense `U` as ever (fused scan, Keras's loop, unroll, stateful,
            export): it is reconstructed once per call (`Format.full`: about `units * 3 units * rank` multiply-adds,
            against `T * batch * units * 3 units` for the recurrence), and the gradient flows through the
            reconstruction into the factors.
        recurrent_input_modes, recurrent_output_modes: `U`'s modes, each multiplying to `units` (e.g. 4x4x4x4 ->
            4x4x4x4, folded to 3·4x4x4x4); None: `output_modes` both.
        recurrent_ranks: `U`'s ranks, as the format's `ranks`; None: `ttrnn.formats.DEFAULT_RANKS`.
        recurrent_blocks: `U`'s blocks (bt only; None: `ttrnn.formats.DEFAULT_BLOCKS`).
        integrated: True: integrate-then-decompose (FDHT, Yin et al., CVPR 2021): one factorized matrix `V` over
            `[x_t, h_{t-1}]` for all gates, in this layer's format, its input modes `input_modes` multiplying to
            `N >= D + units`: rows `[0, D)` are `W`, rows `[D, D + units)` are `U`, the rest padding (never read; for
            a `D + units` without even factors). The input part is `[x_t, 0] @ V` through the factors (uint8 frames
            and the bounded projection included); `U` is rows `[D, D + units)` of `V`, formed once per call
            (`Format.rows`). `recurrent_format` must be None, and `recurrent_initializer`, `recurrent_regularizer`,
            `recurrent_constraint` do not apply (the `kernel_*` ones cover `V`).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        sequences: `(batch, T, D)` inputs, float or uint8 (integer inputs are cast inside the first contraction, which
            keeps no float copy of them).
        initial_state: None (zeros, or a stateful layer's `states`) or `[h]`, each `(batch, units)`.
        mask: `(batch, T)` bool, False for the steps to skip (or from an upstream `keras.layers.Masking`): a skipped
            step carries the state through and repeats the previous output, as Keras.
        training: whether dropout applies.

    Returns:
        `(batch, units)`, or `(batch, T, units)` with `return_sequences`; with `return_state` the list `[output, h]`,
        each state `(batch, units)`.

    Attributes:
        units: `prod(m)`.
        kernel_format: the kernel's `ttrnn.formats` object (first output mode `3 m_0`).
        kernel_param_count: the number of the kernel's parameters (what the paper's "# Parameters" column counts).
        factors: the kernel's weights in the format's documented layout.
        full_kernel(): the dense `W` (integrated: rows `[0, D)` of the one matrix) `(D, 3 units)`.
        recurrent_kernel: `U` `(units, 3 units)`, dense: the weight, or reconstructed from its factors
            (`recurrent_format`) or from the integrated matrix's rows `[D, D + units)`.
        recurrent_factors: `U`'s factors in its format's layout (`recurrent_format`), else None.
        recurrent_kernel_format, recurrent_param_count: `U`'s `ttrnn.formats` object (or None) and its number of
            parameters (dense: `units * 3 units`; integrated: 0, they are in `kernel_param_count`).
        bias: `b` in Keras's layout.
        states, reset_state(): a stateful layer's state variables (`[h]`) and their reset to zeros.
        reset_after: the cell's option (read-only).

    References:
        Y. Pan et al. Compressing Recurrent Neural Networks with Tensor Ring for Action Recognition. AAAI 2019
            (TR-LSTM).
        Q. Zhao et al. Tensor Ring Decomposition. arXiv:1606.05535, 2016 (the format).

    Example (UCF11 frames, 160 x 120 x 3 = 57,600 values, to 256 units):

    >>> import numpy as np
    >>> import ttrnn
    >>> layer = ttrnn.TRGRU(input_modes=[8, 20, 20, 18], output_modes=[4, 4, 4, 4],
    ...                     ranks=6)
    >>> layer.kernel_param_count
    3240
    >>> frames = np.zeros((2, 10, 57600), "uint8")            # (batch, T, D)
    >>> tuple(layer(frames).shape)
    (2, 256)
    """

    FORMAT = "tr"


@keras.saving.register_keras_serializable(package="ttrnn")
class BTGRU(FormatArguments, FormatGRU):
    """Gated recurrent unit whose input kernel is a sum of block terms (BT-RNN, Ye et al., CVPR 2018).

    For each step `t` of a sequence of inputs `x_t` `(D,)`, with the input kernel `W = [W_z | W_r | W_h]`
    `(D, 3 units)`, the dense recurrent kernel `U = [U_z | U_r | U_h]` `(units, 3 units)` and the bias `b` (`sigma` is
    `recurrent_activation`, `phi` is `activation`):

        z_t = sigma(x_t W_z + h_{t-1} U_z + b_z)                        update gate
        r_t = sigma(x_t W_r + h_{t-1} U_r + b_r)                        reset gate
        g_t = phi(x_t W_h + (r_t * h_{t-1}) U_h + b_h)                  candidate, reset_after=False
        g_t = phi(x_t W_h + b_h + r_t * (h_{t-1} U_h + b'_h))           candidate, reset_after=True
        h_t = z_t * h_{t-1} + (1 - z_t) * g_t

    `W` is a sum of block terms (`ttrnn.formats.bt`): `blocks` Tucker terms, each a core `C_b` `(R_0, ..., R_{d-1})` and
    factors `A_bk` `(n_k, m_k, R_k)`, and

        W[(i_0..i_{d-1}), (j_0..j_{d-1})] = sum_b sum_s C_b[s_0, ..., s_{d-1}] prod_k A_bk[i_k, j_k, s_k]

    with `blocks * (sum_k n_k m_k R_k + prod_k R_k)` parameters. The gates are folded into the kernel's first output
    mode (`3 m_0`), so the column blocks of `full_kernel()` are z, r, h in Keras's order: with `recurrent_kernel` and
    `bias` (`(3 units,)`, or `(2, 3 units)`, input and recurrent rows, when `reset_after=True`) they drop into
    `keras.layers.GRU` with the same `reset_after` (`set_weights`), which then computes the same outputs.

    Cost per step: `x_t W` is a chain of small matmuls over the factors (`ttrnn.formats.base.Format.matmul`,
    multiply-adds counted in `ttrnn.formats.tt`), not the `D * 3 units` of a dense kernel, and runs for all steps before
    the recurrence; then `h_{t-1} U`, `units * 3 units` (a factorized `U`, `recurrent_format`, is formed
    once per call, before the loop). `W` is never formed.

    Args:
        input_modes: the input modes `n = (n_0, ..., n_{d-1})` (at least 2); `prod(n)` must equal the input size `D`.
        output_modes: the output modes `m`, as many as `n`; `units = prod(m)`.
        ranks: an int R or the `d` Tucker ranks `(R_0, ..., R_{d-1})`, shared by the blocks; None:
            `ttrnn.formats.DEFAULT_RANKS["bt"]` (4).
        blocks: the number of block terms; None: `ttrnn.formats.DEFAULT_BLOCKS` (2).
        reset_after: where the reset gate applies (the equations above); None: the preset's (modern True, as cuDNN and
            Keras; paper False, as the original TT-GRU).
        preset: "modern" (default) or "paper": the defaults of `kernel_initializer`, `recurrent_activation`,
            `reset_after` and `shared_recurrent_dropout` (explicit arguments win). modern: `TTGlorotNormal` factors (the
            dense `W` has Glorot variance), sigmoid gates, `reset_after=True`, one recurrent-dropout mask per gate, as
            `keras.layers.GRU`. paper: what the original TT-RNN code (Keras 2 / Theano) computed: `FlatGlorotUniform`
            factors, Keras-1 `hard_sigmoid` gates, `reset_after=False`, one recurrent-dropout mask shared by the gates.
        activation: `phi` (default "tanh"; None: linear).
        recurrent_activation: `sigma`; None: the preset's (sigmoid, or Keras-1 `hard_sigmoid` `clip(0.2 x + 0.5, 0, 1)`:
            `ttrnn.layers.hard_sigmoid`).
        use_bias: whether the layer has the bias `b` (default True).
        kernel_initializer: for the kernel's factors; None: the preset's. A format-aware initializer
            (`ttrnn.tt.TTGlorotNormal`, `ttrnn.tt.FlatGlorotUniform`) scales the factors for the format; any other Keras
            initializer is applied to each factor on its own.
        recurrent_initializer: for `recurrent_kernel`; None: "orthogonal", as Keras (dense `U`), or the preset's
            format-aware `kernel_initializer` (factorized `U`: `recurrent_format`).
        bias_initializer: for `bias` (default "zeros").
        kernel_regularizer, kernel_constraint: applied to each factor of the kernel.
        recurrent_regularizer, recurrent_constraint: for `recurrent_kernel` (each of its factors if factorized).
        bias_regularizer, bias_constraint: for `bias`.
        activity_regularizer: on the layer's output.
        dropout: input dropout rate in [0, 1): one mask per sequence on the input values, shared by the gates (one
            kernel projects them all, as Keras's `implementation=2`).
        recurrent_dropout: rate in [0, 1) of variational dropout on `h_{t-1}` in the recurrent matmul, one mask per
            sequence.
        shared_recurrent_dropout: one recurrent mask shared by the gates (paper) or one per gate (modern, Keras); None:
            the preset's.
        return_sequences: return every step's output `(batch, T, units)`, not only the last `(batch, units)`.
        return_state: also return the final state `h`.
        go_backwards: process the sequence in reverse (and return the outputs reversed, as Keras).
        stateful: keep each call's final states in variables (`states`) and start the next call from them, the sample
            at index i of a batch continuing the one at index i of the previous batch (as `keras.layers.RNN`): the
            batch size must be static when the layer is built (e.g. `keras.Input(..., batch_size=B)`) and the same
            in every call; `reset_state()` zeroes the states. For long sequences fed chunk by chunk (a video as it
            plays: `ttrnn.models.stateful_copy`). On TensorFlow the same fused loop runs, from the variables' states.
        unroll: write the time loop out step by step, as Keras (the sequences then need a static length); only speed
            and memory change (no loop op: faster for a few steps, memory and graph grow with them).
        zero_output_for_mask: with a mask, a masked step outputs zeros (its states are still carried through), as
            Keras, also in the last-step output when the last step is masked; False (default): it repeats the
            previous output.
        implementation: Keras's 1 (one matmul per gate) or 2 (one for all gates), or the legacy 0: accepted, saved,
            and without effect (only speed differs in Keras): the kernel here always projects every gate at once.
        time_chunk: inputs projected per contraction inside the time loop (1: one step at a time); 0 (default): all
            steps before the recurrence. Only speed and memory change.
        recurrence: "fused" (default): with `time_chunk=0` on TensorFlow, the time loop of `ttrnn.layers.fused_scan`
            (XLA loops, hand-scheduled backward pass); "keras": Keras's loop (`keras.ops.scan`), which the other
            backends always run. Only speed changes.
        projection_dtype: None or "float32"; "bfloat16": the first contraction of integer inputs in bfloat16.
        projection_block: frames per block when whole uint8 clips are projected (`ttrnn.layers.kernel`: memory near the
            clips' own size however long they are); None: blocks of `PROJECTION_BLOCK_FRAMES` for batches of more than
            `WHOLE_BATCH_FRAMES` frames, smaller ones whole; 0: always whole.
        input_scale, input_shift: the layer sees `x * input_scale + input_shift` (default 1 and 0), so raw uint8 frames
            can enter it (where the paper models apply their pixel scaling).
        seed: seed of the dropout masks.
        recurrent_format: None (default): `U` is one dense weight, `(units, 3 units)`; or a format name of
            `ttrnn.formats.FORMAT_NAMES`: `U` factorized in that format, with the gates folded into its first output
            mode as in `W`. The time loop runs on the dense `U` as ever (fused scan, Keras's loop, unroll, stateful,
            export): it is reconstructed once per call (`Format.full`: about `units * 3 units * rank` multiply-adds,
            against `T * batch * units * 3 units` for the recurrence), and the gradient flows through the
            reconstruction into the factors.
        recurrent_input_modes, recurrent_output_modes: `U`'s modes, each multiplying to `units` (e.g. 4x4x4x4 ->
            4x4x4x4, folded to 3·4x4x4x4); None: `output_modes` both.
        recurrent_ranks: `U`'s ranks, as the format's `ranks`; None: `ttrnn.formats.DEFAULT_RANKS`.
        recurrent_blocks: `U`'s blocks (bt only; None: `ttrnn.formats.DEFAULT_BLOCKS`).
        integrated: True: integrate-then-decompose (FDHT, Yin et al., CVPR 2021): one factorized matrix `V` over
            `[x_t, h_{t-1}]` for all gates, in this layer's format, its input modes `input_modes` multiplying to
            `N >= D + units`: rows `[0, D)` are `W`, rows `[D, D + units)` are `U`, the rest padding (never read; for
            a `D + units` without even factors). The input part is `[x_t, 0] @ V` through the factors (uint8 frames
            and the bounded projection included); `U` is rows `[D, D + units)` of `V`, formed once per call
            (`Format.rows`). `recurrent_format` must be None, and `recurrent_initializer`, `recurrent_regularizer`,
            `recurrent_constraint` do not apply (the `kernel_*` ones cover `V`).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        sequences: `(batch, T, D)` inputs, float or uint8 (integer inputs are cast inside the first contraction, which
            keeps no float copy of them).
        initial_state: None (zeros, or a stateful layer's `states`) or `[h]`, each `(batch, units)`.
        mask: `(batch, T)` bool, False for the steps to skip (or from an upstream `keras.layers.Masking`): a skipped
            step carries the state through and repeats the previous output, as Keras.
        training: whether dropout applies.

    Returns:
        `(batch, units)`, or `(batch, T, units)` with `return_sequences`; with `return_state` the list `[output, h]`,
        each state `(batch, units)`.

    Attributes:
        units: `prod(m)`.
        kernel_format: the kernel's `ttrnn.formats` object (first output mode `3 m_0`).
        kernel_param_count: the number of the kernel's parameters (what the paper's "# Parameters" column counts).
        factors: the kernel's weights in the format's documented layout.
        full_kernel(): the dense `W` (integrated: rows `[0, D)` of the one matrix) `(D, 3 units)`.
        recurrent_kernel: `U` `(units, 3 units)`, dense: the weight, or reconstructed from its factors
            (`recurrent_format`) or from the integrated matrix's rows `[D, D + units)`.
        recurrent_factors: `U`'s factors in its format's layout (`recurrent_format`), else None.
        recurrent_kernel_format, recurrent_param_count: `U`'s `ttrnn.formats` object (or None) and its number of
            parameters (dense: `units * 3 units`; integrated: 0, they are in `kernel_param_count`).
        bias: `b` in Keras's layout.
        states, reset_state(): a stateful layer's state variables (`[h]`) and their reset to zeros.
        reset_after: the cell's option (read-only).

    References:
        J. Ye et al. Learning Compact Recurrent Neural Networks with Block-Term Tensor Decomposition. CVPR 2018
            (BT-LSTM).
        L. De Lathauwer. Decompositions of a Higher-Order Tensor in Block Terms. SIAM J. Matrix Anal. Appl. 30(3), 2008
            (the format).

    Example (UCF11 frames, 160 x 120 x 3 = 57,600 values, to 256 units):

    >>> import numpy as np
    >>> import ttrnn
    >>> layer = ttrnn.BTGRU(input_modes=[8, 20, 20, 18], output_modes=[4, 4, 4, 4],
    ...                     ranks=4, blocks=2)
    >>> layer.kernel_param_count
    3136
    >>> frames = np.zeros((2, 10, 57600), "uint8")            # (batch, T, D)
    >>> tuple(layer(frames).shape)
    (2, 256)
    """

    FORMAT = "bt"


@keras.saving.register_keras_serializable(package="ttrnn")
class CPGRU(FormatArguments, FormatGRU):
    """Gated recurrent unit whose input kernel is a CP (canonical polyadic) decomposition.

    For each step `t` of a sequence of inputs `x_t` `(D,)`, with the input kernel `W = [W_z | W_r | W_h]`
    `(D, 3 units)`, the dense recurrent kernel `U = [U_z | U_r | U_h]` `(units, 3 units)` and the bias `b` (`sigma` is
    `recurrent_activation`, `phi` is `activation`):

        z_t = sigma(x_t W_z + h_{t-1} U_z + b_z)                        update gate
        r_t = sigma(x_t W_r + h_{t-1} U_r + b_r)                        reset gate
        g_t = phi(x_t W_h + (r_t * h_{t-1}) U_h + b_h)                  candidate, reset_after=False
        g_t = phi(x_t W_h + b_h + r_t * (h_{t-1} U_h + b'_h))           candidate, reset_after=True
        h_t = z_t * h_{t-1} + (1 - z_t) * g_t

    `W` is a CP decomposition of rank R (`ttrnn.formats.cp`): weights `w` `(R,)` and factors `A_k` `(n_k, m_k, R)`, and

        W[(i_0..i_{d-1}), (j_0..j_{d-1})] = sum_s w_s prod_k A_k[i_k, j_k, s]

    with `R (1 + sum_k n_k m_k)` parameters. The gates are folded into the kernel's first output mode (`3 m_0`), so the
    column blocks of `full_kernel()` are z, r, h in Keras's order: with `recurrent_kernel` and `bias` (`(3 units,)`, or
    `(2, 3 units)`, input and recurrent rows, when `reset_after=True`) they drop into `keras.layers.GRU` with the same
    `reset_after` (`set_weights`), which then computes the same outputs.

    Cost per step: `x_t W` is a chain of small matmuls over the factors (`ttrnn.formats.base.Format.matmul`,
    multiply-adds counted in `ttrnn.formats.tt`), not the `D * 3 units` of a dense kernel, and runs for all steps before
    the recurrence; then `h_{t-1} U`, `units * 3 units` (a factorized `U`, `recurrent_format`, is formed
    once per call, before the loop). `W` is never formed.

    Args:
        input_modes: the input modes `n = (n_0, ..., n_{d-1})` (at least 2); `prod(n)` must equal the input size `D`.
        output_modes: the output modes `m`, as many as `n`; `units = prod(m)`.
        ranks: the CP rank R (an int or `[R]`); None: `ttrnn.formats.DEFAULT_RANKS["cp"]` (9).
        blocks: must be None (the block-term format's argument).
        reset_after: where the reset gate applies (the equations above); None: the preset's (modern True, as cuDNN and
            Keras; paper False, as the original TT-GRU).
        preset: "modern" (default) or "paper": the defaults of `kernel_initializer`, `recurrent_activation`,
            `reset_after` and `shared_recurrent_dropout` (explicit arguments win). modern: `TTGlorotNormal` factors (the
            dense `W` has Glorot variance), sigmoid gates, `reset_after=True`, one recurrent-dropout mask per gate, as
            `keras.layers.GRU`. paper: what the original TT-RNN code (Keras 2 / Theano) computed: `FlatGlorotUniform`
            factors, Keras-1 `hard_sigmoid` gates, `reset_after=False`, one recurrent-dropout mask shared by the gates.
        activation: `phi` (default "tanh"; None: linear).
        recurrent_activation: `sigma`; None: the preset's (sigmoid, or Keras-1 `hard_sigmoid` `clip(0.2 x + 0.5, 0, 1)`:
            `ttrnn.layers.hard_sigmoid`).
        use_bias: whether the layer has the bias `b` (default True).
        kernel_initializer: for the kernel's factors; None: the preset's. A format-aware initializer
            (`ttrnn.tt.TTGlorotNormal`, `ttrnn.tt.FlatGlorotUniform`) scales the factors for the format; any other Keras
            initializer is applied to each factor on its own.
        recurrent_initializer: for `recurrent_kernel`; None: "orthogonal", as Keras (dense `U`), or the preset's
            format-aware `kernel_initializer` (factorized `U`: `recurrent_format`).
        bias_initializer: for `bias` (default "zeros").
        kernel_regularizer, kernel_constraint: applied to each factor of the kernel.
        recurrent_regularizer, recurrent_constraint: for `recurrent_kernel` (each of its factors if factorized).
        bias_regularizer, bias_constraint: for `bias`.
        activity_regularizer: on the layer's output.
        dropout: input dropout rate in [0, 1): one mask per sequence on the input values, shared by the gates (one
            kernel projects them all, as Keras's `implementation=2`).
        recurrent_dropout: rate in [0, 1) of variational dropout on `h_{t-1}` in the recurrent matmul, one mask per
            sequence.
        shared_recurrent_dropout: one recurrent mask shared by the gates (paper) or one per gate (modern, Keras); None:
            the preset's.
        return_sequences: return every step's output `(batch, T, units)`, not only the last `(batch, units)`.
        return_state: also return the final state `h`.
        go_backwards: process the sequence in reverse (and return the outputs reversed, as Keras).
        stateful: keep each call's final states in variables (`states`) and start the next call from them, the sample
            at index i of a batch continuing the one at index i of the previous batch (as `keras.layers.RNN`): the
            batch size must be static when the layer is built (e.g. `keras.Input(..., batch_size=B)`) and the same
            in every call; `reset_state()` zeroes the states. For long sequences fed chunk by chunk (a video as it
            plays: `ttrnn.models.stateful_copy`). On TensorFlow the same fused loop runs, from the variables' states.
        unroll: write the time loop out step by step, as Keras (the sequences then need a static length); only speed
            and memory change (no loop op: faster for a few steps, memory and graph grow with them).
        zero_output_for_mask: with a mask, a masked step outputs zeros (its states are still carried through), as
            Keras, also in the last-step output when the last step is masked; False (default): it repeats the
            previous output.
        implementation: Keras's 1 (one matmul per gate) or 2 (one for all gates), or the legacy 0: accepted, saved,
            and without effect (only speed differs in Keras): the kernel here always projects every gate at once.
        time_chunk: inputs projected per contraction inside the time loop (1: one step at a time); 0 (default): all
            steps before the recurrence. Only speed and memory change.
        recurrence: "fused" (default): with `time_chunk=0` on TensorFlow, the time loop of `ttrnn.layers.fused_scan`
            (XLA loops, hand-scheduled backward pass); "keras": Keras's loop (`keras.ops.scan`), which the other
            backends always run. Only speed changes.
        projection_dtype: None or "float32"; "bfloat16": the first contraction of integer inputs in bfloat16.
        projection_block: frames per block when whole uint8 clips are projected (`ttrnn.layers.kernel`: memory near the
            clips' own size however long they are); None: blocks of `PROJECTION_BLOCK_FRAMES` for batches of more than
            `WHOLE_BATCH_FRAMES` frames, smaller ones whole; 0: always whole.
        input_scale, input_shift: the layer sees `x * input_scale + input_shift` (default 1 and 0), so raw uint8 frames
            can enter it (where the paper models apply their pixel scaling).
        seed: seed of the dropout masks.
        recurrent_format: None (default): `U` is one dense weight, `(units, 3 units)`; or a format name of
            `ttrnn.formats.FORMAT_NAMES`: `U` factorized in that format, with the gates folded into its first output
            mode as in `W`. The time loop runs on the dense `U` as ever (fused scan, Keras's loop, unroll, stateful,
            export): it is reconstructed once per call (`Format.full`: about `units * 3 units * rank` multiply-adds,
            against `T * batch * units * 3 units` for the recurrence), and the gradient flows through the
            reconstruction into the factors.
        recurrent_input_modes, recurrent_output_modes: `U`'s modes, each multiplying to `units` (e.g. 4x4x4x4 ->
            4x4x4x4, folded to 3·4x4x4x4); None: `output_modes` both.
        recurrent_ranks: `U`'s ranks, as the format's `ranks`; None: `ttrnn.formats.DEFAULT_RANKS`.
        recurrent_blocks: `U`'s blocks (bt only; None: `ttrnn.formats.DEFAULT_BLOCKS`).
        integrated: True: integrate-then-decompose (FDHT, Yin et al., CVPR 2021): one factorized matrix `V` over
            `[x_t, h_{t-1}]` for all gates, in this layer's format, its input modes `input_modes` multiplying to
            `N >= D + units`: rows `[0, D)` are `W`, rows `[D, D + units)` are `U`, the rest padding (never read; for
            a `D + units` without even factors). The input part is `[x_t, 0] @ V` through the factors (uint8 frames
            and the bounded projection included); `U` is rows `[D, D + units)` of `V`, formed once per call
            (`Format.rows`). `recurrent_format` must be None, and `recurrent_initializer`, `recurrent_regularizer`,
            `recurrent_constraint` do not apply (the `kernel_*` ones cover `V`).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        sequences: `(batch, T, D)` inputs, float or uint8 (integer inputs are cast inside the first contraction, which
            keeps no float copy of them).
        initial_state: None (zeros, or a stateful layer's `states`) or `[h]`, each `(batch, units)`.
        mask: `(batch, T)` bool, False for the steps to skip (or from an upstream `keras.layers.Masking`): a skipped
            step carries the state through and repeats the previous output, as Keras.
        training: whether dropout applies.

    Returns:
        `(batch, units)`, or `(batch, T, units)` with `return_sequences`; with `return_state` the list `[output, h]`,
        each state `(batch, units)`.

    Attributes:
        units: `prod(m)`.
        kernel_format: the kernel's `ttrnn.formats` object (first output mode `3 m_0`).
        kernel_param_count: the number of the kernel's parameters (what the paper's "# Parameters" column counts).
        factors: the kernel's weights in the format's documented layout.
        full_kernel(): the dense `W` (integrated: rows `[0, D)` of the one matrix) `(D, 3 units)`.
        recurrent_kernel: `U` `(units, 3 units)`, dense: the weight, or reconstructed from its factors
            (`recurrent_format`) or from the integrated matrix's rows `[D, D + units)`.
        recurrent_factors: `U`'s factors in its format's layout (`recurrent_format`), else None.
        recurrent_kernel_format, recurrent_param_count: `U`'s `ttrnn.formats` object (or None) and its number of
            parameters (dense: `units * 3 units`; integrated: 0, they are in `kernel_param_count`).
        bias: `b` in Keras's layout.
        states, reset_state(): a stateful layer's state variables (`[h]`) and their reset to zeros.
        reset_after: the cell's option (read-only).

    References:
        F. L. Hitchcock. The Expression of a Tensor or a Polyadic as a Sum of Products. J. Math. Phys. 6, 1927 (the
            format).
        T. G. Kolda, B. W. Bader. Tensor Decompositions and Applications. SIAM Review 51(3), 2009, section 3.

    Example (UCF11 frames, 160 x 120 x 3 = 57,600 values, to 256 units):

    >>> import numpy as np
    >>> import ttrnn
    >>> layer = ttrnn.CPGRU(input_modes=[8, 20, 20, 18], output_modes=[4, 4, 4, 4],
    ...                     ranks=9)
    >>> layer.kernel_param_count
    2961
    >>> frames = np.zeros((2, 10, 57600), "uint8")            # (batch, T, D)
    >>> tuple(layer(frames).shape)
    (2, 256)
    """

    FORMAT = "cp"


@keras.saving.register_keras_serializable(package="ttrnn")
class HTGRU(FormatArguments, FormatGRU):
    """Gated recurrent unit whose input kernel is a hierarchical Tucker tree (HT-RNN, Yin et al. 2020).

    For each step `t` of a sequence of inputs `x_t` `(D,)`, with the input kernel `W = [W_z | W_r | W_h]`
    `(D, 3 units)`, the dense recurrent kernel `U = [U_z | U_r | U_h]` `(units, 3 units)` and the bias `b` (`sigma` is
    `recurrent_activation`, `phi` is `activation`):

        z_t = sigma(x_t W_z + h_{t-1} U_z + b_z)                        update gate
        r_t = sigma(x_t W_r + h_{t-1} U_r + b_r)                        reset gate
        g_t = phi(x_t W_h + (r_t * h_{t-1}) U_h + b_h)                  candidate, reset_after=False
        g_t = phi(x_t W_h + b_h + r_t * (h_{t-1} U_h + b'_h))           candidate, reset_after=True
        h_t = z_t * h_{t-1} + (1 - z_t) * g_t

    `W` is a hierarchical Tucker tree (`ttrnn.formats.ht`): a balanced binary tree over the `d` mode pairs `(n_k, m_k)`,
    a leaf factor `A_k` `(n_k, m_k, r_k)` per mode pair and a transfer tensor `B_t` `(r_left, r_right, r_t)` per inner
    node, the root's rank 1; a node's matrix is

        A_t = (A_left ⊗ A_right) B_t                                    (the root's is W)

    with `sum_k n_k m_k r_k + sum_t r_left r_right r_t` parameters. The gates are folded into the kernel's first output
    mode (`3 m_0`), so the column blocks of `full_kernel()` are z, r, h in Keras's order: with `recurrent_kernel` and
    `bias` (`(3 units,)`, or `(2, 3 units)`, input and recurrent rows, when `reset_after=True`) they drop into
    `keras.layers.GRU` with the same `reset_after` (`set_weights`), which then computes the same outputs.

    Cost per step: `x_t W` is a chain of small matmuls over the factors (`ttrnn.formats.base.Format.matmul`,
    multiply-adds counted in `ttrnn.formats.tt`), not the `D * 3 units` of a dense kernel, and runs for all steps before
    the recurrence; then `h_{t-1} U`, `units * 3 units` (a factorized `U`, `recurrent_format`, is formed
    once per call, before the loop). `W` is never formed.

    Args:
        input_modes: the input modes `n = (n_0, ..., n_{d-1})` (at least 2); `prod(n)` must equal the input size `D`.
        output_modes: the output modes `m`, as many as `n`; `units = prod(m)`.
        ranks: an int R (every node but the root) or one rank per tree node in post-order, the root's (last) 1; None:
            `ttrnn.formats.DEFAULT_RANKS["ht"]` (7).
        blocks: must be None (the block-term format's argument).
        reset_after: where the reset gate applies (the equations above); None: the preset's (modern True, as cuDNN and
            Keras; paper False, as the original TT-GRU).
        preset: "modern" (default) or "paper": the defaults of `kernel_initializer`, `recurrent_activation`,
            `reset_after` and `shared_recurrent_dropout` (explicit arguments win). modern: `TTGlorotNormal` factors (the
            dense `W` has Glorot variance), sigmoid gates, `reset_after=True`, one recurrent-dropout mask per gate, as
            `keras.layers.GRU`. paper: what the original TT-RNN code (Keras 2 / Theano) computed: `FlatGlorotUniform`
            factors, Keras-1 `hard_sigmoid` gates, `reset_after=False`, one recurrent-dropout mask shared by the gates.
        activation: `phi` (default "tanh"; None: linear).
        recurrent_activation: `sigma`; None: the preset's (sigmoid, or Keras-1 `hard_sigmoid` `clip(0.2 x + 0.5, 0, 1)`:
            `ttrnn.layers.hard_sigmoid`).
        use_bias: whether the layer has the bias `b` (default True).
        kernel_initializer: for the kernel's factors; None: the preset's. A format-aware initializer
            (`ttrnn.tt.TTGlorotNormal`, `ttrnn.tt.FlatGlorotUniform`) scales the factors for the format; any other Keras
            initializer is applied to each factor on its own.
        recurrent_initializer: for `recurrent_kernel`; None: "orthogonal", as Keras (dense `U`), or the preset's
            format-aware `kernel_initializer` (factorized `U`: `recurrent_format`).
        bias_initializer: for `bias` (default "zeros").
        kernel_regularizer, kernel_constraint: applied to each factor of the kernel.
        recurrent_regularizer, recurrent_constraint: for `recurrent_kernel` (each of its factors if factorized).
        bias_regularizer, bias_constraint: for `bias`.
        activity_regularizer: on the layer's output.
        dropout: input dropout rate in [0, 1): one mask per sequence on the input values, shared by the gates (one
            kernel projects them all, as Keras's `implementation=2`).
        recurrent_dropout: rate in [0, 1) of variational dropout on `h_{t-1}` in the recurrent matmul, one mask per
            sequence.
        shared_recurrent_dropout: one recurrent mask shared by the gates (paper) or one per gate (modern, Keras); None:
            the preset's.
        return_sequences: return every step's output `(batch, T, units)`, not only the last `(batch, units)`.
        return_state: also return the final state `h`.
        go_backwards: process the sequence in reverse (and return the outputs reversed, as Keras).
        stateful: keep each call's final states in variables (`states`) and start the next call from them, the sample
            at index i of a batch continuing the one at index i of the previous batch (as `keras.layers.RNN`): the
            batch size must be static when the layer is built (e.g. `keras.Input(..., batch_size=B)`) and the same
            in every call; `reset_state()` zeroes the states. For long sequences fed chunk by chunk (a video as it
            plays: `ttrnn.models.stateful_copy`). On TensorFlow the same fused loop runs, from the variables' states.
        unroll: write the time loop out step by step, as Keras (the sequences then need a static length); only speed
            and memory change (no loop op: faster for a few steps, memory and graph grow with them).
        zero_output_for_mask: with a mask, a masked step outputs zeros (its states are still carried through), as
            Keras, also in the last-step output when the last step is masked; False (default): it repeats the
            previous output.
        implementation: Keras's 1 (one matmul per gate) or 2 (one for all gates), or the legacy 0: accepted, saved,
            and without effect (only speed differs in Keras): the kernel here always projects every gate at once.
        time_chunk: inputs projected per contraction inside the time loop (1: one step at a time); 0 (default): all
            steps before the recurrence. Only speed and memory change.
        recurrence: "fused" (default): with `time_chunk=0` on TensorFlow, the time loop of `ttrnn.layers.fused_scan`
            (XLA loops, hand-scheduled backward pass); "keras": Keras's loop (`keras.ops.scan`), which the other
            backends always run. Only speed changes.
        projection_dtype: None or "float32"; "bfloat16": the first contraction of integer inputs in bfloat16.
        projection_block: frames per block when whole uint8 clips are projected (`ttrnn.layers.kernel`: memory near the
            clips' own size however long they are); None: blocks of `PROJECTION_BLOCK_FRAMES` for batches of more than
            `WHOLE_BATCH_FRAMES` frames, smaller ones whole; 0: always whole.
        input_scale, input_shift: the layer sees `x * input_scale + input_shift` (default 1 and 0), so raw uint8 frames
            can enter it (where the paper models apply their pixel scaling).
        seed: seed of the dropout masks.
        recurrent_format: None (default): `U` is one dense weight, `(units, 3 units)`; or a format name of
            `ttrnn.formats.FORMAT_NAMES`: `U` factorized in that format, with the gates folded into its first output
            mode as in `W`. The time loop runs on the dense `U` as ever (fused scan, Keras's loop, unroll, stateful,
            export): it is reconstructed once per call (`Format.full`: about `units * 3 units * rank` multiply-adds,
            against `T * batch * units * 3 units` for the recurrence), and the gradient flows through the
            reconstruction into the factors.
        recurrent_input_modes, recurrent_output_modes: `U`'s modes, each multiplying to `units` (e.g. 4x4x4x4 ->
            4x4x4x4, folded to 3·4x4x4x4); None: `output_modes` both.
        recurrent_ranks: `U`'s ranks, as the format's `ranks`; None: `ttrnn.formats.DEFAULT_RANKS`.
        recurrent_blocks: `U`'s blocks (bt only; None: `ttrnn.formats.DEFAULT_BLOCKS`).
        integrated: True: integrate-then-decompose (FDHT, Yin et al., CVPR 2021): one factorized matrix `V` over
            `[x_t, h_{t-1}]` for all gates, in this layer's format, its input modes `input_modes` multiplying to
            `N >= D + units`: rows `[0, D)` are `W`, rows `[D, D + units)` are `U`, the rest padding (never read; for
            a `D + units` without even factors). The input part is `[x_t, 0] @ V` through the factors (uint8 frames
            and the bounded projection included); `U` is rows `[D, D + units)` of `V`, formed once per call
            (`Format.rows`). `recurrent_format` must be None, and `recurrent_initializer`, `recurrent_regularizer`,
            `recurrent_constraint` do not apply (the `kernel_*` ones cover `V`).
        **kwargs: base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        sequences: `(batch, T, D)` inputs, float or uint8 (integer inputs are cast inside the first contraction, which
            keeps no float copy of them).
        initial_state: None (zeros, or a stateful layer's `states`) or `[h]`, each `(batch, units)`.
        mask: `(batch, T)` bool, False for the steps to skip (or from an upstream `keras.layers.Masking`): a skipped
            step carries the state through and repeats the previous output, as Keras.
        training: whether dropout applies.

    Returns:
        `(batch, units)`, or `(batch, T, units)` with `return_sequences`; with `return_state` the list `[output, h]`,
        each state `(batch, units)`.

    Attributes:
        units: `prod(m)`.
        kernel_format: the kernel's `ttrnn.formats` object (first output mode `3 m_0`).
        kernel_param_count: the number of the kernel's parameters (what the paper's "# Parameters" column counts).
        factors: the kernel's weights in the format's documented layout.
        full_kernel(): the dense `W` (integrated: rows `[0, D)` of the one matrix) `(D, 3 units)`.
        recurrent_kernel: `U` `(units, 3 units)`, dense: the weight, or reconstructed from its factors
            (`recurrent_format`) or from the integrated matrix's rows `[D, D + units)`.
        recurrent_factors: `U`'s factors in its format's layout (`recurrent_format`), else None.
        recurrent_kernel_format, recurrent_param_count: `U`'s `ttrnn.formats` object (or None) and its number of
            parameters (dense: `units * 3 units`; integrated: 0, they are in `kernel_param_count`).
        bias: `b` in Keras's layout.
        states, reset_state(): a stateful layer's state variables (`[h]`) and their reset to zeros.
        reset_after: the cell's option (read-only).

    References:
        M. Yin et al. Compressing Recurrent Neural Networks Using Hierarchical Tucker Tensor Decomposition.
            arXiv:2005.04366, 2020 (HT-LSTM).
        W. Hackbusch, S. Kühn. A New Scheme for the Tensor Representation. J. Fourier Anal. Appl. 15(5), 2009; L.
            Grasedyck. Hierarchical Singular Value Decomposition of Tensors. SIAM J. Matrix Anal. Appl. 31(4), 2010 (the
            format, with its textbook tree: the HT-RNN papers do not publish theirs).

    Example (UCF11 frames, 160 x 120 x 3 = 57,600 values, to 256 units):

    >>> import numpy as np
    >>> import ttrnn
    >>> layer = ttrnn.HTGRU(input_modes=[8, 20, 20, 18], output_modes=[4, 4, 4, 4],
    ...                     ranks=7)
    >>> layer.kernel_param_count
    3031
    >>> frames = np.zeros((2, 10, 57600), "uint8")            # (batch, T, D)
    >>> tuple(layer(frames).shape)
    (2, 256)
    """

    FORMAT = "ht"
