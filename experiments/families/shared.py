"""Options and checks that more than one family uses, each defined once: the paper models' pixel scaling and input
dropout (rnn, mlp), the fixed-length 3D clips and their multi-view test (c3d, video3d), pretrained weights
(tsn, video3d), and which families take feature stores (`check_input_kind`). A family lists the options it reads in
its OPTIONS."""
from ttrnn.cli import UsageError

PAPER_OPTIONS = ("scaling", "dropout")
CLIP_OPTIONS = ("clip_len", "crop", "width", "test_clips", "test_crops")


def add_args(p):
    """The shared argument groups."""
    g = p.add_argument_group("paper models (--model gru|lstm|mlp)")
    g.add_argument("--scaling", default="paper", choices=("paper", "unit"),
                   help="pixel scaling inside the model: paper = pixel-128 (the original), unit = pixel/255 "
                        "(default %(default)s)")
    g.add_argument("--dropout", type=float, default=0.25, help="input dropout (default %(default)s, the original's)")
    g = p.add_argument_group("3D clips (--model c3d and the 3D CNNs)")
    g.add_argument("--clip-len", type=int, default=16,
                   help="frames per clip (default %(default)s, 3D-ResNets-PyTorch's)")
    g.add_argument("--crop", type=int, default=112, help="square crop in pixels (default %(default)s)")
    g.add_argument("--width", type=float, default=1.0,
                   help="channel multiplier (default %(default)s; e.g. 0.25 on small machines)")
    g.add_argument("--test-clips", type=int, default=None,
                   help="final test: evenly spaced clips per video, scores averaged (default 10 for the 3D CNNs, "
                        "1 for c3d)")
    g.add_argument("--test-crops", type=int, default=1, choices=(1, 3),
                   help="final test: 1 = centre crop, 3 = both ends and the centre of the longer side "
                        "(default %(default)s)")
    g = p.add_argument_group("pretrained weights (--model tsn and the 3D CNNs)")
    g.add_argument("--weights", default="none",
                   help="none, imagenet (tsn, c2d_nl, i3d_nl), a local .h5 / .weights.h5, or a 3D-ResNets-PyTorch "
                        ".pth (r3d, r2plus1d, ...) (default %(default)s)")


def validate_paper(args):
    if not 0 <= args.dropout < 1:
        raise UsageError(f"--dropout must be in [0, 1), got {args.dropout}")


def check_tt_frames(label, spec, store, modes_key, frames=1, dataset=None):
    """UsageError (before TensorFlow starts) when the store's frames do not factor into the paper's TT input modes
    `PAPER_SHAPES[dataset][modes_key]` (`dataset` default `spec.name`; `frames` frames folded into them: the
    TT-MLP's 6); `label` names the model in the message."""
    from ttrnn.models.shapes import PAPER_SHAPES, check_frame_shape
    dataset = dataset or spec.name
    if dataset not in PAPER_SHAPES:
        return
    shapes = PAPER_SHAPES[dataset]
    width, height = int(store.attrs["width"]), int(store.attrs["height"])
    try:
        check_frame_shape((height, width, 3), shapes[modes_key], frames)
    except ValueError:
        w, h = shapes["frame_size"]
        folded = f"{frames} frames of " if frames > 1 else ""
        raise UsageError(f"{store.path} holds {width}x{height} frames, but {label} on {spec.name} needs {w}x{h} "
                         f"(its TT input modes {'x'.join(map(str, shapes[modes_key]))} factor {folded}{w}x{h}x3); "
                         f"preprocess the videos with --size {w}x{h}, or train a model without TT") from None


def check_input_kind(fam, args, store):
    """UsageError (before TensorFlow starts) when a feature store (per-frame CNN features, `FrameStore.features`)
    meets a family that trains on frames only: every family but the rnn one (`FEATURES = True` in its module)."""
    features = getattr(store, "features", None)
    if features is not None and not getattr(fam, "FEATURES", False):
        raise UsageError(f"{store.path} is a feature store ({features.get('backbone')} features); --model "
                         f"{args.model} trains on frames: give its frame store, or train --model gru|lstm on the "
                         "features")


def check_crop(args, spec, store):
    """UsageError (before TensorFlow starts) when the store's frames are smaller than the --crop box."""
    width, height = int(store.attrs["width"]), int(store.attrs["height"])
    if min(width, height) < args.crop:
        raise UsageError(f"{store.path} holds {width}x{height} frames, smaller than --crop {args.crop}")


def any_frames(args, spec, store):
    """Every frame size feeds the model (it resizes or pools): nothing to check."""


def validate_clips(args):
    positive(args, "clip_len", "crop")
    if args.test_clips is not None and args.test_clips < 1:
        raise UsageError(f"--test-clips must be >= 1, got {args.test_clips}")
    if not args.width > 0:
        raise UsageError(f"--width must be > 0, got {args.width}")


def clip_input_spec(args):
    """Fixed-length clips: random `clip_len` windows and `crop` boxes in training, the centre view in evaluation."""
    from ttrnn.data import InputSpec
    return InputSpec("c3d", max_len=args.max_len, num_frames=args.clip_len, crop=args.crop)


def clip_test_views(args, default_clips):
    """(clips, crops) per video of the final test."""
    return (args.test_clips if args.test_clips is not None else default_clips), args.test_crops


def positive(args, *names):
    """UsageError unless every named integer option is >= 1."""
    for name in names:
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")


# --- the interface's usual answers, for the families that have nothing more to say --------------------------------
def no_group(p):
    """add_args of a family without options of its own (it reads shared ones only)."""


def not_a_paper_model(label):
    """parse_label of a family the paper has no rows for."""
    return None


def nothing_frozen(model, args, epoch, start):
    """freeze of a family whose weights all train from the first epoch: the trainable set never changes."""
    return False


def one_view(args):
    """test_views of a family tested as it is evaluated every epoch: one view per clip."""
    return 1, 1
