"""Reader processes: `ReaderPool` reads `ClipPlan`s from a frame store in worker processes (or in this process), in
order, with a bounded number of reads in flight.

Why processes: h5py serializes threads, so parallel reads need processes. Workers are started with 'spawn': the
parent has TensorFlow running, and a fresh interpreter that imports only numpy, h5py and `ttrnn.store` is both safe
and light. Each worker opens its own store handle.
"""
import collections
import multiprocessing
import os
import signal
import threading

import numpy as np

from ttrnn.data.buffers import BatchBuffers
from ttrnn.store import CorruptClipError, FrameStore


class ReaderError(RuntimeError):
    """The readers cannot start (the store cannot be opened in a reader process, or in this one), or the pool was
    closed while a read was still pending. One line."""


def read_plan(store, plan):
    """Frames of one ClipPlan from an open FrameStore: uint8 (T, H, W, 3), C-contiguous."""
    if plan.frames is None:
        clip = store.read(plan.row, max_len=plan.max_len, frame_skip=plan.frame_skip)
    else:
        clip = store.read_frames(plan.row, plan.frames)
    if plan.box is not None:
        top, left, box_h, box_w = plan.box
        clip = clip[:, top:top + box_h, left:left + box_w]
    return np.ascontiguousarray(clip)


def default_workers():
    """Reader processes for this machine: none with <= 2 cores, else one per core, at most 4.

    With <= 2 cores clips are read in the tf.data thread: there a worker process costs more (its frames are pickled
    back to the parent) than the HDF5 read it saves (`python -m experiments.bench store`, docs/performance.md)."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(4, cores)


# --- inside a worker process ------------------------------------------------------------------------------------
# Each worker holds its own store handle, or the one-line reason it could not open one.
_WORKER_STORE = None
_WORKER_ERROR = None


def _cannot_open(path, exc):
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"the readers cannot open the store {path}: {reason}"


def _worker_init(path, direct):
    """Open the store in this worker. A failure is kept as the worker's reason, not raised: multiprocessing
    restarts a worker whose initializer raises, forever (a missing store would print a traceback per restart).
    Ctrl-C goes to the whole process group; the parent handles it and ends the workers, so they ignore it."""
    global _WORKER_STORE, _WORKER_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _WORKER_STORE = FrameStore(path, direct=direct)
    except Exception as exc:  # noqa: BLE001 (any reason is reported, as one line, by `ReaderPool.start`)
        _WORKER_ERROR = _cannot_open(path, exc)


def _worker_ready(_):
    return _WORKER_ERROR


def _worker_read(plan):
    if _WORKER_ERROR:
        raise ReaderError(_WORKER_ERROR)
    return read_plan(_WORKER_STORE, plan)


# --- in the parent ----------------------------------------------------------------------------------------------
class ReaderPool:
    """Reads ClipPlans from the store at `path` in `workers` processes (0 = in this process), in order.

    Args:
        path: the store file.
        workers: reader processes; 0 reads in the calling thread (`read_into` then reads a clip straight into its
            batch row).
        direct: the `FrameStore` `direct` setting each reader opens the store with (None: O_DIRECT when the store
            is larger than memory; see `FrameStore`). A feed without a pool of its own makes one with its store's.

    `buffers` (`BatchBuffers`) holds the batch arrays of every feed that reads through this pool: a run's training
    and evaluation feeds take turns, so they share one set instead of holding one each.
    Use as a context manager, or call `close()`: it ends the workers.
    """

    def __init__(self, path, workers=2, direct=None):
        self.path = str(path)
        self.workers = int(workers)
        self.direct = direct
        self.buffers = BatchBuffers()
        self._pool = None                  # the multiprocessing pool (workers > 0)
        self._local = None                 # the FrameStore read in this process (workers == 0)
        self._closed = threading.Event()   # set by close(): reads still waiting in other threads end (see `_wait`)

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

    def imap(self, plans, window, keep_going=False):
        """Yield the frames (uint8 (T, H, W, 3)) of each plan in order; at most `window` reads outstanding.

        `keep_going`: a clip that cannot be read (`CorruptClipError`: damaged, or its shard missing) is yielded as
        that exception instead of ending the iteration, so a pass over a whole store (feature extraction) records
        it and goes on with the next clip."""
        self.start()
        if self.workers == 0:
            for plan in plans:
                try:
                    yield read_plan(self._local, plan)
                except CorruptClipError as e:
                    if not keep_going:
                        raise
                    yield e
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
            try:
                frames = self._wait(pending.popleft())
            except CorruptClipError as e:
                if not keep_going:
                    raise
                frames = e
            yield frames

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
        end of `out` (L, H, W, 3), with no intermediate array; returns how many (see `FrameStore.read_into`)."""
        if self.workers != 0 or plan.frames is not None or plan.box is not None:
            raise ValueError("read_into needs an in-process pool (workers=0) and a sequence plan")
        self.start()
        return self._local.read_into(plan.row, out, plan.max_len, plan.frame_skip)

    def close(self):
        """End the workers (reads pending in other threads raise ReaderError) and close the local store."""
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
