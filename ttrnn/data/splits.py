"""Train/test splits of a frame store: the paper's random 5-fold split, leave-one-group-out, the store's own lists.

Pure numpy on `FrameStore.index`; no frames are read and TensorFlow is not imported.
"""
import re
from dataclasses import dataclass

import numpy as np

PAPER_SEED = 11111986
PAPER_FOLDS = 5
PROTOCOLS = ("paper", "logo", "store", "holdout")
"""The split protocols (`--protocol`): the original code's random 5 folds, leave one group out, the store's own
train / test lists (Hollywood2, UCF101), and one random held-out fraction (the successors' code)."""
HOLDOUT_FRACTION = 0.2      # the BT-LSTM / TR-LSTM code's test split: 20 % of the clips at random


@dataclass
class Split:
    """Row indices into the store's index for training and testing, and a one-line description."""
    train: np.ndarray
    test: np.ndarray
    description: str


def original_order(index, classes):
    """Rows in the order the original code listed clips: class list order, then sorted folders, then sorted files.

    The original `get_clips` walked `data_path/<class>/<group>/<clip>` with `os.listdir(...).sort()` at each level,
    which is the order of the path components compared one level at a time.
    """
    del classes  # the label index is the position in the class list (multi-label stores: the first label)
    keys = [(int(row["label"]), tuple(str(row["source"]).replace("\\", "/").split("/"))) for row in index]
    return np.array(sorted(range(len(index)), key=lambda i: keys[i]), dtype=np.int64)


def paper_split(index, classes, fold, seed=PAPER_SEED, folds=PAPER_FOLDS, order=None, listing="class-folder"):
    """The original split: clips in the original's listing order, shuffled with `np.random.seed(11111986)`,
    `np.array_split` into 5, fold = test.

    Reproduces `shuffle_inds = np.random.choice(range(N), N, False)` and `CV_splits = np.array_split(arange(N), 5)`
    of the original `Experiment_UCF11.py` (and `Experiment_CelebFaces.py`, which passes its own `order`). Clips of
    one group can land on both sides (see `logo_split`). `order`: rows in listing order (default `original_order`).
    """
    if not 0 <= fold < folds:
        raise ValueError(f"--fold {fold} is out of range for the paper protocol (0..{folds - 1})")
    order = original_order(index, classes) if order is None else np.asarray(order, dtype=np.int64)
    shuffle = np.random.RandomState(seed).choice(range(len(order)), len(order), False)
    shuffled = order[shuffle]
    test_pos = np.array_split(np.arange(len(order)), folds)[fold]
    test = np.sort(shuffled[test_pos])
    train = np.setdiff1d(np.arange(len(order)), test)
    return Split(train, test, f"paper random {folds}-fold split of the {listing}-ordered clips (seed {seed}), "
                              f"fold {fold}")


def group_keys(index):
    """Group key per row. UCF11 group folders `v_shooting_07` share their number across classes (same actor and
    scene), so the key is that number; other stores group by the full group name."""
    groups = [str(g) for g in index["group"]]
    numbers = [re.search(r"_(\d+)$", g) for g in groups]
    if groups and all(numbers):
        return np.array([m.group(1) for m in numbers])
    return np.array(groups)


def logo_split(index, fold):
    """Leave-one-group-out: the `fold`-th group (sorted) is the test set; no group is on both sides."""
    keys = group_keys(index)
    unique = sorted(set(keys.tolist()))
    if not unique or unique == [""]:
        raise ValueError("the store has no groups; the logo protocol needs them")
    if not 0 <= fold < len(unique):
        raise ValueError(f"--fold {fold} is out of range for the logo protocol (0..{len(unique) - 1}, "
                         f"{len(unique)} groups)")
    held = unique[fold]
    test = np.flatnonzero(keys == held)
    train = np.flatnonzero(keys != held)
    return Split(train, test, f"leave-one-group-out, held-out group {held} (fold {fold} of {len(unique)})")


def store_split(splits, fold, name=None):
    """A split stored in the store (e.g. Hollywood2's standard split, UCF101 `trainlist01`)."""
    if not splits:
        raise ValueError("the store has no split lists; use --protocol paper or logo")
    names = sorted(splits)
    if name is None:
        if not 0 <= fold < len(names):
            raise ValueError(f"--fold {fold} is out of range for the store's splits {names}")
        name = names[fold]
    if name not in splits:
        raise ValueError(f"the store has no split named {name!r} (has {names})")
    entry = splits[name]
    return Split(np.asarray(entry["train"], dtype=np.int64), np.asarray(entry["test"], dtype=np.int64),
                 f"store split {name!r}")


def make_split(store, protocol, fold):
    """The split of `store` (a FrameStore) under `protocol` in PROTOCOLS."""
    if protocol == "paper":
        return paper_split(store.index, store.classes, fold)
    if protocol == "logo":
        return logo_split(store.index, fold)
    if protocol == "store":
        return store_split(store.splits, fold)
    if protocol == "holdout":
        return holdout_split(len(store.index), fold)
    raise ValueError(f"unknown protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})")


def holdout(rows, fraction, seed):
    """Split `rows` into (kept, held_out) with `fraction` held out at random (Hollywood2's 15 % validation)."""
    rows = np.asarray(rows)
    rng = np.random.RandomState(seed)
    perm = rng.permutation(len(rows))
    n_out = int(round(fraction * len(rows)))
    return np.sort(rows[perm[n_out:]]), np.sort(rows[perm[:n_out]])


def holdout_split(n_clips, seed):
    """The successors' protocol (BT-LSTM, TR-LSTM code): one random 20 % test split of all clips, seeded."""
    if seed < 0:
        raise ValueError(f"--fold {seed} is out of range for the holdout protocol (it seeds the split, >= 0)")
    train, test = holdout(np.arange(n_clips), HOLDOUT_FRACTION, seed)
    return Split(train, test, f"random {HOLDOUT_FRACTION:.0%} holdout (seed {seed})")
