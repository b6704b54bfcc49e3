"""Cached demo stores: synthetic videos -> preprocessing -> one store per dataset demo, built once per machine.

The cache lives in $TTRNN_CACHE, else $XDG_CACHE_HOME/ttrnn, else ~/.cache/ttrnn. Parallel callers (the workers
of a multi-worker run, parallel sweeps) serialize on a file lock, and a marker file says a store is complete.
"""
import fcntl
import os
from pathlib import Path

from experiments.cli import UsageError


def cache_root():
    return Path(os.environ.get("TTRNN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ttrnn"))


def cached_demo_store(name, data, build_store, args=None, make_videos=None):
    """Generate synthetic videos (`make_videos(folder, **data)`, default `preprocess.synthetic.make_dataset`) once
    and preprocess them with `build_store(src, out, progress=...)` into `<cache>/demo-<name>/<name>.h5`; returns
    the store path."""
    from preprocess import synthetic
    from preprocess.ingest import IngestError
    cache = cache_root() / f"demo-{name}"
    videos, store, ready = cache / "videos", cache / f"{name}.h5", cache / "store.done"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        lock = open(cache / ".lock", "w")
    except OSError as exc:
        raise UsageError(f"cannot write the demo cache {cache}: {exc.strerror or exc}; set TTRNN_CACHE to a "
                         "writable directory") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists():
            return store
        if not (cache / "videos.done").exists():
            layout = data.get("layout", name.split("-")[0])
            print(f"demo: writing synthetic {layout}-layout videos to {videos}", flush=True)
            (make_videos or synthetic.make_dataset)(videos, **data)
            (cache / "videos.done").write_text("ok\n")
        try:
            summary = build_store(str(videos), str(store), progress=not getattr(args, "quiet", False))
        except IngestError as exc:
            raise UsageError(f"demo preprocessing failed: {exc}") from None
        if summary.get("status", 0) != 0:
            raise UsageError(f"demo preprocessing failed for {len(summary.get('failed', []))} clips")
        ready.write_text("ok\n")
    return store
