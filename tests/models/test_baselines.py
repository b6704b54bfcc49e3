"""TSN and C3D baselines (ttrnn.baselines): exact sizes, wiring, serialization, weight files, offline errors."""

import os
import urllib.error

import h5py
import keras
import numpy as np
import pytest

from ttrnn import baselines
from ttrnn.baselines import WeightsError, c3d, set_backbone_trainable, tsn

SMALL = dict(backbone="mobilenet_v2", num_segments=3, input_size=32)  # fast TSN for behaviour tests


def _perturb(model, seed=0):
    """Move every weight away from its initial value so predictions depend on all of them."""
    gen = np.random.default_rng(seed)
    for v in model.weights:
        if "variance" not in v.path:
            v.assign(v.numpy() + 0.1 * gen.standard_normal(v.shape).astype("float32"))


def _clips(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


def _params(layer):
    return sum(int(np.prod(w.shape)) for w in layer.weights)


def test_c3d_full_width_matches_original_parameter_count():
    model = c3d(11)
    assert model.count_params() == 78_040_843
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv3D)]
    assert [conv.filters for conv in convs] == [64, 128, 256, 256, 512, 512, 512, 512]
    assert sum(_params(conv) for conv in convs) == 27_655_936
    assert _params(model.get_layer("fc6")) == 33_558_528  # 8192 × 4096 + 4096: pool5 is 512 × 1 × 4 × 4
    assert _params(model.get_layer("fc7")) == 16_781_312
    assert _params(model.get_layer("classifier")) == 4096 * 11 + 11
    assert tuple(model.get_layer("pool5").output.shape) == (None, 1, 4, 4, 512)


def test_c3d_quarter_width_forward_on_uint8_frames():
    model = c3d(4, input_shape=(8, 32, 32, 3), width=0.25)
    assert [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv3D)] == \
        [16, 32, 64, 64, 128, 128, 128, 128]
    assert model.get_layer("fc6").units == 1024
    probs = model.predict(_clips((2, 8, 32, 32, 3)), verbose=0)
    assert probs.shape == (2, 4) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_tsn_resnet50_has_backbone_plus_linear_head_parameters():
    reference = keras.applications.ResNet50(include_top=False, pooling="avg", weights=None)
    model = tsn(11)
    assert model.count_params() == reference.count_params() + 2048 * 11 + 11


@pytest.mark.parametrize("name, ctor, size", [("resnet101", "ResNet101", 32),
                                              ("mobilenet_v2", "MobileNetV2", 32),
                                              ("efficientnet_b0", "EfficientNetB0", 32),
                                              ("inception_v3", "InceptionV3", 75)])
def test_tsn_other_backbones_parameter_counts(name, ctor, size):
    reference = getattr(keras.applications, ctor)(include_top=False, pooling="avg", weights=None,
                                                  input_shape=(size, size, 3))
    features = reference.output.shape[-1]
    model = tsn(5, backbone=name, input_size=size)
    assert model.count_params() == reference.count_params() + features * 5 + 5


def test_tsn_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown TSN backbone"):
        tsn(3, backbone="vgg99")


