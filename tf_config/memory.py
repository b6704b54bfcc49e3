"""Memory allocator settings for training, applied before TensorFlow starts (`apply_memory`).

Why: an epoch moves hundreds of MB per batch through large, short-lived buffers (TensorFlow's tensors of the
projection, the batches of frames). With glibc's defaults every buffer above the mmap threshold (at most 32 MB) is
a fresh ``mmap``, faulted in page by page (each page zeroed by the kernel) and returned with ``munmap`` when freed,
so a large part of the epoch's CPU time is spent in the kernel (docs/performance.md, the allocator section).
`apply_memory` keeps freed memory in the process instead:

- glibc ``mallopt``: no mmap for large blocks (``M_MMAP_MAX = 0``: they come from the heap, whose freed space is
  reused) and no trimming of the heap's top (``M_TRIM_THRESHOLD`` = 2 GiB, mallopt's largest int); set through
  ``mallopt`` at run time, because glibc reads its ``MALLOC_*_`` environment variables only when the process starts;
- TensorFlow's CPU tensors from its BFC allocator (``TF_CPU_ALLOCATOR_USE_BFC``): it carves tensors out of
  regions it keeps, so a step's tensors reuse the previous step's pages. TensorFlow reads the variable when it
  creates its CPU allocator (the first op), so it must be set before then.

What was set goes into the run's config.json (`applied`). This module imports nothing of the project and never
TensorFlow.
"""

import ctypes
import ctypes.util
import os

# glibc's mallopt parameter numbers (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
TUNED_MALLOPT = {"M_MMAP_MAX": (M_MMAP_MAX, 0), "M_TRIM_THRESHOLD": (M_TRIM_THRESHOLD, 2 ** 31 - 1)}
TUNED_ENV = {"TF_CPU_ALLOCATOR_USE_BFC": "true"}


def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") else None
    except OSError:
        return None


# What this process runs with: glibc's and TensorFlow's defaults until `apply_memory` is called.
_APPLIED = {"allocator": "default", "mallopt": {}, "env": {}}


def applied():
    """What :func:`apply_memory` set in this process: ``{"allocator": "tuned", "mallopt": {name: value} (only what
    glibc accepted), "env": {...}}``; ``{"allocator": "default", ...}`` with nothing set if it was not called."""
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in _APPLIED.items()}


def apply_memory():
    """Apply the tuned allocator settings (module docstring) to this process; call it before TensorFlow's first op.
    Returns `applied()`. Where glibc is absent (musl, macOS) only TensorFlow's variable is set; a value of it the
    user set wins."""
    done = {"allocator": "tuned", "mallopt": {}, "env": {}}
    libc = _libc()
    for name, (param, value) in TUNED_MALLOPT.items():
        if libc is not None and libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1:
            done["mallopt"][name] = value
    for key, value in TUNED_ENV.items():
        os.environ.setdefault(key, value)
        done["env"][key] = os.environ[key]
    _APPLIED.update(done)
    return applied()
