"""First contact with a store and its repair, on small hand-made stores (no video decoding): the shard-folder check
(`FrameStore.check_shards`: a store copied without OUT.clips/, or beside another store's folder), and the index
rebuilt from the shards (`ttrnn.store.rebuild_index`) after flipped bytes, a deletion or a truncated copy: every
clip back equal frame for frame, with the same labels, classes, splits, failures and parameters."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import helpers
import numpy as np
import pytest

from ttrnn.store import (
    STORE_RECORD,
    FrameStore,
    StoreError,
    StoreLockedError,
    StoreWriter,
    check_shards,
    rebuild_index,
    shard_dir,
    store_params,
)
from ttrnn.store.writer import lock_store

H, W = 12, 16
CLASSES = ["run", "jump", "swim", "ride"]


def write_store(path, clips=24, codec="jpeg", multilabel=False, seed=0):
    """A store of `clips` short clips of noise in `codec`, with splits and a failed clip recorded."""
    rng = np.random.default_rng(seed)
    quality = 90 if codec == "jpeg" else None
    params = store_params("test", W, H, compression=codec, quality=quality, classes=CLASSES, multilabel=multilabel)
    ids = [f"clip{i:03d}" for i in range(clips)]
    with StoreWriter(path, params) as w:
        for i, cid in enumerate(ids):
            label = i % len(CLASSES)
            labels = [int(k == label or k == (label + 1) % len(CLASSES)) for k in range(len(CLASSES))] \
                if multilabel else None
            frames = rng.integers(0, 256, (int(rng.integers(3, 7)), H, W, 3), dtype=np.uint8)
            w.add_clip(cid, frames, CLASSES[label], label, f"g{i % 3}", f"videos/{cid}.avi", 25.0, labels=labels)
        w.set_failed([("videos/broken.avi", "no decodable frames")])
        w.set_splits({"split1": {"train": ids[::2], "test": ids[1::2]}, "split2": {"train": ids[:4], "test": ids[4:]}})
    return path


def snapshot(path):
    """Everything a reader sees of the store at `path`."""
    with FrameStore(path) as s:
        return {"index": s.index.tolist(), "labels": s.label_matrix().tolist(), "classes": s.classes,
                "multilabel": s.multilabel, "attrs": s.attrs, "failed": s.failed, "uid": s.uid,
                "splits": {n: {p: v.tolist() for p, v in d.items()} for n, d in s.splits.items()},
                "frames": [s.read(i) for i in range(len(s))]}


def assert_same(got, want):
    assert {k: v for k, v in got.items() if k != "frames"} == {k: v for k, v in want.items() if k != "frames"}
    assert len(got["frames"]) == len(want["frames"])
    for a, b in zip(got["frames"], want["frames"]):
        np.testing.assert_array_equal(a, b)


def xor_bytes(path, offset, count):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        data = fh.read(count)
        fh.seek(offset)
        fh.write(bytes(b ^ 0xA5 for b in data))


def damage(path, how):
    """Damage the index file at `path`: a few KB of flipped bytes, one flipped label (HDF5 still reads it: only its
    checksum tells), deleted, or truncated by a copy that stopped half way."""
    size = os.path.getsize(path)
    if how == "flipped":
        xor_bytes(path, size * 3 // 10, min(4096, size // 2))
    elif how == "label":
        with h5py.File(path, "r") as f:
            d = f["index"]
            offset = d.id.get_offset() + d.dtype.fields["label"][1]   # row 0's label
        xor_bytes(path, offset, 1)
    elif how == "deleted":
        os.remove(path)
    elif how == "truncated":
        with open(path, "r+b") as fh:
            fh.truncate(size // 2)


@pytest.fixture
def store(tmp_path):
    return write_store(tmp_path / "s.h5")


# --- the shard folder ---------------------------------------------------------------------------------------------
def test_check_shards_names_the_folder_and_what_to_copy(store, tmp_path):
    check_shards(store)                                   # a whole store: nothing to say
    assert os.path.isfile(os.path.join(shard_dir(store), STORE_RECORD))
    folder = shard_dir(store)
    shutil.move(folder, tmp_path / "away")
    with pytest.raises(StoreError) as e:                  # copied as "an HDF5 file", without its folder
        check_shards(store)
    assert str(e.value) == (f"{store}: its shard folder {folder}/ is missing: copy it with the index "
                            f"(both s.h5 and s.h5.clips/)")
    os.mkdir(folder)
    with pytest.raises(StoreError, match=r"holds none of the 24 clips its index lists \(it has no shard files\)"):
        check_shards(store)
    os.rmdir(folder)
    other = write_store(tmp_path / "other.h5", clips=5, seed=1)
    shutil.copytree(shard_dir(other), folder)             # another store's folder under this store's name
    with pytest.raises(StoreError, match=r"holds another store's shards \(none of the 24 clips.*copy the folder "
                                         r"made with this index \(both s.h5 and s.h5.clips/\)"):
        check_shards(store)
    shutil.rmtree(folder)
    shutil.move(tmp_path / "away", folder)
    gone = sorted(n for n in os.listdir(folder) if n.startswith("c-"))[:3]
    for n in gone:
        os.remove(os.path.join(folder, n))
    with pytest.raises(StoreError, match=r"3 of the 24 clips its index lists have no shard in .*--repair"):
        check_shards(store)                               # an incomplete copy
    check_shards(store, partial=False)                    # preprocess.check lists those clips one by one instead


def test_check_shards_reads_no_frame(store, monkeypatch):
    """The check is a listing and two shards' attributes: no frame is read, however large the store."""
    from ttrnn.store import reader
    monkeypatch.setattr(reader.FrameStore, "_read", lambda *a, **k: pytest.fail("a frame was read"))
    check_shards(store)


