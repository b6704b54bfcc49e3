"""Section `train`: training from a store end to end against the same step on batches in memory, the padding the
trainer's batching adds, and peak memory.

- `train_in_memory` and `train_end_to_end_{lzf,none}_store_{W}_workers`: real frames/s of the paper TT-GRU model
  (`ttrnn.models.paper_model`, the trainer's step) over one epoch of a bench store (48 clips of UCF11's length
  spread / 8; `--quick` 16 clips of 2-14 frames), once from batches already in memory, once streamed by the
  trainer's feed (`BatchFeed` with bucketing, batch 16, padded to multiples of 16, the reader pool with W = 0, 2
  and N worker processes, `tf.data`), from an lzf and an uncompressed store, all timed round-robin;
  `train_end_to_end_vs_in_memory` and `train_padded_fps` for the trainer's default reader on the `--compression`
  store (default none, as `preprocess` writes by default);
- `padding_waste_{bucketed,unbucketed}`: (padded - real frames) / real frames over 3 shuffled epochs of the
  trainer's batching (`ttrnn.data.plan_batches`) on UCF11's length spread (1,280 clips), max-len 1,492, batch 16;
- `peak_rss_{N}_clips`: peak RSS (VmHWM) of a fresh process streaming N clips through the feed and the step;
  `peak_rss_max_len_{T}`: of a fresh process running one train step at batch 16 x T frames (T = 450, 900, 1,492;
  `--quick` 16, 64, in one process), and `peak_rss_per_padded_step`, the least-squares slope of those peaks per
  padded time step (a batch's uint8 frames alone take 16 x 57,600 bytes per step).
"""

import subprocess
import tempfile

import numpy as np

from experiments.bench.common import (
    BATCH,
    FRAME_SHAPE,
    TREE,
    UCF11_CLASSES,
    UCF11_LENGTHS,
    bench_child,
    make_store,
    timed_interleaved,
    trainer_step,
    ucf11_lengths,
)


