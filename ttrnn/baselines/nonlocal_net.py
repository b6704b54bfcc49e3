"""Non-local neural networks (Wang et al., CVPR 2018) as facebookresearch/video-nonlocal-net builds them: the
non-local block, and C2D / I3D ResNet-50 with non-local blocks in res3 and res4.

Input `(batch, T, H, W, 3)` uint8 clips (the paper's 32×224×224 or smaller; any size works), passed through
ResNet-50's own ImageNet preprocessing (RGB→BGR, mean subtraction) inside the model; output probabilities.
`weights="imagenet"` inflates `keras.applications.ResNet50`'s ImageNet weights: each 2D kernel repeated over
the 3D kernel's time length and divided by it, so a clip of identical frames gives the 2D responses.
"""

import keras
import numpy as np
from keras import layers, ops

from ttrnn.baselines.tsn import BackbonePreprocess, WeightsError, imagenet_weights_path, load_weights
from ttrnn.baselines.video import check_choice, classifier_head, clip_input, conv_bn, max_pool, scaled

__all__ = ["NonLocal", "nonlocal_block", "c2d_resnet50", "i3d_resnet50", "inflate_2d_weights", "NONLOCAL_MODES"]

NONLOCAL_MODES = ("embedded_gaussian", "dot_product", "gaussian")
# Temporal kernels of I3D ResNet-50 (`obtain_arc(2)` of lib/models/resnet_video.py): 1 = the block's first 1×1×1
# becomes 3×1×1; res2 … res5.
I3D_TEMPORAL = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))
STAGES = ((3, 64, 256), (4, 128, 512), (6, 256, 1024), (3, 512, 2048))  # blocks, inner, out channels


@keras.saving.register_keras_serializable(package="ttrnn")
class NonLocal(layers.Layer):
    """z = x + BN(W_z · y), y_i = Σ_j f(x_i, x_j) g(x_j) / C(x), over all T·H·W positions of `(B, T, H, W, C)`.

    mode: "embedded_gaussian" f = softmax_j(θ_i·φ_j / √inner) (the reference code's default scaling, `scale`),
    "dot_product" f = θ_i·φ_j / N (N positions of φ), "gaussian" f = softmax_j(x_i·x_j) (no θ, φ).
    θ, φ, g, W_z: 1×1×1 convolutions with bias (N(0, 0.01) init); φ and g see x max-pooled 1×2×2 when
    `subsample`. BN γ starts at 0, so a new block is the identity.
    """

    def __init__(self, mode="embedded_gaussian", inner=None, subsample=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        self.mode = check_choice("non-local mode", mode, NONLOCAL_MODES)
        self.inner, self.subsample, self.scale = inner, bool(subsample), bool(scale)

    def build(self, shape):
        channels = int(shape[-1])
        inner = int(self.inner or max(1, channels // 2))
        init = keras.initializers.RandomNormal(stddev=0.01)

        def conv(name, c_in, c_out):
            return (self.add_weight(name=f"{name}_kernel", shape=(c_in, c_out), initializer=init),
                    self.add_weight(name=f"{name}_bias", shape=(c_out,), initializer="zeros"))
        self.theta = conv("theta", channels, inner) if self.mode != "gaussian" else None
        self.phi = conv("phi", channels, inner) if self.mode != "gaussian" else None
        self.g = conv("g", channels, inner)
        self.out = conv("out", inner, channels)
        self.bn = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, gamma_initializer="zeros", name="bn")
        self.bn.build(tuple(shape))
        self.inner_channels = inner

    def call(self, x, training=None):
        shape = ops.shape(x)
        batch, channels = shape[0], shape[-1]
        pooled = ops.max_pool(x, (1, 2, 2), (1, 2, 2), padding="same") if self.subsample else x

        def embed(t, w):
            return ops.reshape(t, (batch, -1, channels)) if w is None else \
                ops.reshape(ops.matmul(t, w[0]) + w[1], (batch, -1, self.inner_channels))
        theta, phi, g = embed(x, self.theta), embed(pooled, self.phi), embed(pooled, self.g)
        affinity = ops.matmul(theta, ops.transpose(phi, (0, 2, 1)))          # (B, N, M)
        if self.mode == "dot_product":
            affinity = affinity / ops.cast(ops.shape(phi)[1], affinity.dtype)
        else:
            if self.mode == "embedded_gaussian" and self.scale:
                affinity = affinity * (self.inner_channels ** -0.5)
            affinity = ops.softmax(affinity, axis=-1)
        y = ops.matmul(affinity, g)                                            # (B, N, inner)
        y = ops.reshape(y, (shape[0], shape[1], shape[2], shape[3], self.inner_channels))
        z = ops.matmul(y, self.out[0]) + self.out[1]
        return x + self.bn(z, training=training)

    def compute_output_shape(self, shape):
        return shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "inner": self.inner, "subsample": self.subsample,
                "scale": self.scale}


def nonlocal_block(x, mode="embedded_gaussian", inner=None, subsample=True, scale=True, name=None):
    """Apply a new `NonLocal` block to the Keras tensor `x`: `(B, T, H, W, C)` → the same shape (inner C/2)."""
    return NonLocal(mode, inner, subsample, scale, name=name)(x)


def _bottleneck(x, inner, out, stride, temporal, name):
    """video-nonlocal-net's bottleneck: (1 + 2·temporal)×1×1 → 1×3×3 (spatial stride) → 1×1×1, ReLU(sum)."""
    y = conv_bn(x, inner, (1 + 2 * temporal, 1, 1), 1, f"{name}_1_conv")
    y = conv_bn(y, inner, (1, 3, 3), (1, stride, stride), f"{name}_2_conv")
    y = conv_bn(y, out, 1, 1, f"{name}_3_conv", relu=False)
    if stride != 1 or x.shape[-1] != out:
        x = conv_bn(x, out, 1, (1, stride, stride), f"{name}_0_conv", relu=False)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, x]))


