"""The run directory on disk: its one writer (a lock), what it trained on (the data fingerprint), atomic writes,
the checkpoint (weights + dropout seed states + optimizer + state), history.csv, strict-JSON metrics, and finding
an unfinished run of the same command to resume. Plain files and NumPy only (no TensorFlow import here).

Every failure here is one line: `UsageError` (exit 2) when the directory refuses the command before anything is
written, `RunError` (exit 1) when a write or a read fails during the run (ttrnn/cli.py).
"""
import csv
import errno
import io
import json
import math
import os
import socket
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ttrnn.cli import RunError, UsageError, atomic_write
from ttrnn.store.files import FileLock

# The files of a run directory: every module names them through these constants.
CONFIG = "config.json"            # the command's arguments and their identity (what a resume must match)
DATA = "data.json"                # the data fingerprint (store, split) the run trained on
CHECKPOINT = "checkpoint.npz"     # weights, optimizer, seed states and epoch of the last finished epoch
HISTORY = "history.csv"           # one row per finished epoch
METRICS = "metrics.json"          # the final report; its presence marks a finished run
MODEL = "model.keras"             # the trained model
CURVES = "curves.png"             # loss / accuracy per epoch
CONFUSION = "confusion.png"       # the test confusion matrix
TENSORIZED = "tensorized.json"    # experiments.tensorize: what the dense run became
SAVED_MODEL_DIR = "saved_model"   # experiments.export --format savedmodel: the TensorFlow SavedModel folder
ONNX_FILE = "model.onnx"          # experiments.export --format onnx
TFLITE_FILE = "model.tflite"      # experiments.export --format litert
LOCK = "run.lock"                 # the one writer's flock


# --- one writer per run directory --------------------------------------------------------------------------------
class RunLock:
    """The only writer of a run directory: an exclusive `flock` on <run_dir>/run.lock, held from before the first
    write until the process ends, with the holder's PID, host and start time written in the file.

    The kernel drops a flock when its process dies, however it dies (SIGKILL, OOM, a node reboot releases NFS
    locks), so a lock file left behind by a dead run is recognized as stale simply by the lock being free; its old
    record is then overwritten. Where the file system has no locks (ENOLCK, EOPNOTSUPP) the record decides: a live
    process of this host named in it holds the directory. The file is never deleted while a run may hold it (an
    unlinked lock file would let two processes hold "the" lock); `release(cleanup=True)` removes only a directory
    this lock created and that holds nothing else.
    """

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK
        self._lock = None         # the FileLock while held
        self._created = False

    def acquire(self):
        """Create the run directory if needed and take the lock; UsageError naming the holder if another process
        holds it, or if the directory cannot be created or written."""
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise UsageError(f"{self.run_dir} exists and is not a run directory; choose another --out")
        self._created = not self.run_dir.exists()
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the run directory {self.run_dir}: {exc.strerror or exc}; "
                             "choose another --out") from None
        try:
            lock = FileLock(self.path)
        except OSError as exc:
            self._remove_created()
            raise UsageError(f"the run directory {self.run_dir} is not writable ({exc.strerror or exc}); "
                             "choose another --out") from None
        try:
            held = lock.acquire(blocking=False)
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            holder = self._holder(lock.fd)
            if holder and holder.get("host") == socket.gethostname() and holder.get("pid") != os.getpid() \
                    and pid_alive(holder.get("pid")):
                lock.release()
                raise UsageError(f"{self.run_dir} is in use by {describe(holder)}; wait for it to end or choose "
                                 "another --out") from None
            held = True   # no locks on this file system: the record above decided
        if not held:
            holder = self._holder(lock.fd, wait=True)
            lock.release()
            raise UsageError(f"{self.run_dir} is in use by {describe(holder)}: one writer per run directory; "
                             "wait for it to end or choose another --out")
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(lock.fd, 0)
        os.pwrite(lock.fd, (json.dumps(record) + "\n").encode(), 0)
        self._lock = lock
        return self

    def _holder(self, fd, wait=False):
        """The lock file's record; with `wait`, give a holder that just took the lock a moment to write its own
        (until then the file may still hold a dead run's record)."""
        for _ in range(20 if wait else 1):
            try:
                holder = json.loads(os.pread(fd, 4096, 0).decode() or "null")
            except (OSError, ValueError):
                holder = None
            if not wait or (holder and (holder.get("host") != socket.gethostname() or pid_alive(holder.get("pid")))):
                return holder
            time.sleep(0.1)
        return holder

    def release(self, cleanup=False):
        """Drop the lock (closing the file releases it); `cleanup`: also remove the directory if this lock created
        it and nothing else was written into it (a run refused or failed before its first file)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
            if cleanup:
                self._remove_created()

    def _remove_created(self):
        try:
            if self._created and {p.name for p in self.run_dir.iterdir()} <= {LOCK}:
                self.path.unlink(missing_ok=True)
                self.run_dir.rmdir()
        except OSError:   # removed or filled meanwhile by someone else: theirs now
            pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, kind, exc, tb):
        self.release(cleanup=kind is not None)


def describe(holder):
    if not holder:
        return "another process (its PID is not recorded yet)"
    return f"PID {holder.get('pid')} on {holder.get('host')} (since {holder.get('started')})"


def pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:  # a live process of another user
        return True
    return True


# --- config.json, resuming ---------------------------------------------------------------------------------------
def read_json(path):
    """The JSON value in `path`; None when the file does not exist; UsageError (naming the file) when it cannot be
    read or is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc}); repair it or choose another --out") from None


