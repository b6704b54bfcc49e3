"""The rnn family: TT-RNN (TT-GRU, TT-LSTM), the same cells over the other kernel formats (tr, bt, cp, ht), and the
plain GRU / LSTM, on the paper's per-dataset shapes (`ttrnn.models.PAPER_SHAPES`; datasets the paper did not use,
UCF101 and HMDB51, take UCF11's: 160x120 frames).

On a feature store (per-frame CNN features, `FrameStore.features`) the same models run over the features
(`ttrnn.models.feature_classifier`): input modes that factor the feature width (`--input-modes`, default
`ttrnn.models.feature_input_modes`), the paper's 4x4x4x4 = 256 hidden units. This is the only family that trains on
feature stores (`FEATURES`).

Run labels: `gru`, `lstm` (plain), `<format>_<cell>` (tensorized input kernel: tt_gru, tr_lstm, ...), then a
suffix for what else is factorized:
    <format>_<cell>_fd               the recurrent kernel too, in the same format (fully decomposed: tt_lstm_fd)
    <format>_<cell>_fd_<rformat>     the recurrent kernel in another format (tt_gru_fd_ht)
    <format>_<cell>_integrated       one factorized matrix over [x_t, h_{t-1}] for all gates (integrate-then-
                                     decompose; ht_lstm_integrated is FDHT-LSTM)
"""
from experiments.families import shared
from ttrnn.cli import UsageError
from ttrnn.formats import FORMAT_NAMES  # Keras-free: the CLIs check their input before TensorFlow

MODELS = ("gru", "lstm")
TABLE = "paper"           # tables: the paper's rows (gru, lstm, tt_gru, tt_lstm) and the formats' table
OPTIONS = ("use_tt", "decomposition", "rank", "blocks", "frame_skip", "sample_frames", "preset",
           "projection_dtype", "recurrent_dropout", "recurrent_decomposition", "recurrent_rank",
           "integrated", "input_modes", "input_scale") + shared.PAPER_OPTIONS
FULLY_DECOMPOSED = "fd"          # label suffixes (module docstring)
INTEGRATED = "integrated"
FEATURES = True           # trains on feature stores too (the trainer refuses them to the other families)
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
    g.add_argument("--recurrent-decomposition", default=None, choices=FORMAT_NAMES, metavar="FORMAT",
                   help="also the hidden-to-hidden kernel in a format (fully decomposed), on the paper's hidden "
                        "modes: one of " + ", ".join(FORMAT_NAMES) + "; needs --decomposition or --use-tt; run "
                        "label <format>_<cell>_fd (same format) or <format>_<cell>_fd_<FORMAT> (default: dense)")
    g.add_argument("--recurrent-rank", default=None,
                   help="ranks of the recurrent kernel's format: an int or a comma list, as --rank (default: the "
                        "format's default ranks)")
    g.add_argument("--integrated", action="store_true",
                   help="integrate-then-decompose (FDHT, Yin et al. CVPR 2021): one matrix over [x_t, h_{t-1}] for "
                        "all gates in the --decomposition format (ht: FDHT-LSTM), on the paper's integrated modes "
                        "(feature stores: --input-modes, default four even modes of width + units); run label "
                        "<format>_<cell>_integrated")
    g.add_argument("--input-modes", default=None, metavar="N1,N2,...",
                   help="feature stores: input modes of the tensorized layer, multiplying to the feature width (with "
                        "--integrated: to at least the width + units) (default: 2048 -> 4,8,8,8, any width F -> four "
                        "balanced modes; docs/training.md)")
    g.add_argument("--input-scale", default="auto", metavar="auto|X",
                   help="feature stores: multiply the features by X before the input kernel (1: as stored), or "
                        "auto (default): by 1 / their RMS over up to 64 training clips, recorded in config.json")


def parse_rank(text, option="--rank"):
    """`--rank` (or `option`): "4" → 4, "1,4,4,4,1" → [1, 4, 4, 4, 1]; UsageError otherwise."""
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise UsageError(f"{option} must be an int or a comma list of ints, got {text!r}") from None
    if any(v < 1 for v in values):
        raise UsageError(f"{option} entries must be >= 1, got {text!r}")
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
    validate_recurrent(args)
    if args.sample_frames is not None and args.sample_frames < 1:
        raise UsageError(f"--sample-frames must be >= 1, got {args.sample_frames}")
    shared.positive(args, "frame_skip")
    shared.validate_paper(args)
    if not 0 <= args.recurrent_dropout < 1:
        raise UsageError(f"--recurrent-dropout must be in [0, 1), got {args.recurrent_dropout}")
    if args.projection_dtype != "float32" and not args.use_tt:
        raise UsageError("--projection-dtype applies to TT-GRU / TT-LSTM (--model gru|lstm --use-tt)")
    if args.input_scale != "auto":
        try:
            args.input_scale = float(args.input_scale)
        except ValueError:
            raise UsageError(f"--input-scale must be auto or a number > 0, got {args.input_scale!r}") from None
        if not args.input_scale > 0:
            raise UsageError(f"--input-scale must be auto or a number > 0, got {args.input_scale}")
    if args.input_modes is not None:
        if not args.use_tt:
            raise UsageError("--input-modes applies to a tensorized gru/lstm (--decomposition or --use-tt)")
        args.input_modes = parse_modes(args.input_modes)


