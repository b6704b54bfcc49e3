"""Page-cache hints for the training reader: read the next batches' clips ahead, drop the clips already read.

The feed (`BatchFeed.batches`) hints the clips of the batches after the one it is reading, so the kernel reads them
in large requests while the step runs and the reader then copies from memory; with a store larger than memory it
also drops each clip once read, so the page cache never fills with clips that are not read again this epoch (and
the kernel neither spends time reclaiming them nor evicts other files for them). A store read with O_DIRECT
(`FrameStore.reads_direct`) gets no hints: its reads do not pass through the page cache.
"""
import os
import queue
import threading


class CacheHints:
    """`posix_fadvise` hints on the store's files, issued by one background thread in the order they were queued
    (a hint can block while the kernel queues the reads, and the reader must not wait for it).

    - `will_need(extents)`: POSIX_FADV_WILLNEED, start reading these spans into the page cache now;
    - `done(extents)`: POSIX_FADV_DONTNEED, drop them, when `drop` is set (the store is larger than memory).

    `extents` are (file, offset, nbytes) triples (`FrameStore.clip_extent`); None entries are skipped. Where the
    platform has no `posix_fadvise` the hints are no-ops; a failing hint is ignored (it is only a hint).
    """

    def __init__(self, drop):
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
