"""3D CNN families of 3D-ResNets-PyTorch (ttrnn.baselines): parameter counts against formulas written from the
reference files, anchored on published counts, and one small real build per family.

The reference's count is PyTorch's `sum(p.numel() for p in model.parameters())`: conv kernels (no biases), BN γ and
β, the fc layer; `torch_param_count` counts the same Keras weights (trainable ones, no BN moving statistics).
The formulas below follow models/resnet.py, pre_act_resnet.py, wide_resnet.py, resnext.py, resnet2p1d.py and
densenet.py line by line, with `dims=2` giving the 2D network whose published torchvision counts anchor them.
"""
import keras
import numpy as np
import pytest

from ttrnn.baselines import densenet3d, preact_resnet3d, r2plus1d, resnet3d, resnext3d, torch_param_count, wide_resnet3d

BLOCKS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
          152: (3, 8, 36, 3), 200: (3, 24, 36, 3)}
SMALL = dict(input_shape=(4, 32, 32, 3))


def conv(c_in, c_out, kernel, groups=1):
    return c_in // groups * c_out * kernel


def bn(c):
    return 2 * c


def ref_resnet(depth, classes, family="resnet", width=1.0, shortcut="B", t=7, dims=3, k=2, cardinality=32):
    """models/<family>.py's parameter count; family in resnet, preact, wide, resnext, 2p1d."""
    k3, k_stem = (27, t * 49) if dims == 3 else (9, 49)
    base = {"wide": [64 * k, 128 * k, 256 * k, 512 * k], "resnext": [128, 256, 512, 1024]}.get(
        family, [64, 128, 256, 512])
    planes = [int(p * width) for p in base]
    bottleneck = depth >= 50
    expansion = {"wide": 2, "resnext": 2}.get(family, 4 if bottleneck else 1)
    stem = int(64 * width) if family == "resnext" else planes[0]
    if family == "2p1d":
        mid = 3 * stem * t * 49 // (3 * 49 + t * stem)
        total = conv(3, mid, 49) + bn(mid) + conv(mid, stem, t) + bn(stem)
    else:
        total = conv(3, stem, k_stem) + bn(stem)
    c_in = stem
    for s, (count, p) in enumerate(zip(BLOCKS[depth], planes)):
        for b in range(count):
            stride = 2 if s > 0 and b == 0 else 1
            out = p * expansion
            if (stride != 1 or c_in != out) and shortcut == "B":
                total += conv(c_in, out, 1) + bn(out)
            total += _ref_block(family, bottleneck, c_in, p, out, k3, cardinality)
            c_in = out
    return total + c_in * classes + classes


def _ref_block(family, bottleneck, c_in, p, out, k3, cardinality):
    if family == "preact":  # BN before each conv, on its input
        if bottleneck:
            return bn(c_in) + conv(c_in, p, 1) + bn(p) + conv(p, p, k3) + bn(p) + conv(p, out, 1)
        return bn(c_in) + conv(c_in, p, k3) + bn(p) + conv(p, p, k3)
    if family == "2p1d":
        def pair(i, o):
            m = i * o * 27 // (i * 9 + 3 * o)
            return conv(i, m, 9) + bn(m) + conv(m, o, 3) + bn(o)
        if bottleneck:
            return conv(c_in, p, 1) + bn(p) + pair(p, p) + conv(p, out, 1) + bn(out)
        return pair(c_in, p) + pair(p, p)
    if family == "resnext":
        m = cardinality * p // 32
        return conv(c_in, m, 1) + bn(m) + conv(m, m, k3, cardinality) + bn(m) + conv(m, out, 1) + bn(out)
    if bottleneck:
        return conv(c_in, p, 1) + bn(p) + conv(p, p, k3) + bn(p) + conv(p, out, 1) + bn(out)
    return conv(c_in, p, k3) + bn(p) + conv(p, p, k3) + bn(p)


