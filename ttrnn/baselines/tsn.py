"""TSN (a 2D ImageNet backbone over sparse segments) and the ImageNet weight files every 2D-initialized baseline uses.

`tsn(...)`: `(batch, num_segments, H, W, 3)` uint8 frames as read from the store → `(batch, num_classes)` class
probabilities; the model resizes and scales pixels itself, so the pipeline only samples indices (`ttrnn.data.sampling`).
"""

import os
import socket
import warnings

import keras
from keras import layers, ops

__all__ = ["tsn", "load_weights", "set_backbone_trainable", "imagenet_weights_path", "WeightsError", "BACKBONES",
           "MergeSegments", "SegmentConsensus", "BackbonePreprocess"]

_APP_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
_MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)


class WeightsError(ValueError):
    """Backbone weights could not be found, downloaded or loaded (message is one line, says what to do)."""


def _mobilenet_v2_file(size):
    rows = size if size in _MOBILENET_V2_SIZES else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5", "mobilenet_v2/"


BACKBONES = {
    "resnet50": ("ResNet50", "resnet", 224, 2048,
                 lambda s: ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "resnet/")),
    "resnet101": ("ResNet101", "resnet", 224, 2048,
                  lambda s: ("resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5", "resnet/")),
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2", 224, 1280, _mobilenet_v2_file),
    "efficientnet_b0": ("EfficientNetB0", "efficientnet", 224, 1280,
                        lambda s: ("efficientnetb0_notop.h5", "")),
    "inception_v3": ("InceptionV3", "inception_v3", 299, 2048,
                     lambda s: ("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", "inception_v3/")),
}
"""The TSN backbones by name (`--backbone`): (constructor name in `keras.applications`, its preprocess module, default
input size, feature width, and for an input size the ImageNet no-top weights file as (file name, url folder))."""


