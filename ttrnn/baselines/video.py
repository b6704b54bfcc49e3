"""Pieces every 3D CNN family shares: the uint8 clip input, Conv3D + BatchNorm as the PyTorch reference builds
them, the pooled softmax head, and the parameter count those references print.

Conventions (3D-ResNets-PyTorch): convolutions without bias, Kaiming-normal (fan_out) kernels, BatchNorm with
momentum 0.1 (Keras 0.9) and epsilon 1e-5, PyTorch's symmetric `padding=k//2` (so output sizes and alignment match).
"""

import keras
from keras import layers, ops

__all__ = ["clip_input", "reference_normalization", "ClipNormalization", "MEAN_STD", "conv3d", "max_pool",
           "conv_bn", "classifier_head", "scaled", "torch_param_count", "check_choice", "ZeroPadShortcut",
           "StridedConv3D"]

KAIMING = dict(scale=2.0, mode="fan_out", distribution="untruncated_normal")


# mean.py of 3D-ResNets-PyTorch: per-channel (RGB) mean and std of frames in [0, 1]
MEAN_STD = {"kinetics": ((0.4345, 0.4051, 0.3775), (0.2768, 0.2713, 0.2737)),
            "activitynet": ((0.4477, 0.4209, 0.3906), (0.2767, 0.2695, 0.2714)),
            "0.5": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}


def reference_normalization(dataset="kinetics", value_scale=1, no_mean_norm=False, no_std_norm=False):
    """`(mean, std)` in uint8 pixel units of 3D-ResNets-PyTorch's input transform: ToTensor (pixel / 255),
    ScaleValue(value_scale), Normalize(mean·vs or 0, std·vs or 1) (its `--mean_dataset`, `--value_scale`,
    `--no_mean_norm`, `--no_std_norm`), i.e. (pixel - mean) / std per channel."""
    check_choice("mean dataset", dataset, tuple(MEAN_STD))
    mean, std = MEAN_STD[dataset]
    to_pixels = 255.0 / value_scale
    mean = tuple(0.0 if no_mean_norm else m * value_scale * to_pixels for m in mean)
    std = tuple(to_pixels if no_std_norm else s * value_scale * to_pixels for s in std)
    return mean, std


def clip_input(input_shape, scaling="unit"):
    """`(frames, x)`: the Input of uint8 clips `(T, H, W, 3)` (None sizes allowed) and the float clip scaled to
    [-1, 1] (`scaling="unit"`), normalized per channel (`scaling=(mean, std)` in pixel units, e.g.
    `reference_normalization()`: what a converted 3D-ResNets-PyTorch checkpoint expects) or `frames` itself
    (`scaling=None`: a backbone's own preprocessing casts)."""
    frames = keras.Input(tuple(input_shape), name="frames")
    if scaling is None:
        return frames, frames
    if scaling == "unit":
        return frames, layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(frames)
    mean, std = scaling
    return frames, ClipNormalization(mean, std, name="normalize")(frames)


def _triple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)


def conv3d(x, filters, kernel, strides=1, name="conv", groups=1):
    """Conv3D without bias, Kaiming init, PyTorch's `padding=k//2`: "same" when unstrided, else explicit zero
    padding and a `StridedConv3D` (TensorFlow's CPU backward of strided Conv3D is very slow, see there)."""
    kernel, strides = _triple(kernel), _triple(strides)
    init = keras.initializers.VarianceScaling(**KAIMING)
    if strides == (1, 1, 1):
        return layers.Conv3D(filters, kernel, padding="same", use_bias=False, groups=groups,
                             kernel_initializer=init, name=name)(x)
    x = layers.ZeroPadding3D(tuple(k // 2 for k in kernel), name=f"{name}_pad")(x)
    return StridedConv3D(filters, kernel, strides, groups=groups, kernel_initializer=init, name=name)(x)


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
class StridedConv3D(layers.Layer):
    """A strided "valid" Conv3D without bias, computed as the sum over stride phases of unstrided convolutions:
    out[i] = Σ_j w[j] x[s·i + j] = Σ_r Σ_q w[s·q + r] x[s·(i + q) + r], i.e. phase r convolves x[r::s] with
    w[r::s] at stride 1. Same kernel `(kt, kh, kw, C/groups, filters)` and outputs as `Conv3D(strides=s,
    padding="valid")`, but TensorFlow's CPU gradients of unstrided Conv3D are fast where the strided ones are an
    order of magnitude slower (docs/performance.md has the figure). Cost: up to `prod(strides)` unstrided
    convolutions, each of a kernel phase over an input phase, together about the multiply-adds of the strided one."""

    def __init__(self, filters, kernel_size, strides, groups=1, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.groups = int(filters), int(groups)
        self.kernel_size, self.strides = _triple(kernel_size), _triple(strides)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, shape):
        self.kernel = self.add_weight(name="kernel", initializer=self.kernel_initializer,
                                      shape=self.kernel_size + (int(shape[-1]) // self.groups, self.filters))

    def _out(self, n, k, s):
        return None if n is None else (n - k) // s + 1

    def call(self, x):
        st, sh, sw = self.strides
        out = [self._out(ops.shape(x)[d + 1], self.kernel_size[d], self.strides[d]) for d in range(3)]
        total = None
        for rt in range(min(st, self.kernel_size[0])):
            for rh in range(min(sh, self.kernel_size[1])):
                for rw in range(min(sw, self.kernel_size[2])):
                    w = self.kernel[rt::st, rh::sh, rw::sw]
                    y = ops.conv(x[:, rt::st, rh::sh, rw::sw], w, padding="valid")
                    y = y[:, :out[0], :out[1], :out[2]]
                    total = y if total is None else total + y
        return total

    def compute_output_shape(self, shape):
        return (shape[0],) + tuple(self._out(shape[d + 1], self.kernel_size[d], self.strides[d])
                                   for d in range(3)) + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "groups": self.groups,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


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


@keras.saving.register_keras_serializable(package="ttrnn")
class ClipNormalization(layers.Layer):
    """uint8 clips `(..., 3)` -> float32 `(pixel - mean) / std` per channel; `mean`, `std` in pixel units (config,
    not weights: a checkpoint's input convention is part of the architecture)."""

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if len(self.mean) != len(self.std) or not all(s > 0 for s in self.std):
            raise ValueError(f"mean {self.mean} and std {self.std} must be per channel, std > 0")

    def call(self, x):
        x = ops.cast(x, "float32")
        return (x - ops.convert_to_tensor(self.mean, "float32")) / ops.convert_to_tensor(self.std, "float32")

    def compute_output_shape(self, shape):
        return shape

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean), "std": list(self.std)}
