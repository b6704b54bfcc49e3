"""Per-frame CNN features: `keras.applications` backbones as frame -> feature models, and feature stores.

The successors of the TT-RNN paper (TR-LSTM, BT-LSTM, tednet's benchmark) train compact RNNs on per-frame CNN
features instead of raw pixels. A feature store is a ttrnn store (`ttrnn.store`: same index, labels, groups,
splits, crash-safe writer, lock, resume, check and repair) whose clips are float16 `(T, F)` feature vectors, with
`FrameStore.features` saying how they were computed; the data feed batches it as it batches frames.

- `backbones`: `BACKBONES`, `backbone_model` (uint8 frames -> float32 features), `extract_frames` (one clip),
  `FrameBatcher` (fixed-size batches across clips), `default_batch`, `feature_width`;
- `extract`: `extract_store`, a frame store -> a feature store (reader processes overlapped with the backbone).

The command line is `python -m experiments.features` (it lives in `experiments/`, as `preprocess/` never imports
TensorFlow). This package imports Keras.

Example::

    from ttrnn.features import backbone_model, extract_frames
    model = backbone_model("inceptionv3", weights="imagenet")
    features = extract_frames(model, frames)      # uint8 (T, H, W, 3) -> float16 (T, 2048)
"""
from ttrnn.features.backbones import (
    BACKBONES,
    MIN_IMAGE_SIZE,
    POOLINGS,
    FrameBatcher,
    backbone_model,
    backbone_name,
    default_batch,
    extract_frames,
    feature_width,
    image_size_of,
    resolve_weights,
)
from ttrnn.features.extract import clip_plans, clip_rate, extract_store, feature_spec

__all__ = ["BACKBONES", "MIN_IMAGE_SIZE", "POOLINGS", "FrameBatcher", "backbone_model", "backbone_name",
           "default_batch", "extract_frames", "feature_width", "image_size_of", "resolve_weights", "extract_store",
           "feature_spec", "clip_plans", "clip_rate"]
