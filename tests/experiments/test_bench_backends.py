"""`python -m experiments.bench_backends`: the per-backend train-step rows and the one-line usage error."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def bench(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "experiments.bench_backends", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=900)


def test_unknown_backend_is_a_one_line_usage_error():
    proc = bench("--backends", "tensorflow,theano")
    assert proc.returncode == 2 and "unknown backend 'theano'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_rows_for_each_backend_with_ratios_to_tensorflow():
    proc = bench("--backends", "tensorflow,jax", "--frames", "2", "--repeats", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["name"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert set(rows) == {"ttlstm_step_tensorflow", "ttlstm_step_jax"}
    assert all(r["value"] > 0 for r in rows.values()) and "x tensorflow" in rows["ttlstm_step_jax"]["unit"]
