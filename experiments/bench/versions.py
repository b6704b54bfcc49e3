"""Section `versions`: the paper TT-GRU model's train step of this tree, and of another tree beside it
(`--against REV|DIR`), timed interleaved in separate processes.

The case: `ttrnn.models.paper_model("ucf11", "gru", 11)` (uint8 frames 160x120x3, TT-GRU 4x4x4x4, ranks 4,
dropout 0.25 / 0.25, softmax over 11 classes), trained by this tree's trainer step (`experiments.steps`: Adam 1e-4,
categorical cross-entropy) on one batch of 16 clips of T frames held in memory (T = 100, `--quick` 2,
`--frames`). Each tree's case runs in a worker process of its own that imports that tree's `ttrnn` and this tree's
`experiments` and `tf_config` (the same step, the same allocator settings): only the library differs. The workers
build and trace the step, then the parent asks each for one step in turn, `--repeats` rounds (default 3, quick 1),
so load from other processes hits both alike.

`--against` names the other tree: a git revision of this repository (exported with `git archive`, the repository
untouched) or a folder holding `ttrnn/` (a checkout, an unpacked release, an installed version's site-packages).
Without it the section measures this tree alone.

Rows: `versions_this_tree` and `versions_against` (frames/s = 16 x T / best step seconds),
`versions_this_tree_vs_against` (best vs best: the other tree's best seconds / this tree's) and
`versions_this_tree_vs_against_per_round` (median and range of the per-round ratios).
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

from experiments.bench.common import (
    BATCH,
    FRAME_SHAPE,
    TREE,
    UCF11_CLASSES,
    interleave_workers,
    other_tree,
    round_ratios,
    serve_steps,
    spawn_worker,
    trainer_step,
)

# A worker's interpreter: `ttrnn` is imported from the tree to measure (argv[1]) first, so that every `ttrnn.*`
# import after it resolves inside that package's folder; then this tree (argv[2]) comes first on sys.path for
# `experiments` and `tf_config`.
WORKER_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); import ttrnn; sys.path[0] = sys.argv[2]; "
               "from experiments.bench.versions import worker; worker(*map(int, sys.argv[3:]))")


def worker(frames, batch=BATCH):
    """A worker process: build the paper TT-GRU model of the `ttrnn` already imported and this tree's trainer
    step, trace it on one batch, then `serve_steps` (the ready line names the `ttrnn` folder)."""
    from tf_config.memory import apply_memory

    apply_memory()                  # the trainer's allocator settings, before TensorFlow's first op
    import tensorflow as tf

    import ttrnn
    from ttrnn.models import paper_model

    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(1, 256, size=(batch, frames) + FRAME_SHAPE, dtype=np.uint8))
    y = tf.constant(np.eye(UCF11_CLASSES, dtype=np.float32)[rng.integers(0, UCF11_CLASSES, size=batch)])
    step = trainer_step(paper_model("ucf11", "gru", UCF11_CLASSES), batch)
    float(step((x, y)))             # trace and compile
    serve_steps(lambda: float(step((x, y))), {"ttrnn": str(Path(ttrnn.__file__).resolve().parent)})


def spawn(root, frames):
    """Start the worker of the tree at `root`."""
    return spawn_worker([sys.executable, "-c", WORKER_BOOT, str(root), str(TREE), str(frames), str(BATCH)])


def versions_rows(rounds, frames, label=None):
    """The section's rows from its per-round step seconds (pure arithmetic, tested on its own):
    rounds = [{"this_tree": s, "against": s (with --against)}, ...]; `label` names the other tree."""
    n = BATCH * frames
    case = f"paper TT-GRU model train step, batch {BATCH}, T = {frames}"
    best = {name: min(r[name] for r in rounds) for name in rounds[0]}
    rows = [{"name": "versions_this_tree", "value": round(n / best["this_tree"], 1),
             "unit": f"frames/s (this tree: {case})"}]
    if "against" in best:
        median, low, high = round_ratios(rounds, "against", "this_tree")
        rows += [{"name": "versions_against", "value": round(n / best["against"], 1),
                  "unit": f"frames/s ({label}: the same case)"},
                 {"name": "versions_this_tree_vs_against", "value": round(best["against"] / best["this_tree"], 2),
                  "unit": f"x (best vs best: {label}'s seconds / this tree's)"},
                 {"name": "versions_this_tree_vs_against_per_round", "value": round(median, 2),
                  "unit": f"x (median of {len(rounds)} rounds, range {low:.2f}-{high:.2f})"}]
    return rows


def bench_versions(args):
    """The section's rows (module docstring), in order."""
    frames = args.frames or (2 if args.quick else 100)
    with tempfile.TemporaryDirectory() as tmp:
        trees, label = {"this_tree": TREE}, None
        if args.against:
            trees["against"], label = other_tree(args.against, tmp)
        procs = {name: spawn(root, frames) for name, root in trees.items()}
        rounds, ready = interleave_workers(procs, args.repeats or (1 if args.quick else 3))
    for name, root in trees.items():       # each worker imported the ttrnn of its own tree
        if Path(ready[name]["ttrnn"]) != Path(root, "ttrnn").resolve():
            raise RuntimeError(f"the {name} worker imported ttrnn from {ready[name]['ttrnn']}, not from {root}")
    yield from versions_rows(rounds, frames, label)