def test_a_shard_of_another_store_under_a_listed_name_is_caught(store, tmp_path):
    other = write_store(tmp_path / "other.h5", clips=2, seed=1)
    with FrameStore(store) as s:
        first = s.shard_path(0)
    with FrameStore(other) as o:
        shutil.copy(o.shard_path(0), first)
    with pytest.raises(StoreError, match="belongs to store"):
        check_shards(store)


# --- the index rebuilt from the shards ----------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["flipped", "label", "deleted", "truncated"])
@pytest.mark.parametrize("codec, multilabel", [("jpeg", False), ("lzf", True)])
def test_rebuild_brings_back_every_clip_frame_for_frame(tmp_path, how, codec, multilabel):
    path = write_store(tmp_path / "s.h5", codec=codec, multilabel=multilabel)
    before = snapshot(path)
    damage(path, how)
    with pytest.raises(StoreError, match=r"--repair") as e:  # the open error says how to rebuild
        FrameStore(path)
    assert "\n" not in str(e.value)
    report = rebuild_index(path)
    assert report["clips"] == 24 and not report["damaged"] and report["params_from"] == "store record"
    assert report["splits_from"] == "store record" and report["splits"] == ["split1", "split2"]
    assert_same(snapshot(path), before)
    check_shards(path)
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]
    assert not [n for n in os.listdir(shard_dir(path)) if n.startswith(".tmp-")]
    with StoreWriter.reopen(path) as w:                   # preprocess continues the rebuilt store
        assert len(w.done_ids) == 24


def test_a_damaged_shard_is_left_out_and_the_writer_redoes_its_clip(store):
    before = snapshot(store)
    with FrameStore(store) as s:
        shard, cid = s.shard_path(5), str(s.index["clip_id"][5])
    with h5py.File(shard, "r") as f:
        offset = f["bytes"].id.get_offset() + 40
    xor_bytes(shard, offset, 1)
    damage(store, "deleted")
    report = rebuild_index(store)
    assert report["clips"] == 23 and [n for n, _ in report["damaged"]] == [os.path.basename(shard)]
    assert "fails its checksum" in report["damaged"][0][1]
    after = snapshot(store)
    assert cid not in [r[0] for r in after["index"]]
    keep = [i for i, r in enumerate(before["index"]) if r[0] != cid]
    for j, i in enumerate(keep):
        np.testing.assert_array_equal(after["frames"][j], before["frames"][i])
    with StoreWriter.reopen(store) as w:                  # the damaged shard is removed, the clip can come back
        assert cid not in w.done_ids
        w.add_clip(cid, before["frames"][5], "run", 0, "g", "videos/x.avi", 25.0)


def test_without_the_store_record_parameters_come_from_the_shards(store):
    before = snapshot(store)
    os.remove(os.path.join(shard_dir(store), STORE_RECORD))
    damage(store, "label")                                # the damaged index still gives its splits
    report = rebuild_index(store)
    assert (report["params_from"], report["splits_from"]) == ("shards", "damaged index (not checked)")
    assert_same(snapshot(store), before)
    os.remove(os.path.join(shard_dir(store), STORE_RECORD))
    damage(store, "deleted")                              # nothing gives the splits, the failures, the date
    report = rebuild_index(store)
    assert (report["params_from"], report["splits_from"]) == ("shards", "none found")
    got = snapshot(store)
    assert got["index"] == before["index"] and got["classes"] == before["classes"] and got["uid"] == before["uid"]
    assert got["splits"] == {} and got["failed"] == []
    assert all(np.array_equal(a, b) for a, b in zip(got["frames"], before["frames"]))


