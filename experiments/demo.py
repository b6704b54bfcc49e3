"""Cached demo stores: synthetic videos -> preprocessing -> one store per dataset demo, built once per machine (and
for the demos that train on CNN features, the store's features: `cached_feature_store`).

    python -m experiments.demo            # where the cache is and what it holds (MB)
    python -m experiments.demo --clear    # delete it (the next --demo builds its store again)

The cache lives in $TTRNN_CACHE, else $XDG_CACHE_HOME/ttrnn, else ~/.cache/ttrnn. Parallel callers (the workers
of a multi-worker run, parallel sweeps) serialize on a file lock, and a marker file says a store is complete.
"""
import os
import shutil
import sys
from pathlib import Path

from ttrnn.cli import OneLineParser, UsageError


def cache_root():
    return Path(os.environ.get("TTRNN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ttrnn"))


def cached_demo_store(name, data, build_store, args=None, make_videos=None):
    """Generate synthetic videos (`make_videos(folder, **data)`, default `preprocess.synthetic.make_dataset`) once
    and preprocess them with `build_store(src, out, progress=...)` into `<cache>/demo-<name>/<name>.h5`; returns
    the store path. Progress: a bar on a terminal, plain lines otherwise (no carriage returns in logs)."""
    from preprocess import synthetic
    from preprocess.ingest import IngestError
    from ttrnn.store.files import FileLock
    cache = cache_root() / f"demo-{name}"
    videos, store, ready = cache / "videos", cache / f"{name}.h5", cache / "store.done"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        lock = FileLock(cache / ".lock")
    except OSError as exc:
        raise UsageError(f"cannot write the demo cache {cache}: {exc.strerror or exc}; set TTRNN_CACHE to a "
                         "writable directory") from None
    with lock:   # waits for a parallel caller building the same store
        if ready.exists():
            return store
        if not (cache / "videos.done").exists():
            layout = data.get("layout", name.split("-")[0])
            print(f"demo: writing synthetic {layout}-layout videos to {videos} (once; `python -m experiments.demo "
                  "--clear` removes the cache)", flush=True)
            (make_videos or synthetic.make_dataset)(videos, **data)
            (cache / "videos.done").write_text("ok\n")
        print(f"demo: preprocessing them into {store}", flush=True)
        bar = not getattr(args, "quiet", False) and sys.stderr.isatty()
        try:
            summary = build_store(str(videos), str(store), progress=bar)
        except IngestError as exc:
            raise UsageError(f"demo preprocessing failed: {exc}") from None
        if summary.get("status", 0) != 0:
            raise UsageError(f"demo preprocessing failed for {len(summary.get('failed', []))} clips")
        ready.write_text("ok\n")
    return store


def cached_feature_store(frame_store, backbone, args=None, options=()):
    """The per-frame `backbone` features of the cached demo frame store `frame_store`, written once beside it as
    `<stem>-<backbone>-<options>.h5` (each option without its dashes, so other options make another store) by
    `python -m experiments.features FRAME_STORE OUT --backbone BACKBONE *options` in a
    child process (the trainer applies its thread and allocator settings before TensorFlow starts in its own
    process, so the backbone cannot run there first); returns its path. Same lock and completion marker as
    `cached_demo_store`."""
    import subprocess

    from ttrnn.store.files import FileLock
    frame_store = Path(frame_store)
    out = frame_store.with_name("-".join([frame_store.stem, backbone, *(str(o).lstrip("-") for o in options)])
                                + ".h5")
    ready = frame_store.with_name(f"{out.stem}.done")
    with FileLock(frame_store.parent / ".lock"):
        if ready.exists():
            return out
        print(f"demo: extracting {backbone} features into {out}", flush=True)
        quiet = ["--quiet"] if getattr(args, "quiet", False) or not sys.stderr.isatty() else []
        cmd = [sys.executable, "-m", "experiments.features", str(frame_store), str(out), "--backbone", backbone,
               *map(str, options), *quiet]
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise UsageError(f"demo feature extraction failed (exit {done.returncode}): {last}")
        ready.write_text("ok\n")
    return out


def folder_mb(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6


def main(argv=None):
    ap = OneLineParser(prog="python -m experiments.demo", description="Show or clear the demos' cache.")
    ap.add_argument("--clear", action="store_true", help="delete the cache (every demo store and its videos)")
    args = ap.parse_args(argv)
    root = cache_root()
    if not root.exists():
        print(f"{root}: empty (no demo has run)")
        return 0
    if args.clear:
        mb = folder_mb(root)
        shutil.rmtree(root)
        print(f"removed {root} ({mb:.0f} MB)")
        return 0
    for demo in sorted(root.glob("demo-*")):
        print(f"{demo}: {folder_mb(demo):.0f} MB{'' if (demo / 'store.done').exists() else ' (incomplete)'}")
    print(f"{root}: {folder_mb(root):.0f} MB in all; `python -m experiments.demo --clear` deletes it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
