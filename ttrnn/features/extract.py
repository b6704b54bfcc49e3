"""A frame store's clips as a feature store: `extract_store`, the library half of `python -m experiments.features`.

Data flow: the frame store's rows -> `ttrnn.data.ReaderPool` (reader processes decode the frames, ahead of the
backbone) -> `FrameBatcher` (fixed batches of frames across clips, the backbone on each) -> per clip `(T, F)`
features -> `ttrnn.store.StoreWriter.add_clip` (a shard per clip, atomic index commits). So a feature store has the
frame store's crash safety and resume for free: a run killed at any moment keeps every committed clip (and adopts
the shards published after the last commit), and the same call again computes only the clips not yet stored.
"""

import os
import time

import numpy as np

from ttrnn.data.plans import ClipPlan
from ttrnn.data.readers import ReaderPool, default_workers
from ttrnn.data.sampling import resample_indices
from ttrnn.features.backbones import (
    POOLINGS,
    FrameBatcher,
    backbone_model,
    backbone_name,
    default_batch,
    feature_width,
    image_size_of,
    resolve_weights,
)
from ttrnn.store import (
    FEATURE_CODECS,
    CorruptClipError,
    FrameStore,
    StoreError,
    StoreWriter,
    feature_params,
    params_of,
)


def feature_spec(source, backbone, weights=None, pooling="avg", image_size=None, frame_skip=1, fps=None):
    """The `features` dict of a feature store (`FrameStore.features`) made from the open frame store `source`:
    backbone, weights (None, "imagenet" or the file's absolute path), pooling, width F, image_size, source (the
    frame store's absolute path), source_uid, frame_skip, fps. ValueError / WeightsError (one line) for bad values."""
    key = backbone_name(backbone)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if int(frame_skip) < 1:
        raise ValueError(f"frame-skip must be >= 1, got {frame_skip}")
    if fps is not None and not float(fps) > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if fps is not None and int(frame_skip) != 1:
        raise ValueError("give --frame-skip or --fps, not both")
    size = image_size_of(key, image_size)
    path = resolve_weights(key, weights, size)
    return {"backbone": key, "weights": "imagenet" if weights == "imagenet" else path, "pooling": pooling,
            "width": feature_width(key, pooling, size), "image_size": size, "source": os.path.abspath(source.path),
            "source_uid": source.uid, "frame_skip": int(frame_skip), "fps": None if fps is None else float(fps)}


def clip_rate(store, row):
    """Frames per second of the stored frames of clip `row`: the store's resampling rate (`--fps` of its
    preprocessing), else the source video's rate over the store's frame skip; 0.0 when unknown."""
    if store.attrs.get("fps"):
        return float(store.attrs["fps"])
    return float(store.index["fps"][row]) / max(1, int(store.attrs.get("frame_skip") or 1))


def clip_plans(store, rows, features):
    """The `ClipPlan` of each row: every `frame_skip`-th stored frame, or the frames a resampling to `fps` keeps
    (`ttrnn.data.sampling.resample_indices`). StoreError naming a clip without a frame rate when `fps` is asked."""
    plans = []
    for row in rows:
        if features["fps"] is None:
            plans.append(ClipPlan(int(row), frame_skip=features["frame_skip"]))
            continue
        rate = clip_rate(store, row)
        if not rate > 0:
            raise StoreError(f"clip {store.index['clip_id'][row]} of {store.path} has no frame rate: thin it with "
                             f"--frame-skip instead of --fps")
        plans.append(ClipPlan(int(row), frames=resample_indices(int(store.index["length"][row]), rate,
                                                                 features["fps"])))
    return plans


