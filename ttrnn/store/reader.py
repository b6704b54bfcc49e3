"""Reading a frame store: `FrameStore`, its per-process cache of open shard files, O_DIRECT spans and
page-cache hints. Layout: `ttrnn.store.schema`.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict

import h5py
import numpy as np

from ttrnn.store import direct_io
from ttrnn.store.codecs import decode_jpeg_into, verify_crc
from ttrnn.store.schema import (
    SHARD_SUFFIX,
    CorruptClipError,
    StoreError,
    as_text,
    clip_form,
    index_intact,
    open_problem,
    rebuild_hint,
    shard_dir,
    shard_files,
)

OPEN_SHARDS = 8
"""Shard files a reader keeps open per process (each holds HDF5 caches, so more would cost memory)."""


def clip_slice(length, max_len=None, frame_skip=1):
    """The slice of a clip's `length` frames that `FrameStore.read` returns: frames 0, k, 2k, ..., at most max_len."""
    k = int(frame_skip)
    return slice(0, length if max_len is None else min(length, int(max_len) * k), k)


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


def _shard_uid(path):
    """The store uid a shard file carries; None when it cannot be read."""
    try:
        with h5py.File(path, "r") as f:
            return as_text(f.attrs.get("store_uid", ""))
    except (OSError, KeyError, ValueError, RuntimeError):
        return None


def check_shards(path, partial=True):
    """`FrameStore(path).check_shards(partial)`: StoreError (one line) unless the store at `path` opens and its
    shard folder is there and its own. What the training CLIs, the bench and `preprocess.check` run first."""
    with FrameStore(path) as store:
        store.check_shards(partial)


