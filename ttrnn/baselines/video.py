"""Pieces every 3D CNN family shares: the uint8 clip input, Conv3D + BatchNorm as the PyTorch reference builds
them, the pooled softmax head, and the parameter count those references print.

Conventions (3D-ResNets-PyTorch): convolutions without bias, Kaiming-normal (fan_out) kernels, BatchNorm with
momentum 0.1 (Keras 0.9) and epsilon 1e-5, PyTorch's symmetric `padding=k//2` (so output sizes and alignment match).
"""

import keras
from keras import layers, ops

__all__ = ["clip_input", "conv3d", "max_pool", "conv_bn", "classifier_head", "scaled", "torch_param_count", "check_choice",
           "ZeroPadShortcut"]

KAIMING = dict(scale=2.0, mode="fan_out", distribution="untruncated_normal")


def clip_input(input_shape, scaling="unit"):
    """`(frames, x)`: the Input of uint8 clips `(T, H, W, 3)` (None sizes allowed) and the float clip scaled to
    [-1, 1] (`scaling="unit"`) or `frames` itself (`scaling=None`: a backbone's own preprocessing casts)."""
    frames = keras.Input(tuple(input_shape), name="frames")
    if scaling is None:
        return frames, frames
    return frames, layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(frames)


def _triple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)


def conv3d(x, filters, kernel, strides=1, name="conv", groups=1):
    """Conv3D without bias, Kaiming init, PyTorch's `padding=k//2`: "same" when unstrided, else explicit zero
    padding + "valid". The explicit form also avoids TensorFlow's CPU backward of strided "same" Conv3D, which
    measured ~50x slower (142 s vs 2.9 s for a 7×7×7 stride-(1,2,2) conv on 8×8×64×64×3)."""
    kernel, strides = _triple(kernel), _triple(strides)
    init = keras.initializers.VarianceScaling(**KAIMING)
    if strides == (1, 1, 1):
        return layers.Conv3D(filters, kernel, padding="same", use_bias=False, groups=groups,
                             kernel_initializer=init, name=name)(x)
    x = layers.ZeroPadding3D(tuple(k // 2 for k in kernel), name=f"{name}_pad")(x)
    return layers.Conv3D(filters, kernel, strides=strides, padding="valid", use_bias=False, groups=groups,
                         kernel_initializer=init, name=name)(x)


def max_pool(x, pool, strides, name):
    """MaxPool3D with PyTorch's `padding=k//2` for inputs ≥ 0 (after a ReLU, zero padding acts as -inf padding)."""
    pool = _triple(pool)
    x = layers.ZeroPadding3D(tuple(k // 2 for k in pool), name=f"{name}_pad")(x)
    return layers.MaxPooling3D(pool, strides, padding="valid", name=name)(x)


def conv_bn(x, filters, kernel, strides=1, name="conv", relu=True, groups=1, gamma_zero=False):
    """`conv3d` → BatchNorm → optional ReLU; layers named `<name>` and `<name>_bn`."""
    x = conv3d(x, filters, kernel, strides, name, groups)
    x = batch_norm(x, f"{name}_bn", gamma_zero)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def batch_norm(x, name, gamma_zero=False):
    """BatchNorm with PyTorch's defaults (momentum 0.1 = Keras 0.9, epsilon 1e-5); γ = 0 when `gamma_zero`."""
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name,
                                     gamma_initializer="zeros" if gamma_zero else "ones")(x)


def classifier_head(frames, x, num_classes, activation, name, dropout=0.0):
    """Global average pool over (T, H, W) → optional dropout → Dense `classifier`; returns the Keras Model."""
    x = layers.GlobalAveragePooling3D(name="avgpool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    probs = layers.Dense(num_classes, activation=activation, name="classifier")(x)
    return keras.Model(frames, probs, name=name)


def scaled(n, width):
    """Channels `n` times `width`, as 3D-ResNets' `int(x * widen_factor)` (at least 1)."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return max(1, int(n * width))


def torch_param_count(model):
    """Trainable parameters: what PyTorch's `sum(p.numel() for p in model.parameters())` counts (BatchNorm γ and β;
    Keras's `count_params()` also counts the moving mean and variance)."""
    return int(sum(int(ops.size(w)) for w in model.trainable_weights))


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} {value!r} is not one of {', '.join(str(c) for c in choices)}")
    return value


@keras.saving.register_keras_serializable(package="ttrnn")
class ZeroPadShortcut(layers.Layer):
    """3D-ResNets' shortcut A: subsample by `stride` (a 1×1×1 average pool) and zero-pad channels to `channels`."""

    def __init__(self, channels, stride, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.stride = int(channels), int(stride)

    def call(self, x):
        s = self.stride
        x = x[:, ::s, ::s, ::s]
        pad = self.channels - ops.shape(x)[-1]
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, 0], [0, pad]])

    def compute_output_shape(self, shape):
        def sub(n):
            return None if n is None else -(-n // self.stride)
        return (shape[0], sub(shape[1]), sub(shape[2]), sub(shape[3]), self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "stride": self.stride}
