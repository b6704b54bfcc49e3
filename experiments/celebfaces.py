"""YouTube Celebrities (47 people): the paper's Table 6 experiment, face/person recognition from raw frames.

    python -m experiments.celebfaces --data celebfaces.h5 --model gru --use-tt
    python -m experiments.celebfaces --demo       # no dataset: synthetic people -> store -> TT-GRU -> accuracy

Make the store with `python -m preprocess.celebfaces SRC celebfaces.h5` (frames 160x120; TT input modes
4x20x20x36). Defaults follow the original Experiment_CelebFaces.py: Adam 1e-3, batch 16, clips truncated to their
first 85 frames and pre-padded (masked), softmax over the people, the plain GRU/LSTM with 225 hidden units (the TT
models have 4x4x4x4 = 256), and the random 5-fold split (--protocol paper, --fold 0..4).

The paper split reproduces the original's: it listed one flat folder of clips sorted by file name, shuffled with
`np.random.seed(11111986); np.random.choice(range(N), N, False)` and cut `np.array_split` into 5 folds; we order the
store's clips by file name the same way (also when the clips sit in per-person folders). The original trained 101
epochs; --epochs sets ours. --protocol logo (leave one group out) needs groups in the store.
"""
from pathlib import PurePosixPath

import numpy as np

from experiments.demo import cached_demo_store
from experiments.train import DatasetSpec
from experiments.train import main as train_main
from ttrnn.cli import exit_now

DEMO_DATA = dict(classes=8, groups=1, clips_per_group=16, frames=(12, 20), size=(160, 120), seed=0,
                 layout="celebfaces")
DEMO_VERSION = "v2"


def original_order(index):
    """Store rows in the order the original listed its clips: `os.listdir(data_path)` sorted, i.e. by file name."""
    names = [(PurePosixPath(str(s).replace("\\", "/")).name, str(s)) for s in index["source"]]
    return np.array(sorted(range(len(names)), key=lambda i: names[i]), dtype=np.int64)


def paper_split(store, fold):
    """The original Celebrities split: rows in file-name order, seeded shuffle, `np.array_split` into 5, fold = test."""
    from ttrnn.data.splits import paper_split as split
    return split(store.index, store.classes, fold, order=original_order(store.index), listing="file-name")


def make_split(store, protocol, fold):
    """`paper`: the original Celebrities split (file-name order); other protocols as `ttrnn.data.splits.make_split`."""
    if protocol == "paper":
        return paper_split(store, fold)
    from ttrnn.data.splits import make_split as generic
    return generic(store, protocol, fold)


def build_demo_store(args=None):
    """Generate the synthetic people and preprocess them into a cached store; returns the store path."""
    from preprocess import celebfaces
    return cached_demo_store(f"celebfaces-{DEMO_VERSION}", DEMO_DATA, celebfaces.build_store, args)


SPEC = DatasetSpec(
    name="celebfaces", stores=("celebfaces", "folders"), lr=1e-3, batch_size=16, max_len=85, protocol="paper",
    notes="Defaults are the original code's (Adam 1e-3, batch 16, max-len 85, random 5-fold split; plain "
          "GRU/LSTM with 225 units).",
    demo=build_demo_store,
    # the demo keeps the original's dropout 0.25: on the synthetic people (one coloured object each) it tests
    # better than without dropout
    demo_defaults=dict(model="gru", use_tt=True, epochs=30, lr=1e-3, scaling="unit"),
    split=make_split,
)


def main(argv=None):
    return train_main(SPEC, argv)


if __name__ == "__main__":
    exit_now(main())
