"""One HDF5 frame store for video clips: the schema, its writer (used by `preprocess/`) and its reader.

Layout of a store file (schema version 1)::

    /                 attrs: ttrnn_store=1 (schema version), created, params_json: dataset, width, height,
                             frame_skip, fps (target or null), compression, classes, multilabel, schema_version
    /clips/<clip_id>  uint8 (T, H, W, 3) RGB, chunked a few frames per chunk, lzf / gzip / no compression
    /index            compound rows, one per *finished* clip (the commit marker), in write order
    /failed           vlen str (N, 2): source, reason of clips that could not be decoded
    /splits/<name>/{train,test}   vlen str clip ids (store-provided splits, e.g. Hollywood2's standard split)

A clip counts as stored only once its row is in `/index`. The writer writes the clip dataset (or copies it,
already compressed, from a worker's part file), appends the index row and flushes, so a SIGKILL leaves the file as of the last flush (no half clip, no clip twice); a
clip dataset without an index row (left over from a kill) is deleted when the store is next opened for
writing. Files are created with HDF5's file-space strategy "none", so freed space is never reused and new
data never overwrites anything the last flushed state refers to.

This module must not import TensorFlow or Keras (preprocessing workers stay light).
"""

from __future__ import annotations

import json
import os
import time

import h5py
import numpy as np

SCHEMA_VERSION = 1
COMPRESSIONS = ("lzf", "gzip", "none")
FRAMES_PER_CHUNK = 4

# Fields of `FrameStore.index` (strings are decoded to numpy unicode in the reader).
INDEX_FIELDS = ("clip_id", "class_name", "label", "group", "length", "source", "fps")


class StoreError(ValueError):
    """A store file is missing, is not a ttrnn store, or does not match the requested parameters."""


def _file_index_dtype(num_classes):
    """HDF5 compound dtype of one `/index` row; `labels` is the multi-hot label vector (C,)."""
    s = h5py.string_dtype("utf-8")
    return np.dtype([
        ("clip_id", s), ("class_name", s), ("label", "<i4"), ("group", s), ("length", "<i8"),
        ("source", s), ("fps", "<f8"), ("labels", "u1", (max(1, num_classes),)),
    ])


def _str(x):
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def store_params(dataset, width, height, frame_skip=1, fps=None, compression="none", classes=(),
                 multilabel=False, synthetic=False, **extra):
    """The parameter dict that identifies a store: a re-run with different parameters is refused. `synthetic`: the
    clips are generated (preprocess.synthetic), so results on it are no dataset's (the key is written only then,
    so stores made before it existed keep their parameters)."""
    if compression not in COMPRESSIONS:
        raise StoreError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    p = dict(dataset=str(dataset), width=int(width), height=int(height), frame_skip=int(frame_skip),
             fps=None if fps is None else float(fps), compression=str(compression),
             classes=[str(c) for c in classes], multilabel=bool(multilabel), schema_version=SCHEMA_VERSION)
    p.update({"synthetic": True} if synthetic else {}, **extra)
    return p


def write_clip(group, name, frames, compression):
    """Create dataset `name` in `group` holding uint8 (T, H, W, 3) frames with the store's chunking/compression."""
    kw = {} if compression == "none" else {"compression": compression}
    if compression == "gzip":
        kw["compression_opts"] = 4
    t, h, w = frames.shape[:3]
    return group.create_dataset(name, data=frames, chunks=(min(FRAMES_PER_CHUNK, t), h, w, 3), **kw)


def write_clip_file(path, frames, compression):
    """Write one clip to its own small HDF5 file (dataset "frames"): decode workers compress in parallel this
    way, and the single writer then copies the compressed chunks into the store (`StoreWriter.add_clip_file`)."""
    with h5py.File(path, "w") as f:
        write_clip(f, "frames", np.asarray(frames, np.uint8), compression)


