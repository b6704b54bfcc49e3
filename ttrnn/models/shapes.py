"""The paper's TT shapes per dataset and the frame-size check, without Keras: a CLI checks a store's frame size
against a model's TT input modes before TensorFlow starts (`ttrnn.models` builds the models from these)."""
import math

PAPER_SHAPES = {
    "ucf11": dict(frame_size=(160, 120), tt_input_shape=(8, 20, 20, 18), tt_output_shape=(4, 4, 4, 4),
                  tt_ranks=(1, 4, 4, 4, 1), units=256, mlp_input_shape=(48, 20, 20, 18),
                  recurrent_input_shape=(4, 4, 4, 4), recurrent_output_shape=(4, 4, 4, 4),
                  integrated_input_shape=(12, 15, 18, 18)),
    "hollywood2": dict(frame_size=(234, 100), tt_input_shape=(10, 18, 13, 30), tt_output_shape=(4, 4, 4, 4),
                       tt_ranks=(1, 4, 4, 4, 1), units=256, mlp_input_shape=(60, 18, 13, 30),
                       recurrent_input_shape=(4, 4, 4, 4), recurrent_output_shape=(4, 4, 4, 4),
                       integrated_input_shape=(14, 14, 18, 20)),
    "celebfaces": dict(frame_size=(160, 120), tt_input_shape=(4, 20, 20, 36), tt_output_shape=(4, 4, 4, 4),
                       tt_ranks=(1, 4, 4, 4, 1), units=225, mlp_input_shape=(24, 20, 20, 36),
                       recurrent_input_shape=(4, 4, 4, 4), recurrent_output_shape=(4, 4, 4, 4),
                       integrated_input_shape=(12, 15, 18, 18)),
}
"""The paper's shapes per dataset: the stored `frame_size` (width, height), the TT input modes (they factor
H*W*3 of the frame), the output modes (4x4x4x4 = 256 hidden units; 225 on YouTube Celebrities, as the original
code), the TT ranks (4) and the TT-MLP's input modes. The TT-MLP's shapes are published nowhere: ours fold its 6
frames into the first input mode.

Beyond the paper (ours, for the fully decomposed models of `ttrnn.models.paper_model`): `recurrent_input_shape` /
`recurrent_output_shape`, the modes of the hidden-to-hidden kernel of the tensorized layers (their 256 units =
4x4x4x4 both ways; the gates fold into the first output mode); `integrated_input_shape`, the input modes of the
one matrix over `[x_t, h_{t-1}]` of the integrated layers (`integrated=True`: Yin et al., CVPR 2021, whose text
gives no modes for it). D + 256 rows (57,856 for 160x120x3 frames, 70,456 for 234x100x3) do not factor into four
even modes (57,856 = 2^9 x 113), so the matrix gets a few rows of padding, never read: the rule is the four most
even modes (smallest largest/smallest ratio) whose product is at most 1 % above D + 256, i.e. 58,320 = 12x15x18x18
(0.8 % padding) and 70,560 = 14x14x18x20 (0.15 %)."""
MLP_FRAMES = 6
"""Frames the TT-MLP concatenates into one input (its `mlp_input_shape` holds them in its first mode)."""


def check_frame_shape(frame_shape, tt_input_shape, frames=1):
    """ValueError unless H*W*C (times `frames`) equals the product of the TT input modes."""
    dim = frames * math.prod(frame_shape)
    if dim != math.prod(tt_input_shape):
        raise ValueError(f"frames of shape {tuple(frame_shape)} flatten to {dim} values but the TT input modes "
                         f"{tuple(tt_input_shape)} multiply to {math.prod(tt_input_shape)}")
