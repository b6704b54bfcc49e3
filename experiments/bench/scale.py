"""Section `scale` (only when named; about an hour on 2 cores for both codecs): real training epochs of the trainer
CLI on a store of UCF11's size, measured, not projected.

Per codec of `--codecs` (default raw,jpeg) a store of 1,600 clips with UCF11's length spread (`ucf11_lengths`,
204-1,492 frames, mean 483.7) in the UCF11 schema (11 classes, 25 groups), its frames cycled from a pool
(`preprocess.synthetic.cycled_frames`; the pool: `--videos DIR`'s frames, else 32 generated ones), written once at
`--store` (raw: ~45 GB) and reused while its lengths and codec match. Then, at each max-len of `--max-lens`
(default 450 and 1,492):
- `scale_step_max_len_{L}`: the trainer's own step alone, warm, on every `--step-every`-th batch (default 4) of the
  epoch's plan in memory (padded frames/s);
- per codec, one trainer run (`experiments.ucf11 --use-tt --batch-size 16 --epochs 1`, paper split: 1,280 train /
  320 test clips) with the store evicted from the page cache first: training seconds, padded frames/s and its
  ratio to the warm step, the system share of its CPU time, minor page faults/s and disk MB/s over the epoch (the
  trainer's `epoch_usage`), evaluation seconds, the whole command's wall time and peak RSS;
- beside them `scale_{codec}_dd_read`, the store's files read sequentially from a cold cache (`dd bs=8M`'s rate).
`--quick`: 40 clips of lengths / 8 (at least 24 frames), max-lens 48 and 96, the step on every batch.
"""

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from experiments.bench.common import (
    BATCH,
    FRAME_SHAPE,
    UCF11_CLASSES,
    dd_rate,
    drop_from_page_cache,
    run_step_child,
    run_trainer,
    store_bytes,
    trainer_argv,
    ucf11_lengths,
)

SCALE_CLIPS = 1600                       # UCF11: 1,600 clips, 11 classes, 25 groups
SCALE_GROUPS = 25
SCALE_CODECS = ("raw", "jpeg")           # the store codecs trained from unless --codecs says otherwise


def scale_pool(videos=None, seed=0):
    """uint8 (N, 120, 160, 3): the frames a scale store cycles through. `videos` (a folder): every frame of its
    clips decoded at 160x120, so that a coded store's size is a real video's; else 32 frames of
    `preprocess.synthetic.moving_block_frames` (raw stores: the content does not matter)."""
    from experiments.bench.store import codec_clips
    from preprocess.synthetic import moving_block_frames

    if videos:
        frames = np.concatenate(codec_clips(videos, 0))
        return np.maximum(frames, 1)         # no all-zero frame: zero frames are padding
    rng = np.random.default_rng(seed)
    return np.stack([moving_block_frames(1, rng)[0] for _ in range(32)])


def make_scale_store(path, count=SCALE_CLIPS, lengths=None, seed=0, codec="raw", pool=None):
    """A UCF11-size store in the UCF11 schema (11 classes, 25 groups, `ucf11_lengths`) at `path` in `codec`
    (JPEG at its default quality), its frames cycled from `pool` (`scale_pool()` if None); returns `path`. An
    existing store with the same clip lengths and codec is reused (the full raw one is ~45 GB: generate it once)."""
    from preprocess.synthetic import cycled_frames
    from ttrnn.store import FrameStore, StoreWriter, store_params

    lengths = ucf11_lengths(count, seed) if lengths is None else np.asarray(lengths)
    try:
        with FrameStore(path) as store:
            if store.codec == codec and np.array_equal(np.sort(store.index["length"]), np.sort(lengths)):
                return path
    except Exception:                 # absent, partial or not a store: write it anew
        pass
    rng = np.random.default_rng(seed)
    pool = scale_pool(seed=seed) if pool is None else pool
    classes = [f"class{c:02d}" for c in range(UCF11_CLASSES)]
    params = store_params("ucf11", FRAME_SHAPE[1], FRAME_SHAPE[0], compression=codec, classes=classes)
    with StoreWriter(path, params, overwrite=True) as writer:
        for i, t in enumerate(lengths):
            label, group = i % UCF11_CLASSES, f"g{(i // UCF11_CLASSES) % SCALE_GROUPS + 1:02d}"
            clip_id = f"v_{classes[label]}_{group}_{i:05d}"
            writer.add_clip(clip_id, cycled_frames(int(t), rng, pool), classes[label], label,
                            f"v_{classes[label]}_{group}", f"{classes[label]}/{clip_id}.mpg", 29.97)
    return path


