"""Section `export`: the paper's TT-GRU and TT-LSTM on UCF11's shapes exported as `python -m experiments.export`
writes them (Keras's `model.export`: SavedModel, ONNX, LiteRT float32), the size of each artifact and the latency
of one clip at batch 1 on each runtime.

The cases: `ttrnn.models.paper_model("ucf11", cell, 11)` (uint8 frames 160x120x3, TT modes 8x20x20x18 -> 4x4x4x4,
ranks 4, softmax over 11 classes; random weights: sizes and times do not depend on them), saved as `.keras` (the
run directory's file, for comparison) and exported to each format (`experiments.export.export`, checked equal to
Keras to 1e-5). A timed call classifies one clip of T frames of random pixels at batch 1 (T = 16, `--quick` 2,
`--frames`): Keras (`model.predict_on_batch`, the fast path of training and predict), TensorFlow on the SavedModel
(its `serve` endpoint), onnxruntime (CPU, as many threads as cores) and the standard LiteRT interpreter (builtin
ops, XNNPACK, as many threads as cores), the LiteRT model twice: exported for any batch and length (as the other
formats) and for exactly one clip of T frames (`--batch 1 --frames T`: shapes known when the interpreter is built,
so XNNPACK takes the graph); built and run once first, then timed round-robin, best of `--repeats` (default 5,
quick 1). A format whose packages are missing (the `export` extra) is left out.

Rows, per model (`ttgru`, `ttlstm`): `export_{model}_{format}_mb` (keras, savedmodel, onnx, litert: megabytes on
disk, a SavedModel's whole folder) and `export_{model}_{runtime}_ms_per_clip` (keras, savedmodel, onnx, litert,
litert_static).
"""

import os
import tempfile
from pathlib import Path

import numpy as np

from experiments.bench.common import FRAME_SHAPE, UCF11_CLASSES, timed_interleaved

MODELS = {"ttgru": "gru", "ttlstm": "lstm"}
FILES = {"savedmodel": "saved_model", "onnx": "model.onnx", "litert": "model.tflite"}
FRAMES = 16                     # frames of the timed clip (--quick: QUICK_FRAMES)
QUICK_FRAMES = 2


def bench_export(args):
    """The section's rows (module docstring), in order."""
    from experiments.export import FORMATS, export, missing_packages, runtime, size_bytes
    from ttrnn.models import paper_model

    repeats = args.repeats or (1 if args.quick else 5)
    frames = args.frames or (QUICK_FRAMES if args.quick else FRAMES)
    clip = np.random.default_rng(0).integers(0, 256, (1, frames) + FRAME_SHAPE, dtype=np.uint8)
    formats = [fmt for fmt in FORMATS if not missing_packages(fmt)]
    sizes, cases = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cell in MODELS.items():
            model = paper_model("ucf11", cell, UCF11_CLASSES)
            folder = Path(tmp) / name
            folder.mkdir()
            model.save(folder / "model.keras")
            sizes[name, "keras"] = size_bytes(folder / "model.keras")
            cases[f"{name}_keras"] = lambda m=model: m.predict_on_batch(clip)
            for fmt in formats:
                path = export(model, folder / FILES[fmt], fmt)
                sizes[name, fmt] = size_bytes(path)
                run = runtime(path, fmt, threads=os.cpu_count())
                expected = model.predict_on_batch(clip)
                assert np.abs(run(clip) - expected).max() <= 1e-5, f"{name} {fmt}: outputs differ from Keras's"
                cases[f"{name}_{fmt}"] = lambda r=run: r(clip)
            if "litert" in formats:                  # the input fixed to one clip of `frames` frames
                path = export(model, folder / "static.tflite", "litert", batch=1, frames=frames)
                run = runtime(path, "litert", threads=os.cpu_count())
                assert np.abs(run(clip) - model.predict_on_batch(clip)).max() <= 1e-5, f"{name}: static LiteRT"
                cases[f"{name}_litert_static"] = lambda r=run: r(clip)
        best = timed_interleaved(cases, repeats)
    rows = []
    for (name, fmt), size in sizes.items():
        what = "the .keras file" if fmt == "keras" else ("the SavedModel folder" if fmt == "savedmodel" else
                                                         f"the {fmt} file")
        rows.append({"name": f"export_{name}_{fmt}_mb", "value": size / 1e6, "unit": f"MB ({what}, float32)"})
    for case, seconds in best.items():
        fixed = ", the input fixed to it" if case.endswith("_static") else ""
        rows.append({"name": f"export_{case}_ms_per_clip", "value": 1e3 * seconds,
                     "unit": f"ms per clip of {frames} frames (batch 1{fixed})"})
    return rows
