"""The bench's command line: `python -m experiments.bench [SECTION ...] [options]`, the sections' rows as a
markdown table or JSON lines, and the hidden entry points of its child processes."""

import argparse
import json
import os
import sys
import textwrap

from experiments.bench import epoch, export, features, scale, store, stream, train, tt, versions
from experiments.bench.common import epoch_step_child
from tf_config.console import add_console_args, quiet_console
from tf_config.memory import apply_memory
from ttrnn.cli import USAGE, OneLineParser

SECTIONS = {"tt": tt.bench_tt, "versions": versions.bench_versions, "store": store.bench_store,
            "train": train.bench_train, "stream": stream.bench_stream, "epoch": epoch.bench_epoch,
            "scale": scale.bench_scale, "export": export.bench_export, "features": features.bench_features}
# By name only: epoch (5 GB store, ~10 min), scale (~1 h), export (the export extra's packages, a few minutes),
# features (a 1.2 GB feature store, about a minute).
DEFAULT_SECTIONS = ("tt", "versions", "store", "train", "stream")
MODULES = {"tt": tt, "versions": versions, "store": store, "train": train, "stream": stream, "epoch": epoch,
           "scale": scale, "export": export, "features": features}


def sections_help():
    """--help's epilog: each section's module docstring (what it measures and how), then the output format."""
    parts = [f"{'=' * 8} {name}\n{MODULES[name].__doc__.strip()}" for name in SECTIONS]
    return "\n\n".join(parts + [textwrap.fill(
        "Output: a markdown table of name | value | unit, or with --json one JSON object per line (name, value, "
        "unit, section). Compare figures within one run only: the machine may be shared, so cases are timed "
        "round-robin, best of N. --quick is a smoke pass: every section at the smallest sizes that still exercise "
        "its code, one timed repeat; its figures mean nothing.", 116)])


