"""Frame-index samplers for the baselines, so the data pipeline reads only the frames a model sees.

Pure numpy (no TensorFlow): the pipeline calls these per clip and hands the indices to
`FrameStore.read_frames`. Every sampler is deterministic in evaluation (`training=False`, `rng` unused) and
random but reproducible in training (`rng` is a `numpy.random.Generator`, an int seed, or None for fresh
entropy). Indices refer to the *stored* frames of a clip (already frame-skipped by preprocessing).

Note for readers of the store: short clips make some samplers repeat indices (and `c3d_window(pad="loop")`
wraps around), so read `np.unique(idx)` and expand with the inverse if the reader needs strictly increasing
indices.
"""

import numpy as np

__all__ = ["tsn_indices", "c3d_window", "crop_box", "mlp_indices", "even_windows", "view_crop_boxes",
           "resample_indices"]


def _rng(rng):
    """A numpy Generator from a Generator, an int seed or None."""
    return np.random.default_rng(rng)


def _check_positive(name, value):
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def tsn_indices(length, num_segments=3, training=False, rng=None):
    """TSN sparse sampling: one frame from each of `num_segments` equal segments of the clip.

    Segment k covers stored frames `[k*length//S, (k+1)*length//S)`. Training picks a uniformly random frame
    inside each segment; evaluation picks the segment's centre frame `start + (stop - start)//2`. When the
    clip has fewer frames than segments (empty integer segments), every segment takes the frame at its
    centre time `floor((k + 0.5) * length / S)` in both modes, so frames repeat evenly.

    Returns: int64 array `(num_segments,)`, non-decreasing, in `[0, length)`; strictly increasing when
    `length >= num_segments`.
    """
    length = _check_positive("length", length)
    segs = _check_positive("num_segments", num_segments)
    k = np.arange(segs, dtype=np.int64)
    if length < segs:
        return ((2 * k + 1) * length) // (2 * segs)
    start = k * length // segs
    stop = (k + 1) * length // segs
    if training:
        return start + _rng(rng).integers(0, stop - start)
    return start + (stop - start) // 2


def c3d_window(length, clip_len=16, training=False, rng=None, pad="loop"):
    """C3D temporal sampling: `clip_len` consecutive stored frames.

    Training draws the window's start uniformly from `[0, length - clip_len]`; evaluation takes the centred
    window (start `(length - clip_len)//2`). Clips shorter than `clip_len` are padded: `pad="loop"` repeats
    the clip from its start (`0, 1, …, L-1, 0, 1, …`, as 3D-ResNets' LoopPadding), `pad="edge"` repeats the
    last frame (the result then stays sorted).

    Returns: int64 array `(clip_len,)` in `[0, length)`.
    """
    length = _check_positive("length", length)
    clip_len = _check_positive("clip_len", clip_len)
    if pad not in ("loop", "edge"):
        raise ValueError(f"pad must be 'loop' or 'edge', got {pad!r}")
    steps = np.arange(clip_len, dtype=np.int64)
    if length < clip_len:
        return steps % length if pad == "loop" else np.minimum(steps, length - 1)
    slack = length - clip_len
    start = int(_rng(rng).integers(0, slack + 1)) if training else slack // 2
    return start + steps


def crop_box(height, width, crop=112, training=False, rng=None):
    """C3D spatial sampling: a `crop`×`crop` window taken directly from the stored frames (no resize).

    The original C3D resized to 171×128 and cropped 112 (87.5 % of the height); on the standard 160×120 store
    a direct 112 crop covers 93 % of the height, close to that scale, and needs no resize in the pipeline.
    Training draws the offset uniformly, evaluation centres it. If a frame side is smaller than `crop`, the
    box is the largest centred/random square that fits, and the pipeline must resize it to `crop`×`crop`.

    Returns: `(top, left, box_height, box_width)` ints; use `frames[:, top:top+box_height, left:left+box_width]`.
    """
    height = _check_positive("height", height)
    width = _check_positive("width", width)
    crop = _check_positive("crop", crop)
    size = min(crop, height, width)
    if training:
        gen = _rng(rng)
        top = int(gen.integers(0, height - size + 1))
        left = int(gen.integers(0, width - size + 1))
    else:
        top, left = (height - size) // 2, (width - size) // 2
    return top, left, size, size


