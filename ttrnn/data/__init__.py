"""Stream batches from a frame store: per-clip frame selection, length bucketing, pre-padding, worker processes.

Nothing here holds the dataset: a batch is read when it is needed, by worker processes (h5py serializes threads, so
processes give parallel reads), and at most `window` clips are in flight. Peak memory therefore depends on
batch size x max-len, not on the number of clips.

Data flow: `FrameStore` rows -> `ClipPlan` (which frames of which clip, chosen in the parent with a seeded RNG)
-> `ReaderPool` (worker processes read and crop) -> `BatchFeed.batches()` (pad, stack, labels) -> `tf.data`.
Frames stay uint8 all the way to the model, which casts and scales them itself (`ttrnn.layers.pixels.PixelScaling`).
"""
import collections
import multiprocessing
import os
import signal
import sys
import threading
from dataclasses import dataclass

import numpy as np

from ttrnn.data import sampling
from ttrnn.store import FrameStore

MODES = ("sequence", "mlp", "tsn", "c3d")


@dataclass
class InputSpec:
    """How frames are taken from a clip.

    sequence: the first `max_len` frames (every `frame_skip`-th), pre-padded with zero frames to the batch length,
        as the original `pad_sequences(truncating='post')`; the model masks the zero frames.
    mlp: `num_frames` frames (6 in the paper's TT-MLP), ascending, random in training.
    tsn: one frame per segment of `num_frames` segments (random in training, centre in evaluation).
    c3d: a window of `num_frames` consecutive frames, cropped to `crop` x `crop` (random in training, centre else).
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
        """Frames the model sees of a clip with `stored_length` stored frames (sequence mode: after skip, truncation)."""
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
    """Choose the frames of one clip (in the parent process, so runs are reproducible from the seed)."""
    if spec.mode == "sequence":
        return ClipPlan(row, max_len=spec.max_len, frame_skip=spec.frame_skip)
    if spec.mode == "mlp":
        return ClipPlan(row, frames=sampling.mlp_indices(length, spec.num_frames, training, rng))
    if spec.mode == "tsn":
        return ClipPlan(row, frames=sampling.tsn_indices(length, spec.num_frames, training, rng))
    frames = sampling.c3d_window(length, spec.num_frames, training, rng)
    top, left, box_h, box_w = sampling.crop_box(height, width, spec.crop, training, rng)
    return ClipPlan(row, frames=frames, box=(top, left, box_h, box_w))


# --- worker processes -------------------------------------------------------------------------------------------
_WORKER_STORE = None
_WORKER_ERROR = None   # why this worker could not open the store (one line), or None


class ReaderError(RuntimeError):
    """The readers cannot start (the store cannot be opened in a reader process, or in this one), or the pool was
    closed while a read was still pending. One line."""


def _worker_init(path, direct=None):
    """Open the store in this worker. A failure is kept as the worker's reason, not raised: multiprocessing
    restarts a worker whose initializer raises, forever (a missing store printed hundreds of tracebacks).
    Ctrl-C goes to the whole process group; the parent handles it and ends the workers, so they ignore it."""
    global _WORKER_STORE, _WORKER_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _WORKER_STORE = FrameStore(path, direct=direct)
    except Exception as exc:  # noqa: BLE001 (any reason is reported, as one line, by `ReaderPool.start`)
        _WORKER_ERROR = _cannot_open(path, exc)


def _cannot_open(path, exc):
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"the readers cannot open the store {path}: {reason}"


def _worker_ready(_):
    return _WORKER_ERROR


def read_plan(store, plan):
    """Frames of one ClipPlan from an open store: uint8 (T, H, W, 3)."""
    if plan.frames is None:
        clip = store.read(plan.row, max_len=plan.max_len, frame_skip=plan.frame_skip)
    else:
        clip = store.read_frames(plan.row, plan.frames)
    if plan.box is not None:
        top, left, box_h, box_w = plan.box
        clip = clip[:, top:top + box_h, left:left + box_w]
    return np.ascontiguousarray(clip)


def _worker_read(plan):
    if _WORKER_ERROR:
        raise ReaderError(_WORKER_ERROR)
    return read_plan(_WORKER_STORE, plan)


class ReaderPool:
    """Reads ClipPlans in `workers` processes (0 = in this process), in order; `imap` bounds the reads in flight.

    Workers are started with 'spawn': the parent has TensorFlow running, and a fresh interpreter that imports only
    numpy, h5py and `ttrnn.store` is both safe and light. Each worker opens its own h5py handle.
    """

    def __init__(self, path, workers=2, direct=None):
        self.path = str(path)
        self.workers = int(workers)
        self.direct = direct                # FrameStore's `direct`, in this process or in each worker
        self._pool = None
        self._local = None
        self._closed = threading.Event()   # set by close(): reads still waiting in other threads end (imap)
        # batch arrays reused by every feed that reads through this pool (a run's training and evaluation feeds
        # take turns, so they share one set of buffers instead of holding one each)
        self.buffers = BatchBuffers()

    def start(self):
        """Open the store here (workers=0) or start the workers and wait until each has opened it; a store that
        cannot be opened is a ReaderError with the reason, at once. Idempotent; the first read calls it too."""
        if self.workers > 0 and self._pool is None:
            self._closed.clear()
            ctx = multiprocessing.get_context("spawn")
            self._pool = ctx.Pool(self.workers, initializer=_worker_init, initargs=(self.path, self.direct))
            errors = [e for e in self._pool.map(_worker_ready, range(self.workers), chunksize=1) if e]
            if errors:
                self.close()
                raise ReaderError(errors[0])
        if self.workers == 0 and self._local is None:
            try:
                self._local = FrameStore(self.path, direct=self.direct)
            except Exception as exc:  # noqa: BLE001 (h5py, store and OS errors alike: one line)
                raise ReaderError(_cannot_open(self.path, exc)) from None
        return self

    _ensure = start

    def imap(self, plans, window):
        """Yield the frames of each plan in order; at most `window` reads outstanding."""
        self._ensure()
        if self.workers == 0:
            for plan in plans:
                yield read_plan(self._local, plan)
            return
        pending = collections.deque()
        plans = iter(plans)
        exhausted = False
        while True:
            while not exhausted and len(pending) < max(1, window):
                try:
                    plan = next(plans)
                except StopIteration:
                    exhausted = True
                    break
                pending.append(self._submit(plan))
            if not pending:
                return
            yield self._wait(pending.popleft())

    def _submit(self, plan):
        pool = self._pool
        if pool is None or self._closed.is_set():
            raise ReaderError("the reader pool was closed while reads were still asked of it")
        return pool.apply_async(_worker_read, (plan,))

    def _wait(self, result):
        """`result.get()`, except that a close() in another thread ends the wait with a ReaderError. Why: a
        terminated pool never delivers the reads it had queued, and a tf.data thread still waiting on one when a run
        unwinds would block forever, and with it the iterator's teardown (a hang instead of exit 143)."""
        while not result.ready():
            if self._closed.is_set():
                raise ReaderError("the reader pool was closed while a read was pending")
            result.wait(0.1)
        return result.get()

    def read_into(self, plan, out):
        """In-process pools: the frames of a sequence plan (no explicit frames, no crop) read straight into the
        end of `out` (L, H, W, 3); returns how many (see `FrameStore.read_into`)."""
        if self.workers != 0 or plan.frames is not None or plan.box is not None:
            raise ValueError("read_into needs an in-process pool (workers=0) and a sequence plan")
        self._ensure()
        return self._local.read_into(plan.row, out, plan.max_len, plan.frame_skip)

    def close(self):
        self._closed.set()
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        if self._local is not None:
            self._local.close()
            self._local = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- page-cache hints -------------------------------------------------------------------------------------------
