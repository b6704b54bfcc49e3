"""Non-local blocks and the C2D / I3D ResNet-50 of video-nonlocal-net (ttrnn.baselines.nonlocal_net).

References: a NumPy transcription of Wang et al.'s formulas (eq. 1-3, with the reference code's 1/√inner softmax
scaling for the embedded Gaussian), the parameter formula of lib/models/resnet_video.py + nonlocal_helper.py
anchored on ResNet-50's published 2D count, and 2D convolutions for the ImageNet inflation.
"""
import keras
import numpy as np
import pytest

from ttrnn.baselines import NonLocal, WeightsError, c2d_resnet50, i3d_resnet50, inflate_2d_weights, torch_param_count
from ttrnn.baselines.nonlocal_net import I3D_TEMPORAL

RNG = np.random.default_rng(0)


def numpy_nonlocal(x, w, mode, eps=1e-5):
    """Wang et al.: y_i = Σ_j f(x_i, x_j) g(x_j) / C(x); z = x + BN(W_z y). φ and g on x max-pooled 1×2×2."""
    b, t, h, wd, c = x.shape
    pooled = x.reshape(b, t, h // 2, 2, wd // 2, 2, c).max(axis=(3, 5))
    flat, pflat = x.reshape(b, -1, c), pooled.reshape(b, -1, c)
    g = pflat @ w["g_kernel"] + w["g_bias"]
    if mode == "gaussian":
        theta, phi = flat, pflat
    else:
        theta, phi = flat @ w["theta_kernel"] + w["theta_bias"], pflat @ w["phi_kernel"] + w["phi_bias"]
    f = np.einsum("bnc,bmc->bnm", theta, phi)
    if mode == "dot_product":
        f = f / phi.shape[1]
    else:
        if mode == "embedded_gaussian":
            f = f / np.sqrt(theta.shape[-1])
        f = np.exp(f - f.max(axis=-1, keepdims=True))
        f = f / f.sum(axis=-1, keepdims=True)
    z = (f @ g) @ w["out_kernel"] + w["out_bias"]
    z = w["gamma"] * (z - w["moving_mean"]) / np.sqrt(w["moving_variance"] + eps) + w["beta"]
    return x + z.reshape(x.shape)


def test_a_new_block_returns_its_input_exactly():
    x = RNG.standard_normal((2, 2, 4, 6, 8)).astype(np.float32)
    layer = NonLocal()
    for training in (False, True):
        assert np.array_equal(layer(x, training=training).numpy(), x)


@pytest.mark.parametrize("mode", ["embedded_gaussian", "dot_product", "gaussian"])
def test_block_with_random_weights_equals_the_numpy_formula(mode):
    x = RNG.standard_normal((2, 2, 4, 6, 8)).astype(np.float32)
    layer = NonLocal(mode, inner=4)
    layer(x)
    weights = {}
    for v in layer.weights:
        name = v.path.split("/")[-1]
        value = RNG.uniform(0.5, 1.5, v.shape) if "variance" in name else 0.5 * RNG.standard_normal(v.shape)
        v.assign(value.astype(np.float32))
        weights[name] = value.astype(np.float64)
    got = layer(x, training=False).numpy()
    np.testing.assert_allclose(got, numpy_nonlocal(x.astype(np.float64), weights, mode), atol=1e-5, rtol=1e-5)


def ref_nonlocal_resnet50(classes, temporal, nonlocal_every, dims=3, width=1.0):
    """lib/models/resnet_video.py: conv1 (1+2u)×7×7 → res2 … res5 bottlenecks (first conv (1+2u)×1×1, 1×3×3,
    1×1×1, BN after each, 1×1×1+BN shortcut when shape changes) + non-local blocks (θ, φ, g, out + biases, BN)."""
    def sc(n):
        return int(n * width)
    t_scale = (lambda u: 1 + 2 * u) if dims == 3 else (lambda u: 1)
    total, c_in = 3 * sc(64) * t_scale(temporal[0][0]) * 49 + 2 * sc(64), sc(64)
    for s, (count, inner, out) in enumerate(((3, 64, 256), (4, 128, 512), (6, 256, 1024), (3, 512, 2048))):
        inner, out = sc(inner), sc(out)
        for b in range(count):
            total += c_in * inner * t_scale(temporal[s + 1][b]) + inner * inner * 9 + inner * out
            total += 2 * (2 * inner + out)  # three BNs
            if b == 0:
                total += c_in * out + 2 * out
            c_in = out
            if nonlocal_every and s in (1, 2) and b % nonlocal_every == nonlocal_every - 1:
                half = out // 2
                total += 3 * (out * half + half) + half * out + out + 2 * out
    return total + c_in * classes + classes


C2D = ((0,), (0, 0, 0), (0,) * 4, (0,) * 6, (0,) * 3)
I3D = ((2,),) + I3D_TEMPORAL


def test_formula_gives_resnet50s_published_2d_count():
    assert ref_nonlocal_resnet50(1000, C2D, 0, dims=2) == 25_557_032  # torchvision resnet50


@pytest.mark.parametrize("build, temporal", [(c2d_resnet50, C2D), (i3d_resnet50, I3D)])
def test_small_c2d_and_i3d_match_the_reference_formula_and_place_5_blocks(build, temporal):
    model = build(6, width=0.125, input_shape=(4, 32, 32, 3))
    assert torch_param_count(model) == ref_nonlocal_resnet50(6, temporal, 2, width=0.125)
    names = [layer.name for layer in model.layers if isinstance(layer, NonLocal)]
    assert names == ["nonlocal3_2", "nonlocal3_4", "nonlocal4_2", "nonlocal4_4", "nonlocal4_6"]
    kernels = [model.get_layer(f"conv{s + 2}_block{b + 1}_1_conv").kernel.shape[0]
               for s, row in enumerate(temporal[1:]) for b in range(len(row))]
    assert kernels == [1 + 2 * u for row in temporal[1:] for u in row]
    assert model.get_layer("conv1_conv").kernel.shape[:3] == (1 + 2 * temporal[0][0], 7, 7)


def test_saved_i3d_with_active_nonlocal_blocks_loads_back_with_the_same_predictions(tmp_path):
    import ttrnn
    model = i3d_resnet50(3, width=0.125, input_shape=(4, 32, 32, 3))
    for v in model.weights:
        if v.path.endswith("gamma"):  # non-local BN γ ≠ 0: the blocks contribute
            v.assign(np.full(v.shape, 0.5, np.float32))
    model.save(tmp_path / "m.keras")
    clips = RNG.integers(0, 256, (2, 4, 32, 32, 3)).astype(np.uint8)
    loaded = ttrnn.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded(clips, training=False).numpy(), model(clips, training=False).numpy())


