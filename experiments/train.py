"""The shared trainer behind every dataset CLI: store -> split -> streaming batches -> model -> run directory.

One epoch = one pass over the training clips with a custom `strategy.run` step (it works the same with one process,
several GPUs or several workers; Keras 3 `model.fit` breaks under MultiWorkerMirroredStrategy, keras#20585), then an
evaluation on the held-out clips. After every epoch the run directory gets an atomic checkpoint (weights, optimizer
state, history); running the same command again continues after the last saved epoch.

Run directory: config.json, history.csv, checkpoint.npz, and at the end metrics.json (the "finished" marker),
model.keras, curves.png, confusion.png.

TensorFlow is imported only inside `run()`, after the thread settings are applied (they must precede TF's start).
"""
import argparse
import csv
import datetime
import hashlib
import io
import json
import math
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from experiments import video3d

MODEL_CHOICES = ("gru", "lstm", "mlp", "tsn", "c3d") + tuple(video3d.MODELS)
CHECKPOINT = "checkpoint.npz"
# Arguments that do not change what a run computes; a rerun with different values still resumes.
NON_IDENTITY_ARGS = ("out", "workers", "quiet", "intra_op", "inter_op", "threads_preset", "cluster_spec",
                     "worker_index", "gpus")


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2, nothing written."""


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
    split: object = None          # callable(store, protocol, fold) -> ttrnn.splits.Split; default make_split


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(spec):
    p = OneLineParser(prog=f"python -m experiments.{spec.name}",
                      description=f"Train a paper model on {spec.name} from a ttrnn frame store. {spec.notes}")
    p.add_argument("--data", help="frame store (.h5) made by `python -m preprocess.<layout>`")
    p.add_argument("--demo", action="store_true",
                   help="no dataset needed: generate synthetic videos, preprocess them and train TT-GRU")
    p.add_argument("--model", default="gru", help=f"one of {', '.join(MODEL_CHOICES)} (default gru)")
    p.add_argument("--use-tt", action="store_true", help="TT input-to-hidden layer (TT-GRU, TT-LSTM)")
    p.add_argument("--max-len", type=int, default=spec.max_len,
                   help=f"keep the first N frames of each clip (default {spec.max_len}, the original's)")
    p.add_argument("--frame-skip", type=int, default=1, help="use every K-th stored frame (default 1)")
    p.add_argument("--protocol", default=spec.protocol, choices=("paper", "logo", "store"),
                   help="paper: the original random 5-fold split (seed 11111986); logo: leave-one-group-out; "
                        "store: the store's own split lists")
    p.add_argument("--fold", type=int, default=0, help="fold (paper), held-out group index (logo) or split index")
    p.add_argument("--epochs", type=int, default=100, help="training epochs (the original ran 1,001)")
    p.add_argument("--batch-size", type=int, default=spec.batch_size, help=f"global batch (default {spec.batch_size})")
    p.add_argument("--lr", type=float, default=None,
                   help=f"Adam learning rate (default {spec.lr:g} as the original code)")
    p.add_argument("--optimizer", default="adam", choices=("adam", "sgd"),
                   help="adam (the paper's); sgd = momentum 0.9, weight decay 1e-4, lr x0.1 at 1/3 and 2/3 of "
                        "the epochs (the TSN recipe)")
    p.add_argument("--preset", default="modern", choices=("paper", "modern"),
                   help="paper: the original code's activations, gate order and initialization; modern: "
                        "sigmoid, reset_after GRU, TT-aware Glorot init (default)")
    p.add_argument("--scaling", default="paper", choices=("paper", "unit"),
                   help="pixel scaling inside the model: paper = pixel-128 (the original), unit = pixel/255")
    p.add_argument("--projection-dtype", default="float32", choices=("float32", "bfloat16"),
                   help="TT-GRU/LSTM: dtype of the first TT contraction (bfloat16: faster on CPUs with AVX512-BF16 "
                        "or AMX, 8-bit mantissa; docs/performance.md)")
    p.add_argument("--dropout", type=float, default=0.25, help="input dropout (0.25 as the original)")
    p.add_argument("--recurrent-dropout", type=float, default=0.25, help="recurrent dropout (0.25 as the original)")
    p.add_argument("--patience", type=int, default=0,
                   help="early stopping: stop after N epochs without a better monitored loss (0 = off)")
    p.add_argument("--no-bucket", action="store_true", help="disable length bucketing (pad to the longest clip)")
    p.add_argument("--backbone", default="resnet50", help="TSN backbone (keras.applications name)")
    p.add_argument("--segments", type=int, default=3, help="TSN segments (3 default, 7 as PaddleVideo's table)")
    p.add_argument("--width", type=float, default=1.0,
                   help="C3D / 3D CNN channel multiplier (e.g. 0.25 on small machines)")
    p.add_argument("--weights", default="none",
                   help="baselines: none, imagenet (TSN, c2d_nl, i3d_nl) or a local .h5 / .weights.h5")
    p.add_argument("--freeze-epochs", type=int, default=0, help="baselines: keep the backbone frozen this long")
    video3d.add_args(p)
    p.add_argument("--seed", type=int, default=0, help="initialization, shuffling and sampling seed")
    p.add_argument("--out", default=None, help="run directory (default runs/<dataset>-<model>-<timestamp>)")
    p.add_argument("--workers", type=int, default=None,
                   help="reader processes (default: one per core, at most 4; 0 = read in the main process)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    import tf_config.threads
    import tf_config.cluster
    tf_config.threads.add_thread_args(p)
    tf_config.cluster.add_cluster_args(p)
    return p


def model_label(args):
    if args.model in ("gru", "lstm"):
        return ("tt_" if args.use_tt else "") + args.model
    if args.model == "mlp":
        return "tt_mlp"
    if args.model == "tsn":
        return f"tsn_{args.backbone}"
    if video3d.is_3d(args):
        return video3d.label(args)
    return "c3d"


def identity(args):
    """The arguments that define what a run computes (used to recognize the same run for resume)."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in NON_IDENTITY_ARGS}


