"""Expand a grid of experiments into runs and execute them locally (K at a time) or as a SLURM array job.

    python -m experiments.sweep ucf11_paper --backend local --parallel 2    # a shipped grid by name, or a path
    python -m experiments.sweep GRID.json --backend slurm [--submit]      # writes sweep.sbatch + manifest
    python -m experiments.tables RUNS_DIR                                 # then aggregate

The grid file (axes, data, epochs, extra, exclude, command, threads_preset, slurm) is described in
`experiments.grid`. Each run gets a deterministic directory ``RUNS_DIR/<dataset>-<model>[-tt]-...-fold<F>-seed<S>``
and is finished when ``RUN_DIR/metrics.json`` exists; finished runs are skipped on re-run (the experiment CLIs
resume an interrupted run from its last checkpoint when started again with the same command). Local runs split the
machine's physical cores over the K parallel runs (``--intra-op cores/K --inter-op 2``); SLURM tasks use
``--threads-preset`` (``auto`` counts the cores SLURM allocated). Logs go to ``RUNS_DIR/logs/<run>.log``.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from experiments.grid import GridError, expand, grid_path, load_grid, missing_stores, shipped_grids
from experiments.run_dir import METRICS
from ttrnn.cli import OneLineParser, atomic_write

MANIFEST_JSON = "manifest.json"      # every run of the grid, its status and array index
MANIFEST_TXT = "manifest.txt"        # one pending command per line (line i+1 = SLURM array task i)
SBATCH = "sweep.sbatch"
LOGS = "logs"


def is_finished(run):
    """A run is finished when its run directory holds metrics.json."""
    return (Path(run["out"]) / METRICS).is_file()


def local_threads(parallel, cores=None):
    """Thread flags giving each of PARALLEL local runs an equal share of the physical cores."""
    if cores is None:
        from tf_config.threads import physical_cores

        cores = physical_cores()
    intra = max(1, cores // parallel)
    return ["--intra-op", str(intra), "--inter-op", "2"]


def write_manifest(runs_dir, runs, pending, backend):
    """MANIFEST_JSON (every run, its status and array index) and MANIFEST_TXT (one pending command per line)."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    index = {r["name"]: i for i, r in enumerate(pending)}
    entries = [{"name": r["name"], "out": r["out"], "values": r["values"], "command": r["command"],
                "finished": is_finished(r), "array_index": index.get(r["name"])} for r in runs]
    atomic_write(runs_dir / MANIFEST_JSON, json.dumps({"backend": backend, "runs": entries}, indent=1) + "\n")
    atomic_write(runs_dir / MANIFEST_TXT, "".join(shlex.join(r["command"]) + "\n" for r in pending))


def slurm_script(runs_dir, n_tasks, options, workdir=None, nodes=1, tasks_per_node=1):
    """Text of an sbatch array script: task i runs line i+1 of MANIFEST_TXT (skipped if already finished).
    With nodes x tasks_per_node > 1 each array task is one multi-node data-parallel job: `srun` starts one trainer
    per SLURM task and the trainers build their cluster with TensorFlow's SlurmClusterResolver."""
    runs_dir = Path(runs_dir).resolve()
    workdir = Path(workdir or os.getcwd()).resolve()
    multi = nodes * tasks_per_node > 1
    opts = {"job-name": "ttrnn-sweep", "output": str(runs_dir / LOGS / "slurm-%A_%a.out"),
            **({"nodes": nodes, "ntasks-per-node": tasks_per_node} if multi else {}), **options}
    lines = ["#!/bin/bash", f"#SBATCH --array=0-{n_tasks - 1}"]
    lines += [f"#SBATCH --{k}={v}" for k, v in opts.items() if k != "array"]
    lines += [
        f"# Written by python -m experiments.sweep; one array task per pending run of {MANIFEST_TXT}.",
        "set -euo pipefail",
        f"cd {shlex.quote(str(workdir))}",
        f"MANIFEST={shlex.quote(str(runs_dir / MANIFEST_TXT))}",
        'CMD=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$MANIFEST")',
        'if [ -z "$CMD" ]; then echo "no manifest line for task $SLURM_ARRAY_TASK_ID" >&2; exit 1; fi',
        'OUT=$(eval "set -- $CMD"; while [ $# -gt 0 ]; do if [ "$1" = --out ]; then echo "$2"; fi; shift; done)',
        f'if [ -n "$OUT" ] && [ -f "$OUT/{METRICS}" ]; then echo "finished already: $OUT"; exit 0; fi',
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
                    why = f"exit {proc.returncode}" if proc.returncode else f"no {METRICS}"
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
    script = runs_dir / SBATCH
    if not pending:
        print("sweep: nothing to submit")
        return 0
    (runs_dir / LOGS).mkdir(parents=True, exist_ok=True)
    atomic_write(script, slurm_script(runs_dir, len(pending), {str(k): v for k, v in grid["slurm"].items()},
                                       nodes=args.nodes, tasks_per_node=args.tasks_per_node))
    print(f"sweep: wrote {script} ({len(pending)} array tasks) and {runs_dir / MANIFEST_TXT}")
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
        failed = run_local(pending, args.parallel, runs_dir / LOGS)
    except KeyboardInterrupt:
        print("sweep: interrupted; rerun the same command to continue (finished runs are skipped)", file=sys.stderr)
        return 130
    print(f"sweep: {len(pending) - len(failed)} of {len(pending)} runs finished"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