def ref_densenet(blocks, classes, growth=32, init=64, dims=3):
    """models/densenet.py: stem, dense layers BN-conv1 (4·growth)-BN-conv3 (growth), transitions BN-conv halving."""
    k3, k7 = (27, 7 * 49) if dims == 3 else (9, 49)
    total, c = conv(3, init, k7) + bn(init), init
    for i, count in enumerate(blocks):
        for _ in range(count):
            total += bn(c) + conv(c, 4 * growth, 1) + bn(4 * growth) + conv(4 * growth, growth, k3)
            c += growth
        if i < len(blocks) - 1:
            total += bn(c) + conv(c, c // 2, 1)
            c //= 2
    return total + bn(c) + c * classes + classes


def test_reference_formulas_give_the_published_2d_counts():
    """In 2D the same formulas are torchvision's networks, whose counts are published: the formulas are right."""
    assert ref_resnet(18, 1000, dims=2) == 11_689_512          # torchvision resnet18
    assert ref_resnet(50, 1000, dims=2) == 25_557_032          # torchvision resnet50
    assert ref_resnet(50, 1000, "resnext", dims=2) == 25_028_904  # torchvision resnext50_32x4d (same shapes)
    assert ref_densenet((6, 12, 24, 16), 1000, dims=2) == 7_978_856  # torchvision densenet121


def test_formulas_give_the_readmes_3d_counts():
    assert ref_resnet(18, 400) == 33_409_104
    assert ref_resnet(18, 400, "2p1d") == 33_421_164


@pytest.mark.parametrize("build, expected", [(lambda: resnet3d(18, 400), 33_409_104),
                                             (lambda: r2plus1d(18, 400), 33_421_164)])
def test_full_size_resnet18_and_r2plus1d18_have_the_reference_counts(build, expected):
    with keras.StatelessScope(initialize_variables=False):  # shapes only: no 33 M values to draw
        model = build()
    assert torch_param_count(model) == expected
    assert model.output.shape == (None, 400)


@pytest.mark.parametrize("name, build, formula", [
    ("r3d10 A", lambda: resnet3d(10, 7, shortcut="A", widen_factor=0.25, conv1_t_size=3, **SMALL),
     lambda: ref_resnet(10, 7, width=0.25, shortcut="A", t=3)),
    ("preact50", lambda: preact_resnet3d(50, 7, widen_factor=0.125, **SMALL),
     lambda: ref_resnet(50, 7, "preact", width=0.125)),
    ("wide50", lambda: wide_resnet3d(50, 7, k=2, widen_factor=0.0625, **SMALL),
     lambda: ref_resnet(50, 7, "wide", width=0.0625)),
    ("resnext50", lambda: resnext3d(50, 7, cardinality=8, widen_factor=0.25, **SMALL),
     lambda: ref_resnet(50, 7, "resnext", width=0.25, cardinality=8)),
    ("r2plus1d50", lambda: r2plus1d(50, 7, widen_factor=0.125, **SMALL),
     lambda: ref_resnet(50, 7, "2p1d", width=0.125)),
    ("densenet121", lambda: densenet3d(121, 7, widen_factor=0.25, **SMALL),
     lambda: ref_densenet((6, 12, 24, 16), 7, growth=8, init=16)),
])
def test_small_builds_match_the_reference_formula(name, build, formula):
    """One real build per family (bottleneck depths where the family has both; R3D's bottleneck is the block
    wide50 and resnext50 use with other expansion and groups)."""
    model = build()
    assert torch_param_count(model) == formula(), name
    assert model.output.shape == (None, 7)


def test_preact_forward_on_uint8_clips_gives_probabilities():
    model = preact_resnet3d(10, 3, widen_factor=0.125, **SMALL)
    assert torch_param_count(model) == ref_resnet(10, 3, "preact", width=0.125)
    clips = np.random.default_rng(0).integers(0, 256, (2, 4, 32, 32, 3)).astype(np.uint8)
    probs = model(clips, training=False).numpy()
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_unknown_depth_and_shortcut_are_clear_errors():
    with pytest.raises(ValueError, match="depth 19"):
        resnet3d(19, 5)
    with pytest.raises(ValueError, match="shortcut 'C'"):
        resnet3d(10, 5, shortcut="C", **SMALL)
    with pytest.raises(ValueError, match="depth 18"):
        wide_resnet3d(18, 5)


@pytest.mark.parametrize("kernel, strides, groups", [((3, 7, 7), (1, 2, 2), 1), ((3, 3, 3), (2, 2, 2), 2)])
def test_strided_conv3d_equals_keras_conv3d_in_outputs_and_gradients(kernel, strides, groups):
    """StridedConv3D (a sum over stride phases of unstrided convolutions) against keras.layers.Conv3D with the same
    kernel, strides, "valid" padding and no bias: outputs and the gradients of the kernel and the input."""
    import tensorflow as tf

    from ttrnn.baselines.video import StridedConv3D

    x = tf.constant(np.random.default_rng(0).standard_normal((2, 7, 13, 12, 4)), dtype=tf.float32)
    ours = StridedConv3D(6, kernel, strides, groups=groups)
    ref = keras.layers.Conv3D(6, kernel, strides=strides, padding="valid", use_bias=False, groups=groups)
    ours.build(x.shape)
    ref.build(x.shape)
    ref.kernel.assign(ours.kernel)
    results = []
    for layer in (ours, ref):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.cos(y))
        results.append((y, *tape.gradient(loss, [layer.kernel, x])))
    for a, b in zip(*results):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
