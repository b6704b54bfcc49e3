"""The frame store's layout, its parameters, its index rows and its errors.

Layout of a store `OUT` (schema version 2)::

    OUT               HDF5 index file, never modified in place: each commit writes a complete new one under a
                      unique temporary name, fsyncs it and renames it over OUT (atomic on POSIX).
                      attrs: ttrnn_store=2, created, uid (random id of this store), index_crc (`index_digest`),
                             params_json: dataset, width, height, frame_skip, fps, codec, quality, classes,
                             multilabel, schema_version (+ extras)
        /index        compound rows, one per committed clip (`index_row_dtype`: clip_id, class_name, label, group,
                      length, source, fps, labels, shard)
        /failed       vlen str (N, 2): source, reason of clips that could not be decoded
        /splits/<name>/{train,test}   vlen str clip ids
    OUT.clips/        one shard file per clip, written whole by a worker under `.tmp-<unique>.h5`, fsynced and
                      renamed to `c-<unique>.h5`: a shard either exists complete or not at all. Its attrs repeat
                      the clip's index row (`meta_json`) and the store's uid, so a kill between a shard's rename
                      and the next index commit loses nothing: the next writer adopts intact shards of this store.
        c-*.h5        codec raw: `frames` uint8 (T, H, W, 3), contiguous (one read straight into a batch row);
                      lzf / gzip: `frames` chunked a few frames per chunk with that HDF5 filter;
                      jpeg: `bytes` uint8 (N,) the frames' JPEG files back to back, `offsets` int64 (T + 1,).
                      `crc` uint32 (T,): CRC-32 of each frame as stored (raw frame bytes, or its JPEG bytes),
                      checked on every read (`ttrnn.store.codecs`).
    OUT.clips/.lock   the writer lock (flock; released by the kernel when the writer dies, even by SIGKILL)

Why this design (and not HDF5's in-place flushes of schema 1): a flush of HDF5 metadata is not atomic, so a
SIGKILL or a full disk in the middle of one damaged whole stores. Here nothing a reader can see is ever
written to: shards are immutable once named, the index is replaced whole. Schema-1 stores (one HDF5 file,
clips under /clips, no checksums) are still read; writing into them is refused (transcode or rebuild them).
"""

from __future__ import annotations

import errno
import json
import os
import re
import zlib

import h5py
import numpy as np

SCHEMA_VERSION = 2
CODECS = ("raw", "jpeg", "lzf", "gzip")
COMPRESSIONS = ("lzf", "gzip", "none")  # schema-1 names; "none" is codec raw
DEFAULT_QUALITY = 95
DEFAULT_CODEC = "jpeg"     # what preprocess writes unless told: the trade-off is measured in docs/performance.md
FRAMES_PER_CHUNK = 4       # lzf / gzip: frames per HDF5 chunk
SHARD_SUFFIX = ".clips"

# Fields of `FrameStore.index` (strings are decoded to numpy unicode in the reader).
INDEX_FIELDS = ("clip_id", "class_name", "label", "group", "length", "source", "fps")


# --- errors -----------------------------------------------------------------------------------------------------
class StoreError(ValueError):
    """A store file is missing, is not a ttrnn store, or does not match the requested parameters."""


class CorruptClipError(StoreError):
    """A stored clip fails its checksum or cannot be read; the message names the clip and the store."""


class StoreLockedError(StoreError):
    """Another process is writing this store."""


class DiskFullError(StoreError):
    """The store's file system ran out of space; the message names it and the bytes needed."""


def is_disk_full(exc):
    """True for an OSError (h5py or os) caused by ENOSPC/EDQUOT."""
    if not isinstance(exc, OSError):
        return False
    text = str(exc)
    return exc.errno in (errno.ENOSPC, errno.EDQUOT) or "errno = 28" in text or "No space left" in text


def disk_full_error(path, more=0):
    """DiskFullError naming the file system of store `path`, its free bytes and the `more` bytes needed."""
    st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    free = st.f_bavail * st.f_frsize
    need = f"about {int(more):,} more bytes needed" if more else "more space needed"
    return DiskFullError(f"disk full: {_mount_point(path)} (holding {path}) has {free:,} bytes free, {need}; "
                         f"committed clips are kept: free space and run the same command to resume")


def _mount_point(path):
    p = os.path.dirname(os.path.abspath(path))
    while not os.path.ismount(p):
        p = os.path.dirname(p)
    return p


def corrupt_clip_line(exc):
    """The one-line message of a CorruptClipError behind `exc` (itself, or named inside the text of an error
    that carried it across tf.data or a process pool), else None."""
    if isinstance(exc, CorruptClipError):
        return str(exc)
    m = re.search(r"CorruptClipError: (clip [^\n]*)", str(exc))
    return m.group(1).strip() if m else None


