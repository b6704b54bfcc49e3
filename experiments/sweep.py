"""Expand a grid of experiments into runs and execute them locally (K at a time) or as a SLURM array job.

    python -m experiments.sweep ucf11_paper --backend local --parallel 2    # a shipped grid by name, or a path
    python -m experiments.sweep GRID.json --backend slurm [--submit]      # writes sweep.sbatch + manifest
    python -m experiments.tables RUNS_DIR                                 # then aggregate

Grid file (JSON object). Axis keys take a list (a scalar means a one-element list); the runs are their cartesian
product, minus combinations matching an entry of ``exclude``:

    dataset, model, use_tt (bool → --use-tt), decomposition, rank (string: "4" or "1,4,4,4,1"), blocks, max_len,
    frame_skip, sample_frames, protocol, fold, seed, batch_size, lr, preset

``null`` in an axis means "leave the flag out" (the CLI's default). Other keys: ``data`` (dataset → store path, or
null to pass no ``--data``), ``epochs`` (int), ``extra`` (list of extra CLI arguments for every run), ``exclude``
(list of partial axis assignments), ``command`` (program prefix, default ``["{python}", "-m",
"experiments.{dataset}"]``; ``{python}`` is this interpreter), ``threads_preset`` (SLURM runs, default ``auto``),
``slurm`` (object of extra ``#SBATCH --key=value`` options, e.g. ``{"time": "48:00:00", "cpus-per-task": 8}``),
``description`` (free text, ignored).

Each run gets a deterministic directory ``RUNS_DIR/<dataset>-<model>[-tt]-len<L>-skip<K>-...-fold<F>-seed<S>`` and
is finished when ``RUN_DIR/metrics.json`` exists; finished runs are skipped on re-run (the experiment CLIs resume an
interrupted run from its last checkpoint when started again with the same command). Local runs split the machine's
physical cores over the K parallel runs (``--intra-op cores/K --inter-op 2``); SLURM tasks use
``--threads-preset`` (``auto`` counts the cores SLURM allocated). Logs go to ``RUNS_DIR/logs/<run>.log``.
"""

import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from experiments.families import MODEL_CHOICES
from ttrnn.cli import OneLineParser, atomic_write

# axis name → CLI flag; the order fixes the run-name layout and the flag order
AXES = ("dataset", "model", "use_tt", "decomposition", "rank", "blocks", "max_len", "frame_skip", "sample_frames",
        "protocol", "fold", "seed", "batch_size", "lr", "preset")
AXIS_TYPES = {"dataset": str, "model": str, "use_tt": bool, "decomposition": str, "rank": str, "blocks": int,
              "max_len": int, "frame_skip": int, "sample_frames": int, "protocol": str, "fold": int, "seed": int,
              "batch_size": int, "lr": float, "preset": str}
NAME_PREFIX = {"rank": "rank", "blocks": "blocks", "max_len": "len", "frame_skip": "skip", "sample_frames": "frames",
               "fold": "fold", "seed": "seed", "batch_size": "bs", "lr": "lr", "preset": "preset_"}
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
        raise GridError("grid: exclude must be a list of non-empty objects like {\"model\": \"mlp\", \"use_tt\": false}")
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
        if axis == "use_tt":
            if value:
                parts.append("tt")
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
            if axis == "use_tt":
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


def is_finished(run):
    """A run is finished when its run directory holds metrics.json."""
    return (Path(run["out"]) / "metrics.json").is_file()


