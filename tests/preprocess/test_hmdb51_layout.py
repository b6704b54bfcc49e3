"""HMDB51 (`python -m preprocess.hmdb51`) on the synthetic layout (`preprocess.synthetic.write_synthetic_hmdb51`):
the split ids land where the files say (1 train, 2 test, 0 on neither side), groups are the source titles, and bad
split files are one line and exit 2. The reference is the split files themselves, read here line by line."""
import os
import shutil

import pytest

from preprocess import hmdb51
from preprocess.synthetic import HMDB51_CLASSES, write_synthetic_hmdb51
from ttrnn.store import FrameStore

CLASSES = 3


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_synthetic_hmdb51(tmp_path_factory.mktemp("hmdb") / "hmdb", classes=CLASSES, groups=3,
                                  clips_per_group=2, frames=(4, 6), size=(48, 36), seed=4)


def expected(root):
    """{split name: {"train": ids, "test": ids, "unused": ids}} read from the split files."""
    out = {}
    lists = os.path.join(root, hmdb51.LIST_DIR)
    for name in sorted(os.listdir(lists)):
        split = f"split{int(name[-5]):02d}"
        for line in open(os.path.join(lists, name)):
            video, use = line.split()
            side = {"1": "train", "2": "test", "0": "unused"}[use]
            out.setdefault(split, {"train": set(), "test": set(), "unused": set()})[side].add(video[:-4])
    return out


def test_official_split_semantics(tree, tmp_path):
    out = tmp_path / "hmdb51.h5"
    summary = hmdb51.build_store(os.path.join(tree, "hmdb51_org"), out, size=(32, 24), workers=1, progress=False)
    assert summary["status"] == 0 and summary["stored"] == CLASSES * 6
    want = expected(tree)
    assert sorted(want) == ["split01", "split02", "split03"]
    with FrameStore(out) as s:
        assert s.attrs["dataset"] == "hmdb51" and s.classes == sorted(HMDB51_CLASSES[:CLASSES])
        assert sorted(s.splits) == ["split01", "split02", "split03"]
        ids = s.index["clip_id"]
        for name, parts in s.splits.items():
            train, test = set(ids[parts["train"]]), set(ids[parts["test"]])
            assert train == want[name]["train"] and test == want[name]["test"]
            assert want[name]["unused"] and not want[name]["unused"] & (train | test)   # id 0: on neither side
        groups = dict(zip(ids, s.index["group"]))
        assert groups["Synthetic_Movie_02_catch_u_nm_np1_fr_med_1"] == "Synthetic_Movie_02"
    found = hmdb51.build_store(os.path.join(tree, "hmdb51_org"), tmp_path / "again.h5", size=(32, 24), workers=1,
                               progress=False, limit=2)   # split folder found beside SRC; --limit keeps 2 clips
    assert found["stored"] == 2


def broken(tree, tmp_path, edit):
    """A copy of the split folder changed by `edit(folder)`; returns the preprocess CLI's result on it."""
    lists = tmp_path / "lists"
    shutil.copytree(os.path.join(tree, hmdb51.LIST_DIR), lists)
    edit(lists)
    return lists


@pytest.mark.parametrize("edit, message", [
    (lambda d: open(d / "catch_test_split2.txt", "a").write("Synthetic_Movie_01_catch_u_nm_np1_fr_med_0.avi 3\n"),
     "catch_test_split2.txt:7: expected '<video>.avi <id>' with id 0 (not used), 1 (train) or 2 (test), got"),
    (lambda d: open(d / "catch_test_split1.txt", "a").write("Missing_catch_u_nm_np1_fr_med_0.avi 1\n"),
     "catch_test_split1.txt:7: Missing_catch_u_nm_np1_fr_med_0.avi is not in the class folder catch/"),
    (lambda d: open(d / "catch_test_split1.txt", "a").write("Synthetic_Movie_01_catch_u_nm_np1_fr_med_0.avi 1\n"),
     "catch_test_split1.txt:7: Synthetic_Movie_01_catch_u_nm_np1_fr_med_0.avi is listed twice"),
    (lambda d: os.remove(d / "cartwheel_test_split3.txt"), "no cartwheel_test_split3.txt"),
    (lambda d: open(d / "fly_test_split1.txt", "w").write("x.avi 1\n"), "class 'fly' has no folder"),
    (lambda d: [os.remove(d / n) for n in os.listdir(d)], "no HMDB51 split files"),
])
def test_bad_split_files_are_one_line(tree, tmp_path, edit, message):
    from tests.helpers import run_cli
    lists = broken(tree, tmp_path, edit)
    r = run_cli("preprocess.hmdb51", os.path.join(tree, "hmdb51_org"), tmp_path / "out.h5", "--splits", lists,
                "--quiet")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "out.h5").exists()
