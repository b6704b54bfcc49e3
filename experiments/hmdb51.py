"""HMDB51 (51 actions, three official splits): the rnn family on frame stores or on feature stores of per-frame CNN
features (the successors' setting: TR-LSTM reports HMDB51 on InceptionV3 features), and any other --model.

    python -m experiments.hmdb51 --data hmdb51-inceptionv3.h5 --split 1 --model lstm --use-tt
    python -m experiments.hmdb51 --data hmdb51.h5 --split 2 --model lstm --decomposition tr
    python -m experiments.hmdb51 --demo    # no dataset: synthetic HMDB51 layout -> frames -> features -> TT-LSTM

Make the frame store with `python -m preprocess.hmdb51 hmdb51_org hmdb51.h5 --splits testTrainMulti_7030_splits`
and its features with `python -m experiments.features hmdb51.h5 hmdb51-inceptionv3.h5 --backbone inceptionv3
--weights imagenet`. `--split N` trains on the clips the split files mark 1 and tests on those marked 2 (clips
marked 0 are in neither; the store's "split0N", `--protocol store --fold N-1`). Defaults: Adam 1e-3, batch 16, the
first 1,492 frames (feature vectors) of a clip. Frame-store runs of the rnn family use UCF11's TT shapes (160x120
frames); feature-store runs factor the feature width (docs/training.md).

The demo writes a synthetic HMDB51 layout with split files (5 classes), preprocesses it, extracts ResNet50 features
(random weights, 64x64 input, the unpooled 2x2x2048 map: no download) and trains a TT-LSTM on split 1, in a few
minutes on two cores.
"""
import sys

from experiments.demo import cached_demo_store, cached_feature_store
from experiments.train import DatasetSpec
from experiments.train import main as train_main
from experiments.ucf101 import split_to_fold
from ttrnn.cli import exit_now

PROG = "python -m experiments.hmdb51"
# The demo: 5 classes x 6 groups x 2 clips of 20-28 synthetic frames at 160x120, split files as the official ones.
DEMO_DATA = dict(classes=5, groups=6, clips_per_group=2, frames=(20, 28), size=(160, 120), seed=0)
DEMO_VERSION = "v1"
# ResNet50 with random weights still gives varied features at 64x64 (a random MobileNetV2's all come out zero there);
# unpooled (its 2x2x2048 map), as the synthetic classes differ by where the object moves, which pooling throws away.
DEMO_BACKBONE = ("resnet50", ("--weights", "none", "--image-size", 64, "--pooling", "none"))


def _demo_videos(folder, **data):
    from preprocess.synthetic import write_synthetic_hmdb51
    return write_synthetic_hmdb51(folder, **data)


def _demo_build(src, out, progress=True):
    from preprocess import hmdb51
    return hmdb51.build_store(f"{src}/hmdb51_org", out, progress=progress)


def build_demo_store(args=None):
    """The demo's feature store: the synthetic HMDB51 tree with its split files, preprocessed into a cached frame
    store, then its ResNet50 features (random weights) cached beside it."""
    frames = cached_demo_store(f"hmdb51-{DEMO_VERSION}", DEMO_DATA, _demo_build, args, make_videos=_demo_videos)
    return cached_feature_store(frames, DEMO_BACKBONE[0], args, DEMO_BACKBONE[1])


SPEC = DatasetSpec(
    name="hmdb51", stores=("hmdb51", "folders"), lr=1e-3, batch_size=16, max_len=1492, protocol="store",
    notes="--split 1|2|3 picks the official split (files: 1 = train, 2 = test, 0 = not used).",
    demo=build_demo_store,
    demo_defaults=dict(model="lstm", use_tt=True, epochs=40, batch_size=8),
)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = split_to_fold(argv, PROG)
    except SystemExit:
        return 2  # argparse printed the one-line usage error
    return train_main(SPEC, argv)


if __name__ == "__main__":
    exit_now(main())
