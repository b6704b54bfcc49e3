"""Convert a frame store to another codec without the videos: SRC (any codec, schema 1 or 2) -> OUT.

    python -m preprocess.transcode SRC.h5 OUT.h5 --codec jpeg [--quality Q] [--workers N] [--overwrite] [--quiet]

Worker processes read each clip from SRC (checksums verified) and write it, re-encoded, as a shard of OUT; one
writer commits them, as in preprocessing, so a killed run resumes with the same command (no clip twice, no half
clip) and a full disk is one line with exit 1. A clip SRC cannot read is recorded as failed (exit 1); SRC's own
failures and splits are carried over. The index rows (labels, groups, sources, fps) are copied as they are.
"""

from __future__ import annotations

import os
import sys
import time

import cv2  # noqa: F401 - the JPEG codec's library, imported once before the workers fork, not in each

from preprocess.ingest import INTERRUPTED, IngestError, finish_summary, format_summary, run_jobs, worker_pool
from preprocess.progress import progress as progress_bar
from ttrnn.cli import RUN_ERROR, SIGINT_STATUS, USAGE, OneLineParser
from ttrnn.store import (
    CODECS,
    DEFAULT_QUALITY,
    CorruptClipError,
    DiskFullError,
    FrameStore,
    StoreError,
    StoreLockedError,
    StoreWriter,
    clip_meta,
    disk_full_error,
    is_disk_full,
    params_of,
    recoded_params,
    write_shard,
)

_SOURCES = {}  # per worker process: path -> (FrameStore, its label matrix)


def _transcode_worker(job):
    """Read row `row` of SRC and publish it as a shard of OUT -> (i, name|None, n_frames, reason, cpu, full)."""
    i, src, row, directory, params, uid = job
    cpu0 = time.process_time()
    if src not in _SOURCES:
        store = FrameStore(src)
        _SOURCES[src] = store, store.label_matrix()
    store, label_matrix = _SOURCES[src]
    r = store.index[row]
    labels = label_matrix[row].tolist() if store.multilabel else None
    try:
        frames = store.read(row)
        meta = clip_meta(r["clip_id"], r["class_name"], r["label"], r["group"], r["source"], r["fps"], labels)
        return i, write_shard(directory, frames, meta, params, uid), len(frames), None, time.process_time() - cpu0, 0
    except CorruptClipError as e:
        return i, None, 0, str(e), time.process_time() - cpu0, 0
    except OSError as e:
        if is_disk_full(e):
            return i, None, 0, None, time.process_time() - cpu0, frames.nbytes
        return i, None, 0, f"{type(e).__name__}: {e}", time.process_time() - cpu0, 0


def transcode(src, out, codec, quality=None, workers=None, overwrite=False, progress=True, log=None):
    """Write the store `out`: the clips of store `src` in codec `codec`; returns the ingest-style summary."""
    t0 = time.perf_counter()
    if os.path.abspath(src) == os.path.abspath(out):
        raise IngestError("SRC and OUT are the same store")
    try:
        with FrameStore(src) as s:
            s.check_shards()   # a source copied without its shard folder: one line now, not one per clip
            ids, n = list(s.index["clip_id"]), len(s)
            splits = {k: {p: [ids[j] for j in rows] for p, rows in v.items()} for k, v in s.splits.items()}
            src_failed = list(s.failed)
        params = recoded_params(params_of(src), codec, quality)
    except StoreError as e:
        raise IngestError(str(e)) from None
    workers = int(workers or os.cpu_count() or 1)
    if workers < 1:
        raise IngestError("--workers must be >= 1")
    with worker_pool(min(workers, max(1, n))) as ex:
        try:
            writer = StoreWriter(out, params, overwrite=overwrite)
        except (DiskFullError, StoreLockedError):
            raise
        except StoreError as e:
            raise IngestError(str(e)) from None
        return _copy(src, out, writer, ids, splits, src_failed, ex, workers, progress, log or sys.stderr, t0)


def _copy(src, out, writer, ids, splits, src_failed, ex, workers, progress, log, t0):
    summary = dict(dataset="transcode", out=os.fspath(out), requested=len(ids), decoded=0, new=0, failed=[],
                   frames_new=0, workers=workers, worker_cpu_seconds=0.0, write_seconds=0.0)
    bar = None
    try:
        done = writer.done_ids
        todo = [r for r, cid in enumerate(ids) if cid not in done]
        summary["skipped"] = len(ids) - len(todo)
        failed = list(src_failed)
        writer.set_failed(failed)
        writer.set_splits(splits)
        writer.commit()
        jobs = [(i, os.fspath(src), r, writer.dir, writer.params, writer.uid) for i, r in enumerate(todo)]
        if progress and todo:
            bar = progress_bar(len(todo), f"transcode -> {os.path.basename(os.fspath(out))}", file=log)
        tdec = time.perf_counter()
        for i, name, n_frames, reason, cpu, full in run_jobs(ex, jobs, workers, _transcode_worker):
            summary["decoded"] += 1
            summary["worker_cpu_seconds"] += cpu
            if full:
                raise DiskFullError("a shard did not fit")
            if name is None:
                failed.append((f"{ids[todo[i]]} (in {src})", reason))
                writer.set_failed(failed)
            else:
                writer.add_shard(name)
                summary["new"] += 1
                summary["frames_new"] += n_frames
            if bar is not None:
                bar.update(1)
        summary["decode_seconds"] = time.perf_counter() - tdec
        writer.close()
    except DiskFullError:
        n = len(writer.rows)
        per_clip = writer.shard_bytes() / n if n else 0
        raise disk_full_error(out, int(per_clip * max(1, len(ids) - n))) from None
    finally:
        if bar is not None:
            bar.close()
        try:
            writer.close()
        except DiskFullError:
            pass
    summary = finish_summary(summary, out, failed[len(src_failed):], t0)
    summary["failed"] = failed
    return summary


def main(argv=None):
    ap = OneLineParser(prog="python -m preprocess.transcode", description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="the store to read")
    ap.add_argument("out", help="the store to write")
    ap.add_argument("--codec", required=True, choices=CODECS, help="codec of OUT")
    ap.add_argument("--quality", type=int, default=None, help=f"JPEG quality (default {DEFAULT_QUALITY})")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: number of cores)")
    ap.add_argument("--overwrite", action="store_true", help="replace OUT if it was made otherwise")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    try:
        s = transcode(a.src, a.out, a.codec, a.quality, a.workers, a.overwrite, progress=not a.quiet)
    except (IngestError, StoreError) as e:  # a full disk or another writer: runtime (1); else bad input (2)
        print(f"error: {e}", file=sys.stderr)
        return RUN_ERROR if isinstance(e, (DiskFullError, StoreLockedError)) else USAGE
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return SIGINT_STATUS
    print(format_summary(s))
    return s["status"]  # 1 when clips of SRC could not be read


if __name__ == "__main__":
    sys.exit(main())
