"""The shared trainer behind every dataset CLI, in phases: build (store, split, run directory, model, optimizer,
feeds) -> the train step (ONE definition: `experiments.steps.make_train_step`) -> the epoch loop (evaluation,
early stopping, freeze/unfreeze, checkpoint) -> the report (metrics, plots).

One epoch = one pass over the training clips with a custom `strategy.run` step (it works the same with one process,
several GPUs or several workers; Keras 3 `model.fit` breaks under MultiWorkerMirroredStrategy, keras#20585), then an
evaluation on the held-out clips. After every epoch the run directory gets an atomic checkpoint (weights, optimizer
state, history); running the same command again continues after the last saved epoch.

Run directory: config.json, history.csv, checkpoint.npz, and at the end metrics.json (the "finished" marker),
model.keras, curves.png, confusion.png, tensorboard/ (files: experiments/run_dir.py; metrics and plots:
experiments/report.py; TensorBoard: experiments/board.py).

TensorFlow is imported only inside the phases, after the thread settings are applied (they must precede TF's start).
"""
import argparse
import datetime
import hashlib
import importlib.util
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from experiments import families
from experiments import run_dir as rd
from experiments.report import (
    classification_metrics,
    cross_entropy,
    package_versions,
    peak_rss_mb,
    plot_confusion,
    plot_curves,
    resource_usage,
    usage_since,
)
from ttrnn.cli import (  # noqa: F401
    OneLineParser,
    RunError,
    UsageError,
    atomic_write,
    check_interrupt,
    deferred_interrupts,
    forget_interrupt,
    handle_interrupts,
    interrupted_status,
    usage_exit,
    write_error,
)

RUNS = Path("runs")
# Arguments that do not change what a run computes; a rerun with different values still resumes.
NON_IDENTITY_ARGS = ("out", "fresh", "workers", "reader", "allocator", "quiet", "intra_op", "inter_op",
                     "threads_preset", "cluster_spec", "worker_index", "gpus", "cluster", "slurm_port_base", "verbose",
                     "no_tensorboard")


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
                      description=f"Train a model on {spec.name} from a ttrnn frame store. {spec.notes}")
    g = p.add_argument_group("data and run")
    g.add_argument("--data", metavar="STORE.h5", help="frame store made by `python -m preprocess.<layout>`")
    demo = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
                    for k, v in spec.demo_defaults.items())
    g.add_argument("--demo", action="store_true",
                   help="no dataset needed: generate synthetic videos once (cached), preprocess them and train; "
                        f"sets {demo} (options given win)")
    g.add_argument("--model", default="gru",
                   help=f"one of {', '.join(families.MODEL_CHOICES)} (default %(default)s); its options are in "
                        "its group below")
    g.add_argument("--max-len", type=int, default=spec.max_len,
                   help="keep the first N frames of each clip (default %(default)s, the original's)")
    g.add_argument("--protocol", default=spec.protocol, choices=("paper", "logo", "store", "holdout"),
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
                   help="reader processes (default: one per core, at most 4; 0 = read in the main process)")
    g.add_argument("--reader", default="streaming", choices=("streaming", "page-cache", "plain"),
                   help="streaming (default): batch arrays reused; a store larger than memory read with O_DIRECT, "
                        "past the page cache, a smaller one read ahead by the kernel (page-cache hints); "
                        "page-cache: the same but every store through the page cache (the reader of session 8); "
                        "plain: a fresh array per batch, no hints (the reader before issue 22). The last two are "
                        "for A/B measurements (docs/performance.md)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.add_argument("--no-tensorboard", action="store_true",
                   help="do not write TensorBoard event files (default: <run dir>/tensorboard/)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=100, help="training epochs (default %(default)s; the original "
                                                           "ran 1,001)")
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
    import tf_config.memory
    import tf_config.threads
    tf_config.console.add_console_args(p)
    tf_config.memory.add_memory_args(p)
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
    ident = {k: v for k, v in sorted(vars(args).items()) if k not in NON_IDENTITY_ARGS}
    return json.loads(json.dumps(ident, default=str))



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


def open_store(path, spec):
    """The FrameStore at `path`, checked to be a store this dataset CLI can train on."""
    from ttrnn.store import FrameStore, StoreError
    if Path(path).is_dir():
        raise UsageError(f"--data {path} is a directory; give the store file (.h5) made by "
                         f"`python -m preprocess.{spec.name} SRC STORE.h5`")
    if not Path(path).is_file():
        raise UsageError(f"no store at {path} (make one with `python -m preprocess.{spec.name} SRC {path}`)")
    try:
        store = FrameStore(path)
        kind = store.attrs.get("dataset")
        n = len(store)
    except (StoreError, OSError, KeyError) as exc:
        raise UsageError(f"{path} is not a ttrnn frame store ({exc})") from None
    if kind not in spec.stores:
        raise UsageError(f"{path} is a {kind!r} store; experiments.{spec.name} trains on "
                         f"{' or '.join(repr(s) for s in spec.stores)} stores")
    if n == 0:
        raise UsageError(f"{path} holds no clips")
    if spec.multilabel != bool(store.multilabel):
        raise UsageError(f"{path} is {'multi' if store.multilabel else 'single'}-label; "
                         f"experiments.{spec.name} expects {'multi' if spec.multilabel else 'single'}-label")
    return store


# --- run directory -----------------------------------------------------------------------------------------------
def resolve_run_dir(args, spec, num_workers):
    """The run directory: --out; else the newest runs/<dataset>-<label>-* of the same command, finished (its
    result is returned) or not (continued), unless --fresh; else a new timestamped one."""
    if args.out:
        return Path(args.out)
    prefix = f"{spec.name}-{model_label(args)}-"
    ident = identity(args)
    if num_workers > 1:  # every worker must agree on the name without talking
        digest = hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:10]
        return RUNS / f"{prefix}mw{digest}"
    found = None if args.fresh else rd.find_previous(RUNS, prefix, ident)
    return found or new_run_dir(prefix)


