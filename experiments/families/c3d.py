"""The c3d family: C3D on fixed-length 3D clips (the baselines' table), tested on one centre view by default.

Reference: Tran et al., "Learning Spatiotemporal Features with 3D Convolutional Networks", ICCV 2015.

Run label: `c3d`.
"""
from experiments.families import shared

MODELS = ("c3d",)
TABLE = "baselines"
OPTIONS = shared.CLIP_OPTIONS
add_args = shared.no_group            # the clip options are shared with the 3D CNNs
parse_label = shared.not_a_paper_model
freeze = shared.nothing_frozen
check_store = shared.check_crop
validate = shared.validate_clips
input_spec = shared.clip_input_spec


def label(args):
    return "c3d"


def build(args, spec, store):
    from ttrnn import baselines
    return baselines.c3d(len(store.classes), input_shape=(args.clip_len, args.crop, args.crop, 3), width=args.width,
                         activation="sigmoid" if spec.multilabel else "softmax")


def test_views(args):
    """(clips, crops) per video of the final test: one clip unless --test-clips says more."""
    return shared.clip_test_views(args, 1)
