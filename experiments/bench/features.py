"""Section `features` (only when named; a few minutes at the defaults): per-frame feature extraction, and an epoch
of a TT-LSTM over a UCF11-size feature store through the trainer CLI.

Extraction: `ttrnn.features.extract_frames` (what `python -m experiments.features` runs per clip) on 64 random
160x120 uint8 frames, for resnet50 and inceptionv3 (random weights, average pooling, their ImageNet input sizes 224
and 299) at 8, 16 and 32 frames per backbone call; the cases timed round-robin, `--repeats` rounds (default 3), the
best kept, each case called once untimed first (it traces). Rows `features_extract_{backbone}_b{batch}_fps`:
frames/s, the frames' decoding excluded. `--quick`: 16 frames at 64 px (75 for inceptionv3), batch 8, one round.

The store: 1,600 clips (UCF11's 1,600 videos) of about 180 steps (UCF11's mean of 484 frames at 25 fps, thinned
to about 10 per second as feature extractors do; uniform in 120..240) of 2,048 float16 values (InceptionV3 /
ResNet50's average pool), 1.2 GB, written through the store writer (`write_synthetic_features`: class means plus
noise, no backbone run) at `--store` or in a temporary folder; `--quick`: 160 clips of 24..48 steps. Then
`python -m experiments.ucf11 --data STORE --model lstm --use-tt --batch-size 16 --epochs 2 --quiet` (the random
5-fold split: 1,280 training clips) and the same at `--batch-size 64` (a quarter of the sequential steps),
`--repeats` rounds (default 1) of the two, the fastest of each kept. Rows: the store's size and
write seconds, `features_epoch1_train_s` (the first training epoch, from metrics.json: it traces the step),
`features_epoch_train_s` (the second), `features_epoch_steps_per_s` (feature vectors of the training clips per
second of the second), `features_epoch_eval_s`, the run's wall seconds (TensorFlow's start and the model's build
included) and peak RSS; at batch 64 `features_epoch_b64_train_s`, `features_epoch_b64_cpu_s` and
`features_epoch_b64_steps_per_s`.
"""

import os
import tempfile
import time
from pathlib import Path

import numpy as np

EXTRACT_BACKBONES = ("resnet50", "inceptionv3")
EXTRACT_BATCHES = (8, 16, 32)
EXTRACT_FRAME = (120, 160, 3)   # UCF11's stored frames (the paper's 160x120)
EPOCH_BATCHES = (16, 64)
UCF11_CLIPS = 1600
STEPS = (120, 240)         # feature steps per clip: ~180 on average
WIDTH = 2048               # InceptionV3 / ResNet50 average-pool features


def write_synthetic_features(path, clips=UCF11_CLIPS, steps=STEPS, width=WIDTH, classes=11, groups=25,
                             dataset="ucf11", signal=1.0, seed=0, backbone="inceptionv3"):
    """A feature store of generated clips at `path` through the store writer (`ttrnn.store.StoreWriter` with
    `feature_params`): clip k has class k % classes, group (k // classes) % groups, a length uniform in `steps`, and
    float16 features relu(signal * mean[class] + N(0, 1)) with class means drawn from N(0, 1) (`signal` 0: no
    class information). The store says it is synthetic; its `features` name `backbone` with weights None. Returns
    the path."""
    from ttrnn.store import StoreWriter, feature_params, store_params
    rng = np.random.default_rng(seed)
    names = [f"class{c:02d}" for c in range(classes)]
    source = store_params(dataset, 160, 120, classes=names, synthetic=True)
    features = {"backbone": backbone, "weights": None, "pooling": "avg", "width": int(width), "image_size": None,
                "source": None, "frame_skip": 1, "fps": None, "source_uid": None}
    means = rng.standard_normal((classes, width)).astype(np.float32) * float(signal)
    with StoreWriter(path, feature_params(source, features), overwrite=True) as writer:
        for k in range(clips):
            label = k % classes
            n = int(rng.integers(steps[0], steps[1] + 1))
            x = np.maximum(means[label] + rng.standard_normal((n, width), dtype=np.float32), 0).astype(np.float16)
            writer.add_clip(f"clip{k:05d}", x, names[label], label, f"g{(k // classes) % groups:02d}",
                            f"synthetic/{k}", 25.0)
            if (k + 1) % 200 == 0:
                writer.commit()
        writer.commit()
    return path


