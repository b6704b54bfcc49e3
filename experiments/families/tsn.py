"""The tsn family: Temporal Segment Networks over a keras.applications backbone (the baselines' table).

Reference: Wang et al., "Temporal Segment Networks: Towards Good Practices for Deep Action Recognition", ECCV 2016
(segments sampled over the whole video, a shared 2D backbone, average consensus).

Run label: `tsn_<backbone>`. `--freeze-epochs N` keeps the backbone frozen for the first N epochs.
"""
from experiments.families import shared
from ttrnn.cli import UsageError

MODELS = ("tsn",)
TABLE = "baselines"
OPTIONS = ("backbone", "segments", "freeze_epochs", "weights")
parse_label = shared.not_a_paper_model
test_views = shared.one_view
check_store = shared.any_frames


def add_args(p):
    g = p.add_argument_group("TSN (--model tsn)")
    g.add_argument("--backbone", default="resnet50", help="keras.applications name (default %(default)s)")
    g.add_argument("--segments", type=int, default=3, help="segments (default %(default)s; 7 as PaddleVideo's table)")
    g.add_argument("--freeze-epochs", type=int, default=0,
                   help="keep the backbone frozen this many epochs (default %(default)s)")


def validate(args):
    shared.positive(args, "segments")
    if args.freeze_epochs < 0:
        raise UsageError(f"--freeze-epochs must be >= 0, got {args.freeze_epochs}")


def label(args):
    return f"tsn_{args.backbone}"


def input_spec(args):
    from ttrnn.data import InputSpec
    return InputSpec("tsn", max_len=args.max_len, num_frames=args.segments)


def build(args, spec, store):
    from ttrnn import baselines
    return baselines.tsn(len(store.classes), backbone=args.backbone, num_segments=args.segments,
                         weights=None if args.weights == "none" else args.weights,
                         activation="sigmoid" if spec.multilabel else "softmax")


def freeze(model, args, epoch, start):
    """The backbone is frozen from the first epoch run (`start`) until --freeze-epochs, then trained.
    -> whether the trainable set changed (the train step must then be rebuilt)."""
    if args.freeze_epochs <= 0 or epoch not in (start, args.freeze_epochs):
        return False
    from ttrnn.baselines import set_backbone_trainable
    set_backbone_trainable(model, epoch >= args.freeze_epochs)
    return True

