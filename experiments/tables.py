"""The paper's Tables 1, 2, 4 and 6 with our numbers beside them.

    python -m experiments.tables                  # paper numbers + our parameter counts (no data needed)
    python -m experiments.tables runs/ [more run dirs or folders of run dirs] [--json]

Parameter counts are computed from our models (`experiments.param_counts`) and read from param_counts.json, so
the tables start without TensorFlow. Scores and runtimes come from finished run directories (`metrics.json`):
mean ± std over the folds per (dataset, model, protocol, store) (std = numpy's population std, one value per fold;
the newest run wins when a fold was run twice), and runtime = the mean seconds per training epoch. Models without
runs read "not run". TSN, C3D and 3D CNN runs (R3D, R(2+1)D, …, non-local C2D/I3D) go to an extra "baselines"
table (the paper reports no numbers for them), with their test views (clips × crops per video) and per-clip
accuracy beside the per-video score. A "successors" table puts the TT-RNN's successors on UCF11 (BT-LSTM, TR-LSTM,
HT-LSTM; CP-LSTM ours only; `experiments.paper.SUCCESSORS`) beside our runs of the same formats
(`--decomposition`). A "compression" table counts WHOLE models: ours input-only, fully decomposed
(`--recurrent-decomposition`) and integrated (`--integrated`, FDHT's integrate-then-decompose), measured with
`model.count_params()`, beside the whole-model counts the successors publish (`experiments.paper.PUBLISHED_WHOLE`),
each marked published or measured. A CNN-feature table puts the successors' numbers on per-frame CNN features
(TR-LSTM's UCF11 and HMDB51, tednet's UCF11 benchmark; `experiments.paper.FEATURE_SUCCESSORS`) beside our runs on
feature stores, with the backbone each used; runs on feature stores appear there only.
"""
import json
import math
import sys
from pathlib import Path

import numpy as np

from experiments import families, paper, param_counts
from experiments.run_dir import CONFIG, METRICS
from tf_config.console import add_console_args, quiet_console
from ttrnn.cli import OneLineParser, UsageError, usage_exit

NOT_RUN = "not run"


# --- the successors on UCF11 --------------------------------------------------------------------------------------
def successor_rows(groups, counts):
    """One row per successor and protocol of our runs (or one "not run" row)."""
    rows = []
    for label, name, reported, protocol in paper.SUCCESSORS:
        base = {"model": label, "label": name, "reported": reported, "reported_protocol": protocol,
                "ours_params": counts[label]}
        found = [(proto, s) for (d, m, proto, _), s in groups.items() if d == "ucf11" and m == label]
        rows += [{**base, "protocol": proto, "runs": s} for proto, s in found] or [{**base, "protocol": None,
                                                                                  "runs": None}]
    return rows


# --- whole models: input-only vs fully decomposed vs integrated --------------------------------------------------
def compression_report(counts):
    """The compression table: our whole-model counts per dataset (measured) and the published ones beside ours."""
    rows = []
    for name in [d for d in paper.DATASETS if d in counts]:
        by_label = counts[name]
        for label in paper.COMPRESSION_MODELS:
            kernel, recurrent, total = by_label[label]
            # beside the paper's input-only model of the same cell (the plain models are far larger: no ratio)
            base = by_label.get(f"tt_{label.split('_')[1]}") if "_" in label else None
            rows.append({"dataset": name, "model": label, "label": paper.COMPRESSION_LABELS[label],
                         "input_kernel": kernel, "recurrent_kernel": recurrent, "whole_model": total,
                         "times_fewer_than_input_only": base[2] / total if base else None, "kind": "measured"})
    published = []
    for p in paper.PUBLISHED_WHOLE:
        ours = {name: counts[name][p.label][2] for name in p.compare_on if p.label in counts.get(name, {})}
        published.append({"model": p.label, "label": p.name, "published_low": p.low, "published_high": p.high,
                          "datasets": p.datasets, "source": p.source, "checked": p.checked, "kind": "published",
                          "ours_whole_model": ours})
    return {"measured": rows, "published": published, "fdht_source": paper.FDHT_SOURCE}


