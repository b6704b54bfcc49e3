"""One frame store for video clips: the schema, its writer (used by `preprocess/`) and its reader.

Layout of a store `OUT` (schema version 2)::

    OUT               HDF5 index file, never modified in place: each commit writes a complete new one under a
                      unique temporary name, fsyncs it and renames it over OUT (atomic on POSIX).
                      attrs: ttrnn_store=2, created, uid (random id of this store), params_json: dataset, width,
                             height, frame_skip, fps, codec, quality, classes, multilabel, schema_version (+ extras)
        /index        compound rows, one per committed clip (clip_id, class_name, label, group, length, source,
                      fps, labels, shard)
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
                      checked on every read.
    OUT.clips/.lock   the writer lock (flock; released by the kernel when the writer dies, even by SIGKILL)

Why this design (and not HDF5's in-place flushes of schema 1): a flush of HDF5 metadata is not atomic, so a
SIGKILL or a full disk in the middle of one damaged whole stores. Here nothing a reader can see is ever
written to: shards are immutable once named, the index is replaced whole. Schema-1 stores (one HDF5 file,
clips under /clips) are still read; writing into them is refused (transcode or rebuild them).

This module must not import TensorFlow or Keras (preprocessing workers stay light).
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import time
import uuid
import zlib
from collections import OrderedDict

import h5py
import numpy as np

from ttrnn.store import direct_io

SCHEMA_VERSION = 2
CODECS = ("raw", "jpeg", "lzf", "gzip")
COMPRESSIONS = ("lzf", "gzip", "none")  # schema-1 names; "none" is codec raw
DEFAULT_QUALITY = 95
DEFAULT_CODEC = "jpeg"     # what preprocess writes unless told: 6.4x smaller than raw, 1.8 levels (docs/performance.md)
FRAMES_PER_CHUNK = 4
SHARD_SUFFIX = ".clips"
OPEN_SHARDS = 8  # reader's cache of open shard files per process (each holds HDF5 caches: RSS)

# Fields of `FrameStore.index` (strings are decoded to numpy unicode in the reader).
INDEX_FIELDS = ("clip_id", "class_name", "label", "group", "length", "source", "fps")


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


def shard_dir(path):
    return os.fspath(path) + SHARD_SUFFIX


def _file_index_dtype(num_classes):
    """HDF5 compound dtype of one `/index` row; `labels` is the multi-hot label vector (C,)."""
    s = h5py.string_dtype("utf-8")
    return np.dtype([
        ("clip_id", s), ("class_name", s), ("label", "<i4"), ("group", s), ("length", "<i8"),
        ("source", s), ("fps", "<f8"), ("labels", "u1", (max(1, num_classes),)), ("shard", s),
    ])


def _str(x):
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


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


# --- codecs -----------------------------------------------------------------------------------------------------
def encode_frames(frames, codec, quality=None):
    """uint8 (T, H, W, 3) RGB -> {dataset name: array} of a shard, with the per-frame `crc`."""
    frames = np.ascontiguousarray(frames, np.uint8)
    if codec != "jpeg":
        return {"frames": frames, "crc": np.array([zlib.crc32(f) for f in frames], np.uint32)}
    import cv2
    coded = []
    for f in frames:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise ValueError("JPEG encoding failed")
        coded.append(buf.reshape(-1))
    offsets = np.zeros(len(coded) + 1, np.int64)
    offsets[1:] = np.cumsum([len(c) for c in coded])
    return {"bytes": np.concatenate(coded), "offsets": offsets,
            "crc": np.array([zlib.crc32(c) for c in coded], np.uint32)}


def as_stored(frames, codec, quality=None):
    """uint8 (T, H, W, 3) frames as a store of `codec` returns them (JPEG: encoded and decoded again; the
    lossless codecs: unchanged). For inputs that bypass a store, e.g. experiments.predict decoding a video."""
    if codec != "jpeg":
        return frames
    coded = encode_frames(frames, codec, quality or DEFAULT_QUALITY)
    out = np.empty_like(np.asarray(frames, np.uint8))
    off = coded["offsets"]
    for t in range(len(out)):
        decode_jpeg_into(coded["bytes"][off[t]:off[t + 1]], out[t])
    return out


def corrupt_clip_line(exc):
    """The one-line message of a CorruptClipError behind `exc` (itself, or named inside the text of an error
    that carried it across tf.data or a process pool), else None."""
    if isinstance(exc, CorruptClipError):
        return str(exc)
    import re
    m = re.search(r"CorruptClipError: (clip [^\n]*)", str(exc))
    return m.group(1).strip() if m else None


def decode_jpeg_into(data, out, check=True):
    """Decode one frame's JPEG bytes (uint8 (N,) or a memoryview) into `out` uint8 (H, W, 3) RGB, in place (no
    copy). `check`: first that the image is H x W (the buffer would take a smaller one).

    simplejpeg (libjpeg-turbo, straight to RGB into the given buffer) is the decoder: on 622 real 160x120 frames
    it decoded 1.13x as many frames per CPU second as cv2.imdecode + cvtColor, with identical output, and needs
    no intermediate BGR image (`experiments.bench store`, docs/performance.md)."""
    import simplejpeg
    data = memoryview(data)
    try:
        if check and simplejpeg.decode_jpeg_header(data)[:2] != out.shape[:2]:
            raise ValueError(f"not {out.shape[1]}x{out.shape[0]}")
        simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=out)
    except ValueError as e:
        raise ValueError(f"JPEG frame does not decode to {out.shape}: {e}") from None


def _write_datasets(f, arrays, codec):
    kw = {}
    if codec in ("lzf", "gzip"):
        t, h, w = arrays["frames"].shape[:3]
        kw = dict(chunks=(min(FRAMES_PER_CHUNK, t), h, w, 3), compression=codec)
        if codec == "gzip":
            kw["compression_opts"] = 4
    for name, a in arrays.items():
        f.create_dataset(name, data=a, **(kw if name == "frames" else {}))


def write_shard(directory, frames, meta, params, uid):
    """Write one clip as a complete shard file in `directory` and publish it by rename; returns its file name.

    `meta`: the clip's index fields (clip_id, class_name, label, group, source, fps, labels or None). Called in
    the decode workers. On any error (a full disk included) the temporary file is removed and the error raised."""
    frames = np.asarray(frames)
    h, w = params["height"], params["width"]
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (h, w, 3) or len(frames) == 0:
        raise ValueError(f"clip {meta['clip_id']}: expected uint8 (T>0, {h}, {w}, 3), got {frames.dtype} "
                         f"{frames.shape}")
    arrays = encode_frames(frames, params["codec"], params.get("quality"))
    name = f"c-{uuid.uuid4().hex}.h5"
    tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}.h5")
    def fill(f):
        _write_datasets(f, arrays, params["codec"])
        f.attrs["store_uid"] = uid
        f.attrs["meta_json"] = json.dumps(dict(meta, length=len(frames)), default=_json_default)
    try:
        write_h5_file(tmp, fill)
        os.rename(tmp, os.path.join(directory, name))
    except BaseException:
        _remove(tmp)
        raise
    return name


def write_h5_file(path, fill):
    """Create HDF5 file `path` whose content `fill(h5py.File)` makes, built in memory and written with plain
    writes + fsync. Why: h5py swallows errors of the final flush at close, so an HDF5 file written straight to a
    full disk can end up "complete" with zeros where its data should be; ordinary writes raise ENOSPC."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        fill(f)
    with open(path, "xb") as fh:
        fh.write(buf.getbuffer())
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def verify_crc(clip, frames, crc, store, numbers=None):
    """Raise CorruptClipError unless each frame's bytes (a sequence of arrays) has its stored CRC-32; the error
    names the frame by its number in the clip (`numbers`, default 0, 1, ...)."""
    for j, (f, c) in enumerate(zip(frames, crc)):
        if zlib.crc32(f if isinstance(f, memoryview) else np.ascontiguousarray(f)) != int(c):
            t = j if numbers is None else int(numbers[j])
            raise CorruptClipError(f"clip {clip} in {store} is damaged: frame {t} fails its checksum")