def _nonlocal_resnet50(num_classes, temporal, nonlocal_blocks, mode, width, input_shape, dropout, activation,
                       weights, name):
    """ResNet-50 of lib/models/resnet_video.py: conv1, pool1 1×3×3, res2, pool2 2×1×1, res3-res5, pool, fc.
    Non-local blocks after every second block of res3 and res4 (5, LAYER_MOD 2) or after every one (10)."""
    check_choice("nonlocal_blocks", nonlocal_blocks, (0, 5, 10))
    if weights not in (None, "imagenet"):
        raise WeightsError(f"{name}: weights is None or 'imagenet' here; load a saved model's weights after building")
    source = imagenet_weights_path("resnet50") if weights == "imagenet" else None  # fail before the slow build
    frames, x = clip_input(input_shape, scaling=None)
    x = BackbonePreprocess("resnet50", name="preprocess")(x)
    x = conv_bn(x, scaled(64, width), (1 + 2 * temporal[0][0], 7, 7), (1, 2, 2), "conv1_conv")
    x = max_pool(x, (1, 3, 3), (1, 2, 2), "pool1")
    every = {0: 0, 5: 2, 10: 1}[nonlocal_blocks]
    for s, (count, inner, out) in enumerate(STAGES):
        for b in range(count):
            stride = 2 if (s > 0 and b == 0) else 1
            x = _bottleneck(x, scaled(inner, width), scaled(out, width), stride, temporal[s + 1][b],
                            f"conv{s + 2}_block{b + 1}")
            if every and s in (1, 2) and b % every == every - 1:
                x = nonlocal_block(x, mode, name=f"nonlocal{s + 2}_{b + 1}")
        if s == 0:
            x = layers.MaxPooling3D((2, 1, 1), (2, 1, 1), padding="same", name="pool2")(x)
    model = classifier_head(frames, x, num_classes, activation, name, dropout=dropout)
    if source is not None:
        inflate_2d_weights(model, source)
    return model


def c2d_resnet50(num_classes, nonlocal_blocks=5, mode="embedded_gaussian", width=1.0, input_shape=(32, 224, 224, 3),
                 dropout=0.5, activation="softmax", weights=None):
    """C2D ResNet-50 (every kernel 1×k×k; time mixes only in pool2 and the non-local blocks), `obtain_arc(1)`."""
    temporal = ((0,),) + tuple((0,) * len(t) for t in I3D_TEMPORAL)
    return _nonlocal_resnet50(num_classes, temporal, nonlocal_blocks, mode, width, input_shape, dropout,
                              activation, weights, f"c2d_nl{nonlocal_blocks}")


def i3d_resnet50(num_classes, nonlocal_blocks=5, mode="embedded_gaussian", width=1.0, input_shape=(32, 224, 224, 3),
                 dropout=0.5, activation="softmax", weights=None):
    """I3D ResNet-50: conv1 5×7×7 and 3×1×1 first convs in every other residual block, `obtain_arc(2)`."""
    return _nonlocal_resnet50(num_classes, ((2,),) + I3D_TEMPORAL, nonlocal_blocks, mode, width, input_shape,
                              dropout, activation, weights, f"i3d_nl{nonlocal_blocks}")


def inflate_2d_weights(model, source):
    """Copy a 2D ResNet-50's weights (a `keras.applications.ResNet50` model or its no-top .h5 file) into a C2D /
    I3D model built at width 1: kernels (kh, kw, i, o) → (t, kh, kw, i, o) repeated and divided by t; the 2D
    convolutions' biases are folded into the following BatchNorm's moving mean (BN(x + b) = BN'(x))."""
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(224, 224, 3))
        load_weights(base, source)
    else:
        base = source
    copied = 0
    for layer in base.layers:
        if not isinstance(layer, layers.Conv2D):
            continue
        target = model.get_layer(layer.name)
        kernel, bias = layer.get_weights()
        t = target.kernel.shape[0]
        if tuple(target.kernel.shape[1:]) != kernel.shape:
            raise WeightsError(f"cannot inflate {layer.name}: 2D kernel {kernel.shape} vs 3D {target.kernel.shape} "
                               "(build the model at width 1)")
        target.set_weights([np.repeat(kernel[None], t, axis=0) / t])
        gamma, beta, mean, var = base.get_layer(layer.name[:-len("_conv")] + "_bn").get_weights()
        model.get_layer(f"{layer.name}_bn").set_weights([gamma, beta, mean - bias, var])
        copied += 1
    return copied