def new_run_dir(prefix):
    """runs/<prefix><timestamp>, with a counter when that name is taken (two --fresh runs in one second)."""
    name = prefix + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir, k = RUNS / name, 2
    while run_dir.exists():
        run_dir, k = RUNS / f"{name}-{k}", k + 1
    return run_dir


def check_run_dir(run_dir, ident):
    """True when `run_dir` holds a finished run of this command; UsageError when it holds another command's run
    or is not a run directory; False otherwise (new, or a run to resume)."""
    run_dir = Path(run_dir)
    config = rd.read_config(run_dir) if run_dir.is_dir() else None   # UsageError naming a config.json that is no JSON
    has_config = config is not None
    existing = config.get("args_identity") if has_config else ident
    if (run_dir / "metrics.json").exists():
        if existing != ident:
            raise UsageError(f"{run_dir} holds a finished run of a different command; choose another --out")
        return True
    if existing != ident:
        raise UsageError(f"{run_dir} holds a run of a different command; choose another --out")
    if run_dir.is_file() or (run_dir.exists() and not has_config
                             and any(p.name != rd.LOCK for p in run_dir.iterdir())):
        raise UsageError(f"{run_dir} exists and is not a run directory; choose another --out")
    return False


def command_line(spec, argv):
    return " ".join([sys.executable, "-m", f"experiments.{spec.name}"] + list(argv))


# --- phase 1: build ----------------------------------------------------------------------------------------------
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


def split_rows(args, spec, store):
    """(split, train rows, validation rows): the protocol's fold, with spec.val_fraction held out of training."""
    from ttrnn.data import splits as ttsplits
    try:
        split = (spec.split or ttsplits.make_split)(store, args.protocol, args.fold)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    train_rows, val_rows = split.train, np.array([], dtype=np.int64)
    if spec.val_fraction > 0:
        train_rows, val_rows = ttsplits.holdout(train_rows, spec.val_fraction, args.seed)
    return split, train_rows, val_rows


