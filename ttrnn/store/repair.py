"""Rebuilding a store's index from its shard folder (`rebuild_index`), nothing decoded again.

An index file that is damaged (flipped bytes: it fails its checksum or no longer parses), truncated (a copy that
stopped early) or gone is rebuilt from what OUT.clips/ holds (layout: `ttrnn.store.schema`):

- the rows: every shard carries its clip's index row (`meta_json`) and the store's uid. Each shard's frames are
  checked against their CRC-32s on the way; a damaged shard is left out, so the next run of the preprocess
  command decodes that clip again (as after `preprocess.check --repair` drops a damaged clip);
- the uid, creation time, parameters, splits and failed clips: the store record OUT.clips/store.json;
- without a readable record: the uid and the parameters from the shards (each carries both), the splits and the
  failed clips from what the old index still yields, else none (the report says so).

Stores written before the record and the shards' parameters existed: the rows and the uid come from the shards as
above; the parameters only from the old index, accepted when they agree with the shards (frame size, codec, each
clip's class name at its label); without them the rebuild is refused in one line that says what is missing.

The rebuild holds the writer lock and commits as every writer does (`StoreWriter.commit`: the record, then the
index, each written whole under a temporary name and renamed into place), so a kill at any moment leaves the old
index or the new one, and never runs beside a preprocess run writing the same store.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass

import h5py
import numpy as np

from ttrnn.store.codecs import stored_frames, verify_crc
from ttrnn.store.schema import (
    CorruptClipError,
    StoreError,
    as_text,
    clip_form,
    read_record,
    shard_dir,
    shard_files,
)
from ttrnn.store.writer import StoreWriter, clean_temporaries, lock_store


@dataclass
class Shard:
    """What one shard file says about itself (`scan_shards`)."""
    name: str                 # file name in the shard folder
    uid: str = None           # the uid of the store that wrote it (None: unreadable)
    meta: dict = None         # its clip's index row
    params: dict = None       # the store's parameters (None in shards written before they were kept)
    form: tuple = None        # (codec, shape of one frame) of its frames as stored
    problem: str = None       # why it is not an intact clip, else None


def scan_shards(path, progress=None):
    """[Shard] of every shard file in the folder of store `path`, each read whole and checked against its CRC-32s
    (`problem` says what is wrong with a damaged one). `progress`: called with 1 after each shard."""
    folder, out = shard_dir(path), []
    for name in shard_files(path):
        s, p = Shard(name), os.path.join(folder, name)
        try:
            with h5py.File(p, "r") as f:
                s.uid = as_text(f.attrs.get("store_uid", ""))
                s.meta = json.loads(f.attrs["meta_json"])
                if "params_json" in f.attrs:
                    s.params = json.loads(f.attrs["params_json"])
                frames = stored_frames(f)
                verify_crc(s.meta["clip_id"], frames, f["crc"][:], p)
                if len(frames) != s.meta["length"]:
                    raise ValueError(f"it holds {len(frames)} frames, its metadata says {s.meta['length']}")
                s.form = _form(f, frames)
        except CorruptClipError as e:
            s.problem = str(e)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as e:  # what h5py raises for damage
            s.problem = f"shard {p} is not an intact clip: {e}"
        out.append(s)
        if progress is not None:
            progress(1)
    return out


def _form(f, frames):
    """(codec, shape of one frame) of the open shard `f` whose stored frames are `frames`: ("jpeg", (H, W, 3)),
    ("raw" / "lzf" / "gzip", (H, W, 3)) or, for a feature store, ("float16" / "float32", (F,))."""
    if "bytes" in f:
        import simplejpeg
        h, w = simplejpeg.decode_jpeg_header(bytes(frames[0]))[:2] if len(frames) else (0, 0)
        return "jpeg", (int(h), int(w), 3)
    d = f["frames"]
    codec = d.dtype.name if d.dtype != np.uint8 else (d.compression or "raw")
    return codec, tuple(int(n) for n in d.shape[1:])


def salvage_index(path):
    """What the (damaged) index file of store `path` still yields: a dict with any of uid, created, params, splits,
    failed; each read on its own, so one damaged part costs only itself. Nothing in it is trusted until checked
    (`rebuild_index`). Its rows are not read: the shards hold them, and HDF5 can spend seconds failing on
    damaged rows of variable-length strings."""
    out = {}
    try:
        f = h5py.File(os.fspath(path), "r")
    except Exception:  # noqa: BLE001 (gone, truncated, not HDF5 any more: nothing to salvage)
        return out
    with f:
        parts = {
            "uid": lambda: as_text(f.attrs["uid"]),
            "created": lambda: as_text(f.attrs["created"]),
            "params": lambda: dict(json.loads(f.attrs["params_json"])),
            "splits": lambda: {n: {p: [as_text(c) for c in sg[p][:]] for p in sg} for n, sg in f["splits"].items()},
            "failed": lambda: [(as_text(a), as_text(b)) for a, b in f["failed"][:]],
        }
        for key, read in parts.items():
            try:
                out[key] = read()
            except Exception:  # noqa: BLE001 (h5py raises many kinds for damaged metadata)
                pass
    return out


def _agrees(params, shards):
    """Whether `params` (e.g. from a damaged index) fit the intact `shards`: codec and frame size of every shard,
    and for single-label stores each clip's class name at its label."""
    try:
        codec = params.get("codec") or ("raw" if params.get("compression") == "none" else params.get("compression"))
        form = (codec, clip_form(params)[0])
        classes = list(params["classes"])
        for s in shards:
            if s.form != form:
                return False
            label = int(s.meta["label"])
            if not params.get("multilabel") and not (0 <= label < len(classes)
                                                     and classes[label] == s.meta["class_name"]):
                return False
        return bool(shards)
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def _pick_uid(path, record, old, shards):
    uids = Counter(s.uid for s in shards if s.uid)
    if record is not None:
        return record["uid"]
    if old.get("uid") and (old["uid"] in uids or not uids):
        return old["uid"]
    if len(uids) == 1:
        return next(iter(uids))
    folder = f"{shard_dir(path)}/"
    if not uids:
        raise StoreError(f"cannot rebuild the index of {path}: {folder} holds no shards and no store record")
    counts = ", ".join(f"{u[:8]}: {n}" for u, n in uids.most_common())
    raise StoreError(f"cannot rebuild the index of {path}: {folder} holds the shards of {len(uids)} stores "
                     f"({counts}) and neither a store record nor the index says which is this one's")


