"""Section `epoch` (only when named; ~10 min at the defaults): a real trainer epoch on a store larger than a memory
budget, read from the disk, beside the trainer's own step on the same padded frames in memory.

The store: UCF11's length spread (`ucf11_lengths`; `--quick` / 8, at least 24 frames), 1.25x larger than
`--budget-gb` (default 4; at least 40 clips, so the paper split leaves test clips), written at `--store` or in a
temporary folder. Measured in this order:
- `epoch_dd_read`: its files read from a cold page cache in 8 MB requests, as `dd bs=8M` does (the disk's rate for
  a sequential reader);
- `epoch_step_max_len_{L}` / `epoch_step_warm_max_len_{L}`: this tree's trainer build and step
  (`experiments.train.build`, `train_step`) on in-memory batches of exactly the shapes of its first epoch, first
  pass (traces and compiles as epoch 1 does) and second pass (warm), padded frames/s;
- the trainer CLI (`experiments.ucf11 --use-tt --batch-size 16 --epochs 1 --max-len L`, L = `--max-lens`' first,
  default 450) with the store evicted from the page cache (posix_fadvise DONTNEED) before every run, `--repeats`
  rounds (default 1), the faster run kept. From its metrics.json (`epoch_usage`: getrusage and /proc/self/io over
  the training epoch): training seconds, padded frames/s end to end and its ratio to the step's first pass, the
  kernel's share of the CPU time (sys / (user + sys)), minor page faults/s, disk MB/s against dd's, evaluation
  seconds, peak RSS. Rows `epoch_this_tree_*`.
`--against REV|DIR` (a git revision of this repository or a folder holding a tree, as in `versions`): that tree's
trainer CLI runs too, interleaved with this tree's (rows `epoch_against_*`, its end to end against this tree's
step), and `epoch_this_tree_vs_against` = its training seconds / this tree's.
"""

import os
import tempfile

import numpy as np

from experiments.bench.common import (
    FRAME_SHAPE,
    TREE,
    UCF11_LENGTHS,
    dd_rate,
    drop_from_page_cache,
    other_tree,
    run_step_child,
    run_trainer,
    store_bytes,
    trainer_argv,
    ucf11_lengths,
)
from experiments.bench.scale import make_scale_store


