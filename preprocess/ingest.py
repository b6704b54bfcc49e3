"""Shared ingest engine for all layouts: decode clips in worker processes, write them with one writer.

Workers (processes, since h5py serializes threads) only decode; the parent alone holds the HDF5 handle and
commits each clip whole (`ttrnn.store.StoreWriter.add_clip`). A re-run skips committed clips, so an
interrupted run resumes; a store made with other parameters is refused unless `overwrite`.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid

import numpy as np

from preprocess.video import VideoError, decode
from ttrnn.store import COMPRESSIONS, StoreError, StoreWriter, store_params, write_clip_file

EXIT_OK, EXIT_ERROR, EXIT_SOME_FAILED = 0, 1, 2
# Test hook: seconds the writer sleeps inside each clip write (between frames and commit), so a test can
# SIGKILL the process mid-clip deterministically; it also prints "committed <clip_id>" lines to stdout.
WRITE_DELAY_ENV = "TTRNN_STORE_WRITE_DELAY"


class IngestError(Exception):
    """Nothing can be done (missing source, not a dataset layout, unwritable output): one-line message."""


@dataclasses.dataclass
class Clip:
    """One source clip: `clip_id` unique in the store, `path` absolute, `source` relative to the dataset root."""
    clip_id: str
    path: str
    source: str
    class_name: str
    label: int
    group: str = ""
    labels: tuple | None = None  # multi-hot (C,) for multi-label datasets


def _decode_worker(job):
    """Decode one clip in a worker process and write it, compressed, to its own part file
    -> (i, part_path|None, n_frames, src_fps, reason|None, cpu_seconds). FFmpeg's C-level messages go to a temporary file
    instead of the terminal; the first of them is appended to a failure reason."""
    i, path, size, frame_skip, fps, part_path, compression = job
    cpu0 = time.process_time()
    with tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            frames, src_fps = decode(path, size=size, frame_skip=frame_skip, fps=fps)
            write_clip_file(part_path, frames, compression)
            return i, part_path, len(frames), src_fps, None, time.process_time() - cpu0
        except VideoError as e:
            reason = str(e)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a per-clip failure, not a crash
            reason = f"{type(e).__name__}: {e}"
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        lines = [ln.strip() for ln in log.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        if lines:
            reason += f" [decoder: {lines[0][:160]}]"
        return i, None, 0, 0.0, reason, time.process_time() - cpu0


def _worker_init():
    """Decode workers die with the parent (Linux), so a killed run leaves no orphan decoding on."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _pool_context():
    # fork is cheapest, but forking a process that runs TensorFlow threads is unsafe: spawn then.
    if "tensorflow" in sys.modules or "keras" in sys.modules:
        return mp.get_context("spawn")
    return mp.get_context("fork")


def ingest(dataset, clips, classes, out, size=(160, 120), frame_skip=1, fps=None, workers=None,
           compression="none", limit=None, overwrite=False, multilabel=False, splits=None, progress=True,
           extra_params=None, log=None):
    """Decode `clips` (list of Clip) into the store `out`; return a summary dict (see `format_summary`).

    Raises IngestError when nothing can be done (bad parameters, unwritable output, mismatching store).
    The summary's "status" is 0 when every clip is stored, 2 when some failed.
    """
    log = log or sys.stderr
    if int(frame_skip) < 1:
        raise IngestError("--frame-skip must be >= 1")
    if fps is not None and float(fps) <= 0:
        raise IngestError("--fps must be > 0")
    if compression not in COMPRESSIONS:
        raise IngestError(f"--compression must be one of {', '.join(COMPRESSIONS)}")
    if size[0] < 1 or size[1] < 1:
        raise IngestError("--size must be positive")
    ids = [c.clip_id for c in clips]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise IngestError(f"duplicate clip ids in the source: {', '.join(dup)}")
    if limit is not None:
        if int(limit) < 1:
            raise IngestError("--limit must be >= 1")
        clips = clips[: int(limit)]
    params = store_params(dataset, size[0], size[1], frame_skip, fps, compression, classes, multilabel,
                          synthetic=generated(clips), **(extra_params or {}))
    workers = int(workers or os.cpu_count() or 1)
    if workers < 1:
        raise IngestError("--workers must be >= 1")
    t0 = time.perf_counter()
    # Fork the decode workers before any HDF5 handle is open in this process (children must not inherit it).
    done_before = _committed_ids(out) if not overwrite else set()
    n_todo = sum(c.clip_id not in done_before for c in clips)
    pool = _pool_context().Pool(processes=max(1, min(workers, n_todo)), initializer=_worker_init) if n_todo else None
    try:
        return _ingest(dataset, clips, out, params, overwrite, splits, progress, log, pool, workers, t0)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _committed_ids(out):
    """Clip ids already committed in an existing store (empty if there is none or it cannot be read)."""
    from ttrnn.store import FrameStore, StoreError
    try:
        with FrameStore(out) as st:
            return set(st.index["clip_id"].tolist())
    except (StoreError, OSError):
        return set()


