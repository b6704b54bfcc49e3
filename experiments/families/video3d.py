"""The video3d family: the 3D CNN baselines (the baselines' table), their options, labels, input clips and builders.

    --model r3d|r2plus1d|preact_r3d|wide_r3d|resnext3d|densenet3d|c2d_nl|i3d_nl  [--depth D] [--width W]
            [--clip-len 16] [--crop 112] [--test-clips 10] [--test-crops 1|3] [--weights none|imagenet|PATH]
            [--input-norm auto|unit|kinetics|activitynet|0.5] [--value-scale 1] [--no-mean-norm] [--no-std-norm]
            [--ft-begin-module conv1|layer1..layer4|fc (densenet: denseblock1..4, transition1..3, norm5, classifier)]

`--weights PATH.pth` loads a 3D-ResNets-PyTorch checkpoint (`ttrnn.baselines.load_torch_checkpoint`); the model
then normalizes its uint8 input as that repository does (`--input-norm auto`: Kinetics mean/std for a .pth, the
[-1, 1] scaling otherwise). `--ft-begin-module` freezes everything before that module, BatchNorm included, as its
`--ft_begin_module`.

Training clips are random `clip-len` windows and random `crop`×`crop` boxes (3D-ResNets-PyTorch's 16×112×112); each
epoch's evaluation uses the centre view, and the final test uses `--test-clips` evenly spaced windows ×
`--test-crops` crops per video with the views' scores averaged (3D-ResNets: clips per video; video-nonlocal-net:
10 clips × 3 crops). TensorFlow is imported only by `build` (through ttrnn.baselines).

References: Hara, Kataoka, Satoh, "Can Spatiotemporal 3D CNNs Retrace the History of 2D CNNs and ImageNet?", CVPR
2018 (3D-ResNets-PyTorch: r3d, preact_r3d, wide_r3d, resnext3d, densenet3d); Tran et al., "A Closer Look at
Spatiotemporal Convolutions for Action Recognition", CVPR 2018 (R(2+1)D); Wang, Girshick, Gupta, He, "Non-local
Neural Networks", CVPR 2018 (c2d_nl, i3d_nl; video-nonlocal-net).
"""
from experiments.families import shared
from ttrnn.cli import UsageError

# --model → (builder in ttrnn.baselines, default depth, depths offered)
BUILDERS = {
    "r3d": ("resnet3d", 18, (10, 18, 34, 50, 101, 152, 200)),
    "r2plus1d": ("r2plus1d", 18, (10, 18, 34, 50, 101, 152, 200)),
    "preact_r3d": ("preact_resnet3d", 18, (10, 18, 34, 50, 101, 152, 200)),
    "wide_r3d": ("wide_resnet3d", 50, (50, 101, 152, 200)),
    "resnext3d": ("resnext3d", 101, (50, 101, 152, 200)),
    "densenet3d": ("densenet3d", 121, (121, 169, 201, 264)),
    "c2d_nl": ("c2d_resnet50", 50, (50,)),
    "i3d_nl": ("i3d_resnet50", 50, (50,)),
}
MODELS = tuple(BUILDERS)
NONLOCAL = ("c2d_nl", "i3d_nl")
DEFAULT_TEST_CLIPS = 10
NORMS = ("kinetics", "activitynet", "0.5")   # mean.py's datasets
TORCH_FAMILIES = tuple(m for m in MODELS if m not in NONLOCAL)   # 3D-ResNets-PyTorch's families
TABLE = "baselines"
OPTIONS = ("depth", "nonlocal_blocks", "weights", "input_norm", "value_scale", "no_mean_norm", "no_std_norm",
           "ft_begin_module") + shared.CLIP_OPTIONS
parse_label = shared.not_a_paper_model
freeze = shared.nothing_frozen
check_store = shared.check_crop
input_spec = shared.clip_input_spec