# --- the successors on CNN features -------------------------------------------------------------------------------
def feature_rows(groups, counts):
    """One row per `paper.FEATURE_SUCCESSORS` entry and protocol of our feature runs of the same dataset and model
    (or one "not run" row), then a row per group of our feature runs no entry names. `counts`: our input-to-hidden
    counts per label at the default feature shapes (`param_counts.feature_counts`)."""
    rows, shown = [], set()
    for dataset, label, name, reported, params, features, split in paper.FEATURE_SUCCESSORS:
        base = {"dataset": dataset, "model": label, "label": name, "reported": reported, "reported_params": params,
                "reported_features": features, "reported_split": split, "ours_params": counts[label]}
        found = [(key, s) for key, s in groups.items() if key[0] == dataset and key[1] == label]
        shown |= {key for key, _ in found}
        rows += [{**base, "protocol": key[2], "runs": s} for key, s in found] or [{**base, "protocol": None,
                                                                                  "runs": None}]
    for key, s in groups.items():
        if key not in shown:
            rows.append({"dataset": key[0], "model": key[1], "label": key[1], "reported": None,
                         "reported_params": None, "reported_features": "—", "reported_split": "—",
                         "ours_params": None, "protocol": key[2], "runs": s})
    return rows


def backbone_cell(summary):
    """Our runs' features: backbone (weights) and width, e.g. "inceptionv3 (imagenet), 2048"."""
    f = (summary or {}).get("features") or {}
    if not f:
        return "—"
    weights = f.get("weights")
    shown = "random init" if weights is None else ("imagenet" if weights == "imagenet" else Path(weights).name)
    return f"{f.get('backbone')} ({shown}), {f.get('width')}"


# --- run directories ---------------------------------------------------------------------------------------------
def find_runs(paths):
    """(finished runs [metrics dict + "run_dir"], unfinished run dirs, warnings) under the given paths."""
    runs, unfinished, warnings = [], [], []
    for p in map(Path, paths):
        if not p.exists():
            raise UsageError(f"no such run directory: {p}")
        if p.is_file():
            if p.name != METRICS:
                raise UsageError(f"{p} is not a run directory or a {METRICS}")
            files = [p]
        else:
            files = sorted(p.rglob(METRICS))
            unfinished += [c.parent for c in sorted(p.rglob(CONFIG)) if not (c.parent / METRICS).exists()]
        if not files and not unfinished:
            warnings.append(f"no finished runs under {p}")
        for f in files:
            try:
                m = json.loads(f.read_text())
                if not isinstance(m, dict) or "dataset" not in m or "model" not in m:
                    raise ValueError("no dataset/model in it")
            except (OSError, ValueError) as exc:
                warnings.append(f"skipped {f}: {exc}")
                continue
            bad = non_finite(m)
            if bad:  # a diverged run is no result
                warnings.append(f"skipped {f.parent}: non-finite {', '.join(bad)} (a diverged run, not a result)")
                continue
            m["run_dir"] = str(f.parent)
            m["_mtime"] = f.stat().st_mtime
            m["store"], m["synthetic"] = store_of(f.parent)
            runs.append(m)
    return runs, unfinished, warnings


