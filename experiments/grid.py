"""The grid file of `experiments.sweep`: read and check it, name its runs, expand it into their commands.

Grid file (JSON object). Axis keys take a list (a scalar means a one-element list); the runs are their cartesian
product, minus combinations matching an entry of ``exclude``:

    dataset, model, use_tt (bool → --use-tt), decomposition, rank (string: "4" or "1,4,4,4,1"), blocks,
    recurrent_decomposition, recurrent_rank, integrated (bool → --integrated), max_len, frame_skip, sample_frames,
    protocol, fold, seed, batch_size, lr, preset

A feature store (`python -m experiments.features`) goes in ``data`` like a frame store; the dataset's CLI reads
which kind it is.

``null`` in an axis means "leave the flag out" (the CLI's default). Other keys: ``data`` (dataset → store path, or
null to pass no ``--data``), ``epochs`` (int), ``extra`` (list of extra CLI arguments for every run), ``exclude``
(list of partial axis assignments), ``command`` (program prefix, default ``["{python}", "-m",
"experiments.{dataset}"]``; ``{python}`` is this interpreter), ``threads_preset`` (SLURM runs, default ``auto``),
``slurm`` (object of extra ``#SBATCH --key=value`` options, e.g. ``{"time": "48:00:00", "cpus-per-task": 8}``),
``description`` (free text, ignored). The grids shipped in experiments/grids/ are found by name.

Each run gets a deterministic directory ``RUNS_DIR/<dataset>-<model>[-tt]-len<L>-skip<K>-...-fold<F>-seed<S>``.
Plain Python: checking a grid starts no TensorFlow.
"""

import itertools
import json
import sys
from pathlib import Path

from experiments.families import MODEL_CHOICES

# axis name → CLI flag; the order fixes the run-name layout and the flag order
AXES = ("dataset", "model", "use_tt", "decomposition", "rank", "blocks", "recurrent_decomposition", "recurrent_rank",
        "integrated", "max_len", "frame_skip", "sample_frames", "protocol", "fold", "seed", "batch_size", "lr",
        "preset")
AXIS_TYPES = {"dataset": str, "model": str, "use_tt": bool, "decomposition": str, "rank": str, "blocks": int,
              "recurrent_decomposition": str, "recurrent_rank": str, "integrated": bool, "max_len": int,
              "frame_skip": int, "sample_frames": int, "protocol": str, "fold": int, "seed": int, "batch_size": int,
              "lr": float, "preset": str}
NAME_PREFIX = {"rank": "rank", "blocks": "blocks", "recurrent_decomposition": "rec", "recurrent_rank": "rrank",
               "max_len": "len", "frame_skip": "skip", "sample_frames": "frames", "fold": "fold", "seed": "seed",
               "batch_size": "bs", "lr": "lr", "preset": "preset_"}
FLAG_NAMES = {"use_tt": "tt", "integrated": "integrated"}   # what a true flag axis adds to the run name
OTHER_KEYS = {"data", "epochs", "extra", "exclude", "command", "threads_preset", "slurm", "description"}
DEFAULT_COMMAND = ["{python}", "-m", "experiments.{dataset}"]
GRIDS = Path(__file__).with_name("grids")     # the grids shipped with the package, found by name


class GridError(ValueError):
    """Malformed grid file; the message is one line."""


def _check_value(axis, value):
    """Type-check one axis value (None allowed = leave the flag out)."""
    kind = AXIS_TYPES[axis]
    if value is None:
        return value
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str) and value != "" and all(c.isalnum() or c in "-_." for c in value)
    if not ok:
        raise GridError(f"grid: {axis} value {value!r} must be {'a ' + kind.__name__ if kind is not str else 'a name'}")
    return value


def grid_path(name):
    """A grid file: the path as given when it exists, else the shipped grid of that name (ucf11_paper)."""
    if Path(name).exists() or Path(name).suffix == ".json" or "/" in str(name):
        return Path(name)
    return GRIDS / f"{name}.json"


def shipped_grids():
    return ", ".join(sorted(p.stem for p in GRIDS.glob("*.json")))


def missing_stores(grid):
    """The grid's store paths (the `data` values) that do not exist (relative ones from this directory)."""
    return [str(p) for p in grid["data"].values() if p is not None and not Path(p).expanduser().exists()]


