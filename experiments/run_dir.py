"""The run directory on disk: the checkpoint (weights + optimizer + state), history.csv, and finding
an unfinished run of the same command to resume. Plain files and NumPy only (no TensorFlow import here).
"""
import csv
import io
import json
from pathlib import Path

import numpy as np

from experiments.cli import atomic_write

CHECKPOINT = "checkpoint.npz"


def recorded_identity(run_dir):
    """The `args_identity` stored in run_dir/config.json, or None when there is no readable config."""
    try:
        return json.loads((Path(run_dir) / "config.json").read_text()).get("args_identity")
    except (OSError, ValueError, AttributeError):
        return None


def find_previous(base, prefix, ident):
    """The newest run directory base/prefix* recorded with identity `ident` that finished (metrics.json) or saved
    an epoch (the checkpoint), or None: the same command run again returns the one or continues the other."""
    base = Path(base)
    if not base.is_dir():
        return None
    for cand in sorted(base.glob(prefix + "*"), reverse=True):
        if ((cand / CHECKPOINT).exists() or (cand / "metrics.json").exists()) and recorded_identity(cand) == ident:
            return cand
    return None


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
    keys = list(dict.fromkeys(k for row in history for k in row))   # rows of older runs may lack a column
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    atomic_write(Path(run_dir) / "history.csv", buf.getvalue())

