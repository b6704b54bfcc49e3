"""The benchmark CLI's helpers and usage errors (its sections' rows: test_bench_sections.py, from one smoke pass)."""

import subprocess
import sys


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