def bench_train(args):
    """The section's rows (module docstring), in order."""
    import tensorflow as tf

    from ttrnn import data, models
    from ttrnn.store import FrameStore

    scale = 100 if args.quick else 8           # quick: 16 clips of 2-14 frames, one batch an epoch
    clips = 16 if args.quick else 48
    lengths = np.maximum(2, ucf11_lengths(clips, seed=1) // scale)
    max_len = UCF11_LENGTHS[1] // scale
    spec = data.InputSpec(max_len=max_len, pad_multiple=16 if not args.quick else 4)
    # quick: one stream job and two step lengths (the fewest that give a slope), in one child started now
    clip_counts, frames = ((8,), 8) if args.quick else ((16, 64), 120)
    rss_lengths = (16, 64) if args.quick else (450, 900, 1492)
    jobs = [["stream", count, frames] for count in clip_counts] + [["step", length, BATCH] for length in rss_lengths]
    rss_peaks = start_rss_children(jobs, together=args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        stores = {c: FrameStore(make_store(f"{tmp}/train_{c}.h5", lengths, compression=c))
                  for c in ("lzf", "none")}
        model = models.paper_model("ucf11", "gru", UCF11_CLASSES)
        step = trainer_step(model, BATCH)
        feeds, readers = {}, []
        for compression, store in stores.items():
            for w in sorted({0, 2, data.default_workers()}):    # 0 = read in the tf.data thread
                reader = data.ReaderPool(store.path, workers=w)
                readers.append(reader)
                feeds[f"{compression}_store_{w}_workers"] = data.BatchFeed(
                    store, np.arange(len(store)), spec, BATCH, training=True, seed=0, reader=reader)
        feed = next(iter(feeds.values()))
        real = int(feed.lengths.sum())
        in_memory = [(tf.constant(x), tf.constant(y)) for x, y in feed.batches(0)]
        padded = sum(int(np.prod(x.shape[:2])) for x, _ in in_memory)
        for x, y in in_memory:                              # trace every padded length once
            step((x, y))

        def from_store(dataset):
            def run():
                for _ in data.map_batches(dataset, step):    # as the trainer consumes its batches
                    pass
            return run

        def from_memory():
            for x, y in in_memory:
                step((x, y))

        cases = {name: from_store(f.dataset(lambda: 0)) for name, f in feeds.items()}
        cases["memory"] = from_memory
        best = timed_interleaved(cases, args.repeats or (1 if args.quick else 3), warmup=1)
        for reader in readers:
            reader.close()
        for store in stores.values():
            store.close()
    mem = real / best.pop("memory")
    yield {"name": "train_in_memory", "value": round(mem, 1), "unit": "frames/s (real frames)"}
    for name, seconds in best.items():
        yield {"name": f"train_end_to_end_{name}", "value": round(real / seconds, 1),
               "unit": f"frames/s (real frames; {real / seconds / mem:.2f}x in memory)"}
    default = f"{args.compression}_store_{data.default_workers()}_workers"
    yield {"name": "train_end_to_end_vs_in_memory", "value": round(real / best[default] / mem, 3),
           "unit": f"x ({default.replace('_', ' ')}: the trainer's default reader)"}
    yield {"name": "train_padded_fps", "value": round(padded / best[default], 1),
           "unit": f"padded frames/s (end to end, {default.replace('_', ' ')})"}
    ucf = ucf11_lengths()
    for bucket in (True, False):
        waste = padding_waste(ucf, data.InputSpec(max_len=UCF11_LENGTHS[1]), BATCH, bucket)
        yield {"name": f"padding_waste_{'bucketed' if bucket else 'unbucketed'}", "value": round(100 * waste, 2),
               "unit": f"% (padded / real frames, UCF11 lengths, max-len {UCF11_LENGTHS[1]}, batch {BATCH})"}
    peaks = rss_peaks()
    for count, peak in zip(clip_counts, peaks):
        yield {"name": f"peak_rss_{count}_clips", "value": peak, "unit": "MB (stream a store through a train step)"}
    peaks = peaks[len(clip_counts):]
    for length, peak in zip(rss_lengths, peaks):
        yield {"name": f"peak_rss_max_len_{length}", "value": peak, "unit": f"MB (train step, batch {BATCH})"}
    slope = np.polyfit(rss_lengths, peaks, 1)[0]
    yield {"name": "peak_rss_per_padded_step", "value": round(float(slope), 3),
           "unit": f"MB per padded time step (least-squares slope over max-len {'/'.join(map(str, rss_lengths))}, "
                   f"batch {BATCH}; uint8 frames alone: {BATCH * np.prod(FRAME_SHAPE) / 2 ** 20:.2f})"}


def padding_waste(lengths, spec, batch, bucket, epochs=3):
    """Padded frames / real frames of the trainer's batching (data.plan_batches, data.padded_length)."""
    from ttrnn import data

    lengths = np.array([spec.effective_length(n) for n in lengths])
    real = padded = 0
    for epoch in range(epochs):
        rng = np.random.RandomState(epoch)
        for positions in data.plan_batches(lengths, batch, True, rng, bucket=bucket):
            t = data.padded_length(lengths[positions], spec)
            real += int(lengths[positions].sum())
            padded += t * len(positions)
    return (padded - real) / real


# ---- peak RSS in child processes --------------------------------------------------------------------------------
def start_rss_children(jobs, together=False):
    """Peak RSS (MB) of each job, each in a fresh `python -m experiments.bench --rss-child ...` process, or
    (`together`, the smoke pass: one TensorFlow start instead of one per job) all in one process in the order
    given, each figure then the process's peak so far (a job's own peak when jobs come in growing order).
    Returns the function that waits for the figures: `together` starts its child now, beside the caller's own
    work (the smoke pass: its TensorFlow start and tracing overlap the train section's, on the second core);
    separate children run one after the other when the figures are asked for."""
    def start(group):
        spec = ";".join(",".join(str(v) for v in job) for job in group)
        proc = subprocess.Popen(bench_child("--rss-child", spec), cwd=TREE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        return spec, len(group), proc

    def collect(spec, n, proc):
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"RSS child {spec} failed: {err.strip().splitlines()[-1:]}")
        return [float(v) for v in out.strip().splitlines()[-n:]]

    if together:
        child = start(jobs)
        return lambda: collect(*child)
    return lambda: [peak for job in jobs for peak in collect(*start([job]))]


def rss_child_main(jobs):
    """`--rss-child JOB;JOB...`: each job in turn, printing the process's peak RSS (MB) after each."""
    from experiments.report import peak_rss_mb

    for job in jobs.split(";"):
        rss_job(job)
        print(peak_rss_mb(), flush=True)


def rss_job(job):
    """`step,T,B`: one paper TT-GRU train step on T real frames per clip, batch B.
    `stream,N,T`: one epoch of N clips of T frames from a temporary store through BatchFeed + train step."""
    import tensorflow as tf

    from ttrnn import data, models
    from ttrnn.store import FrameStore

    kind, a, b = job.split(",")
    a, b = int(a), int(b)
    model = models.paper_model("ucf11", "gru", UCF11_CLASSES)
    step = trainer_step(model, b if kind == "step" else BATCH)
    if kind == "step":               # the batch comes through tf.data as in the trainer (no extra copy)
        def batch():
            x = data.aligned_empty((b, a) + FRAME_SHAPE)
            x[:] = np.random.default_rng(0).integers(1, 256, (a, 1, 1, 3), dtype=np.uint8)   # no padding frame
            yield x, np.eye(UCF11_CLASSES, dtype=np.float32)[np.arange(b) % UCF11_CLASSES]
        spec = (tf.TensorSpec((b, a) + FRAME_SHAPE, tf.uint8), tf.TensorSpec((b, UCF11_CLASSES), tf.float32))
        for x, y in tf.data.Dataset.from_generator(batch, output_signature=spec):
            step((x, y))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            store = FrameStore(make_store(f"{tmp}/rss.h5", [b] * a))
            reader = data.ReaderPool(store.path, workers=data.default_workers())
            feed = data.BatchFeed(store, np.arange(a), data.InputSpec(max_len=b), BATCH, training=True,
                                  reader=reader)
            for _ in data.map_batches(feed.dataset(lambda: 0), step):
                pass
            reader.close()
