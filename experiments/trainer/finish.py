"""Phase 4, the report: the final test evaluation, then the chief writes model.keras, the plots and metrics.json
(last: its presence marks the run finished) and prints the final line.

Single-view models reuse the last epoch's test evaluation when this process ran it (same model, same feed, same
numbers, and the pass over the test clips is not repeated); a run resumed after its last epoch evaluates again;
multi-view testing (3D models) runs its own pass.
"""
import math
from pathlib import Path

from experiments import run_dir as rd
from experiments.report import package_versions, peak_rss_mb, plot_confusion, plot_curves
from experiments.trainer import evaluation
from experiments.trainer.loop import diverged
from experiments.trainer.options import command_line, model_label
from ttrnn.cli import write_error


def final_metrics(r, history, loss, final, threads, argv, protocol=None):
    """metrics.json's content: the test metrics plus what the tables need (params, epochs, times, memory, split),
    and `protocol` (multi-view testing: its description and per-clip accuracy)."""
    protocol = protocol or {}
    from ttrnn.models import input_to_hidden_params
    metrics = {k: v for k, v in final.items() if k not in ("confusion", "average_precision")}
    metrics.update({
        "test_loss": loss, "params_input_to_hidden": _or_none(lambda: input_to_hidden_params(r.model)),
        "params_total": int(r.model.count_params()), "epochs": len(history),
        "epoch_seconds": [h["seconds"] for h in history], "peak_rss_mb": round(peak_rss_mb(), 1),
        "eval_seconds": [h.get("eval_seconds") for h in history], "epoch_usage": r.epoch_usage,
        "num_train": int(len(r.train_rows)), "num_val": int(len(r.val_rows)), "num_test": int(len(r.split.test)),
        "protocol": r.args.protocol, "fold": r.args.fold, "split": r.split.description, "dataset": r.spec.name,
        "model": model_label(r.args), "command": command_line(r.spec, argv),
        "versions": package_versions(), "threads": threads, "classes": list(r.store.classes),
        "padding_waste": round(r.train_feed.padding_waste(), 4),
        "features": feature_summary(r.store), **protocol,
    })
    for key in ("confusion", "average_precision"):
        if key in final:
            metrics[key] = final[key]
    return metrics


def feature_summary(store):
    """metrics.json "features": the backbone, weights, pooling and width of a feature store's features (what the
    tables show beside a feature run), None for a frame store."""
    features = getattr(store, "features", None)
    if features is None:
        return None
    return {k: features.get(k) for k in ("backbone", "weights", "pooling", "width", "image_size", "frame_skip",
                                         "fps")}


def report(r, history, predict, threads, argv):
    """Phase 4 (see the module docstring). Returns the metrics."""
    protocol = {}
    views = r.family.test_views(r.args)
    if views != (1, 1):  # the seeds' multi-view testing
        import tensorflow as tf

        from ttrnn.data import MultiViewFeed
        feed = MultiViewFeed(r.store, r.split.test, r.ispec, r.args.batch_size, *views, reader=r.reader)
        loss, final, protocol = evaluation.evaluate_views(feed, lambda x: predict(tf.constant(x)).numpy(),
                                                          r.spec.multilabel)
    elif r.last_test is not None and r.last_test[0] == len(history):
        loss, final, _ = r.last_test[1]
    else:
        loss, final, _ = evaluation.evaluate(predict, r.eval_feeds["test"], r.spec.multilabel)
    r.reader.close()
    metrics = final_metrics(r, history, loss, final, threads, argv, protocol)
    if not math.isfinite(loss):
        raise diverged(r, len(history), f"final test_loss {loss}", history[-1]["train_loss"] if history else None)
    if r.cluster.is_chief:
        rd.save_model(r.run_dir, r.model)
        try:
            plot_curves(r.run_dir, history, r.spec.multilabel)
            plot_confusion(r.run_dir, final, list(r.store.classes), r.spec.multilabel)
        except OSError as exc:
            raise write_error(Path(exc.filename or r.run_dir / rd.CURVES), exc) from None
        rd.write_json(r.run_dir / rd.METRICS, metrics)
    r.store.close()
    if r.cluster.num_workers > 1:  # a last collective, so no worker exits while another still talks to it
        from tf_config.cluster import agree_on_int
        agree_on_int(r.cluster.strategy, len(history))
    key = "map" if r.spec.multilabel else "accuracy"
    views = ""
    if protocol:  # say so when the final figure is not the per-epoch lines' single view
        clips, crops = protocol["test_protocol"]["clips_per_video"], protocol["test_protocol"]["crops_per_clip"]
        views = (f" ({clips} clip{'s' if clips > 1 else ''} x {crops} crop{'s' if crops > 1 else ''} per video, "
                 f"scores averaged; the epochs' test_{key} used one centre clip)")
    print(f"test {key}{views}: {metrics[key]:.4f}" + (f"  mean class accuracy: {metrics['mean_class_accuracy']:.4f}"
                                                     if "mean_class_accuracy" in metrics else "") + f"  ({r.run_dir})")
    return metrics


def _or_none(fn):
    """fn(), or None when the model has no such count (ValueError, AttributeError)."""
    try:
        return fn()
    except (ValueError, AttributeError):
        return None
