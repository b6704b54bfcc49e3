"""Reads of file byte spans that bypass the page cache (O_DIRECT), for stores larger than memory.

Why: a store read once per epoch and larger than memory gains nothing from the page cache, and filling it costs
the kernel system CPU per byte (read-ahead, copying out, dropping behind), which a reused O_DIRECT buffer avoids
(measured in docs/performance.md, "O_DIRECT reads of a store larger than memory"). O_DIRECT needs the file
offset, the length and the buffer aligned, so spans are read in aligned blocks into one reused aligned buffer per
thread and copied into place from there.
NumPy and the standard library only (preprocessing workers import this).
"""
import errno
import os
import threading

import numpy as np

ALIGN = 4096                  # covers every logical block size Linux asks O_DIRECT to respect (512 or 4096)
BLOCK = 8 << 20               # bytes per read: the reused buffer's size
_local = threading.local()    # one aligned buffer per reading thread (tf.data's, the main thread, ...)


def supported(path):
    """True when `path` can be opened with O_DIRECT and read into an aligned buffer (not some network
    or FUSE file systems, tmpfs before Linux 6.6, not a platform without O_DIRECT)."""
    if not hasattr(os, "O_DIRECT"):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        return False
    try:
        os.preadv(fd, [_buffer()[:ALIGN]], 0)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def read_span(path, offset, out):
    """Fill `out` (a writable C-contiguous array of any dtype) with the `out.nbytes` bytes of `path` from `offset`,
    read with O_DIRECT. An OSError (EIO on a short read: the file ends before the span) when the bytes are not
    there."""
    flat = out.reshape(-1).view(np.uint8)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        done, buffer = 0, _buffer()
        while done < flat.size:
            start = (offset + done) // ALIGN * ALIGN          # aligned down; later blocks start aligned anyway
            skip = offset + done - start
            length = min(BLOCK, -(-(skip + flat.size - done) // ALIGN) * ALIGN)
            got = os.preadv(fd, [buffer[:length]], start)
            take = min(got - skip, flat.size - done)
            if take <= 0:
                raise OSError(errno.EIO, f"{path} ends at {start + got} bytes, before the span "
                                         f"{offset}..{offset + flat.size}")
            flat[done:done + take] = buffer[skip:skip + take]
            done += take
    finally:
        os.close(fd)
    return out


def _buffer():
    """This thread's aligned buffer of BLOCK bytes (made once, and again only if BLOCK changes: its pages stay
    mapped between reads)."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None or len(buffer) != BLOCK:
        raw = np.empty(BLOCK + ALIGN, np.uint8)
        start = (-raw.ctypes.data) % ALIGN
        buffer = _local.buffer = raw[start:start + BLOCK]
    return buffer
