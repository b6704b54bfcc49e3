"""Benchmarks of ttrnn: `python -m experiments.bench [SECTION ...] [--quick] [--json] [options]` (`--help` lists
what each section measures and how).

One module per section, each with the rows it prints and how they are measured in its docstring:
- `tt`: train-step rates of the TT layers, the original authors' scheme, a dense GRU, each kernel format, and the
  TT-GRU step's fraction of the FLOP floor (the FLOP model: `tt.tt_train_flops`);
- `versions`: the paper TT-GRU model's train step of this tree and of another (`--against REV|DIR`), interleaved
  in separate processes;
- `store`: the training reader and the video decoder (frames/s), the store codecs (size, speed, error);
- `train`: end-to-end training from a store against the step in memory, padding waste, peak RSS;
- `stream`: single-stream recognition at batch 1 (ms per frame, frames/s) of the paper's TT-GRU and TT-LSTM;
- `epoch` and `scale` (only when named): real trainer epochs from a cold page cache on a store larger than a
  memory budget, and on a store of UCF11's size;
- `export` (only when named): the paper's TT-GRU and TT-LSTM exported to SavedModel, ONNX and LiteRT, each
  artifact's size and one clip's latency at batch 1 on its runtime.
`common` holds what they share (timing, the trainer's step and runs, bench stores, the worker protocol, the other
tree); `cli` the command line. The frames come from `preprocess.synthetic`. Figures live in docs/performance.md
with the commands that reproduce them.
"""


def main(argv=None):
    """The command line (`experiments.bench.cli.main`), imported when called: this `__init__` imports nothing,
    because the `versions` worker imports `experiments.bench.versions` beside another tree's `ttrnn`, which may
    lack modules the command line uses."""
    from experiments.bench.cli import main as cli_main

    return cli_main(argv)