def _ingest(dataset, clips, out, params, overwrite, splits, progress, log, pool, workers, t0):
    size, frame_skip, fps = (params["width"], params["height"]), params["frame_skip"], params["fps"]
    try:
        writer = StoreWriter(out, params, overwrite=overwrite)
    except StoreError as e:
        raise IngestError(str(e)) from None
    except OSError as e:
        raise IngestError(f"cannot write {out}: {e}") from None
    delay = float(os.environ.get(WRITE_DELAY_ENV, "0") or 0)
    summary = dict(dataset=dataset, out=os.fspath(out), requested=len(clips), decoded=0, new=0, failed=[],
                   frames_new=0, workers=workers,
                   worker_cpu_seconds=0.0, write_seconds=0.0)
    try:
        done = writer.done_ids
        todo = [c for c in clips if c.clip_id not in done]
        summary["skipped"] = len(clips) - len(todo)
        retried = {c.source for c in todo}
        failed = [(s, r) for s, r in writer.failed() if s not in retried]
        if splits is not None:
            writer.set_splits(splits)
        # part files of clips decoded but not yet copied in; leftovers of a killed run are discarded (the
        # writer holds the store's lock from here on, so no other run is using this folder)
        parts = os.fspath(out) + ".parts"
        shutil.rmtree(parts, ignore_errors=True)
        if todo:
            os.makedirs(parts)
        run = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # a killed run's orphan worker cannot clobber our parts
        jobs = [(i, c.path, size, frame_skip, fps, os.path.join(parts, f"{run}-{i}.h5"), params["compression"])
                for i, c in enumerate(todo)]
        bar = None
        if progress and todo:
            from tqdm import tqdm
            bar = tqdm(total=len(todo), unit="clip", desc=f"{dataset} -> {os.path.basename(os.fspath(out))}",
                       file=log, dynamic_ncols=True)
        tdec = time.perf_counter()
        for i, part, n_frames, src_fps, reason, cpu in _run_jobs(pool, jobs, workers):
            tw = time.perf_counter()
            c = todo[i]
            summary["decoded"] += 1
            summary["worker_cpu_seconds"] += cpu
            if part is None:
                failed.append((c.source, reason))
                writer.set_failed(failed)
            else:
                writer.add_clip_file(c.clip_id, part, c.class_name, c.label, c.group, c.source, src_fps,
                                     labels=c.labels, _delay=delay)
                os.remove(part)
                summary["new"] += 1
                summary["frames_new"] += n_frames
                if delay:
                    print(f"committed {c.clip_id}", flush=True)
            summary["write_seconds"] += time.perf_counter() - tw
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        writer.set_failed(failed)
        summary["decode_seconds"] = time.perf_counter() - tdec
    finally:
        writer.close()
        shutil.rmtree(os.fspath(out) + ".parts", ignore_errors=True)
    summary["seconds"] = time.perf_counter() - t0
    summary["failed"] = failed
    from ttrnn.store import FrameStore
    with FrameStore(out) as st:
        lengths = st.index["length"]
        summary["stored"] = len(st)
        summary["lengths"] = (int(lengths.min()), int(lengths.max()), float(lengths.mean())) if len(st) else None
        summary["raw_bytes"] = int(lengths.sum()) * st.attrs["width"] * st.attrs["height"] * 3
    summary["store_bytes"] = os.path.getsize(out)
    summary["status"] = EXIT_SOME_FAILED if failed else EXIT_OK
    return summary


def _run_jobs(pool, jobs, workers):
    """Yield decode results as they finish. At most 2 * workers clips are decoded ahead of the writer, so
    memory stays bounded when writing is slower than decoding."""
    if not jobs:
        return
    window = threading.BoundedSemaphore(2 * workers)
    stop = threading.Event()

    def feed():
        for job in jobs:
            while not window.acquire(timeout=0.1):
                if stop.is_set():
                    return
            yield job

    try:
        for result in pool.imap_unordered(_decode_worker, feed(), chunksize=1):
            window.release()
            yield result
    finally:
        stop.set()


def _mb(n):
    return f"{n / 2**20:.1f} MiB"


