"""The benchmark CLI's helpers and usage errors (its sections' rows: test_bench_sections.py, from one smoke pass)."""

import subprocess
import sys

import pytest
from helpers import REPO


def test_round_ratios_are_per_round_not_best_vs_best():
    from experiments.bench.common import round_ratios

    rounds = [{"slow": 2.0, "fast": 1.0}, {"slow": 6.0, "fast": 1.0}, {"slow": 3.0, "fast": 1.5}]
    assert round_ratios(rounds, "slow", "fast") == (2.0, 2.0, 6.0)      # best vs best would be 2.0 / 1.0 too
    rounds.append({"slow": 8.0, "fast": 2.0})
    assert round_ratios(rounds, "slow", "fast") == (3.0, 2.0, 6.0)


def test_bench_bad_section_is_one_line_error():
    proc = subprocess.run([sys.executable, "-m", "experiments.bench", "nope"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "invalid choice" in proc.stderr


def test_versions_rows_are_the_hand_arithmetic_of_their_rounds():
    """`versions_rows` (the versions section's arithmetic, no timing): frames/s from the best seconds of each tree,
    the best-vs-best ratio and the median and range of the per-round ratios, by hand."""
    from experiments.bench.versions import versions_rows

    rounds = [{"this_tree": 0.5, "against": 1.0}, {"this_tree": 0.4, "against": 1.2},
              {"this_tree": 0.8, "against": 0.9}]
    rows = {r["name"]: (r["value"], r["unit"]) for r in versions_rows(rounds, 10, "v1 (abc1234)")}
    assert list(rows) == ["versions_this_tree", "versions_against", "versions_this_tree_vs_against",
                          "versions_this_tree_vs_against_per_round"]
    assert rows["versions_this_tree"][0] == 16 * 10 / 0.4 == 400.0
    assert rows["versions_against"][0] == round(16 * 10 / 0.9, 1) == 177.8 and "v1 (abc1234)" in rows[
        "versions_against"][1]
    assert rows["versions_this_tree_vs_against"][0] == round(0.9 / 0.4, 2) == 2.25
    # per round: 1.0 / 0.5 = 2, 1.2 / 0.4 = 3, 0.9 / 0.8 = 1.125
    assert rows["versions_this_tree_vs_against_per_round"][0] == 2.0
    assert "median of 3 rounds, range 1.12-3.00" in rows["versions_this_tree_vs_against_per_round"][1]
    alone = versions_rows([{"this_tree": 0.5}], 2)
    assert [r["name"] for r in alone] == ["versions_this_tree"] and alone[0]["value"] == 64.0


def test_other_tree_is_a_folder_as_it_is_or_a_git_revision_exported(tmp_path):
    """`--against DIR` takes a folder holding ttrnn/ as it is; `--against REV` exports that revision of this
    repository (git archive: the repository is only read) into an empty folder, with its ttrnn and trainer."""
    from experiments.bench.common import other_tree

    (tmp_path / "release" / "ttrnn").mkdir(parents=True)
    (tmp_path / "release" / "ttrnn" / "__init__.py").write_text("")
    assert other_tree(tmp_path / "release", tmp_path / "unused") == ((tmp_path / "release").resolve(),
                                                                    str(tmp_path / "release"))
    assert not (tmp_path / "unused").exists()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout: no revision to export")
    root, label = other_tree("HEAD", tmp_path / "head")
    assert root == (tmp_path / "head").resolve() and label == f"HEAD ({head.stdout.strip()})"
    for path in ("ttrnn/__init__.py", "experiments/ucf11.py", "tf_config/memory.py"):
        assert (root / path).is_file(), path
    with pytest.raises(SystemExit, match="neither a folder holding ttrnn/ nor a revision"):
        other_tree("no-such-revision-anywhere", tmp_path / "bad")
