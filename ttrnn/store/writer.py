"""Writing a frame store: shard files (one per clip, written by any process) and the one writer that indexes them.

A clip becomes a shard with `write_shard` (usually in a decode worker); the `StoreWriter` (one process, holding
the store's lock) adds shards to its in-memory index and commits the whole index atomically. Layout and the
reasons for it: `ttrnn.store.schema`.
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid

import h5py
import numpy as np

from ttrnn.store.codecs import encode_frames, stored_frames, verify_crc, write_datasets
from ttrnn.store.files import FileLock, atomic_write, fsync_path, remove_file
from ttrnn.store.schema import (
    SCHEMA_VERSION,
    STORE_RECORD,
    CorruptClipError,
    StoreError,
    StoreLockedError,
    as_text,
    clip_form,
    clip_meta,
    disk_full_error,
    index_digest,
    index_intact,
    index_row_dtype,
    is_disk_full,
    json_default,
    labels_vector,
    open_problem,
    params_of,
    rebuild_hint,
    record_text,
    row_dict,
    shard_dir,
    shard_files,
)


def write_shard(directory, frames, meta, params, uid):
    """Write one clip as a complete shard file in `directory` and publish it by rename; returns its file name.

    `frames`: uint8 (T > 0, H, W, 3) RGB; for a feature store (T > 0, F) in its dtype (`clip_form`). `meta`: the
    clip's index fields (`clip_meta`). `params`: the store's (`store_params` or `feature_params`: codec, quality,
    frame size, ...; kept in the shard too); `uid`: the store's, so that only this store adopts the shard. Called
    in the decode workers. The folder is not fsynced here: the writer's next commit does it once for all the shards
    it lists. On any error (a full disk included) the temporary file is removed and the error raised."""
    frames = np.asarray(frames)
    shape, dtype = clip_form(params)
    if frames.dtype != dtype or frames.shape[1:] != shape or len(frames) == 0:
        raise ValueError(f"clip {meta['clip_id']}: expected {dtype} (T>0, {', '.join(map(str, shape))}), got "
                         f"{frames.dtype} {frames.shape}")
    arrays = encode_frames(frames, params["codec"], params.get("quality"))

    def fill(f):
        write_datasets(f, arrays, params["codec"])
        f.attrs["store_uid"] = uid
        f.attrs["meta_json"] = json.dumps(dict(meta, length=len(frames)), default=json_default)
        f.attrs["params_json"] = json.dumps(params, default=json_default)  # the store's, for a rebuilt index
    name = f"c-{uuid.uuid4().hex}.h5"
    atomic_write(os.path.join(directory, name), hdf5_image(fill),
                 tmp=os.path.join(directory, f".tmp-{uuid.uuid4().hex}.h5"), sync_dir=False)
    return name


def hdf5_image(fill):
    """The bytes of an HDF5 file whose content `fill(h5py.File)` makes, built in memory. Why: h5py swallows errors
    of the final flush at close, so an HDF5 file written straight to a full disk can end up "complete" with zeros
    where its data should be; the plain writes of `atomic_write` raise ENOSPC instead."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        fill(f)
    return buf.getbuffer()


def shard_meta(path, uid, strict=False, verify=True):
    """The index fields a shard carries, if it is an intact shard of store `uid` (checksums verified unless not
    `verify`); else None (or CorruptClipError with `strict`)."""
    try:
        with h5py.File(path, "r") as f:
            if as_text(f.attrs.get("store_uid", "")) != uid:
                raise ValueError("belongs to another store")
            meta = json.loads(f.attrs["meta_json"])
            if not verify:
                return meta
            frames = stored_frames(f)
            verify_crc(meta["clip_id"], frames, f["crc"][:], path)
            if len(frames) != meta["length"]:
                raise ValueError("length differs from its metadata")
            return meta
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as e:
        if strict:
            raise CorruptClipError(f"shard {path} is not an intact clip: {e}") from None
        return None


def clean_temporaries(path):
    """Remove the leftovers of killed writers of store `path`: temporary shards and records in its shard folder,
    temporary index files beside it. Only under the store's lock (nobody is writing them then)."""
    folder = shard_dir(path)
    for n in os.listdir(folder):
        if n.startswith(".tmp-"):
            remove_file(os.path.join(folder, n))
    d, base = os.path.split(os.path.abspath(path))
    for n in os.listdir(d):
        if n.startswith(f".{base}.tmp-"):
            remove_file(os.path.join(d, n))


