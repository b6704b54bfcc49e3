"""The rnn family: TT-RNN (TT-GRU, TT-LSTM), the same cells over the other kernel formats (tr, bt, cp, ht), and the
plain GRU / LSTM, on the paper's per-dataset shapes (`ttrnn.models.PAPER_SHAPES`).

Run labels: `gru`, `lstm` (plain), `<format>_<cell>` (tensorized: tt_gru, tr_lstm, ...).
"""
from experiments.families import shared
from ttrnn.cli import UsageError
from ttrnn.formats import FORMAT_NAMES  # Keras-free: the CLIs check their input before TensorFlow

MODELS = ("gru", "lstm")
TABLE = "paper"           # tables: the paper's rows (gru, lstm, tt_gru, tt_lstm) and the formats' table
OPTIONS = ("use_tt", "decomposition", "rank", "blocks", "frame_skip", "sample_frames", "preset",
           "projection_dtype", "recurrent_dropout") + shared.PAPER_OPTIONS
freeze = shared.nothing_frozen
test_views = shared.one_view


def add_args(p):
    g = p.add_argument_group("TT-RNN, GRU, LSTM (--model gru|lstm)")
    g.add_argument("--use-tt", action="store_true",
                   help="TT input-to-hidden layer (TT-GRU, TT-LSTM); same as --decomposition tt")
    g.add_argument("--decomposition", default=None, choices=FORMAT_NAMES,
                   help="tensorized input-to-hidden layer on the paper's modes: tt (TT-RNN), tr (tensor ring), bt "
                        "(block-term Tucker), cp, ht (hierarchical Tucker) (docs/layers.md)")
    g.add_argument("--rank", default=None,
                   help="ranks of the tensorized layer: one int R, or a comma list in the format's layout "
                        "(default: tt the paper's 4, others ttrnn.formats.DEFAULT_RANKS, ~3.3k parameters)")
    g.add_argument("--blocks", type=int, default=None, help="bt: number of block terms (default 2)")
    g.add_argument("--frame-skip", type=int, default=1, help="use every K-th stored frame (default %(default)s)")
    g.add_argument("--sample-frames", type=int, default=None,
                   help="K frames per clip, drawn at random and kept in order in training, evenly spaced in "
                        "evaluation (the BT-LSTM / TR-LSTM code used 6); default: the first --max-len")
    g.add_argument("--preset", default="modern", choices=("paper", "modern"),
                   help="paper: the original code's activations, gate order and initialization; modern: sigmoid, "
                        "reset_after GRU, TT-aware Glorot init (default %(default)s)")
    g.add_argument("--projection-dtype", default="float32", choices=("float32", "bfloat16"),
                   help="tensorized layers: dtype of the first contraction (bfloat16: faster on CPUs with "
                        "AVX512-BF16 or AMX, 8-bit mantissa; docs/performance.md) (default %(default)s)")
    g.add_argument("--recurrent-dropout", type=float, default=0.25,
                   help="recurrent dropout (default %(default)s, the original's)")


def parse_rank(text):
    """`--rank`: "4" → 4, "1,4,4,4,1" → [1, 4, 4, 4, 1]; UsageError otherwise."""
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise UsageError(f"--rank must be an int or a comma list of ints, got {text!r}") from None
    if any(v < 1 for v in values):
        raise UsageError(f"--rank entries must be >= 1, got {text!r}")
    return values[0] if len(values) == 1 else values


def validate(args):
    """Check the rnn options and normalize them in place: --decomposition implies --use-tt, --rank parsed."""
    if args.decomposition is not None:
        args.use_tt = True
    if args.rank is not None:
        if not args.use_tt:
            raise UsageError("--rank applies to a tensorized gru/lstm (--decomposition or --use-tt)")
        args.rank = parse_rank(args.rank)
    if args.blocks is not None and (args.decomposition != "bt" or args.blocks < 1):
        raise UsageError(f"--blocks N (N >= 1) applies to --decomposition bt only, got {args.blocks}")
    if args.sample_frames is not None and args.sample_frames < 1:
        raise UsageError(f"--sample-frames must be >= 1, got {args.sample_frames}")
    shared.positive(args, "frame_skip")
    shared.validate_paper(args)
    if not 0 <= args.recurrent_dropout < 1:
        raise UsageError(f"--recurrent-dropout must be in [0, 1), got {args.recurrent_dropout}")
    if args.projection_dtype != "float32" and not args.use_tt:
        raise UsageError("--projection-dtype applies to TT-GRU / TT-LSTM (--model gru|lstm --use-tt)")


def check_store(args, spec, store):
    """A tensorized kernel (any format) factors the paper's input modes: the store's frames must match them."""
    if args.use_tt:
        shared.check_tt_frames(label(args), spec, store, "tt_input_shape")


def label(args):
    """gru, lstm, or <format>_<cell> (tt_gru, bt_lstm, ...)."""
    if not args.use_tt:
        return args.model
    return f"{args.decomposition or 'tt'}_{args.model}"


def parse_label(label):
    """Run label -> paper_model's arguments (model, use_tt, decomposition), or None when not of this family."""
    fmt, _, cell = label.rpartition("_")
    if label in MODELS:
        return {"model": label, "use_tt": False}
    if cell in MODELS and fmt in FORMAT_NAMES:
        return {"model": cell, "use_tt": True, "decomposition": fmt}
    return None


def input_spec(args):
    from ttrnn.data import InputSpec
    if args.sample_frames:     # K ordered frames, random in training, evenly spaced in evaluation
        return InputSpec("mlp", max_len=args.max_len, num_frames=args.sample_frames)
    return InputSpec("sequence", max_len=args.max_len, frame_skip=args.frame_skip)


def build(args, spec, store):
    """The paper's (tensorized) GRU / LSTM for this dataset, sized to the store's frames and classes."""
    from ttrnn import models
    try:
        return models.paper_model(spec.name, args.model, len(store.classes), use_tt=args.use_tt,
                                  preset=args.preset, frame_shape=frame_shape(store), multilabel=spec.multilabel,
                                  scaling=args.scaling, dropout=args.dropout,
                                  recurrent_dropout=args.recurrent_dropout, projection_dtype=args.projection_dtype,
                                  decomposition=args.decomposition or "tt", ranks=args.rank, blocks=args.blocks)
    except ValueError as exc:          # e.g. a --rank list of the wrong length for the format
        raise UsageError(f"--decomposition/--rank/--blocks: {exc}") from None


def frame_shape(store):
    """(H, W, 3) of the store's frames."""
    return int(store.attrs["height"]), int(store.attrs["width"]), 3

