"""The shared trainer behind every dataset CLI (`experiments.ucf11`, `hollywood2`, `celebfaces`, `ucf101`, `hmdb51`):
parse, check without TensorFlow (`preflight`), apply the allocator and thread settings (they must precede
TensorFlow's start), pick the distribution strategy, then the phases of `experiments.trainer`: build -> fit ->
report. Every CLI trains on a frame store or, with the rnn family, on a feature store (per-frame CNN features).

Run directory: config.json, data.json, history.csv, checkpoint.npz, and at the end metrics.json (the "finished"
marker), model.keras, curves.png, confusion.png, tensorboard/ (experiments/run_dir.py names them).

Exit statuses: ttrnn.cli's table (OK also when the run directory already holds this command's finished run).

The dataset CLIs import `DatasetSpec` and `main` from here; the names below the imports are the trainer's phases,
re-exported for the tools built on them (experiments.tensorize, the bench) and the tests.
"""
import json
import sys

from experiments import run_dir as rd
from experiments.trainer.build import Run, build, build_feeds, build_optimizer, start_run_dir
from experiments.trainer.evaluation import evaluate, evaluate_views
from experiments.trainer.finish import final_metrics, report
from experiments.trainer.loop import diverged, evaluate_epoch, fit, traced, train_epoch, train_step
from experiments.trainer.options import (
    NON_IDENTITY_ARGS,
    DatasetSpec,
    build_parser,
    command_line,
    family_args,
    family_of,
    identity,
    model_label,
    validate,
)
from experiments.trainer.preflight import (
    RUNS,
    check_run_dir,
    fingerprint,
    open_store,
    preflight,
    resolve_run_dir,
    split_rows,
)
from ttrnn.cli import (
    OK,
    RUN_ERROR,
    USAGE,
    RunError,
    UsageError,
    deferred_interrupts,
    forget_interrupt,
    handle_interrupts,
    interrupted_status,
    usage_exit,
)

__all__ = [
    "NON_IDENTITY_ARGS", "RUNS", "DatasetSpec", "Run", "RunError", "UsageError", "build",
    "build_feeds", "build_optimizer", "build_parser", "check_run_dir", "command_line", "diverged", "evaluate",
    "evaluate_epoch", "evaluate_views", "family_args", "family_of", "final_metrics", "fingerprint", "fit",
    "identity", "main", "model_label", "open_store", "preflight", "rd", "report", "resolve_run_dir", "run",
    "split_rows", "start_run_dir", "train_epoch", "train_step", "traced", "validate",
]


def run(args, spec, threads, cluster, argv):
    """Train and evaluate; returns the final metrics dict. `cluster` is tf_config.cluster's strategy info."""
    r = build(args, spec, cluster)
    if r.finished:
        r.store.close()
        print(f"{r.run_dir} is already finished; metrics in {r.run_dir / rd.METRICS}")
        return json.loads((r.run_dir / rd.METRICS).read_text())
    lock = rd.RunLock(r.run_dir).acquire() if cluster.num_workers > 1 and cluster.is_chief else None
    try:   # the chief of a multi-worker run is its only writer; a single process took its lock in preflight
        state = start_run_dir(r, threads, argv)
        if state["history"]:
            print(f"resuming {r.run_dir} after epoch {len(state['history'])} of {args.epochs}")
        print(f"{spec.name} {model_label(args)}: {len(r.train_rows)} train / {len(r.split.test)} test clips, "
              f"{r.split.description}; run dir {r.run_dir}")
        history, predict = fit(r, state)
        return report(r, history, predict, threads, argv)
    finally:  # also on an error or an interruption: the reader workers end without tracebacks or leaks
        r.reader.close()
        if lock:
            lock.release()


def main(spec, argv=None):
    """CLI entry: parse, check without TensorFlow, apply the allocator and threads (before TensorFlow starts), pick
    the strategy, run. Returns an exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(spec)
    parser.set_defaults(**spec.defaults)
    if "--demo" in argv:  # the demo's defaults; options given on the command line still win
        parser.set_defaults(**spec.demo_defaults)
    args = parser.parse_args(argv)
    handle_interrupts()   # a scheduler's kill ends the run like Ctrl-C: the resume line, exit status 143
    lock, failed = None, True
    try:
        finished, lock = preflight(args, spec, parser)
        if finished:
            print(f"{finished} is already finished; metrics in {finished / rd.METRICS}")
            return OK
        import tf_config.cluster
        import tf_config.console
        import tf_config.memory
        import tf_config.threads
        tf_config.console.quiet_console(args.verbose)
        try:
            tf_config.memory.apply_memory()     # before TensorFlow starts (its CPU allocator)
            threads = tf_config.threads.apply_threads(args)
            cluster = tf_config.cluster.make_strategy(args)
        except (ValueError, RuntimeError) as exc:
            raise UsageError(str(exc)) from None
        with deferred_interrupts():   # from here on TensorFlow runs: signals are raised between batches
            run(args, spec, threads, cluster, argv)
            forget_interrupt()   # the run is complete: a signal during its last writes came too late to stop it
        failed = False
        return OK
    except UsageError as exc:
        return usage_exit(parser.prog, exc)
    except RunError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return RUN_ERROR
    except KeyboardInterrupt as exc:
        print(f"{parser.prog}: interrupted; rerun the same command to continue from the last saved epoch",
              file=sys.stderr)
        return interrupted_status(exc)
    except Exception as exc:  # a damaged clip met mid-epoch (through tf.data / the reader pool): one line
        from ttrnn.store import corrupt_clip_line
        line = corrupt_clip_line(exc)
        if line is None:
            raise
        store = getattr(args, "data", None) or "STORE"
        print(f"{parser.prog}: error: {line} (python -m preprocess.check {store} --repair, then preprocess again)",
              file=sys.stderr)
        return RUN_ERROR
    finally:
        if lock:
            lock.release(cleanup=failed)   # a run directory made for a run that failed before its first file


if __name__ == "__main__":   # not a command itself: say which ones are
    print("python -m experiments.train: error: the trainer is run through a dataset's command: python -m "
          "experiments.ucf11 (or hollywood2, celebfaces, ucf101, hmdb51) --help", file=sys.stderr)
    sys.exit(USAGE)