def store_of(run_dir):
    """(the store a run trained on, whether its clips are synthetic) from config.json; (None, False) without one.
    Runs on different stores are never averaged together; synthetic ones (the demos, preprocess.synthetic's
    videos: the store's flag, or --demo for runs older than the flag) never stand beside a paper number."""
    try:
        config = json.loads((Path(run_dir) / CONFIG).read_text())
        store = config["store"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, False
    synthetic = bool(store.get("synthetic") or (store.get("attrs") or {}).get("synthetic")
                     or (config.get("args") or {}).get("demo"))
    return store.get("path"), synthetic


def score_key(run):
    return "map" if run.get("map") is not None else "accuracy"


def _finite(x):
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def non_finite(metrics):
    """Which of the run's score (missing counts) and test_loss (where recorded) is not a finite number (NaN, inf,
    null): a run with any is no result."""
    score = "map" if "map" in metrics else "accuracy"   # a multi-label run's MAP, even when it is null
    return [k for k in (score, "test_loss") if (k == score or k in metrics) and not _finite(metrics.get(k))]


def summarize(runs):
    """Runs of one (dataset, model, protocol) -> summary dict: mean/std of the score over folds, runtime, params."""
    by_fold = {}
    for r in sorted(runs, key=lambda r: r["_mtime"]):
        by_fold[r.get("fold", 0)] = r  # the newest run of a fold wins
    kept = [by_fold[f] for f in sorted(by_fold)]
    kept_ids = {id(r) for r in kept}
    ignored = [r["run_dir"] for r in runs if id(r) not in kept_ids]
    key = score_key(kept[0])
    scores = [r.get(key) for r in kept if _finite(r.get(key))]
    seconds = [float(np.mean(r["epoch_seconds"])) for r in kept if r.get("epoch_seconds")]
    params = sorted({r.get("params_input_to_hidden") for r in kept if r.get("params_input_to_hidden") is not None})
    return {
        "metric": key, "mean": float(np.mean(scores)) if scores else None,
        "std": float(np.std(scores)) if scores else None, "folds": sorted(by_fold), "n": len(kept),
        "duplicates": len(ignored), "epoch_seconds": float(np.mean(seconds)) if seconds else None,
        "epochs": [r.get("epochs") for r in kept], "params_input_to_hidden": params,
        "params_total": sorted({r.get("params_total") for r in kept if r.get("params_total") is not None}),
        "protocol": kept[0].get("protocol"), "split": kept[0].get("split"), "store": kept[0].get("store"),
        "test_views": views_cell(kept[0]), "clip_accuracy": _mean_of(kept, "clip_accuracy"),
        "run_dirs": [r["run_dir"] for r in kept], "features": kept[0].get("features"),
        "ignored_run_dirs": ignored,
    }


def views_cell(run):
    """"clips×crops" of a multi-view test (metrics.json's test_protocol), else "1" (one view per clip)."""
    tp = run.get("test_protocol") or {}
    return f"{tp['clips_per_video']}×{tp['crops_per_clip']}" if tp else "1"


def _mean_of(runs, key):
    values = [r[key] for r in runs if _finite(r.get(key))]
    return float(np.mean(values)) if values else None


def group_runs(runs):
    """{(dataset, model, protocol, store): summary}."""
    groups = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["model"], r.get("protocol"), r.get("store")), []).append(r)
    return {k: summarize(v) for k, v in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0])))}


# --- assembling the tables ---------------------------------------------------------------------------------------
def build_report(run_paths=(), counts=None, successor_counts=None, compression_counts=None):
    """Everything the tables show, as one JSON-able dict."""
    found_runs, unfinished, warnings = find_runs(run_paths)
    runs = [r for r in found_runs if not r["synthetic"] and not r.get("features")]
    feature_groups = group_runs([r for r in found_runs if not r["synthetic"] and r.get("features")])
    groups = group_runs(runs)
    synthetic_groups = group_runs([r for r in found_runs if r["synthetic"]])
    synthetic = [{"dataset": d, "model": m, "protocol": proto, "runs": s}
                 for (d, m, proto, _), s in synthetic_groups.items()]
    ignored = sorted(str(d) for s in [*groups.values(), *synthetic_groups.values()] for d in s["ignored_run_dirs"])
    if counts is None or successor_counts is None:
        cached, cached_successors = param_counts.read_cached()
        counts = cached if counts is None else counts
        successor_counts = cached_successors if successor_counts is None else successor_counts
    if compression_counts is None:
        compression_counts = param_counts.read_cached_compression()
    datasets = []
    for name, ds in paper.DATASETS.items():
        rows = []
        for label in paper.MODELS:
            pr = ds.results[label]
            ours_params, ours_total = counts[name][label]
            found = [(proto, s) for (d, m, proto, _), s in groups.items() if d == name and m == label]
            base = {"model": label, "label": paper.LABELS[label],
                    "paper": {"score": pr.score, "std": pr.std, "params": pr.params,
                              "epoch_seconds": pr.epoch_seconds},
                    "ours_params": ours_params, "ours_params_total": ours_total,
                    "params_match": ours_params == pr.params}
            if not found:
                rows.append({**base, "protocol": None, "runs": None})
            for proto, summary in found:
                rows.append({**base, "protocol": proto, "runs": summary})
        datasets.append({"dataset": name, "title": ds.title, "tables": list(ds.tables), "metric": ds.metric,
                         "hardware": ds.hardware, "rows": rows})
    known = {(name, label) for name in paper.DATASETS for label in paper.MODELS}
    known |= {("ucf11", label) for label, *_ in paper.SUCCESSORS}
    tables = {"baselines": [], "formats": [], "other_runs": []}
    for (d, m, proto, _), summary in groups.items():
        if (d, m) in known:
            continue
        fam = families.of_label(m)
        table = "baselines" if fam is not None and fam.TABLE == "baselines" else \
            "formats" if fam is families.rnn and d in paper.DATASETS else "other_runs"
        tables[table].append({"dataset": d, "model": m, "protocol": proto, "runs": summary})
    return {"source": paper.SOURCE, "datasets": datasets, "successors": successor_rows(groups, successor_counts),
            "compression": compression_report(compression_counts),
            "features": feature_rows(feature_groups, param_counts.read_cached_features()),
            **tables, "synthetic_runs": synthetic,
            "unfinished_runs": [str(u) for u in unfinished], "ignored_runs": ignored, "caveats": list(paper.CAVEATS),
            "warnings": warnings, "num_runs": len(found_runs)}