class CacheHints:
    """`posix_fadvise` hints on the store's files, issued by one background thread (a hint can block while the
    kernel queues the reads, and the reader must not wait for it):

    - `will_need(extents)`: the clips of the batches after the one being read, so the kernel reads them in large
      requests while the step runs and the reader then copies from memory;
    - `done(extents)`: clips already read, dropped from the page cache (`DONTNEED`) when `drop` is set, i.e.
      when the store is larger than memory: the page cache then never fills with clips that are not read again
      this epoch, and the kernel spends no time reclaiming them (nor evicts other files for them).

    `extents` are (file, offset, nbytes) triples (`FrameStore.clip_extent`); None entries are skipped. Where the
    platform has no `posix_fadvise` the hints are no-ops; a failing hint is ignored (it is only a hint). A store
    read with O_DIRECT (`FrameStore.reads_direct`: larger than memory, where the file system allows) gets none:
    its reads do not pass through the page cache.
    """

    def __init__(self, drop):
        import queue

        self.drop = bool(drop)
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="ttrnn-cache-hints", daemon=True)
        self._thread.start()

    def will_need(self, extents):
        self._queue.put((getattr(os, "POSIX_FADV_WILLNEED", None), extents))

    def done(self, extents):
        if self.drop:
            self._queue.put((getattr(os, "POSIX_FADV_DONTNEED", None), extents))

    def _run(self):
        while True:
            advice, extents = self._queue.get()
            if extents is None:
                return
            for extent in extents:
                if extent is None or advice is None or not hasattr(os, "posix_fadvise"):
                    continue
                try:
                    fd = os.open(extent[0], os.O_RDONLY)
                    try:
                        os.posix_fadvise(fd, extent[1], extent[2], advice)
                    finally:
                        os.close(fd)
                except OSError:
                    pass

    def close(self):
        """Stop the thread once the queued drops are done; read-ahead hints still queued are skipped (an epoch that
        ends or stops early reads nothing more)."""
        pending = []
        while not self._queue.empty():    # only the reader puts, so nothing races the emptiness check
            pending.append(self._queue.get_nowait())
        for advice, extents in pending:
            if advice != getattr(os, "POSIX_FADV_WILLNEED", None):
                self._queue.put((advice, extents))
        self._queue.put((None, None))
        self._thread.join()


