"""Batches of a frame store's clips: `BatchFeed` (one view per clip, training and evaluation) and `MultiViewFeed`
(several windows and crops per clip, for the 3D models' multi-view testing).

Data flow of one epoch: `epoch_plan` (batches of `ClipPlan`s, seeded) -> a `ReaderPool` reads the clips -> each
batch is assembled in a reused buffer (`BatchBuffers`), pre-padded with zero frames -> (frames, targets).
`dataset()` wraps that generator in tf.data (`ttrnn.data.tfdata`). At most `window` clips are in flight and a batch
lives in a reused buffer, so peak memory depends on batch size x batch length, not on the number of clips. Frames
stay uint8 all the way to the model, which casts and scales them itself (`ttrnn.layers.pixels.PixelScaling`).
"""
import numpy as np

from ttrnn.data import sampling, tfdata
from ttrnn.data.cache_hints import CacheHints
from ttrnn.data.plans import ClipPlan, padded_length, plan_batches, plan_clip
from ttrnn.data.readers import ReaderPool


class BatchFeed:
    """Batches of (frames uint8 (B, T, H, W, 3), targets float32 (B, C)) of the store rows `rows`; of a feature
    store (`FrameStore.features`), (features (B, T, F) in the store's dtype, float16 by default, targets).

    Sequence batches are pre-padded with zero frames to `padded_length` (real frames at the end, as the original
    `pad_sequences`); other modes have a fixed T (`spec.num_frames`), and c3d crops H = W = `spec.crop`. Targets are
    one-hot (single-label stores) or multi-hot (Hollywood2).

    Args:
        store: an open `ttrnn.store.FrameStore`.
        rows: the store rows (clips) of this feed.
        spec: the `InputSpec` (which frames of a clip, how long a batch).
        batch_size: clips per batch (the last batch may be shorter).
        training: random frame choices and shuffled batches (else deterministic, in row or length order).
        seed: with the epoch, seeds every random choice (`epoch_plan`).
        reader: a `ReaderPool` to read through (shared with other feeds); None: an in-process one per epoch.
        bucket: sequence mode, batch clips of similar length (`plan_batches`).
        window: clips read ahead by worker processes (default two batches).
        read_ahead: batches whose clips are hinted to the page cache ahead of their read (`CacheHints`).
    """

    def __init__(self, store, rows, spec, batch_size, training, seed=0, reader=None, bucket=True, window=None,
                 read_ahead=2):
        self.store = store
        self.rows = np.asarray(rows, dtype=np.int64)
        self.spec = spec
        self.batch_size = int(batch_size)
        self.training = training
        self.seed = int(seed)
        self.reader = reader
        self.bucket = bucket
        self.window = window or 2 * self.batch_size
        self.read_ahead = int(read_ahead)
        self.stored_lengths = np.asarray(store.index["length"])[self.rows]
        self.lengths = np.array([spec.effective_length(n) for n in self.stored_lengths])
        self.targets = store.label_matrix()[self.rows].astype(np.float32)
        self.height, self.width = int(store.attrs["height"]), int(store.attrs["width"])
        self.dtype = np.dtype(store.dtype)
        if spec.mode == "c3d" and store.features is not None:
            raise ValueError(f"C3D crops frames, but {store.path} is a feature store (per-frame "
                             f"{store.features['backbone']} features): give a frame store")
        if spec.mode == "c3d" and min(self.height, self.width) < spec.crop:
            raise ValueError(f"C3D crops {spec.crop}x{spec.crop} but the store's frames are "
                             f"{self.width}x{self.height}")

    def __len__(self):
        return -(-len(self.rows) // self.batch_size)

    def frame_shape(self):
        """(H, W, 3) of one frame of a batch ((F,) for a feature store)."""
        if self.spec.mode == "c3d":
            return (self.spec.crop, self.spec.crop, 3)
        return tuple(self.store.frame_shape)

    def batch_length(self, positions):
        """T of the batch holding these positions: padded length (sequence mode) or the fixed frame count."""
        if self.spec.mode == "sequence":
            return padded_length(self.lengths[positions], self.spec)
        return self.spec.num_frames

    def epoch_plan(self, epoch):
        """[(positions, [ClipPlan])] for one epoch, deterministic in (seed, epoch)."""
        rng = np.random.RandomState((self.seed * 1000003 + epoch) % (2 ** 32))
        batches = plan_batches(self.lengths, self.batch_size, self.training, rng,
                               bucket=self.bucket and self.spec.mode == "sequence")
        plan = []
        for positions in batches:
            clips = [plan_clip(self.spec, int(self.rows[p]), int(self.stored_lengths[p]), self.training, rng,
                               self.height, self.width) for p in positions]
            plan.append((positions, clips))
        return plan

    def batches(self, epoch=0):
        """Generator of (x uint8 (B, T, H, W, 3) (a feature store: (B, T, F) in its dtype), y float32 (B, C)) for
        one epoch.

        `x` is lent by the reader's `BatchBuffers`: it stays intact for as long as the caller (or a tensor made from
        it) holds it, and its buffer is reused once it is let go."""
        plan = self.epoch_plan(epoch)
        reader = self.reader or ReaderPool(self.store.path, workers=0, direct=self.store.direct)
        # In this process, sequence clips are read straight into their batch row (no intermediate array); else
        # through the reader's imap (worker processes, or explicit frame lists and crops).
        in_place = reader.workers == 0 and self.spec.mode == "sequence"
        frames = None if in_place else reader.imap([clip for _, clips in plan for clip in clips], self.window)
        buffers = reader.buffers
        # new buffers sized for the largest batch of the feeds using them: any batch then fits any buffer
        buffers.capacity = max(buffers.capacity, self.max_batch_bytes())
        hints = extents = None
        if not self.store.reads_direct:    # O_DIRECT reads leave the page cache alone
            hints, extents = CacheHints(drop=self.store.larger_than_memory()), {}
            for k in range(min(self.read_ahead, len(plan))):
                extents[k] = [self._extent(clip) for clip in plan[k][1]]
                hints.will_need(extents[k])
        try:
            for k, (positions, clips) in enumerate(plan):
                t = self.batch_length(positions)
                ahead = k + self.read_ahead
                if hints is not None and ahead < len(plan):
                    extents[ahead] = [self._extent(clip) for clip in plan[ahead][1]]
                    hints.will_need(extents[ahead])
                x = buffers.take((len(clips), t) + self.frame_shape(), self.dtype)
                for b, clip in enumerate(clips):
                    if in_place:
                        n = reader.read_into(clip, x[b])
                    else:
                        frames_b = next(frames)[:t]
                        n = len(frames_b)
                        x[b, t - n:] = frames_b
                    x[b, :t - n] = 0                # pre-padding: real frames at the end, as the original
                if hints is not None:
                    hints.done(extents.pop(k))
                yield x, self.targets[positions]
                del x                               # the buffer goes back once the consumer lets the batch go too
        finally:
            if hints is not None:
                hints.close()
            if frames is not None:
                frames.close()
            if self.reader is None:
                reader.close()

    def max_batch_bytes(self):
        """Bytes of this feed's largest possible batch: batch size x the longest batch length x one frame."""
        if self.spec.mode == "sequence":
            longest = padded_length(self.lengths, self.spec) if len(self.lengths) else 0
        else:
            longest = self.spec.num_frames
        frame = int(np.prod(self.frame_shape())) * self.dtype.itemsize
        return min(self.batch_size, len(self.rows)) * longest * frame

    def _extent(self, clip):
        """The store span a ClipPlan reads (hints only; explicit frame lists and crops hint the whole clip)."""
        if clip.frames is None:
            return self.store.clip_extent(clip.row, clip.max_len, clip.frame_skip)
        return self.store.clip_extent(clip.row)

    def padding_waste(self):
        """Padded frames / real frames over one epoch of this feed's batching (sequence mode)."""
        real = padded = 0
        for positions, _ in self.epoch_plan(0):
            lengths = self.lengths[positions]
            real += int(lengths.sum())
            padded += self.batch_length(positions) * len(lengths) - int(lengths.sum())
        return padded / max(real, 1)

    def dataset(self, epoch_counter):
        """A `tf.data.Dataset` of this feed's batches for the epoch `epoch_counter()` returns on each pass
        (`ttrnn.data.tfdata.feed_dataset`)."""
        return tfdata.feed_dataset(self, epoch_counter)


class MultiViewFeed(BatchFeed):
    """Evaluation batches of `clips` x `crops` views per clip (c3d mode): evenly spaced windows
    (`sampling.even_windows`) times centre or three crops (`sampling.view_crop_boxes`), views of one clip next to
    each other (view k: window k // crops, crop k % crops). `video_scores` averages the per-view scores per clip,
    as the seed systems test. `len(self)`, `batches()` and `dataset()` work on views.
    """

    def __init__(self, store, rows, spec, batch_size, clips=10, crops=1, reader=None, window=None):
        if spec.mode != "c3d":
            raise ValueError(f"multi-view testing needs 3D clips (c3d mode), not {spec.mode!r}")
        super().__init__(store, rows, spec, batch_size, training=False, reader=reader, bucket=False, window=window)
        self.clips, self.crops = int(clips), int(crops)
        self.views = self.clips * self.crops
        sampling.view_crop_boxes(self.height, self.width, spec.crop, self.crops)  # checks `crops`
        self.video_rows, self.video_targets = self.rows, self.targets
        self.video = np.repeat(np.arange(len(self.rows)), self.views)
        self.rows = np.repeat(self.rows, self.views)
        self.stored_lengths = np.repeat(self.stored_lengths, self.views)
        self.lengths = np.repeat(self.lengths, self.views)
        self.targets = np.repeat(self.targets, self.views, axis=0)

    def epoch_plan(self, epoch=0):
        """[(positions, [ClipPlan])] over views in order; the same every epoch (nothing is random)."""
        boxes = sampling.view_crop_boxes(self.height, self.width, self.spec.crop, self.crops)
        windows = {}
        plan = []
        for start in range(0, len(self.rows), self.batch_size):
            positions = np.arange(start, min(start + self.batch_size, len(self.rows)))
            clips = []
            for p in positions:
                length, view = int(self.stored_lengths[p]), int(p) % self.views
                if length not in windows:
                    windows[length] = sampling.even_windows(length, self.spec.num_frames, self.clips)
                clips.append(ClipPlan(int(self.rows[p]), frames=windows[length][view // self.crops],
                                      box=boxes[view % self.crops]))
            plan.append((positions, clips))
        return plan

    def video_scores(self, view_scores):
        """Per-view scores `(len(rows) * views, C)` in feed order -> per-clip means `(len(rows), C)`."""
        scores = np.asarray(view_scores)
        return scores.reshape(len(self.video_rows), self.views, scores.shape[-1]).mean(axis=1)