def epoch_store_lengths(budget_bytes, quick, seed=0):
    """Clip lengths of a store 1.25x larger than `budget_bytes`: UCF11's spread (`ucf11_lengths`; /8, at least
    24 frames, with --quick), at least 40 clips so the paper split leaves test clips."""
    frame = int(np.prod(FRAME_SHAPE))
    mean = UCF11_LENGTHS[2] / (8 if quick else 1)
    count = max(40, int(np.ceil(1.25 * budget_bytes / (mean * frame))))
    lengths = ucf11_lengths(count, seed)
    return np.maximum(24, lengths // 8) if quick else lengths


def epoch_rows(m):
    """The epoch section's rows from its measurements `m` (pure arithmetic, tested on its own):
    m = {"store_bytes", "budget_bytes", "clips", "dd_bytes_per_s", "max_len", "load",
         "step": {"padded_frames", "cold_s", "warm_s"},
         "runs": {"this_tree" (and "against"): {"label", "train_s", "eval_s",
                  "usage": {wall_s, user_s, sys_s, minor_faults, read_bytes}, "peak_rss_mb"}}}."""
    step, frames, L = m["step"], m["step"]["padded_frames"], m["max_len"]
    step_fps = frames / step["cold_s"]
    rows = [{"name": "epoch_store_gb", "value": round(m["store_bytes"] / 1e9, 3),
             "unit": f"GB ({m['clips']} clips, UCF11 spread) > budget {m['budget_bytes'] / 1e9:.2f} GB; evicted "
                     f"from the page cache before every run; load {m['load']}"},
            {"name": "epoch_dd_read", "value": round(m["dd_bytes_per_s"] / 1e6, 1),
             "unit": "MB/s (the store's files read in 8 MB requests as dd bs=8M, cold cache)"},
            {"name": f"epoch_step_max_len_{L}", "value": round(step_fps, 1),
             "unit": f"padded frames/s (this tree's step alone on the epoch's {frames} padded frames in memory, "
                     f"first pass: traces and compiles as epoch 1 does)"},
            {"name": f"epoch_step_warm_max_len_{L}", "value": round(frames / step["warm_s"], 1),
             "unit": "padded frames/s (the same, second pass)"}]
    for name, run in m["runs"].items():
        u, fps = run["usage"], frames / run["train_s"]
        cpu = u["user_s"] + u["sys_s"]
        read = (u["read_bytes"] or 0) / u["wall_s"]
        rows += [{"name": f"epoch_{name}_max_len_{L}", "value": round(run["train_s"], 1),
                  "unit": f"s training ({run['label']})"},
                 {"name": f"epoch_{name}_fps", "value": round(fps, 1),
                  "unit": f"padded frames/s end to end ({fps / step_fps:.3f}x this tree's step)"},
                 {"name": f"epoch_{name}_vs_step", "value": round(fps / step_fps, 3),
                  "unit": "x (end to end / this tree's step, same padded frames; goal 0.8)"},
                 {"name": f"epoch_{name}_system_cpu", "value": round(100 * u["sys_s"] / max(cpu, 1e-9), 2),
                  "unit": f"% of the trainer's CPU time in the kernel ({cpu / u['wall_s']:.2f} cores busy)"},
                 {"name": f"epoch_{name}_faults_per_s", "value": round(u["minor_faults"] / u["wall_s"], 1),
                  "unit": "minor page faults/s"},
                 {"name": f"epoch_{name}_read", "value": round(read / 1e6, 2),
                  "unit": f"MB/s from the disk ({read / m['dd_bytes_per_s']:.3f}x dd)"},
                 {"name": f"epoch_{name}_eval", "value": round(run["eval_s"], 1), "unit": "s evaluation"},
                 {"name": f"epoch_{name}_peak_rss", "value": round(run["peak_rss_mb"], 1), "unit": "MB"}]
    if "against" in m["runs"]:
        runs = m["runs"]
        rows.append({"name": "epoch_this_tree_vs_against",
                     "value": round(runs["against"]["train_s"] / runs["this_tree"]["train_s"], 3),
                     "unit": f"x ({runs['against']['label']}'s training seconds / this tree's, interleaved in "
                             f"this run)"})
    return rows


def trainer_run(store, max_len, out, tree, label):
    """One cold-cache trainer run of `tree`: the record `epoch_rows` reads."""
    drop_from_page_cache(store)
    metrics, _ = run_trainer(store, max_len, out, extra=("--no-tensorboard",), tree=tree)
    try:
        return {"label": label, "train_s": metrics["epoch_seconds"][0], "eval_s": metrics["eval_seconds"][0],
                "usage": metrics["epoch_usage"][0], "peak_rss_mb": metrics["peak_rss_mb"]}
    except KeyError as exc:
        raise RuntimeError(f"the trainer of {label} wrote no {exc} in metrics.json") from None


def bench_epoch(args):
    """The section's rows (module docstring), in order."""
    budget = (args.budget_gb if args.budget_gb else (0.1 if args.quick else 4.0)) * 1e9
    max_len = (args.max_lens or [48 if args.quick else 450])[0]
    lengths = epoch_store_lengths(budget, args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this_tree": (TREE, "this tree")}
        if args.against:
            os.mkdir(f"{tmp}/against")
            trees["against"] = other_tree(args.against, f"{tmp}/against")
        store = args.store or f"{tmp}/epoch.h5"
        make_scale_store(store, lengths=lengths)
        m = {"store_bytes": store_bytes(store), "budget_bytes": budget, "clips": len(lengths),
             "max_len": max_len, "load": "/".join(f"{v:.1f}" for v in os.getloadavg()),
             "dd_bytes_per_s": dd_rate(store), "runs": {}}
        m["step"] = run_step_child(trainer_argv(store, max_len, f"{tmp}/step"))
        for k in range(args.repeats or 1):
            for name, (tree, label) in trees.items():
                run = trainer_run(store, max_len, f"{tmp}/{name}{k}", tree, label)
                if name not in m["runs"] or run["train_s"] < m["runs"][name]["train_s"]:
                    m["runs"][name] = run
    yield from epoch_rows(m)
