"""Section `stream`: single-stream recognition at batch 1: the paper's TT-GRU and TT-LSTM on UCF11's shapes fed a
video as it plays, through the code of `python -m experiments.predict RUN --stream` (`experiments.stream`).

The cases: `ttrnn.models.paper_model("ucf11", cell, 11)` (uint8 frames 160x120x3, TT modes 8x20x20x18 -> 4x4x4x4,
ranks 4, softmax over 11 classes; random weights: the rate does not depend on them) as an
`experiments.stream.StatefulModel` (a stateful copy, batch 1, states carried from call to call), fed frames already
decoded and preprocessed (`preprocess.synthetic.moving_block_frames`; the decoder's own rate is the `store`
section's `decode` row), each model two ways:
- one frame per call: what `--every 1` does, e.g. on a camera (a line per frame): the latency of a frame;
- `experiments.stream.CHUNK` frames per call: what `--every N` with N >= CHUNK does on a file: the call's fixed
  cost shared by the chunk.
A timed repeat feeds T frames (one frame per call: T = 64, `--quick` 2; chunks: T = 4 x CHUNK, `--quick` CHUNK)
from reset states; the cases are built and traced first, then timed round-robin, best of `--repeats` (default 5,
quick 1).

Rows, per model (`ttgru`, `ttlstm`): `stream_{model}_ms_per_frame` and `stream_{model}_frames_per_s` (one frame per
call), `stream_{model}_chunk{CHUNK}_ms_per_frame` and `stream_{model}_chunk{CHUNK}_frames_per_s`.
"""

import numpy as np

from experiments.bench.common import UCF11_CLASSES, timed_interleaved

MODELS = {"ttgru": "gru", "ttlstm": "lstm"}
FRAMES_SINGLE = 64            # frames per timed repeat, one frame per call (--quick: QUICK_FRAMES_SINGLE)
QUICK_FRAMES_SINGLE = 2
CHUNK_CALLS = 4               # calls per timed repeat with CHUNK frames each (--quick: 1)


def stream_case(model, frames, length):
    """The callable timed: reset `model` (a `StatefulModel`), then feed it `frames` `length` at a time."""
    def run():
        model.reset()
        for start in range(0, len(frames), length):
            model.feed(frames[start:start + length])
    return run


def bench_stream(args):
    """The section's rows (module docstring), in order."""
    from experiments.stream import CHUNK, StatefulModel
    from preprocess.synthetic import moving_block_frames
    from ttrnn.models import paper_model

    repeats = args.repeats or (1 if args.quick else 5)
    single = QUICK_FRAMES_SINGLE if args.quick else FRAMES_SINGLE
    chunked = CHUNK * (1 if args.quick else CHUNK_CALLS)
    frames = moving_block_frames(max(single, chunked), np.random.default_rng(0))
    cases, counts = {}, {}
    for name, cell in MODELS.items():
        model = StatefulModel(paper_model("ucf11", cell, UCF11_CLASSES))
        cases[name] = stream_case(model, frames[:single], 1)
        cases[f"{name}_chunk{CHUNK}"] = stream_case(model, frames[:chunked], CHUNK)
        counts[name], counts[f"{name}_chunk{CHUNK}"] = single, chunked
    best = timed_interleaved(cases, repeats)
    rows = []
    for case, seconds in best.items():
        per_call = "1 frame per call" if case in MODELS else f"{CHUNK} frames per call"
        rows.append({"name": f"stream_{case}_ms_per_frame", "value": 1e3 * seconds / counts[case],
                     "unit": f"ms/frame (batch 1, {per_call})"})
        rows.append({"name": f"stream_{case}_frames_per_s", "value": counts[case] / seconds,
                     "unit": f"frames/s (batch 1, {per_call})"})
    return rows