def validate(args, spec):
    if args.model not in MODEL_CHOICES:
        raise UsageError(f"unknown model {args.model!r} (choose from {', '.join(MODEL_CHOICES)})")
    if args.use_tt and args.model not in ("gru", "lstm") and args.demo:
        args.use_tt = False  # the demo's default TT applies to its default TT-GRU only
    if args.use_tt and args.model not in ("gru", "lstm"):
        raise UsageError(f"--use-tt applies to gru and lstm; {args.model} is fixed by its own definition")
    for name in ("max_len", "frame_skip", "epochs", "batch_size", "segments"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.lr is not None and not args.lr > 0:
        raise UsageError(f"--lr must be > 0, got {args.lr}")
    if not 0 <= args.dropout < 1 or not 0 <= args.recurrent_dropout < 1:
        raise UsageError("dropout rates must be in [0, 1)")
    if args.projection_dtype != "float32" and not (args.use_tt and args.model in ("gru", "lstm")):
        raise UsageError("--projection-dtype applies to TT-GRU / TT-LSTM (--model gru|lstm --use-tt)")
    if args.fold < 0:
        raise UsageError(f"--fold must be >= 0, got {args.fold}")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    try:
        video3d.validate(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not args.demo and not args.data:
        raise UsageError("give --data STORE.h5 (make one with `python -m preprocess.<layout>`) or --demo")


def open_store(path, spec):
    """The FrameStore at `path`, checked to be a store this dataset CLI can train on."""
    from ttrnn.store import FrameStore, StoreError
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
def resolve_run_dir(args, spec, cluster):
    """The run directory: --out, or an unfinished run of the same command to resume, or a new timestamped one."""
    if args.out:
        return Path(args.out)
    base = Path("runs")
    prefix = f"{spec.name}-{model_label(args)}-"
    ident = identity(args)
    if cluster.num_workers > 1:  # every worker must agree on the name without talking
        digest = hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:10]
        return base / f"{prefix}mw{digest}"
    if base.is_dir():
        for cand in sorted(base.glob(prefix + "*"), reverse=True):
            if (cand / CHECKPOINT).exists() and not (cand / "metrics.json").exists():
                try:
                    if json.loads((cand / "config.json").read_text()).get("args_identity") == \
                            json.loads(json.dumps(ident, default=str)):
                        return cand
                except (OSError, ValueError):
                    continue
    return base / (prefix + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))


def atomic_write(path, data):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(run_dir, model, optimizer, state):
    """weights + optimizer variables + JSON state in one file, replaced atomically (a kill leaves the old one)."""
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"o{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)})
    arrays["state"] = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(Path(run_dir) / CHECKPOINT, buf.getvalue())