def add_args(p):
    g = p.add_argument_group(f"3D CNNs (--model {'|'.join(MODELS)})")
    g.add_argument("--depth", type=int, default=None,
                   help="network depth (default r3d/r2plus1d/preact_r3d 18, wide_r3d 50, resnext3d 101, "
                        "densenet3d 121; c2d_nl/i3d_nl are ResNet-50)")
    g.add_argument("--nonlocal-blocks", type=int, default=5, choices=(0, 5, 10),
                   help="c2d_nl/i3d_nl: non-local blocks in res3+res4 (default %(default)s as the paper's, 0 = the "
                        "plain baseline)")
    g.add_argument("--input-norm", default="auto", choices=("auto", "unit") + NORMS,
                   help="input normalization; auto = 3D-ResNets-PyTorch's (mean.py: pixel/255, Kinetics mean/std) "
                        "with --weights PATH.pth, else unit ([-1, 1]) (default %(default)s)")
    g.add_argument("--value-scale", type=float, default=1.0,
                   help="--input-norm kinetics|activitynet|0.5: the reference's --value_scale (default %(default)s)")
    g.add_argument("--no-mean-norm", action="store_true", help="the reference's --no_mean_norm")
    g.add_argument("--no-std-norm", action="store_true", help="the reference's --no_std_norm")
    g.add_argument("--ft-begin-module", default="",
                   help="train from this module of the reference on (conv1, layer1..layer4, fc; DenseNet: conv1, "
                        "norm1, denseblockN, transitionN, norm5, classifier), everything before it frozen, "
                        "BatchNorm statistics included (3D-ResNets-PyTorch's --ft_begin_module)")


def depth(args):
    return args.depth if args.depth is not None else BUILDERS[args.model][1]


def label(args):
    """Run label, e.g. r3d18, r2plus1d18, wide_r3d50, c2d_nl5 (plus _w0.25 below full width)."""
    name = f"{args.model}{args.nonlocal_blocks}" if args.model in NONLOCAL else f"{args.model}{depth(args)}"
    return name + ("" if args.width == 1.0 else f"_w{args.width:g}")


def validate(args):
    """UsageError (one line) for options that do not fit the model."""
    if depth(args) not in BUILDERS[args.model][2]:
        raise UsageError(f"--depth {depth(args)} is not offered for {args.model} "
                         f"(choose from {', '.join(map(str, BUILDERS[args.model][2]))})")
    shared.validate_clips(args)
    if args.weights == "imagenet" and args.model not in NONLOCAL:
        raise UsageError(f"--weights imagenet inflates ResNet-50 into c2d_nl / i3d_nl; {args.model} takes none, "
                         "a Keras weights file or a 3D-ResNets-PyTorch .pth")
    validate_reference_options(args)


def is_torch_checkpoint(args):
    return str(args.weights).endswith((".pth", ".pt", ".pth.tar"))


def validate_reference_options(args):
    """The .pth / normalization / fine-tuning options; resolves `--input-norm auto` in `args` (config.json then
    records the normalization used)."""
    torch_file = is_torch_checkpoint(args)
    reference = args.model in TORCH_FAMILIES
    if torch_file and not reference:
        raise UsageError(f"--weights {args.weights}: 3D-ResNets-PyTorch checkpoints load into "
                         f"{', '.join(TORCH_FAMILIES)}, not {args.model}")
    if args.input_norm == "auto":
        args.input_norm = "kinetics" if torch_file else "unit"
    custom = args.value_scale != 1.0 or args.no_mean_norm or args.no_std_norm
    if (args.input_norm != "unit" or custom) and not reference:
        raise UsageError(f"--input-norm / --value-scale / --no-*-norm apply to {', '.join(TORCH_FAMILIES)}")
    if custom and args.input_norm == "unit":
        raise UsageError("--value-scale / --no-mean-norm / --no-std-norm need --input-norm kinetics|activitynet|0.5")
    if not args.value_scale > 0:
        raise UsageError(f"--value-scale must be > 0, got {args.value_scale}")
    if args.ft_begin_module and not reference:   # the module name itself is checked by `build` (ttrnn, TF)
        raise UsageError(f"--ft-begin-module applies to {', '.join(TORCH_FAMILIES)}, not {args.model}")


def normalization(args):
    """The builders' `normalization` for the resolved --input-norm."""
    if args.input_norm == "unit":
        return "unit"
    from ttrnn.baselines.video import reference_normalization
    return reference_normalization(args.input_norm, args.value_scale, args.no_mean_norm, args.no_std_norm)


def build(args, spec, store):
    """The uncompiled Keras model for a 3D --model; `--weights PATH` loads Keras weights of the same model or a
    3D-ResNets-PyTorch .pth; `--ft-begin-module` then freezes the modules before it."""
    from ttrnn import baselines
    builder = getattr(baselines, BUILDERS[args.model][0])
    shape = (args.clip_len, args.crop, args.crop, 3)
    num_classes, activation = len(store.classes), "sigmoid" if spec.multilabel else "softmax"
    if args.model in NONLOCAL:
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


def test_views(args):
    """(clips, crops) per video of the final test (default 10 clips x 1 crop, as 3D-ResNets-PyTorch tests)."""
    return shared.clip_test_views(args, DEFAULT_TEST_CLIPS)
