"""experiments.sweep and experiments.grid: grid expansion, local parallel runs with skipping on re-run, the SLURM
array script, bad grids. A tiny fake experiment script stands in for the real CLIs (it records its arguments and
writes metrics.json)."""

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from experiments.grid import GridError, expand, load_grid
from experiments.sweep import main
from tf_config.threads import physical_cores

PY = sys.executable

FAKE = textwrap.dedent("""
    import argparse, json, os, sys, time
    from pathlib import Path
    p = argparse.ArgumentParser()
    for flag in ("--data", "--model", "--max-len", "--fold", "--seed", "--epochs", "--out", "--intra-op", "--inter-op",
                 "--threads-preset", "--barrier"):
        p.add_argument(flag)
    p.add_argument("--use-tt", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    runs = out.parent
    with open(runs / "invocations.txt", "a") as f:
        f.write(out.name + "\\n")
    if args.fold == "9":
        sys.exit(5)
    with open(runs / "times.txt", "a") as f:
        f.write(f"start {out.name} {time.time()}\\n")
    if args.barrier:  # wait until BARRIER runs have started: only passes when runs really overlap
        (runs / ("started-" + out.name)).touch()
        give_up = time.monotonic() + 300  # not a budget for passing: only ends a sweep that never overlaps
        while len(list(runs.glob("started-*"))) < int(args.barrier):
            if time.monotonic() > give_up:
                sys.exit(7)
            time.sleep(0.02)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"accuracy": 0.5, "argv": sys.argv[1:]}))
    with open(runs / "times.txt", "a") as f:
        f.write(f"end {out.name} {time.time()}\\n")
""")


@pytest.fixture
def grid_file(tmp_path):
    """Write a grid (dict) with the fake experiment as command; returns a function making the file."""
    fake = tmp_path / "fake_experiment.py"
    fake.write_text(FAKE)
    (tmp_path / "s.h5").write_bytes(b"")  # the store the grid names exists (the fake experiment never reads it)

    def make(**overrides):
        grid = {"dataset": "toy", "model": ["gru", "lstm"], "fold": [0, 1], "data": {"toy": str(tmp_path / "s.h5")},
                "epochs": 2, "command": [PY, str(fake)]}
        grid.update(overrides)
        path = tmp_path / "grid.json"
        path.write_text(json.dumps(grid))
        return path

    return make


def sweep(*args):
    return subprocess.run([PY, "-m", "experiments.sweep", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def argv_of(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())["argv"]


def test_expansion_is_the_cartesian_product_with_flags(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"dataset": ["ucf11"], "model": ["mlp", "gru", "lstm"], "use_tt": [True, False],
                                "exclude": [{"model": "mlp", "use_tt": False}], "max_len": [100, None],
                                "fold": [0, 1], "data": {"ucf11": "x.h5"}, "epochs": 3, "extra": ["--quiet"]}))
    grid = load_grid(path)
    runs = expand(grid, tmp_path / "runs", ["--intra-op", "1"])
    assert len(runs) == 5 * 2 * 2
    assert len({r["name"] for r in runs}) == len(runs)
    assert [r["name"] for r in runs] == [r["name"] for r in expand(grid, tmp_path / "runs")]  # deterministic
    combos = {(r["values"]["model"], r["values"]["use_tt"], r["values"]["max_len"], r["values"]["fold"])
              for r in runs}
    assert ("mlp", False, 100, 0) not in combos and ("gru", False, None, 1) in combos
    for r in runs:
        cmd, v = r["command"], r["values"]
        assert cmd[:3] == [PY, "-m", "experiments.ucf11"]
        assert cmd[cmd.index("--model") + 1] == v["model"]
        assert ("--use-tt" in cmd) == v["use_tt"]
        assert ("--max-len" in cmd) == (v["max_len"] is not None)
        assert cmd[cmd.index("--fold") + 1] == str(v["fold"])
        assert cmd[cmd.index("--epochs") + 1] == "3"
        assert cmd[cmd.index("--data") + 1] == str(Path("x.h5").resolve())
        assert Path(cmd[cmd.index("--out") + 1]) == (tmp_path / "runs" / r["name"]).resolve()
        assert cmd[-3:] == ["--quiet", "--intra-op", "1"]
    names = {r["name"] for r in runs}
    assert "ucf11-gru-tt-len100-fold0" in names and "ucf11-lstm-fold1" in names


