"""Shared ingest engine for all layouts: decode clips in worker processes, index them with one writer; and the
layouts' shared command line (`run_cli`).

Workers (processes, since h5py serializes threads) decode a clip and publish it as a complete shard file
(`ttrnn.store.write_shard`); the parent alone holds the store's writer (`ttrnn.store.StoreWriter`), adds each
shard to the index and commits it atomically. A re-run skips committed clips, so an interrupted run resumes; a
store made with other parameters is refused unless `overwrite`. Exit statuses: `ttrnn.cli` (0 all stored; 1 some
clips failed, the disk filled or another process writes the store; 2 bad input; 130 interrupted).

Just over 400 lines, kept as one piece: the engine and the command line the layouts share are one protocol (the
pool, the writer, the summary and its exit status), and every layout module calls both.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import ctypes
import dataclasses
import itertools
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time
from concurrent.futures.process import BrokenProcessPool

from preprocess.progress import progress as progress_bar
from preprocess.synthetic import MARKER
from preprocess.video import VideoError, decode, is_video
from ttrnn.cli import OK, RUN_ERROR, SIGINT_STATUS, USAGE, OneLineParser
from ttrnn.store import (
    CODECS,
    DEFAULT_CODEC,
    DEFAULT_QUALITY,
    DiskFullError,
    FrameStore,
    StoreError,
    StoreLockedError,
    StoreWriter,
    clip_meta,
    disk_full_error,
    is_disk_full,
    store_params,
    write_shard,
)

# What a preprocessing CLI prints when Ctrl-C stops it (exit status 130).
INTERRUPTED = "interrupted: finished clips are kept; run the same command again to resume"


class IngestError(Exception):
    """Nothing can be done (missing source, not a dataset layout, unwritable output): one-line message, exit
    status 2."""


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
    """Decode one clip in a worker process and publish it as a shard of the store (`ttrnn.store.write_shard`)
    -> (i, shard name|None, n_frames, reason|None, cpu_seconds, disk_full_bytes). FFmpeg's C-level messages go to
    a temporary file instead of the terminal; the first of them is appended to a failure reason. A full disk is
    not a clip failure: it is reported with the clip's raw size so the writer can say how much space is needed."""
    i, clip, size, frame_skip, fps, directory, params, uid = job
    cpu0 = time.process_time()
    frames = None
    with tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            frames, src_fps = decode(clip.path, size=size, frame_skip=frame_skip, fps=fps)
            meta = clip_meta(clip.clip_id, clip.class_name, clip.label, clip.group, clip.source, src_fps, clip.labels)
            name = write_shard(directory, frames, meta, params, uid)
            return i, name, len(frames), None, time.process_time() - cpu0, 0
        except VideoError as e:
            reason = str(e)
        except OSError as e:
            if is_disk_full(e):
                return i, None, 0, None, time.process_time() - cpu0, max(1, frames.nbytes if frames is not None else 1)
            reason = f"{type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001 - any decoder failure is a per-clip failure, not a crash
            reason = f"{type(e).__name__}: {e}"
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        lines = [ln.strip() for ln in log.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        if lines:
            reason += f" [decoder: {lines[0][:160]}]"
        return i, None, 0, reason, time.process_time() - cpu0, 0


def _noop(_):
    return None


def _worker_init():
    """Decode workers die with the parent (Linux), so a killed run leaves no orphan decoding on."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _pool_context():
    # fork is cheapest, but forking a process that runs TensorFlow threads is unsafe: spawn then.
    if "tensorflow" in sys.modules or "keras" in sys.modules:
        return mp.get_context("spawn")
    return mp.get_context("fork")


def ingest(dataset, clips, classes, out, size=(160, 120), frame_skip=1, fps=None, workers=None,
           compression=DEFAULT_CODEC, limit=None, overwrite=False, multilabel=False, splits=None, progress=True,
           extra_params=None, log=None, quality=None):
    """Decode `clips` (list of Clip) into the store `out` with codec `compression` (raw/none, jpeg, lzf, gzip;
    `quality` for jpeg); return a summary dict (see `format_summary`).

    Raises IngestError when nothing can be done (bad parameters, unwritable output, mismatching store),
    StoreLockedError when another process writes the store, DiskFullError when the disk fills up (committed clips
    are kept). The summary's "status" is the exit status: 0 when every clip is stored, 1 when some failed.
    """
    log = log or sys.stderr
    if int(frame_skip) < 1:
        raise IngestError("--frame-skip must be >= 1")
    if fps is not None and float(fps) <= 0:
        raise IngestError("--fps must be > 0")
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
    try:
        params = store_params(dataset, size[0], size[1], frame_skip, fps, compression, classes, multilabel,
                              quality=quality, synthetic=generated(clips), **(extra_params or {}))
    except StoreError as e:
        raise IngestError(str(e)) from None
    workers = int(workers or os.cpu_count() or 1)
    if workers < 1:
        raise IngestError("--workers must be >= 1")
    try:  # the input is good: make the output's folder, as a user asking for out/ucf11.h5 expects
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    except OSError as e:
        raise IngestError(f"cannot create the folder of {out}: {e.strerror or e}") from None
    t0 = time.perf_counter()
    with worker_pool(min(workers, len(clips))) as ex:
        return _ingest(dataset, clips, out, params, overwrite, splits, progress, log, ex, workers, t0)


@contextlib.contextmanager
def worker_pool(n):
    """A pool of `n` (>= 1) worker processes, all started now: before the caller opens the store writer, so
    that children inherit neither HDF5 state nor the lock (with fork, ProcessPoolExecutor starts all its
    workers at the first submit). Shut down cleanly on exit: queued jobs cancelled, running ones (one clip
    each) finish."""
    n = max(1, int(n))
    ex = cf.ProcessPoolExecutor(max_workers=n, mp_context=_pool_context(), initializer=_worker_init)
    try:
        list(ex.map(_noop, range(n)))
        yield ex
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _open_writer(out, params, overwrite):
    try:
        return StoreWriter(out, params, overwrite=overwrite)
    except (DiskFullError, StoreLockedError):  # runtime conditions (exit 1), not bad input
        raise
    except StoreError as e:
        raise IngestError(str(e)) from None
    except OSError as e:
        if is_disk_full(e):
            raise DiskFullError(f"disk full: cannot create {out} ({e.strerror or e})") from None
        raise IngestError(f"cannot write {out}: {e}") from None


def _ingest(dataset, clips, out, params, overwrite, splits, progress, log, ex, workers, t0):
    try:
        writer = _open_writer(out, params, overwrite)
    except DiskFullError:
        raise disk_full_error(out, _bytes_needed(None, params, 0, len(clips))) from None
    summary = dict(dataset=dataset, out=os.fspath(out), requested=len(clips), decoded=0, new=0, failed=[],
                   frames_new=0, workers=workers, worker_cpu_seconds=0.0, write_seconds=0.0)
    size, frame_skip, fps = (params["width"], params["height"]), params["frame_skip"], params["fps"]
    todo, full, bar = clips, 0, None
    try:
        done = writer.done_ids
        todo = [c for c in clips if c.clip_id not in done]
        summary["skipped"] = len(clips) - len(todo)
        retried = {c.source for c in todo}
        failed = [(s, r) for s, r in writer.failed() if s not in retried]
        writer.set_failed(failed)
        if splits is not None:
            writer.set_splits(splits)
        writer.commit()
        jobs = [(i, c, size, frame_skip, fps, writer.dir, params, writer.uid) for i, c in enumerate(todo)]
        if progress and todo:
            bar = progress_bar(len(todo), f"{dataset} -> {os.path.basename(os.fspath(out))}", file=log)
        tdec = time.perf_counter()
        for i, name, n_frames, reason, cpu, full in run_jobs(ex, jobs, workers):
            tw = time.perf_counter()
            c = todo[i]
            summary["decoded"] += 1
            summary["worker_cpu_seconds"] += cpu
            if full:
                raise DiskFullError("a worker's shard did not fit")
            if name is None:
                failed.append((c.source, reason))
                writer.set_failed(failed)
            else:
                writer.add_shard(name)
                summary["new"] += 1
                summary["frames_new"] += n_frames
            summary["write_seconds"] += time.perf_counter() - tw
            if bar is not None:
                bar.update(1)
        writer.set_failed(failed)
        summary["decode_seconds"] = time.perf_counter() - tdec
        writer.close()
    except DiskFullError:
        left = len(todo) - summary["new"]
        raise disk_full_error(out, _bytes_needed(writer, params, full, left)) from None
    finally:
        if bar is not None:
            bar.close()
        try:
            writer.close()  # commits what is not yet committed; a no-op after a successful close
        except DiskFullError:
            pass  # the error already on its way says it
    return finish_summary(summary, out, failed, t0)


def _bytes_needed(writer, params, clip_raw_bytes, clips_left):
    """Estimate of the space the rest of the run needs: the mean committed shard size times the clips left
    (with nothing committed yet: the failing clip's raw size, else a 100-frame clip's, over 6 for JPEG)."""
    n = len(writer.rows) if writer is not None else 0
    if n:
        per_clip = writer.shard_bytes() / n
    else:
        raw = clip_raw_bytes or 100 * params["width"] * params["height"] * 3
        per_clip = raw / (6 if params["codec"] == "jpeg" else 1)
    return int(per_clip * max(1, clips_left))


def finish_summary(summary, out, failed, t0):
    """Complete the summary of a run that wrote store `out` (started at `t0`, perf_counter): seconds, `failed`,
    what the store now holds (clips, lengths, bytes) and the exit status ("status": 0, or 1 when clips failed)."""
    summary["seconds"] = time.perf_counter() - t0
    summary["failed"] = failed
    with FrameStore(out) as st:
        lengths = st.index["length"]
        summary["stored"] = len(st)
        summary["lengths"] = (int(lengths.min()), int(lengths.max()), float(lengths.mean())) if len(st) else None
        summary["raw_bytes"] = int(lengths.sum()) * st.attrs["width"] * st.attrs["height"] * 3
        summary["store_bytes"] = st.nbytes()
    summary["status"] = RUN_ERROR if failed else OK
    return summary


def run_jobs(ex, jobs, workers, fn=None):
    """Yield decode results as they finish. At most 2 * workers clips are decoded ahead of the writer, so
    memory stays bounded when writing is slower than decoding. A worker that dies (a crash in a decoder
    library) ends the run with one line instead of a hang."""
    jobs = iter(jobs)
    pending = set()
    try:
        while True:
            for job in itertools.islice(jobs, max(0, 2 * workers - len(pending))):
                pending.add(ex.submit(fn or _decode_worker, job))
            if not pending:
                return
            finished, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                yield fut.result()
    except BrokenProcessPool:
        raise IngestError("a decode worker process died (killed, or crashed in a decoder library); "
                          "committed clips are kept, run the same command to resume") from None
    finally:
        for fut in pending:
            fut.cancel()


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
    ap.add_argument("--codec", "--compression", dest="compression", choices=CODECS + ("none",), default=DEFAULT_CODEC,
                    help=f"how frames are stored: jpeg (see --quality), raw (bit-exact uint8), or HDF5's lzf / "
                         f"gzip (default {DEFAULT_CODEC}; --compression is the old name, none = raw; "
                         f"docs/performance.md)")
    ap.add_argument("--quality", type=int, default=None,
                    help=f"JPEG quality 1-100 for --codec jpeg (default {DEFAULT_QUALITY})")
    ap.add_argument("--limit", type=int, default=None, help="only the first N clips (for trials)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing store made with other parameters")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def run_cli(build, argv, prog, description, default_size=(160, 120), extra_args=None):
    """Parse the common options, call `build(src, out, **options)` and print the summary; return the exit status
    (`ttrnn.cli`): the summary's, 2 for bad input, 1 for a full disk or another writer, 130 when interrupted."""
    ap = OneLineParser(prog=prog, description=description)
    add_common_args(ap, default_size)
    if extra_args:
        extra_args(ap)
    a = ap.parse_args(argv)
    opts = {k: v for k, v in vars(a).items() if k not in ("src", "out", "quiet")}
    try:
        s = build(a.src, a.out, progress=not a.quiet, **opts)
    except IngestError as e:
        print(f"error: {e}", file=sys.stderr)
        return USAGE
    except (DiskFullError, StoreLockedError) as e:  # the same command works once there is space / the other ends
        print(f"error: {e}", file=sys.stderr)
        return RUN_ERROR
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return SIGINT_STATUS
    print(format_summary(s))
    return s["status"]


def generated(clips):
    """True when the clips come from a tree preprocess.synthetic generated (its marker file at the root)."""
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
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d.lower() not in skip_dirs)
        out.extend(os.path.join(dirpath, f) for f in sorted(filenames) if is_video(f) and not f.startswith("."))
    return out