# --- writing ----------------------------------------------------------------------------------------------------
class StoreLock:
    """Exclusive writer lock of a store (flock on OUT.clips/.lock): one writer at a time, whatever the timing."""

    def __init__(self, path):
        self.path = os.fspath(path)
        d = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(d):
            raise StoreError(f"output directory does not exist: {d}")
        try:
            os.makedirs(shard_dir(self.path), exist_ok=True)
            self.fd = os.open(os.path.join(shard_dir(self.path), ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"cannot write {self.path}: {e.strerror or e}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise StoreLockedError(f"{self.path} is being written by another process (writer lock held); "
                                   f"wait for it to finish") from None

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


class StoreWriter:
    """Single-process writer: holds the store's lock, keeps the index in memory and commits it atomically.

    Clips arrive as shards (`write_shard`, usually in worker processes) and are added with `add_shard`, or
    whole with `add_clip` (writes the shard here). The index is republished after a clip when that costs at
    most ~10 % of the time since the last publication, and always at `commit()` / `close()`.
    """

    def __init__(self, path, params, overwrite=False):
        self.path = os.fspath(path)
        self.params = json.loads(json.dumps(dict(params), default=_json_default))
        self.classes = list(self.params["classes"])
        self.multilabel = bool(self.params["multilabel"])
        self.dir = shard_dir(self.path)
        self.lock = StoreLock(self.path)
        self._last_publish, self._publish_cost, self._dirty = time.perf_counter(), 0.0, False
        try:
            self._clean_temporaries()
            if os.path.exists(self.path) and not overwrite:
                self._load_existing()
            else:
                self.uid, self.created = uuid.uuid4().hex, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                self.rows, self.failed_list, self.splits = [], [], {}
                self.commit()  # an existing store is replaced only by a complete empty one
                self._drop_foreign_shards()
        except BaseException:
            self.lock.release()
            raise

    @classmethod
    def reopen(cls, path):
        """A writer of the existing store `path` with the parameters it was made with."""
        return cls(path, params_of(path))

    # -- opening --
    def _clean_temporaries(self):
        """Leftovers of killed runs (we hold the lock, so nobody is writing them): temporary shards and indexes."""
        for n in os.listdir(self.dir):
            if n.startswith(".tmp-"):
                _remove(os.path.join(self.dir, n))
        d, base = os.path.split(os.path.abspath(self.path))
        for n in os.listdir(d):
            if n.startswith(f".{base}.tmp-"):
                _remove(os.path.join(d, n))

    def _load_existing(self):
        try:
            f = h5py.File(self.path, "r")
        except OSError as e:
            raise StoreError(f"cannot open {self.path} for writing ({_open_problem(e)}); use --overwrite to "
                             f"replace it") from None
        with f:
            if "ttrnn_store" not in f.attrs:
                raise StoreError(f"{self.path} exists and is not a ttrnn store (use --overwrite to replace it)")
            if int(f.attrs["ttrnn_store"]) < SCHEMA_VERSION:
                raise StoreError(f"{self.path} is a schema-{int(f.attrs['ttrnn_store'])} store: convert it with "
                                 f"python -m preprocess.transcode or rebuild it with --overwrite")
            old = json.loads(f.attrs["params_json"])
            self._check_params(old)
            self.uid, self.created = _str(f.attrs["uid"]), _str(f.attrs["created"])
            self.rows = [_row_dict(r) for r in f["index"][:]]
            self.failed_list = [(_str(a), _str(b)) for a, b in f["failed"][:]]
            self.splits = {n: {p: [_str(c) for c in sg[p][:]] for p in sg} for n, sg in f["splits"].items()}
        self._adopt_shards()

    def _check_params(self, old):
        if old == self.params:
            return
        diff = sorted(k for k in set(old) | set(self.params) if old.get(k) != self.params.get(k))
        shown = ", ".join(f"{k}: store {old.get(k)!r} vs now {self.params.get(k)!r}" for k in diff if k != "classes")
        if "classes" in diff:
            shown = (shown + ", " if shown else "") + "class list differs"
        raise StoreError(f"{self.path} was made with different parameters ({shown}); use --overwrite to rebuild it")

    def _adopt_shards(self):
        """Index intact shards of this store that a killed run published but did not commit; delete the rest
        (other stores' shards after --overwrite, damaged files, second copies of a clip)."""
        known = {r["shard"] for r in self.rows}
        ids = {r["clip_id"] for r in self.rows}
        adopted = 0
        for n in sorted(os.listdir(self.dir)):
            if not n.startswith("c-") or n in known:
                continue
            p = os.path.join(self.dir, n)
            meta = _shard_meta(p, self.uid)
            if meta is None or meta["clip_id"] in ids:
                _remove(p)
                continue
            self.rows.append(dict(meta, shard=n))
            ids.add(meta["clip_id"])
            adopted += 1
        if adopted:
            self.commit()

    def _drop_foreign_shards(self):
        """After a fresh start (new uid, committed), any shard file in the folder belongs to an older store."""
        for n in os.listdir(self.dir):
            if n.startswith("c-"):
                _remove(os.path.join(self.dir, n))

    # -- state --
    @property
    def done_ids(self):
        """Clip ids already committed to the store."""
        return {r["clip_id"] for r in self.rows}

    def failed(self):
        """List of (source, reason) currently recorded."""
        return list(self.failed_list)

    def shard_bytes(self):
        """Total bytes of the committed shards (for size estimates)."""
        return sum(os.path.getsize(os.path.join(self.dir, r["shard"])) for r in self.rows)

    # -- adding --
    def add_clip(self, clip_id, frames, class_name, label, group, source, fps, labels=None):
        """Write one clip `frames` uint8 (T, H, W, 3) as a shard and add it. `labels`: multi-hot (C,) or None."""
        self._check_new(clip_id)
        meta = clip_meta(clip_id, class_name, label, group, source, fps, labels)
        try:
            name = write_shard(self.dir, frames, meta, self.params, self.uid)
        except OSError as e:
            if is_disk_full(e):
                raise self.disk_full(np.asarray(frames).nbytes) from None
            raise
        self.add_shard(name)

    def add_shard(self, name):
        """Add the published shard `name` (from `write_shard` with this writer's `uid`) to the index."""
        meta = _shard_meta(os.path.join(self.dir, name), self.uid, strict=True, verify=False)  # just written
        self._check_new(meta["clip_id"])
        self.rows.append(dict(meta, shard=name))
        self._dirty = True
        if time.perf_counter() - self._last_publish >= 9 * self._publish_cost:
            self.commit()

    def _check_new(self, clip_id):
        if clip_id in self.done_ids:
            raise ValueError(f"clip {clip_id} is already stored")

    def set_failed(self, failed):
        """Replace the recorded list of failed clips with `failed`: [(source, reason), ...] (committed later)."""
        self.failed_list = [(str(s), str(r)) for s, r in failed]
        self._dirty = True

    def set_splits(self, splits):
        """Record store-provided splits: {name: {"train": [clip_id...], "test": [clip_id...]}}."""
        for name, parts in splits.items():
            self.splits[name] = {p: [str(i) for i in ids] for p, ids in parts.items()}
        self._dirty = True

    def drop(self, clip_ids):
        """Remove clips from the index (commit follows); their shards are deleted after the commit."""
        gone = [r for r in self.rows if r["clip_id"] in set(clip_ids)]
        self.rows = [r for r in self.rows if r["clip_id"] not in set(clip_ids)]
        self.commit()
        for r in gone:
            _remove(os.path.join(self.dir, r["shard"]))

    # -- committing --
    def commit(self):
        """Write the whole index under a unique temporary name, fsync, rename it over the store: atomic."""
        t0 = time.perf_counter()
        d, base = os.path.split(os.path.abspath(self.path))
        tmp = os.path.join(d, f".{base}.tmp-{uuid.uuid4().hex}")
        try:
            write_h5_file(tmp, self._write_index)
            _fsync_path(self.dir)  # the shards' renames are durable before the index that lists them
            os.replace(tmp, self.path)
            _fsync_path(d)
        except BaseException as e:
            _remove(tmp)
            if is_disk_full(e):
                raise self.disk_full(0) from None
            raise
        self._publish_cost = time.perf_counter() - t0
        self._last_publish, self._dirty = time.perf_counter(), False

    def _write_index(self, f):
        """Fill the new index file `f` (h5py.File) from the writer's state."""
        f.attrs["ttrnn_store"] = SCHEMA_VERSION
        f.attrs["params_json"] = json.dumps(self.params, default=_json_default)
        f.attrs["created"] = self.created
        f.attrs["uid"] = self.uid
        dt = _file_index_dtype(len(self.classes))
        rows = np.zeros(len(self.rows), dt)
        for j, r in enumerate(self.rows):
            for k in ("clip_id", "class_name", "label", "group", "length", "source", "fps", "shard"):
                rows[j][k] = r[k]
            rows[j]["labels"] = _labels_vector(r, len(self.classes))
        f.create_dataset("index", data=rows)
        f.create_dataset("failed", data=np.array(self.failed_list, dtype=object).reshape(-1, 2),
                         dtype=h5py.string_dtype("utf-8"))
        f.attrs["index_crc"] = _index_digest(f.attrs["params_json"], rows, self.failed_list, self.splits)
        g = f.create_group("splits")
        for name, parts in self.splits.items():
            sg = g.create_group(name)
            for part, ids in parts.items():
                sg.create_dataset(part, data=np.array(ids, dtype=object), dtype=h5py.string_dtype("utf-8"))

    def disk_full(self, more=0):
        """The DiskFullError for this store (see `disk_full_error`)."""
        return disk_full_error(self.path, more)

    def close(self):
        """Commit what is not yet committed and release the lock (also after an error: nothing is lost)."""
        if getattr(self, "lock", None) is not None and self.lock.fd is not None:
            try:
                if self._dirty:
                    self.commit()
            finally:
                self.lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def disk_full_error(path, more=0):
    """DiskFullError naming the file system of store `path`, its free bytes and the `more` bytes needed."""
    st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    free = st.f_bavail * st.f_frsize
    need = f"about {int(more):,} more bytes needed" if more else "more space needed"
    return DiskFullError(f"disk full: {_mount_point(path)} (holding {path}) has {free:,} bytes free, {need}; "
                         f"committed clips are kept: free space and run the same command to resume")


def params_of(path):
    """The parameter dict a store was made with (its `store_params`)."""
    try:
        with h5py.File(os.fspath(path), "r") as f:
            return json.loads(f.attrs["params_json"])
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise StoreError(f"cannot read the parameters of {path} ({_open_problem(e)})") from None


def recoded_params(params, codec, quality=None):
    """`params` of a store (any schema) with another codec: those of its transcoded copy."""
    p = {k: v for k, v in params.items() if k not in ("compression", "codec", "quality", "schema_version")}
    return store_params(compression=codec, quality=quality, **p)


def clip_meta(clip_id, class_name, label, group, source, fps, labels=None):
    """The index fields of one clip (without length and shard)."""
    return dict(clip_id=str(clip_id), class_name=str(class_name), label=int(label), group=str(group),
                source=str(source), fps=float(fps), labels=None if labels is None else [int(x) for x in labels])


def _labels_vector(row, num_classes):
    out = np.zeros(max(1, num_classes), np.uint8)
    if row.get("labels") is not None:
        out[:len(row["labels"])] = row["labels"]
    elif 0 <= int(row["label"]) < len(out):
        out[int(row["label"])] = 1
    return out


def _row_dict(r):
    d = {k: _str(r[k]) for k in ("clip_id", "class_name", "group", "source", "shard")}
    d.update(label=int(r["label"]), length=int(r["length"]), fps=float(r["fps"]), labels=[int(x) for x in r["labels"]])
    return d


def _index_digest(params_json, rows, failed, splits):
    """CRC-32 of everything an index file says (parameters, rows, failures, splits) in a canonical text form: the
    writer stores it, the reader recomputes it from what it read, so a flipped byte cannot change a label."""
    text = json.dumps([_str(params_json),
                       [[_str(v) if isinstance(v, (bytes, str)) else np.asarray(v).tolist() for v in r] for r in rows],
                       [[_str(a), _str(b)] for a, b in failed],
                       {n: {p: [_str(c) for c in ids] for p, ids in parts.items()} for n, parts in splits.items()}],
                      sort_keys=True)
    return zlib.crc32(text.encode("utf-8"))


def _shard_meta(path, uid, strict=False, verify=True):
    """The index fields a shard carries, if it is an intact shard of store `uid` (checksums verified unless not
    `verify`); else None (or CorruptClipError with `strict`)."""
    try:
        with h5py.File(path, "r") as f:
            if _str(f.attrs.get("store_uid", "")) != uid:
                raise ValueError("belongs to another store")
            meta = json.loads(f.attrs["meta_json"])
            if not verify:
                return meta
            if "bytes" in f:
                data, off = f["bytes"][:], f["offsets"][:]
                frames = [data[off[j]:off[j + 1]] for j in range(len(off) - 1)]
            else:
                frames = f["frames"][:]
            verify_crc(meta["clip_id"], frames, f["crc"][:], path)
            if len(frames) != meta["length"]:
                raise ValueError("length differs from its metadata")
            return meta
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as e:
        if strict:
            raise CorruptClipError(f"shard {path} is not an intact clip: {e}") from None
        return None


def _mount_point(path):
    p = os.path.dirname(os.path.abspath(path))
    while not os.path.ismount(p):
        p = os.path.dirname(p)
    return p


def _open_problem(e):
    """What an h5py open error means, in words (a truncated file is not a lock problem)."""
    text = str(e)
    if "truncated file" in text:
        return "truncated file"
    if "unable to lock file" in text:
        return "locked by another process"
    if "file signature not found" in text:
        return "not an HDF5 file"
    return f"unreadable: {text}"


# --- reading ----------------------------------------------------------------------------------------------------
def _selection(idx):
    """An HDF5 selection of sorted unique frame indices: a (strided) slice when evenly spaced (one hyperslab,
    a single contiguous read for a run of frames), else the list."""
    step = int(idx[1] - idx[0]) if len(idx) > 1 else 1
    if step > 0 and np.all(np.diff(idx) == step):
        return np.s_[int(idx[0]):int(idx[-1]) + 1:step]
    return np.s_[idx.tolist()]


def _dataset_span(d, first, last):
    """(offset, nbytes) in its file of rows `first`..`last` of h5py dataset `d` (whole chunks when chunked);
    None when the data is not allocated."""
    if d.chunks is None:
        base = d.id.get_offset()
        row = int(np.prod(d.shape[1:], dtype=np.int64)) * d.dtype.itemsize
        return None if base is None else (int(base + first * row), int((last + 1 - first) * row))
    c = d.chunks[0]
    ends = [d.id.get_chunk_info_by_coord((k // c * c,) + (0,) * (d.ndim - 1)) for k in (first, last)]
    start = min(e.byte_offset for e in ends)
    return int(start), int(max(e.byte_offset + e.size for e in ends) - start)


def clip_slice(length, max_len=None, frame_skip=1):
    """The slice of a clip's `length` frames that `FrameStore.read` returns: frames 0, k, 2k, ..., at most max_len."""
    k = int(frame_skip)
    return slice(0, length if max_len is None else min(length, int(max_len) * k), k)


class FrameStore:
    """Reader of a frame store. Metadata is loaded at construction; files for frames are opened lazily on first
    read and re-opened in a forked child, so each worker process has its own handles.

    `index` is a numpy structured array sorted by clip id (fields: clip_id, class_name, label, group, length,
    source, fps); row i of `index` is clip i of `read(i)`. `codec` / `quality` say how frames are stored; every
    read returns uint8 (T, H, W, 3) RGB whatever the codec and checks each frame's checksum (schema 2).

    `direct`: read frame spans with O_DIRECT, past the page cache (`ttrnn.store.direct_io`): None (the default) does so
    when the store is larger than memory (`larger_than_memory`) and its file system allows it, True whenever it
    allows it, False never. Raw frames of a frame-skipping slice or picked raw frames go through HDF5.
    """

    def __init__(self, path, direct=None):
        self.path = os.fspath(path)
        self._direct_wanted, self._direct = direct, None   # `direct` as asked (None: auto), and as decided
        if not os.path.exists(self.path):
            raise StoreError(f"store not found: {self.path}")
        try:
            f = h5py.File(self.path, "r")
        except OSError as e:
            raise StoreError(f"cannot read store {self.path}: {_open_problem(e)}") from None
        try:
            if "ttrnn_store" not in f.attrs or "index" not in f:
                raise StoreError(f"not a ttrnn frame store: {self.path}")
            self.schema = int(f.attrs["ttrnn_store"])
            params = json.loads(f.attrs["params_json"])
            raw = f["index"][:]
            self.failed = [(_str(a), _str(b)) for a, b in f["failed"][:]]
            if "index_crc" in f.attrs:
                split_ids = {n: {p: sg[p][:] for p in sg} for n, sg in f["splits"].items()}
                if _index_digest(f.attrs["params_json"], raw, self.failed, split_ids) != int(f.attrs["index_crc"]):
                    raise StoreError(f"the index of store {self.path} is damaged (it fails its checksum): rebuild "
                                     f"it with the same preprocess command and --overwrite")
            self._load_index(raw)
            ids = {c: i for i, c in enumerate(self.index["clip_id"])}
            self.splits = {}
            for name, sg in f["splits"].items():
                self.splits[name] = {part: np.array([ids[_str(c)] for c in sg[part][:] if _str(c) in ids], np.int64)
                                     for part in sg}
            old = params.get("compression")  # schema 1 named the codec "compression", raw "none"
            self.codec = params.get("codec") or ("raw" if old == "none" else old)
            self.quality = params.get("quality")
            self.attrs = {k: v for k, v in params.items() if k != "classes"}
            self.attrs.update(codec=self.codec, quality=self.quality,
                              compression="none" if self.codec == "raw" else self.codec,
                              created=_str(f.attrs.get("created", "")))
            self.classes = list(params["classes"])
            self.multilabel = bool(params["multilabel"])
        except StoreError:
            raise
        except (KeyError, ValueError, TypeError, OSError, RuntimeError) as e:  # what h5py raises for damage
            raise StoreError(f"damaged or not a ttrnn frame store: {self.path} ({e})") from None
        finally:
            f.close()
        self._files = OrderedDict()
        self._pid = None

    def _load_index(self, raw):
        order = np.argsort(np.array([_str(x) for x in raw["clip_id"]], dtype=object), kind="stable")
        raw = raw[order]
        self._labels = np.asarray(raw["labels"], np.uint8).reshape((len(raw),) + raw.dtype["labels"].shape)
        self._shards = [_str(x) for x in raw["shard"]] if "shard" in raw.dtype.names else None
        cols = {k: np.array([_str(x) for x in raw[k]]) for k in ("clip_id", "class_name", "group", "source")}
        dt = [(k, cols[k].dtype if len(raw) else "<U1") for k in ("clip_id", "class_name")]
        dt += [("label", "<i4"), ("group", cols["group"].dtype if len(raw) else "<U1"), ("length", "<i8"),
               ("source", cols["source"].dtype if len(raw) else "<U1"), ("fps", "<f8")]
        idx = np.zeros(len(raw), dtype=dt)
        for k in ("clip_id", "class_name", "group", "source"):
            idx[k] = cols[k]
        for k in ("label", "length", "fps"):
            idx[k] = raw[k]
        self.index = idx

    def __len__(self):
        return len(self.index)

    def label_matrix(self):
        """(N, C) uint8 multi-hot labels (one-hot for single-label stores), rows as in `index`."""
        return self._labels[:, :len(self.classes)].copy()

    def shard_path(self, i):
        """The file holding clip row `i`'s frames (the store file itself for schema 1)."""
        return self.path if self._shards is None else os.path.join(shard_dir(self.path), self._shards[i])

    def nbytes(self):
        """Bytes on disk: the index file plus every listed shard."""
        return os.path.getsize(self.path) + sum(os.path.getsize(self.shard_path(i)) for i in range(len(self))
                                                if self._shards is not None)

    def larger_than_memory(self, fraction=0.5):
        """True when the store's files (`nbytes`) are larger than `fraction` of the memory the kernel reports
        available (/proc/meminfo MemAvailable): clips read once per epoch are then not worth the page cache."""
        try:
            with open("/proc/meminfo") as f:
                info = dict(line.split(":", 1) for line in f)
            return self.nbytes() > fraction * int(info["MemAvailable"].split()[0]) * 1024
        except (OSError, KeyError, ValueError):
            return False

    @property
    def direct(self):
        """The `direct` setting (None: when larger than memory); setting it takes effect from the next read."""
        return self._direct_wanted

    @direct.setter
    def direct(self, value):
        self._direct_wanted, self._direct = value, None

    @property
    def reads_direct(self):
        """Whether frame spans are read with O_DIRECT (see `direct`; decided once, on first use)."""
        if self._direct is None:
            wanted = self._direct_wanted
            if wanted is None:
                wanted = self._shards is not None and len(self) > 0 and self.larger_than_memory()
            self._direct = bool(wanted) and self._shards is not None and len(self) > 0 \
                and direct_io.supported(self.shard_path(0))
        return self._direct

    def advise(self, i, advice=getattr(os, "POSIX_FADV_WILLNEED", 3)):
        """posix_fadvise the whole shard of clip row `i` (WILLNEED by default: start reading it into the page
        cache now, e.g. a batch ahead; POSIX_FADV_DONTNEED drops it). No-op for schema 1 and where unsupported."""
        if self._shards is None or not hasattr(os, "posix_fadvise"):
            return
        fd = os.open(self.shard_path(int(i)), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, advice)
        finally:
            os.close(fd)

    def _clip(self, i):
        """(h5py group or file holding the clip's datasets, clip id) of row `i`; files cached per process."""
        if self._pid != os.getpid():
            self._files, self._pid = OrderedDict(), os.getpid()  # a forked child must not use the parent's handles
        if not 0 <= i < len(self.index):
            raise IndexError(f"clip row {i} out of range 0..{len(self.index) - 1}")
        cid = str(self.index["clip_id"][i])
        key = self.shard_path(i)
        f = self._files.pop(key, None)
        if f is None:
            if not os.path.exists(key):
                raise CorruptClipError(f"clip {cid} in {self.path} cannot be read: its shard {key} is missing (a "
                                       f"store is the file and its {SHARD_SUFFIX} folder: copy both)")
            try:
                f = h5py.File(key, "r")
            except OSError as e:
                raise CorruptClipError(f"clip {cid} in {self.path} cannot be read: {_open_problem(e)} ({key})") \
                    from None
            if len(self._files) >= OPEN_SHARDS:
                self._files.popitem(last=False)[1].close()
        self._files[key] = f
        return (f["clips"][cid] if self._shards is None else f), cid

    def _read(self, i, idx, out):
        """Frames `idx` (sorted, unique int array) of row `i` into `out` (len(idx), H, W, 3), checked."""
        g, cid = self._clip(i)
        try:
            if self._shards is not None and "bytes" in g:
                self._read_jpeg(g, cid, idx, out, self.shard_path(i))
            elif len(idx):
                d = g if self._shards is None else g["frames"]  # schema 1: the dataset itself, no checksums
                span = self._direct_span(d, idx, out)
                if span is not None:
                    direct_io.read_span(self.shard_path(i), span[0], out)
                else:
                    d.read_direct(out, _selection(idx))
                if self._shards is not None:
                    verify_crc(cid, out, g["crc"][:][idx], self.path, idx)
        except CorruptClipError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as e:
            raise CorruptClipError(f"clip {cid} in {self.path} is damaged: {e}") from None

    def _read_jpeg(self, g, cid, idx, out, path):
        if not len(idx):
            return
        off = g["offsets"][:]
        lo, hi = int(off[idx[0]]), int(off[idx[-1] + 1])
        span = self._direct_span(g["bytes"], np.arange(lo, hi), None)
        if span is not None:
            data = memoryview(direct_io.read_span(path, span[0], np.empty(hi - lo, np.uint8)))
        else:
            data = memoryview(g["bytes"][lo:hi])  # one contiguous read of the frames' span (picks: the span between)
        starts = (off - lo).tolist()
        pieces = [data[starts[t]:starts[t + 1]] for t in idx.tolist()]
        verify_crc(cid, pieces, g["crc"][:][idx], self.path, idx)
        # The decoder's own loop (~100 us a frame: the reader's CPU at full scale): memoryviews, the frame size
        # checked on the first frame only, as the writer coded every frame of a clip from one array.
        for j, (t, piece) in enumerate(zip(idx.tolist(), pieces)):
            try:
                decode_jpeg_into(piece, out[j], check=j == 0)
            except ValueError as e:
                raise CorruptClipError(f"clip {cid} in {self.path} is damaged: frame {t}: {e}") from None

    def _direct_span(self, d, idx, out):
        """(offset, nbytes) of rows `idx` of dataset `d` when they are read with O_DIRECT: a store that reads
        direct, a contiguous dataset, a run of consecutive rows, into a C-contiguous `out` (or None: a new
        array); else None (read through HDF5)."""
        if not (len(idx) and self._shards is not None and self.reads_direct and d.chunks is None
                and (out is None or out.flags.c_contiguous) and int(idx[-1]) - int(idx[0]) == len(idx) - 1):
            return None
        return _dataset_span(d, int(idx[0]), int(idx[-1]))

    def _frame_shape(self):
        return int(self.attrs["height"]), int(self.attrs["width"]), 3

    def read(self, i, max_len=None, frame_skip=1):
        """Frames 0, k, 2k, ... (k = frame_skip) of clip row `i`, at most `max_len` of them: uint8 (T, H, W, 3)."""
        i = int(i)
        if int(frame_skip) < 1:
            raise ValueError("frame_skip must be >= 1")
        if not 0 <= i < len(self.index):
            raise IndexError(f"clip row {i} out of range 0..{len(self.index) - 1}")
        length = int(self.index["length"][i])
        idx = np.arange(length)[clip_slice(length, max_len, frame_skip)]
        out = np.empty((len(idx),) + self._frame_shape(), np.uint8)
        self._read(i, idx, out)
        return out

    def read_into(self, i, out, max_len=None, frame_skip=1):
        """`read(i, max_len, frame_skip)` written straight into the end of `out` (uint8 (L, H, W, 3), C-contiguous),
        decoded in place; at most L frames. Returns the number n of frames written (they fill `out[L - n:]`)."""
        i = int(i)
        if not 0 <= i < len(self.index):
            raise IndexError(f"clip row {i} out of range 0..{len(self.index) - 1}")
        length = int(self.index["length"][i])
        limit = len(out) if max_len is None else min(len(out), int(max_len))
        idx = np.arange(length)[clip_slice(length, limit, frame_skip)]
        if len(idx):
            self._read(i, idx, out[len(out) - len(idx):])
        return len(idx)

    def clip_extent(self, i, max_len=None, frame_skip=1):
        """(file, offset, nbytes): where on disk the bytes that `read(i, max_len, frame_skip)` reads lie (from the
        first to the last frame read, whole chunks for chunked codecs), for page-cache hints (`posix_fadvise`)
        by the training reader (ttrnn.data.CacheHints); None when nothing is read or the data is not allocated.
        A separate hook of issue 22 (it reads only HDF5 metadata)."""
        i = int(i)
        if not 0 <= i < len(self.index):
            raise IndexError(f"clip row {i} out of range 0..{len(self.index) - 1}")
        length = int(self.index["length"][i])
        idx = np.arange(length)[clip_slice(length, max_len, frame_skip)]
        if not len(idx):
            return None
        g, _ = self._clip(i)
        if self._shards is not None and "bytes" in g:       # jpeg: the frames' bytes back to back
            lo, hi = (int(v) for v in g["offsets"][[int(idx[0]), int(idx[-1]) + 1]])
            span = _dataset_span(g["bytes"], lo, hi - 1)
        else:
            span = _dataset_span(g if self._shards is None else g["frames"], int(idx[0]), int(idx[-1]))
        return None if span is None else (self.shard_path(i),) + span

    def read_frames(self, i, frame_indices):
        """Frames at `frame_indices` (sorted; repeats allowed) of clip row `i`: uint8 (len(idx), H, W, 3).
        Only the frames asked for are read and decoded."""
        i = int(i)
        idx = np.asarray(frame_indices, np.int64)
        if not 0 <= i < len(self.index):
            raise IndexError(f"clip row {i} out of range 0..{len(self.index) - 1}")
        length = int(self.index["length"][i])
        if idx.size == 0:
            return np.zeros((0,) + self._frame_shape(), np.uint8)
        if idx.min() < 0 or idx.max() >= length:
            raise IndexError(f"frame index out of range 0..{length - 1} for clip row {i}")
        uniq, inverse = np.unique(idx, return_inverse=True)
        out = np.empty((len(uniq),) + self._frame_shape(), np.uint8)
        self._read(i, uniq, out)
        return out[inverse]

    def close(self):
        if self._pid == os.getpid():
            for f in self._files.values():
                f.close()
        self._files, self._pid = OrderedDict(), None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):  # picklable for spawn-based workers: drop the handles
        s = dict(self.__dict__)
        s["_files"], s["_pid"] = OrderedDict(), None
        return s
