"""Smoke test of the benchmark CLI: `python -m experiments.bench tt --quick --json`."""

import json
import subprocess
import sys


def test_bench_tt_quick_json():
    proc = subprocess.run([sys.executable, "-m", "experiments.bench", "tt", "--quick", "--json", "--frames", "2",
                           "--repeats", "1"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    names = [r["name"] for r in rows]
    assert names[:4] == ["tt_projection", "ttgru_step", "original_scheme", "dense_gru"]
    assert all(r["unit"] == "frames/s" and r["value"] > 0 for r in rows[:4])
    assert {"sgemm", "ttgru_step_vs_original_scheme", "ttgru_step_vs_original_scheme_per_round",
            "ttgru_step_flop_fraction"} <= set(names)
    assert all(r["value"] > 0 for r in rows)


def test_round_ratios_are_per_round_not_best_vs_best():
    from experiments.bench import round_ratios

    rounds = [{"slow": 2.0, "fast": 1.0}, {"slow": 6.0, "fast": 1.0}, {"slow": 3.0, "fast": 1.5}]
    assert round_ratios(rounds, "slow", "fast") == (2.0, 2.0, 6.0)      # best vs best would be 2.0 / 1.0 too
    rounds.append({"slow": 8.0, "fast": 2.0})
    assert round_ratios(rounds, "slow", "fast") == (3.0, 2.0, 6.0)


def test_bench_bad_section_is_one_line_error():
    proc = subprocess.run([sys.executable, "-m", "experiments.bench", "nope"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "invalid choice" in proc.stderr
