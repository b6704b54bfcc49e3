"""SLURM multi-node training: `experiments.sweep --backend slurm --nodes N --tasks-per-node K` writes an array
script whose task is one `srun` job; under srun each trainer builds its cluster with TensorFlow's
SlurmClusterResolver. Here a stand-in `srun` starts two tasks on loopback with the variables SLURM sets
(SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_STEP_NODELIST=localhost, SLURM_STEP_TASKS_PER_NODE=2)."""
import csv
import json
import os
import shlex
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import REPO, make_store

FAKE_SRUN = textwrap.dedent("""\
    #!/bin/bash
    # stand-in for srun: --nodes=1 --ntasks-per-node=2 on this machine, no nvidia-smi needed
    while [[ "$1" == --* ]]; do shift; done
    export SLURM_STEP_NUM_TASKS=2 SLURM_STEP_NODELIST=localhost SLURM_STEP_TASKS_PER_NODE=2
    unset TF_CONFIG CUDA_VISIBLE_DEVICES
    SLURM_PROCID=0 "$@" > "$SRUN_LOGS/task0.log" 2>&1 & first=$!
    SLURM_PROCID=1 "$@" > "$SRUN_LOGS/task1.log" 2>&1 & second=$!
    wait $first; a=$?; wait $second; b=$?
    exit $(( a > b ? a : b ))
""")


def free_port_pair():
    """A port P with P and P+1 free on loopback (the two tasks of one node listen on P and P+1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("localhost", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("localhost", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports")


@pytest.mark.slow   # multi-process / slow-format end to end: .ci/run runs it in its slow pass
def test_sweep_srun_job_trains_one_run_on_two_slurm_tasks(tmp_path):
    store = make_store(tmp_path / "ucf11.h5", num_classes=4, groups=3, clips_per_group=2, lengths=(3, 5),
                       size=(32, 24))
    grid = {"dataset": ["ucf11"], "model": ["gru"], "max_len": [4], "fold": [0], "data": {"ucf11": str(store)},
            "epochs": 2, "threads_preset": "ci-2core",
            "extra": ["--quiet", "--batch-size", "8", "--workers", "0", "--slurm-port-base", str(free_port_pair())]}
    (tmp_path / "grid.json").write_text(json.dumps(grid))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TF_CONFIG"))}
    env["PYTHONPATH"] = str(REPO)
    runs_dir = tmp_path / "runs"
    sweep = subprocess.run([sys.executable, "-m", "experiments.sweep", str(tmp_path / "grid.json"), "--backend",
                            "slurm", "--nodes", "1", "--tasks-per-node", "2", "--runs-dir", str(runs_dir)],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert sweep.returncode == 0, sweep.stderr
    script = (runs_dir / "sweep.sbatch").read_text()
    assert "#SBATCH --nodes=1\n" in script and "#SBATCH --ntasks-per-node=2\n" in script
    assert "exec srun " in script

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "srun").chmod(0o755)
    env.update(PATH=f"{bin_dir}:/usr/bin:/bin", SLURM_ARRAY_TASK_ID="0", SRUN_LOGS=str(tmp_path))
    job = subprocess.run(["bash", str(runs_dir / "sweep.sbatch")], capture_output=True, text=True, env=env,
                         timeout=600)
    logs = "\n".join((tmp_path / f"task{i}.log").read_text()[-1500:] for i in (0, 1))
    assert job.returncode == 0, job.stderr + logs

    command = shlex.split((runs_dir / "manifest.txt").read_text().splitlines()[0])
    out = Path(command[command.index("--out") + 1])
    config = json.loads((out / "config.json").read_text())
    assert config["cluster"] == {"kind": "multi_worker", "num_workers": 2, "worker_index": 0, "is_chief": True,
                                 "num_replicas": 2, "resolver": "slurm"}  # written by the chief, task 0
    with open(out / "history.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]
    assert (out / "metrics.json").is_file() and (out / "tensorboard" / "train").is_dir()
    assert "test accuracy" in (tmp_path / "task1.log").read_text()  # the other task trained to the end too


SLURM_STEP = {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "4", "SLURM_STEP_NODELIST": "node[01-02]",
              "SLURM_STEP_TASKS_PER_NODE": "2(x2)"}


def test_the_cluster_source_is_detected_without_tensorflow():
    from tf_config.cluster import ClusterConfigError, cluster_source, planned_workers
    tf_config = {"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"index": 0}})}
    assert cluster_source({}, SLURM_STEP) == "slurm" and planned_workers({}, SLURM_STEP) == 4
    assert cluster_source({}, {**SLURM_STEP, "SLURM_STEP_NUM_TASKS": "1"}) == "none"  # srun -n 1: one process
    assert cluster_source({}, {**SLURM_STEP, **tf_config}) == "tf_config"               # an explicit TF_CONFIG wins
    assert cluster_source({"cluster": "none"}, SLURM_STEP) == "none"
    assert planned_workers({"cluster": "none"}, SLURM_STEP) == 1
    for args, env, message in [
        ({"cluster": "slurm"}, {}, "SLURM_PROCID"),
        ({}, {**SLURM_STEP, "SLURM_PROCID": "4"}, "out of range"),
        ({"slurm_port_base": 80}, SLURM_STEP, "--slurm-port-base"),
        ({"cluster": "tf_config"}, SLURM_STEP, "needs the TF_CONFIG"),
    ]:
        with pytest.raises(ClusterConfigError, match=message):
            planned_workers(args, env)
