"""Phases 2 and 3: the train step (ONE definition: `experiments.steps.make_train_step`) and the epoch loop.

One epoch = one pass over this worker's training clips with a custom `strategy.run` step (the same with one
process, several GPUs or several workers; Keras 3 `model.fit` breaks under MultiWorkerMirroredStrategy,
keras#20585), then an evaluation of the held-out clips (`evaluation.evaluate`). After every epoch the chief writes
an atomic checkpoint (weights, optimizer state, history) and history.csv; running the same command again continues
after the last saved epoch. Interrupts are raised between batches (`ttrnn.cli.check_interrupt`).
"""
import math
import time

from experiments import run_dir as rd
from experiments.report import resource_usage, usage_since
from experiments.trainer import evaluation
from ttrnn.cli import RunError, check_interrupt


def train_step(r):
    """The ONE train step (experiments.steps.make_train_step) -> {loss, loss_sum, hits, count} per global batch.
    A short last batch weighs a full step (global_batch=None). Rebuild it when the trainable set changes."""
    import keras

    from experiments.steps import make_train_step
    loss_fn = (keras.losses.BinaryCrossentropy(reduction=None) if r.spec.multilabel
               else keras.losses.CategoricalCrossentropy(reduction=None))
    return make_train_step(r.cluster.strategy, r.model, r.optimizer, loss_fn, global_batch=None, totals=True)


def traced(step, dist_train):
    """`step` traced once for the dataset's element spec (batch and time dimensions unknown) before any batch, so
    every batch runs this one graph. Why: left to `reduce_retracing`, the first batch's shape got a graph of its
    own, so which graph a batch ran depended on the batches before it; a resumed run's dropout steps then rounded
    differently from an uninterrupted run's, and Adam amplified the difference epoch after epoch."""
    step.get_concrete_function(dist_train.element_spec)
    return step


def diverged(r, saved_epochs, where, last):
    """The RunError of a non-finite loss (NaN, inf): where, the last finite training loss, what to change. Nothing
    is saved after it: the last good checkpoint (of `saved_epochs` epochs) stays, and no metrics.json is written."""
    saved = f"the checkpoint of epoch {saved_epochs} is kept" if saved_epochs else \
        "no epoch had finished, so there is no checkpoint"
    last = "none" if last is None else f"{last:.6g}"
    return RunError(f"training diverged: {where} (last finite training loss {last}); the learning rate {r.lr:g} is "
                    f"likely too high: try a smaller --lr; {saved}, no {rd.METRICS}")


def train_epoch(r, step, dist_train, epoch):
    """One pass over this worker's training shard -> the history row's epoch, train_loss, train_accuracy, seconds.
    Records the epoch's resource usage (metrics.json `epoch_usage`)."""
    from preprocess.progress import progress
    from ttrnn.data import map_batches
    t0, usage = time.perf_counter(), resource_usage()
    tot = {"loss_sum": 0.0, "hits": 0.0, "count": 0.0}
    shown = not r.args.quiet and r.cluster.is_chief   # a bar on a terminal, a line per tenth of the epoch elsewhere
    bar = progress(len(r.train_feed), f"epoch {epoch + 1}/{r.args.epochs}", unit="batch", leave=False) \
        if shown else None
    last = None
    for k, out in enumerate(map_batches(dist_train, step)):
        check_interrupt()   # between steps: a signal is raised here, not inside TensorFlow (cli.deferred_interrupts)
        loss = float(out["loss"])
        if not math.isfinite(loss):
            raise diverged(r, epoch, f"loss {loss} at epoch {epoch + 1}, step {k + 1}", last)
        last = loss
        for key in tot:
            tot[key] += float(out[key])
        if bar is not None:
            bar.set_postfix(loss=f"{tot['loss_sum'] / tot['count']:.4f}", acc=f"{tot['hits'] / tot['count']:.3f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    r.epoch_usage.append(usage_since(usage))
    n = max(tot["count"], 1)
    return {"epoch": epoch + 1, "train_loss": tot["loss_sum"] / n, "train_accuracy": tot["hits"] / n,
            "seconds": round(time.perf_counter() - t0, 3)}


def evaluate_epoch(r, predict, row):
    """Add each evaluation feed's loss, accuracy (and MAP) and the evaluations' seconds to the history row."""
    t0 = time.perf_counter()
    for name, feed in r.eval_feeds.items():
        result = loss, metrics, _ = evaluation.evaluate(predict, feed, r.spec.multilabel)
        if name == "test":
            r.last_test = (row["epoch"], result)     # the report reuses it when this was the last epoch
        row[f"{name}_loss"] = loss
        row[f"{name}_accuracy"] = metrics["accuracy"]
        if r.spec.multilabel:
            row[f"{name}_map"] = metrics["map"]
    row["eval_seconds"] = round(time.perf_counter() - t0, 3)
    return row


def open_board(r, history):
    """The chief's TensorBoard writer (experiments/board.py), started over from `history`; None with
    --no-tensorboard and on the other workers."""
    if r.args.no_tensorboard or not r.cluster.is_chief:
        return None
    from experiments.board import Board
    steps = len(r.train_feed)  # optimizer steps per epoch
    board = Board(r.run_dir, lambda epoch: r.schedule((epoch - 1) * steps))
    board.rewrite(history)
    return board


def fit(r, state):
    """Phase 3: epochs from the state's on; early stopping on val (else test) loss, TSN freeze/unfreeze, and
    after every epoch the chief's checkpoint and history.csv. Returns (history, predict step)."""
    from experiments.steps import make_local_predict
    args, history, best, stale = r.args, state["history"], state["best"], state["stale"]
    epoch_box = [0]  # the dataset function reads the current epoch (its shuffling seed)
    dist_train = r.cluster.strategy.distribute_datasets_from_function(
        lambda ctx: r.train_feed.dataset(lambda: epoch_box[0]))
    step, predict = traced(train_step(r), dist_train), make_local_predict(r.model)
    board = open_board(r, history)
    start = len(history)
    for epoch in range(start, args.epochs):
        check_interrupt()
        if stale and args.patience and stale >= args.patience:
            break
        if r.family.freeze(r.model, args, epoch, start):   # the trainable set changed: trace the step again
            step = traced(train_step(r), dist_train)
        epoch_box[0] = epoch
        row = evaluate_epoch(r, predict, train_epoch(r, step, dist_train, epoch))
        bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise diverged(r, epoch, f"{bad[0]} {row[bad[0]]} in epoch {epoch + 1}", row.get("train_loss"))
        history.append(row)
        monitor = row.get("val_loss", row["test_loss"])
        if best is None or monitor < best:
            best, stale = monitor, 0
        else:
            stale += 1
        if r.cluster.is_chief:
            rd.save_checkpoint(r.run_dir, r.model, r.optimizer, {"history": history, "best": best, "stale": stale})
            rd.write_history(r.run_dir, history)
            if board:  # after the checkpoint: a resume rewrites the board from the checkpointed history
                board.write(row)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "seconds", "eval_seconds"))
        print(f"epoch {epoch + 1}/{args.epochs} ({row['seconds']:.1f} s): {shown}", flush=True)  # after its save
    if board:
        board.close()
    return history, predict