# --- markdown ----------------------------------------------------------------------------------------------------
def fmt_int(n):
    return f"{n:,}" if n is not None else "—"


def fmt_score(mean, std):
    if mean is None:
        return "—"
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def fmt_runs(s):
    if s is None:
        return NOT_RUN
    text = fmt_score(s["mean"], s["std"] if s["n"] > 1 else None)
    return f"{text} ({s['n']} fold{'s' if s['n'] != 1 else ''})"


def fmt_seconds(x):
    return "—" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:.3g}")


def protocol_cell(row):
    s = row["runs"]
    if s is None:
        return "—"
    folds = ", ".join(str(f) for f in s["folds"])
    dup = f"; {s['duplicates']} older duplicate run(s) ignored" if s["duplicates"] else ""
    store = f" on {Path(s['store']).name}" if s.get("store") else ""
    return f"{s['protocol']}{store} (folds {folds}{dup})"


def params_cell(row):
    mark = "" if row["params_match"] else " ≠ paper †"
    runs = row["runs"]
    extra = ""
    if runs and runs["params_input_to_hidden"] and runs["params_input_to_hidden"] != [row["ours_params"]]:
        extra = " (runs: " + ", ".join(fmt_int(p) for p in runs["params_input_to_hidden"]) + ")"
    return f"{fmt_int(row['ours_params'])}{mark}{extra}"