def build_feeds(r):
    """The reader pool, this worker's training feed (local batch = global / workers) and the evaluation feeds."""
    from ttrnn import data as ttdata
    args = r.args
    workers = ttdata.default_workers() if args.workers is None else args.workers
    r.store.direct = None if getattr(args, "reader", "streaming") == "streaming" else False
    r.reader = ttdata.ReaderPool(r.store.path, workers=workers, direct=r.store.direct)
    try:
        r.reader.start()
    except ttdata.ReaderError as exc:
        raise RunError(str(exc)) from None
    local_batch = max(1, args.batch_size // r.cluster.num_workers)
    streaming = getattr(args, "reader", "streaming") != "plain"
    r.train_feed = ttdata.BatchFeed(r.store, r.cluster.shard(r.train_rows), r.ispec, local_batch, training=True,
                                    seed=args.seed, reader=r.reader, bucket=not args.no_bucket, streaming=streaming)
    evaluated = {"test": r.split.test, "val": r.val_rows}
    r.eval_feeds = {name: ttdata.BatchFeed(r.store, rows, r.ispec, args.batch_size, training=False,
                                           seed=args.seed, reader=r.reader, bucket=not args.no_bucket,
                                           streaming=streaming)
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


def family_args(args, fam):
    """The options that apply to this run: the trainer's and its family's (config.json's "args")."""
    return {k: v for k, v in vars(args).items() if k not in families.FAMILY_OPTIONS or k in fam.OPTIONS}


def start_run_dir(r, threads, argv):
    """Restore the checkpoint if there is one (-> state: history, best, stale); the chief writes config.json."""
    import tf_config.memory
    state = rd.load_checkpoint(r.run_dir, r.model, r.optimizer) or {}
    state = {"history": state.get("history", []), "best": state.get("best"), "stale": state.get("stale", 0)}
    if r.cluster.is_chief:
        r.run_dir.mkdir(parents=True, exist_ok=True)
        if not (r.run_dir / "config.json").exists():
            config = {
                "dataset": r.spec.name, "model": model_label(r.args), "args": family_args(r.args, r.family),
                "args_identity": r.ident, "command": command_line(r.spec, argv),
                "store": {"path": str(Path(r.args.data).resolve()), "attrs": r.store.attrs,
                          "classes": list(r.store.classes),
                          "synthetic": bool(r.store.attrs.get("synthetic") or r.args.demo)},
                "split": r.split.description, "num_train": int(len(r.train_rows)), "num_val": int(len(r.val_rows)),
                "num_test": int(len(r.split.test)), "lr": r.lr, "threads": threads,
                "allocator": tf_config.memory.applied(),
                "cluster": r.cluster.as_dict(), "input": vars(r.ispec),
                "versions": package_versions(), "started": datetime.datetime.now().isoformat(timespec="seconds"),
            }
            rd.write_json(r.run_dir / "config.json", config)
        if not (r.run_dir / rd.DATA).exists():
            rd.record_data(r.run_dir, fingerprint(r.store, r.split, r.train_rows, r.val_rows))
        rd.write_history(r.run_dir, state["history"])
    return state


# --- phase 2: the steps ------------------------------------------------------------------------------------------
def train_step(r):
    """The ONE train step (experiments.steps.make_train_step) -> {loss, loss_sum, hits, count} per global batch.
    A short last batch weighs a full step (global_batch=None). Traced per padded length; rebuild it when the
    trainable set changes."""
    import keras

    from experiments.steps import make_train_step
    loss_fn = (keras.losses.BinaryCrossentropy(reduction=None) if r.spec.multilabel
               else keras.losses.CategoricalCrossentropy(reduction=None))
    return make_train_step(r.cluster.strategy, r.model, r.optimizer, loss_fn, global_batch=None, totals=True)


def traced(step, dist_train):
    """`step` traced once for the dataset's element spec (batch and time dimensions unknown) before any batch, so
    every batch runs this one graph. Left to `reduce_retracing`, the first batch's shape got a graph of its own,
    so which graph a batch ran depended on the batches before it: a resumed run's dropout steps then rounded
    differently from an uninterrupted run's (3e-8 in epoch 2's loss), and Adam grew that to 1e-3 by epoch 3."""
    step.get_concrete_function(dist_train.element_spec)
    return step


def evaluate(predict, feed, multilabel):
    """(mean loss, classification_metrics, probabilities) of `feed`'s clips; the loss is computed in NumPy.
    Batches come through the feed's tf.data pipeline: read ahead, and taken without a copy (`data.aligned_empty`)."""
    from ttrnn.data import map_batches
    def score(batch):
        check_interrupt()   # between batches: a signal is raised here, not inside TensorFlow (cli.deferred_interrupts)
        return batch[1].numpy(), predict(batch[0]).numpy()
    pairs = list(map_batches(feed.dataset(lambda: 0), score))
    y, p = (np.concatenate(part) for part in zip(*pairs))
    return cross_entropy(y, p, multilabel), classification_metrics(y, p, multilabel), p


# --- phase 3: the epoch loop -------------------------------------------------------------------------------------
def train_epoch(r, step, dist_train, epoch):
    """One pass over this worker's training shard -> the history row's train_loss, train_accuracy, seconds."""
    from preprocess.progress import progress
    t0, usage = time.perf_counter(), resource_usage()
    tot = {"loss_sum": 0.0, "hits": 0.0, "count": 0.0}
    shown = not r.args.quiet and r.cluster.is_chief   # a bar on a terminal, a line per tenth of the epoch elsewhere
    bar = progress(len(r.train_feed), f"epoch {epoch + 1}/{r.args.epochs}", unit="batch", leave=False) \
        if shown else None
    last = None
    from ttrnn.data import map_batches
    for k, out in enumerate(map_batches(dist_train, step)):
        check_interrupt()   # between steps: a signal is raised here, not inside TensorFlow (cli.deferred_interrupts)
        loss = float(out["loss"])
        if not math.isfinite(loss):
            raise diverged(r, epoch, f"loss {loss} at epoch {epoch + 1}, step {k + 1}", last)
        last = loss
        for key in tot:
            tot[key] += float(out[key])
        if bar is not None:
            bar.set_postfix(loss=f"{tot['loss_sum'] / tot['count']:.4f}", acc=f"{tot['hits'] / tot['count']:.3f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    r.epoch_usage.append(usage_since(usage))
    n = max(tot["count"], 1)
    return {"epoch": epoch + 1, "train_loss": tot["loss_sum"] / n, "train_accuracy": tot["hits"] / n,
            "seconds": round(time.perf_counter() - t0, 3)}


def diverged(r, saved_epochs, where, last):
    """The RunError of a non-finite loss (NaN, inf): where, the last finite training loss, what to change. Nothing
    is saved after it: the last good checkpoint (of `saved_epochs` epochs) stays, and no metrics.json is written."""
    saved = f"the checkpoint of epoch {saved_epochs} is kept" if saved_epochs else \
        "no epoch had finished, so there is no checkpoint"
    last = "none" if last is None else f"{last:.6g}"
    return RunError(f"training diverged: {where} (last finite training loss {last}); the learning rate {r.lr:g} is "
                    f"likely too high: try a smaller --lr; {saved}, no metrics.json")


def evaluate_epoch(r, predict, row):
    """Add each evaluation feed's loss, accuracy (and MAP) and the evaluations' seconds to the history row."""
    t0 = time.perf_counter()
    for name, feed in r.eval_feeds.items():
        result = loss, metrics, _ = evaluate(predict, feed, r.spec.multilabel)
        if name == "test":
            r.last_test = (row["epoch"], result)     # the report reuses it when this was the last epoch
        row[f"{name}_loss"] = loss
        row[f"{name}_accuracy"] = metrics["accuracy"]
        if r.spec.multilabel:
            row[f"{name}_map"] = metrics["map"]
    row["eval_seconds"] = round(time.perf_counter() - t0, 3)
    return row


def open_board(r, history):
    """The chief's TensorBoard writer (experiments/board.py), started over from `history`; None with
    --no-tensorboard and on the other workers."""
    if r.args.no_tensorboard or not r.cluster.is_chief:
        return None
    from experiments.board import Board
    steps = len(r.train_feed)  # optimizer steps per epoch
    board = Board(r.run_dir, lambda epoch: r.schedule((epoch - 1) * steps))
    board.rewrite(history)
    return board


def fit(r, state):
    """Phase 3: epochs from the state's on; early stopping on val (else test) loss, TSN freeze/unfreeze, and
    after every epoch the chief's checkpoint and history.csv. Returns (history, predict step)."""
    args, history, best, stale = r.args, state["history"], state["best"], state["stale"]
    epoch_box = [0]  # the dataset function reads the current epoch (its shuffling seed)
    dist_train = r.cluster.strategy.distribute_datasets_from_function(
        lambda ctx: r.train_feed.dataset(lambda: epoch_box[0]))
    from experiments.steps import make_local_predict
    step, predict = traced(train_step(r), dist_train), make_local_predict(r.model)
    board = open_board(r, history)
    start = len(history)
    for epoch in range(start, args.epochs):
        check_interrupt()
        if stale and args.patience and stale >= args.patience:
            break
        if r.family.freeze(r.model, args, epoch, start):   # the trainable set changed: trace the step again
            step = traced(train_step(r), dist_train)
        epoch_box[0] = epoch
        row = evaluate_epoch(r, predict, train_epoch(r, step, dist_train, epoch))
        bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise diverged(r, epoch, f"{bad[0]} {row[bad[0]]} in epoch {epoch + 1}", row.get("train_loss"))
        history.append(row)
        monitor = row.get("val_loss", row["test_loss"])
        if best is None or monitor < best:
            best, stale = monitor, 0
        else:
            stale += 1
        if r.cluster.is_chief:
            rd.save_checkpoint(r.run_dir, r.model, r.optimizer, {"history": history, "best": best, "stale": stale})
            rd.write_history(r.run_dir, history)
            if board:  # after the checkpoint: a resume rewrites the board from the checkpointed history
                board.write(row)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "seconds", "eval_seconds"))
        print(f"epoch {epoch + 1}/{args.epochs} ({row['seconds']:.1f} s): {shown}", flush=True)  # after its save
    if board:
        board.close()
    return history, predict


# --- phase 4: the report -----------------------------------------------------------------------------------------
def final_metrics(r, history, loss, final, threads, argv, protocol=None):
    """metrics.json's content: the test metrics plus what the tables need (params, epochs, times, memory, split),
    and `protocol` (multi-view testing: its description and per-clip accuracy)."""
    protocol = protocol or {}
    from ttrnn.models import input_to_hidden_params
    metrics = {k: v for k, v in final.items() if k not in ("confusion", "average_precision")}
    metrics.update({
        "test_loss": loss, "params_input_to_hidden": _safe(lambda: input_to_hidden_params(r.model)),
        "params_total": int(r.model.count_params()), "epochs": len(history),
        "epoch_seconds": [h["seconds"] for h in history], "peak_rss_mb": round(peak_rss_mb(), 1),
        "eval_seconds": [h.get("eval_seconds") for h in history], "epoch_usage": r.epoch_usage,
        "num_train": int(len(r.train_rows)), "num_val": int(len(r.val_rows)), "num_test": int(len(r.split.test)),
        "protocol": r.args.protocol, "fold": r.args.fold, "split": r.split.description, "dataset": r.spec.name,
        "model": model_label(r.args), "command": command_line(r.spec, argv),
        "versions": package_versions(), "threads": threads, "classes": list(r.store.classes),
        "padding_waste": round(r.train_feed.padding_waste(), 4), **protocol,
    })
    for key in ("confusion", "average_precision"):
        if key in final:
            metrics[key] = final[key]
    return metrics


def evaluate_views(feed, predict, multilabel):
    """Score every view of `feed` (a `ttrnn.data.MultiViewFeed`) with `predict(x) -> probs`, average per video.

    Returns (per-video loss, per-video metrics, protocol fields for metrics.json with the per-clip accuracy).
    """
    ys, ps = [], []
    for x, y in feed.batches(0):
        check_interrupt()
        ps.append(predict(x))
        ys.append(y)
    view_probs, view_y = np.concatenate(ps), np.concatenate(ys)
    probs = feed.video_scores(view_probs)
    y = feed.video_targets
    video = classification_metrics(y, probs, multilabel)
    per_clip = classification_metrics(view_y, view_probs, multilabel)
    protocol = {
        "test_protocol": {"clips_per_video": feed.clips, "crops_per_clip": feed.crops, "views_per_video": feed.views,
                          "clip_len": feed.spec.num_frames, "crop": feed.spec.crop,
                          "windows": "evenly spaced, first to last frame",
                          "crops": "centre" if feed.crops == 1 else "both ends and centre of the longer side",
                          "scores": "mean of the views' probabilities per video"},
        "clip_accuracy": per_clip["accuracy"], "video_accuracy": video["accuracy"],
        "num_test_views": int(len(view_y)),
    }
    return cross_entropy(y, probs, multilabel), video, protocol


def report(r, history, predict, threads, argv):
    """Phase 4: the final test evaluation; the chief writes model.keras, the plots and metrics.json (last, as the
    finished marker). Returns the metrics.

    Single-view models reuse the last epoch's test evaluation when this process ran it (same model, same feed,
    same numbers: the pass took ~60 s of a 760 s UCF11 run, issue 22); a run resumed after its last epoch
    evaluates again; multi-view testing (3D models) runs its own pass."""
    protocol = {}
    views = r.family.test_views(r.args)
    if views != (1, 1):  # the seeds' multi-view testing
        import tensorflow as tf

        from ttrnn.data import MultiViewFeed
        feed = MultiViewFeed(r.store, r.split.test, r.ispec, r.args.batch_size, *views, reader=r.reader)
        loss, final, protocol = evaluate_views(feed, lambda x: predict(tf.constant(x)).numpy(), r.spec.multilabel)
    elif r.last_test is not None and r.last_test[0] == len(history):
        loss, final, _ = r.last_test[1]
    else:
        loss, final, _ = evaluate(predict, r.eval_feeds["test"], r.spec.multilabel)
    r.reader.close()
    metrics = final_metrics(r, history, loss, final, threads, argv, protocol)
    if not math.isfinite(loss):
        raise diverged(r, len(history), f"final test_loss {loss}", history[-1]["train_loss"] if history else None)
    if r.cluster.is_chief:
        rd.save_model(r.run_dir, r.model)
        try:
            plot_curves(r.run_dir, history, r.spec.multilabel)
            plot_confusion(r.run_dir, final, list(r.store.classes), r.spec.multilabel)
        except OSError as exc:
            raise write_error(Path(exc.filename or r.run_dir / "curves.png"), exc) from None
        rd.write_json(r.run_dir / "metrics.json", metrics)
    r.store.close()
    if r.cluster.num_workers > 1:  # a last collective, so no worker exits while another still talks to it
        from tf_config.cluster import agree_on_int
        agree_on_int(r.cluster.strategy, len(history))
    key = "map" if r.spec.multilabel else "accuracy"
    views = ""
    if protocol:  # say so when the final figure is not the per-epoch lines' single view
        clips, crops = protocol["test_protocol"]["clips_per_video"], protocol["test_protocol"]["crops_per_clip"]
        views = (f" ({clips} clip{'s' if clips > 1 else ''} x {crops} crop{'s' if crops > 1 else ''} per video, "
                 f"scores averaged; the epochs' test_{key} used one centre clip)")
    print(f"test {key}{views}: {metrics[key]:.4f}" + (f"  mean class accuracy: {metrics['mean_class_accuracy']:.4f}"
                                                     if "mean_class_accuracy" in metrics else "") + f"  ({r.run_dir})")
    return metrics


def _safe(fn):
    try:
        return fn()
    except (ValueError, AttributeError):
        return None


# --- the run -----------------------------------------------------------------------------------------------------
def run(args, spec, threads, cluster, argv):
    """Train and evaluate; returns the final metrics dict. `cluster` is tf_config.cluster's strategy info."""
    r = build(args, spec, cluster)
    if r.finished:
        r.store.close()
        print(f"{r.run_dir} is already finished; metrics in {r.run_dir / 'metrics.json'}")
        return json.loads((r.run_dir / "metrics.json").read_text())
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


def preflight(args, spec, parser):
    """Every check that needs no TensorFlow, so bad input fails fast and alone: arguments, cluster, the store (the
    demo's is generated here), the split, the store's frames against the model, the run directory (finished,
    another command's, trained on other data, in use). -> (the run directory when it already holds this command's
    finished run, else None; the run directory's lock, taken here for a one-process run)."""
    import tf_config.cluster
    import tf_config.threads
    validate(args, spec, parser)
    try:
        tf_config.threads.resolve_threads(args)
        num_workers = tf_config.cluster.planned_workers(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not args.no_tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise UsageError("TensorBoard logging needs the tensorboard package (pip install tensorboard), "
                         "or give --no-tensorboard")
    if args.demo and not args.data:
        args.data = str(spec.demo(args))
    store = open_store(args.data, spec)
    try:
        split, train_rows, val_rows = split_rows(args, spec, store)
        family_of(args).check_store(args, spec, store)   # e.g. frames the TT shapes do not factor
        data = fingerprint(store, split, train_rows, val_rows)
    finally:
        store.close()
    if args.fresh and (args.out or num_workers > 1):
        raise UsageError("--fresh picks a new runs/ directory itself: give a new --out instead (and with several "
                         "workers, a new --out is the way)")
    run_dir = resolve_run_dir(args, spec, num_workers)
    if check_run_dir(run_dir, identity(args)):
        return run_dir, None
    if run_dir.is_dir():   # a run to resume: onto the data it started on, from a checkpoint that reads
        rd.check_data(run_dir, data)
        rd.check_checkpoint(run_dir)
    args.out = str(run_dir)  # build() uses this very directory (not a new timestamp)
    if num_workers > 1:
        return None, None    # the chief takes the lock once the cluster says which worker it is (run)
    lock = rd.RunLock(run_dir).acquire()
    if check_run_dir(run_dir, identity(args)):  # it finished while we looked
        lock.release()
        return run_dir, None
    return None, lock


def fingerprint(store, split, train_rows, val_rows):
    """The data a run trains and evaluates on (run_dir.data_fingerprint): the store and its splits' clip ids."""
    return rd.data_fingerprint(store, {"train": train_rows, "val": val_rows, "test": split.test})


def main(spec, argv=None):
    """CLI entry: parse, check without TensorFlow, apply threads (before TensorFlow starts), pick the strategy,
    run. Returns an exit code."""
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
            print(f"{finished} is already finished; metrics in {finished / 'metrics.json'}")
            return 0
        import tf_config.cluster
        import tf_config.console
        import tf_config.memory
        import tf_config.threads
        tf_config.console.quiet_console(args.verbose)
        try:
            tf_config.memory.apply_memory(args.allocator)     # before TensorFlow starts (its CPU allocator)
            threads = tf_config.threads.apply_threads(args)
            cluster = tf_config.cluster.make_strategy(args)
        except (ValueError, RuntimeError) as exc:
            raise UsageError(str(exc)) from None
        with deferred_interrupts():   # from here on TensorFlow runs: signals are raised between batches
            run(args, spec, threads, cluster, argv)
            forget_interrupt()   # the run is complete: a signal during its last writes came too late to stop it
        failed = False
        return 0
    except UsageError as exc:
        return usage_exit(parser.prog, exc)
    except RunError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"{parser.prog}: interrupted; rerun the same command to continue from the last saved epoch",
              file=sys.stderr)
        return interrupted_status(exc)
    except Exception as exc:  # a damaged clip met mid-epoch (through tf.data / the reader pool): one line
        from ttrnn.store import corrupt_clip_line
        line = corrupt_clip_line(exc)
        if line is None:
            raise
        print(f"{parser.prog}: error: {line} (python -m preprocess.check STORE --repair, then preprocess again)",
              file=sys.stderr)
        return 1
    finally:
        if lock:
            lock.release(cleanup=failed)   # a run directory made for a run that failed before its first file