def format_summary(s):
    """Human-readable multi-line summary of an ingest run."""
    out = [f"stored {s['stored']} clips in {s['out']} ({s['new']} new, {s.get('skipped', 0)} already there, "
           f"{len(s['failed'])} failed)"]
    if s["lengths"]:
        lo, hi, mean = s["lengths"]
        out.append(f"clip length (stored frames): min {lo}, max {hi}, mean {mean:.1f}")
    dt = s.get("decode_seconds") or 0
    if s["new"] and dt > 0:
        out.append(f"decoded {s['decoded']} clips in {dt:.1f} s: {s['decoded'] / dt:.1f} clips/s, "
                   f"{s['frames_new'] / dt:.0f} frames/s")
    if s["raw_bytes"]:
        out.append(f"store size {_mb(s['store_bytes'])} vs raw uint8 {_mb(s['raw_bytes'])} "
                   f"({s['store_bytes'] / s['raw_bytes']:.2f}x)")
    if s["failed"]:
        out.append(f"failed ({len(s['failed'])}):")
        out.extend(f"  {src}: {reason}" for src, reason in s["failed"])
    return "\n".join(out)


def parse_size(text):
    try:
        w, h = str(text).lower().split("x")
        w, h = int(w), int(h)
        if w < 1 or h < 1:
            raise ValueError
        return w, h
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH with positive integers, e.g. 160x120, got {text!r}") \
            from None


def add_common_args(ap, default_size=(160, 120)):
    """The options every layout CLI shares."""
    ap.add_argument("src", help="dataset root folder")
    ap.add_argument("out", help="output store, e.g. store.h5")
    ap.add_argument("--size", type=parse_size, default=default_size,
                    help=f"frame size WxH (default {default_size[0]}x{default_size[1]})")
    ap.add_argument("--frame-skip", type=int, default=1, help="keep every K-th frame (default 1: all)")
    ap.add_argument("--fps", type=float, default=None, help="resample in time to F frames/s (default: keep all)")
    ap.add_argument("--workers", type=int, default=None, help="decode processes (default: number of cores)")
    ap.add_argument("--compression", choices=COMPRESSIONS, default="none",
                    help="HDF5 compression of the frames (default none: on 2 cores lzf saved 22 %% of disk "
                         "but cost 30 %% of end-to-end training speed; docs/performance.md)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N clips (for trials)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing store made with other parameters")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


class _Parser(argparse.ArgumentParser):
    """Usage errors exit with status 1 and one line (status 2 means "some clips failed" here)."""

    def error(self, message):
        self.exit(EXIT_ERROR, f"error: {message} (see {self.prog} --help)\n")


def run_cli(build, argv, prog, description, default_size=(160, 120), extra_args=None):
    """Parse the common options, call `build(src, out, **options)` and print the summary; return the exit code."""
    ap = _Parser(prog=prog, description=description)
    add_common_args(ap, default_size)
    if extra_args:
        extra_args(ap)
    a = ap.parse_args(argv)
    opts = {k: v for k, v in vars(a).items() if k not in ("src", "out", "quiet")}
    try:
        s = build(a.src, a.out, progress=not a.quiet, **opts)
    except IngestError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: finished clips are kept; run the same command again to resume", file=sys.stderr)
        return 130
    print(format_summary(s))
    return s["status"]


def generated(clips):
    """True when the clips come from a tree preprocess.synthetic generated (its marker file at the root)."""
    from preprocess.synthetic import MARKER
    roots = {c.path[:len(c.path) - len(c.source)] for c in clips if c.path.endswith(c.source)}
    return bool(roots) and all(os.path.exists(os.path.join(root, MARKER)) for root in roots)


def check_source(src):
    """Raise IngestError unless `src` is an existing folder."""
    if not os.path.exists(src):
        raise IngestError(f"source not found: {src}")
    if not os.path.isdir(src):
        raise IngestError(f"source is not a folder: {src}")



def assign_ids(clips):
    """Give clips their store ids in place: the file stem when stems are unique (UCF11, UCF101, Hollywood2),
    else the relative path without extension with '/' -> '__'."""
    stems = [os.path.splitext(os.path.basename(c.source))[0] for c in clips]
    unique = len(set(stems)) == len(stems)
    for c, stem in zip(clips, stems):
        c.clip_id = stem if unique else os.path.splitext(c.source)[0].replace("/", "__")
    return clips


def walk_videos(root, skip_dirs=()):
    """Sorted absolute paths of video files below `root`, skipping hidden folders and `skip_dirs` (lower case)."""
    from preprocess.video import is_video
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d.lower() not in skip_dirs)
        out.extend(os.path.join(dirpath, f) for f in sorted(filenames) if is_video(f) and not f.startswith("."))
    return out
