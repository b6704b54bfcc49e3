"""The trainer's 3D CNN baselines: their command-line options, labels, input clips, builders and multi-view testing.

    --model r3d|r2plus1d|preact_r3d|wide_r3d|resnext3d|densenet3d|c2d_nl|i3d_nl  [--depth D] [--width W]
            [--clip-len 16] [--crop 112] [--test-clips 10] [--test-crops 1|3] [--weights none|imagenet|PATH]
            [--input-norm auto|unit|kinetics|activitynet|0.5] [--value-scale 1] [--no-mean-norm] [--no-std-norm]
            [--ft-begin-module conv1|layer1..layer4|fc (densenet: denseblock1..4, transition1..3, norm5, classifier)]

`--weights PATH.pth` loads a 3D-ResNets-PyTorch checkpoint (`ttrnn.baselines.load_torch_checkpoint`); the model
then normalizes its uint8 input as that repository does (`--input-norm auto`: Kinetics mean/std for a .pth, the
[-1, 1] scaling otherwise). `--ft-begin-module` freezes everything before that module, BatchNorm included, as its
`--ft_begin_module`.

Training clips are random `clip-len` windows and random `crop`×`crop` boxes (the seed repo's 16×112×112); each
epoch's evaluation uses the centre view, and the final test uses `--test-clips` evenly spaced windows ×
`--test-crops` crops per video with the views' scores averaged (3D-ResNets: clips per video; video-nonlocal-net:
10 clips × 3 crops). TensorFlow is imported only by `build` (through ttrnn.baselines).
"""
import numpy as np

# --model → (builder in ttrnn.baselines, default depth, depths offered)
MODELS = {
    "r3d": ("resnet3d", 18, (10, 18, 34, 50, 101, 152, 200)),
    "r2plus1d": ("r2plus1d", 18, (10, 18, 34, 50, 101, 152, 200)),
    "preact_r3d": ("preact_resnet3d", 18, (10, 18, 34, 50, 101, 152, 200)),
    "wide_r3d": ("wide_resnet3d", 50, (50, 101, 152, 200)),
    "resnext3d": ("resnext3d", 101, (50, 101, 152, 200)),
    "densenet3d": ("densenet3d", 121, (121, 169, 201, 264)),
    "c2d_nl": ("c2d_resnet50", 50, (50,)),
    "i3d_nl": ("i3d_resnet50", 50, (50,)),
}
DEFAULT_TEST_CLIPS = 10
NORMS = ("kinetics", "activitynet", "0.5")   # mean.py's datasets
TORCH_FAMILIES = tuple(m for m in MODELS if m not in ("c2d_nl", "i3d_nl"))   # 3D-ResNets-PyTorch's families


def add_args(p):
    """The 3D CNN options on the trainer's parser."""
    p.add_argument("--depth", type=int, default=None,
                   help="3D CNNs: network depth (default r3d/r2plus1d/preact_r3d 18, wide_r3d 50, resnext3d 101, "
                        "densenet3d 121; c2d_nl/i3d_nl are ResNet-50)")
    p.add_argument("--clip-len", type=int, default=16, help="3D CNNs: frames per clip (default 16, the seed repo's)")
    p.add_argument("--crop", type=int, default=112, help="3D CNNs: square crop in pixels (default 112)")
    p.add_argument("--test-clips", type=int, default=None,
                   help=f"final test: evenly spaced clips per video, scores averaged (default {DEFAULT_TEST_CLIPS} "
                        "for the 3D CNNs, 1 for c3d)")
    p.add_argument("--test-crops", type=int, default=1, choices=(1, 3),
                   help="final test: 1 = centre crop, 3 = both ends and the centre of the longer side")
    p.add_argument("--input-norm", default="auto", choices=("auto", "unit") + NORMS,
                   help="3D CNNs: input normalization; auto = 3D-ResNets-PyTorch's (mean.py: pixel/255, Kinetics "
                        "mean/std) with --weights PATH.pth, else unit ([-1, 1])")
    p.add_argument("--value-scale", type=float, default=1.0,
                   help="3D CNNs, --input-norm kinetics|activitynet|0.5: the reference's --value_scale (default 1)")
    p.add_argument("--no-mean-norm", action="store_true", help="3D CNNs: the reference's --no_mean_norm")
    p.add_argument("--no-std-norm", action="store_true", help="3D CNNs: the reference's --no_std_norm")
    p.add_argument("--ft-begin-module", default="",
                   help="3D CNNs: train from this module of the reference on (conv1, layer1..layer4, fc; DenseNet: "
                        "conv1, norm1, denseblockN, transitionN, norm5, classifier), everything before it frozen, "
                        "BatchNorm statistics included (3D-ResNets-PyTorch's --ft_begin_module)")
    p.add_argument("--nonlocal-blocks", type=int, default=5, choices=(0, 5, 10),
                   help="c2d_nl/i3d_nl: non-local blocks in res3+res4 (5 as the paper's, 0 = the plain baseline)")