def open_problem(e):
    """What an h5py open error means, in words (a truncated file is not a lock problem)."""
    text = str(e)
    if "truncated file" in text:
        return "truncated file"
    if "unable to lock file" in text:
        return "locked by another process"
    if "file signature not found" in text:
        return "not an HDF5 file"
    return f"unreadable: {text}"


# --- parameters -------------------------------------------------------------------------------------------------
def shard_dir(path):
    """The folder of store `path`'s shard files: `path` + ".clips"."""
    return os.fspath(path) + SHARD_SUFFIX


def store_params(dataset, width, height, frame_skip=1, fps=None, compression="none", classes=(),
                 multilabel=False, quality=None, synthetic=False, **extra):
    """The parameter dict that identifies a store: a re-run with different parameters is refused.

    `synthetic`: the clips are generated (preprocess.synthetic), so results on the store are no dataset's (the key
    is written only then, so stores made before it existed keep their parameters).

    `compression` is the codec: raw (alias none), jpeg, lzf or gzip; `quality` (1-100, default 95) is JPEG's."""
    codec = "raw" if compression == "none" else compression
    if codec not in CODECS:
        raise StoreError(f"codec must be one of {', '.join(CODECS)}, got {compression!r}")
    if codec == "jpeg":
        quality = DEFAULT_QUALITY if quality is None else int(quality)
        if not 1 <= quality <= 100:
            raise StoreError(f"--quality must be 1..100, got {quality}")
    elif quality is not None:
        raise StoreError(f"--quality applies to --codec jpeg only (codec {codec})")
    p = dict(dataset=str(dataset), width=int(width), height=int(height), frame_skip=int(frame_skip),
             fps=None if fps is None else float(fps), codec=codec, quality=quality,
             classes=[str(c) for c in classes], multilabel=bool(multilabel), schema_version=SCHEMA_VERSION)
    p.update({"synthetic": True} if synthetic else {}, **extra)
    return p


def recoded_params(params, codec, quality=None):
    """`params` of a store (any schema) with another codec: those of its transcoded copy."""
    p = {k: v for k, v in params.items() if k not in ("compression", "codec", "quality", "schema_version")}
    return store_params(compression=codec, quality=quality, **p)


def params_of(path):
    """The parameter dict a store was made with (its `store_params`)."""
    try:
        with h5py.File(os.fspath(path), "r") as f:
            return json.loads(f.attrs["params_json"])
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise StoreError(f"cannot read the parameters of {path} ({open_problem(e)})") from None


# --- index rows -------------------------------------------------------------------------------------------------
def clip_meta(clip_id, class_name, label, group, source, fps, labels=None):
    """The index fields of one clip (without length and shard)."""
    return dict(clip_id=str(clip_id), class_name=str(class_name), label=int(label), group=str(group),
                source=str(source), fps=float(fps), labels=None if labels is None else [int(x) for x in labels])


def index_row_dtype(num_classes):
    """HDF5 compound dtype of one `/index` row; `labels` is the multi-hot label vector (C,)."""
    s = h5py.string_dtype("utf-8")
    return np.dtype([
        ("clip_id", s), ("class_name", s), ("label", "<i4"), ("group", s), ("length", "<i8"),
        ("source", s), ("fps", "<f8"), ("labels", "u1", (max(1, num_classes),)), ("shard", s),
    ])


def labels_vector(row, num_classes):
    """uint8 (max(1, C),) multi-hot labels of an index row dict: its `labels`, else one-hot of its `label`."""
    out = np.zeros(max(1, num_classes), np.uint8)
    if row.get("labels") is not None:
        out[:len(row["labels"])] = row["labels"]
    elif 0 <= int(row["label"]) < len(out):
        out[int(row["label"])] = 1
    return out


def row_dict(r):
    """An `/index` row (numpy record) as the dict the writer keeps."""
    d = {k: as_text(r[k]) for k in ("clip_id", "class_name", "group", "source", "shard")}
    d.update(label=int(r["label"]), length=int(r["length"]), fps=float(r["fps"]), labels=[int(x) for x in r["labels"]])
    return d


def index_digest(params_json, rows, failed, splits):
    """CRC-32 of everything an index file says (parameters, rows, failures, splits) in a canonical text form: the
    writer stores it, the reader recomputes it from what it read, so a flipped byte cannot change a label."""
    text = json.dumps([as_text(params_json),
                       [[as_text(v) if isinstance(v, (bytes, str)) else np.asarray(v).tolist() for v in r]
                        for r in rows],
                       [[as_text(a), as_text(b)] for a, b in failed],
                       {n: {p: [as_text(c) for c in ids] for p, ids in parts.items()} for n, parts in splits.items()}],
                      sort_keys=True)
    return zlib.crc32(text.encode("utf-8"))


def as_text(x):
    """An HDF5 string (bytes or str) as str."""
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def json_default(o):
    """`json.dumps(default=...)` for NumPy scalars in parameters and metadata."""
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
