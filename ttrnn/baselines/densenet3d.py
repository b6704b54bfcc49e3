"""3D DenseNet-BC (Huang et al. 2017, inflated by Hara et al.) as 3D-ResNets-PyTorch's models/densenet.py.

Stem conv t×7×7 (64 channels) + BN + ReLU + max pool; four dense blocks of BN-ReLU-1×1×1 (4·growth) -
BN-ReLU-3×3×3 (growth) layers whose outputs are concatenated; transitions halve channels (BN-ReLU-1×1×1) and
average-pool 2×2×2; a final BN, ReLU, global pool and linear classifier.
"""

from keras import layers

from ttrnn.baselines.video import (
    batch_norm,
    check_choice,
    classifier_head,
    clip_input,
    conv3d,
    conv_bn,
    max_pool,
    scaled,
)

__all__ = ["densenet3d", "DENSENET_BLOCKS"]

# depth → layers per dense block: `generate_model` of models/densenet.py (growth 32, 64 initial features)
DENSENET_BLOCKS = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32), 264: (6, 12, 64, 48)}


def _bn_relu_conv(x, filters, kernel, name):
    x = layers.ReLU(name=f"{name}_relu")(batch_norm(x, f"{name}_bn"))
    return conv3d(x, filters, kernel, 1, name)


def dense_layer(x, growth, bn_size, drop_rate, name):
    """BN-ReLU-1×1×1 (bn_size·growth) → BN-ReLU-3×3×3 (growth), concatenated to the input."""
    y = _bn_relu_conv(x, bn_size * growth, 1, f"{name}_conv1")
    y = _bn_relu_conv(y, growth, 3, f"{name}_conv2")
    if drop_rate:
        y = layers.Dropout(drop_rate, name=f"{name}_drop")(y)
    return layers.Concatenate(name=f"{name}_cat")([x, y])


def transition_pool(x, name):
    """The reference's AvgPool3d(2, 2) (no padding: odd sizes floor, 7 -> 3); an axis already of size 1 is left
    as it is (the reference fails there; short test clips pass)."""
    pool = tuple(1 if d == 1 else 2 for d in x.shape[1:4])
    return layers.AveragePooling3D(pool, pool, padding="valid", name=name)(x)


def densenet3d(depth=121, num_classes=400, growth_rate=32, num_init_features=64, bn_size=4, drop_rate=0.0,
               conv1_t_size=7, conv1_t_stride=1, no_max_pool=False, widen_factor=1.0,
               input_shape=(16, 112, 112, 3), activation="softmax", normalization="unit"):
    """DenseNet-`depth` (121, 169, 201, 264); `widen_factor` scales the growth rate and the initial features."""
    check_choice("depth", depth, tuple(DENSENET_BLOCKS))
    growth, features = scaled(growth_rate, widen_factor), scaled(num_init_features, widen_factor)
    frames, x = clip_input(input_shape, normalization)
    x = conv_bn(x, features, (conv1_t_size, 7, 7), (conv1_t_stride, 2, 2), "conv1")
    if not no_max_pool:
        x = max_pool(x, 3, 2, "pool1")
    blocks = DENSENET_BLOCKS[depth]
    for b, count in enumerate(blocks):
        for i in range(count):
            x = dense_layer(x, growth, bn_size, drop_rate, f"block{b + 1}_{i + 1}")
        if b < len(blocks) - 1:
            x = _bn_relu_conv(x, x.shape[-1] // 2, 1, f"transition{b + 1}")
            x = transition_pool(x, f"transition{b + 1}_pool")
    x = layers.ReLU(name="norm5_relu")(batch_norm(x, "norm5"))
    return classifier_head(frames, x, num_classes, activation, f"densenet3d{depth}")