def load_checkpoint(run_dir, model, optimizer):
    """Restore a checkpoint into `model` and `optimizer`; returns its state dict, or None if there is none."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    with np.load(path) as data:
        state = json.loads(bytes(data["state"]).decode())
        weights = [data[f"w{i}"] for i in range(len(model.get_weights()))]
        model.set_weights(weights)
        for i, var in enumerate(optimizer.variables):
            var.assign(data[f"o{i}"])
    return state


def write_history(run_dir, history):
    if not history:
        return
    keys = list(history[0])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    atomic_write(Path(run_dir) / "history.csv", buf.getvalue())


def package_versions():
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for name in ("ttrnn", "tensorflow", "keras", "numpy", "h5py", "opencv-python-headless", "scikit-learn"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def peak_rss_mb():
    """Peak resident memory of this process in MB: VmHWM (reset by exec, unlike ru_maxrss, which keeps the
    parent's peak when a large process starts this one)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- metrics -----------------------------------------------------------------------------------------------------
def classification_metrics(y_true, probs, multilabel):
    """accuracy / mean class accuracy / top-5 / confusion (single-label) or MAP (multi-label), from numpy arrays."""
    from sklearn.metrics import average_precision_score, confusion_matrix
    num_classes = y_true.shape[1]
    out = {}
    if multilabel:
        present = y_true.sum(axis=0) > 0
        ap = [float(average_precision_score(y_true[:, c], probs[:, c])) if present[c] else float("nan")
              for c in range(num_classes)]
        out["map"] = float(np.nanmean(ap)) if present.any() else float("nan")
        out["average_precision"] = ap
        out["accuracy"] = float(np.mean(y_true[np.arange(len(probs)), probs.argmax(1)] > 0))  # top-1 is a true label
        return out
    true = y_true.argmax(1)
    pred = probs.argmax(1)
    cm = confusion_matrix(true, pred, labels=np.arange(num_classes))
    recall = np.array([cm[c, c] / cm[c].sum() for c in range(num_classes) if cm[c].sum() > 0])
    out["accuracy"] = float(np.mean(true == pred))
    out["mean_class_accuracy"] = float(recall.mean())
    if num_classes > 5:
        top5 = np.argsort(-probs, axis=1)[:, :5]
        out["top5"] = float(np.mean([t in row for t, row in zip(true, top5)]))
    out["confusion"] = cm.tolist()
    return out


def plot_curves(run_dir, history, multilabel):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "val", "test"):
        if f"{split}_loss" in history[0]:
            axes[0].plot(epochs, [h[f"{split}_loss"] for h in history], marker=".", label=split)
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    key = "map" if multilabel else "accuracy"
    for split in ("train", "val", "test"):
        if f"{split}_{key}" in history[0]:
            axes[1].plot(epochs, [h[f"{split}_{key}"] for h in history], marker=".", label=split)
    axes[1].set(xlabel="epoch", ylabel=key, title=key, ylim=(0, 1.02))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(Path(run_dir) / "curves.png", dpi=100)
    plt.close(fig)


def plot_confusion(run_dir, metrics, classes, multilabel):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if multilabel:  # no single confusion matrix for multi-label clips: per-class average precision instead
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.bar(range(len(classes)), metrics["average_precision"])
        ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right")
        ax.set(ylabel="average precision", title=f"per-class AP (MAP {metrics['map']:.3f})", ylim=(0, 1))
    else:
        cm = np.array(metrics["confusion"], dtype=float)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        size = max(5, 0.45 * len(classes) + 2)
        fig, ax = plt.subplots(figsize=(size + 1, size))
        im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        if len(classes) <= 20:
            for i in range(len(classes)):
                for j in range(len(classes)):
                    if cm[i, j]:
                        ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                                color="white" if norm[i, j] > 0.5 else "black")
        ax.set(xlabel="predicted", ylabel="true", title=f"confusion (accuracy {metrics['accuracy']:.3f})")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(Path(run_dir) / "confusion.png", dpi=100)
    plt.close(fig)


# --- the run -----------------------------------------------------------------------------------------------------
def input_spec(args):
    from ttrnn.data import InputSpec
    if args.model in ("gru", "lstm"):
        return InputSpec("sequence", max_len=args.max_len, frame_skip=args.frame_skip)
    if args.model == "mlp":
        from ttrnn.models import MLP_FRAMES
        return InputSpec("mlp", max_len=args.max_len, num_frames=MLP_FRAMES)
    if args.model == "tsn":
        return InputSpec("tsn", max_len=args.max_len, num_frames=args.segments)
    return video3d.input_spec(args)