def scale_store_path(store, codec, several):
    """Where the scale store of `codec` lives: `store` itself for one codec, `STEM.CODEC.h5` beside it for several."""
    store = Path(store)
    return store.with_name(f"{store.stem}.{codec}{store.suffix or '.h5'}") if several else store


def cpu_model():
    """`/proc/cpuinfo`'s model name and the widest AVX the CPU has (AVX2 / AVX-512), for the figures' context."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "CPU unknown"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    avx = "AVX-512" if "avx512f" in text else "AVX2" if "avx2" in text else "no AVX2"
    return f"{model}, {avx}, {os.cpu_count()} CPUs"


def bench_scale(args):
    """The section's rows (module docstring), in order."""
    count = 40 if args.quick else SCALE_CLIPS
    lengths = np.maximum(24, ucf11_lengths(count) // 8) if args.quick else ucf11_lengths(count)
    codecs = args.codecs or SCALE_CODECS
    max_lens = args.max_lens or ((48, 96) if args.quick else (450, 1492))
    yield {"name": "scale_load", "value": round(os.getloadavg()[1], 2),
           "unit": f"load average (5 min) at the start; {cpu_model()}"}
    with tempfile.TemporaryDirectory() as tmp:
        pool = scale_pool(args.videos)
        stores = {}
        for codec in codecs:
            store = stores[codec] = scale_store_path(args.store or f"{tmp}/scale.h5", codec, len(codecs) > 1)
            t0 = time.perf_counter()
            make_scale_store(store, lengths=lengths, codec=codec, pool=pool)
            source = f"frames of {args.videos}" if args.videos else "generated frames"
            yield {"name": f"scale_{codec}_store_gb", "value": round(store_bytes(store) / 1e9, 3),
                   "unit": f"GB ({count} clips, UCF11 lengths, {source}; written or reused in "
                           f"{time.perf_counter() - t0:.0f} s: {store})"}
            yield {"name": f"scale_{codec}_dd_read", "value": round(dd_rate(store) / 1e6, 1),
                   "unit": "MB/s (the store's files read in 8 MB requests, cold cache)"}
        for max_len in max_lens:
            step = run_step_child(trainer_argv(stores[codecs[0]], max_len, f"{tmp}/step{max_len}"),
                                  every=args.step_every or (1 if args.quick else 4))
            step_fps = step["sample_frames"] / step["warm_s"]
            yield {"name": f"scale_step_max_len_{max_len}", "value": round(step_fps, 1),
                   "unit": f"padded frames/s (the trainer's step alone, warm, on {step['sample_frames']} of the "
                           f"epoch's {step['padded_frames']} padded frames in memory)"}
            for codec in codecs:
                yield from scale_rows(codec, max_len, stores[codec], step, step_fps, f"{tmp}/{codec}{max_len}")


def scale_rows(codec, max_len, store, step, step_fps, out):
    """The rows of one scale run: `codec`'s store at `max_len`, evicted from the page cache first."""
    drop_from_page_cache(store)
    metrics, wall = run_trainer(store, max_len, out, extra=("--no-tensorboard",))
    train, u = metrics["epoch_seconds"][0], metrics["epoch_usage"][0]
    fps, cpu = step["padded_frames"] / train, u["user_s"] + u["sys_s"]
    key = f"scale_{codec}_max_len_{max_len}"
    yield {"name": f"{key}_epoch", "value": round(train, 1),
           "unit": f"s training ({metrics['num_train']} clips, batch {BATCH}, TT-GRU)"}
    yield {"name": f"{key}_fps", "value": round(fps, 1),
           "unit": f"padded frames/s end to end ({fps / step_fps:.3f}x the warm step)"}
    yield {"name": f"{key}_system_cpu", "value": round(100 * u["sys_s"] / max(cpu, 1e-9), 2),
           "unit": f"% of the epoch's CPU time in the kernel ({cpu / u['wall_s']:.2f} cores busy)"}
    yield {"name": f"{key}_faults_per_s", "value": round(u["minor_faults"] / u["wall_s"], 1),
           "unit": "minor page faults/s over the epoch"}
    yield {"name": f"{key}_read", "value": round((u["read_bytes"] or 0) / u["wall_s"] / 1e6, 2),
           "unit": "MB/s from the disk over the epoch"}
    if metrics.get("eval_seconds"):
        yield {"name": f"{key}_eval", "value": round(metrics["eval_seconds"][0], 1),
               "unit": f"s evaluation ({metrics['num_test']} clips)"}
    yield {"name": f"{key}_wall", "value": round(wall, 1),
           "unit": "s (the whole command: start, epoch, evaluation, report)"}
    yield {"name": f"{key}_peak_rss", "value": metrics["peak_rss_mb"], "unit": "MB"}
