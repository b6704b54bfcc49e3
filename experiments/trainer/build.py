"""Phase 1: build what one run needs (`Run`): store, split, run directory, then the model, optimizer and feeds; and
start the run directory (restore the checkpoint, write config.json and the data fingerprint).
TensorFlow is imported inside the functions, after the thread settings were applied.
"""
import argparse
import datetime
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from experiments import run_dir as rd
from experiments.report import package_versions
from experiments.trainer.options import DatasetSpec, command_line, family_args, family_of, identity, model_label
from experiments.trainer.preflight import check_run_dir, fingerprint, open_store, resolve_run_dir, split_rows
from ttrnn.cli import RunError, UsageError


@dataclass
class Run:
    """What `build` makes for one run; the epoch loop and the report read it."""
    args: argparse.Namespace
    spec: DatasetSpec
    cluster: object               # tf_config.cluster.ClusterInfo
    store: object                 # ttrnn.store.FrameStore
    split: object                 # ttrnn.data.splits.Split
    train_rows: np.ndarray
    val_rows: np.ndarray
    lr: float
    run_dir: Path
    ident: dict
    family: object = None         # the model family module (experiments.families)
    finished: bool = False        # run_dir already holds this command's metrics.json: nothing to train
    ispec: object = None          # ttrnn.data.InputSpec
    model: object = None
    optimizer: object = None
    schedule: object = None       # optimizer step -> learning rate
    reader: object = None         # ttrnn.data.ReaderPool shared by the feeds
    train_feed: object = None     # this worker's shard of the training clips
    eval_feeds: dict = field(default_factory=dict)  # "test" (and "val") -> BatchFeed
    epoch_usage: list = field(default_factory=list)  # report.usage_since over each training epoch of this process
    last_test: tuple = None       # (epoch, evaluate(...) of the test feed) of the last epoch evaluated here


def build_optimizer(args, lr, num_train):
    """(optimizer, schedule: step -> learning rate): Adam(lr), or the TSN recipe: SGD momentum 0.9, weight decay
    1e-4, lr x0.1 at 1/3 and x0.01 at 2/3 of the epochs (step s, 0-based as Keras counts, decays once 3s >= the
    run's steps)."""
    import keras
    if args.optimizer == "adam":
        return keras.optimizers.Adam(lr), lambda step: lr
    total = -(-num_train // max(1, args.batch_size)) * args.epochs      # optimizer steps of the run
    # PiecewiseConstantDecay switches after a boundary b (step > b): the first decayed steps are ceil(total/3), ...
    first, second = -(-total // 3), -(-2 * total // 3)
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [first - 1, second - 1], [lr, lr * 0.1, lr * 0.01])
    return keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=1e-4), schedule


def build_feeds(r):
    """The reader pool, this worker's training feed (local batch = global / workers) and the evaluation feeds, all
    reading through the one pool (and its batch buffers)."""
    from ttrnn import data
    args = r.args
    workers = data.default_workers() if args.workers is None else args.workers
    r.reader = data.ReaderPool(r.store.path, workers=workers)
    try:
        r.reader.start()
    except data.ReaderError as exc:
        raise RunError(str(exc)) from None
    local_batch = max(1, args.batch_size // r.cluster.num_workers)
    r.train_feed = data.BatchFeed(r.store, r.cluster.shard(r.train_rows), r.ispec, local_batch, training=True,
                                  seed=args.seed, reader=r.reader, bucket=not args.no_bucket)
    evaluated = {"test": r.split.test, "val": r.val_rows}
    r.eval_feeds = {name: data.BatchFeed(r.store, rows, r.ispec, args.batch_size, training=False, seed=args.seed,
                                         reader=r.reader, bucket=not args.no_bucket)
                    for name, rows in evaluated.items() if name == "test" or len(rows)}


def build(args, spec, cluster):
    """Phase 1: store, split, run directory, then (unless that run is finished) model, optimizer and feeds."""
    import keras
    store = open_store(args.data, spec)
    split, train_rows, val_rows = split_rows(args, spec, store)
    run_dir = resolve_run_dir(args, spec, cluster.num_workers)
    ident = identity(args)
    r = Run(args, spec, cluster, store, split, train_rows, val_rows, args.lr if args.lr is not None else spec.lr,
            run_dir, ident, family_of(args), finished=check_run_dir(run_dir, ident))
    if r.finished:
        return r
    try:
        r.ispec = r.family.input_spec(args)
        keras.utils.set_random_seed(args.seed)
        with cluster.strategy.scope():
            r.model = r.family.build(args, spec, store)
            r.optimizer, r.schedule = build_optimizer(args, r.lr, len(train_rows))
            r.optimizer.build(r.model.trainable_variables)  # slots for every weight, before any freezing
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    build_feeds(r)
    return r


def start_run_dir(r, threads, argv):
    """Restore the checkpoint if there is one (-> state: history, best, stale); the chief writes config.json (with
    the allocator settings `tf_config.memory` applied) and the data fingerprint."""
    import tf_config.memory
    state = rd.load_checkpoint(r.run_dir, r.model, r.optimizer) or {}
    state = {"history": state.get("history", []), "best": state.get("best"), "stale": state.get("stale", 0)}
    if r.cluster.is_chief:
        r.run_dir.mkdir(parents=True, exist_ok=True)
        if not (r.run_dir / rd.CONFIG).exists():
            config = {
                "dataset": r.spec.name, "model": model_label(r.args), "args": family_args(r.args, r.family),
                "args_identity": r.ident, "command": command_line(r.spec, argv),
                "store": {"path": str(Path(r.args.data).resolve()), "attrs": r.store.attrs,
                          "classes": list(r.store.classes),
                          "features": getattr(r.store, "features", None),
                          "synthetic": bool(r.store.attrs.get("synthetic") or r.args.demo)},
                "split": r.split.description, "num_train": int(len(r.train_rows)), "num_val": int(len(r.val_rows)),
                "num_test": int(len(r.split.test)), "lr": r.lr, "threads": threads,
                "allocator": tf_config.memory.applied(),
                "cluster": r.cluster.as_dict(), "input": vars(r.ispec),
                "versions": package_versions(), "started": datetime.datetime.now().isoformat(timespec="seconds"),
            }
            rd.write_json(r.run_dir / rd.CONFIG, config)
        if not (r.run_dir / rd.DATA).exists():
            rd.record_data(r.run_dir, fingerprint(r.store, r.split, r.train_rows, r.val_rows))
        rd.write_history(r.run_dir, state["history"])
    return state