class StoreWriter:
    """Single-process writer: `add_clip` stores one whole clip and commits it (index row + flush).

    Open it in the one process that writes (the parent), after any worker processes are forked.
    """

    def __init__(self, path, params, overwrite=False):
        self.path = os.fspath(path)
        self.params = dict(params)
        self.classes = list(self.params["classes"])
        self.multilabel = bool(self.params["multilabel"])
        exists = os.path.exists(self.path)
        if exists and not overwrite:
            self._open_existing()
        else:
            d = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(d):
                raise StoreError(f"output directory does not exist: {d}")
            tmp = self.path + ".new"
            try:
                f = h5py.File(tmp, "w", fs_strategy="none")
            except OSError as e:
                raise StoreError(f"cannot write {self.path}: {e}") from None
            f.attrs["ttrnn_store"] = SCHEMA_VERSION
            f.attrs["params_json"] = json.dumps(self.params, default=_json_default)
            f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            f.create_group("clips")
            f.create_group("splits")
            f.create_dataset("index", shape=(0,), maxshape=(None,), chunks=(256,),
                             dtype=_file_index_dtype(len(self.classes)))
            f.create_dataset("failed", shape=(0, 2), maxshape=(None, 2), chunks=(64, 2),
                             dtype=h5py.string_dtype("utf-8"))
            f.close()
            os.replace(tmp, self.path)  # an existing store is replaced only by a complete empty one
            self.f = h5py.File(self.path, "a")
        self._done = set(_str(x) for x in self.f["index"].fields("clip_id")[:])

    def _open_existing(self):
        try:
            f = h5py.File(self.path, "a")
        except OSError as e:
            raise StoreError(f"cannot open {self.path} for writing (not an HDF5 file, or unwritable): {e}") from None
        if "ttrnn_store" not in f.attrs:
            f.close()
            raise StoreError(f"{self.path} exists and is not a ttrnn store (use --overwrite to replace it)")
        old = json.loads(f.attrs["params_json"])
        if old != json.loads(json.dumps(self.params, default=_json_default)):
            diff = sorted(k for k in set(old) | set(self.params) if old.get(k) != self.params.get(k))
            shown = ", ".join(f"{k}: store {old.get(k)!r} vs now {self.params.get(k)!r}" for k in diff if k != "classes")
            if "classes" in diff:
                shown = (shown + ", " if shown else "") + "class list differs"
            f.close()
            raise StoreError(f"{self.path} was made with different parameters ({shown}); "
                             f"use --overwrite to rebuild it")
        self.f = f
        # Discard leftovers of an interrupted run: clip datasets without a committed index row.
        done = set(_str(x) for x in f["index"].fields("clip_id")[:])
        for name in list(f["clips"].keys()):
            if name not in done:
                del f["clips"][name]
        f.flush()

    @property
    def done_ids(self):
        """Clip ids already committed to the store."""
        return set(self._done)

    def failed(self):
        """List of (source, reason) currently recorded."""
        return [(_str(a), _str(b)) for a, b in self.f["failed"][:]]

    def add_clip(self, clip_id, frames, class_name, label, group, source, fps, labels=None, _delay=0.0):
        """Write one clip `frames` uint8 (T, H, W, 3) and commit it. `labels`: multi-hot (C,) or None (one-hot)."""
        frames = np.asarray(frames)
        self._check(clip_id, frames.dtype, frames.shape)
        write_clip(self.f["clips"], clip_id, frames, self.params["compression"])
        self._commit(clip_id, len(frames), class_name, label, group, source, fps, labels, _delay)

    def add_clip_file(self, clip_id, part_path, class_name, label, group, source, fps, labels=None, _delay=0.0):
        """Copy a clip that a worker wrote with `write_clip_file` (already compressed: chunks are copied as
        they are, not recompressed) and commit it."""
        with h5py.File(part_path, "r") as part:
            d = part["frames"]
            self._check(clip_id, d.dtype, d.shape)
            if d.compression != (None if self.params["compression"] == "none" else self.params["compression"]):
                raise ValueError(f"clip {clip_id}: part file compression {d.compression} differs from the store")
            self.f.copy(d, self.f["clips"], name=clip_id)
            n = d.shape[0]
        self._commit(clip_id, n, class_name, label, group, source, fps, labels, _delay)

    def _check(self, clip_id, dtype, shape):
        h, w = self.params["height"], self.params["width"]
        if dtype != np.uint8 or len(shape) != 4 or tuple(shape[1:]) != (h, w, 3) or shape[0] == 0:
            raise ValueError(f"clip {clip_id}: expected uint8 (T>0, {h}, {w}, 3), got {dtype} {tuple(shape)}")
        if clip_id in self._done:
            raise ValueError(f"clip {clip_id} is already stored")
        if clip_id in self.f["clips"]:  # an uncommitted leftover (should not happen: discarded at open)
            del self.f["clips"][clip_id]

    def _commit(self, clip_id, length, class_name, label, group, source, fps, labels, delay):
        """Append the index row and flush: the clip counts as stored from here on."""
        if delay:  # test hook: widen the window in which a kill lands mid-clip
            time.sleep(delay)
        index = self.f["index"]
        row = np.zeros((), dtype=index.dtype)
        row["clip_id"], row["class_name"], row["label"] = clip_id, class_name, int(label)
        row["group"], row["length"], row["source"], row["fps"] = group, int(length), source, float(fps)
        if labels is None:
            onehot = np.zeros(max(1, len(self.classes)), np.uint8)
            if 0 <= int(label) < len(onehot):
                onehot[int(label)] = 1
            row["labels"] = onehot
        else:
            row["labels"] = np.asarray(labels, np.uint8)
        n = index.shape[0]
        index.resize((n + 1,))
        index[n] = row
        self.f.flush()  # the commit point
        self._done.add(clip_id)

    def set_failed(self, failed):
        """Replace the recorded list of failed clips with `failed`: [(source, reason), ...]."""
        d = self.f["failed"]
        d.resize((len(failed), 2))
        if failed:
            d[:] = np.array([[s, r] for s, r in failed], dtype=object)
        self.f.flush()

    def set_splits(self, splits):
        """Record store-provided splits: {name: {"train": [clip_id...], "test": [clip_id...]}}."""
        g = self.f["splits"]
        for name, parts in splits.items():
            if name in g:
                del g[name]
            sg = g.create_group(name)
            for part, ids in parts.items():
                sg.create_dataset(part, data=np.array([str(i) for i in ids], dtype=object),
                                  dtype=h5py.string_dtype("utf-8"))
        self.f.flush()

    def close(self):
        if getattr(self, "f", None) is not None:
            self.f.close()
            self.f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def clip_slice(length, max_len=None, frame_skip=1):
    """The slice of a clip's `length` frames that `FrameStore.read` returns: frames 0, k, 2k, ..., at most max_len."""
    k = int(frame_skip)
    return slice(0, length if max_len is None else min(length, int(max_len) * k), k)