def _small_backbone(include_top=False, weights=None, pooling="avg", input_shape=None, name="backbone"):
    """A deterministic stand-in for a keras.applications backbone: conv + tanh + average pooling. Its features
    have real magnitude (a random-init MobileNetV2 gives ~1e-13, so a TSN on it outputs its head's bias)."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="tanh", kernel_initializer=keras.initializers.RandomNormal(
        stddev=0.1, seed=3), bias_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=4))(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name=name)


def test_tsn_forward_is_average_consensus_of_shared_backbone(monkeypatch):
    """Against an independent reference built from the parts: centre crop, resize, MobileNetV2 preprocessing,
    the backbone per segment, the mean over segments, the classifier."""
    monkeypatch.setattr(keras.applications, "MobileNetV2", _small_backbone)
    model = tsn(5, **SMALL)
    head = model.get_layer("classifier")
    head.kernel.assign(np.random.default_rng(1).standard_normal(head.kernel.shape).astype("float32") * 3)
    brightness = np.array([[30, 220, 120], [200, 60, 140]])[:, :, None, None, None]  # per clip and segment
    clips = np.clip(_clips((2, 3, 24, 32, 3)) // 4 + brightness - 32, 0, 255).astype(np.uint8)
    probs = model.predict(clips, verbose=0)
    assert probs.shape == (2, 5) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert np.ptp(probs, axis=1).min() > 0.05 and np.abs(probs[0] - probs[1]).max() > 0.02  # input-dependent

    backbone, head = model.get_layer("backbone"), model.get_layer("classifier")
    resize = keras.layers.Resizing(32, 32)
    segment_features, expected = [], []
    for clip in clips:
        square = clip[:, :, 4:28].astype("float32")  # the centre 24 x 24 of a 24 x 32 frame
        feats = keras.ops.convert_to_numpy(
            backbone(keras.applications.mobilenet_v2.preprocess_input(resize(square)), training=False))
        segment_features.append(feats)
        expected.append(feats.mean(axis=0))
    expected = np.stack(expected)
    scale = np.abs(expected).max()
    assert scale > 1e-2  # features of real magnitude
    features = keras.Model(model.input, model.get_layer("consensus").output).predict(clips, verbose=0)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4 * scale)
    # the mean of all three segments, not of a subset: each segment's features differ from the mean
    for feats in segment_features:
        assert np.abs(feats - feats.mean(axis=0)).max(axis=1).min() > 0.05 * scale
    reference = keras.ops.convert_to_numpy(head(expected))
    np.testing.assert_allclose(probs, reference, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.predict(clips.astype("float32"), verbose=0), probs, rtol=1e-5, atol=1e-7)
    # segment order does not matter, the frames do
    np.testing.assert_allclose(model.predict(clips[:, ::-1], verbose=0), probs, rtol=1e-4, atol=1e-7)
    assert np.abs(model.predict(clips[::-1], verbose=0) - probs).max() > 0.02


def test_tsn_and_c3d_save_and_load_keras_files(tmp_path, monkeypatch):
    monkeypatch.setattr(keras.applications, "MobileNetV2", _small_backbone)  # features of real magnitude
    clips = _clips((2, 3, 20, 28, 3), seed=1) // 2 + np.array([0, 120], np.uint8)[:, None, None, None, None]
    model = tsn(4, **SMALL)
    _perturb(model)
    model.save(tmp_path / "tsn.keras")
    loaded = keras.models.load_model(tmp_path / "tsn.keras")
    expected = model.predict(clips, verbose=0)
    assert np.abs(expected[0] - expected[1]).max() > 0.02  # the backbone's weights matter
    np.testing.assert_allclose(loaded.predict(clips, verbose=0), expected, rtol=1e-5, atol=1e-7)
    assert isinstance(loaded.get_layer("consensus"), baselines.SegmentConsensus)

    small = c3d(3, input_shape=(4, 16, 16, 3), width=0.125)
    small.save(tmp_path / "c3d.keras")
    video = _clips((2, 4, 16, 16, 3), seed=2)
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "c3d.keras").predict(video, verbose=0),
                               small.predict(video, verbose=0), atol=1e-6)


def test_tsn_weights_path_whole_model_and_backbone_only(tmp_path):
    clips = _clips((2, 3, 16, 16, 3), seed=3)
    source = tsn(5, **SMALL)
    _perturb(source)
    source.save_weights(tmp_path / "tsn.weights.h5")
    source.get_layer("backbone").save_weights(tmp_path / "backbone.weights.h5")

    expected = source.predict(clips, verbose=0)
    assert np.ptp(expected) > 0.1  # far from the uniform output of a fresh head
    reloaded = tsn(5, weights=str(tmp_path / "tsn.weights.h5"), **SMALL)
    np.testing.assert_allclose(reloaded.predict(clips, verbose=0), expected, atol=1e-6)
    for got, want in zip(reloaded.weights, source.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())

    backbone_only = tsn(5, weights=str(tmp_path / "backbone.weights.h5"), **SMALL)
    for got, want in zip(backbone_only.get_layer("backbone").weights, source.get_layer("backbone").weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())

    with pytest.raises(WeightsError, match="neither whole-model weights"):  # other head size
        tsn(7, weights=str(tmp_path / "tsn.weights.h5"), **SMALL)
    with pytest.raises(WeightsError, match="not found"):
        tsn(5, weights=str(tmp_path / "missing.weights.h5"), **SMALL)


def _offline(monkeypatch, keras_home):
    """No network: Keras's downloader fails like a machine without internet; the cache is `keras_home`."""
    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", refuse)


def test_imagenet_offline_gives_one_line_error_with_file_location(tmp_path, monkeypatch):
    _offline(monkeypatch, tmp_path)
    name = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    with pytest.raises(WeightsError) as info:
        tsn(5, backbone="mobilenet_v2", input_size=96, weights="imagenet")
    message = str(info.value)
    assert "\n" not in message
    assert "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/" + name in message
    assert str(tmp_path / "models" / name) in message
    assert not (tmp_path / "models" / name).exists()


def test_imagenet_weights_copied_into_keras_cache_load_offline(tmp_path, monkeypatch):
    _offline(monkeypatch, tmp_path)
    donor = keras.applications.MobileNetV2(include_top=False, pooling="avg", weights=None,
                                           input_shape=(96, 96, 3))
    _perturb(donor)
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    from keras.src.legacy.saving import legacy_h5_format  # the format of the published application files

    with h5py.File(target, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, donor)
    model = tsn(5, backbone="mobilenet_v2", input_size=96, weights="imagenet")
    for got, want in zip(model.get_layer("backbone").weights, donor.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert os.listdir(tmp_path / "models") == [target.name]


def test_set_backbone_trainable_freezes_only_the_backbone():
    model = tsn(5, **SMALL)
    total = len(model.trainable_weights)
    set_backbone_trainable(model, False)
    assert [w.path for w in model.trainable_weights] == ["classifier/kernel", "classifier/bias"]
    set_backbone_trainable(model, True)
    assert len(model.trainable_weights) == total
