"""`python -m experiments.bench` sections, each once at its quickest: the rows each section promises, every value
positive and finite, the figures a row derives from others equal to the hand arithmetic (ratios, the FLOP fraction,
the least-squares RSS slope, the epoch's shares and rates), physical lower bounds (RSS growing with max-len by at least
the frames it holds). No wall-clock thresholds: rates are only compared within one run. The default sections (`tt`,
`versions`, `store`, `train`) are read from ONE run of the smoke pass `python -m experiments.bench --quick` (module
fixture, normal pass; no TensorFlow warning on its console); `epoch` and `scale` (a trainer run each) are slow."""
import json
import math
import re
import subprocess

import numpy as np
import pytest
from helpers import REPO, run_cli


def bench_run(*args):
    """(stderr, {section: {name: (value, unit)}}) of `python -m experiments.bench ARGS --json`, in the order
    printed."""
    res = run_cli("experiments.bench", *args, "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len({r["name"] for r in rows}) == len(rows), "a row name appears twice"
    sections = {}
    for row in rows:
        positive = row["value"] >= 0 if row["name"].endswith("_mae") else row["value"] > 0  # lossless: error 0
        assert isinstance(row["value"], (int, float)) and math.isfinite(row["value"]) and positive, row
        sections.setdefault(row["section"], {})[row["name"]] = (row["value"], row["unit"])
    return res.stderr, sections


def bench(*args):
    """{name: (value, unit)} of `python -m experiments.bench ARGS --json`, in the order printed."""
    return {name: row for rows in bench_run(*args)[1].values() for name, row in rows.items()}


@pytest.fixture(scope="module")
def smoke():
    """The smoke pass, once: `python -m experiments.bench --quick --json` (every default section, one process)."""
    return bench_run("--quick")


def test_smoke_pass_runs_every_default_section_without_tensorflow_warnings(smoke):
    from experiments.bench.cli import DEFAULT_SECTIONS
    stderr, sections = smoke
    assert list(sections) == list(DEFAULT_SECTIONS)
    assert "WARNING:tensorflow" not in stderr and "retracing" not in stderr, stderr[-3000:]


def test_tt_section_headline_rates_and_their_arithmetic(smoke):
    from experiments.bench import tt as b
    rows = smoke[1]["tt"]
    names = list(rows)
    assert names[:4] == ["tt_projection", "ttgru_step", "original_scheme", "dense_gru"]   # quick: no bf16, no LSTMs
    assert all(rows[n][1] == "frames/s" for n in names[:4])
    assert names[4:] == ["sgemm", "ttgru_step_vs_original_scheme", "ttgru_step_vs_original_scheme_per_round",
                         "ttgru_step_flop_fraction"]
    assert rows["sgemm"][1] == f"GFLOP/s ({b.QUICK_SGEMM_N}x{b.QUICK_SGEMM_N} float32)"
    fps = {n: rows[n][0] for n in names[:4]}
    assert rows["ttgru_step_vs_original_scheme"][0] == pytest.approx(fps["ttgru_step"] / fps["original_scheme"],
                                                                     abs=0.006)
    # one round (quick): the per-round median is that round's time ratio, so the best-vs-best one again
    assert "median of 1 rounds" in rows["ttgru_step_vs_original_scheme_per_round"][1]
    assert rows["ttgru_step_vs_original_scheme_per_round"][0] == pytest.approx(
        fps["ttgru_step"] / fps["original_scheme"], rel=0.02, abs=0.006)
    assert rows["ttgru_step_flop_fraction"][0] == pytest.approx(
        fps["ttgru_step"] * 9_732_096 / (rows["sgemm"][0] * 1e9), rel=0.01, abs=0.001)


def ratio_in(unit):
    """The 'N.NNx' figure a unit text quotes."""
    return float(re.search(r"([0-9.]+)x", unit).group(1))


def test_store_section_rates_every_reader_and_the_decoder(smoke):
    from ttrnn.data import default_workers
    rows = smoke[1]["store"]
    workers = sorted({0, 1, max(2, default_workers())})
    reads = [f"store_read_{c}_{w}_workers" for c in ("lzf", "none") for w in workers] + ["decode"]
    codecs = ["raw", "lzf", "gzip", "jpeg95", "jpeg90"] + (["h264"] if "codec_h264_mae" in rows else [])
    per_codec = [f"codec_{c}_{k}" for c in codecs for k in ("bytes_per_frame", "encode", "decode", "mae")]
    assert list(rows) == reads + per_codec + ["jpeg_decoder_opencv", "jpeg_decoder_simplejpeg"]
    assert all(rows[r][1] == "frames/s" for r in reads)
    raw = rows["codec_raw_bytes_per_frame"][0]
    for c in codecs:  # the quoted ratio: raw frame bytes / stored bytes (the store's own overhead included)
        assert ratio_in(rows[f"codec_{c}_bytes_per_frame"][1]) == pytest.approx(
            160 * 120 * 3 / rows[f"codec_{c}_bytes_per_frame"][0], rel=0.006)
        assert rows[f"codec_{c}_encode"][0] > 0 and rows[f"codec_{c}_decode"][0] > 0
    assert rows["codec_raw_bytes_per_frame"][0] >= 160 * 120 * 3
    assert [rows[f"codec_{c}_mae"][0] for c in ("raw", "lzf", "gzip")] == [0, 0, 0]
    assert 0 < rows["codec_jpeg95_mae"][0] < rows["codec_jpeg90_mae"][0]
    assert rows["codec_jpeg90_bytes_per_frame"][0] < rows["codec_jpeg95_bytes_per_frame"][0] < raw


def test_versions_section_rates_this_tree_alone_without_against(smoke):
    rows = smoke[1]["versions"]
    assert list(rows) == ["versions_this_tree"]
    assert rows["versions_this_tree"][1] == "frames/s (this tree: paper TT-GRU model train step, batch 16, T = 2)"


@pytest.mark.slow   # exports HEAD (git archive) and times its paper model step beside this tree's: ~1-2 min
def test_versions_section_against_a_git_revision_rates_both_trees_interleaved():
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout: no revision to compare with")
    rows = bench("versions", "--quick", "--repeats", "2", "--against", "HEAD")
    assert list(rows) == ["versions_this_tree", "versions_against", "versions_this_tree_vs_against",
                          "versions_this_tree_vs_against_per_round"]
    assert f"HEAD ({head.stdout.strip()})" in rows["versions_against"][1]
    this, against = rows["versions_this_tree"][0], rows["versions_against"][0]
    # both rates are printed to 0.1 frames/s, the ratio (seconds of HEAD / of this tree = rate ratio) to 0.01
    assert rows["versions_this_tree_vs_against"][0] == pytest.approx(this / against, abs=0.006 + this / against
                                                                     * (0.05 / this + 0.05 / against))
    assert "median of 2 rounds" in rows["versions_this_tree_vs_against_per_round"][1]


def test_train_section_agrees_with_its_own_figures(smoke):
    from ttrnn.data import default_workers
    rows = smoke[1]["train"]
    mem = rows["train_in_memory"][0]
    ends = [f"train_end_to_end_{c}_store_{w}_workers" for c in ("lzf", "none") for w in sorted({0, 2,
                                                                                             default_workers()})]
    for name in ends:                                  # each end-to-end rate quotes its ratio to in-memory
        assert ratio_in(rows[name][1]) == pytest.approx(rows[name][0] / mem, abs=0.006), name
    default = f"train_end_to_end_none_store_{default_workers()}_workers"
    assert rows["train_end_to_end_vs_in_memory"][0] == pytest.approx(rows[default][0] / mem, abs=0.002)
    assert rows["padding_waste_bucketed"][0] < rows["padding_waste_unbucketed"][0]
    assert "peak_rss_8_clips" in rows                  # quick: one stream child, two step lengths
    # peak RSS of one train step grows with max-len, at least by the uint8 frames of the batch (16 x 160x120x3)
    lengths = np.array([16, 64])
    peaks = np.array([rows[f"peak_rss_max_len_{t}"][0] for t in lengths])
    assert np.all(np.diff(peaks) > 0), peaks
    slope = np.sum((lengths - lengths.mean()) * (peaks - peaks.mean())) / np.sum((lengths - lengths.mean()) ** 2)
    assert rows["peak_rss_per_padded_step"][0] == pytest.approx(slope, abs=0.001)
    assert slope >= 16 * 160 * 120 * 3 / 2 ** 20


@pytest.mark.slow   # writes two 40-clip 160x120 stores (raw, jpeg), one step child and two trainer epochs: ~2-3 min
def test_scale_section_trains_one_real_epoch_per_codec():
    rows = bench("scale", "--quick", "--max-lens", "8", "--codecs", "raw,jpeg")
    per_run = ("epoch", "fps", "system_cpu", "faults_per_s", "read", "eval", "wall", "peak_rss")
    assert list(rows) == (["scale_load", "scale_raw_store_gb", "scale_raw_dd_read", "scale_jpeg_store_gb",
                           "scale_jpeg_dd_read", "scale_step_max_len_8"]
                          + [f"scale_{c}_max_len_8_{k}" for c in ("raw", "jpeg") for k in per_run])
    assert rows["scale_jpeg_store_gb"][0] < rows["scale_raw_store_gb"][0]
    step = rows["scale_step_max_len_8"][0]
    for codec in ("raw", "jpeg"):
        key = f"scale_{codec}_max_len_8"
        train_clips = int(re.search(r"\(([0-9]+) clips", rows[f"{key}_epoch"][1]).group(1))
        test_clips = int(re.search(r"\(([0-9]+) clips", rows[f"{key}_eval"][1]).group(1))
        assert train_clips + test_clips == 40 and 0 < test_clips < train_clips    # --quick: 40 clips, one fold out
        # the command's wall time contains its epoch and its evaluation (rounded to 0.1 s each)
        assert rows[f"{key}_wall"][0] + 0.1 >= rows[f"{key}_epoch"][0] + rows[f"{key}_eval"][0]
        ratio = float(re.search(r"\(([0-9.]+)x the warm step", rows[f"{key}_fps"][1]).group(1))
        assert ratio == pytest.approx(rows[f"{key}_fps"][0] / step, rel=0.01, abs=0.001)   # printed to 3 decimals
        assert 0 <= rows[f"{key}_system_cpu"][0] < 100


def test_epoch_rows_are_the_hand_arithmetic_of_their_measurements():
    """`epoch_rows` (the epoch section's arithmetic, no timing): each derived figure from made-up
    measurements, computed here by hand."""
    from experiments.bench.epoch import epoch_rows
    usage = {"wall_s": 50.0, "user_s": 60.0, "sys_s": 40.0, "minor_faults": 5_000_000, "major_faults": 0,
             "read_bytes": 4e9}
    fast = {"wall_s": 20.0, "user_s": 38.0, "sys_s": 2.0, "minor_faults": 10_000, "major_faults": 0,
            "read_bytes": 4e9}
    m = {"store_bytes": 5.0e9, "budget_bytes": 4e9, "clips": 180, "dd_bytes_per_s": 400e6, "max_len": 450,
         "load": "1.0/1.0/1.0", "step": {"padded_frames": 40_000, "cold_s": 25.0, "warm_s": 16.0},
         "runs": {"this_tree": {"label": "this tree", "train_s": 20.0, "eval_s": 4.0, "usage": fast,
                                "peak_rss_mb": 2500.0},
                  "against": {"label": "v0 (abc1234)", "train_s": 50.0, "eval_s": 9.0, "usage": usage,
                              "peak_rss_mb": 2000.0}}}
    rows = {r["name"]: (r["value"], r["unit"]) for r in epoch_rows(m)}
    assert rows["epoch_store_gb"][0] == 5.0 and rows["epoch_dd_read"][0] == 400.0
    assert rows["epoch_step_max_len_450"][0] == 1600.0 and rows["epoch_step_warm_max_len_450"][0] == 2500.0
    assert rows["epoch_against_fps"][0] == 800.0 and rows["epoch_this_tree_fps"][0] == 2000.0
    assert rows["epoch_against_vs_step"][0] == 0.5 and rows["epoch_this_tree_vs_step"][0] == 1.25
    assert ratio_in(rows["epoch_against_fps"][1]) == 0.5
    assert rows["epoch_against_system_cpu"][0] == 40.0 and rows["epoch_this_tree_system_cpu"][0] == 5.0
    assert "2.00 cores busy" in rows["epoch_against_system_cpu"][1]
    assert rows["epoch_against_faults_per_s"][0] == 100_000.0 and rows["epoch_this_tree_faults_per_s"][0] == 500.0
    assert rows["epoch_against_read"][0] == 80.0 and ratio_in(rows["epoch_against_read"][1]) == 0.2
    assert rows["epoch_this_tree_read"][0] == 200.0 and ratio_in(rows["epoch_this_tree_read"][1]) == 0.5
    assert rows["epoch_this_tree_vs_against"][0] == 2.5 and "v0 (abc1234)" in rows["epoch_this_tree_vs_against"][1]
    assert rows["epoch_against_max_len_450"][0] == 50.0 and rows["epoch_this_tree_eval"][0] == 4.0
    assert "v0 (abc1234)" in rows["epoch_against_max_len_450"][1]
    alone = dict(m, runs={"this_tree": m["runs"]["this_tree"]})
    assert [r["name"] for r in epoch_rows(alone)] == [r["name"] for r in epoch_rows(m)
                                                      if not r["name"].startswith("epoch_against")
                                                      and r["name"] != "epoch_this_tree_vs_against"]


@pytest.mark.slow   # writes a ~0.1 GB store, one step child and two trainer runs (this tree, HEAD): ~3 min on 2 cores
def test_epoch_section_measures_this_tree_and_a_git_revision_beside_the_step():
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("not a git checkout: no revision to compare with")
    rows = bench("epoch", "--quick", "--budget-gb", "0.05", "--max-lens", "8", "--against", "HEAD")
    per_run = ("max_len_8", "fps", "vs_step", "system_cpu", "faults_per_s", "read", "eval", "peak_rss")
    assert list(rows) == (["epoch_store_gb", "epoch_dd_read", "epoch_step_max_len_8", "epoch_step_warm_max_len_8"]
                          + [f"epoch_{a}_{k}" for a in ("this_tree", "against") for k in per_run]
                          + ["epoch_this_tree_vs_against"])
    assert rows["epoch_store_gb"][0] > 0.05                       # larger than the budget
    step = rows["epoch_step_max_len_8"][0]
    for a in ("this_tree", "against"):
        fps = rows[f"epoch_{a}_fps"][0]
        # both inputs are printed to 0.1 frames/s, the ratio to 0.001: at --quick's ~100 frames/s the inputs'
        # rounding alone moves their quotient by up to ratio * (0.05 / fps + 0.05 / step) (1.193 vs 1.1919 seen)
        rounding = fps / step * (0.05 / fps + 0.05 / step) + 0.0005
        assert rows[f"epoch_{a}_vs_step"][0] == pytest.approx(fps / step, abs=rounding)
        assert 0 < rows[f"epoch_{a}_system_cpu"][0] < 100
    # both runs train the same frames, so the time ratio is the fps ratio; the fps rows keep 4-5 digits where the
    # 0.1 s rounding of a ~1 s quick epoch does not (CI saw 1.188 vs 1.3 s / 1.1 s = 1.16)
    assert rows["epoch_this_tree_vs_against"][0] == pytest.approx(
        rows["epoch_this_tree_fps"][0] / rows["epoch_against_fps"][0], rel=0.005)