def parse_modes(text):
    """`--input-modes`: "4,8,8,8" -> [4, 8, 8, 8]; UsageError otherwise."""
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise UsageError(f"--input-modes must be a comma list of ints, got {text!r}") from None
    if len(values) < 2 or any(v < 1 for v in values):
        raise UsageError(f"--input-modes needs two or more modes >= 1, got {text!r}")
    return values


def features_of(store):
    """The store's feature description (`FrameStore.features`: backbone, weights, width, ...), None for frames."""
    return getattr(store, "features", None)


def dataset_shapes(spec):
    """The paper's shapes this dataset's frame models use: its own, else UCF11's (UCF101, HMDB51: 160x120)."""
    from ttrnn.models.shapes import PAPER_SHAPES
    return spec.name if spec.name in PAPER_SHAPES else "ucf11"


def validate_recurrent(args):
    """--recurrent-decomposition / --recurrent-rank / --integrated: they factorize the kernels of a tensorized
    layer, so they need --decomposition or --use-tt; the integrated matrix already holds the recurrent weights."""
    if args.recurrent_rank is not None and args.recurrent_decomposition is None:
        raise UsageError("--recurrent-rank applies with --recurrent-decomposition FORMAT")
    if args.integrated and args.recurrent_decomposition is not None:
        raise UsageError("--integrated already factorizes the recurrent weights (one matrix over [x_t, h_t-1]): "
                         "drop --recurrent-decomposition")
    for name, given in (("--recurrent-decomposition", args.recurrent_decomposition is not None),
                        ("--integrated", args.integrated)):
        if given and not args.use_tt:
            raise UsageError(f"{name} applies to a tensorized gru/lstm: add --decomposition FORMAT or --use-tt")
    if args.recurrent_rank is not None:
        args.recurrent_rank = parse_rank(args.recurrent_rank, "--recurrent-rank")


def check_store(args, spec, store):
    """A tensorized kernel (any format) factors the paper's input modes: the store's frames must match them; on a
    feature store, the input modes must multiply to the feature width."""
    features = features_of(store)
    if features is None:
        if args.input_modes is not None:
            raise UsageError(f"--input-modes applies to feature stores; {store.path} holds frames (their modes are "
                             "the paper's)")
        if args.input_scale != "auto":
            raise UsageError(f"--input-scale applies to feature stores; {store.path} holds frames (see --scaling)")
        if args.use_tt:
            shared.check_tt_frames(label(args), spec, store, "tt_input_shape", dataset=dataset_shapes(spec))
        return
    if args.scaling != "paper":
        raise UsageError(f"--scaling applies to frame stores; {store.path} holds CNN features, which the model "
                         "takes as stored")
    if args.use_tt and args.input_modes is not None:
        from ttrnn.models.shapes import FEATURE_OUTPUT_SHAPE, check_feature_modes
        if len(args.input_modes) != len(FEATURE_OUTPUT_SHAPE):
            raise UsageError(f"--input-modes needs {len(FEATURE_OUTPUT_SHAPE)} modes, as many as the hidden modes "
                             f"{'x'.join(map(str, FEATURE_OUTPUT_SHAPE))}, got {len(args.input_modes)}")
        try:
            check_feature_modes(features["width"], args.input_modes)
        except ValueError as exc:
            raise UsageError(f"--input-modes: {exc} of {store.path}") from None


def label(args):
    """gru, lstm, <format>_<cell> (tt_gru, bt_lstm, ...), <format>_<cell>_fd[_<rformat>] (recurrent kernel
    factorized too) or <format>_<cell>_integrated."""
    if not args.use_tt:
        return args.model
    fmt = args.decomposition or "tt"
    base = f"{fmt}_{args.model}"
    if args.integrated:
        return f"{base}_{INTEGRATED}"
    rfmt = args.recurrent_decomposition
    if rfmt is None:
        return base
    return f"{base}_{FULLY_DECOMPOSED}" + ("" if rfmt == fmt else f"_{rfmt}")