class FrameStore:
    """Reader of a frame store. Metadata is loaded at construction; files for frames are opened lazily on first
    read and re-opened in a forked child, so each worker process has its own handles.

    `index` is a numpy structured array sorted by clip id (fields: clip_id, class_name, label, group, length,
    source, fps); row i of `index` is clip i of `read(i)`. `codec` / `quality` say how frames are stored; every
    read returns uint8 (T, H, W, 3) RGB whatever the codec and checks each frame's checksum (schema 2).

    A feature store (`python -m experiments.features`) is read the same way: its clips are per-frame feature
    vectors, and every read returns (T, F) in its dtype (float16 unless made with --dtype float32). `features` is
    None for a frame store, else the dict of how the features were computed: backbone, weights, pooling, width (F),
    image_size, source (the frame store's path), source_uid, frame_skip and fps (the thinning of the source's
    frames). `frame_shape` is (H, W, 3) or (F,), `dtype` uint8 or the feature dtype. `uid` is
    the store's random id, which its shards carry too. Opening reads the index file only; `check_shards` checks
    that the shard folder beside it is there and this store's.

    Args:
        path: the store's index file.
        direct: read frame spans with O_DIRECT, past the page cache (`ttrnn.store.direct_io`): None (the default)
            does so when the store is larger than memory (`larger_than_memory`) and its file system allows it,
            True whenever it allows it, False never. Raw frames of a frame-skipping slice or picked raw frames go
            through HDF5.

    Example::

        with FrameStore("ucf11.h5") as store:
            frames = store.read(0, max_len=100)          # uint8 (<=100, H, W, 3)
            label = store.index["label"][0]
    """

    def __init__(self, path, direct=None):
        self.path = os.fspath(path)
        self._direct_wanted, self._direct = direct, None   # `direct` as asked (None: auto), and as decided
        if not os.path.exists(self.path):
            raise StoreError(f"store not found: {self.path}{rebuild_hint(self.path)}")
        try:
            f = h5py.File(self.path, "r")
        except OSError as e:
            raise StoreError(f"cannot read store {self.path}: {open_problem(e)}{rebuild_hint(self.path)}") from None
        try:
            if "ttrnn_store" not in f.attrs or "index" not in f:
                hint = rebuild_hint(self.path)
                raise StoreError(f"the index of store {self.path} is damaged (no store attributes or rows){hint}"
                                 if hint else f"not a ttrnn frame store: {self.path}")
            self.schema = int(f.attrs["ttrnn_store"])
            params = json.loads(f.attrs["params_json"])
            raw = f["index"][:]
            self.failed = [(as_text(a), as_text(b)) for a, b in f["failed"][:]]
            if not index_intact(f, raw, self.failed):
                raise StoreError(f"the index of store {self.path} is damaged (it fails its checksum)"
                                 + (rebuild_hint(self.path) or ": make the store again with the same preprocess "
                                                               "command and --overwrite"))
            self.uid = as_text(f.attrs.get("uid", ""))
            self._load_index(raw)
            ids = {c: i for i, c in enumerate(self.index["clip_id"])}
            self.splits = {}
            for name, sg in f["splits"].items():
                self.splits[name] = {part: np.array([ids[as_text(c)] for c in sg[part][:] if as_text(c) in ids],
                                                    np.int64)
                                     for part in sg}
            old = params.get("compression")  # schema 1 named the codec "compression", raw "none"
            self.codec = params.get("codec") or ("raw" if old == "none" else old)
            self.quality = params.get("quality")
            self.attrs = {k: v for k, v in params.items() if k != "classes"}
            self.attrs.update(codec=self.codec, quality=self.quality,
                              compression="none" if self.codec == "raw" else self.codec,
                              created=as_text(f.attrs.get("created", "")))
            self.classes = list(params["classes"])
            self.multilabel = bool(params["multilabel"])
            self.features = params.get("features")
            self.frame_shape, self.dtype = clip_form(params)
        except StoreError:
            raise
        except (KeyError, ValueError, TypeError, OSError, RuntimeError) as e:  # what h5py raises for damage
            hint = rebuild_hint(self.path)
            raise StoreError(f"the index of store {self.path} is damaged ({e}){hint}" if hint
                             else f"damaged or not a ttrnn frame store: {self.path} ({e})") from None
        finally:
            f.close()
        self._files = OrderedDict()
        self._pid = None

    def _load_index(self, raw):
        order = np.argsort(np.array([as_text(x) for x in raw["clip_id"]], dtype=object), kind="stable")
        raw = raw[order]
        self._labels = np.asarray(raw["labels"], np.uint8).reshape((len(raw),) + raw.dtype["labels"].shape)
        self._shards = [as_text(x) for x in raw["shard"]] if "shard" in raw.dtype.names else None
        cols = {k: np.array([as_text(x) for x in raw[k]]) for k in ("clip_id", "class_name", "group", "source")}
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

    def check_shards(self, partial=True):
        """Check cheaply that the shard folder beside the index is this store's; else StoreError, one line naming
        the folder and what to copy: the folder is missing, holds none of the clips the index lists (empty, or
        another store's shards), or its listed shards carry another store's uid; with `partial`, also when some of
        the listed shards are missing (an incomplete copy). A directory listing and the attrs of two shards: no
        frame is read (damaged frames are found by `python -m preprocess.check` or by the read that meets them).
        No-op for schema-1 stores (no folder) and stores without clips.

        Why: a store is two things, OUT and OUT.clips/, and a copy that took only the file ("an HDF5 file") opens
        fine, then fails on every clip it reads, long after a training run has started TensorFlow."""
        if self._shards is None or not len(self):
            return
        folder, name = shard_dir(self.path), os.path.basename(self.path)
        both, n = f"both {name} and {name}{SHARD_SUFFIX}/", len(self._shards)
        if not os.path.isdir(folder):
            raise StoreError(f"{self.path}: its shard folder {folder}/ is missing: copy it with the index ({both})")
        there = set(os.listdir(folder))
        present = [s for s in self._shards if s in there]
        lists = f"the {n} clip{'s' if n != 1 else ''} its index lists"
        if not present:
            others = shard_files(self.path)
            if not others:
                raise StoreError(f"{self.path}: its shard folder {folder}/ holds none of {lists} (it has no shard "
                                 f"files): copy it with the index ({both})")
            if _shard_uid(os.path.join(folder, others[0])) == self.uid:
                raise StoreError(f"{self.path}: its shard folder {folder}/ holds none of {lists}, only "
                                 f"{len(others)} other shard files: copy the folder made with this index ({both})")
            raise StoreError(f"{self.path}: its shard folder {folder}/ holds another store's shards (none of "
                             f"{lists}): copy the folder made with this index ({both})")
        for shard in dict.fromkeys((present[0], present[-1])):
            uid = _shard_uid(os.path.join(folder, shard))
            if uid is not None and uid != self.uid:   # unreadable: a damaged clip, for the read that meets it
                raise StoreError(f"{self.path}: its shard folder {folder}/ holds another store's shards ({shard} "
                                 f"belongs to store {uid[:8]}, the index to store {self.uid[:8]}): copy the folder "
                                 f"made with this index ({both})")
        if partial and len(present) < n:
            missing = next(s for s in self._shards if s not in there)
            raise StoreError(f"{self.path}: {n - len(present)} of {lists} have no shard in {folder}/ (e.g. "
                             f"{missing}; an incomplete copy?): copy {both} again, or drop those clips with "
                             f"python -m preprocess.check {self.path} --repair")

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

    def _row(self, i):
        """`i` as an int row number, IndexError when out of range."""
        i = int(i)
        if not 0 <= i < len(self.index):
            raise IndexError(f"clip row {i} out of range 0..{len(self.index) - 1}")
        return i

    def _clip(self, i):
        """(h5py group or file holding the clip's datasets, clip id) of row `i`; files cached per process."""
        if self._pid != os.getpid():
            self._files, self._pid = OrderedDict(), os.getpid()  # a forked child must not use the parent's handles
        i = self._row(i)
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
                raise CorruptClipError(f"clip {cid} in {self.path} cannot be read: {open_problem(e)} ({key})") \
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
        # Decoding is the reader's main CPU cost at full scale (docs/performance.md), so the loop stays lean:
        # memoryviews, the frame size checked on the first frame only, as the writer coded every frame of a clip
        # from one array.
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

    def read(self, i, max_len=None, frame_skip=1):
        """Frames 0, k, 2k, ... (k = frame_skip) of clip row `i`, at most `max_len` of them: uint8 (T, H, W, 3) (a
        feature store: (T, F) float16 or float32)."""
        i = int(i)
        if int(frame_skip) < 1:
            raise ValueError("frame_skip must be >= 1")
        i = self._row(i)
        length = int(self.index["length"][i])
        idx = np.arange(length)[clip_slice(length, max_len, frame_skip)]
        out = np.empty((len(idx),) + self.frame_shape, self.dtype)
        self._read(i, idx, out)
        return out

    def read_into(self, i, out, max_len=None, frame_skip=1):
        """`read(i, max_len, frame_skip)` written straight into the end of `out` (uint8 (L, H, W, 3), C-contiguous),
        decoded in place; at most L frames. Returns the number n of frames written (they fill `out[L - n:]`)."""
        i = self._row(i)
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
        Reads only HDF5 metadata."""
        i = self._row(i)
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
        idx = np.asarray(frame_indices, np.int64)
        i = self._row(i)
        length = int(self.index["length"][i])
        if idx.size == 0:
            return np.zeros((0,) + self.frame_shape, self.dtype)
        if idx.min() < 0 or idx.max() >= length:
            raise IndexError(f"frame index out of range 0..{length - 1} for clip row {i}")
        uniq, inverse = np.unique(idx, return_inverse=True)
        out = np.empty((len(uniq),) + self.frame_shape, self.dtype)
        self._read(i, uniq, out)
        return out[inverse]

    def close(self):
        """Close this process's open shard files (the store stays usable: they reopen on the next read)."""
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
