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
                      the clip's index row (`meta_json`), the store's uid (`store_uid`) and its parameters
                      (`params_json`), so a kill between a shard's rename and the next index commit loses nothing:
                      the next writer adopts intact shards of this store.
        c-*.h5        codec raw: `frames` uint8 (T, H, W, 3), contiguous (one read straight into a batch row);
                      lzf / gzip: `frames` chunked a few frames per chunk with that HDF5 filter;
                      jpeg: `bytes` uint8 (N,) the frames' JPEG files back to back, `offsets` int64 (T + 1,).
                      `crc` uint32 (T,): CRC-32 of each frame as stored (raw frame bytes, or its JPEG bytes),
                      checked on every read (`ttrnn.store.codecs`).
    OUT.clips/store.json   the store record (`record_text`): uid, created, parameters, splits and failures, with
                      their CRC-32; replaced atomically by a commit that changes it, before the index.
    OUT.clips/.lock   the writer lock (flock; released by the kernel when the writer dies, even by SIGKILL)

Why this design (and not HDF5's in-place flushes of schema 1): a flush of HDF5 metadata is not atomic, so a
SIGKILL or a full disk in the middle of one damaged whole stores. Here nothing a reader can see is ever
written to: shards are immutable once named, the index is replaced whole. Schema-1 stores (one HDF5 file,
clips under /clips, no checksums) are still read; writing into them is refused (transcode or rebuild them).

Why the shard folder repeats what the index says: the index is one small file, the one a copy most often drops,
truncates or damages, while the frames (hours of decoding) sit in the folder. The folder alone is therefore enough
to rebuild the index (`ttrnn.store.repair`): the rows from the shards, the rest from store.json, and the
parameters and uid also from every shard, so that they survive the loss of store.json too.
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
"""The layout this version writes (module docstring); schema-1 stores (one HDF5 file) are still read."""
CODECS = ("raw", "jpeg", "lzf", "gzip")
"""How frames are coded in a shard: raw bytes, JPEG files, or HDF5's lzf / gzip filters (`--codec`)."""
FEATURE_CODECS = ("float16", "float32")
"""How a feature store keeps its per-frame feature vectors: a contiguous array of that dtype, one CRC-32 per frame
(`feature_params`; written by `python -m experiments.features`)."""
COMPRESSIONS = ("lzf", "gzip", "none")
"""The schema-1 names of the codecs (`--compression`, the old option): "none" is codec raw."""
DEFAULT_QUALITY = 95
"""JPEG quality when none is given (`--quality`)."""
DEFAULT_CODEC = "jpeg"
"""What preprocess writes unless told: the size / speed trade-off is measured in docs/performance.md."""
FRAMES_PER_CHUNK = 4
"""lzf / gzip: frames per HDF5 chunk (a read decompresses whole chunks)."""
SHARD_SUFFIX = ".clips"
"""The shard folder of store `OUT` is `OUT` + this suffix (`shard_dir`)."""
STORE_RECORD = "store.json"
"""The store record in the shard folder: uid, parameters, splits and failures (`record_text`), so that the index can
be rebuilt from the folder alone."""

INDEX_FIELDS = ("clip_id", "class_name", "label", "group", "length", "source", "fps")
"""The fields of `FrameStore.index`, one row per clip (strings decoded to NumPy unicode by the reader)."""


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


def feature_params(source, features, dtype="float16"):
    """The parameters of a feature store made from the frame store whose parameters are `source`: the source's
    dataset, classes, multi-label flag, frame size (the frames the features were computed from, which a raw video
    must be decoded to before its backbone), frame skip and rate, with codec `dtype` (FEATURE_CODECS) and
    `features`, the dict that says how they were computed (`FrameStore.features`: backbone, weights, pooling,
    width F, image_size, source, frame_skip, ...)."""
    if dtype not in FEATURE_CODECS:
        raise StoreError(f"feature dtype must be one of {', '.join(FEATURE_CODECS)}, got {dtype!r}")
    if source.get("features") is not None:
        raise StoreError("the source is a feature store already: give the frame store it was made from")
    keep = ("dataset", "width", "height", "frame_skip", "fps", "classes", "multilabel", "synthetic")
    p = {k: source[k] for k in keep if k in source}
    p.update(codec=dtype, quality=None, schema_version=SCHEMA_VERSION, features=dict(features))
    p["features"]["width"] = int(p["features"]["width"])
    return json.loads(json.dumps(p, default=json_default))


def is_feature_store(params):
    """Whether store parameters `params` (`params_of`, `FrameStore.attrs`) are a feature store's."""
    return params.get("features") is not None


def clip_form(params):
    """(shape of one frame, dtype) of the clips of a store with parameters `params`: ((H, W, 3), uint8) for a frame
    store, ((F,), float16 or float32) for a feature store."""
    features = params.get("features")
    if features is not None:
        return (int(features["width"]),), np.dtype(params["codec"])
    return (int(params["height"]), int(params["width"]), 3), np.dtype(np.uint8)


def recoded_params(params, codec, quality=None):
    """`params` of a store (any schema) with another codec: those of its transcoded copy."""
    if is_feature_store(params):
        raise StoreError("a feature store cannot be transcoded (its codec is its dtype); extract it again with "
                         "python -m experiments.features and --dtype")
    p = {k: v for k, v in params.items() if k not in ("compression", "codec", "quality", "schema_version")}
    return store_params(compression=codec, quality=quality, **p)


def shard_files(path):
    """Sorted names of the shard files (c-*.h5) in the shard folder of store `path`; [] when there is no folder."""
    try:
        return sorted(n for n in os.listdir(shard_dir(path)) if n.startswith("c-") and n.endswith(".h5"))
    except OSError:
        return []


def rebuild_hint(path):
    """"; its shard folder ... holds N clips: rebuild the index from them with ... --repair" when the shard folder
    of store `path` holds shards or a store record, so an index that is missing or damaged can be rebuilt; else "".
    The end of the one-line error of a store whose index cannot be read."""
    n = len(shard_files(path))
    if not n and not os.path.isfile(record_path(path)):
        return ""
    return (f"; its shard folder {shard_dir(path)}/ holds {n} clip{'s' if n != 1 else ''}: rebuild the index from "
            f"them with python -m preprocess.check {path} --repair")


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


def index_intact(f, rows, failed):
    """Whether the open index file `f` (h5py.File) passes its checksum (`index_digest`), given the `rows` and
    `failed` list read from it; True for indexes written before the checksum existed."""
    if "index_crc" not in f.attrs:
        return True
    split_ids = {n: {p: sg[p][:] for p in sg} for n, sg in f["splits"].items()}
    return index_digest(f.attrs["params_json"], rows, failed, split_ids) == int(f.attrs["index_crc"])


# --- the store record (OUT.clips/store.json) -----------------------------------------------------------------------
def record_path(path):
    """The store record of store `path`: OUT.clips/store.json."""
    return os.path.join(shard_dir(path), STORE_RECORD)


def record_text(uid, created, params, splits, failed):
    """The store record's text: what the index says beyond its rows (uid, creation time, parameters, splits, failed
    clips) as canonical JSON, with `crc` the CRC-32 of the rest, so a flipped byte is noticed, not believed."""
    body = {"ttrnn_store": SCHEMA_VERSION, "uid": str(uid), "created": str(created), "params": params,
            "splits": {n: {p: [str(c) for c in ids] for p, ids in parts.items()} for n, parts in splits.items()},
            "failed": [[str(a), str(b)] for a, b in failed]}
    body = json.loads(json.dumps(body, default=json_default))
    body["crc"] = _record_crc(body)
    return json.dumps(body, sort_keys=True)


def _record_crc(body):
    return zlib.crc32(json.dumps({k: v for k, v in body.items() if k != "crc"}, sort_keys=True).encode("utf-8"))


def read_record(path):
    """The store record of store `path` as a dict (uid, created, params, splits, failed); None when there is none;
    StoreError when it is damaged (not JSON, fails its CRC, lacks a field)."""
    try:
        with open(record_path(path), "rb") as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StoreError(f"cannot read {record_path(path)}: {e.strerror or e}") from None
    try:
        body = json.loads(text.decode("utf-8"))
        if body.get("crc") != _record_crc(body):
            raise ValueError("it fails its checksum")
        for key in ("uid", "created", "params", "splits", "failed"):
            body[key]  # noqa: B018 (a missing field is damage)
    except (ValueError, KeyError, AttributeError, UnicodeDecodeError) as e:
        raise StoreError(f"{record_path(path)} is damaged ({e})") from None
    return body


def as_text(x):
    """An HDF5 string (bytes or str) as str."""
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def json_default(o):
    """`json.dumps(default=...)` for NumPy scalars in parameters and metadata."""
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