def _backbone_spec(name):
    if name not in BACKBONES:
        raise ValueError(f"unknown TSN backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def _keras_cache_dir():
    """Where `keras.utils.get_file` caches application weights: `$KERAS_HOME/models` or `~/.keras/models`."""
    return os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras"))), "models")


def _download(fname, url, cache_dir):
    """Fetch `url` into `cache_dir/fname` with Keras's downloader (30 s socket timeout); returns the path."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        return keras.utils.get_file(fname, url, cache_dir=os.path.dirname(cache_dir),
                                    cache_subdir=os.path.basename(cache_dir))
    finally:
        socket.setdefaulttimeout(old)


def imagenet_weights_path(backbone, input_size=None):
    """Local path of the backbone's ImageNet no-top weights: the Keras cache if present, else downloaded.

    Looks in `$KERAS_HOME/models` (default `~/.keras/models`) and Keras's fallback `/tmp/.keras/models` first,
    so a file copied there by hand works offline. Raises `WeightsError` (one line: URL and where to put the
    file) when it is absent and cannot be downloaded.
    """
    _, _, default_size, _, weights_file = _backbone_spec(backbone)
    fname, folder = weights_file(input_size or default_size)
    url = _APP_URL + folder + fname
    cache_dir = _keras_cache_dir()
    for directory in (cache_dir, os.path.join("/tmp", ".keras", "models")):
        candidate = os.path.join(directory, fname)
        if os.path.isfile(candidate):
            return candidate
    target = os.path.join(cache_dir, fname)
    try:
        return _download(fname, url, cache_dir)
    except Exception as exc:  # network errors come back as bare Exception from keras.utils.get_file
        reason = (str(exc).splitlines() or [type(exc).__name__])[0].split(" -- ")[-1]
        raise WeightsError(f"cannot download ImageNet weights for {backbone} ({reason}); download {url} "
                           f"and put it at {target}") from None


@keras.saving.register_keras_serializable(package="ttrnn")
class MergeSegments(layers.Layer):
    """Fold segments into the batch: `(batch, S, H, W, C)` → `(batch*S, H, W, C)`, cast to float32."""

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        shape = ops.shape(x)
        return ops.reshape(x, (-1,) + tuple(shape[2:]))

    def compute_output_shape(self, input_shape):
        batch, segs = input_shape[0], input_shape[1]
        merged = None if batch is None or segs is None else batch * segs
        return (merged,) + tuple(input_shape[2:])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype="float32")


@keras.saving.register_keras_serializable(package="ttrnn")
class SegmentConsensus(layers.Layer):
    """Average consensus: `(batch*S, F)` → `(batch, F)`, the mean over each clip's S segment features."""

    def __init__(self, num_segments, **kwargs):
        super().__init__(**kwargs)
        self.num_segments = int(num_segments)

    def call(self, inputs):
        x = ops.reshape(inputs, (-1, self.num_segments, ops.shape(inputs)[-1]))
        return ops.mean(x, axis=1)

    def compute_output_shape(self, input_shape):
        merged = input_shape[0]
        return (None if merged is None else merged // self.num_segments, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "num_segments": self.num_segments}


@keras.saving.register_keras_serializable(package="ttrnn")
class BackbonePreprocess(layers.Layer):
    """The backbone's own `keras.applications.<module>.preprocess_input` on RGB pixels in [0, 255].

    ResNet: RGB→BGR and ImageNet mean subtraction ("caffe"); MobileNetV2 / InceptionV3: scale to [-1, 1];
    EfficientNet: identity (the network rescales and normalises internally).
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        _backbone_spec(backbone)
        self.backbone = backbone

    def call(self, inputs):
        module = getattr(keras.applications, BACKBONES[self.backbone][1])
        return module.preprocess_input(ops.cast(inputs, "float32"))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}


def tsn(num_classes, backbone="resnet50", num_segments=3, weights=None, dropout=0.5, input_size=None,
        activation="softmax"):
    """Temporal Segment Network: a shared 2D backbone on `num_segments` frames, average consensus, classifier.

    Input `(batch, num_segments, H, W, 3)` RGB frames as read from the store (uint8 or float in [0, 255]; any
    H, W). Each frame is centre-cropped to a square and resized to `input_size` (default: the backbone's
    ImageNet size, 224; 299 for inception_v3), passed through the backbone's `preprocess_input`, then through
    one `keras.applications` backbone (`include_top=False, pooling='avg'`, layer name "backbone") shared by
    all segments; features are averaged over segments, then dropout and a softmax Dense head.
    Output `(batch, num_classes)` float32 probabilities (`activation="sigmoid"` for multi-label stores).

    weights: None (random init), "imagenet" (backbone from the Keras cache or downloaded, see
    `imagenet_weights_path`; raises `WeightsError` offline), or a local `.h5` / `.weights.h5` path. A path is
    first loaded as whole-model weights (`model.save_weights(...)` of a TSN built with the same arguments,
    which reproduces that model's predictions); if it does not fit the whole model it is loaded into the
    backbone alone (e.g. a keras.applications no-top file, or `model.get_layer("backbone").save_weights`).
    """
    ctor_name, _, default_size, _, _ = _backbone_spec(backbone)
    size = int(input_size or default_size)
    backbone_weights = None
    if weights == "imagenet":
        backbone_weights = imagenet_weights_path(backbone, size)
    elif weights is not None and not os.path.isfile(str(weights)):
        raise WeightsError(f"weights file not found: {weights} (use none, imagenet or a .h5/.weights.h5 path)")

    base = getattr(keras.applications, ctor_name)(include_top=False, weights=None, pooling="avg",
                                                  input_shape=(size, size, 3), name="backbone")
    if backbone_weights is not None:
        load_weights(base, backbone_weights)

    frames = keras.Input((num_segments, None, None, 3), name="frames")
    x = MergeSegments(name="merge_segments")(frames)
    x = layers.Resizing(size, size, crop_to_aspect_ratio=True, name="resize")(x)
    x = BackbonePreprocess(backbone, name="preprocess")(x)
    x = base(x)
    x = SegmentConsensus(num_segments, name="consensus")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    probs = layers.Dense(num_classes, activation=activation, name="classifier")(x)
    model = keras.Model(frames, probs, name=f"tsn_{backbone}")

    if weights is not None and weights != "imagenet":
        try:
            load_weights(model, weights)
        except WeightsError as whole_error:
            try:
                load_weights(base, weights)
            except WeightsError:
                raise WeightsError(f"{weights} is neither whole-model weights of this TSN (same backbone, "
                                   f"input_size, num_segments, num_classes) nor weights of its {backbone} "
                                   f"backbone ({str(whole_error)[:200]})") from None
    return model


def load_weights(model, path):
    """`model.load_weights(path)` with every mismatch or unreadable file turned into a one-line WeightsError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # Keras 3 only warns on some mismatches: make them fail
        try:
            model.load_weights(str(path))
        except Exception as exc:
            reason = " ".join(str(exc).split())[:300]
            raise WeightsError(f"cannot load {path} into {model.name}: {reason}") from None


def set_backbone_trainable(model, flag):
    """Freeze (`flag=False`) or unfreeze the TSN backbone, e.g. for the first epochs; recompile afterwards.

    A frozen backbone also runs its BatchNormalization layers in inference mode (Keras 3 semantics).
    """
    model.get_layer("backbone").trainable = bool(flag)
    return model
