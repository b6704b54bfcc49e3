"""What a finished run reports: classification metrics, curves and confusion plots, versions and peak memory.
NumPy, scikit-learn and matplotlib only (no TensorFlow import here).
"""
import platform
import resource
from pathlib import Path

import numpy as np

from experiments.run_dir import CONFUSION, CURVES


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


def resource_usage():
    """This process's counters so far (all threads): wall clock, user and system CPU seconds, minor and major page
    faults, bytes read from storage (/proc/self/io read_bytes: page-cache hits do not count; None where absent).
    The trainer records the difference over each training epoch (metrics.json `epoch_usage`), which is what
    `experiments.bench epoch` reads to tell kernel time and fault churn from the step's own work."""
    import time
    ru = resource.getrusage(resource.RUSAGE_SELF)
    read = None
    try:
        with open("/proc/self/io") as f:
            read = int(dict(line.split(": ", 1) for line in f.read().splitlines())["read_bytes"])
    except (OSError, KeyError, ValueError):
        pass
    return {"wall_s": time.perf_counter(), "user_s": ru.ru_utime, "sys_s": ru.ru_stime, "minor_faults": ru.ru_minflt,
            "major_faults": ru.ru_majflt, "read_bytes": read}


def usage_since(start):
    """`resource_usage()` now minus `start` (a dict of the same keys; None stays None), rounded for JSON."""
    now = resource_usage()
    return {k: (None if now[k] is None or start[k] is None else round(now[k] - start[k], 3)) for k in now}


def cross_entropy(y_true, probs, multilabel):
    """Mean loss of probabilities `probs` (N, C) against targets `y_true` (N, C): binary cross-entropy averaged over
    the classes (multi-label, sigmoid outputs) or categorical cross-entropy; probabilities clipped to [1e-7, 1-1e-7]
    as Keras's losses do."""
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    if multilabel:
        return float(np.mean(-(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)).mean(axis=1)))
    return float(np.mean(-np.sum(y_true * np.log(p), axis=1)))


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
    fig.savefig(Path(run_dir) / CURVES, dpi=100)
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
    fig.savefig(Path(run_dir) / CONFUSION, dpi=100)
    plt.close(fig)

