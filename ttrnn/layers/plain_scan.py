"""The recurrence of the ttrnn layers on their export path (`ttrnn.layers.kernel.exporting`): one TensorFlow while
loop of plain ops that every exporter takes.

Keras's `model.export` hands the traced graph to tf2onnx (ONNX) or to the LiteRT converter; neither takes the
XLA-compiled functions of `ttrnn.layers.fused_scan`, and tf2onnx does not take the loop of `keras.ops.scan` (its
carries in one-element TensorArrays). This loop has the shape of Keras's own TensorFlow RNN loop, which both know:
the states are the loop's variables, step t reads `z[t]` (a slice), the outputs (with `return_sequences`) go to
one TensorArray stacked after the loop, and a masked step carries the states through (`tf.where`).

Forward only (inference): no custom gradient, no stored intermediates. Complexity per step: the cell's recurrent
matmuls, `B * U * gates * U` multiply-adds, as the fused loop's forward; memory: the states, plus the outputs with
`return_sequences`. TensorFlow only; other backends' export path is Keras's loop.
"""

import tensorflow as tf

from ttrnn.layers.cells import StepOps


def plain_scan(cell, z, mask, states, kernel, rec_bias=None, rec_masks=None, return_sequences=False):
    """Run `cell` over time-major `z` `(T, B, C)` with `mask` `(T, B)` bool from `states` (list of `(B, U)`).

    The same contract as `ttrnn.layers.fused_scan.fused_scan`: returns `(outputs, final_states)`, `outputs`
    `(T, B, U)` (the first state after each step) if `return_sequences`, else None.
    """
    steps = tf.shape(z)[0]
    f = StepOps(tf.convert_to_tensor(kernel))
    mask = tf.cast(mask, tf.bool)
    states = [tf.convert_to_tensor(s) for s in states]
    outputs = tf.TensorArray(z.dtype, size=steps, element_shape=states[0].shape) if return_sequences else None

    def body(t, *carry):
        prev, out = list(carry[:len(states)]), carry[len(states):]
        new = cell(z[t], prev, f, rec_bias, rec_masks)
        m = mask[t][:, None]
        new = [tf.where(m, n, p) for n, p in zip(new, prev)]
        if return_sequences:
            out = (out[0].write(t, new[0]),)
        return (t + 1, *new, *out)

    loop = tf.while_loop(lambda t, *_: t < steps, body, (0, *states, *([outputs] if return_sequences else [])))
    final = list(loop[1:1 + len(states)])
    return (loop[-1].stack() if return_sequences else None), final
