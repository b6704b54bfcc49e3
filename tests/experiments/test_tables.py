"""experiments.tables and experiments.param_counts: the paper's numbers beside our parameter counts, and mean ± std
over run directories."""
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import REPO, run_cli

from experiments import param_counts, tables

# The paper's input-to-hidden counts as printed in its Tables 1, 4 and 6, model order TT-MLP, GRU, LSTM, TT-GRU,
# TT-LSTM.
PAPER_PARAMS = {
    "ucf11": (7_680, 44_236_800, 58_982_400, 3_232, 3_360),
    "hollywood2": (4_352, 53_913_600, 71_884_800, 2_944, 3_104),
    "celebfaces": (3_520, 38_880_000, 51_840_000, 3_328, 3_392),
}
MODELS = ("tt_mlp", "gru", "lstm", "tt_gru", "tt_lstm")
# Independent reference for our TT-MLP counts: sum_k r_{k-1} n_k m_k r_k with hidden 4x4x4x4 and ranks 4.
MLP_INPUT = {"ucf11": (48, 20, 20, 18), "hollywood2": (60, 18, 13, 30), "celebfaces": (24, 20, 20, 36)}


def cli(capsys, *args):
    """`python -m experiments.tables ARGS` in this process (one TensorFlow start for the module): (code, out)."""
    code = tables.main([str(a) for a in args])
    return code, capsys.readouterr().out


def tt_count(n, m, r):
    return sum(r[k] * n[k] * m[k] * r[k + 1] for k in range(len(n)))


def test_no_runs_prints_paper_numbers_and_our_counts(capsys):
    code, out = cli(capsys, "--json")
    assert code == 0
    report = json.loads(out)
    assert [d["dataset"] for d in report["datasets"]] == ["ucf11", "hollywood2", "celebfaces"]
    for ds in report["datasets"]:
        rows = {r["model"]: r for r in ds["rows"]}
        assert list(rows) == list(MODELS)
        for label, paper_count in zip(MODELS, PAPER_PARAMS[ds["dataset"]]):
            row = rows[label]
            assert row["paper"]["params"] == paper_count
            assert row["runs"] is None
            if label == "tt_mlp":
                ours = tt_count(MLP_INPUT[ds["dataset"]], (4, 4, 4, 4), (1, 4, 4, 4, 1))
                assert row["ours_params"] == ours
                assert row["params_match"] == (ours == paper_count)
            else:
                assert row["ours_params"] == paper_count, (ds["dataset"], label)
    celeb = {r["model"]: r for r in report["datasets"][2]["rows"]}
    assert celeb["gru"]["ours_params"] == 57_600 * 3 * 225  # 225 units on Celebrities

    code, text = cli(capsys)
    assert code == 0
    for needle in ("Table 1", "Table 2", "Table 4", "Table 6", "0.813 ± 0.011", "0.546", "0.755 ± 0.033",
                   "44,236,800", "71,884,800", "3,616 ≠ paper †", "3,424 ≠ paper †", "| 7,680 |", "not run"):
        assert needle in text, needle
    assert "3,520 ≠" not in text  # Celebrities' TT-MLP matches the paper


