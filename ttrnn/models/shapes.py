"""The paper's TT shapes per dataset and the frame-size check, and the input modes of the RNNs over CNN features,
without Keras: a CLI checks a store's frame size (or feature width) against a model's input modes before TensorFlow
starts (`ttrnn.models` builds the models from these)."""
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


FEATURE_OUTPUT_SHAPE = (4, 4, 4, 4)
"""Output modes of the tensorized RNNs over CNN features: the paper's 4x4x4x4 = 256 hidden units on every dataset
(`feature_classifier`), so a feature run and a raw-pixel run of one dataset differ only in their input."""
FEATURE_INPUT_MODES = {
    8192: (8, 8, 8, 16),   # an unpooled 2x2x2048 map: ResNet50 at 64 px, InceptionV3 at 107 (--pooling none)
    2048: (4, 8, 8, 8),    # InceptionV3, ResNet50 / 101 / 152, Xception
    1536: (4, 6, 8, 8),    # InceptionResNetV2, EfficientNetB3
    1280: (4, 5, 8, 8),    # MobileNetV2, EfficientNetB0 / B1
    1024: (4, 4, 8, 8),    # DenseNet121, MobileNet
    576: (4, 4, 6, 6),     # MobileNetV3Small
    512: (4, 4, 4, 8),     # VGG16 / 19
}
"""Default input modes of a feature width F (`feature_input_modes`): four modes (as many as the output modes, which
a TT, TR or HT kernel needs), balanced, ascending; equal to `factor_modes(F, 4)`, listed for the backbones'
widths so the documentation shows them."""


def factor_modes(n, d=4):
    """`n` as `d` integer modes whose product is `n`, as balanced as a greedy split of its prime factors makes them
    (each prime, largest first, multiplies the smallest mode so far), ascending. Modes of 1 appear only when `n`
    has fewer than `d` prime factors (a prime width `p` -> `(1, 1, 1, p)`).

    Example: `factor_modes(2048)` -> (4, 8, 8, 8); `factor_modes(1280)` -> (4, 5, 8, 8).
    """
    n, d = int(n), int(d)
    if n < 1 or d < 1:
        raise ValueError(f"factor_modes needs n >= 1 and d >= 1, got n={n}, d={d}")
    primes, rest, p = [], n, 2
    while p * p <= rest:
        while rest % p == 0:
            primes.append(p)
            rest //= p
        p += 1
    if rest > 1:
        primes.append(rest)
    modes = [1] * d
    for prime in sorted(primes, reverse=True):
        modes[modes.index(min(modes))] *= prime
    return tuple(sorted(modes))


def feature_input_modes(width, d=len(FEATURE_OUTPUT_SHAPE)):
    """The default input modes of features of `width` values: `FEATURE_INPUT_MODES[width]` for four modes, else
    `factor_modes(width, d)`."""
    if d == len(FEATURE_OUTPUT_SHAPE) and int(width) in FEATURE_INPUT_MODES:
        return FEATURE_INPUT_MODES[int(width)]
    return factor_modes(width, d)


def integrated_input_modes(rows, d=len(FEATURE_OUTPUT_SHAPE), slack=0.01):
    """Input modes of an integrated layer's one matrix over `rows` = input values + units (`integrated=True`):
    `d` modes whose product N is at least `rows` and at most `slack` above it, the most balanced of those
    (smallest largest / smallest mode; then the smallest N). `rows` itself often factors badly (a large prime), so
    a few padding rows buy even modes. Example: 2,048 features + 256 units -> (6, 6, 8, 8) = 2,304 exactly."""
    rows, best = int(rows), None
    for n in range(rows, int(math.ceil(rows * (1 + slack))) + 1):
        modes = factor_modes(n, d)
        key = (max(modes) / min(modes), n)
        if best is None or key < best[0]:
            best = (key, modes)
    return best[1]


def check_feature_modes(width, input_modes):
    """ValueError unless the input modes multiply to the feature width."""
    if math.prod(input_modes) != int(width):
        raise ValueError(f"input modes {'x'.join(map(str, input_modes))} multiply to {math.prod(input_modes)}, not "
                         f"the feature width {width}")