def test_inflation_repeats_2d_kernels_over_time_and_folds_biases():
    """A clip of identical frames through an inflated t×7×7 conv equals the 2D conv (where time is not padded)."""
    model = i3d_resnet50(4, width=0.125, input_shape=(5, 32, 32, 3), nonlocal_blocks=0)
    frame = keras.Input((32, 32, 3))
    conv = keras.layers.Conv2D(8, 7, strides=2, name="conv1_conv")  # as keras.applications: pad 3, then valid
    x = keras.layers.BatchNormalization(name="conv1_bn")(conv(keras.layers.ZeroPadding2D(3)(frame)))
    x = keras.layers.Conv2D(8, 1, name="conv2_block1_1_conv")(x)
    base = keras.Model(frame, keras.layers.BatchNormalization(name="conv2_block1_1_bn")(x))
    for v in base.weights:
        v.assign(RNG.uniform(0.5, 1.5, v.shape).astype(np.float32))
    assert inflate_2d_weights(model, base) == 2
    image = RNG.uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)
    clip = np.repeat(image[:, None], 5, axis=1)
    padded = model.get_layer("conv1_conv_pad")(clip)  # PyTorch-style symmetric padding (2, 3, 3)
    got = model.get_layer("conv1_conv")(padded).numpy()[:, 2]  # t = 2 sees all 5 kernel taps on real frames
    want = conv(np.pad(image, [(0, 0), (3, 3), (3, 3), (0, 0)])).numpy() - conv.bias.numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    mean2d, bias = base.get_layer("conv2_block1_1_bn").moving_mean.numpy(), base.get_layer("conv2_block1_1_conv").bias
    np.testing.assert_allclose(model.get_layer("conv2_block1_1_conv_bn").moving_mean.numpy(),
                               mean2d - bias.numpy(), rtol=1e-6)


def test_imagenet_offline_is_a_one_line_error_before_the_build(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", refuse)
    with pytest.raises(WeightsError) as err:
        c2d_resnet50(5, weights="imagenet")
    assert "\n" not in str(err.value) and "resnet50_weights" in str(err.value)