def test_cached_counts_equal_the_models_and_tables_need_no_tensorflow():
    """param_counts.json (what the tables read) equals counts rebuilt from the models; without run directories
    the tables CLI never imports TensorFlow."""
    counts, successors = param_counts.read_cached()
    assert counts == param_counts.paper_model_counts(), "run `python -m experiments.tables --write-counts`"
    assert successors == param_counts.successor_counts(), "run `python -m experiments.tables --write-counts`"
    code = ("import sys; from experiments import tables; rc = tables.main(['--json']); "
            "print(rc, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert probe.stdout.strip().splitlines()[-1] == "0 False False", probe.stderr[-500:]


def write_run(root, name, dataset, model, fold, score, seconds, protocol="paper", metric="accuracy", params=3232,
              store=None, config=None):
    d = root / name
    d.mkdir(parents=True)
    metrics = {"dataset": dataset, "model": model, "fold": fold, "protocol": protocol, metric: score,
               "epoch_seconds": seconds, "params_input_to_hidden": params, "params_total": 204203,
               "epochs": len(seconds), "split": f"{protocol} fold {fold}"}
    (d / "config.json").write_text(json.dumps(config or ({"store": {"path": store}} if store else {})))
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d


def test_runs_of_several_folds_show_mean_std_and_not_run(tmp_path, capsys):
    runs = tmp_path / "runs"
    old = write_run(runs, "ucf11-tt_gru-old", "ucf11", "tt_gru", 0, 0.10, [50.0])
    past = time.time() - 100
    os.utime(old / "metrics.json", (past, past))  # older duplicate of fold 0: ignored
    accs = {0: 0.80, 1: 0.90, 2: 0.70}
    for fold, acc in accs.items():
        write_run(runs, f"ucf11-tt_gru-f{fold}", "ucf11", "tt_gru", fold, acc, [10.0 + fold, 20.0 + fold])
    write_run(runs, "ucf11-tt_gru-logo", "ucf11", "tt_gru", 3, 0.55, [5.0], protocol="logo")
    write_run(runs / "h2", "hollywood2-tt_lstm", "hollywood2", "tt_lstm", 0, 0.42, [7.0], protocol="store",
              metric="map", params=3104)
    for k, store in enumerate(("/data/demo.h5", "/data/celebfaces.h5")):  # never averaged across stores
        write_run(runs, f"celeb-{k}", "celebfaces", "tt_lstm", 0, 0.2 + 0.5 * k, [3.0], store=store)
    write_run(runs, "ucf11-tsn", "ucf11", "tsn_resnet50", 0, 0.66, [30.0], params=None)
    (runs / "unfinished").mkdir()
    (runs / "unfinished" / "config.json").write_text("{}")

    code, out = cli(capsys, runs, "--json")
    assert code == 0
    report = json.loads(out)
    ucf = [r for r in report["datasets"][0]["rows"] if r["model"] == "tt_gru"]
    assert {r["protocol"] for r in ucf} == {"paper", "logo"}
    paper_row = next(r for r in ucf if r["protocol"] == "paper")["runs"]
    vals = list(accs.values())
    assert paper_row["n"] == 3 and paper_row["folds"] == [0, 1, 2] and paper_row["duplicates"] == 1
    assert math.isclose(paper_row["mean"], np.mean(vals)) and math.isclose(paper_row["std"], np.std(vals))
    assert math.isclose(paper_row["epoch_seconds"], np.mean([np.mean([10 + f, 20 + f]) for f in accs]))
    h2 = {r["model"]: r for r in report["datasets"][1]["rows"]}
    assert h2["tt_lstm"]["runs"]["metric"] == "map" and h2["tt_lstm"]["runs"]["mean"] == 0.42
    assert h2["gru"]["runs"] is None
    celeb = [r["runs"] for r in report["datasets"][2]["rows"] if r["model"] == "tt_lstm"]
    assert sorted((c["store"], c["mean"], c["n"]) for c in celeb) == [("/data/celebfaces.h5", 0.7, 1),
                                                                     ("/data/demo.h5", 0.2, 1)]
    assert [(b["dataset"], b["model"]) for b in report["baselines"]] == [("ucf11", "tsn_resnet50")]
    assert report["unfinished_runs"] == [str(runs / "unfinished")]
    assert report["ignored_runs"] == [str(old)]

    code, md = cli(capsys, runs)
    assert code == 0
    line = next(ln for ln in md.splitlines() if ln.startswith("| TT-GRU") and "paper (folds" in ln)
    assert f"{np.mean(vals):.3f} ± {np.std(vals):.3f} (3 folds)" in line
    assert "1 older duplicate" in line
    assert any(ln.startswith("- Older runs of a row's fold, not counted") and ln.endswith(str(old))
               for ln in md.splitlines())
    lstm_line = next(ln for ln in md.splitlines() if ln.startswith("| LSTM |"))
    assert "not run" in lstm_line
    assert "tsn_resnet50" in md and "reports no numbers" in md


def test_synthetic_runs_only_in_their_marked_table_and_every_format_in_one(tmp_path, capsys):
    """A demo run (--demo, as config.json records it), a run on a store flagged synthetic and a real-data run in one
    runs/: only the real one stands in the paper's row; a tr GRU run reaches the formats' table."""
    runs = tmp_path / "runs"
    write_run(runs, "real", "ucf11", "tt_gru", 0, 0.61, [9.0], store="/data/ucf11.h5")
    write_run(runs, "demo", "ucf11", "tt_gru", 0, 0.955, [8.8],
              config={"args": {"demo": True}, "store": {"path": "/cache/ucf11-v2.h5", "attrs": {}}})
    write_run(runs, "flagged", "celebfaces", "tt_gru", 0, 0.5, [3.0],
              config={"args": {"demo": False}, "store": {"path": "/tmp/s.h5", "attrs": {"synthetic": True}}})
    write_run(runs, "tr", "ucf11", "tr_gru", 0, 0.58, [4.0], params=3300, store="/data/ucf11.h5")
    code, out = cli(capsys, runs, "--json")
    report = json.loads(out)
    tt_gru = [r["runs"] for d in report["datasets"] for r in d["rows"] if r["model"] == "tt_gru" and r["runs"]]
    assert [(s["mean"], s["store"]) for s in tt_gru] == [(0.61, "/data/ucf11.h5")]
    assert sorted((e["dataset"], e["runs"]["mean"]) for e in report["synthetic_runs"]) == [("celebfaces", 0.5),
                                                                                           ("ucf11", 0.955)]
    assert [(e["model"], e["runs"]["mean"]) for e in report["formats"]] == [("tr_gru", 0.58)]
    code, md = cli(capsys, runs)
    synthetic = md[md.index("## SYNTHETIC DATA"):]
    assert "0.955" in synthetic and "0.955" not in md[:md.index("## SYNTHETIC DATA")]
    assert "tr_gru" in md[md.index("## Other kernel formats"):md.index("## SYNTHETIC DATA")]


def test_missing_run_directory_is_a_one_line_error(tmp_path):
    res = run_cli("experiments.tables", tmp_path / "nope")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "no such run directory" in res.stderr
    assert res.stdout == ""


def test_stores_of_generated_videos_are_flagged_synthetic_and_others_not(tmp_path):
    from preprocess import ucf11
    from preprocess.synthetic import MARKER, make_dataset
    from ttrnn.store import FrameStore
    tree = make_dataset(tmp_path / "UCF11", classes=2, groups=1, clips_per_group=1, frames=4, size=(32, 24))
    assert ucf11.build_store(tree, tmp_path / "generated.h5", size=(32, 24), progress=False)["status"] == 0
    os.remove(os.path.join(tree, MARKER))                # the same videos, as if they were real ones
    assert ucf11.build_store(tree, tmp_path / "real.h5", size=(32, 24), progress=False)["status"] == 0
    with FrameStore(tmp_path / "generated.h5") as generated, FrameStore(tmp_path / "real.h5") as real:
        assert generated.attrs["synthetic"] is True and "synthetic" not in real.attrs


def test_runs_without_finite_metrics_are_skipped_and_named(tmp_path, capsys):
    """A diverged run's metrics.json (NaN accuracy as older trainers wrote it, an infinite or null test loss) is no
    result: not listed, named in a warning; the finite run of the same fold it would have hidden as an "older
    duplicate" is the one listed."""
    runs = tmp_path / "runs"
    finite = write_run(runs, "ucf11-tt_gru-lr1e6", "ucf11", "tt_gru", 0, 0.25, [5.0])
    past = time.time() - 100
    os.utime(finite / "metrics.json", (past, past))
    nan = write_run(runs, "ucf11-tt_gru-lr1e30", "ucf11", "tt_gru", 0, float("nan"), [5.0])
    inf = write_run(runs, "ucf11-tt_gru-inf", "ucf11", "tt_gru", 1, 0.5, [5.0])
    metrics = json.loads((inf / "metrics.json").read_text())
    (inf / "metrics.json").write_text(json.dumps({**metrics, "test_loss": float("inf")}))
    null = write_run(runs / "h2", "hollywood2-tt_lstm", "hollywood2", "tt_lstm", 0, None, [7.0], metric="map")
    code, out = cli(capsys, runs, "--json")
    report = json.loads(out)
    row = next(r for r in report["datasets"][0]["rows"] if r["model"] == "tt_gru")["runs"]
    assert code == 0 and row["n"] == 1 and row["mean"] == 0.25 and row["duplicates"] == 0
    assert row["run_dirs"] == [str(finite)] and report["num_runs"] == 1
    skipped = [w for w in report["warnings"] if w.startswith("skipped")]
    assert sorted(skipped) == sorted([f"skipped {nan}: non-finite accuracy (a diverged run, not a result)",
                                      f"skipped {inf}: non-finite test_loss (a diverged run, not a result)",
                                      f"skipped {null}: non-finite map (a diverged run, not a result)"])


def test_feature_runs_go_to_the_cnn_feature_table_only(tmp_path, capsys):
    """A run on a feature store (metrics.json "features") stands beside TR-LSTM's HMDB51 number, with its backbone,
    and never in the raw-pixel successors table; a feature run no paper row names gets a row of its own."""
    runs = tmp_path / "runs"
    features = {"backbone": "inceptionv3", "weights": "imagenet", "pooling": "avg", "width": 2048}
    for fold, acc in ((0, 0.60), (1, 0.50)):
        d = write_run(runs, f"hmdb51-tr_lstm-{fold}", "hmdb51", "tr_lstm", fold, acc, [3.0], protocol="store",
                      params=2016, store="/data/hmdb51-inceptionv3.h5")
        metrics = json.loads((d / "metrics.json").read_text())
        (d / "metrics.json").write_text(json.dumps({**metrics, "features": features}))
    d = write_run(runs, "ucf11-tr_lstm-f", "ucf11", "tr_lstm", 0, 0.91, [2.0], protocol="holdout", params=2016)
    (d / "metrics.json").write_text(json.dumps({**json.loads((d / "metrics.json").read_text()),
                                                "features": {**features, "weights": None, "width": 1280}}))
    d = write_run(runs, "hmdb51-ht_gru-f", "hmdb51", "ht_gru", 0, 0.40, [2.0], protocol="store", params=1743)
    (d / "metrics.json").write_text(json.dumps({**json.loads((d / "metrics.json").read_text()),
                                                "features": features}))
    code, out = cli(capsys, runs, "--json")
    assert code == 0
    report = json.loads(out)
    rows = report["features"]
    hmdb = [r for r in rows if r["dataset"] == "hmdb51" and r["model"] == "tr_lstm"]
    assert len(hmdb) == 1 and hmdb[0]["reported"] == 0.638
    assert hmdb[0]["runs"]["mean"] == pytest.approx(0.55) and hmdb[0]["runs"]["n"] == 2
    assert tables.backbone_cell(hmdb[0]["runs"]) == "inceptionv3 (imagenet), 2048"
    ucf = [r for r in rows if r["dataset"] == "ucf11" and r["model"] == "tr_lstm"]
    assert all(r["runs"]["mean"] == pytest.approx(0.91) for r in ucf) and len(ucf) == 2   # Pan's and tednet's rows
    assert [r["runs"] for r in rows if r["model"] == "tt_lstm"] == [None]                  # tednet's TT: not run
    assert any(r["model"] == "ht_gru" and r["reported"] is None for r in rows)             # ours only
    assert all(r["runs"] is None for r in report["successors"])         # the raw-pixel table does not take them
    code, out = cli(capsys, runs)
    assert "## The successors on CNN features" in out
    line = next(x for x in out.splitlines() if x.startswith("| hmdb51 | TR-LSTM (Pan et al., AAAI 2019)"))
    assert "0.6380" in line and "0.550 ± 0.050 (2 folds)" in line and "inceptionv3 (imagenet), 2048" in line
    assert "not confirmed" in line and "2,016" in line