def lock_store(path):
    """Take the writer lock of store `path` (a `FileLock` on OUT.clips/.lock, making the folder): one writer at a
    time, whatever the timing. StoreLockedError while another process holds it; StoreError when the store's
    folder is missing or not writable."""
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise StoreError(f"output directory does not exist: {d}")
    try:
        os.makedirs(shard_dir(path), exist_ok=True)
        lock = FileLock(os.path.join(shard_dir(path), ".lock"))
    except OSError as e:
        raise StoreError(f"cannot write {path}: {e.strerror or e}") from None
    if not lock.acquire(blocking=False):
        lock.release()
        raise StoreLockedError(f"{path} is being written by another process (writer lock held); "
                               f"wait for it to finish")
    return lock


def _differences(key, old, new):
    """"key: store OLD vs now NEW" for one parameter; for a dict (a feature store's `features`), per entry that
    differs ("features.pooling: store 'avg' vs now 'max'")."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return ", ".join(f"{key}.{k}: store {old.get(k)!r} vs now {new.get(k)!r}" for k in keys)
    return f"{key}: store {old!r} vs now {new!r}"


class StoreWriter:
    """Single-process writer of a store: holds its lock, keeps the index in memory and commits it atomically.

    Clips arrive as shards (`write_shard`, usually in worker processes) and are added with `add_shard`, or
    whole with `add_clip` (writes the shard here). The index is republished after a clip when that costs at
    most ~10 % of the time since the last publication, and always at `commit()` / `close()`.

    Opening an existing store continues it (its committed clips are `done_ids`), after removing the temporary
    files of killed runs and adopting the intact shards they published but did not commit; a store made with
    other parameters is refused unless `overwrite`, which replaces it by a complete empty one first. So are an
    index that fails its checksum and a missing index whose shard folder still holds clips: their index is
    rebuilt from the shards (`ttrnn.store.repair`), not their clips decoded again.

    Args:
        path: the store's index file (its shards go to `path` + ".clips/").
        params: the store's parameters (`store_params`).
        overwrite: replace an existing store instead of continuing it.
    """

    def __init__(self, path, params, overwrite=False):
        self.path = os.fspath(path)
        self.params = json.loads(json.dumps(dict(params), default=json_default))
        self.classes = list(self.params["classes"])
        self.multilabel = bool(self.params["multilabel"])
        self.dir = shard_dir(self.path)
        self.lock = lock_store(self.path)
        self._last_publish, self._publish_cost, self._dirty, self._record = time.perf_counter(), 0.0, False, None
        try:
            clean_temporaries(self.path)
            if os.path.exists(self.path) and not overwrite:
                self._load_existing()
            else:
                if not overwrite and shard_files(self.path):
                    n = len(shard_files(self.path))
                    raise StoreError(f"{self.path} is missing but its shard folder {self.dir}/ holds {n} clip"
                                     f"{'s' if n != 1 else ''}: rebuild the index from them with python -m "
                                     f"preprocess.check {self.path} --repair (or give --overwrite to start anew)")
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

    @classmethod
    def restored(cls, path, lock, uid, created, params, rows, failed=(), splits=None):
        """A writer of store `path` holding `lock` (`lock_store`), with the given state instead of the index's:
        what `ttrnn.store.repair` commits as the rebuilt index. `rows`: index row dicts (a shard's `meta_json`
        plus its `shard` name)."""
        self = cls.__new__(cls)
        self.path, self.lock, self.dir = os.fspath(path), lock, shard_dir(path)
        self.params = json.loads(json.dumps(dict(params), default=json_default))
        self.classes, self.multilabel = list(self.params["classes"]), bool(self.params["multilabel"])
        self.uid, self.created = str(uid), str(created)
        self.rows, self.failed_list, self.splits = list(rows), [], {}
        self.set_failed(failed)
        self.set_splits(splits or {})
        self._last_publish, self._publish_cost, self._record = time.perf_counter(), 0.0, None
        return self

    # -- opening --
    def _load_existing(self):
        hint = rebuild_hint(self.path) or "; use --overwrite to replace it"
        try:
            f = h5py.File(self.path, "r")
        except OSError as e:
            raise StoreError(f"cannot open {self.path} for writing ({open_problem(e)}){hint}") from None
        with f:
            if "ttrnn_store" not in f.attrs:
                raise StoreError(f"{self.path} exists and is not a ttrnn store (use --overwrite to replace it)")
            if int(f.attrs["ttrnn_store"]) < SCHEMA_VERSION:
                raise StoreError(f"{self.path} is a schema-{int(f.attrs['ttrnn_store'])} store: convert it with "
                                 f"python -m preprocess.transcode or rebuild it with --overwrite")
            old = json.loads(f.attrs["params_json"])
            self._check_params(old)
            self.uid, self.created = as_text(f.attrs["uid"]), as_text(f.attrs["created"])
            try:
                raw = f["index"][:]
                self.failed_list = [(as_text(a), as_text(b)) for a, b in f["failed"][:]]
                if not index_intact(f, raw, self.failed_list):
                    raise ValueError("it fails its checksum")
                self.rows = [row_dict(r) for r in raw]
                self.splits = {n: {p: [as_text(c) for c in sg[p][:]] for p in sg} for n, sg in f["splits"].items()}
            except (KeyError, ValueError, TypeError, OSError, RuntimeError) as e:  # what h5py raises for damage
                raise StoreError(f"the index of {self.path} is damaged ({e}){hint}") from None
        self._adopt_shards()
        self._write_record()   # a store written before the record existed gets one (atomic, under the lock)

    def _check_params(self, old):
        if old == self.params:
            return
        diff = sorted(k for k in set(old) | set(self.params) if old.get(k) != self.params.get(k))
        shown = ", ".join(_differences(k, old.get(k), self.params.get(k)) for k in diff if k != "classes")
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
            meta = shard_meta(p, self.uid)
            if meta is None or meta["clip_id"] in ids:
                remove_file(p)
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
                remove_file(os.path.join(self.dir, n))

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
        """Write one clip `frames` uint8 (T, H, W, 3) (a feature store: (T, F), `clip_form`) as a shard and add
        it. `labels`: multi-hot (C,) or None."""
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
        meta = shard_meta(os.path.join(self.dir, name), self.uid, strict=True, verify=False)  # just written
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
            remove_file(os.path.join(self.dir, r["shard"]))

    # -- committing --
    def commit(self):
        """Write the whole index under a unique temporary name, fsync, rename it over the store: atomic. The store
        record (OUT.clips/store.json) is replaced first when it changed, then the shard folder is fsynced, so that
        the shards' renames and the record are durable before the index that lists them. A record ahead of its
        index (a kill in between) is harmless: readers and writers read the index; the record is read only to
        rebuild an index that is lost (`ttrnn.store.repair`)."""
        t0 = time.perf_counter()
        d, base = os.path.split(os.path.abspath(self.path))
        tmp = os.path.join(d, f".{base}.tmp-{uuid.uuid4().hex}")  # unique: `clean_temporaries` finds leftovers
        try:
            self._write_record()
            fsync_path(self.dir)
            atomic_write(self.path, hdf5_image(self._write_index), tmp=tmp)
        except BaseException as e:
            if is_disk_full(e):
                raise self.disk_full(0) from None
            raise
        self._publish_cost = time.perf_counter() - t0
        self._last_publish, self._dirty = time.perf_counter(), False

    def _write_record(self):
        """Replace OUT.clips/store.json (atomically) when what it says differs from the writer's state."""
        text = record_text(self.uid, self.created, self.params, self.splits, self.failed_list)
        if text == self._record:
            return
        target = os.path.join(self.dir, STORE_RECORD)
        try:
            with open(target, encoding="utf-8") as fh:
                same = fh.read() == text
        except (OSError, UnicodeDecodeError):
            same = False
        if not same:
            atomic_write(target, text, tmp=os.path.join(self.dir, f".tmp-{uuid.uuid4().hex}.json"), sync_dir=False)
        self._record = text

    def _write_index(self, f):
        """Fill the new index file `f` (h5py.File) from the writer's state."""
        f.attrs["ttrnn_store"] = SCHEMA_VERSION
        f.attrs["params_json"] = json.dumps(self.params, default=json_default)
        f.attrs["created"] = self.created
        f.attrs["uid"] = self.uid
        rows = np.zeros(len(self.rows), index_row_dtype(len(self.classes)))
        for j, r in enumerate(self.rows):
            for k in ("clip_id", "class_name", "label", "group", "length", "source", "fps", "shard"):
                rows[j][k] = r[k]
            rows[j]["labels"] = labels_vector(r, len(self.classes))
        f.create_dataset("index", data=rows)
        f.create_dataset("failed", data=np.array(self.failed_list, dtype=object).reshape(-1, 2),
                         dtype=h5py.string_dtype("utf-8"))
        f.attrs["index_crc"] = index_digest(f.attrs["params_json"], rows, self.failed_list, self.splits)
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