def make_old(path):
    """The store as a version before the store record and the shards' parameters left it."""
    os.remove(os.path.join(shard_dir(path), STORE_RECORD))
    for n in os.listdir(shard_dir(path)):
        if n.startswith("c-"):
            with h5py.File(os.path.join(shard_dir(path), n), "r+") as f:
                del f.attrs["params_json"]


def test_an_old_store_takes_its_parameters_from_the_damaged_index_when_they_fit(store):
    before = snapshot(store)
    make_old(store)
    damage(store, "label")
    report = rebuild_index(store)
    assert report["params_from"] == "damaged index, checked against the shards"
    assert_same(snapshot(store), before)
    assert os.path.isfile(os.path.join(shard_dir(store), STORE_RECORD))   # and now it has its record


def test_an_old_store_without_its_index_is_refused_in_one_line(store):
    make_old(store)
    damage(store, "deleted")
    with pytest.raises(StoreError) as e:
        rebuild_index(store)
    assert "not the store's parameters" in str(e.value) and "--overwrite" in str(e.value)
    assert "\n" not in str(e.value) and not os.path.exists(store)


def test_parameters_of_a_damaged_index_that_do_not_fit_the_shards_are_not_taken(store):
    make_old(store)
    with h5py.File(store, "r+") as f:                     # a damaged frame size (the checksum fails too)
        params = json.loads(f.attrs["params_json"])
        f.attrs["params_json"] = json.dumps(dict(params, width=W + 1))
    with pytest.raises(StoreError, match="not the store's parameters"):
        rebuild_index(store)


# --- the writer and the lock --------------------------------------------------------------------------------------
def test_the_writer_does_not_start_over_on_shards_whose_index_is_lost_or_damaged(store):
    damage(store, "label")
    with pytest.raises(StoreError, match=r"the index of .* is damaged .*--repair"):
        StoreWriter.reopen(store)                         # a damaged index is not committed again as if sound
    damage(store, "deleted")
    with pytest.raises(StoreError, match=r"is missing but its shard folder .* holds 24 clips.*--repair"):
        StoreWriter(store, store_params("test", W, H, compression="jpeg", quality=90, classes=CLASSES))
    assert len(os.listdir(shard_dir(store))) == 24 + 2   # nothing deleted: shards, store.json, .lock
    rebuild_index(store)
    assert len(FrameStore(store)) == 24


def test_rebuild_waits_for_no_writer(store):
    damage(store, "deleted")
    lock = lock_store(store)
    try:
        with pytest.raises(StoreLockedError):
            rebuild_index(store)
    finally:
        lock.release()
    assert rebuild_index(store)["clips"] == 24


def test_rebuild_killed_at_random_moments_leaves_the_old_index_or_the_new_one(tmp_path):
    """SIGKILLs of `preprocess.check --repair` at random moments: after each the index is the damaged one (refused
    with the hint) or the whole rebuilt one, never a part; the same command then completes it."""
    path = write_store(tmp_path / "k.h5", clips=200, codec="raw")
    before = snapshot(path)
    damage(path, "flipped")
    env = dict(os.environ, PYTHONPATH=str(helpers.REPO))
    argv = [sys.executable, "-m", "preprocess.check", str(path), "--repair", "--quiet"]
    shutil.copy(path, tmp_path / "damaged.h5")
    t0 = time.perf_counter()
    assert subprocess.run(argv, env=env, capture_output=True).returncode == 0
    span = time.perf_counter() - t0
    rng = np.random.default_rng(7)
    rebuilt = 0
    for _ in range(6):
        shutil.copy(tmp_path / "damaged.h5", path)
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.0) * span)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        try:
            got = snapshot(path)
        except StoreError as e:
            assert "--repair" in str(e)
        else:
            assert_same(got, before)
            rebuilt += 1
    print(f"{rebuilt} of 6 kills came after the new index was in place")
    assert subprocess.run(argv, env=env, capture_output=True).returncode == 0
    assert_same(snapshot(path), before)
    assert not [n for n in os.listdir(shard_dir(path)) if n.startswith(".tmp-")]
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]