def test_fully_decomposed_and_integrated_axes_reach_the_trainers_flags(tmp_path):
    """The recurrent options are axes too: each run's command carries them and the trainer's parser accepts it."""
    from experiments import ucf11
    from experiments.train import build_parser
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"dataset": "ucf11", "model": "lstm", "decomposition": ["tt", "ht"],
                                "recurrent_decomposition": [None, "tt"], "recurrent_rank": [None, "2"],
                                "integrated": [False, True],
                                "exclude": [{"integrated": True, "recurrent_decomposition": "tt"},
                                            {"recurrent_decomposition": None, "recurrent_rank": "2"},
                                            {"integrated": True, "recurrent_rank": "2"}],
                                "data": {"ucf11": "features.h5"}}))
    runs = expand(load_grid(path), tmp_path / "runs")
    names = {r["name"] for r in runs}
    assert len(runs) == 2 * 4 and "ucf11-lstm-ht-integrated" in names and "ucf11-lstm-tt-rectt-rrank2" in names
    for r in runs:
        cmd, v = r["command"], r["values"]
        assert ("--integrated" in cmd) == v["integrated"]
        assert ("--recurrent-decomposition" in cmd) == (v["recurrent_decomposition"] is not None)
        args = build_parser(ucf11.SPEC).parse_args(cmd[3:])
        assert (args.integrated, args.recurrent_decomposition, args.recurrent_rank) == (
            v["integrated"], v["recurrent_decomposition"], v["recurrent_rank"])