def load_grid(path):
    """Read and validate a grid file → dict with ``axes`` (name → list) and the other keys; raises GridError."""
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as e:
        raise GridError(f"cannot read grid {str(path)!r}: {e.strerror or e} (a path, or the name of a shipped grid: "
                        f"{shipped_grids()})") from None
    except ValueError as e:
        raise GridError(f"grid {str(path)!r} is not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise GridError(f"grid {str(path)!r} must be a JSON object")
    unknown = set(raw) - set(AXES) - OTHER_KEYS
    if unknown:
        raise GridError(f"grid: unknown keys {', '.join(sorted(unknown))} (axes: {', '.join(AXES)}; "
                        f"other: {', '.join(sorted(OTHER_KEYS))})")
    for required in ("dataset", "model"):
        if required not in raw:
            raise GridError(f"grid: missing {required!r}")
    axes = {}
    for axis in AXES:
        if axis not in raw:
            continue
        values = raw[axis] if isinstance(raw[axis], list) else [raw[axis]]
        if not values:
            raise GridError(f"grid: {axis} is an empty list")
        values = [_check_value(axis, v) for v in values]
        if len(set(map(json.dumps, values))) != len(values):
            raise GridError(f"grid: {axis} lists a value twice")
        axes[axis] = values
    if any(v is None for v in axes["dataset"] + axes["model"]):
        raise GridError("grid: dataset and model cannot be null")
    unknown_models = [m for m in axes["model"] if m not in MODEL_CHOICES]
    if unknown_models:
        raise GridError(f"grid: unknown model {unknown_models[0]!r} (choose from {', '.join(MODEL_CHOICES)})")
    data = raw.get("data", {})
    if not isinstance(data, dict) or not all(v is None or isinstance(v, str) for v in data.values()):
        raise GridError('grid: data must map dataset names to store paths (or null), e.g. {"ucf11": "ucf11.h5"}')
    missing = [d for d in axes["dataset"] if d not in data]
    if missing:
        raise GridError(f"grid: no data path for dataset(s) {', '.join(missing)} (use null to pass no --data)")
    epochs = raw.get("epochs")
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1):
        raise GridError("grid: epochs must be a positive integer")
    extra = raw.get("extra", [])
    if not isinstance(extra, list) or not all(isinstance(a, (str, int, float)) for a in extra):
        raise GridError("grid: extra must be a list of command-line arguments")
    command = raw.get("command", DEFAULT_COMMAND)
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        raise GridError("grid: command must be a non-empty list of strings")
    exclude = raw.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(e, dict) and e for e in exclude):
        raise GridError('grid: exclude must be a list of non-empty objects like {"model": "mlp", "use_tt": false}')
    for entry in exclude:
        bad = set(entry) - set(axes)
        if bad:
            raise GridError(f"grid: exclude names {', '.join(sorted(bad))}, which the grid does not vary")
    preset = raw.get("threads_preset", "auto")
    if not isinstance(preset, str) or not preset:
        raise GridError("grid: threads_preset must be a preset name")
    slurm = raw.get("slurm", {})
    if not isinstance(slurm, dict) or not all(isinstance(v, (str, int)) for v in slurm.values()):
        raise GridError("grid: slurm must map sbatch option names to strings or integers")
    return {"axes": axes, "data": data, "epochs": epochs, "extra": [str(a) for a in extra], "command": command,
            "exclude": exclude, "threads_preset": preset, "slurm": slurm}


def run_name(values):
    """Deterministic directory name of one run from its axis values, e.g. ``ucf11-gru-tt-len1492-skip1-fold0-seed0``."""
    parts = []
    for axis in AXES:
        if axis not in values or values[axis] is None:
            continue
        value = values[axis]
        if AXIS_TYPES[axis] is bool:
            if value:
                parts.append(FLAG_NAMES[axis])
        elif axis == "lr":
            parts.append(f"lr{value:g}")
        else:
            parts.append(f"{NAME_PREFIX.get(axis, '')}{value}")
    return "-".join(parts)


def expand(grid, runs_dir, threads=None):
    """Grid → list of runs ``{"name", "values", "out", "command"}`` in a stable order.

    ``threads``: list of thread arguments appended to every command (e.g. ``["--intra-op", "1", "--inter-op", "2"]``).
    """
    axes = grid["axes"]
    names = [a for a in AXES if a in axes]
    runs = []
    for combo in itertools.product(*(axes[a] for a in names)):
        values = dict(zip(names, combo))
        if any(all(values.get(k) == v for k, v in entry.items()) for entry in grid["exclude"]):
            continue
        name = run_name(values)
        out = Path(runs_dir).resolve() / name
        fields = {"python": sys.executable, **{k: "" if v is None else v for k, v in values.items()}}
        try:
            command = [part.format(**fields) for part in grid["command"]]
        except (KeyError, IndexError, ValueError) as e:
            raise GridError(f"grid: command placeholder {e} is not one of {', '.join(sorted(fields))}") from None
        data = grid["data"].get(values["dataset"])
        if data is not None:
            command += ["--data", str(Path(data).expanduser().resolve())]
        for axis in names:
            if axis == "dataset" or values[axis] is None:
                continue
            flag = "--" + axis.replace("_", "-")
            if AXIS_TYPES[axis] is bool:
                command += [flag] if values[axis] else []
            else:
                command += [flag, str(values[axis])]
        if grid["epochs"] is not None:
            command += ["--epochs", str(grid["epochs"])]
        command += ["--out", str(out)] + list(grid["extra"]) + list(threads or [])
        runs.append({"name": name, "values": values, "out": str(out), "command": command})
    if not runs:
        raise GridError("grid: every combination is excluded")
    if len({r["name"] for r in runs}) != len(runs):
        raise GridError("grid: two runs would share a directory name")
    return runs
