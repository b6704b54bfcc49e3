"""Scoring a feed with the model: `evaluate` (one view per clip: the per-epoch evaluation and the final test) and
`evaluate_views` (the 3D models' multi-view testing). Losses and metrics are computed in NumPy
(`experiments.report`), from the probabilities the predict step returns.
"""
import numpy as np

from experiments.report import classification_metrics, cross_entropy
from ttrnn.cli import check_interrupt


def evaluate(predict, feed, multilabel):
    """(mean loss, classification_metrics, probabilities (N, C)) of `feed`'s clips, `predict(x) -> probabilities`.

    Batches come through the feed's tf.data pipeline (read ahead, taken without a copy), one at a time
    (`ttrnn.data.map_batches`)."""
    from ttrnn.data import map_batches

    def score(batch):
        check_interrupt()   # between batches: a signal is raised here, not inside TensorFlow (cli.deferred_interrupts)
        return batch[1].numpy(), predict(batch[0]).numpy()
    pairs = list(map_batches(feed.dataset(lambda: 0), score))
    y, p = (np.concatenate(part) for part in zip(*pairs))
    return cross_entropy(y, p, multilabel), classification_metrics(y, p, multilabel), p


def evaluate_views(feed, predict, multilabel):
    """Score every view of `feed` (a `ttrnn.data.MultiViewFeed`) with `predict(x) -> probs`, average per video.

    Returns (per-video loss, per-video metrics, protocol fields for metrics.json with the per-clip accuracy).
    """
    ys, ps = [], []
    for x, y in feed.batches(0):
        check_interrupt()
        ps.append(predict(x))
        ys.append(y)
    view_probs, view_y = np.concatenate(ps), np.concatenate(ys)
    probs = feed.video_scores(view_probs)
    y = feed.video_targets
    video = classification_metrics(y, probs, multilabel)
    per_clip = classification_metrics(view_y, view_probs, multilabel)
    protocol = {
        "test_protocol": {"clips_per_video": feed.clips, "crops_per_clip": feed.crops, "views_per_video": feed.views,
                          "clip_len": feed.spec.num_frames, "crop": feed.spec.crop,
                          "windows": "evenly spaced, first to last frame",
                          "crops": "centre" if feed.crops == 1 else "both ends and centre of the longer side",
                          "scores": "mean of the views' probabilities per video"},
        "clip_accuracy": per_clip["accuracy"], "video_accuracy": video["accuracy"],
        "num_test_views": int(len(view_y)),
    }
    return cross_entropy(y, probs, multilabel), video, protocol
