"""`python -m experiments.bench` sections other than `tt` (test_bench.py), each once at its quickest: the rows each
section promises, every value positive and finite, the figures a row derives from others equal to the hand
arithmetic (ratios, the least-squares RSS slope, the projected epoch), physical lower bounds (padded >= real frames,
RSS growing with max-len by at least the frames it holds). No wall-clock thresholds: rates are only compared within
one run. `store` runs in the normal pass; `versions`, `train epoch` and `scale` are marked slow (1-4 minutes each on
2 cores even at --quick: six model builds, five RSS subprocesses, a trainer run)."""
import json
import math
import re

import numpy as np
import pytest

from helpers import run_cli


def bench(*args):
    """{name: (value, unit)} of `python -m experiments.bench ARGS --json`, in the order printed."""
    res = run_cli("experiments.bench", *args, "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len({r["name"] for r in rows}) == len(rows), "a row name appears twice"
    for row in rows:
        positive = row["value"] >= 0 if row["name"].endswith("_mae") else row["value"] > 0  # lossless: error 0
        assert isinstance(row["value"], (int, float)) and math.isfinite(row["value"]) and positive, row
    return {r["name"]: (r["value"], r["unit"]) for r in rows}


def ratio_in(unit):
    """The 'N.NNx' figure a unit text quotes."""
    return float(re.search(r"([0-9.]+)x", unit).group(1))


def test_store_section_rates_every_reader_and_the_decoder():
    from ttrnn.data import default_workers
    rows = bench("store", "--quick", "--repeats", "1")
    workers = sorted({0, 1, max(2, default_workers())})
    reads = [f"store_read_{c}_{w}_workers" for c in ("lzf", "none") for w in workers] + ["decode"]
    codecs = ["raw", "lzf", "gzip", "jpeg95", "jpeg90"] + (["h264"] if "codec_h264_mae" in rows else [])
    per_codec = [f"codec_{c}_{k}" for c in codecs for k in ("bytes_per_frame", "encode", "decode", "mae")]
    assert list(rows) == reads + per_codec + ["jpeg_decoder_opencv", "jpeg_decoder_simplejpeg"]
    assert all(rows[r][1] == "frames/s" for r in reads)
    raw = rows["codec_raw_bytes_per_frame"][0]
    for c in codecs:  # the quoted ratio is the hand arithmetic of the two sizes; lossless codecs are exact
        assert ratio_in(rows[f"codec_{c}_bytes_per_frame"][1]) == pytest.approx(
            raw / rows[f"codec_{c}_bytes_per_frame"][0], rel=0.01)
        assert rows[f"codec_{c}_encode"][0] > 0 and rows[f"codec_{c}_decode"][0] > 0
    assert rows["codec_raw_bytes_per_frame"][0] >= 160 * 120 * 3
    assert [rows[f"codec_{c}_mae"][0] for c in ("raw", "lzf", "gzip")] == [0, 0, 0]
    assert 0 < rows["codec_jpeg95_mae"][0] < rows["codec_jpeg90_mae"][0]
    assert rows["codec_jpeg90_bytes_per_frame"][0] < rows["codec_jpeg95_bytes_per_frame"][0] < raw


@pytest.mark.slow   # six paper TT-GRU models built and traced: ~1 min of CPU
def test_versions_section_rates_each_version_against_v0():
    from experiments.bench import VERSIONS
    rows = bench("versions", "--quick", "--frames", "2", "--repeats", "1")
    assert list(rows) == [name for name, _ in VERSIONS]
    v0 = rows[VERSIONS[0][0]][0]
    for value, unit in rows.values():
        assert unit.startswith("frames/s (") and ratio_in(unit) == pytest.approx(value / v0, abs=0.006)


@pytest.mark.slow   # the trainer's step on two bench stores and five RSS subprocesses: ~2 min of CPU
def test_train_and_epoch_sections_agree_with_their_own_figures():
    from experiments import bench as b
    from ttrnn.data import default_workers
    rows = bench("train", "epoch", "--quick", "--repeats", "1")
    mem = rows["train_in_memory"][0]
    ends = [f"train_end_to_end_{c}_store_{w}_workers" for c in ("lzf", "none") for w in sorted({0, 2,
                                                                                             default_workers()})]
    for name in ends:                                  # each end-to-end rate quotes its ratio to in-memory
        assert ratio_in(rows[name][1]) == pytest.approx(rows[name][0] / mem, abs=0.006), name
    default = f"train_end_to_end_none_store_{default_workers()}_workers"
    assert rows["train_end_to_end_vs_in_memory"][0] == pytest.approx(rows[default][0] / mem, abs=0.002)
    assert rows["padding_waste_bucketed"][0] < rows["padding_waste_unbucketed"][0]
    assert {"peak_rss_8_clips", "peak_rss_32_clips"} <= set(rows)
    # peak RSS of one train step grows with max-len, at least by the uint8 frames of the batch (16 x 160x120x3)
    lengths = np.array([16, 32, 64])
    peaks = np.array([rows[f"peak_rss_max_len_{t}"][0] for t in lengths])
    assert np.all(np.diff(peaks) > 0), peaks
    slope = np.sum((lengths - lengths.mean()) * (peaks - peaks.mean())) / np.sum((lengths - lengths.mean()) ** 2)
    assert rows["peak_rss_per_padded_step"][0] == pytest.approx(slope, abs=0.001)
    assert slope >= 16 * 160 * 120 * 3 / 2 ** 20
    # the epoch projection: the epoch's padded frames / the end-to-end padded rate, for UCF11's lengths
    fps = rows["train_padded_fps"][0]
    ucf = b.ucf11_lengths()
    previous = 0
    for max_len in (450, 900, 1492):
        seconds, unit = rows[f"epoch_max_len_{max_len}"]
        padded = float(re.search(r"\(([0-9]+)k padded frames", unit).group(1)) * 1e3
        real = np.minimum(ucf, max_len).sum()
        assert real - 500 <= padded <= 1.5 * real         # padded to batches (bucketed): a few % over the real
        assert seconds == pytest.approx(padded / fps, rel=2e-3)   # the unit rounds to thousands of frames
        assert seconds > previous
        previous = seconds
    published = {t: rows[f"epoch_max_len_{t}_published"][0] for t in (450, 900, 1492)}
    assert published == {450: 400.0, 900: 1700.0, 1492: 1872.0}     # the paper's 1,872 s; the port's 400 / 1,700


@pytest.mark.slow   # writes a 40-clip 160x120 store and trains one epoch through the CLI: ~1-2 min
def test_scale_section_trains_one_real_epoch():
    rows = bench("scale", "--quick", "--max-lens", "8", "--repeats", "1")
    assert list(rows) == ["scale_store_seconds", "scale_epoch_max_len_8", "scale_eval_max_len_8",
                          "scale_wall_max_len_8", "scale_peak_rss_max_len_8"]
    train_clips = int(re.search(r"\(([0-9]+) clips", rows["scale_epoch_max_len_8"][1]).group(1))
    test_clips = int(re.search(r"\(([0-9]+) clips", rows["scale_eval_max_len_8"][1]).group(1))
    assert train_clips + test_clips == 40 and 0 < test_clips < train_clips    # --quick: 40 clips, one fold held out
    # the command's wall time contains its epoch and its evaluation
    wall, epoch, evaluation = (rows[f"scale_{k}_max_len_8"][0] for k in ("wall", "epoch", "eval"))
    assert wall + 0.1 >= epoch + evaluation             # rounded to 0.1 s each
