"""Batch arrays reused across batches (`BatchBuffers`), and 64-byte aligned arrays (`aligned_empty`).

Why reuse: a fresh batch of long clips (hundreds of MB) is faulted in page by page, every page zeroed by the kernel
first; freed, it goes back to the kernel (munmap) and the next batch faults it in again. Reusing the pages removes
that from the epoch (docs/performance.md, "Peak RSS" and the allocator section).
Why aligned: tf.data takes a generator's array without copying it when its data is 64-byte aligned, which halves
the frames a long-clip batch holds in memory while it waits in the prefetch buffer.
"""
import collections
import threading
import weakref

import numpy as np

ALIGN = 64   # bytes: what TensorFlow needs to wrap a NumPy array without a copy


def aligned_empty(shape, dtype=np.uint8, align=ALIGN):
    """`np.empty(shape, dtype)` whose data starts on an `align`-byte boundary (tf.data then takes it without a
    copy). Cost: `align` bytes more than `np.empty`."""
    count = int(np.prod(shape))
    itemsize = np.dtype(dtype).itemsize
    buf = np.empty(count * itemsize + align, np.uint8)
    offset = (-buf.ctypes.data) % align
    return buf[offset:offset + count * itemsize].view(dtype).reshape(shape)


class _Lease:
    """One batch's hold on a pooled buffer: the owner (`base`) of the batch array `BatchBuffers.take` hands out.

    NumPy makes an array from `__array_interface__` with this object as its base, and every array derived from it
    (slices, reshapes, a tf.Tensor that wraps it without a copy) keeps it alive; so the lease lives exactly as long
    as some array still views the batch.
    """

    def __init__(self, raw, shape, dtype=np.uint8):
        self.raw = raw   # the pooled buffer (uint8, aligned); kept alive by this lease while the batch is held
        self.__array_interface__ = {"version": 3, "typestr": np.dtype(dtype).str,
                                    "shape": tuple(int(s) for s in shape), "data": (raw.ctypes.data, False)}


class BatchBuffers:
    """A pool of batch arrays: `take(shape, dtype)` returns a 64-byte aligned array of that shape and dtype (uint8
    frames, or a feature store's float16 vectors), carved from an idle byte buffer of the pool or from a new one.

    Ownership rule: `take` lends a buffer to the one batch it returns, and the buffer comes back to the pool when
    the last array viewing that batch is freed (a `weakref.finalize` on the batch's `_Lease`, which runs in
    whichever thread drops the last reference). `take` reuses only buffers that came back, so a batch still held
    anywhere (by tf.data's prefetch buffer, a tensor made from it, a caller's list) is never overwritten; a
    consumer that lets each batch go before asking for the next (`ttrnn.data.map_batches`) keeps two buffers busy,
    the one it holds and the one being filled.

    Args:
        capacity: bytes of a new buffer at least (a feed sets its largest batch, so that any of its batches fits
            any buffer).
        keep: at most this many idle buffers are kept; beyond it the smallest are freed.

    `allocated` counts the buffers made (batches taken / buffers made measures the reuse).
    """

    def __init__(self, capacity=0, keep=4):
        self.capacity, self.keep = int(capacity), int(keep)
        self.allocated = 0
        self._idle = []                        # buffers no batch views
        self._returned = collections.deque()   # buffers given back by finalizers (any thread), not yet in _idle
        self._lock = threading.Lock()          # `take` from several threads (one feed's tf.data thread each)

    def take(self, shape, dtype=np.uint8):
        """An array of `shape` and `dtype` (default uint8; C-contiguous, aligned), lent until every array viewing
        it is freed."""
        need = int(np.prod(shape)) * np.dtype(dtype).itemsize
        with self._lock:
            while self._returned:
                self._idle.append(self._returned.popleft())
            self._idle.sort(key=len, reverse=True)
            del self._idle[self.keep:]                   # idle beyond `keep`: the smallest go
            fits = [k for k, raw in enumerate(self._idle) if len(raw) >= need]
            if fits:
                raw = self._idle.pop(fits[-1])           # the smallest that fits
            else:
                raw = aligned_empty(max(need, self.capacity))
                self.allocated += 1
        lease = _Lease(raw, shape, dtype)
        weakref.finalize(lease, self._returned.append, raw).atexit = False
        return np.asarray(lease)
