"""A training run's evaluation from labels and probabilities: the shared metrics
(:mod:`edge.ops.metrics`) plus what needs the probabilities and scikit-learn (the macro AUC).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.ops.metrics import (
    accuracy,
    balanced_accuracy,
    confusion_matrix,
    finite_or_none,
    melanoma_recall,
    per_class,
)


def _check(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> None:
    if probs.ndim != 2 or probs.shape[1] != len(labels):
        raise ValueError(f"probabilities of shape {probs.shape} do not match {len(labels)} labels")
    if y_true.shape != (probs.shape[0],):
        raise ValueError(f"{y_true.shape[0]} true labels for {probs.shape[0]} predictions")
    if y_true.size and (y_true.min() < 0 or y_true.max() >= len(labels)):
        raise ValueError(f"true label indices must lie in 0..{len(labels) - 1}")


def macro_auc(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> tuple[float | None, list[str]]:
    """One-vs-rest ROC AUC averaged over classes; returns (auc, skipped labels).

    A class absent from `y_true` (or the only class present) has no ROC curve; it is skipped
    and named in the second value. None when no class can be scored.
    """
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    scores, skipped = [], []
    for i, label in enumerate(labels):
        positive = y_true == i
        if positive.all() or not positive.any():
            skipped.append(label)
            continue
        scores.append(roc_auc_score(positive, probs[:, i]))
    return (float(np.mean(scores)) if scores else None), skipped


def evaluate_predictions(y_true: Sequence[int], probs: np.ndarray, labels: Sequence[str]) -> dict:
    """All metrics of one evaluation as a JSON-ready dict.

    Keys: n, labels, accuracy, balanced_accuracy, per_class, macro_auc, confusion_matrix,
    melanoma_recall. Classes skipped by the AUC are listed by `auc_skipped`.
    """
    y_true = np.asarray(y_true, np.int64)
    probs = np.asarray(probs, np.float64)
    _check(y_true, probs, labels)
    cm = confusion_matrix(y_true, probs.argmax(axis=1), len(labels))
    return {
        "n": int(y_true.size),
        "labels": list(labels),
        "accuracy": finite_or_none(accuracy(cm)),
        "balanced_accuracy": finite_or_none(balanced_accuracy(cm)),
        "per_class": per_class(cm, labels),
        "macro_auc": macro_auc(y_true, probs, labels)[0],
        "confusion_matrix": cm.tolist(),
        "melanoma_recall": melanoma_recall(cm, labels),
    }


def auc_skipped(y_true: Sequence[int], labels: Sequence[str]) -> list[str]:
    """Labels the macro AUC leaves out because the true labels have none (or only) of them."""
    y = np.asarray(y_true, np.int64)
    return [label for i, label in enumerate(labels) if not (y == i).any() or (y == i).all()]
