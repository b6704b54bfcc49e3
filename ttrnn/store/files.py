"""Durable-file helpers for every writer of the project: one exclusive file lock and one atomic write.

The store's writer, the run directory (experiments/run_dir.py), the demo cache and the CLI kit (`ttrnn.cli`) use
these, so a lock is always released by the kernel when its holder dies, and a file that is replaced is always
either the old one or the new one, whole, whatever kills the writer (SIGKILL, a full disk, a power cut).
Standard library only.
"""

from __future__ import annotations

import errno
import fcntl
import os


class FileLock:
    """An exclusive advisory lock (`flock`) on the file `path`, created (mode 0644) and opened at construction.

    The kernel releases a flock when the last descriptor of its open file is closed, which also happens when the
    holding process dies, however it dies (SIGKILL, OOM): a lock file left behind by a dead process is simply free
    again, never stale. So the file is never deleted while it may be held (an unlinked lock file would let a
    second process lock a new file of the same name). Locks are per open file: two `FileLock`s of one path in one
    process exclude each other too.

    Args:
        path: the lock file; OSError when it cannot be created or opened.

    Example::

        with FileLock(folder / ".lock"):       # waits for the holder
            ...
        lock = FileLock(path)
        if not lock.acquire(blocking=False):  # held by another process
            lock.release()
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def acquire(self, blocking=True):
        """Take the lock: True once held; False when `blocking` is off and another process holds it (the file
        stays open: `fd` still reads what the holder wrote in it). Other OSErrors are flock's, e.g. ENOLCK or
        EOPNOTSUPP on a file system without locks."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True

    def release(self):
        """Close the file, which drops the lock; a no-op when already released."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def atomic_write(path, data, tmp=None, sync_dir=True):
    """Replace the file `path` with `data`, all or nothing: written to `tmp` (default `path` + ".tmp"; in the same
    folder, so that the rename stays on one file system), fsynced, renamed over `path` (`os.replace`, atomic on
    POSIX), then the folder fsynced so that the rename itself is durable (`sync_dir=False`: the caller fsyncs the
    folder later, once for many files). A kill or a full disk at any moment leaves the old file or the new one,
    whole; on any error the temporary file is removed and the error raised as it came.

    Args:
        path: the file to write (str or path-like).
        data: bytes, or str (written as UTF-8), or a callable `data(f)` that writes into the open binary file
            `f`; it may also write the file by its name, `f.name` (Keras's `model.save` takes a path): the fsync
            covers the file's data whichever descriptor wrote it.
        tmp: the temporary file's path (a unique name where several writers or a cleanup need one).
        sync_dir: fsync the folder after the rename.
    """
    path = os.fspath(path)
    tmp = path + ".tmp" if tmp is None else os.fspath(tmp)
    try:
        with open(tmp, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove_file(tmp)
        raise
    if sync_dir:
        fsync_path(os.path.dirname(os.path.abspath(path)))


def fsync_path(path):
    """fsync the file or folder `path` (a folder: the names in it, e.g. a rename into it, become durable).

    EINVAL is ignored: a file system that cannot sync that kind of file (some refuse folders) has nothing more
    to offer."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
    finally:
        os.close(fd)


def remove_file(path):
    """Delete the file `path` if it exists."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
