"""train.report.metrics against hand-computed examples (and scikit-learn on random data)."""

from __future__ import annotations

import numpy as np
import pytest

from train.report import metrics as M

LABELS = ("a", "b", "mel")
# true:  a    a    b    b    mel  mel  mel
# pred:  a    b    b    b    mel  a    mel
Y_TRUE = np.array([0, 0, 1, 1, 2, 2, 2])
PROBS = np.array([
    [0.7, 0.2, 0.1],
    [0.3, 0.6, 0.1],
    [0.1, 0.8, 0.1],
    [0.2, 0.5, 0.3],
    [0.1, 0.1, 0.8],
    [0.5, 0.1, 0.4],
    [0.2, 0.2, 0.6],
])


def test_hand_computed_example():
    m = M.evaluate_predictions(Y_TRUE, PROBS, LABELS)
    assert set(m) == {"n", "labels", "accuracy", "balanced_accuracy", "per_class", "macro_auc",
                      "confusion_matrix", "melanoma_recall"}
    assert m["n"] == 7 and m["labels"] == list(LABELS)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 2 + 2 / 3) / 3)
    assert m["per_class"]["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m["per_class"]["mel"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    # a: positives 0.7, 0.3 vs negatives 0.1 0.2 0.1 0.5 0.2 -> 9 of 10 pairs ordered; b likewise; mel all
    assert m["macro_auc"] == pytest.approx((0.9 + 0.9 + 1.0) / 3)
    assert m["melanoma_recall"] == pytest.approx(2 / 3)


def test_class_absent_from_truth_is_skipped_by_auc_and_balanced_accuracy():
    labels = ("a", "b", "mel", "df")
    probs = np.hstack([PROBS * 0.9, np.full((7, 1), 0.1)])
    probs[3] = [0.1, 0.2, 0.1, 0.6]  # a b predicted as df: an error, df never true
    m = M.evaluate_predictions(Y_TRUE, probs, labels)
    assert M.auc_skipped(Y_TRUE, labels) == ["df"]
    assert M.macro_auc(Y_TRUE, probs, labels)[1] == ["df"]
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 1 / 2 + 2 / 3) / 3)  # mean over a, b, mel only
    assert m["per_class"]["df"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_melanoma_recall_none_without_melanoma():
    assert M.evaluate_predictions(Y_TRUE, PROBS, ("a", "b", "c"))["melanoma_recall"] is None
    y = np.array([0, 1, 1])
    assert M.evaluate_predictions(y, PROBS[:3], LABELS)["melanoma_recall"] is None  # no melanoma in the data


def test_auc_none_when_only_one_class_present():
    y = np.zeros(3, int)
    m = M.evaluate_predictions(y, PROBS[:3], LABELS)
    assert m["macro_auc"] is None
    assert m["balanced_accuracy"] == pytest.approx(1 / 3)


def test_ties_count_half_in_auc():
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    auc, skipped = M.macro_auc(y, probs, ("x", "y"))
    # x: positives 0.5, 0.9 vs negatives 0.5, 0.2 -> (0.5 + 1) + (1 + 1) = 3.5 of 4
    assert auc == pytest.approx(3.5 / 4) and skipped == []


def test_agrees_with_scikit_learn_on_random_data():
    from sklearn.metrics import (
        balanced_accuracy_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    probs = rng.dirichlet(np.ones(5), 300)
    probs[np.arange(300), y] += rng.uniform(0, 0.5, 300)
    probs /= probs.sum(axis=1, keepdims=True)
    labels = tuple("vwxyz")
    m = M.evaluate_predictions(y, probs, labels)
    pred = probs.argmax(axis=1)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(5), zero_division=0)
    for i, label in enumerate(labels):
        assert m["per_class"][label] == pytest.approx(
            {"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]})
    assert m["macro_auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))


@pytest.mark.parametrize("y, probs", [
    (np.array([0, 1]), np.ones((3, 3)) / 3),          # count mismatch
    (np.array([0, 1, 2]), np.ones((3, 2)) / 2),       # class count mismatch
    (np.array([0, 1, 3]), np.ones((3, 3)) / 3),       # label index out of range
])
def test_bad_shapes_raise(y, probs):
    with pytest.raises(ValueError):
        M.evaluate_predictions(y, probs, LABELS)


def test_one_definition_serves_training_and_the_device():
    """train.report.metrics builds on edge.ops.metrics: the same functions, not a copy."""
    from edge.ops import metrics as shared

    assert M.confusion_matrix is shared.confusion_matrix and M.balanced_accuracy is shared.balanced_accuracy
    assert M.melanoma_recall is shared.melanoma_recall and M.per_class is shared.per_class


def test_empty_input_is_undefined_not_zero():
    """No images: accuracy is undefined (NaN; None in JSON), on both sides alike."""
    import math

    from edge.ops.metrics import accuracy, balanced_accuracy, confusion_matrix, score

    cm = confusion_matrix([], [], 3)
    assert math.isnan(accuracy(cm)) and math.isnan(balanced_accuracy(cm))
    d = score([], [], ["a", "mel", "c"]).as_dict()
    assert d["accuracy"] is None and d["balanced_accuracy"] is None and d["melanoma_recall"] is None
    m = M.evaluate_predictions(np.zeros(0, np.int64), np.zeros((0, 3)), ["a", "mel", "c"])
    assert m["n"] == 0 and m["accuracy"] is None and m["balanced_accuracy"] is None
