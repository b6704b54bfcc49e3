"""A trained dense GRU / LSTM run -> a tensorized run directory to fine-tune.

    python -m experiments.tensorize RUN_DIR --decomposition tt --rank 4 --out NEW_RUN_DIR [--epochs N] [--lr LR]
                                    [--recurrent-decomposition FORMAT [--recurrent-rank R]]
    python -m experiments.ucf11 ... (the command it prints: the source's, with --use-tt --decomposition --rank
                                     --epochs N [--lr LR] --out NEW_RUN_DIR) -> fine-tunes from the tensorized
                                     weights

RUN_DIR is a finished run of `--model gru|lstm` without `--use-tt`. The new run is built by the trainer's own
phases from the source's command with the format options added (so its config.json, identity and model are what
the trainer makes), then its input-to-hidden layer takes `ttrnn.tensorize` of the trained dense layer (recurrent
kernel and biases copied; with --recurrent-decomposition the recurrent kernel decomposed too, on the paper's
hidden modes) and every other layer the trained weights; it is saved as the trainer's epoch-0 checkpoint, so the
printed command resumes it and trains N epochs. NEW_RUN_DIR/tensorized.json records the source, the format(s),
the kernels' relative reconstruction errors and the test metrics before fine-tuning.
"""

import importlib
import json
import shlex
import sys
from pathlib import Path

from experiments import train
from experiments.families.rnn import parse_rank
from experiments.run_dir import CONFIG, MODEL, TENSORIZED, save_checkpoint
from ttrnn.cli import OneLineParser, UsageError, atomic_write
from ttrnn.formats import FORMAT_NAMES

# Source options the new command replaces (name -> takes a value).
REPLACED = {"--out": True, "--epochs": True, "--use-tt": False, "--decomposition": True, "--rank": True,
            "--blocks": True, "--recurrent-decomposition": True, "--recurrent-rank": True, "--integrated": False}


def source_argv(command, replaced=REPLACED):
    """The trainer arguments of a command recorded in a run's config.json, without the options `replaced`."""
    words = shlex.split(command)
    words = words[words.index("-m") + 2:] if "-m" in words else words
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
            continue
        name = word.split("=", 1)[0]
        if name in replaced:
            skip = replaced[name] and "=" not in word
            continue
        out.append(word)
    return out


def parse_args(argv):
    p = OneLineParser(prog="python -m experiments.tensorize", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path, help="a finished dense --model gru|lstm run")
    p.add_argument("--decomposition", default="tt", choices=FORMAT_NAMES,
                   help="the kernel format (default %(default)s)")
    p.add_argument("--rank", default=None, help="an int or the format's rank list (comma separated); "
                                                "default the format's default ranks")
    p.add_argument("--blocks", type=int, default=None, help="bt only: block terms (default 2)")
    p.add_argument("--recurrent-decomposition", default=None, choices=FORMAT_NAMES, metavar="FORMAT",
                   help="decompose the trained recurrent kernel too, in this format (" + ", ".join(FORMAT_NAMES)
                        + "), on the paper's hidden modes (default: keep it dense)")
    p.add_argument("--recurrent-rank", default=None,
                   help="ranks of the recurrent kernel's format: an int or a comma list (default: the format's)")
    p.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs of the new run (default: the "
                                                            "source's)")
    p.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate of the new run (default: the "
                                                          "source's; a dense kernel's lr is usually far smaller "
                                                          "than a tensorized one's)")
    p.add_argument("--out", type=Path, required=True, help="the new run directory (must not hold another run)")
    return p.parse_args(argv)