def parse_args(argv=None):
    p = OneLineParser(prog="python -m experiments.bench", formatter_class=argparse.RawDescriptionHelpFormatter,
                      description="Benchmarks of ttrnn: layers, store, training (no section: "
                                  f"{', '.join(DEFAULT_SECTIONS)}).",
                      epilog=sections_help())
    p.add_argument("sections", nargs="*", default=[],
                   help=f"what to benchmark: {', '.join(SECTIONS)} (default: {', '.join(DEFAULT_SECTIONS)})")
    p.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--epoch-step-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--against", default=None, metavar="REV|DIR",
                   help="versions, epoch: also measure another tree, interleaved with this one: a git revision of "
                        "this repository (exported with git archive) or a folder holding ttrnn/ (default: none)")
    p.add_argument("--budget-gb", type=float, default=None,
                   help="epoch: the memory budget the store must exceed (default 4 GB; quick 0.1)")
    p.add_argument("--compression", default="none", choices=("lzf", "none"),
                   help="train: which bench store's end-to-end rate is the headline (both are measured; default "
                        "none: raw frames)")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--videos", default=None,
                   help="store: measure the codecs on the videos in this folder (decoded at 160x120); "
                        "scale: cycle their frames through the store")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.add_argument("--frames", type=int, default=None, help="tt, versions: frames per clip (default 100, quick 2); "
                                                            "export: of the timed clip (default 16, quick 2)")
    p.add_argument("--repeats", type=int, default=None, help="timed repetitions, best taken")
    p.add_argument("--chunks", type=lambda s: [int(v) for v in s.split(",")], default=None,
                   help="tt: also time TTGRU train steps with these time_chunk values, e.g. 0,1,4, "
                        "and the projection / TTGRU step forced under XLA")
    p.add_argument("--max-lens", type=lambda v: [int(x) for x in v.split(",")], default=None,
                   help="scale: the max-lens to train at (default 450,1492; quick 48,96); epoch: the first "
                        "(default 450; quick 48)")
    p.add_argument("--codecs", type=lambda v: v.split(","), default=None,
                   help="scale: the store codecs to train from, e.g. raw,jpeg (default raw,jpeg)")
    p.add_argument("--step-every", type=int, default=None,
                   help="scale: time the step alone on every N-th batch of the epoch's plan (default 4; quick 1)")
    p.add_argument("--store", default=None,
                   help="scale / epoch / features: the store to train on (written there first if absent or of other "
                        "lengths or codec; scale with several --codecs: STEM.CODEC.h5 beside it, raw ~45 GB; "
                        "features: written there anew)")
    add_console_args(p)
    args = p.parse_args(argv)
    for name in args.sections:
        if name not in SECTIONS:
            p.error(f"argument sections: invalid choice: {name!r} (choose from {', '.join(SECTIONS)})")
    for name in ("frames", "repeats"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.chunks and min(args.chunks) < 0:
        p.error("--chunks values must be >= 0")
    if args.budget_gb is not None and not args.budget_gb > 0:
        p.error("--budget-gb must be > 0")
    from ttrnn.store import CODECS
    for codec in args.codecs or ():
        if codec not in CODECS:
            p.error(f"--codecs: invalid codec {codec!r} (choose from {', '.join(CODECS)})")
    if args.step_every is not None and args.step_every < 1:
        p.error("--step-every must be >= 1")
    if args.max_lens and min(args.max_lens) < 1:
        p.error("--max-lens values must be >= 1")
    return args


def store_problem(args):
    """Before TensorFlow: the one-line problem of a store that `--store` names for the sections run (epoch, scale),
    exists and opens, but whose shard folder is missing or another store's (`FrameStore.check_shards`); else None.
    A file that is not a readable store is no problem here: its section writes a new store there, as before."""
    from ttrnn.store import FrameStore, StoreError
    sections = args.sections or DEFAULT_SECTIONS
    paths = []
    if args.store and "epoch" in sections:
        paths.append(args.store)
    if args.store and "scale" in sections:
        codecs = args.codecs or scale.SCALE_CODECS
        paths += [scale.scale_store_path(args.store, c, len(codecs) > 1) for c in codecs]
    for path in dict.fromkeys(map(str, paths)):
        if not os.path.isfile(path):
            continue
        try:
            store = FrameStore(path)
        except StoreError:
            continue
        with store:
            try:
                store.check_shards()
            except StoreError as exc:
                return f"{exc}; or remove {path}, and the bench writes a new store there"
    return None


def quiet_retracing():
    """Drop TensorFlow's "triggered tf.function retracing" warning in this process: the bench builds one train step
    per case on purpose (each a different model, `make_train_step` each time, each traced once) and TensorFlow
    counts all of them as retraces of one function (it keys them by the function's code). Nothing else is
    filtered; a retrace within one case still shows in its time."""
    import logging

    logging.getLogger("tensorflow").addFilter(lambda r: "triggered tf.function retracing" not in r.getMessage())


def print_table(rows):
    """`rows` as a markdown table: name | value | unit (3 decimals below 10, else 1)."""
    print("| name | value | unit |\n|---|---:|---|")
    for row in rows:
        print(f"| {row['name']} | {row['value']:,.{3 if abs(row['value']) < 10 else 1}f} | {row['unit']} |")


def main(argv=None):
    args = parse_args(argv)
    problem = store_problem(args)
    if problem:
        print(f"python -m experiments.bench: error: {problem}", file=sys.stderr)
        return USAGE
    quiet_console(args.verbose)
    quiet_retracing()
    apply_memory()                   # the trainer's allocator settings, before TensorFlow starts (tf_config.memory)
    if args.epoch_step_child:
        epoch_step_child(json.loads(args.epoch_step_child), args.step_every or 1)
        return 0
    if args.rss_child:
        train.rss_child_main(args.rss_child)
        return 0
    rows = []
    for section in args.sections or list(DEFAULT_SECTIONS):
        for row in SECTIONS[section](args):
            rows.append(row)
            if args.json:
                print(json.dumps({**row, "section": section}), flush=True)
    if not args.json:
        print_table(rows)
    return 0