def read_config(run_dir):
    """run_dir/config.json as a dict; None when there is none; UsageError (naming the file) when it is not a JSON
    object."""
    path = Path(run_dir) / CONFIG
    config = read_json(path)
    if config is None:
        return None
    if not isinstance(config, dict):
        raise UsageError(f"{path} is not a run config (a JSON object); repair it or choose another --out")
    return config


def recorded_identity(run_dir):
    """The `args_identity` stored in run_dir/config.json, or None when there is no readable config."""
    try:
        return (read_config(run_dir) or {}).get("args_identity")
    except UsageError:
        return None


def find_previous(base, prefix, ident):
    """The newest run directory base/prefix* recorded with identity `ident` that finished (metrics.json) or saved
    an epoch (the checkpoint), or None: the same command run again returns the one or continues the other."""
    base = Path(base)
    if not base.is_dir():
        return None
    for cand in sorted(base.glob(prefix + "*"), reverse=True):
        if ((cand / CHECKPOINT).exists() or (cand / METRICS).exists()) and recorded_identity(cand) == ident:
            return cand
    return None


# --- what a run trained on ---------------------------------------------------------------------------------------
STORE_IDENTITY = ("dataset", "created", "width", "height", "frame_skip", "fps")


def data_fingerprint(store, splits):
    """What a run trains and evaluates on: the store's identity (its attributes that change when it is rebuilt or
    re-preprocessed, and its clip count) and, per split name in `splits` ({name: store rows}), the clip ids."""
    ids = np.asarray(store.index["clip_id"])
    attrs = store.attrs
    return {"store": {**{k: attrs.get(k) for k in STORE_IDENTITY}, "clips": int(len(store))},
            "splits": {name: [str(c) for c in ids[np.asarray(rows, dtype=np.int64)]] for name, rows in splits.items()}}


def record_data(run_dir, fingerprint):
    atomic_write(Path(run_dir) / DATA, json.dumps(strict(fingerprint), allow_nan=False))


def check_data(run_dir, fingerprint):
    """UsageError saying what changed when run_dir/data.json records other data than `fingerprint`; False when the
    run has no record yet (a new run, or one made before fingerprints), True when it matches."""
    recorded = read_json(Path(run_dir) / DATA)
    if recorded is None:
        return False
    changes = data_changes(recorded, json.loads(json.dumps(fingerprint)))
    if changes:
        raise UsageError(f"{run_dir} was trained on other data: {'; '.join(changes)}; a run resumes only onto the "
                         f"data it started on: start a fresh run with another --out (or delete {run_dir})")
    return True


def data_changes(old, new):
    """Human-readable differences between two fingerprints (empty when equal)."""
    out = []
    os_, ns = old.get("store", {}), new.get("store", {})
    if os_.get("created") != ns.get("created"):
        out.append(f"the store was rebuilt (created {os_.get('created')}, now {ns.get('created')})")
    for key in ("dataset", "width", "height", "frame_skip", "fps", "clips"):
        if os_.get(key) != ns.get(key):
            out.append(f"store {key} {os_.get(key)} -> {ns.get(key)}")
    old_splits, new_splits = old.get("splits", {}), new.get("splits", {})
    for name in sorted(set(old_splits) | set(new_splits)):
        a, b = old_splits.get(name, []), new_splits.get(name, [])
        if a != b:
            added, removed = len(set(b) - set(a)), len(set(a) - set(b))
            detail = f"{added} added, {removed} removed" if added or removed else "same clips, other order"
            out.append(f"{name} split {len(a)} -> {len(b)} clips ({detail})")
    return out