class FrameStore:
    """Reader of a frame store. Metadata is loaded at construction; the HDF5 handle for frames is opened lazily
    on first read and re-opened in a forked child, so each worker process has its own handle.

    `index` is a numpy structured array sorted by clip id (fields: clip_id, class_name, label, group, length,
    source, fps); row i of `index` is clip i of `read(i)`.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise StoreError(f"store not found: {self.path}")
        try:
            f = h5py.File(self.path, "r")
        except OSError as e:
            if "lock" in str(e).lower():
                raise StoreError(f"store is open for writing by another process (HDF5 file lock): {self.path}") \
                    from None
            raise StoreError(f"not an HDF5 file: {self.path} ({e})") from None
        try:
            if "ttrnn_store" not in f.attrs or "index" not in f:
                raise StoreError(f"not a ttrnn frame store: {self.path}")
            params = json.loads(f.attrs["params_json"])
            raw = f["index"][:]
            order = np.argsort(np.array([_str(x) for x in raw["clip_id"]], dtype=object), kind="stable")
            raw = raw[order]
            self._labels = np.asarray(raw["labels"], np.uint8).reshape((len(raw),) + raw.dtype["labels"].shape)
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
            self.failed = [(_str(a), _str(b)) for a, b in f["failed"][:]]
            ids = {c: i for i, c in enumerate(idx["clip_id"])}
            self.splits = {}
            for name, sg in f["splits"].items():
                self.splits[name] = {part: np.array([ids[_str(c)] for c in sg[part][:] if _str(c) in ids], np.int64)
                                     for part in sg}
            self.attrs = {k: params.get(k) for k in ("dataset", "width", "height", "frame_skip", "fps",
                                                      "compression", "schema_version")}
            self.attrs.update({k: v for k, v in params.items() if k not in ("classes",)})
            self.attrs["created"] = _str(f.attrs.get("created", ""))
            self.classes = list(params["classes"])
            self.multilabel = bool(params["multilabel"])
        except (KeyError, json.JSONDecodeError) as e:
            raise StoreError(f"damaged or not a ttrnn frame store: {self.path} ({e})") from None
        finally:
            f.close()
        self._f = None
        self._pid = None

    def __len__(self):
        return len(self.index)

    def label_matrix(self):
        """(N, C) uint8 multi-hot labels (one-hot for single-label stores), rows as in `index`."""
        return self._labels[:, :len(self.classes)].copy()

    def _dataset(self, i):
        if self._f is None or self._pid != os.getpid():
            self._f = h5py.File(self.path, "r")
            self._pid = os.getpid()
        if not 0 <= i < len(self.index):
            raise IndexError(f"clip row {i} out of range 0..{len(self.index) - 1}")
        return self._f["clips"][self.index["clip_id"][i]]

    def read(self, i, max_len=None, frame_skip=1):
        """Frames 0, k, 2k, ... (k = frame_skip) of clip row `i`, at most `max_len` of them: uint8 (T, H, W, 3)."""
        i = int(i)
        k = int(frame_skip)
        if k < 1:
            raise ValueError("frame_skip must be >= 1")
        d = self._dataset(i)
        sl = clip_slice(d.shape[0], max_len, k)
        return d[sl] if sl.stop > 0 else np.zeros((0,) + d.shape[1:], np.uint8)

    def read_into(self, i, out, max_len=None, frame_skip=1):
        """`read(i, max_len, frame_skip)` written straight into the end of `out` (uint8 (L, H, W, 3)), without an
        intermediate array; at most L frames. Returns the number n of frames written (they fill `out[L - n:]`)."""
        d = self._dataset(int(i))
        limit = len(out) if max_len is None else min(len(out), int(max_len))
        sl = clip_slice(d.shape[0], limit, frame_skip)
        n = len(range(*sl.indices(d.shape[0])))
        if n:
            d.read_direct(out, np.s_[sl], np.s_[len(out) - n:])
        return n

    def read_frames(self, i, frame_indices):
        """Frames at `frame_indices` (sorted; repeats allowed) of clip row `i`: uint8 (len(idx), H, W, 3)."""
        d = self._dataset(int(i))
        idx = np.asarray(frame_indices, np.int64)
        if idx.size == 0:
            return np.zeros((0,) + d.shape[1:], np.uint8)
        if idx.min() < 0 or idx.max() >= d.shape[0]:
            raise IndexError(f"frame index out of range 0..{d.shape[0] - 1} for clip row {i}")
        uniq, inverse = np.unique(idx, return_inverse=True)
        return d[uniq.tolist()][inverse]

    def close(self):
        if self._f is not None and self._pid == os.getpid():
            self._f.close()
        self._f = None
        self._pid = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):  # picklable for spawn-based workers: drop the handle
        s = dict(self.__dict__)
        s["_f"], s["_pid"] = None, None
        return s
