"""Per-frame CNN features: a `keras.applications` backbone as a frames -> feature vectors model, and its use on a
clip's frames.

The backbones are TSN's (`ttrnn.baselines.TSN_BACKBONES`, one table), named here as `keras.applications` names
them, lower-cased ("inceptionv3", "resnet50"); TSN's spellings ("inception_v3") are accepted too. The papers that
train compact RNNs on CNN features use InceptionV3 (TR-LSTM, Pan et al. AAAI 2019; BT-LSTM, Ye et al. CVPR 2018) or
ResNet50 (tednet's UCF11 benchmark), each 2,048-d after global average pooling.
"""

import functools
import math
import os

import numpy as np

from ttrnn.baselines.tsn import BACKBONES as TSN_BACKBONES
from ttrnn.baselines.tsn import BackbonePreprocess, WeightsError, imagenet_weights_path, load_weights

BACKBONES = {spec[0].lower(): spec for spec in TSN_BACKBONES.values()}
"""The feature backbones by name (`--backbone`): the TSN table's entries (`ttrnn.baselines.BACKBONES`: constructor in
`keras.applications`, preprocess module, default input size, feature width F, ImageNet weight file), keyed by the
constructor's name lower-cased: inceptionv3, resnet50, resnet101, mobilenetv2, efficientnetb0."""

POOLINGS = ("avg", "max", "none")
"""How the backbone's last feature map (h, w, C) becomes one vector per frame: "avg" or "max" over space
(`keras.applications`' `pooling`: C values, the papers' 2,048-d features), or "none": the map flattened, h*w*C
values that keep where in the frame each feature is (tednet's UCF11 feature benchmark stores such a map, 512x2x2 per
frame; ResNet50 at 64 px gives 2x2x2048 = 8,192 values, `feature_width`)."""

MIN_IMAGE_SIZE = {"inceptionv3": 75}
"""Smallest input size (pixels, square) a backbone accepts where it is not 32 (`keras.applications` checks)."""

_TSN_NAME = {spec[0].lower(): name for name, spec in TSN_BACKBONES.items()}


def backbone_name(name):
    """The `BACKBONES` key of `name`: a key itself, or TSN's spelling of it ("inception_v3" -> "inceptionv3");
    ValueError (one line, listing the names) otherwise."""
    key = str(name).lower()
    if key in TSN_BACKBONES:
        key = TSN_BACKBONES[key][0].lower()
    if key not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return key


def image_size_of(name, image_size=None):
    """The input size (pixels, square) backbone `name` runs at: `image_size`, default its ImageNet size (299 for
    inceptionv3, 224 else); ValueError (one line) below its minimum (`MIN_IMAGE_SIZE`, else 32)."""
    key = backbone_name(name)
    size = int(image_size or BACKBONES[key][2])
    least = MIN_IMAGE_SIZE.get(key, 32)
    if size < least:
        raise ValueError(f"{key} needs an image size of at least {least} pixels, got {size}")
    return size


@functools.lru_cache(maxsize=None)
def _map_shape(key, size):
    """(h, w, C) of backbone `key`'s last feature map at input `size` (its layers built with random weights)."""
    import keras
    base = getattr(keras.applications, BACKBONES[key][0])(include_top=False, weights=None, pooling=None,
                                                          input_shape=(size, size, 3))
    return tuple(int(d) for d in base.output_shape[1:])


def feature_width(name, pooling="avg", image_size=None):
    """F, the values per frame of `backbone_model(name, pooling=pooling, image_size=image_size)`: the backbone's
    width (`BACKBONES`, 2,048 for inceptionv3 and resnet50) after "avg" / "max" pooling; h*w*C of its last feature
    map for "none" (resnet50: 2x2x2048 = 8,192 at 64 px, 7x7x2048 = 100,352 at 224; inceptionv3: 1x1x2048 at
    75 px, 2x2x2048 at 107, 3x3x2048 at 139). For "none" the backbone's layers are built once per (name, size) to
    read the map's shape (about a second)."""
    key = backbone_name(name)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if pooling != "none":
        return int(BACKBONES[key][3])
    return math.prod(_map_shape(key, image_size_of(key, image_size)))


def resolve_weights(name, weights, image_size=None):
    """The weights `backbone_model` loads, as a local file path or None: None / "none" -> None (random init),
    "imagenet" -> the ImageNet no-top file (`ttrnn.baselines.imagenet_weights_path`: the Keras cache, else a
    download; `WeightsError` in one line when neither works), a path -> that file (`WeightsError` when missing)."""
    key = backbone_name(name)
    if weights is None or str(weights).lower() == "none":
        return None
    if weights == "imagenet":
        return imagenet_weights_path(_TSN_NAME[key], image_size)
    if not os.path.isfile(str(weights)):
        raise WeightsError(f"weights file not found: {weights} (use none, imagenet or a .h5/.weights.h5 path "
                               f"of a {key} backbone)")
    return os.path.abspath(str(weights))


