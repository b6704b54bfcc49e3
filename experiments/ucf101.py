"""UCF101 (101 actions, three official splits): the 3D CNN baselines (3D-ResNets-PyTorch, video-nonlocal-net) on
our store and trainer.

    python -m experiments.ucf101 --data ucf101.h5 --split 1 --model r3d --depth 18
    python -m experiments.ucf101 --data ucf101.h5 --split 1 --model i3d_nl --weights imagenet --test-crops 3
    python -m experiments.ucf101 --demo           # no dataset: synthetic UCF101-layout clips -> store -> small R3D

Make the store with `python -m preprocess.ucf101 UCF-101 ucf101.h5 --splits ucfTrainTestlist`. `--split N` trains on
trainlist0N and tests on testlist0N (the store's "split0N"; it is `--protocol store --fold N-1`). Defaults: --model
r3d (ResNet-18), 16-frame 112×112 clips (random window and crop in training), Adam 1e-3, batch 8, and the final
test on 10 evenly spaced clips per video with their scores averaged (--test-clips, --test-crops 3 for
video-nonlocal-net's three crops). Any --model of the trainer works here, the TT-RNNs included.
"""
import sys

from experiments.demo import cached_demo_store
from experiments.train import DatasetSpec
from experiments.train import main as train_main
from ttrnn.cli import OneLineParser, exit_now

# The demo: 5 UCF101 classes x 6 groups x 2 clips of 20-28 synthetic frames at 112x84; split N tests groups 2N-1, 2N.
DEMO_DATA = dict(groups=6, clips_per_group=2, frames=(20, 28), size=(112, 84), seed=0)
DEMO_VERSION = "v1"


def _demo_build(src, out, progress=True):
    from preprocess import ucf101
    return ucf101.build_store(f"{src}/UCF-101", out, progress=progress)


def build_demo_store(args=None):
    """Generate the synthetic UCF101 tree with its split lists and preprocess it into a cached store."""
    from preprocess import ucf101
    return cached_demo_store(f"ucf101-{DEMO_VERSION}", DEMO_DATA, _demo_build, args, make_videos=ucf101.make_demo_tree)


SPEC = DatasetSpec(
    name="ucf101", stores=("ucf101", "folders"), lr=1e-3, batch_size=8, max_len=1492, protocol="store",
    notes="--split 1|2|3 picks the official split; defaults: R3D-18 on 16x112x112 clips, 10 test clips per video.",
    demo=build_demo_store,
    defaults=dict(model="r3d"),
    demo_defaults=dict(model="r3d", depth=10, width=0.25, clip_len=8, crop=64, epochs=5, batch_size=8,
                       test_clips=3),
)


def split_to_fold(argv, prog="python -m experiments.ucf101"):
    """`--split N` (1-3) → `--protocol store --fold N-1`; other arguments pass through unchanged. `prog` names the
    command in a usage error (experiments.hmdb51 reads its official splits the same way)."""
    pre = OneLineParser(prog=prog, add_help=False)
    pre.add_argument("--split", type=int, choices=(1, 2, 3))
    known, rest = pre.parse_known_args(argv)
    if known.split is None:
        return list(rest)
    return list(rest) + ["--protocol", "store", "--fold", str(known.split - 1)]


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = split_to_fold(argv)
    except SystemExit:
        return 2  # argparse printed the one-line usage error
    return train_main(SPEC, argv)


if __name__ == "__main__":
    exit_now(main())
