"""`python tests/epoch_spy.py ARGS...` = `python -m experiments.ucf11 ARGS...` with a spy on the run's checkpoints,
so a test sees the weights and the optimizer after every epoch of ONE real run (the checkpoint file keeps only the
last). Writes into the run directory (--out), next to the run's own files:
- `spy-epoch0.npz`: the model's weights when the run starts (built and seeded, before any step);
- `spy-epochK.npz`: after epoch K, the weights (w0, w1, ... in `model.get_weights()` order) and the optimizer's
  momentum slots (m0, m1, ... in `model.trainable_variables` order at the start; SGD only);
- `spy.json`: per weight its path, whether it belongs to the TSN backbone, whether it is trainable, the index in
  `model.weights` of each trainable variable; per epoch the optimizer's iterations, its current learning rate (the
  one its next step uses), its config, and the learning rate its schedule gives every step taken.
Test code only: the spy wraps `experiments.run_dir.load_checkpoint` / `save_checkpoint` and changes nothing else.
"""
import json
import sys
from pathlib import Path

import numpy as np

from experiments import run_dir as rd
from experiments import ucf11
from ttrnn.cli import exit_now

SPY = {"epochs": []}


def load_checkpoint(run_dir, model, optimizer):
    """At the run's start: record the weights and what they are, then restore as the trainer would."""
    pos = {id(v): i for i, v in enumerate(model.weights)}
    backbone = set()
    if any(layer.name == "backbone" for layer in model.layers):
        backbone = {id(v) for v in model.get_layer("backbone").weights}
    SPY.update(paths=[v.path for v in model.weights], backbone=[id(v) in backbone for v in model.weights],
               trainable=[bool(v.trainable) for v in model.weights],
               trainable_index=[pos[id(v)] for v in model.trainable_variables])
    state = REAL_LOAD(run_dir, model, optimizer)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    np.savez(Path(run_dir) / "spy-epoch0.npz", **{f"w{i}": w for i, w in enumerate(model.get_weights())})
    return state


def save_checkpoint(run_dir, model, optimizer, state):
    """After each epoch: the trainer's checkpoint, then a copy of the weights, momentum slots and optimizer state."""
    import keras
    REAL_SAVE(run_dir, model, optimizer, state)
    epoch = len(state["history"])
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"m{i}": np.asarray(m) for i, m in enumerate(getattr(optimizer, "momentums", None) or [])})
    np.savez(Path(run_dir) / f"spy-epoch{epoch}.npz", **arrays)
    config = optimizer.get_config()
    lr = config["learning_rate"]
    steps = int(optimizer.iterations)
    if isinstance(lr, dict):   # a schedule: its value at every step taken so far
        schedule = keras.optimizers.schedules.deserialize(lr)
        per_step = [float(schedule(s)) for s in range(steps)]
    else:
        per_step = [float(lr)] * steps
    SPY["epochs"].append({"epoch": epoch, "iterations": steps, "learning_rate": float(optimizer.learning_rate),
                          "config": config, "step_learning_rates": per_step})
    (Path(run_dir) / "spy.json").write_text(json.dumps(SPY, default=str))


REAL_LOAD, REAL_SAVE = rd.load_checkpoint, rd.save_checkpoint
rd.load_checkpoint, rd.save_checkpoint = load_checkpoint, save_checkpoint

if __name__ == "__main__":
    exit_now(ucf11.main(sys.argv[1:]))