def mlp_indices(length, num_frames=6, training=False, rng=None):
    """TT-MLP sampling: `num_frames` frames in ascending order (the paper: "6 random frames in ascending order").

    Training draws `num_frames` distinct frames uniformly without replacement and sorts them (with replacement
    when the clip is shorter than `num_frames`). Evaluation is deterministic: evenly spaced centre frames
    `floor((k + 0.5) * length / num_frames)`, k = 0..num_frames-1.

    Returns: int64 array `(num_frames,)`, non-decreasing, in `[0, length)`; strictly increasing when
    `length >= num_frames`.
    """
    length = _check_positive("length", length)
    num_frames = _check_positive("num_frames", num_frames)
    if not training:
        k = np.arange(num_frames, dtype=np.int64)
        return ((2 * k + 1) * length) // (2 * num_frames)
    gen = _rng(rng)
    if length >= num_frames:
        picked = gen.choice(length, size=num_frames, replace=False)
    else:
        picked = gen.integers(0, length, size=num_frames)
    return np.sort(picked).astype(np.int64)


def even_windows(length, clip_len=16, num_clips=10, pad="loop"):
    """Multi-clip testing: `num_clips` windows of `clip_len` stored frames with evenly spaced starts
    `round(linspace(0, length - clip_len, num_clips))` (the first at the clip's start, the last at its end, as
    3D-ResNets' TemporalEvenCrop and video-nonlocal-net's test sampling); short clips are padded as `c3d_window`.

    Returns: int64 array `(num_clips, clip_len)` in `[0, length)`.
    """
    length = _check_positive("length", length)
    clip_len = _check_positive("clip_len", clip_len)
    num_clips = _check_positive("num_clips", num_clips)
    if length < clip_len:
        return np.stack([c3d_window(length, clip_len, pad=pad)] * num_clips)
    starts = np.rint(np.linspace(0, length - clip_len, num_clips)).astype(np.int64)
    return starts[:, None] + np.arange(clip_len, dtype=np.int64)


def view_crop_boxes(height, width, crop=112, num_crops=1):
    """Multi-crop testing: 1 = the centre `crop`×`crop` box; 3 = both ends and the centre of the frame's longer
    side, centred on the shorter one (video-nonlocal-net's three crops, left/centre/right on landscape video).

    Returns: list of `(top, left, box_height, box_width)` as `crop_box`.
    """
    height, width = _check_positive("height", height), _check_positive("width", width)
    size = min(_check_positive("crop", crop), height, width)
    if num_crops not in (1, 3):
        raise ValueError(f"test crops must be 1 or 3, got {num_crops!r}")
    top, left = (height - size) // 2, (width - size) // 2
    if num_crops == 1:
        return [(top, left, size, size)]
    if width >= height:
        return [(top, x, size, size) for x in (0, left, width - size)]
    return [(y, left, size, size) for y in (0, top, height - size)]


def resample_indices(length, rate, fps):
    """The stored frames of a clip of `length` frames at `rate` frames/s that a resampling to `fps` frames/s keeps:
    frame floor(j * rate / fps) for output j = 0, 1, ... while it is in the clip (preprocessing's `--fps` rule,
    `preprocess.video.FrameSampler`), so frames repeat when `fps` > `rate`. Feature extraction's `--fps` thins a
    store's frames with it.

    Returns: int64 array, non-decreasing, in `[0, length)`, never empty for `length` >= 1."""
    length = _check_positive("length", length)
    if not rate > 0 or not fps > 0:
        raise ValueError(f"frame rates must be > 0, got rate {rate!r} and fps {fps!r}")
    count = int(np.ceil(length * float(fps) / float(rate) - 1e-6))
    idx = np.floor(np.arange(max(1, count)) * float(rate) / float(fps) + 1e-6).astype(np.int64)
    return idx[idx < length]