def build_model(args, spec, store):
    """The uncompiled Keras model for args.model, sized to the store's frames and classes."""
    from ttrnn import models
    num_classes = len(store.classes)
    frame_shape = (int(store.attrs["height"]), int(store.attrs["width"]), 3)
    if args.model in ("gru", "lstm", "mlp"):
        return models.paper_model(spec.name, args.model, num_classes, use_tt=args.use_tt, preset=args.preset,
                                  frame_shape=frame_shape, multilabel=spec.multilabel, scaling=args.scaling,
                                  dropout=args.dropout, recurrent_dropout=args.recurrent_dropout,
                                  projection_dtype=args.projection_dtype)
    from ttrnn import baselines
    activation = "sigmoid" if spec.multilabel else "softmax"
    if args.model == "tsn":
        weights = None if args.weights == "none" else args.weights
        return baselines.tsn(num_classes, backbone=args.backbone, num_segments=args.segments, weights=weights,
                             activation=activation)
    if video3d.is_3d(args):
        return video3d.build(args, num_classes, activation)
    return baselines.c3d(num_classes, input_shape=(args.clip_len, args.crop, args.crop, 3), width=args.width,
                         activation=activation)


def run(args, spec, threads, cluster, argv):
    """Train and evaluate; returns the final metrics dict. `cluster` is tf_config.cluster's strategy info."""
    import keras
    import tensorflow as tf
    from ttrnn import data as ttdata
    from ttrnn import splits as ttsplits
    from ttrnn.models import input_to_hidden_params

    store = open_store(args.data, spec)
    try:
        split = (spec.split or ttsplits.make_split)(store, args.protocol, args.fold)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    train_rows, val_rows = split.train, np.array([], dtype=np.int64)
    if spec.val_fraction > 0:
        train_rows, val_rows = ttsplits.holdout(train_rows, spec.val_fraction, args.seed)
    lr = args.lr if args.lr is not None else spec.lr
    try:
        ispec = input_spec(args)
        keras.utils.set_random_seed(args.seed)
        with cluster.strategy.scope():
            model = build_model(args, spec, store)
            if args.optimizer == "adam":
                optimizer = keras.optimizers.Adam(lr)
            else:
                steps = len(train_rows) // max(1, args.batch_size) + 1
                schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
                    [steps * args.epochs // 3, 2 * steps * args.epochs // 3], [lr, lr * 0.1, lr * 0.01])
                optimizer = keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=1e-4)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    run_dir = resolve_run_dir(args, spec, cluster)
    config_path = run_dir / "config.json"
    ident = json.loads(json.dumps(identity(args), default=str))
    existing = json.loads(config_path.read_text()).get("args_identity") if config_path.exists() else ident
    if (run_dir / "metrics.json").exists():
        if existing != ident:
            raise UsageError(f"{run_dir} holds a finished run of a different command; choose another --out")
        print(f"{run_dir} is already finished; metrics in {run_dir / 'metrics.json'}")
        return json.loads((run_dir / "metrics.json").read_text())
    if existing != ident:
        raise UsageError(f"{run_dir} holds a run of a different command; choose another --out")
    if run_dir.exists() and not config_path.exists() and any(run_dir.iterdir()):
        raise UsageError(f"{run_dir} exists and is not a run directory; choose another --out")

    workers = ttdata.default_workers() if args.workers is None else args.workers
    reader = ttdata.ReaderPool(store.path, workers=workers)
    local_batch = max(1, args.batch_size // cluster.num_workers)
    train_feed = ttdata.BatchFeed(store, cluster.shard(train_rows), ispec, local_batch, training=True, seed=args.seed,
                                  reader=reader, bucket=not args.no_bucket)
    eval_feeds = {"test": ttdata.BatchFeed(store, split.test, ispec, args.batch_size, training=False,
                                           seed=args.seed, reader=reader, bucket=not args.no_bucket)}
    if len(val_rows):
        eval_feeds["val"] = ttdata.BatchFeed(store, val_rows, ispec, args.batch_size, training=False,
                                             seed=args.seed, reader=reader, bucket=not args.no_bucket)

    epoch_box = [0]
    dist_train = cluster.strategy.distribute_datasets_from_function(
        lambda ctx: train_feed.dataset(lambda: epoch_box[0]))
    multilabel = spec.multilabel
    loss_fn = (keras.losses.BinaryCrossentropy(reduction=None) if multilabel
               else keras.losses.CategoricalCrossentropy(reduction=None))
    replicas = cluster.num_replicas

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            per_example = loss_fn(y, probs)
            count = tf.cast(tf.shape(y)[0], tf.float32)
            loss = tf.reduce_sum(per_example) / (count * replicas)
            if model.losses:
                loss += tf.add_n(model.losses) / replicas
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, 1), tf.argmax(y, 1)), tf.float32)) \
            if not multilabel else tf.reduce_sum(tf.gather(y, tf.argmax(probs, 1), batch_dims=1))
        return tf.reduce_sum(per_example), hits, count

    def make_train_step():
        # traced per padded length (a multiple of InputSpec.pad_multiple); rebuilt when the trainable set changes
        @tf.function
        def train_step(dist_inputs):
            x, y = dist_inputs
            results = cluster.strategy.run(replica_step, args=(x, y))
            return [cluster.strategy.reduce(tf.distribute.ReduceOp.SUM, r, axis=None) for r in results]
        return train_step

    train_step = make_train_step()

    @tf.function
    def predict_step(x):
        return model(x, training=False)

    def evaluate(feed):
        ys, ps = [], []
        for x, y in feed.batches(0):
            ps.append(predict_step(tf.constant(x)).numpy())
            ys.append(y)
        y, p = np.concatenate(ys), np.concatenate(ps)
        p_clip = np.clip(p, 1e-7, 1 - 1e-7)
        if multilabel:
            loss = float(np.mean(-(y * np.log(p_clip) + (1 - y) * np.log(1 - p_clip)).mean(axis=1)))
        else:
            loss = float(np.mean(-np.sum(y * np.log(p_clip), axis=1)))
        return loss, classification_metrics(y, p, multilabel), p

    state = None
    with cluster.strategy.scope():  # slots for every weight, before any freezing changes the trainable set
        optimizer.build(model.trainable_variables)
    if (run_dir / CHECKPOINT).exists():
        state = load_checkpoint(run_dir, model, optimizer)
    history = state["history"] if state else []
    start_epoch = len(history)
    best = state.get("best") if state else None
    stale = state.get("stale", 0) if state else 0
    if cluster.is_chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not config_path.exists():
            config = {
                "dataset": spec.name, "model": model_label(args), "args": vars(args), "args_identity": ident,
                "command": " ".join([sys.executable, "-m", f"experiments.{spec.name}"] + list(argv)),
                "store": {"path": str(Path(args.data).resolve()), "attrs": store.attrs,
                          "classes": list(store.classes)},
                "split": split.description, "num_train": int(len(train_rows)), "num_val": int(len(val_rows)),
                "num_test": int(len(split.test)), "lr": lr, "threads": threads,
                "cluster": cluster.as_dict(), "input": vars(ispec),
                "versions": package_versions(), "started": datetime.datetime.now().isoformat(timespec="seconds"),
            }
            atomic_write(config_path, json.dumps(config, indent=2, default=str))
        write_history(run_dir, history)
    if start_epoch:
        print(f"resuming {run_dir} after epoch {start_epoch} of {args.epochs}")
    print(f"{spec.name} {model_label(args)}: {len(train_rows)} train / {len(split.test)} test clips, "
          f"{split.description}; run dir {run_dir}")

    from tqdm import tqdm
    freeze = args.model == "tsn" and args.freeze_epochs > 0
    for epoch in range(start_epoch, args.epochs):
        if stale and args.patience and stale >= args.patience:
            break
        if freeze and epoch in (start_epoch, args.freeze_epochs):
            from ttrnn.baselines import set_backbone_trainable
            set_backbone_trainable(model, epoch >= args.freeze_epochs)
            train_step = make_train_step()
        epoch_box[0] = epoch
        t0 = time.perf_counter()
        tot_loss = tot_hits = tot_n = 0.0
        bar = tqdm(total=len(train_feed), desc=f"epoch {epoch + 1}/{args.epochs}", unit="batch",
                   disable=True if (args.quiet or not cluster.is_chief) else None,  # None: off without a TTY
                   leave=False)
        for batch in dist_train:
            loss_sum, hits, count = [float(v) for v in train_step(batch)]
            tot_loss, tot_hits, tot_n = tot_loss + loss_sum, tot_hits + hits, tot_n + count
            bar.update(1)
            bar.set_postfix(loss=f"{tot_loss / tot_n:.4f}", acc=f"{tot_hits / tot_n:.3f}")
        bar.close()
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": tot_loss / max(tot_n, 1), "train_accuracy": tot_hits / max(tot_n, 1),
               "seconds": round(seconds, 3)}
        for name, feed in eval_feeds.items():
            loss, metrics, _ = evaluate(feed)
            row[f"{name}_loss"] = loss
            row[f"{name}_accuracy"] = metrics["accuracy"]
            if multilabel:
                row[f"{name}_map"] = metrics["map"]
        history.append(row)
        monitor = row.get("val_loss", row["test_loss"])
        if best is None or monitor < best:
            best, stale = monitor, 0
        else:
            stale += 1
        shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "seconds"))
        print(f"epoch {epoch + 1}/{args.epochs} ({seconds:.1f} s): {shown}", flush=True)
        if cluster.is_chief:
            save_checkpoint(run_dir, model, optimizer, {"history": history, "best": best, "stale": stale})
            write_history(run_dir, history)

    loss, final, probs = evaluate(eval_feeds["test"])
    protocol = {}
    if video3d.uses_clips(args) and video3d.test_views(args) != (1, 1):
        views = ttdata.MultiViewFeed(store, split.test, ispec, args.batch_size, *video3d.test_views(args),
                                     reader=reader)
        loss, final, protocol = video3d.evaluate_views(
            views, lambda x: predict_step(tf.constant(x)).numpy(), classification_metrics, multilabel)
    reader.close()
    metrics = {k: v for k, v in final.items() if k not in ("confusion", "average_precision")}
    metrics.update({
        "test_loss": loss, "params_input_to_hidden": _safe(lambda: input_to_hidden_params(model)),
        "params_total": int(model.count_params()), "epochs": len(history),
        "epoch_seconds": [h["seconds"] for h in history], "peak_rss_mb": round(peak_rss_mb(), 1),
        "num_train": int(len(train_rows)), "num_val": int(len(val_rows)), "num_test": int(len(split.test)),
        "protocol": args.protocol, "fold": args.fold, "split": split.description, "dataset": spec.name,
        "model": model_label(args), "command": " ".join([sys.executable, "-m", f"experiments.{spec.name}"] + list(argv)),
        "versions": package_versions(), "threads": threads, "classes": list(store.classes),
        "padding_waste": round(train_feed.padding_waste(), 4), **protocol,
    })
    for key in ("confusion", "average_precision"):
        if key in final:
            metrics[key] = final[key]
    if cluster.is_chief:
        model.save(run_dir / "model.keras")
        plot_curves(run_dir, history, multilabel)
        plot_confusion(run_dir, final, list(store.classes), multilabel)
        atomic_write(run_dir / "metrics.json", json.dumps(metrics, indent=2, default=str))
    store.close()
    if cluster.num_workers > 1:  # a last collective, so no worker exits while another still talks to it
        from tf_config.cluster import agree_on_int
        agree_on_int(cluster.strategy, len(history))
    key = "map" if multilabel else "accuracy"
    print(f"test {key}: {metrics[key]:.4f}" + (f"  mean class accuracy: {metrics['mean_class_accuracy']:.4f}"
                                             if "mean_class_accuracy" in metrics else "") + f"  ({run_dir})")
    return metrics


def _safe(fn):
    try:
        return fn()
    except (ValueError, AttributeError):
        return None


def main(spec, argv=None):
    """CLI entry: parse, apply threads (before TensorFlow starts), pick the strategy, run. Returns an exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(spec)
    parser.set_defaults(**spec.defaults)
    if "--demo" in argv:  # the demo's defaults; options given on the command line still win
        parser.set_defaults(**spec.demo_defaults)
    args = parser.parse_args(argv)
    try:
        validate(args, spec)
        import tf_config.cluster
        import tf_config.threads
        try:
            threads = tf_config.threads.apply_threads(args)
            cluster = tf_config.cluster.make_strategy(args)
        except (ValueError, RuntimeError) as exc:
            raise UsageError(str(exc)) from None
        if args.demo and not args.data:
            args.data = str(spec.demo(args))
        run(args, spec, threads, cluster, argv)
        return 0
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to continue from the last saved epoch", file=sys.stderr)
        return 130