def read_source(run_dir):
    """(config, dataset spec) of a finished dense recurrent run; UsageError otherwise."""
    try:
        config = json.loads((run_dir / CONFIG).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{run_dir} is not a run directory ({exc.__class__.__name__}: {CONFIG})") from None
    args = config.get("args", {})
    if args.get("model") not in ("gru", "lstm") or args.get("use_tt"):
        raise UsageError(f"{run_dir} is a {config.get('model')} run; tensorize takes a dense gru / lstm run")
    if not (run_dir / MODEL).exists():
        raise UsageError(f"{run_dir} has no {MODEL} (is it finished?)")
    spec = importlib.import_module(f"experiments.{config['dataset']}").SPEC
    return config, spec


def new_command(config, opts):
    """The trainer command of the new run: the source's, its format, epochs, out (and lr, if given) replaced."""
    replaced = {**REPLACED, "--lr": True} if opts.lr is not None else REPLACED
    argv = source_argv(config["command"], replaced)
    argv += ["--use-tt", "--decomposition", opts.decomposition, "--epochs",
             str(opts.epochs or config["args"]["epochs"]), "--out", str(opts.out)]
    if opts.rank is not None:
        argv += ["--rank", str(opts.rank)]
    if opts.blocks is not None:
        argv += ["--blocks", str(opts.blocks)]
    if opts.recurrent_decomposition is not None:
        argv += ["--recurrent-decomposition", opts.recurrent_decomposition]
    if opts.recurrent_rank is not None:
        argv += ["--recurrent-rank", str(opts.recurrent_rank)]
    if opts.lr is not None:
        argv += ["--lr", repr(opts.lr)]
    return argv


def trainer_args(spec, argv, source_args):
    """The trainer's parse of `argv` (with its defaults and the demo's), checked as its preflight checks ->
    (args, the new run directory's lock)."""
    parser = train.build_parser(spec)
    parser.set_defaults(**spec.defaults)
    if "--demo" in argv:
        parser.set_defaults(**spec.demo_defaults)
        parser.set_defaults(data=source_args.get("data"))      # the demo store the source trained on
    args = parser.parse_args(argv)
    finished, lock = train.preflight(args, spec, parser)
    if finished:
        raise UsageError(f"{args.out} already holds a finished run")
    return args, lock


def recurrent_kwargs(opts, target):
    """tensorize's recurrent-kernel arguments: the new run's format and ranks (none without
    --recurrent-decomposition: the recurrent kernel is copied as it is)."""
    if opts.recurrent_decomposition is None:
        return {}
    return {"recurrent_format": opts.recurrent_decomposition, "recurrent_ranks": target.recurrent_ranks,
            "recurrent_input_modes": target.recurrent_input_modes,
            "recurrent_output_modes": target.recurrent_output_modes, "recurrent_blocks": target.recurrent_blocks}


def copy_weights(source, target, layer):
    """`layer` (tensorized) into target's input_to_hidden; every other weighted layer from source by name."""
    target.get_layer("input_to_hidden").set_weights(layer.get_weights())
    for src in source.layers:
        if src.name != "input_to_hidden" and src.weights:
            target.get_layer(src.name).set_weights(src.get_weights())


def run(opts):
    import tf_config.cluster
    import tf_config.memory
    import tf_config.threads

    config, spec = read_source(opts.run_dir)
    argv = new_command(config, opts)
    args, lock = trainer_args(spec, argv, config["args"])
    try:
        tf_config.memory.apply_memory()
        threads = tf_config.threads.apply_threads(args)
        cluster = tf_config.cluster.make_strategy(args)
        record, error, metrics, r = tensorized_run(opts, config, spec, args, argv, threads, cluster)
    finally:
        if lock:
            lock.release()
    module = f"experiments.{spec.name}"
    recurrent = "" if opts.recurrent_decomposition is None else (
        f", recurrent kernel {opts.recurrent_decomposition} at ranks {record['recurrent_ranks']}, error "
        f"{record['recurrent_kernel_relative_error']:.4f}")
    print(f"{r.run_dir}: {opts.decomposition} at ranks {record['ranks']}, kernel error {error:.4f}{recurrent}, test "
          f"accuracy before fine-tuning {metrics['accuracy']:.4f}; fine-tune with\n  python -m {module} "
          f"{shlex.join(argv)}")
    return record


def tensorized_run(opts, config, spec, args, argv, threads, cluster):
    """The trainer's build of the new run, the tensorized weights put in, its epoch-0 checkpoint and
    tensorized.json written -> (record, kernel error, test metrics, the Run)."""
    import keras
    import numpy as np

    from experiments.steps import make_local_predict
    from ttrnn import load_model, tensorize
    from ttrnn.decompose import relative_error

    r = train.build(args, spec, cluster)
    try:
        source = load_model(opts.run_dir / MODEL)
        dense, target = source.get_layer("input_to_hidden"), r.model.get_layer("input_to_hidden")
        modes = (target.input_modes, target.output_modes) if hasattr(target, "input_modes") else \
            (target.tt_input_shape, target.tt_output_shape)
        ranks = target.ranks if hasattr(target, "ranks") else target.tt_ranks
        try:
            layer = tensorize(dense, opts.decomposition, *modes, ranks=ranks, blocks=getattr(target, "blocks", None),
                              **recurrent_kwargs(opts, target))
            copy_weights(source, r.model, layer)
        except ValueError as exc:
            raise UsageError(f"cannot tensorize {opts.run_dir}: {exc}") from None
        kernel, recurrent = (np.asarray(w) for w in dense.get_weights()[:2])
        error = relative_error(np.asarray(layer.full_kernel()), kernel)
        state = train.start_run_dir(r, threads, argv)
        save_checkpoint(r.run_dir, r.model, r.optimizer, state)
        loss, metrics, _ = train.evaluate(make_local_predict(r.model), r.eval_feeds["test"], spec.multilabel)
        record = {"source": str(opts.run_dir.resolve()), "source_model": config.get("model"),
                  "decomposition": opts.decomposition, "ranks": list(np.atleast_1d(ranks).tolist()),
                  "blocks": getattr(target, "blocks", None), "kernel_relative_error": error,
                  "params_dense_kernel": int(kernel.size), "params_kernel": int(target.kernel_param_count),
                  "before_fine_tuning": {"test_loss": loss, **{k: v for k, v in metrics.items()
                                                               if isinstance(v, (int, float))}}}
        if opts.recurrent_decomposition is not None:
            record.update(recurrent_decomposition=opts.recurrent_decomposition,
                          recurrent_ranks=np.atleast_1d(target.recurrent_ranks).tolist(),
                          recurrent_kernel_relative_error=relative_error(
                              keras.ops.convert_to_numpy(layer.recurrent_kernel), recurrent),
                          params_dense_recurrent_kernel=int(recurrent.size),
                          params_recurrent_kernel=int(target.recurrent_param_count))
        atomic_write(r.run_dir / TENSORIZED, json.dumps(record, indent=2))
    finally:
        r.reader.close()
        r.store.close()
    return record, error, metrics, r


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if opts.epochs is not None and opts.epochs < 1:
            raise UsageError(f"--epochs must be >= 1, got {opts.epochs}")
        if opts.lr is not None and not opts.lr > 0:
            raise UsageError(f"--lr must be > 0, got {opts.lr}")
        if opts.rank is not None:
            parse_rank(opts.rank)
        if opts.recurrent_rank is not None:
            if opts.recurrent_decomposition is None:
                raise UsageError("--recurrent-rank applies with --recurrent-decomposition FORMAT")
            parse_rank(opts.recurrent_rank, "--recurrent-rank")
        read_source(opts.run_dir)
        run(opts)
    except UsageError as exc:
        print(f"python -m experiments.tensorize: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
