"""Frames enter the model as uint8; this layer flattens, casts and scales them and masks the padding frames."""
import keras
from keras import ops

from ttrnn.layers.kernel import exporting

SCALINGS = ("paper", "unit")
# pixel -> pixel * scale + shift
AFFINE = {"paper": (1.0, -128.0), "unit": (1.0 / 255.0, 0.0)}


@keras.saving.register_keras_serializable(package="ttrnn")
class PixelScaling(keras.layers.Layer):
    """uint8 frames (B, T, H, W, C) -> float32 (B, T, H*W*C), with a mask of the frames that are not all zero.

    scaling='paper': pixel - 128, as the original code (which stored `(clip - 128).astype('int8')`);
    scaling='unit': pixel / 255.
    The data pipeline pre-pads clips with all-zero uint8 frames; they are masked here, which is what the
    original's `Masking(mask_value=0)` did to its zero-padded int8 frames. (A genuinely all-black frame is masked
    too; the original masked all-grey frames, the value 128, instead.)
    cast=False: flatten and mask only, the output stays uint8 and the next layer applies `affine()` itself
    (the TT recurrent layers' `input_scale` / `input_shift`, per time chunk: a float32 copy of a padded batch
    is 4x its uint8 frames, e.g. 1.7 GB at batch 16, 450 frames of 160x120x3).
    """

    def __init__(self, scaling="paper", flatten=True, mask_padding=True, cast=True, **kwargs):
        super().__init__(**kwargs)
        if scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {scaling!r} (choose from {', '.join(SCALINGS)})")
        self.scaling = scaling
        self.flatten = flatten
        self.mask_padding = mask_padding
        self.cast = bool(cast)
        self.supports_masking = True

    def affine(self):
        """`(scale, shift)` with scaled = pixel * scale + shift."""
        return AFFINE[self.scaling]

    def _flat(self, x):
        if not self.flatten:
            return x
        rest = 1
        for d in x.shape[2:]:
            rest *= d
        return ops.reshape(x, (ops.shape(x)[0], ops.shape(x)[1], rest))

    def call(self, inputs):
        if not self.cast:
            return self._flat(inputs)
        x = ops.cast(self._flat(inputs), "float32")
        if self.scaling == "paper":
            return x - 128.0
        return x / 255.0

    def compute_mask(self, inputs, mask=None):
        if not self.mask_padding:
            return mask
        axes = tuple(range(2, len(inputs.shape)))
        # uint8 frames: max > 0 makes no frame-sized boolean temporary (long clips, ttrnn.layers.projection); the
        # export path (`ttrnn.layers.kernel.exporting`) takes `any`, as LiteRT has no builtin max over uint8.
        if "uint" in str(inputs.dtype) and not exporting():
            frame_mask = ops.greater(ops.max(inputs, axis=axes), 0)
        else:
            frame_mask = ops.any(ops.not_equal(inputs, 0), axis=axes)
        return frame_mask if mask is None else ops.logical_and(frame_mask, mask)

    def compute_output_shape(self, input_shape):
        if not self.flatten:
            return input_shape
        rest = 1
        for d in input_shape[2:]:
            rest = None if (rest is None or d is None) else rest * d
        return (input_shape[0], input_shape[1], rest)

    def compute_output_spec(self, inputs):
        dtype = inputs.dtype if not self.cast else "float32"
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=dtype)

    def get_config(self):
        return {**super().get_config(), "scaling": self.scaling, "flatten": self.flatten,
                "mask_padding": self.mask_padding, "cast": self.cast}
