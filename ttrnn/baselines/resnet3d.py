"""The 3D-ResNet family of Hara et al. (CVPR 2018) as 3D-ResNets-PyTorch's `models/` builds it: ResNet-10…200,
pre-activation ResNet, Wide ResNet and ResNeXt. Input `(batch, T, H, W, 3)` uint8 clips (default 16×112×112),
scaled to [-1, 1] inside; output `(batch, num_classes)` probabilities. Any T, H, W works (global pooling).

Parameter counts equal the reference's `sum(p.numel())` (`video.torch_param_count`), e.g. ResNet-18 with 400
classes 33,409,104. `width` multiplies every channel count (`widen_factor` of the reference) for small machines.
"""

from keras import layers

from ttrnn.baselines.video import (
    ZeroPadShortcut,
    batch_norm,
    check_choice,
    classifier_head,
    clip_input,
    conv3d,
    conv_bn,
    max_pool,
    scaled,
)

__all__ = ["resnet3d", "preact_resnet3d", "wide_resnet3d", "resnext3d", "DEPTHS", "residual_net"]

# depth → (block kind, blocks per stage): `generate_model` of models/resnet.py
DEPTHS = {10: ("basic", (1, 1, 1, 1)), 18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
          50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
          152: ("bottleneck", (3, 8, 36, 3)), 200: ("bottleneck", (3, 24, 36, 3))}
PLANES = (64, 128, 256, 512)


def shortcut(x, out, stride, kind, name):
    """The identity, or when shape changes: A = subsample + zero channels, B = 1×1×1 conv (stride) + BN."""
    if stride == 1 and x.shape[-1] == out:
        return x
    if kind == "A":
        return ZeroPadShortcut(out, stride, name=f"{name}_down")(x)
    return conv_bn(x, out, 1, stride, f"{name}_down", relu=False)


def basic_block(x, planes, stride, kind, name):
    """Two 3×3×3 conv-BN, the first strided; ReLU after the sum. Output channels `planes`."""
    y = conv_bn(x, planes, 3, stride, f"{name}_conv1")
    y = conv_bn(y, planes, 3, 1, f"{name}_conv2", relu=False)
    y = layers.Add(name=f"{name}_add")([y, shortcut(x, planes, stride, kind, name)])
    return layers.ReLU(name=f"{name}_out")(y)


def bottleneck_block(x, planes, stride, kind, name, expansion=4, mid=None, groups=1):
    """1×1×1 (mid) → 3×3×3 strided (mid, `groups`) → 1×1×1 (planes·expansion), ReLU after the sum."""
    mid = planes if mid is None else mid
    y = conv_bn(x, mid, 1, 1, f"{name}_conv1")
    y = conv_bn(y, mid, 3, stride, f"{name}_conv2", groups=groups)
    y = conv_bn(y, planes * expansion, 1, 1, f"{name}_conv3", relu=False)
    y = layers.Add(name=f"{name}_add")([y, shortcut(x, planes * expansion, stride, kind, name)])
    return layers.ReLU(name=f"{name}_out")(y)


def _preact(x, name):
    return layers.ReLU(name=f"{name}_relu")(batch_norm(x, f"{name}_bn"))


def preact_basic_block(x, planes, stride, kind, name):
    """models/pre_act_resnet.py: BN-ReLU-conv twice, no ReLU after the sum; the shortcut takes the raw input."""
    y = conv3d(_preact(x, f"{name}_pre1"), planes, 3, stride, f"{name}_conv1")
    y = conv3d(_preact(y, f"{name}_pre2"), planes, 3, 1, f"{name}_conv2")
    return layers.Add(name=f"{name}_add")([y, shortcut(x, planes, stride, kind, name)])


def preact_bottleneck_block(x, planes, stride, kind, name, expansion=4):
    """models/pre_act_resnet.py's bottleneck: BN-ReLU before each of 1×1×1, 3×3×3 (strided), 1×1×1."""
    y = conv3d(_preact(x, f"{name}_pre1"), planes, 1, 1, f"{name}_conv1")
    y = conv3d(_preact(y, f"{name}_pre2"), planes, 3, stride, f"{name}_conv2")
    y = conv3d(_preact(y, f"{name}_pre3"), planes * expansion, 1, 1, f"{name}_conv3")
    return layers.Add(name=f"{name}_add")([y, shortcut(x, planes * expansion, stride, kind, name)])


def resnet_stem(x, planes, conv1_t_size, conv1_t_stride, no_max_pool):
    """conv1 (t×7×7, stride t_stride×2×2) + BN + ReLU, then a 3×3×3 stride-2 max pool unless `no_max_pool`."""
    x = conv_bn(x, planes, (conv1_t_size, 7, 7), (conv1_t_stride, 2, 2), "conv1")
    return x if no_max_pool else max_pool(x, 3, 2, "maxpool")


