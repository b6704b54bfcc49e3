"""Splits: the paper's folds against an independent re-run of the original code's lines; logo keeps groups apart."""
import os

import numpy as np
import pytest
from helpers import make_store

from ttrnn.data import splits
from ttrnn.store import FrameStore


def original_code_split(tree, classes, fold):
    """The original Experiment_UCF11.py, verbatim in substance: listdir-sort walk, seed, choice, array_split."""
    clips = []
    for c in classes:
        for folder in sorted(os.listdir(os.path.join(tree, c))):
            for clip in sorted(os.listdir(os.path.join(tree, c, folder))):
                clips.append(f"{c}/{folder}/{clip}")
    clips = np.array(clips)
    np.random.seed(11111986)
    shuffle_inds = np.random.choice(range(len(clips)), len(clips), False)
    clips = clips[shuffle_inds]
    cv_splits = np.array_split(np.arange(len(clips)), 5)
    return set(clips[cv_splits[fold]].tolist())


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = make_store(tmp_path_factory.mktemp("splits") / "s.h5", num_classes=5, groups=4, clips_per_group=3,
                      lengths=(2, 3), size=(16, 12))
    return FrameStore(path)


def test_paper_folds_reproduce_the_original_split(store, tmp_path):
    # lay the store's sources out as files, as the original walked them
    for source in store.index["source"]:
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_bytes(b"")
    seen = set()
    for fold in range(5):
        split = splits.paper_split(store.index, store.classes, fold)
        ours = set(store.index["source"][split.test].tolist())
        assert ours == original_code_split(str(tmp_path), store.classes, fold)
        assert not set(split.train) & set(split.test)
        assert len(split.train) + len(split.test) == len(store)
        seen |= ours
    assert len(seen) == len(store)  # the five test folds cover every clip once


def test_logo_folds_never_share_a_group(store):
    keys = splits.group_keys(store.index)
    assert sorted(set(keys)) == ["01", "02", "03", "04"]  # v_<name>_NN: the number is UCF11's group
    for fold in range(4):
        split = splits.logo_split(store.index, fold)
        assert set(keys[split.train]).isdisjoint(set(keys[split.test]))
        assert len(set(keys[split.test])) == 1
        assert len(split.train) + len(split.test) == len(store)


def test_bad_folds_are_value_errors(store):
    with pytest.raises(ValueError, match="out of range"):
        splits.paper_split(store.index, store.classes, 5)
    with pytest.raises(ValueError, match="out of range"):
        splits.logo_split(store.index, 4)
    with pytest.raises(ValueError, match="no split lists"):
        splits.make_split(store, "store", 0)