def to_markdown(report):
    out = ["# Paper tables vs ours", "", f"Paper: {report['source']}.", ""]
    metric_name = {"accuracy": "Accuracy", "map": "MAP"}
    for ds in report["datasets"]:
        t_params, t_score = ds["tables"]
        m = metric_name[ds["metric"]]
        header = (f"| Model | # Params paper | # Params ours | Total params ours | s/epoch paper | s/epoch ours "
                  f"| {m} paper | {m} ours | Protocol (folds) |")
        if t_params == t_score:
            out += [f"## {t_params} — {ds['title']}: parameters, runtime, {m}", ""]
        else:
            out += [f"## {t_params} + {t_score} — {ds['title']}: parameters and runtime ({t_params}), "
                    f"{m.lower()} ({t_score})", ""]
        out += [header, "|" + "---|" * 9]
        for row in ds["rows"]:
            p = row["paper"]
            s = row["runs"]
            out.append(" | ".join([
                f"| {row['label']}", fmt_int(p["params"]), params_cell(row), fmt_int(row["ours_params_total"]),
                fmt_seconds(p["epoch_seconds"]), fmt_seconds(s["epoch_seconds"]) if s else NOT_RUN,
                fmt_score(p["score"], p["std"]), fmt_runs(s), protocol_cell(row)]) + " |")
        out += ["", f"Params = input-to-hidden weights. Paper runtime on {ds['hardware']}.", ""]
    out += successors_markdown(report["successors"])
    out += compression_markdown(report["compression"])
    out += features_markdown(report["features"])
    out += ["## Baselines (TSN / C3D / 3D CNNs) from run directories", "",
            "The paper reports no numbers for these models (on UCF11 or any of its datasets); ours only. Score = "
            "per video, averaged over the test views (clips × crops per video); per-clip accuracy beside it.", ""]
    if report["baselines"]:
        out += ["| Dataset | Model | Score | Test views | Per-clip acc. | Total params | s/epoch | Protocol (folds) |",
                "|---|---|---|---|---|---|---|---|"]
        for b in report["baselines"]:
            s = b["runs"]
            clip_acc = f"{s['clip_accuracy']:.4f}" if s.get("clip_accuracy") is not None else "—"
            out.append(f"| {b['dataset']} | {b['model']} | {s['metric']} {fmt_runs(s)} | {s.get('test_views', '1')} | "
                       f"{clip_acc} | {', '.join(fmt_int(x) for x in s['params_total']) or '—'} | "
                       f"{fmt_seconds(s['epoch_seconds'])} | {protocol_cell(b)} |")
    else:
        out.append(f"No baseline runs ({NOT_RUN}).")
    out.append("")
    out += runs_table("## Other kernel formats and cells on the paper's datasets (ours only)", report["formats"],
                      "Tensorized GRU / LSTM runs that no row above holds (`--decomposition tr|bt|cp|ht`, "
                      "`--model gru|lstm`, and the fully decomposed and integrated ones: `--recurrent-decomposition`, "
                      "`--integrated`); the paper reports only TT.")
    out += runs_table("## Other runs (datasets or models without paper numbers)", report["other_runs"])
    out += runs_table("## SYNTHETIC DATA — demos, not comparable with any paper number", report["synthetic_runs"],
                      "Runs on generated videos (`--demo`, `preprocess.synthetic`): they show that the code trains, "
                      "not how a model does on the dataset; no table above counts them.")
    out += ["## Notes", "",
            "- † our count differs from the paper's (see the TT-MLP note below); every other count is computed "
            "from our models and equals the paper's.",
            "- Ours: mean ± population std over folds (one run per fold, the newest if repeated); s/epoch = mean "
            "seconds per training epoch of those runs."]
    out += [f"- {c}" for c in report["caveats"]]
    if report["unfinished_runs"]:
        out.append(f"- Unfinished runs (no metrics.json, not counted): {', '.join(report['unfinished_runs'])}")
    if report["ignored_runs"]:
        out.append("- Older runs of a row's fold, not counted (the newest run of a fold wins, whatever its other "
                   f"options; give the tables only the runs to compare): {', '.join(report['ignored_runs'])}")
    out.append("")
    return "\n".join(out)


def runs_table(title, entries, note=None):
    """A markdown table of run groups (dataset, model, score, params, s/epoch, protocol); nothing without runs."""
    if not entries:
        return []
    out = [title, ""] + ([note, ""] if note else [])
    out += ["| Dataset | Model | Score | Test views | # Params ours | s/epoch | Protocol (folds) |",
            "|---|---|---|---|---|---|---|"]
    for b in entries:
        s = b["runs"]
        out.append(f"| {b['dataset']} | {b['model']} | {s['metric']} {fmt_runs(s)} | {s.get('test_views', '1')} | "
                   f"{', '.join(fmt_int(x) for x in s['params_input_to_hidden']) or '—'} | "
                   f"{fmt_seconds(s['epoch_seconds'])} | {protocol_cell(b)} |")
    return out + [""]


def successors_markdown(rows):
    out = ["## Successors on UCF11 — other tensor formats, input-to-hidden only (docs/layers.md)", "",
           "| Model | # Params ours | Accuracy reported | Protocol reported | Accuracy ours | Protocol ours (folds) |",
           "|---|---|---|---|---|---|"]
    for row in rows:
        reported = "—" if row["reported"] is None else f"{row['reported']:.3f}"
        out.append(f"| {row['label']} | {fmt_int(row['ours_params'])} | {reported} | {row['reported_protocol']} | "
                   f"{fmt_runs(row['runs'])} | {protocol_cell(row)} |")
    return out + ["", "Ours: `python -m experiments.ucf11 --model lstm --decomposition tt|bt|tr|ht|cp` (default "
                  "ranks, ~3.3k parameters each); the successors' protocol: `--protocol holdout --sample-frames 6`.",
                  ""]


def fmt_range(low, high):
    if low is None:
        return "none found"
    return fmt_int(low) if high is None else f"{low:,}–{high:,}"