def test_local_parallel_runs_then_skips_finished(tmp_path, grid_file):
    runs_dir = tmp_path / "runs"
    path = grid_file(extra=["--barrier", "2"])
    proc = sweep(path, "--backend", "local", "--parallel", "2", "--runs-dir", runs_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dirs = sorted(p for p in runs_dir.iterdir() if (p / "metrics.json").is_file())
    assert [d.name for d in dirs] == ["toy-gru-fold0", "toy-gru-fold1", "toy-lstm-fold0", "toy-lstm-fold1"]
    for d in dirs:
        argv = argv_of(d)
        assert argv[argv.index("--out") + 1] == str(d.resolve())
        assert argv[argv.index("--intra-op") + 1] == str(max(1, physical_cores() // 2))
        assert argv[argv.index("--epochs") + 1] == "2"
    assert len((runs_dir / "invocations.txt").read_text().split()) == 4
    manifest = json.loads((runs_dir / "manifest.json").read_text())
    assert len(manifest["runs"]) == 4

    proc = sweep(path, "--backend", "local", "--parallel", "2", "--runs-dir", runs_dir)
    assert proc.returncode == 0 and "4 finished, 0 to run" in proc.stdout
    assert len((runs_dir / "invocations.txt").read_text().split()) == 4  # nothing ran again

    (runs_dir / "toy-lstm-fold1" / "metrics.json").unlink()
    proc = sweep(grid_file(), "--runs-dir", runs_dir)
    assert proc.returncode == 0 and "3 finished, 1 to run" in proc.stdout
    assert (runs_dir / "invocations.txt").read_text().split()[4:] == ["toy-lstm-fold1"]


def test_sequential_runs_do_not_overlap(tmp_path, grid_file):
    runs_dir = tmp_path / "r"
    proc = sweep(grid_file(), "--parallel", "1", "--runs-dir", runs_dir)
    assert proc.returncode == 0, proc.stderr
    events = [line.split() for line in (runs_dir / "times.txt").read_text().splitlines()]
    assert [e[0] for e in events] == ["start", "end"] * 4  # each run ends before the next starts
    assert all(float(a[2]) <= float(b[2]) for a, b in zip(events, events[1:]))


def test_failed_run_is_reported_and_others_finish(tmp_path, grid_file):
    runs_dir = tmp_path / "runs"
    proc = sweep(grid_file(fold=[0, 9]), "--parallel", "2", "--runs-dir", runs_dir)
    assert proc.returncode == 1
    assert "FAILED toy-gru-fold9" in proc.stderr and "FAILED toy-lstm-fold9" in proc.stderr
    assert (runs_dir / "toy-gru-fold0" / "metrics.json").is_file()
    assert (runs_dir / "logs" / "toy-gru-fold9.log").is_file()


def test_slurm_array_script(tmp_path, grid_file):
    runs_dir = tmp_path / "runs"
    proc = sweep(grid_file(threads_preset="ci-2core", slurm={"time": "1:00:00"}), "--backend", "slurm",
                 "--runs-dir", runs_dir)
    assert proc.returncode == 0, proc.stderr
    script = runs_dir / "sweep.sbatch"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text()
    assert "#SBATCH --array=0-3\n" in text and "#SBATCH --time=1:00:00\n" in text
    lines = (runs_dir / "manifest.txt").read_text().splitlines()
    assert len(lines) == 4
    commands = [shlex.split(line) for line in lines]
    assert all(c[c.index("--threads-preset") + 1] == "ci-2core" for c in commands)
    assert not (runs_dir / "toy-gru-fold0").exists()  # written, not run

    # run array task 2 the way SLURM would (the #SBATCH lines are comments to bash)
    env = dict(os.environ, SLURM_ARRAY_TASK_ID="2")
    task = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert task.returncode == 0, task.stderr
    out = Path(commands[2][commands[2].index("--out") + 1])
    assert argv_of(out) == commands[2][2:]
    assert len([p for p in runs_dir.iterdir() if (p / "metrics.json").is_file()]) == 1
    task = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert "finished already" in task.stdout  # a re-queued task does not train twice

    proc = sweep(grid_file(), "--backend", "slurm", "--runs-dir", runs_dir)
    assert "#SBATCH --array=0-2\n" in script.read_text()  # only the 3 unfinished runs
    assert str(out) not in (runs_dir / "manifest.txt").read_text()


@pytest.mark.parametrize("grid, message", [
    ({"dataset": "toy", "model": ["gru"], "data": {"toy": None}, "bogus": 1}, "unknown keys bogus"),
    ({"dataset": "toy", "data": {"toy": None}}, "missing 'model'"),
    ({"dataset": "toy", "model": [], "data": {"toy": None}}, "model is an empty list"),
    ({"dataset": "toy", "model": "gru", "fold": ["a"], "data": {"toy": None}}, "fold value 'a'"),
    ({"dataset": "toy", "model": "gru"}, "no data path for dataset(s) toy"),
    ({"dataset": "toy", "model": "gru", "data": {"toy": None}, "epochs": 0}, "epochs"),
    ({"dataset": "toy", "model": "gru", "data": {"toy": None}, "exclude": [{"fold": 1}]}, "does not vary"),
    ({"dataset": "toy", "model": "gru", "data": {"toy": None}, "exclude": [{"model": "gru"}]}, "every combination"),
    ("[1, 2", "not valid JSON"),
])
def test_bad_grid_is_a_one_line_error(tmp_path, capsys, grid, message):
    path = tmp_path / "bad.json"
    path.write_text(grid if isinstance(grid, str) else json.dumps(grid))
    assert main([str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "runs").exists()  # nothing written


def test_missing_grid_file_via_cli(tmp_path):
    proc = sweep(tmp_path / "nope.json")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "cannot read grid" in proc.stderr


def test_grid_by_name_and_a_missing_store_warned_or_refused(tmp_path, grid_file):
    """A shipped grid found by name from another directory; its store does not exist there: SLURM writes the
    script with a warning, a local sweep refuses before running anything."""
    proc = subprocess.run([PY, "-m", "experiments.sweep", "ucf11_paper", "--backend", "slurm", "--runs-dir",
                           tmp_path / "runs"], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])))
    assert proc.returncode == 0 and "25 runs" in proc.stdout, proc.stderr
    assert proc.stderr.strip() == "sweep: warning: no store at data/ucf11.h5 yet (the runs need it where they start)"
    path = grid_file(data={"toy": str(tmp_path / "none.h5")})
    proc = sweep(path, "--backend", "local", "--runs-dir", tmp_path / "local")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "no store at" in proc.stderr
    assert not (tmp_path / "local").exists()


def test_shipped_paper_grid_expands_to_25_runs(tmp_path):
    grid = load_grid(Path(__file__).resolve().parents[2] / "experiments" / "grids" / "ucf11_paper.json")
    runs = expand(grid, tmp_path)
    assert len(runs) == 25
    models = {(r["values"]["model"], r["values"]["use_tt"]) for r in runs}
    assert models == {("mlp", True), ("gru", True), ("lstm", True), ("gru", False), ("lstm", False)}
    assert {r["values"]["fold"] for r in runs} == set(range(5))
    with pytest.raises(GridError):
        expand({**grid, "command": ["{nope}"]}, tmp_path)
