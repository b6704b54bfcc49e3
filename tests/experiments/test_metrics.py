"""experiments.train.classification_metrics (the numbers in every metrics.json) against scikit-learn's own metric
functions and against small cases worked out by hand."""
import numpy as np
import pytest
from sklearn import metrics as skm

from experiments.report import classification_metrics


def one_hot(labels, num_classes):
    return np.eye(num_classes, dtype="float32")[labels]


def random_probs(n, num_classes, seed):
    logits = np.random.default_rng(seed).standard_normal((n, num_classes)).astype("float32") * 2
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_single_label_by_hand():
    """4 clips, 6 classes; worked out on paper. Class 5 never occurs, so it is not in the class mean."""
    true = np.array([0, 0, 1, 2])
    probs = np.array([[.50, .10, .10, .10, .10, .10],    # true 0, predicted 0
                      [.05, .40, .20, .15, .12, .08],    # true 0, predicted 1; rank of class 0 is 6: not top-5
                      [.10, .30, .25, .15, .12, .08],    # true 1, predicted 1
                      [.30, .05, .10, .20, .11, .24]])   # true 2, predicted 0; class 2 is 5th: top-5
    m = classification_metrics(one_hot(true, 6), probs, multilabel=False)
    assert m["accuracy"] == pytest.approx(2 / 4)
    assert m["mean_class_accuracy"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert m["top5"] == pytest.approx(3 / 4)
    expected = np.zeros((6, 6), int)
    expected[0, 0] = expected[0, 1] = expected[1, 1] = expected[2, 0] = 1
    assert np.array_equal(m["confusion"], expected)


@pytest.mark.parametrize("num_classes, seed", [(11, 0), (8, 1)])
def test_single_label_equals_scikit_learn(num_classes, seed):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, num_classes, 60)
    true[true == 3] = 2  # one class absent from the test clips, as in small folds
    probs = random_probs(60, num_classes, seed + 10)
    m = classification_metrics(one_hot(true, num_classes), probs, multilabel=False)
    pred = probs.argmax(1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(true, pred))
    present = np.unique(true)
    assert m["mean_class_accuracy"] == pytest.approx(
        skm.recall_score(true, pred, labels=present, average="macro", zero_division=0))
    assert m["top5"] == pytest.approx(skm.top_k_accuracy_score(true, probs, k=5, labels=np.arange(num_classes)))
    assert np.array_equal(m["confusion"], skm.confusion_matrix(true, pred, labels=np.arange(num_classes)))
    assert 0 < m["top5"] < 1 and m["accuracy"] < m["top5"]  # the arrays are not trivially all right or wrong


def test_multilabel_map_by_hand_and_equals_scikit_learn():
    # class 0: scores .9 (pos) .8 (neg) .3 (pos) .1 (neg) -> AP = (1/1 + 2/3) / 2; class 1: perfect -> 1;
    # class 2 has no positive in the test set: left out of the mean.
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]], "float32")
    p = np.array([[.9, .2, .5], [.8, .9, .1], [.3, .7, .4], [.1, .1, .2]], "float32")
    m = classification_metrics(y, p, multilabel=True)
    assert m["average_precision"][0] == pytest.approx((1 + 2 / 3) / 2)
    assert m["average_precision"][1] == pytest.approx(1.0)
    assert np.isnan(m["average_precision"][2])
    assert m["map"] == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    assert m["accuracy"] == pytest.approx(3 / 4)  # top-1 class is a true label for rows 0, 1, 2, not row 3

    rng = np.random.default_rng(3)
    y = (rng.random((40, 12)) < 0.2).astype("float32")
    y[:, 4] = 0
    p = rng.random((40, 12)).astype("float32")
    m = classification_metrics(y, p, multilabel=True)
    present = y.sum(0) > 0
    assert m["map"] == pytest.approx(skm.average_precision_score(y[:, present], p[:, present], average="macro"))
    top1 = p.argmax(1)
    assert m["accuracy"] == pytest.approx(np.mean(y[np.arange(40), top1] == 1))