def local_threads(parallel, cores=None):
    """Thread flags giving each of PARALLEL local runs an equal share of the physical cores."""
    if cores is None:
        from tf_config.threads import physical_cores

        cores = physical_cores()
    intra = max(1, cores // parallel)
    return ["--intra-op", str(intra), "--inter-op", "2"]


def write_manifest(runs_dir, runs, pending, backend):
    """manifest.json (every run, its status and array index) and manifest.txt (one pending command per line)."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    index = {r["name"]: i for i, r in enumerate(pending)}
    entries = [{"name": r["name"], "out": r["out"], "values": r["values"], "command": r["command"],
                "finished": is_finished(r), "array_index": index.get(r["name"])} for r in runs]
    atomic_write(runs_dir / "manifest.json", json.dumps({"backend": backend, "runs": entries}, indent=1) + "\n")
    atomic_write(runs_dir / "manifest.txt", "".join(shlex.join(r["command"]) + "\n" for r in pending))


def slurm_script(runs_dir, n_tasks, options, workdir=None, nodes=1, tasks_per_node=1):
    """Text of an sbatch array script: task i runs line i+1 of manifest.txt (skipped if already finished).
    With nodes x tasks_per_node > 1 each array task is one multi-node data-parallel job: `srun` starts one trainer
    per SLURM task and the trainers build their cluster with TensorFlow's SlurmClusterResolver."""
    runs_dir = Path(runs_dir).resolve()
    workdir = Path(workdir or os.getcwd()).resolve()
    multi = nodes * tasks_per_node > 1
    opts = {"job-name": "ttrnn-sweep", "output": str(runs_dir / "logs" / "slurm-%A_%a.out"),
            **({"nodes": nodes, "ntasks-per-node": tasks_per_node} if multi else {}), **options}
    lines = ["#!/bin/bash", f"#SBATCH --array=0-{n_tasks - 1}"]
    lines += [f"#SBATCH --{k}={v}" for k, v in opts.items() if k != "array"]
    lines += [
        "# Written by python -m experiments.sweep; one array task per pending run of manifest.txt.",
        "set -euo pipefail",
        f"cd {shlex.quote(str(workdir))}",
        f"MANIFEST={shlex.quote(str(runs_dir / 'manifest.txt'))}",
        'CMD=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$MANIFEST")',
        'if [ -z "$CMD" ]; then echo "no manifest line for task $SLURM_ARRAY_TASK_ID" >&2; exit 1; fi',
        'OUT=$(eval "set -- $CMD"; while [ $# -gt 0 ]; do if [ "$1" = --out ]; then echo "$2"; fi; shift; done)',
        'if [ -n "$OUT" ] && [ -f "$OUT/metrics.json" ]; then echo "finished already: $OUT"; exit 0; fi',
        'echo "task $SLURM_ARRAY_TASK_ID on $(hostname): $CMD"',
        'eval "exec srun --kill-on-bad-exit=1 $CMD"' if multi else 'eval "exec $CMD"',
    ]
    return "\n".join(lines) + "\n"


def run_local(runs, parallel, logs_dir):
    """Run commands with at most PARALLEL at a time; return the names of failed runs. Ctrl-C stops them all."""
    logs_dir = Path(logs_dir)
    logs_dir.mkdir(parents=True, exist_ok=True)
    queue, active, failed = list(runs), {}, []
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("TF_CONFIG", None)  # a sweep's runs are independent single-worker jobs
    try:
        while queue or active:
            while queue and len(active) < parallel:
                run = queue.pop(0)
                log = open(logs_dir / f"{run['name']}.log", "ab")
                try:
                    proc = subprocess.Popen(run["command"], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
                except OSError as e:
                    log.close()
                    print(f"sweep: {run['name']}: cannot start: {e.strerror or e}", file=sys.stderr)
                    failed.append(run["name"])
                    continue
                active[proc] = (run, log, time.monotonic())
                print(f"sweep: started {run['name']}", flush=True)
            for proc in [p for p in active if p.poll() is not None]:
                run, log, start = active.pop(proc)
                log.close()
                took = time.monotonic() - start
                if proc.returncode == 0 and is_finished(run):
                    print(f"sweep: finished {run['name']} ({took:.0f} s)", flush=True)
                else:
                    why = f"exit {proc.returncode}" if proc.returncode else "no metrics.json"
                    print(f"sweep: FAILED {run['name']} ({why}; log {logs_dir / (run['name'] + '.log')})",
                          file=sys.stderr, flush=True)
                    failed.append(run["name"])
            time.sleep(0.1)
    except KeyboardInterrupt:
        for proc in active:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc, (run, log, _) in active.items():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
        raise
    return failed


def write_slurm(args, grid, runs_dir, pending, prog):
    """Write (and with --submit, submit) the sbatch array script of the pending runs -> exit status."""
    script = runs_dir / "sweep.sbatch"
    if not pending:
        print("sweep: nothing to submit")
        return 0
    (runs_dir / "logs").mkdir(parents=True, exist_ok=True)
    atomic_write(script, slurm_script(runs_dir, len(pending), {str(k): v for k, v in grid["slurm"].items()},
                                       nodes=args.nodes, tasks_per_node=args.tasks_per_node))
    print(f"sweep: wrote {script} ({len(pending)} array tasks) and {runs_dir / 'manifest.txt'}")
    if args.submit:
        try:
            done = subprocess.run(["sbatch", str(script)], capture_output=True, text=True)
        except OSError as e:
            print(f"{prog}: error: cannot run sbatch: {e.strerror or e}", file=sys.stderr)
            return 2
        if done.returncode != 0:
            print(f"{prog}: error: sbatch failed: {(done.stderr.strip().splitlines() or [''])[-1]}",
                  file=sys.stderr)
            return 1
        print(done.stdout.strip())
    else:
        print(f"sweep: submit with: sbatch {shlex.quote(str(script))}")
    return 0


def main(argv=None):
    parser = OneLineParser(prog="python -m experiments.sweep",
                           description="Expand a grid of experiments and run it locally or on SLURM.")
    parser.add_argument("grid", help=f"grid JSON file, or the name of a shipped grid ({shipped_grids()})")
    parser.add_argument("--backend", choices=("local", "slurm"), default="local")
    parser.add_argument("--parallel", type=int, default=1, metavar="K",
                        help="local: runs at a time, the physical cores split between them (default 1)")
    parser.add_argument("--runs-dir", default=None, metavar="DIR", help="where run directories go "
                        "(default runs/<grid name>)")
    parser.add_argument("--submit", action="store_true", help="slurm: submit the script with sbatch")
    parser.add_argument("--nodes", type=int, default=1, metavar="N",
                        help="slurm: nodes per run; with --tasks-per-node, each run is one multi-node srun job "
                             "(one trainer per task, data-parallel; default 1)")
    parser.add_argument("--tasks-per-node", type=int, default=1, metavar="K",
                        help="slurm: trainers per node of each run (default 1)")
    parser.add_argument("--dry-run", action="store_true", help="print the pending commands, write and run nothing")
    args = parser.parse_args(argv)
    for name in ("parallel", "nodes", "tasks_per_node"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.backend != "slurm" and args.nodes * args.tasks_per_node > 1:
        parser.error("--nodes / --tasks-per-node need --backend slurm (locally: python -m experiments.launch)")
    runs_dir = Path(args.runs_dir or Path("runs") / Path(args.grid).stem)
    try:
        grid = load_grid(grid_path(args.grid))
        missing = missing_stores(grid)
        if missing and args.backend == "local" and not args.dry_run:
            raise GridError(f"no store at {', '.join(missing)} (make it with python -m preprocess.<layout>, or set "
                            "the grid's data)")
        for path in missing:
            print(f"sweep: warning: no store at {path} yet (the runs need it where they start)", file=sys.stderr)
        threads = (local_threads(args.parallel) if args.backend == "local"
                   else ["--threads-preset", grid["threads_preset"]])
        runs = expand(grid, runs_dir, threads)
    except GridError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    pending = [r for r in runs if not is_finished(r)]
    print(f"sweep: {len(runs)} runs, {len(runs) - len(pending)} finished, {len(pending)} to run "
          f"({args.backend}) in {runs_dir}", flush=True)
    if args.dry_run:
        for r in pending:
            print(shlex.join(r["command"]))
        return 0
    write_manifest(runs_dir, runs, pending, args.backend)
    if args.backend == "slurm":
        return write_slurm(args, grid, runs_dir, pending, parser.prog)
    if not pending:
        print("sweep: nothing to run")
        return 0
    try:
        failed = run_local(pending, args.parallel, runs_dir / "logs")
    except KeyboardInterrupt:
        print("sweep: interrupted; rerun the same command to continue (finished runs are skipped)", file=sys.stderr)
        return 130
    print(f"sweep: {len(pending) - len(failed)} of {len(pending)} runs finished"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