def extract_store(frame_store, out, backbone, weights=None, pooling="avg", image_size=None, frame_skip=1, fps=None,
                  batch=None, workers=None, dtype="float16", overwrite=False, progress=None, model=None):
    """Write the feature store `out`: per-frame `backbone` features of every clip of the frame store `frame_store`
    (any codec), with its index rows (clip id, class, label(s), group, source, fps), its splits and its failed
    clips; returns a summary dict (clips, new, skipped, failed [(clip id, reason)], frames_new, seconds,
    extract_seconds, frames_per_second, batch, workers, status 0 or 1).

    A store `out` made with the same parameters is continued (only clips not yet there are computed); one made
    with others is refused unless `overwrite`. A clip of the frame store that cannot be read is recorded as failed
    (the store's `failed` list, "frame store clip <id>: <reason>") and the run goes on; status is then 1.

    Args:
        frame_store: path of a frame store (not a feature store).
        out: path of the feature store to write.
        backbone, weights, pooling, image_size: the model (`backbone_model`).
        frame_skip: keep every k-th stored frame; or `fps`: resample the stored frames to this rate.
        batch: frames per backbone call (default `default_batch()`).
        workers: reader processes decoding frames ahead of the backbone (default `ttrnn.data.default_workers()`).
        dtype: "float16" (default) or "float32".
        overwrite: replace an existing store made with other parameters.
        progress: None, or `progress(total)` -> a bar with `update(n)` and `close()` (`preprocess.progress`'s),
            made once the clips still to compute (`total`) are known and updated after each clip written.
        model: the backbone model to use (default: `backbone_model(backbone, weights, pooling, image_size)`);
            it must be that model, as the store's parameters say so.

    Raises StoreError (missing or damaged source, a mismatching `out`, no frame rate for `fps`),
    StoreLockedError, DiskFullError, ValueError / WeightsError (bad arguments): each one line.
    """
    t0 = time.perf_counter()
    if progress is not None and progress is not False and not callable(progress):
        raise TypeError("progress must be None or a callable progress(total) -> bar with update() and close()")
    if dtype not in FEATURE_CODECS:
        raise ValueError(f"dtype must be one of {', '.join(FEATURE_CODECS)}, got {dtype!r}")
    if os.path.abspath(frame_store) == os.path.abspath(out):
        raise ValueError("the frame store and the feature store are the same file")
    batch = int(batch or default_batch())
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    with FrameStore(frame_store) as source:
        source.check_shards()
        features = feature_spec(source, backbone, weights, pooling, image_size, frame_skip, fps)
        params = feature_params(params_of(frame_store), features, dtype)
        rows = np.arange(len(source))
        ids = [str(c) for c in source.index["clip_id"]]
        splits = {n: {p: [ids[r] for r in part] for p, part in sp.items()} for n, sp in source.splits.items()}
        labels = source.label_matrix()
        with StoreWriter(out, params, overwrite=overwrite) as writer:
            done = writer.done_ids
            todo = [int(r) for r in rows if ids[r] not in done]
            retried = {f"frame store clip {ids[r]}" for r in todo}
            failed = [(s, why) for s, why in writer.failed() if s not in retried]
            own = {s for s, _ in source.failed}
            failed = list(source.failed) + [(s, why) for s, why in failed if s not in own]
            writer.set_splits(splits)
            writer.set_failed(failed)
            writer.commit()
            summary = dict(frame_store=os.fspath(frame_store), out=os.fspath(out), backbone=features["backbone"],
                           clips=len(rows), skipped=len(rows) - len(todo), new=0, failed=[], frames_new=0,
                           batch=batch, workers=workers)
            if todo:
                model = model or backbone_model(backbone, weights, pooling, image_size)
                plans = clip_plans(source, todo, features)
                bar = progress(len(todo)) if progress else None
                t1 = time.perf_counter()
                try:
                    _extract(source, writer, model, plans, batch, workers, dtype, labels, summary, failed, bar)
                finally:
                    if bar is not None:
                        bar.close()
                summary["extract_seconds"] = time.perf_counter() - t1
            writer.set_failed(failed)
    summary["seconds"] = time.perf_counter() - t0
    dt = summary.get("extract_seconds") or 0.0
    summary["frames_per_second"] = summary["frames_new"] / dt if dt > 0 else None
    summary["status"] = 1 if summary["failed"] else 0
    return summary


def _extract(source, writer, model, plans, batch, workers, dtype, labels, summary, failed, bar):
    """Read `plans` through reader processes, run the backbone on fixed batches, add each finished clip."""
    batcher = FrameBatcher(model, batch, source.frame_shape, dtype)
    index, multilabel = source.index, source.multilabel

    def store(done):
        for row, feats in done:
            r = index[row]
            writer.add_clip(str(r["clip_id"]), feats, str(r["class_name"]), int(r["label"]), str(r["group"]),
                            str(r["source"]), float(r["fps"]), labels[row] if multilabel else None)
            summary["new"] += 1
            summary["frames_new"] += len(feats)
            if bar is not None:
                bar.update(1)

    with ReaderPool(source.path, workers=workers, direct=source.direct) as reader:
        # reads ahead: two batches' worth of clips, at least two clips per worker
        window = max(2 * workers, 2 * batch // max(1, int(np.median(index["length"]))) + 1)
        for plan, frames in zip(plans, reader.imap(plans, window, keep_going=True)):
            if isinstance(frames, CorruptClipError):
                cid = str(index["clip_id"][plan.row])
                failed.append((f"frame store clip {cid}", str(frames)))
                summary["failed"].append((cid, str(frames)))
                writer.set_failed(failed)
                continue
            store(batcher.add(plan.row, frames))
        store(batcher.flush())
