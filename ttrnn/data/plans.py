"""What a batch reads: which frames of which clip (`InputSpec`, `ClipPlan`), and which clips go together
(`plan_batches`: length bucketing; `padded_length`: the time length a sequence batch is padded to).

Everything here runs in the parent process with a seeded RNG, so an epoch's reads are a pure function of
(seed, epoch): a resumed run reads exactly what an uninterrupted one would. Pure NumPy; no frames are read.
"""
from dataclasses import dataclass

import numpy as np

from ttrnn.data import sampling

MODES = ("sequence", "mlp", "tsn", "c3d")
"""How frames are taken from a clip (`InputSpec.mode`): the first frames as a sequence (the RNNs), a few frames in
order (the TT-MLP), one frame per segment (TSN), or a window of consecutive frames, cropped (C3D and the 3D CNNs)."""


@dataclass
class InputSpec:
    """How frames are taken from a clip.

    sequence: the first `max_len` frames (every `frame_skip`-th), pre-padded with zero frames to the batch length,
        as the original `pad_sequences(truncating='post')`; the model masks the zero frames.
    mlp: `num_frames` frames (6 in the paper's TT-MLP), ascending, random in training.
    tsn: one frame per segment of `num_frames` segments (random in training, centre in evaluation).
    c3d: a window of `num_frames` consecutive frames, cropped to `crop` x `crop` (random in training, centre else).

    `pad_multiple`: a sequence batch's length is rounded up to a multiple of it (`padded_length`), so the step sees
    few distinct lengths.
    """
    mode: str = "sequence"
    max_len: int = 1492
    frame_skip: int = 1
    num_frames: int = 6
    crop: int = 112
    pad_multiple: int = 16

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown input mode {self.mode!r} (choose from {', '.join(MODES)})")
        if self.max_len < 1:
            raise ValueError(f"max-len must be >= 1, got {self.max_len}")
        if self.frame_skip < 1:
            raise ValueError(f"frame-skip must be >= 1, got {self.frame_skip}")
        if self.num_frames < 1:
            raise ValueError(f"the number of frames per clip must be >= 1, got {self.num_frames}")

    def effective_length(self, stored_length):
        """Frames the model sees of a clip of `stored_length` stored frames (sequence mode: after skip and
        truncation)."""
        if self.mode != "sequence":
            return self.num_frames
        return min(self.max_len, -(-int(stored_length) // self.frame_skip))


@dataclass
class ClipPlan:
    """One read: clip row `row`; either the slice (max_len, frame_skip) or explicit `frames`; optional crop box."""
    row: int
    max_len: int = None
    frame_skip: int = 1
    frames: np.ndarray = None
    box: tuple = None  # (top, left, height, width) crop


def plan_clip(spec, row, length, training, rng, height=None, width=None):
    """The ClipPlan of one clip (row `row`, `length` stored frames of `height` x `width`) under `spec`: the frames
    and crop the model sees, random (from `rng`) in training, deterministic in evaluation."""
    if spec.mode == "sequence":
        return ClipPlan(row, max_len=spec.max_len, frame_skip=spec.frame_skip)
    if spec.mode == "mlp":
        return ClipPlan(row, frames=sampling.mlp_indices(length, spec.num_frames, training, rng))
    if spec.mode == "tsn":
        return ClipPlan(row, frames=sampling.tsn_indices(length, spec.num_frames, training, rng))
    frames = sampling.c3d_window(length, spec.num_frames, training, rng)
    top, left, box_h, box_w = sampling.crop_box(height, width, spec.crop, training, rng)
    return ClipPlan(row, frames=frames, box=(top, left, box_h, box_w))


def plan_batches(lengths, batch_size, shuffle, rng, bucket=True):
    """Group positions 0..len(lengths)-1 into batches (a list of int arrays).

    With `bucket`, clips are sorted by length (jittered by a few percent when shuffling, so batches vary between
    epochs) and cut into consecutive batches, so a batch pads to the length of similar clips instead of the
    longest clip of the dataset; batch order is shuffled when training.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    n = len(lengths)
    if bucket:
        keys = lengths * (np.exp(rng.uniform(-0.05, 0.05, n)) if shuffle else 1.0)
        order = np.argsort(keys, kind="stable")
    else:
        order = rng.permutation(n) if shuffle else np.arange(n)
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def padded_length(lengths, spec):
    """Time length of a sequence batch: its longest clip rounded up to `pad_multiple`, at most max_len."""
    longest = int(max(lengths))
    multiple = max(1, spec.pad_multiple)
    return int(min(spec.max_len, -(-longest // multiple) * multiple))
