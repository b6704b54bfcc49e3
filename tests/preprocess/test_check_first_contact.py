"""`python -m preprocess.check` on stores as a user meets them after a copy: without the shard folder, beside
another store's folder, with a damaged, deleted or truncated index. The whole stderr is read: each refusal is one
line, exit 2; `--repair` rebuilds a lost index from the shards (exit 0) and every clip reads back as before."""

import os
import shutil

import h5py
import helpers
import numpy as np
import pytest

from ttrnn.store import STORE_RECORD, FrameStore, shard_dir


@pytest.fixture
def store(tmp_path):
    return helpers.make_store(tmp_path / "s.h5", num_classes=4, groups=2, clips_per_group=2, lengths=(3, 5),
                              size=(16, 12))


def check(*args):
    return helpers.run_cli("preprocess.check", *args, "--quiet")


def one_line(r, status):
    assert r.returncode == status, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert r.stdout == "", r.stdout          # nothing per clip
    return lines[0]


def frames(path):
    with FrameStore(path) as s:
        return s.index.tolist(), s.label_matrix().tolist(), s.classes, [s.read(i) for i in range(len(s))]


def test_a_store_copied_without_its_shard_folder_is_one_line(store, tmp_path):
    shutil.move(shard_dir(store), tmp_path / "elsewhere")
    line = one_line(check(store), 2)
    assert line == (f"error: {store}: its shard folder {store}.clips/ is missing: copy it with the index "
                    f"(both s.h5 and s.h5.clips/)")
    assert one_line(check(store, "--repair"), 2) == line      # nothing to repair: the frames are not here


def test_a_store_beside_another_stores_folder_is_one_line(store, tmp_path):
    other = helpers.make_store(tmp_path / "other.h5", num_classes=2, groups=1, clips_per_group=2, lengths=(3, 3),
                               size=(16, 12), seed=3)
    shutil.rmtree(shard_dir(store))
    shutil.copytree(shard_dir(other), shard_dir(store))
    line = one_line(check(store), 2)
    assert "holds another store's shards" in line and "(both s.h5 and s.h5.clips/)" in line


@pytest.mark.parametrize("how", ["flipped", "deleted", "truncated"])
def test_repair_rebuilds_a_damaged_or_lost_index_from_the_shards(store, how):
    before = frames(store)
    size = os.path.getsize(store)
    if how == "flipped":                       # a few KB of flipped bytes
        with open(store, "r+b") as fh:
            fh.seek(size * 3 // 10)
            data = fh.read(4096)
            fh.seek(size * 3 // 10)
            fh.write(bytes(b ^ 0xA5 for b in data))
    elif how == "deleted":
        os.remove(store)
    else:                                      # a copy that stopped half way
        with open(store, "r+b") as fh:
            fh.truncate(size // 2)
    line = one_line(check(store), 2)
    assert f"its shard folder {store}.clips/ holds 16 clips: rebuild the index from them with python -m " \
           f"preprocess.check {store} --repair" in line, line
    r = check(store, "--repair")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert f"rebuilt the index of {store} from {store}.clips/" in r.stdout and ": 16 clips, 0 damaged" in r.stdout
    after = frames(store)
    assert after[:3] == before[:3]
    assert all(np.array_equal(a, b) for a, b in zip(after[3], before[3])) and len(after[3]) == 16
    r = check(store)
    assert r.returncode == 0 and "checked 16 clips" in r.stdout and "0 damaged" in r.stdout


def test_an_incomplete_copy_lists_its_missing_clips_and_repair_drops_them(store):
    with FrameStore(store) as s:
        gone = s.shard_path(2)
    os.remove(gone)
    r = check(store)
    assert r.returncode == 1 and "1 damaged" in r.stdout and os.path.basename(gone) in r.stdout, r.stdout
    r = check(store, "--repair")
    assert r.returncode == 0 and "dropped 1" in r.stdout
    assert len(FrameStore(store)) == 15


def test_an_old_store_whose_index_is_lost_is_refused_in_one_line(store):
    """A store written before the parameters were kept beside the index: its clips are there, its parameters
    are not, so repair says so (exit 2) instead of guessing them."""
    os.remove(os.path.join(shard_dir(store), STORE_RECORD))
    for n in os.listdir(shard_dir(store)):
        if n.startswith("c-"):
            with h5py.File(os.path.join(shard_dir(store), n), "r+") as f:
                del f.attrs["params_json"]
    os.remove(store)
    line = one_line(check(store, "--repair"), 2)
    assert "its shards hold 16 intact clips but not the store's parameters" in line and "--overwrite" in line, line