def parse_label(label):
    """Run label -> paper_model's arguments (model, use_tt, decomposition[, recurrent_decomposition |
    integrated]), or None when not of this family."""
    if label in MODELS:
        return {"model": label, "use_tt": False}
    parts = str(label).split("_")
    if len(parts) < 2 or parts[0] not in FORMAT_NAMES or parts[1] not in MODELS:
        return None
    args = {"model": parts[1], "use_tt": True, "decomposition": parts[0]}
    rest = parts[2:]
    if not rest:
        return args
    if rest == [INTEGRATED]:
        return {**args, "integrated": True}
    if rest[0] == FULLY_DECOMPOSED and len(rest) <= 2 and (len(rest) == 1 or rest[1] in FORMAT_NAMES):
        return {**args, "recurrent_decomposition": rest[1] if len(rest) == 2 else parts[0]}
    return None


def input_spec(args):
    from ttrnn.data import InputSpec
    if args.sample_frames:     # K ordered frames, random in training, evenly spaced in evaluation
        return InputSpec("mlp", max_len=args.max_len, num_frames=args.sample_frames)
    return InputSpec("sequence", max_len=args.max_len, frame_skip=args.frame_skip)


def build(args, spec, store):
    """The paper's (tensorized) GRU / LSTM for this dataset, sized to the store's frames and classes; over a
    feature store, `feature_classifier` sized to its feature width."""
    from ttrnn import models
    features = features_of(store)
    try:
        if features is not None:
            if args.input_scale == "auto":     # measured once; config.json's args record the number
                args.input_scale = feature_scale(store, train_rows(args, spec, store))
            return models.feature_classifier(len(store.classes), features["width"], cell=args.model,
                                             use_tt=args.use_tt, input_modes=args.input_modes, ranks=args.rank,
                                             preset=args.preset, dropout=args.dropout,
                                             recurrent_dropout=args.recurrent_dropout, multilabel=spec.multilabel,
                                             projection_dtype=args.projection_dtype,
                                             decomposition=args.decomposition or "tt", blocks=args.blocks,
                                             dtype=str(store.dtype), input_scale=args.input_scale,
                                             **recurrent_kwargs(args))
        return models.paper_model(dataset_shapes(spec), args.model, len(store.classes), use_tt=args.use_tt,
                                  preset=args.preset, frame_shape=frame_shape(store), multilabel=spec.multilabel,
                                  scaling=args.scaling, dropout=args.dropout,
                                  recurrent_dropout=args.recurrent_dropout, projection_dtype=args.projection_dtype,
                                  decomposition=args.decomposition or "tt", ranks=args.rank, blocks=args.blocks,
                                  **recurrent_kwargs(args))
    except ValueError as exc:          # e.g. a --rank list of the wrong length for the format
        raise UsageError(f"{format_options(args)}: {exc}") from None


def recurrent_kwargs(args):
    """paper_model's recurrent-kernel arguments of this run; none for a run without them (older runs' configs and
    the models they rebuild stay what they were)."""
    kwargs = {}
    if args.recurrent_decomposition is not None:
        kwargs.update(recurrent_decomposition=args.recurrent_decomposition, recurrent_ranks=args.recurrent_rank)
    if args.integrated:
        kwargs["integrated"] = True
    return kwargs


def format_options(args):
    """The format options a paper_model ValueError is about, for its one-line message."""
    names = ["--decomposition", "--rank", "--blocks"]
    if args.recurrent_decomposition is not None:
        names += ["--recurrent-decomposition", "--recurrent-rank"]
    if args.integrated:
        names.append("--integrated")
    return "/".join(names)


def train_rows(args, spec, store):
    """The run's training clips (the trainer's split, `experiments.trainer.preflight.split_rows`)."""
    from experiments.trainer.preflight import split_rows
    return split_rows(args, spec, store)[1]


def feature_scale(store, rows, clips=64):
    """`--input-scale auto`: 1 / the root mean square of the features of up to `clips` of `rows` (evenly spaced),
    so the input kernel sees features of about unit scale; 1.0 when they are all zero."""
    import numpy as np
    rows = np.asarray(rows)
    picked = rows[np.linspace(0, len(rows) - 1, min(clips, len(rows))).astype(int)] if len(rows) else rows
    total, count = 0.0, 0
    for row in picked:
        x = store.read(int(row)).astype(np.float64)
        total, count = total + float(np.square(x).sum()), count + x.size
    rms = (total / count) ** 0.5 if count else 0.0
    return 1.0 / rms if rms > 0 else 1.0


def frame_shape(store):
    """(H, W, 3) of the store's frames."""
    return int(store.attrs["height"]), int(store.attrs["width"]), 3

