"""The trainer's command line: what a dataset CLI declares (`DatasetSpec`), its parser, the checks of its values, and
the arguments that define what a run computes (`identity`, used to recognize the same command for resume).
Plain Python: nothing here imports TensorFlow.
"""
import json
import sys
from dataclasses import dataclass, field

from experiments import families
from ttrnn.cli import OneLineParser, UsageError
from ttrnn.data.splits import PROTOCOLS

# Arguments that do not change what a run computes; a rerun with different values still resumes.
NON_IDENTITY_ARGS = ("out", "fresh", "workers", "quiet", "intra_op", "inter_op", "threads_preset", "cluster_spec",
                     "worker_index", "gpus", "cluster", "slurm_port_base", "verbose", "no_tensorboard")
# Options added after runs were recorded, with the value that computes what those runs computed: at that value they
# stay out of the identity, so a run recorded before them still resumes and still returns its result.
LATER_OPTIONS = {"recurrent_decomposition": None, "recurrent_rank": None, "integrated": False}


@dataclass
class DatasetSpec:
    """What differs between the paper's datasets (the CLIs in experiments/<name>.py fill one in)."""
    name: str
    stores: tuple                 # FrameStore attrs["dataset"] values this CLI accepts
    lr: float                     # the original code's learning rate
    batch_size: int
    max_len: int
    protocol: str = "paper"
    multilabel: bool = False
    val_fraction: float = 0.0     # held out of the training clips for validation (Hollywood2: 0.15)
    notes: str = ""
    demo: object = None           # callable(args) -> store path, for --demo
    demo_defaults: dict = field(default_factory=dict)
    defaults: dict = field(default_factory=dict)  # option defaults of this CLI (e.g. UCF101: --model r3d)
    split: object = None          # callable(store, protocol, fold) -> ttrnn.data.splits.Split; default make_split


def build_parser(spec):
    """The dataset CLI's parser: the run's options, then one argument group per model family (--help)."""
    p = OneLineParser(prog=f"python -m experiments.{spec.name}",
                      usage="%(prog)s (--data STORE.h5 | --demo) [--model MODEL] [options of its group below]",
                      description=f"Train a model on {spec.name} from a ttrnn frame store (or a feature store of "
                                  f"per-frame CNN features: --model gru|lstm). {spec.notes}")
    g = p.add_argument_group("data and run")
    g.add_argument("--data", metavar="STORE.h5",
                   help="frame store made by `python -m preprocess.<layout>`, or a feature store made from one by "
                        "`python -m experiments.features` (the rnn family's models then run over the features)")
    demo = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
                    for k, v in spec.demo_defaults.items())
    g.add_argument("--demo", action="store_true",
                   help="no dataset needed: generate synthetic videos once (cached), preprocess them and train; "
                        f"sets {demo} (options given win)")
    g.add_argument("--model", default="gru",
                   help=f"one of {', '.join(families.MODEL_CHOICES)} (default %(default)s); its options are in "
                        "its group below")
    g.add_argument("--max-len", type=int, default=spec.max_len,
                   help="keep the first N frames (feature vectors on a feature store) of each clip (default "
                        "%(default)s, the original's)")
    g.add_argument("--protocol", default=spec.protocol, choices=PROTOCOLS,
                   help="paper: the original random 5-fold split (seed 11111986); logo: leave-one-group-out; "
                        "store: the store's own split lists; holdout: one random 20%% test split seeded by "
                        "--fold (the BT-LSTM / TR-LSTM code's) (default %(default)s)")
    g.add_argument("--fold", type=int, default=0,
                   help="fold (paper), held-out group index (logo) or split index (default %(default)s)")
    g.add_argument("--seed", type=int, default=0,
                   help="initialization, shuffling and sampling seed (default %(default)s)")
    g.add_argument("--out", default=None, metavar="DIR",
                   help="run directory (default runs/<dataset>-<model>-<timestamp>)")
    g.add_argument("--fresh", action="store_true",
                   help="train anew in a new run directory (default: the same command run again returns its "
                        "finished run's result, or continues its unfinished run after the last saved epoch)")
    g.add_argument("--workers", type=int, default=None,
                   help="reader processes (default: none with 2 cores or fewer, else one per core, at most 4; "
                        "0 = read in the main process)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.add_argument("--no-tensorboard", action="store_true",
                   help="do not write TensorBoard event files (default: <run dir>/tensorboard/)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=100, help="training epochs (default %(default)s; the original "
                                                           "code's: UCF11 1,001, Hollywood2 501, Celebrities 101)")
    g.add_argument("--batch-size", type=int, default=spec.batch_size, help="global batch (default %(default)s)")
    g.add_argument("--lr", type=float, default=None,
                   help=f"learning rate of Adam or SGD (default {spec.lr:g}, the original code's)")
    g.add_argument("--optimizer", default="adam", choices=("adam", "sgd"),
                   help="adam (the paper's); sgd = momentum 0.9, weight decay 1e-4, lr x0.1 at 1/3 and 2/3 of "
                        "the epochs (the TSN recipe) (default %(default)s)")
    g.add_argument("--patience", type=int, default=0,
                   help="early stopping: stop after N epochs without a better monitored loss (default 0 = off)")
    g.add_argument("--no-bucket", action="store_true", help="disable length bucketing (pad to the longest clip)")
    families.add_args(p)
    import tf_config.cluster
    import tf_config.console
    import tf_config.threads
    tf_config.console.add_console_args(p)
    tf_config.threads.add_thread_args(p)
    tf_config.cluster.add_cluster_args(p)
    return p


def family_of(args):
    """The model family module of this run (experiments.families)."""
    return families.family(args.model)


def model_label(args):
    """Run label: tt_gru, bt_lstm, gru, tt_mlp, tsn_resnet50, c3d, r3d18, ... (the family's)."""
    return family_of(args).label(args)


def identity(args):
    """The arguments that define what a run computes (used to recognize the same run for resume), as JSON values."""
    ident = {k: v for k, v in sorted(vars(args).items())
             if k not in NON_IDENTITY_ARGS and not (k in LATER_OPTIONS and v == LATER_OPTIONS[k])}
    return json.loads(json.dumps(ident, default=str))


def family_args(args, fam):
    """The options that apply to this run: the trainer's and its family's (config.json's "args")."""
    return {k: v for k, v in vars(args).items() if k not in families.FAMILY_OPTIONS or k in fam.OPTIONS}


def command_line(spec, argv):
    """The command that ran (config.json and metrics.json "command")."""
    return " ".join([sys.executable, "-m", f"experiments.{spec.name}"] + list(argv))


def validate(args, spec, parser):
    """The run's options: the trainer's own, then the family's (which may normalize args in place); an option of
    another family set away from its default is refused."""
    fam = family_of(args)
    families.check_applies(args, parser, fam)
    for name in ("max_len", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.lr is not None and not args.lr > 0:
        raise UsageError(f"--lr must be > 0, got {args.lr}")
    if args.fold < 0:
        raise UsageError(f"--fold must be >= 0, got {args.fold}")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    fam.validate(args)
    if not args.demo and not args.data:
        raise UsageError("give --data STORE.h5 (make one with `python -m preprocess.<layout>`) or --demo")
