"""The mlp family: the paper's TT-MLP (6 frames folded into the first TT input mode, hidden 4x4x4x4, ranks 4; the
shapes are published nowhere: ttrnn.models.PAPER_SHAPES and the design notes).

Run label: `tt_mlp`. It has no options of its own beyond the paper models' scaling and dropout.
"""
from experiments.families import shared

MODELS = ("mlp",)
TABLE = "paper"
OPTIONS = shared.PAPER_OPTIONS
add_args = shared.no_group            # --scaling and --dropout are the paper models' shared group
freeze = shared.nothing_frozen
test_views = shared.one_view
validate = shared.validate_paper


def check_store(args, spec, store):
    from ttrnn.models.shapes import MLP_FRAMES
    shared.check_tt_frames(label(args), spec, store, "mlp_input_shape", MLP_FRAMES)


def label(args):
    return "tt_mlp"


def parse_label(label):
    """Run label -> paper_model's arguments, or None when not of this family."""
    return {"model": "mlp", "use_tt": False} if label == "tt_mlp" else None


def input_spec(args):
    from ttrnn.data import InputSpec
    from ttrnn.models.shapes import MLP_FRAMES
    return InputSpec("mlp", max_len=args.max_len, num_frames=MLP_FRAMES)


def build(args, spec, store):
    from experiments.families.rnn import frame_shape
    from ttrnn import models
    return models.paper_model(spec.name, "mlp", len(store.classes), frame_shape=frame_shape(store),
                              multilabel=spec.multilabel, scaling=args.scaling, dropout=args.dropout)


