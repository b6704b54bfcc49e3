"""Model families: one module per kind of model, each with the same interface, so the trainer, the tables, the
sweep and the bench look a family up instead of branching on the model name.

    rnn      gru, lstm            TT-RNN and the other kernel formats, plain GRU / LSTM   (paper tables)
    mlp      mlp                  the paper's TT-MLP                                     (paper tables)
    tsn      tsn                  Temporal Segment Networks                              (baselines)
    c3d      c3d                  C3D                                                    (baselines)
    video3d  r3d, r2plus1d, ...   the 3D CNNs and non-local networks                     (baselines)

A family module has:
    MODELS              the --model names it serves
    OPTIONS             the option names (argparse dests) it reads, its own and the shared ones
    TABLE               where experiments.tables puts its runs: "paper" or "baselines"
    add_args(parser)    its argument group (the shared groups: experiments.families.shared)
    validate(args)      UsageError for bad values (may normalize args in place)
    check_store(args, spec, store)    UsageError when the store's frames cannot feed the model (before TensorFlow)
    label(args)         the run label (run directory names, metrics.json "model", the tables' rows)
    parse_label(label)  a paper model's label -> ttrnn.models.paper_model arguments, else None
    input_spec(args)    the ttrnn.data.InputSpec its feeds read
    build(args, spec, store)          the uncompiled Keras model
    freeze(model, args, epoch, start) set what trains this epoch -> True when the trainable set changed
    test_views(args)    (clips, crops) per video of the final test; (1, 1) = the per-epoch evaluation's view

Plain Python until `input_spec` / `build` (they import ttrnn, hence TensorFlow), so the CLIs check input first.
"""
from experiments.families import c3d, mlp, rnn, shared, tsn, video3d
from ttrnn.cli import UsageError

FAMILIES = {"rnn": rnn, "mlp": mlp, "tsn": tsn, "c3d": c3d, "video3d": video3d}
BY_MODEL = {model: fam for fam in FAMILIES.values() for model in fam.MODELS}
MODEL_CHOICES = tuple(BY_MODEL)
# every option some family reads: given to a family that does not read it, it is a usage error
FAMILY_OPTIONS = frozenset(o for fam in FAMILIES.values() for o in fam.OPTIONS)


def family(model):
    """The family module of a --model name; UsageError for an unknown one."""
    if model not in BY_MODEL:
        raise UsageError(f"unknown model {model!r} (choose from {', '.join(MODEL_CHOICES)})")
    return BY_MODEL[model]


def add_args(parser):
    """Every family's argument group, after the shared ones."""
    shared.add_args(parser)
    for fam in FAMILIES.values():
        fam.add_args(parser)


def models_reading(option):
    """The --model names whose family reads `option`."""
    return [m for m, fam in BY_MODEL.items() if option in fam.OPTIONS]


def check_applies(args, parser, fam):
    """UsageError for an option set away from its default that the run's family does not read (e.g. --segments
    with --model gru): silently ignoring it would run something else than asked."""
    for option in sorted(FAMILY_OPTIONS - set(fam.OPTIONS)):
        if getattr(args, option) != parser.get_default(option):
            readers = models_reading(option)
            shown = ", ".join(readers) if len(readers) <= 3 else ", ".join(readers[:2]) + ", ..."
            raise UsageError(f"--{option.replace('_', '-')} applies to {shown}, not {args.model}")


def of_label(label):
    """The family whose runs carry this label (tables), or None."""
    for fam in FAMILIES.values():   # baselines' labels start with their model: tsn_resnet50, c3d, r3d18, c2d_nl5
        if fam.parse_label(label) is not None or (fam.TABLE == "baselines" and str(label).startswith(fam.MODELS)):
            return fam
    return None