def is_3d(args):
    return args.model in MODELS


def uses_clips(args):
    """Models fed fixed-length 3D clips (the new families and C3D)."""
    return args.model in MODELS or args.model == "c3d"


def test_views(args):
    """(clips, crops) of the final test."""
    clips = args.test_clips if args.test_clips is not None else (DEFAULT_TEST_CLIPS if is_3d(args) else 1)
    return clips, args.test_crops


def depth(args):
    return args.depth if args.depth is not None else MODELS[args.model][1]


def label(args):
    """Run label, e.g. r3d18, r2plus1d18, wide_r3d50, c2d_nl5 (plus _w0.25 below full width)."""
    name = args.model + ("" if args.model in ("c2d_nl", "i3d_nl") else str(depth(args)))
    if args.model in ("c2d_nl", "i3d_nl"):
        name = f"{args.model}{args.nonlocal_blocks}"
    return name + ("" if args.width == 1.0 else f"_w{args.width:g}")


def validate(args):
    """Raise ValueError (one line) for options that do not fit the model."""
    if is_3d(args) and depth(args) not in MODELS[args.model][2]:
        raise ValueError(f"--depth {depth(args)} is not offered for {args.model} "
                         f"(choose from {', '.join(map(str, MODELS[args.model][2]))})")
    if args.depth is not None and not is_3d(args):
        raise ValueError(f"--depth applies to the 3D CNNs ({', '.join(MODELS)}), not {args.model}")
    for name in ("clip_len", "crop"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.test_clips is not None and args.test_clips < 1:
        raise ValueError(f"--test-clips must be >= 1, got {args.test_clips}")
    if (args.test_clips not in (None, 1) or args.test_crops != 1) and not uses_clips(args):
        raise ValueError("--test-clips / --test-crops apply to the 3D CNNs and c3d")
    if not args.width > 0:
        raise ValueError(f"--width must be > 0, got {args.width}")
    if args.weights == "imagenet" and is_3d(args) and args.model not in ("c2d_nl", "i3d_nl"):
        raise ValueError(f"--weights imagenet inflates ResNet-50 into c2d_nl / i3d_nl; {args.model} takes none, "
                         "a Keras weights file or a 3D-ResNets-PyTorch .pth")
    validate_reference_options(args)


def is_torch_checkpoint(args):
    return str(args.weights).endswith((".pth", ".pt", ".pth.tar"))


def validate_reference_options(args):
    """The .pth / normalization / fine-tuning options; resolves `--input-norm auto` in `args` (config.json then
    records the normalization used)."""
    torch_file = is_torch_checkpoint(args)
    reference = is_3d(args) and args.model in TORCH_FAMILIES
    if torch_file and not reference:
        raise ValueError(f"--weights {args.weights}: 3D-ResNets-PyTorch checkpoints load into "
                         f"{', '.join(TORCH_FAMILIES)}, not {args.model}")
    if args.input_norm == "auto":
        args.input_norm = "kinetics" if torch_file else "unit"
    custom = args.value_scale != 1.0 or args.no_mean_norm or args.no_std_norm
    if (args.input_norm != "unit" or custom) and not reference:
        raise ValueError(f"--input-norm / --value-scale / --no-*-norm apply to {', '.join(TORCH_FAMILIES)}")
    if custom and args.input_norm == "unit":
        raise ValueError("--value-scale / --no-mean-norm / --no-std-norm need --input-norm kinetics|activitynet|0.5")
    if not args.value_scale > 0:
        raise ValueError(f"--value-scale must be > 0, got {args.value_scale}")
    if args.ft_begin_module and not reference:   # the module name itself is checked by `build` (ttrnn, TF)
        raise ValueError(f"--ft-begin-module applies to {', '.join(TORCH_FAMILIES)}, not {args.model}")


def normalization(args):
    """The builders' `normalization` for the resolved --input-norm."""
    if args.input_norm == "unit":
        return "unit"
    from ttrnn.baselines.video import reference_normalization
    return reference_normalization(args.input_norm, args.value_scale, args.no_mean_norm, args.no_std_norm)


def input_spec(args):
    from ttrnn.data import InputSpec
    return InputSpec("c3d", max_len=args.max_len, num_frames=args.clip_len, crop=args.crop)


def build(args, num_classes, activation):
    """The uncompiled Keras model for a 3D --model; `--weights PATH` loads Keras weights of the same model or a
    3D-ResNets-PyTorch .pth; `--ft-begin-module` then freezes the modules before it."""
    from ttrnn import baselines
    builder = getattr(baselines, MODELS[args.model][0])
    shape = (args.clip_len, args.crop, args.crop, 3)
    if args.model in ("c2d_nl", "i3d_nl"):
        model = builder(num_classes, nonlocal_blocks=args.nonlocal_blocks, width=args.width, input_shape=shape,
                        activation=activation, weights="imagenet" if args.weights == "imagenet" else None)
    else:
        model = builder(depth(args), num_classes, widen_factor=args.width, input_shape=shape, activation=activation,
                        normalization=normalization(args))
    if is_torch_checkpoint(args):
        baselines.load_torch_checkpoint(model, args.weights)
    elif args.weights not in ("none", "imagenet"):
        baselines.load_weights(model, args.weights)
    if args.ft_begin_module:
        frozen = baselines.freeze_before(model, args.ft_begin_module)
        print(f"--ft-begin-module {args.ft_begin_module}: {frozen} layers frozen (BatchNorm in inference mode)")
    return model


def evaluate_views(feed, predict, metrics_fn, multilabel):
    """Score every view of `feed` (a `ttrnn.data.MultiViewFeed`) with `predict(x) -> probs`, average per video.

    Returns (per-video loss, per-video metrics, protocol fields for metrics.json with the per-clip accuracy).
    """
    ys, ps = [], []
    for x, y in feed.batches(0):
        ps.append(predict(x))
        ys.append(y)
    view_probs, view_y = np.concatenate(ps), np.concatenate(ys)
    probs = feed.video_scores(view_probs)
    y = feed.video_targets
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    if multilabel:
        loss = float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)))
    else:
        loss = float(np.mean(-np.sum(y * np.log(p), axis=1)))
    video = metrics_fn(y, probs, multilabel)
    per_clip = metrics_fn(view_y, view_probs, multilabel)
    protocol = {
        "test_protocol": {"clips_per_video": feed.clips, "crops_per_clip": feed.crops, "views_per_video": feed.views,
                          "clip_len": feed.spec.num_frames, "crop": feed.spec.crop,
                          "windows": "evenly spaced, first to last frame",
                          "crops": "centre" if feed.crops == 1 else "both ends and centre of the longer side",
                          "scores": "mean of the views' probabilities per video"},
        "clip_accuracy": per_clip["accuracy"], "video_accuracy": video["accuracy"],
        "num_test_views": int(len(view_y)),
    }
    return loss, video, protocol