def residual_net(block, stages, planes, num_classes, name, stem=None, stem_planes=None, input_shape=(16, 112, 112, 3),
                 shortcut_type="B", conv1_t_size=7, conv1_t_stride=1, no_max_pool=False, activation="softmax",
                 normalization="unit"):
    """The skeleton of models/resnet.py's `ResNet`: stem, four stages (`stages[i]` blocks of `block(x, planes[i],
    stride, shortcut_type, name)`, stride 2 from the second stage), global average pool, Dense classifier.
    `normalization`: the input scaling of `video.clip_input` ("unit" = [-1, 1], or per-channel (mean, std))."""
    check_choice("shortcut", shortcut_type, ("A", "B"))
    frames, x = clip_input(input_shape, normalization)
    x = (stem or resnet_stem)(x, stem_planes or planes[0], conv1_t_size, conv1_t_stride, no_max_pool)
    for s, (count, p) in enumerate(zip(stages, planes)):
        for b in range(count):
            x = block(x, p, 2 if (s > 0 and b == 0) else 1, shortcut_type, f"layer{s + 1}_{b}")
    return classifier_head(frames, x, num_classes, activation, name)


def _depth(depth, allowed=tuple(DEPTHS)):
    check_choice("depth", depth, allowed)
    return DEPTHS[depth]


def _options(input_shape, shortcut, conv1_t_size, conv1_t_stride, no_max_pool, activation, normalization):
    """The stem / head keywords of `residual_net` that every public builder passes through unchanged."""
    return dict(input_shape=input_shape, shortcut_type=shortcut, conv1_t_size=conv1_t_size,
                conv1_t_stride=conv1_t_stride, no_max_pool=no_max_pool, activation=activation,
                normalization=normalization)


def resnet3d(depth, num_classes, shortcut="B", conv1_t_size=7, conv1_t_stride=1, no_max_pool=False,
             widen_factor=1.0, input_shape=(16, 112, 112, 3), activation="softmax", normalization="unit"):
    """3D ResNet-`depth` (10, 18, 34: basic blocks; 50, 101, 152, 200: bottlenecks ×4) of models/resnet.py."""
    kind, stages = _depth(depth)
    planes = [scaled(p, widen_factor) for p in PLANES]
    block = basic_block if kind == "basic" else bottleneck_block
    return residual_net(block, stages, planes, num_classes, f"r3d{depth}",
                        **_options(input_shape, shortcut, conv1_t_size, conv1_t_stride, no_max_pool, activation,
                                   normalization))


def preact_resnet3d(depth, num_classes, shortcut="B", conv1_t_size=7, conv1_t_stride=1, no_max_pool=False,
                    widen_factor=1.0, input_shape=(16, 112, 112, 3), activation="softmax", normalization="unit"):
    """Pre-activation 3D ResNet-`depth` of models/pre_act_resnet.py: the ResNet stem and head around
    pre-activation blocks (as that file, no BN-ReLU after the last block)."""
    kind, stages = _depth(depth)
    planes = [scaled(p, widen_factor) for p in PLANES]
    block = preact_basic_block if kind == "basic" else preact_bottleneck_block
    return residual_net(block, stages, planes, num_classes, f"preact_r3d{depth}",
                        **_options(input_shape, shortcut, conv1_t_size, conv1_t_stride, no_max_pool, activation,
                                   normalization))


def wide_resnet3d(depth=50, num_classes=400, k=2, shortcut="B", conv1_t_size=7, conv1_t_stride=1,
                  no_max_pool=False, widen_factor=1.0, input_shape=(16, 112, 112, 3), activation="softmax",
                  normalization="unit"):
    """Wide ResNet-`depth` (50, 101, 152, 200) of models/wide_resnet.py: every stage (and the stem) `k` times
    wider, bottleneck expansion 2 instead of 4."""
    _, stages = _depth(depth, (50, 101, 152, 200))
    planes = [scaled(p * k, widen_factor) for p in PLANES]

    def block(x, p, stride, kind, name):
        return bottleneck_block(x, p, stride, kind, name, expansion=2)
    return residual_net(block, stages, planes, num_classes, f"wide_r3d{depth}_k{k}",
                        **_options(input_shape, shortcut, conv1_t_size, conv1_t_stride, no_max_pool, activation,
                                   normalization))


def resnext3d(depth=101, num_classes=400, cardinality=32, shortcut="B", conv1_t_size=7, conv1_t_stride=1,
              no_max_pool=False, widen_factor=1.0, input_shape=(16, 112, 112, 3), activation="softmax",
              normalization="unit"):
    """ResNeXt-`depth` (50, 101, 152, 200): bottlenecks on planes 128-256-512-1024 with `cardinality` groups in
    the 3×3×3 conv (cardinality·planes/32 channels) and expansion 2.

    models/resnext.py cannot run as published (its block takes `inplanes` but ResNet passes `in_planes=`, and
    `n_classes` lands in `widen_factor`); this follows Hara et al.'s Table 1 instead: a 64-channel stem as every
    other family (the file would give 128).
    """
    _, stages = _depth(depth, (50, 101, 152, 200))
    planes = [scaled(p, widen_factor) for p in (128, 256, 512, 1024)]
    if any((cardinality * p // 32) % cardinality for p in planes):
        raise ValueError(f"cardinality {cardinality} does not divide the grouped channels at this width")

    def block(x, p, stride, kind, name):
        return bottleneck_block(x, p, stride, kind, name, expansion=2, mid=cardinality * p // 32,
                                groups=cardinality)
    return residual_net(block, stages, planes, num_classes, f"resnext3d{depth}_c{cardinality}",
                        stem_planes=scaled(64, widen_factor),
                        **_options(input_shape, shortcut, conv1_t_size, conv1_t_stride, no_max_pool, activation,
                                   normalization))
