"""`python -m experiments.bench export --quick`: the sizes of the paper's TT-GRU and TT-LSTM in each format and one
clip's latency at batch 1 on each runtime (no wall-clock thresholds: finite, positive, the rows promised). Slow:
six exports of the paper's models (~1 min on 2 cores)."""
import importlib.util
import json
import math

import pytest
from helpers import run_cli

MISSING = [name for name in ("tf2onnx", "onnx", "onnxruntime", "ai_edge_litert")
           if importlib.util.find_spec(name) is None]


@pytest.mark.slow
@pytest.mark.skipif(bool(MISSING), reason=f"the export extra is not installed ({', '.join(MISSING)})")
def test_export_section_rows():
    res = run_cli("experiments.bench", "export", "--quick", "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = {r["name"]: r for r in map(json.loads, res.stdout.splitlines())}
    formats = ("keras", "savedmodel", "onnx", "litert")
    assert list(rows) == ([f"export_{m}_{f}_mb" for m in ("ttgru", "ttlstm") for f in formats]
                          + [f"export_{m}_{f}_ms_per_clip" for m in ("ttgru", "ttlstm")
                             for f in formats + ("litert_static",)])
    for row in rows.values():
        assert row["section"] == "export" and math.isfinite(row["value"]) and row["value"] > 0
    assert rows["export_ttgru_onnx_ms_per_clip"]["unit"] == "ms per clip of 2 frames (batch 1)"
    assert rows["export_ttgru_litert_static_ms_per_clip"]["unit"] == \
        "ms per clip of 2 frames (batch 1, the input fixed to it)"
    # the float32 weights are all there: the recurrent kernel alone is 256 x 768 floats (0.79 MB)
    assert all(rows[f"export_ttgru_{f}_mb"]["value"] > 0.79 for f in formats)