def compression_markdown(c):
    out = ["## Whole models — input-only vs fully decomposed vs integrated (parameter counts)", "",
           "MEASURED: ours, `model.count_params()` of the paper models at the paper's shapes "
           "(`python -m experiments.tables --write-counts` recomputes them): the recurrent layer's kernels and bias "
           "and the classifier (units × classes + classes, most of a fully decomposed model on Celebrities' 47 "
           "classes). Recurrent kernel 0 = held by the integrated matrix, counted in the input kernel column.", "",
           "| Dataset | Model (run label) | Input kernel | Recurrent kernel | Whole model | × fewer than input-only |",
           "|---|---|---|---|---|---|"]
    for r in c["measured"]:
        ratio = r["times_fewer_than_input_only"]
        out.append(f"| {r['dataset']} | {r['label']} (`{r['model']}`) | {fmt_int(r['input_kernel'])} | "
                   f"{fmt_int(r['recurrent_kernel'])} | {fmt_int(r['whole_model'])} | "
                   f"{'—' if ratio is None else f'{ratio:,.1f}'} |")
    out += ["", "PUBLISHED: whole-model counts the successors report, beside ours (measured) of the same model.", "",
            "| Model | Whole model published | On | Source | Ours, whole model (measured) |", "|---|---|---|---|---|"]
    for p in c["published"]:
        ours = ", ".join(f"{d} {fmt_int(n)}" for d, n in p["ours_whole_model"].items()) or "—"
        checked = "" if p["checked"] else " (quoted from a summary of that paper; we could not read the table itself)"
        out.append(f"| {p['label']} | {fmt_range(p['published_low'], p['published_high'])} | {p['datasets']} | "
                   f"{p['source']}{checked} | `{p['model']}`: {ours} |")
    return out + ["", f"FDHT paper: {c['fdht_source']}. Ours train with `--recurrent-decomposition FORMAT` "
                  "(fully decomposed) or `--decomposition FORMAT --integrated`; their runs show in the formats "
                  "table below.", ""]


def features_markdown(rows):
    out = ["## The successors on CNN features — RNNs over per-frame CNN features (UCF11, HMDB51)", "",
           "| Dataset | Model | # Params reported | # Params ours | Accuracy reported | Features reported | "
           "Split reported | Accuracy ours | Features ours | Protocol ours (folds) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        reported = "—" if row["reported"] is None else f"{row['reported']:.4f}"
        params = row["reported_params"] if isinstance(row["reported_params"], str) else \
            fmt_int(row["reported_params"])
        ours = row["runs"]["params_input_to_hidden"] if row["runs"] else None
        ours = ", ".join(fmt_int(p) for p in ours) if ours else fmt_int(row["ours_params"])
        out.append(f"| {row['dataset']} | {row['label']} | {params} | {ours} | {reported} | "
                   f"{row['reported_features']} | {row['reported_split']} | {fmt_runs(row['runs'])} | "
                   f"{backbone_cell(row['runs'])} | {protocol_cell(row)} |")
    return out + ["", "Sources: " + "; ".join(paper.FEATURE_SOURCES) + ". Ours: `python -m experiments.ucf11 "
                  "(or hmdb51 --split N) --data FEATURES.h5 --model lstm --decomposition tt|tr` on a feature store "
                  "(`python -m experiments.features`); # Params ours = input-to-hidden at our default shapes over "
                  "2,048 features (input modes 4x8x8x8, hidden 4x4x4x4), or the runs' own. Runs on feature stores "
                  "appear in this table only.", ""]


def main(argv=None):
    ap = OneLineParser(prog="python -m experiments.tables", description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="*", help="run directories, or folders holding run directories (searched "
                                            f"recursively for {METRICS})")
    ap.add_argument("--json", action="store_true", help="print the tables as one JSON object instead of markdown")
    ap.add_argument("--write-counts", action="store_true",
                    help="rebuild experiments/param_counts.json from the models (after changing a model)")
    add_console_args(ap)
    args = ap.parse_args(argv)
    if args.write_counts:
        param_counts.write_cached()
        return 0
    try:
        quiet_console(args.verbose)
        report = build_report(args.runs)  # bad run directories are reported before TensorFlow starts
    except UsageError as exc:
        return usage_exit(ap.prog, exc)
    for w in report["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print(json.dumps(report, indent=2) if args.json else to_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