# --- batching ---------------------------------------------------------------------------------------------------
def plan_batches(lengths, batch_size, shuffle, rng, bucket=True):
    """Group positions 0..len(lengths)-1 into batches.

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


class BatchFeed:
    """Batches of (frames uint8 (B, T, H, W, 3), targets float32 (B, C)) for the store rows `rows`.

    Sequence batches are pre-padded with zero frames to `padded_length`; other modes have a fixed T.
    Targets are one-hot (single-label stores) or multi-hot (Hollywood2).
    """

    def __init__(self, store, rows, spec, batch_size, training, seed=0, reader=None, bucket=True, window=None,
                 streaming=True, read_ahead=2):
        self.store = store
        # streaming (the default): batch arrays reused (`BatchBuffers`) and page-cache hints (`CacheHints`) for
        # the clips of the next `read_ahead` batches; False: a fresh array per batch and no hints, the reader as
        # it was before issue 22 (kept for A/B measurements: experiments.bench epoch)
        self.streaming = bool(streaming)
        self.read_ahead = int(read_ahead)

        self.rows = np.asarray(rows, dtype=np.int64)
        self.spec = spec
        self.batch_size = int(batch_size)
        self.training = training
        self.seed = int(seed)
        self.reader = reader
        self.bucket = bucket
        self.window = window or 2 * self.batch_size
        self.stored_lengths = np.asarray(store.index["length"])[self.rows]
        self.lengths = np.array([spec.effective_length(n) for n in self.stored_lengths])
        self.targets = store.label_matrix()[self.rows].astype(np.float32)
        self.height, self.width = int(store.attrs["height"]), int(store.attrs["width"])
        if spec.mode == "c3d" and min(self.height, self.width) < spec.crop:
            raise ValueError(f"C3D crops {spec.crop}x{spec.crop} but the store's frames are "
                             f"{self.width}x{self.height}")

    def __len__(self):
        return -(-len(self.rows) // self.batch_size)

    def frame_shape(self):
        if self.spec.mode == "c3d":
            return (self.spec.crop, self.spec.crop, 3)
        return (self.height, self.width, 3)

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
        """Generator of (x uint8 (B, T, H, W, 3), y float32 (B, C)) for one epoch."""
        plan = self.epoch_plan(epoch)
        flat = [clip for _, clips in plan for clip in clips]
        reader = self.reader or ReaderPool(self.store.path, workers=0, direct=self.store.direct)
        # In this process, sequence clips are read straight into their batch row (no intermediate array:
        # halved the batch assembly time in experiments.bench's store layout); else through the reader's imap.
        direct = reader.workers == 0 and self.spec.mode == "sequence"
        frames = None if direct else reader.imap(flat, self.window)
        hints = extents = None
        buffers = reader.buffers
        if self.streaming:
            # new buffers sized for the largest batch of the feeds using them: any batch then fits any buffer
            buffers.capacity = max(buffers.capacity, self.max_batch_bytes())
        if self.streaming and not self.store.reads_direct:    # O_DIRECT reads leave the page cache alone
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
                shape = (len(clips), t) + self.frame_shape()
                x = buffers.take(shape) if self.streaming else aligned_empty(shape)
                for b, clip in enumerate(clips):
                    if direct:
                        n = reader.read_into(clip, x[b])
                    else:
                        frames_b = next(frames)[:t]
                        n = len(frames_b)
                        x[b, t - n:] = frames_b
                    x[b, :t - n] = 0                # pre-padding: real frames at the end, as the original
                if hints is not None:
                    hints.done(extents.pop(k))
                yield x, self.targets[positions]
                del x                               # the pool may reuse the array once tf.data lets it go
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
        return min(self.batch_size, len(self.rows)) * longest * int(np.prod(self.frame_shape()))

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
        """A `tf.data.Dataset` that yields this feed's batches for the epoch `epoch_counter()` returns on each pass."""
        import tensorflow as tf

        signature = (tf.TensorSpec((None, None) + self.frame_shape(), tf.uint8),
                     tf.TensorSpec((None, self.targets.shape[1]), tf.float32))
        ds = tf.data.Dataset.from_generator(lambda: self.batches(epoch_counter()), output_signature=signature)
        options = tf.data.Options()
        # Nothing here is tunable (prefetch(1) is fixed); with autotuning on, each epoch's iterator teardown
        # waited for the tuning thread's next wake-up, whose period doubles from 10 ms: epochs ended at
        # ~20.5, 41 or 82 s whatever their work (measured on the demo).
        options.autotune.enabled = False
        return ds.prefetch(1).with_options(options)


