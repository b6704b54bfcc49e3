"""Phase 0, before TensorFlow: the store, the split and the run directory, checked so that bad input fails fast and
alone (one line, exit 2), and the run directory locked for its one writer.

The run directory: --out; else the newest runs/<dataset>-<label>-* of the same command (its result returned when
finished, continued when not), unless --fresh; else a new timestamped one. A directory resumes only onto the data
it started on (`run_dir.check_data`) and from a checkpoint that reads (`run_dir.check_checkpoint`).
"""
import datetime
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np

from experiments import run_dir as rd
from experiments.families.shared import check_input_kind
from experiments.trainer.options import family_of, identity, model_label, validate
from ttrnn.cli import UsageError

RUNS = Path("runs")   # where runs go without --out (relative to the working directory)


def open_store(path, spec):
    """The FrameStore at `path` (frames, or per-frame CNN features), checked to be a store this dataset CLI can
    train on, with its shard folder beside
    it (`FrameStore.check_shards`: a store copied without OUT.clips/ fails here, in one line, not at its first
    read after TensorFlow has started)."""
    from ttrnn.store import FrameStore, StoreError
    from ttrnn.store.schema import rebuild_hint
    if Path(path).is_dir():
        raise UsageError(f"--data {path} is a directory; give the store file (.h5) made by "
                         f"`python -m preprocess.{spec.name} SRC STORE.h5`")
    if not Path(path).is_file():
        raise UsageError(f"no store at {path}" + (rebuild_hint(path) or f" (make one with `python -m "
                                                                        f"preprocess.{spec.name} SRC {path}`)"))
    try:
        store = FrameStore(path)
        kind = store.attrs.get("dataset")
        n = len(store)
    except (StoreError, OSError, KeyError) as exc:
        if rebuild_hint(path):   # a damaged index beside its shards: the message says how to rebuild it
            raise UsageError(str(exc)) from None
        raise UsageError(f"{path} is not a ttrnn frame store ({exc})") from None
    if kind not in spec.stores:
        raise UsageError(f"{path} is a {kind!r} store; experiments.{spec.name} trains on "
                         f"{' or '.join(repr(s) for s in spec.stores)} stores")
    if n == 0:
        raise UsageError(f"{path} holds no clips")
    if spec.multilabel != bool(store.multilabel):
        raise UsageError(f"{path} is {'multi' if store.multilabel else 'single'}-label; "
                         f"experiments.{spec.name} expects {'multi' if spec.multilabel else 'single'}-label")
    try:
        store.check_shards()
    except StoreError as exc:
        store.close()
        raise UsageError(str(exc)) from None
    return store


def split_rows(args, spec, store):
    """(split, train rows, validation rows): the protocol's fold, with spec.val_fraction held out of training."""
    from ttrnn.data import splits
    try:
        split = (spec.split or splits.make_split)(store, args.protocol, args.fold)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    train_rows, val_rows = split.train, np.array([], dtype=np.int64)
    if spec.val_fraction > 0:
        train_rows, val_rows = splits.holdout(train_rows, spec.val_fraction, args.seed)
    return split, train_rows, val_rows


def fingerprint(store, split, train_rows, val_rows):
    """The data a run trains and evaluates on (run_dir.data_fingerprint): the store and its splits' clip ids."""
    return rd.data_fingerprint(store, {"train": train_rows, "val": val_rows, "test": split.test})


def resolve_run_dir(args, spec, num_workers):
    """The run directory of this command (see the module docstring); with several workers a name derived from the
    command's identity, so that every worker agrees on it without talking."""
    if args.out:
        return Path(args.out)
    prefix = f"{spec.name}-{model_label(args)}-"
    ident = identity(args)
    if num_workers > 1:
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
    config = rd.read_config(run_dir) if run_dir.is_dir() else None   # UsageError naming a config that is no JSON
    has_config = config is not None
    existing = config.get("args_identity") if has_config else ident
    if (run_dir / rd.METRICS).exists():
        if existing != ident:
            raise UsageError(f"{run_dir} holds a finished run of a different command; choose another --out")
        return True
    if existing != ident:
        raise UsageError(f"{run_dir} holds a run of a different command; choose another --out")
    if run_dir.is_file() or (run_dir.exists() and not has_config
                             and any(p.name != rd.LOCK for p in run_dir.iterdir())):
        raise UsageError(f"{run_dir} exists and is not a run directory; choose another --out")
    return False


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
        check_input_kind(family_of(args), args, store)   # a feature store feeds the rnn family only
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
        return None, None    # the chief takes the lock once the cluster says which worker it is (train.run)
    lock = rd.RunLock(run_dir).acquire()
    if check_run_dir(run_dir, identity(args)):  # it finished while we looked
        lock.release()
        return run_dir, None
    return None, lock