def backbone_model(name, weights=None, pooling="avg", image_size=None):
    """A Keras model: uint8 RGB frames `(N, H, W, 3)` (any H, W) -> float32 features `(N, F)`.

    Each frame is resized whole (bilinear, aspect ratio not kept: the feature describes the whole frame, as the
    papers' extraction does) to `image_size` x `image_size`, passed through the backbone's own `preprocess_input`
    (`ttrnn.baselines.BackbonePreprocess`) and the `keras.applications` backbone without its classifier, pooled
    over space (`pooling` "avg" or "max": F is the backbone's width, `BACKBONES`, 2,048 for inceptionv3 and
    resnet50) or flattened (`pooling="none"`: the last feature map (h, w, C) as h*w*C values, row by row, channels
    fastest; `feature_width`).

    Args:
        name: a `BACKBONES` key (or TSN's spelling).
        weights: None (random init), "imagenet" (`resolve_weights`) or the path of the backbone's weights (a
            `keras.applications` no-top file, or `model.get_layer(name).save_weights(...)`).
        pooling: "avg" (the papers'), "max" or "none" (the map flattened: keeps where things are in the frame,
            which pooling throws away; pick a small `image_size` so the map is small).
        image_size: the backbone's input size (default its ImageNet size: 299 for inceptionv3, 224 else); smaller
            sizes make tests and trials cheap (inceptionv3 needs >= 75).

    Cost: one backbone forward per frame (InceptionV3 at 299: about 5.7 GFLOPs; ResNet50 at 224: about 4.1).
    """
    import keras
    from keras import layers

    key = backbone_name(name)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    size = image_size_of(key, image_size)
    path = resolve_weights(key, weights, size)
    ctor = BACKBONES[key][0]
    base = getattr(keras.applications, ctor)(include_top=False, weights=None,
                                             pooling=None if pooling == "none" else pooling,
                                             input_shape=(size, size, 3), name=key)
    if path is not None:
        load_weights(base, path)
    frames = keras.Input((None, None, 3), dtype="uint8", name="frames")
    x = layers.Resizing(size, size, name="resize")(frames)   # float32 out; the identity at the same size
    x = BackbonePreprocess(_TSN_NAME[key], name="preprocess")(x)
    x = base(x)
    if pooling == "none":
        x = layers.Flatten(name="feature_map")(x)
    return keras.Model(frames, x, name=f"features_{key}")


def default_batch():
    """Frames per backbone call for this machine: 64 where TensorFlow sees a GPU, else 8 (a CPU gains nothing
    from larger batches; docs/performance.md has the measured frames/s per batch size)."""
    try:
        import tensorflow as tf
        gpu = bool(tf.config.list_physical_devices("GPU"))
    except ImportError:
        gpu = False
    return 64 if gpu else 8


class FrameBatcher:
    """Packs the frames of successive clips into fixed-size batches for one model and hands each clip back once
    all its features are computed.

    Why fixed-size: every call of the model then has one shape (one trace, one compiled program on a GPU), and
    short clips share a batch instead of each paying a call. The rows of the last, partial batch beyond the real
    frames hold stale frames whose outputs are dropped (in inference each row is computed on its own).

    Args:
        model: frames uint8 (N, H, W, 3) -> (N, F) (`backbone_model`).
        batch: frames per call.
        frame_shape: (H, W, 3) of the frames.
        dtype: the dtype of the features handed back (float16 by default).

    Example::

        batcher = FrameBatcher(model, 16, (120, 160, 3))
        done = list(batcher.add("clip-a", frames_a)) + list(batcher.add("clip-b", frames_b)) + list(batcher.flush())
        # [(key, features (T, F)), ...] in the order the clips were added
    """

    def __init__(self, model, batch, frame_shape, dtype="float16"):
        self.model, self.batch, self.dtype = model, int(batch), np.dtype(dtype)
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.width = int(model.output_shape[-1])
        self.x = np.zeros((self.batch,) + tuple(frame_shape), np.uint8)
        self.n = 0
        self.parts = []      # (clip, first frame of the clip, first row of the batch, frames) in the batch
        self.open = []       # clips added and not yet handed back: [key, features, frames left]

    def add(self, key, frames):
        """Queue the frames uint8 (T >= 1, H, W, 3) of clip `key`; yields the (key, features (T, F)) of clips
        finished by the batches this fills."""
        frames = np.asarray(frames)
        if len(frames) == 0:
            raise ValueError(f"clip {key} has no frames")
        clip = [key, np.empty((len(frames), self.width), self.dtype), len(frames)]
        self.open.append(clip)
        t = 0
        while t < len(frames):
            k = min(self.batch - self.n, len(frames) - t)
            self.x[self.n:self.n + k] = frames[t:t + k]
            self.parts.append((clip, t, self.n, k))
            self.n, t = self.n + k, t + k
            if self.n == self.batch:
                yield from self.flush()

    def flush(self):
        """Run the model on the frames queued so far (a partial batch included); yields the clips finished."""
        if self.n:
            y = np.asarray(self.model.predict_on_batch(self.x))
            for clip, t, j, k in self.parts:
                clip[1][t:t + k] = y[j:j + k]
                clip[2] -= k
            self.n, self.parts = 0, []
        while self.open and self.open[0][2] == 0:
            key, features, _ = self.open.pop(0)
            yield key, features


def extract_frames(model, frames, batch=None, dtype="float16"):
    """The features of one clip: frames uint8 `(T, H, W, 3)` -> `(T, F)` in `dtype` (float16 by default), the
    model (`backbone_model`) run on fixed batches of `batch` frames (default `default_batch()`). What
    `python -m experiments.features` stores for a clip, and what `predict` computes for a raw video."""
    frames = np.asarray(frames, np.uint8)
    batcher = FrameBatcher(model, batch or default_batch(), frames.shape[1:], dtype)
    done = list(batcher.add(0, frames)) + list(batcher.flush())
    return done[0][1]
