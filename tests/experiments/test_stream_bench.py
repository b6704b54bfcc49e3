"""`python -m experiments.bench stream --quick`: the single-stream rows of the paper's TT-GRU and TT-LSTM, each model
one frame per call and a chunk per call, milliseconds per frame and frames per second the same figure twice (no
wall-clock thresholds: the figures are only checked to be finite, positive and consistent)."""
import json
import math

import pytest
from helpers import run_cli


def test_stream_section_rows_at_batch_1():
    from experiments.stream import CHUNK
    res = run_cli("experiments.bench", "stream", "--quick", "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "WARNING:tensorflow" not in res.stderr and "retracing" not in res.stderr, res.stderr[-3000:]
    rows = {r["name"]: r for r in map(json.loads, res.stdout.splitlines())}
    cases = [f"{model}{suffix}" for model in ("ttgru", "ttlstm") for suffix in ("", f"_chunk{CHUNK}")]
    assert list(rows) == [f"stream_{case}_{what}" for case in cases for what in ("ms_per_frame", "frames_per_s")]
    for case in cases:
        ms, fps = rows[f"stream_{case}_ms_per_frame"], rows[f"stream_{case}_frames_per_s"]
        per_call = f"{CHUNK} frames per call" if "chunk" in case else "1 frame per call"
        assert ms["unit"] == f"ms/frame (batch 1, {per_call})" and fps["unit"] == f"frames/s (batch 1, {per_call})"
        assert ms["section"] == "stream" and math.isfinite(ms["value"]) and ms["value"] > 0
        assert fps["value"] == pytest.approx(1e3 / ms["value"], rel=1e-9)
