"""C3D (Tran et al. 2015), the classic 3D CNN: `(batch, 16, 112, 112, 3)` uint8 clips → class probabilities."""

import keras
from keras import layers

__all__ = ["c3d"]


def c3d(num_classes, input_shape=(16, 112, 112, 3), width=1.0, dropout=0.5, activation="softmax"):
    """C3D (Tran et al. 2015): 8 conv3d 3×3×3 layers, 5 max-pools, fc6/fc7 with dropout, softmax classifier.

    Input `(batch, T, H, W, 3)` RGB frames (uint8 or float in [0, 255]; default 16×112×112), scaled inside
    the model to [-1, 1] by `x / 127.5 - 1`. Filters 64-128-256-256-512-512-512-512 and fc 4096, all times
    `width` (e.g. 0.25 for small machines). pool1 is 1×2×2, the others 2×2×2, all with "same" padding,
    which equals the Caffe original's ceil-mode pool5 (512×1×4×4 = 8192 features at 16×112×112) and lets
    small test shapes work. Output `(batch, num_classes)` float32 probabilities (`activation="sigmoid"` for
    multi-label stores).
    """
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")

    def scaled(n):
        return max(1, int(round(n * width)))

    clip = keras.Input(tuple(input_shape), name="frames")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(clip)
    blocks = [("1", [64], (1, 2, 2)), ("2", [128], (2, 2, 2)), ("3", [256, 256], (2, 2, 2)),
              ("4", [512, 512], (2, 2, 2)), ("5", [512, 512], (2, 2, 2))]
    for block, filters, pool in blocks:
        for sub, f in zip("ab", filters):
            x = layers.Conv3D(scaled(f), 3, padding="same", activation="relu", name=f"conv{block}{sub}")(x)
        x = layers.MaxPooling3D(pool, strides=pool, padding="same", name=f"pool{block}")(x)
    x = layers.Flatten(name="flatten")(x)
    for fc in ("fc6", "fc7"):
        x = layers.Dense(scaled(4096), activation="relu", name=fc)(x)
        x = layers.Dropout(dropout, name=f"{fc}_dropout")(x)
    probs = layers.Dense(num_classes, activation=activation, name="classifier")(x)
    return keras.Model(clip, probs, name="c3d" if width == 1.0 else f"c3d_w{width:g}")
