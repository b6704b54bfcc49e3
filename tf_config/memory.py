"""Memory allocator settings for training: ``--allocator tuned|default``, applied before TensorFlow starts.

Why: a full-scale epoch moved hundreds of MB per batch through large, short-lived buffers (TensorFlow's tensors of
the projection, the batches of frames). With glibc's defaults every buffer above the mmap threshold (at most 32 MB)
is a fresh ``mmap``, is faulted in page by page (each page zeroed by the kernel) and is returned with ``munmap``
when freed: issue 22 measured ~40 mmap + ~40 munmap per second and ~170,000 minor page faults per second, with
38-54 % of the CPU in the kernel. ``tuned`` keeps freed memory in the process instead:

- glibc ``mallopt``: no mmap for large blocks (``M_MMAP_MAX = 0``: they come from the heap, whose freed space is
  reused) and no trimming of the heap's top (``M_TRIM_THRESHOLD`` = 2 GiB, mallopt's largest int); set through ``mallopt`` at run time,
  because glibc reads its ``MALLOC_*_`` environment variables only when the process starts;
- TensorFlow's CPU tensors from its BFC allocator (``TF_CPU_ALLOCATOR_USE_BFC``): it carves tensors out of
  regions it keeps, so a step's tensors reuse the previous step's pages. TensorFlow reads the variable when it
  creates its CPU allocator (the first op), so it must be set before then.

``default`` changes nothing (the arrangement before issue 22, kept for A/B measurements: `experiments.bench
epoch`). The settings returned by :func:`apply_memory` go into the run's config.json. This module imports nothing
of the project and never TensorFlow.
"""

import ctypes
import ctypes.util
import os

ALLOCATORS = ("tuned", "default")
# glibc's mallopt parameter numbers (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
TUNED_MALLOPT = {"M_MMAP_MAX": (M_MMAP_MAX, 0), "M_TRIM_THRESHOLD": (M_TRIM_THRESHOLD, 2 ** 31 - 1)}
TUNED_ENV = {"TF_CPU_ALLOCATOR_USE_BFC": "true"}


class MemoryConfigError(ValueError):
    """Bad allocator settings (an unknown --allocator value)."""


def add_memory_args(parser):
    """Add ``--allocator tuned|default`` to an argparse parser."""
    parser.add_argument("--allocator", default="tuned", choices=ALLOCATORS,
                        help="tuned (default): freed memory stays in the process (glibc mallopt: no mmap for "
                             "large blocks, no trim; TensorFlow's BFC CPU allocator), so batches do not fault in "
                             "fresh pages; default: glibc's and TensorFlow's own defaults (docs/performance.md)")
    return parser


def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") else None
    except OSError:
        return None


_APPLIED = {"allocator": "default", "mallopt": {}, "env": {}}


def applied():
    """What :func:`apply_memory` set in this process (``default`` with nothing set if it was not called)."""
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in _APPLIED.items()}


def apply_memory(allocator="tuned"):
    """Apply `allocator`'s settings to this process; call it before TensorFlow's first op. Returns what was set,
    for config.json: ``{"allocator", "mallopt": {name: value} (only what glibc accepted), "env": {...}}``.
    Where glibc is absent (musl, macOS) only TensorFlow's variable is set."""
    if allocator not in ALLOCATORS:
        raise MemoryConfigError(f"--allocator must be one of {', '.join(ALLOCATORS)}, got {allocator!r}")
    done = {"allocator": allocator, "mallopt": {}, "env": {}}
    if allocator == "tuned":
        libc = _libc()
        for name, (param, value) in TUNED_MALLOPT.items():
            if libc is not None and libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1:
                done["mallopt"][name] = value
        for key, value in TUNED_ENV.items():
            os.environ.setdefault(key, value)   # a value the user set wins
            done["env"][key] = os.environ[key]
    _APPLIED.update(done)
    return applied()