def map_batches(dataset, fn):
    """Yield `fn(batch)` for each element of `dataset` (a feed's tf.data pipeline), each batch let go before the
    next is fetched. Why: the fetch starts the reader on the batch after it, and a batch still referenced then (a
    `for` loop's variable) keeps its buffer from reuse (`BatchBuffers`), so a third batch-sized buffer is made:
    1.4 GB more at max-len 1,492, batch 16."""
    batches = iter(dataset)
    while (batch := next(batches, None)) is not None:
        result = fn(batch)
        del batch
        yield result


class BatchBuffers:
    """Batch arrays reused across batches: `take(shape)` returns a 64-byte aligned uint8 array of that shape,
    carved from a buffer that nothing outside this pool references any more, or from a new one.

    Why: a fresh batch of long clips (hundreds of MB) is faulted in page by page, and every page is zeroed by the
    kernel first; freed, it goes back to the kernel (munmap) and the next batch faults it in again. Reusing the
    pages removed that from the epoch (docs/performance.md). Safe by construction: tf.data's generator keeps the
    array it takes without a copy referenced for as long as the tensor lives, and a caller that keeps batches
    (``list(feed.batches())``) keeps them referenced too, so a buffer is reused only once every view of it is
    gone (its reference count is back to the pool's own). `capacity` (bytes, optional) sizes new buffers so that
    any batch of the feed fits; at most `keep` idle buffers are kept.
    """

    def __init__(self, capacity=0, keep=4, align=64):
        self.capacity, self.keep, self.align = int(capacity), int(keep), int(align)
        self._buffers = []          # raw uint8 owners; the views handed out reference them
        self.allocated = 0          # buffers made (a measure of reuse: batches taken / buffers made)

    def take(self, shape):
        need = int(np.prod(shape))
        idle = [raw for raw in self._buffers if sys.getrefcount(raw) == 3]   # list + loop variable + argument
        drop = {id(raw) for raw in sorted(idle, key=len, reverse=True)[self.keep:]}   # idle beyond `keep`:
        self._buffers = [raw for raw in self._buffers if id(raw) not in drop]          # the smallest go
        del idle
        for raw in self._buffers:
            # 3 = this list + `raw` (the loop variable) + getrefcount's own argument: no view alive
            if sys.getrefcount(raw) == 3 and raw.size - self.align >= need:
                return self._view(raw, need, shape)
        raw = np.empty(max(need, self.capacity) + self.align, np.uint8)
        self._buffers.append(raw)
        self.allocated += 1
        return self._view(raw, need, shape)

    def _view(self, raw, need, shape):
        offset = (-raw.ctypes.data) % self.align
        return raw[offset:offset + need].reshape(shape)


def aligned_empty(shape, dtype=np.uint8, align=64):
    """`np.empty` whose data starts on an `align`-byte boundary: tf.data takes such a batch from the generator
    without copying it (measured: one copy of a 415 MB batch instead of two), which halves the frames a long-clip
    batch holds in memory while it waits in the prefetch buffer."""
    count = int(np.prod(shape))
    itemsize = np.dtype(dtype).itemsize
    buf = np.empty(count * itemsize + align, np.uint8)
    offset = (-buf.ctypes.data) % align
    return buf[offset:offset + count * itemsize].view(dtype).reshape(shape)


class MultiViewFeed(BatchFeed):
    """Evaluation batches of `clips` × `crops` views per clip (c3d mode): evenly spaced windows
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
        """Per-view scores `(len(rows) * views, C)` in feed order → per-clip means `(len(rows), C)`."""
        scores = np.asarray(view_scores)
        return scores.reshape(len(self.video_rows), self.views, scores.shape[-1]).mean(axis=1)


def default_workers():
    """Reader processes: none on machines with <= 2 cores (clips are read in the tf.data thread: there reads
    measured 1.5-13x faster than through worker processes, whose pickled frames cost more than the HDF5 read,
    and end-to-end training 1.35-1.46x faster in 2 of 3 runs; `experiments.bench store train`), else one per
    core, at most 4."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(4, cores)