# --- writing files -----------------------------------------------------------------------------------------------
def strict(value):
    """`value` with every non-finite float (NaN, inf) replaced by None, so it dumps as strict JSON."""
    if isinstance(value, float) or isinstance(value, np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def write_json(path, obj):
    """Atomically write `obj` as strict JSON (no NaN / Infinity tokens: they become null)."""
    atomic_write(path, json.dumps(strict(json.loads(json.dumps(obj, default=str))), indent=2, allow_nan=False))


def write_history(run_dir, history):
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))   # rows of older runs may lack a column
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    atomic_write(Path(run_dir) / HISTORY, buf.getvalue())


# --- the checkpoint ----------------------------------------------------------------------------------------------
def seed_states(model):
    """The model's dropout seed generator states (`model.variables` that are not weights), in layer order."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def save_checkpoint(run_dir, model, optimizer, state):
    """One npz, replaced atomically (a kill or a full disk leaves the previous one): weights w*, optimizer
    variables o* (iterations = the schedule's step, Adam moments, ...), dropout seed states s*, and the JSON state
    (history, early-stopping counters, and the layout: each array's name and shape, checked on loading).

    The data order and the augmentation draws need no state: `ttrnn.data.BatchFeed.epoch_plan` derives them from
    (seed, epoch), and the epoch to continue with is len(history). So a run resumed from this file continues
    exactly as an uninterrupted one (tests/end_to_end/test_run_safety.py)."""
    weights, opt, seeds = model.get_weights(), [np.asarray(v) for v in optimizer.variables], \
        [np.asarray(v) for v in seed_states(model)]
    layout = {"weights": [[v.path, list(v.shape)] for v in model.weights],
              "optimizer": [[v.path, list(v.shape)] for v in optimizer.variables],
              "seeds": [v.path for v in seed_states(model)]}
    arrays = {f"w{i}": w for i, w in enumerate(weights)}
    arrays.update({f"o{i}": v for i, v in enumerate(opt)})
    arrays.update({f"s{i}": v for i, v in enumerate(seeds)})
    arrays["state"] = np.frombuffer(json.dumps({**state, "layout": layout}).encode(), dtype=np.uint8)
    atomic_write(Path(run_dir) / CHECKPOINT, lambda f: np.savez(f, **arrays))


def read_checkpoint(path):
    """(state dict, {name: array}) of a checkpoint file, every array read (so a damaged member shows here);
    RunError naming the file if it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        state = json.loads(bytes(arrays.pop("state")).decode())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunError(f"cannot read the checkpoint {path} ({reason}); it is damaged: delete it to restart this "
                       "run from epoch 1, or choose another --out") from None
    return state, arrays


def check_checkpoint(run_dir):
    """RunError naming run_dir's checkpoint if it cannot be read (truncated, corrupted): checked before TensorFlow
    starts, so a damaged file costs a second, not a model build."""
    path = Path(run_dir) / CHECKPOINT
    if path.exists():
        read_checkpoint(path)


def load_checkpoint(run_dir, model, optimizer):
    """Restore a checkpoint into `model` and `optimizer` (weights, optimizer variables, seed states); returns its
    state dict, or None if there is none. RunError when the file is damaged or holds another model's arrays."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    state, arrays = read_checkpoint(path)
    targets = [("w", list(model.weights)), ("o", list(optimizer.variables)), ("s", seed_states(model))]
    for prefix, variables in targets:
        saved = sorted((k for k in arrays if k[0] == prefix and k[1:].isdigit()), key=lambda k: int(k[1:]))
        if prefix == "s" and not saved:
            continue  # a checkpoint of a version without seed states: dropout masks restart
        shapes = [tuple(arrays[k].shape) for k in saved]
        wanted = [tuple(v.shape) for v in variables]
        if shapes != wanted:
            why = describe_mismatch(prefix, shapes, wanted)
            raise RunError(f"the checkpoint {path} holds another model's arrays ({why}); config.json or the "
                           "checkpoint was changed by hand? delete the checkpoint to restart from epoch 1, or choose "
                           "another --out")
    for prefix, variables in targets:
        for i, var in enumerate(variables):
            if f"{prefix}{i}" in arrays:
                var.assign(arrays[f"{prefix}{i}"])
    state.pop("layout", None)
    return state


def describe_mismatch(prefix, saved, wanted):
    kind = {"w": "weight", "o": "optimizer variable", "s": "seed state"}[prefix]
    if len(saved) != len(wanted):
        return f"{len(saved)} {kind}s, the model has {len(wanted)}"
    i = next(i for i, (a, b) in enumerate(zip(saved, wanted)) if a != b)
    return f"{kind} {i} has shape {saved[i]}, the model's {wanted[i]}"


def save_model(run_dir, model):
    """model.keras, written through a temporary file like every other file of the run."""
    path = Path(run_dir) / MODEL
    # Keras writes the file by its name and wants the .keras suffix on the temporary one too.
    atomic_write(path, lambda f: model.save(f.name), tmp=path.with_name("model.tmp.keras"))
