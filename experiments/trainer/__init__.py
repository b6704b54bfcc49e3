"""The shared trainer behind every dataset CLI (entry: `experiments.train.main`), one module per phase:

- `options`    the command line: `DatasetSpec`, the parser, the checks, the run's identity;
- `preflight`  before TensorFlow: the store, the split, the run directory and its lock;
- `build`      the run (`Run`): model, optimizer, reader pool and feeds; config.json;
- `loop`       the train step and the epoch loop (evaluation, early stopping, freeze/unfreeze, checkpoints);
- `evaluation` scoring a feed (one view per clip, or the 3D models' multi-view testing);
- `finish`     the report: final test, model.keras, plots, metrics.json.

Run directory files: experiments/run_dir.py; metrics and plots: experiments/report.py; TensorBoard:
experiments/board.py. Nothing is imported here, so `import experiments.trainer.options` stays light.
"""