def bench_extraction(frames=64, repeats=3, batches=EXTRACT_BATCHES, backbones=EXTRACT_BACKBONES, image_size=None):
    """Frames/s of `extract_frames` per (backbone, batch) on `frames` random 160x120 frames (module docstring):
    {(backbone, batch): best frames/s}. `image_size` None: each backbone's ImageNet size."""
    from ttrnn.features import backbone_model, extract_frames
    from ttrnn.features.backbones import MIN_IMAGE_SIZE
    x = np.random.default_rng(0).integers(0, 256, (frames,) + EXTRACT_FRAME, dtype=np.uint8)
    models = {b: backbone_model(b, weights=None, pooling="avg",
                                image_size=image_size and max(image_size, MIN_IMAGE_SIZE.get(b, 32)))
              for b in backbones}
    best = {}
    for case in [(b, n) for b in backbones for n in batches]:
        extract_frames(models[case[0]], x[:case[1]], batch=case[1])      # traces this batch shape
    for _ in range(repeats):
        for b, n in [(b, n) for b in backbones for n in batches]:
            t0 = time.perf_counter()
            extract_frames(models[b], x, batch=n)
            best[b, n] = max(best.get((b, n), 0.0), frames / (time.perf_counter() - t0))
    return best


def bench_features(args):
    """The section's rows (module docstring)."""
    from experiments.bench.common import run_trainer, store_bytes
    quick = args.quick
    clips, steps = (160, (24, 48)) if quick else (UCF11_CLIPS, STEPS)
    fps = bench_extraction(16, 1, (8,), image_size=64) if quick else bench_extraction(repeats=args.repeats or 3)
    rows = [(f"features_extract_{b}_b{n}_fps", round(v, 1),
             f"frames/s ({b}, random weights, avg pooling, {'64' if quick else 'ImageNet'} px input, batch {n})")
            for (b, n), v in fps.items()]
    with tempfile.TemporaryDirectory(prefix="ttrnn-bench-features-") as tmp:
        store = Path(args.store or os.path.join(tmp, "features.h5"))
        t0 = time.perf_counter()
        write_synthetic_features(store, clips=clips, steps=steps)
        write_s = time.perf_counter() - t0
        best = {}
        for k in range(args.repeats or 1):
            for batch in EPOCH_BATCHES:          # interleaved: each round runs both batch sizes
                out = Path(tmp) / f"run{k}-b{batch}"
                metrics, wall = run_trainer(store, steps[1], out, extra=(
                    "--model", "lstm", "--epochs", "2", "--no-tensorboard", "--batch-size", str(batch)))
                if batch not in best or metrics["epoch_seconds"][1] < best[batch][0]["epoch_seconds"][1]:
                    best[batch] = (metrics, wall)
        metrics, wall = best[EPOCH_BATCHES[0]]
        train_s = metrics["epoch_seconds"][1]
        usage = metrics["epoch_usage"][1]
        train_steps = float(np.mean(steps)) * metrics["num_train"]
        big, _ = best[EPOCH_BATCHES[1]]
        big_s, big_usage = big["epoch_seconds"][1], big["epoch_usage"][1]
        rows += [
            ("features_store_gb", round(store_bytes(store) / 1e9, 3),
             f"GB ({clips} clips of {steps[0]}-{steps[1]} steps x {WIDTH} float16)"),
            ("features_store_write_s", round(write_s, 1), "s (generated and written through the store writer)"),
            ("features_epoch1_train_s", round(metrics["epoch_seconds"][0], 2),
             "s first training epoch (traces the step)"),
            ("features_epoch_train_s", round(train_s, 2),
             f"s second training epoch (TT-LSTM, batch 16, {metrics['num_train']} clips)"),
            ("features_epoch_steps_per_s", round(train_steps / train_s), "feature vectors/s (training epoch)"),
            ("features_epoch_cpu_s", round(usage.get("user_s", 0) + usage.get("sys_s", 0), 1),
             "s CPU time of the training epoch"),
            ("features_epoch_eval_s", round(metrics["eval_seconds"][1], 2),
             f"s evaluation ({metrics['num_test']} clips)"),
            ("features_run_wall_s", round(wall, 1), "s the whole run (TensorFlow's start and the build included)"),
            ("features_run_peak_rss_mb", metrics.get("peak_rss_mb"), "MB"),
            ("features_epoch_b64_train_s", round(big_s, 2), "s second training epoch at batch 64"),
            ("features_epoch_b64_cpu_s", round(big_usage.get("user_s", 0) + big_usage.get("sys_s", 0), 1),
             "s CPU time of that epoch"),
            ("features_epoch_b64_steps_per_s", round(train_steps / big_s), "feature vectors/s (batch 64)"),
        ]
        return [{"name": name, "value": value, "unit": unit} for name, value, unit in rows]
