"""R(2+1)D (Tran et al., CVPR 2018) as 3D-ResNets-PyTorch's models/resnet2p1d.py: every t×k×k convolution of the
3D ResNet split into a 1×k×k spatial conv to `mid` channels, BN, ReLU, and a t×1×1 temporal conv, with `mid` chosen
so the pair has about the parameters of the full 3D kernel. R(2+1)D-18 with 400 classes: 33,421,164 parameters.
"""

from keras import layers

from ttrnn.baselines.resnet3d import DEPTHS, PLANES, residual_net, shortcut
from ttrnn.baselines.video import check_choice, conv_bn, max_pool, scaled

__all__ = ["r2plus1d", "mid_channels"]


def mid_channels(c_in, c_out, t, k):
    """Tran et al.'s M = ⌊t·k²·C_in·C_out / (k²·C_in + t·C_out)⌋: the (2+1)D pair's width with the 3D
    kernel's parameter count."""
    return (t * k * k * c_in * c_out) // (k * k * c_in + t * c_out)


def conv2plus1d(x, filters, t, k, strides, name, relu=True):
    """1×k×k (spatial stride) → BN → ReLU → t×1×1 (temporal stride) → BN [→ ReLU]."""
    mid = mid_channels(x.shape[-1], filters, t, k)
    y = conv_bn(x, mid, (1, k, k), (1, strides[1], strides[2]), f"{name}_s")
    return conv_bn(y, filters, (t, 1, 1), (strides[0], 1, 1), f"{name}_t", relu=relu)


def basic_block_2p1d(x, planes, stride, kind, name):
    """The basic block with both 3×3×3 convs as (2+1)D pairs (the first strided in space and time)."""
    y = conv2plus1d(x, planes, 3, 3, (stride,) * 3, f"{name}_conv1")
    y = conv2plus1d(y, planes, 3, 3, (1, 1, 1), f"{name}_conv2", relu=False)
    y = layers.Add(name=f"{name}_add")([y, shortcut(x, planes, stride, kind, name)])
    return layers.ReLU(name=f"{name}_out")(y)


def bottleneck_block_2p1d(x, planes, stride, kind, name, expansion=4):
    """1×1×1 → (2+1)D 3×3×3 (strided; mid from `planes` to `planes`, as the reference) → 1×1×1 ×4."""
    y = conv_bn(x, planes, 1, 1, f"{name}_conv1")
    y = conv2plus1d(y, planes, 3, 3, (stride,) * 3, f"{name}_conv2")
    y = conv_bn(y, planes * expansion, 1, 1, f"{name}_conv3", relu=False)
    y = layers.Add(name=f"{name}_add")([y, shortcut(x, planes * expansion, stride, kind, name)])
    return layers.ReLU(name=f"{name}_out")(y)


def stem_2p1d(x, planes, conv1_t_size, conv1_t_stride, no_max_pool):
    """conv1 as a (2+1)D pair: 1×7×7 stride 2 to mid = ⌊3·planes·t·49 / (3·49 + t·planes)⌋, then t×1×1."""
    mid = (3 * planes * conv1_t_size * 49) // (3 * 49 + conv1_t_size * planes)
    y = conv_bn(x, mid, (1, 7, 7), (1, 2, 2), "conv1_s")
    y = conv_bn(y, planes, (conv1_t_size, 1, 1), (conv1_t_stride, 1, 1), "conv1_t")
    return y if no_max_pool else max_pool(y, 3, 2, "maxpool")


def r2plus1d(depth, num_classes, shortcut="B", conv1_t_size=7, conv1_t_stride=1, no_max_pool=False,
             widen_factor=1.0, input_shape=(16, 112, 112, 3), activation="softmax", normalization="unit"):
    """R(2+1)D-`depth` (10, 18, 34, 50, 101, 152, 200): models/resnet2p1d.py's `generate_model`."""
    check_choice("depth", depth, tuple(DEPTHS))
    kind, stages = DEPTHS[depth]
    planes = [scaled(p, widen_factor) for p in PLANES]
    block = basic_block_2p1d if kind == "basic" else bottleneck_block_2p1d
    return residual_net(block, stages, planes, num_classes, f"r2plus1d{depth}", stem=stem_2p1d,
                        input_shape=input_shape, shortcut_type=shortcut, conv1_t_size=conv1_t_size,
                        conv1_t_stride=conv1_t_stride, no_max_pool=no_max_pool, activation=activation,
                        normalization=normalization)