def _pick_params(path, uid, record, old, mine):
    """(parameters, where they came from) of the store being rebuilt; StoreError when nothing gives them."""
    if record is not None and record["uid"] == uid:
        return record["params"], "store record"
    kept = Counter(json.dumps(s.params, sort_keys=True) for s in mine if s.params is not None)
    if kept:
        return json.loads(kept.most_common(1)[0][0]), "shards"
    intact = [s for s in mine if s.problem is None]
    if old.get("params") and _agrees(old["params"], intact):
        return old["params"], "damaged index, checked against the shards"
    raise StoreError(f"cannot rebuild the index of {path}: its shards hold {len(intact)} intact clips but not the "
                     f"store's parameters (frame size, codec, classes, ...): it was written before they were kept "
                     f"beside the index, and the index does not give them; make the store again with its "
                     f"preprocess command and --overwrite")


def rebuild_index(path, progress=None):
    """Rebuild the index file of store `path` from its shard folder (module docstring) and commit it atomically
    under the writer lock; returns a report dict: clips (indexed), damaged [(shard, reason)] (left out), foreign
    (shards of other stores, left alone), duplicates (second shards of a clip, left out), params_from, splits_from,
    seconds. StoreError (one line) when the folder is missing or nothing gives the store's uid or parameters;
    StoreLockedError while another process writes the store. `progress`: called with 1 after each shard read."""
    path = os.fspath(path)
    folder = shard_dir(path)
    if not os.path.isdir(folder):
        raise StoreError(f"cannot rebuild the index of {path}: its shard folder {folder}/ is missing")
    t0 = time.perf_counter()
    lock = lock_store(path)
    try:
        clean_temporaries(path)
        notes = []
        try:
            record = read_record(path)
        except StoreError as e:
            record = None
            notes.append(f"{e}: not used")
        old = salvage_index(path)
        shards = scan_shards(path, progress)
        uid = _pick_uid(path, record, old, shards)
        mine = [s for s in shards if s.uid == uid or s.uid is None]   # unreadable ones: damaged, said so
        params, params_from = _pick_params(path, uid, record, old, [s for s in mine if s.uid == uid])
        rows, damaged, duplicates, ids = [], [], 0, {}
        for s in mine:   # by name; two intact shards of one clip hold the same frames (the writer adopts one)
            if s.problem is not None:
                damaged.append((s.name, s.problem))
            elif s.meta["clip_id"] in ids:
                duplicates += 1
            else:
                ids[s.meta["clip_id"]] = s.name
                rows.append(dict(s.meta, shard=s.name))
        if record is not None and record["uid"] == uid:
            splits, failed, created, splits_from = record["splits"], record["failed"], record["created"], \
                "store record"
        else:
            splits, failed = old.get("splits", {}), old.get("failed", [])
            created = old.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            splits_from = "damaged index (not checked)" if "splits" in old else "none found"
        writer = StoreWriter.restored(path, lock, uid, created, params, sorted(rows, key=lambda r: r["clip_id"]),
                                      failed, splits)
        writer.commit()
    finally:
        lock.release()
    return {"path": path, "clips": len(rows), "damaged": damaged, "foreign": len(shards) - len(mine),
            "duplicates": duplicates, "params_from": params_from, "splits_from": splits_from,
            "splits": sorted(splits), "notes": notes, "seconds": time.perf_counter() - t0}
