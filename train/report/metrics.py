"""Classification metrics from labels and probabilities: numpy and scikit-learn, no TensorFlow.

HAM10000 is imbalanced (nv ~67 %, df ~1 %), so accuracy alone flatters a model that calls
everything a naevus. Balanced accuracy (mean recall over the classes present) is what model
selection uses, and melanoma recall is stated on its own because a missed melanoma costs most.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MELANOMA = "mel"


def _check(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> None:
    if probs.ndim != 2 or probs.shape[1] != len(labels):
        raise ValueError(f"probabilities of shape {probs.shape} do not match {len(labels)} labels")
    if y_true.shape != (probs.shape[0],):
        raise ValueError(f"{y_true.shape[0]} true labels for {probs.shape[0]} predictions")
    if y_true.size and (y_true.min() < 0 or y_true.max() >= len(labels)):
        raise ValueError(f"true label indices must lie in 0..{len(labels) - 1}")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts: row = true class, column = predicted class."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def accuracy(cm: np.ndarray) -> float:
    total = cm.sum()
    return float(np.trace(cm) / total) if total else 0.0


def recalls(cm: np.ndarray) -> np.ndarray:
    """Recall per class; NaN for a class with no true examples."""
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes that occur in the true labels (scikit-learn's definition)."""
    r = recalls(cm)
    present = ~np.isnan(r)
    return float(r[present].mean()) if present.any() else 0.0


def per_class(cm: np.ndarray, labels: Sequence[str]) -> dict[str, dict[str, float | int]]:
    """{label: {precision, recall, f1, support}}; 0 where undefined (no predictions or no examples)."""
    out = {}
    for i, label in enumerate(labels):
        tp, predicted, support = cm[i, i], cm[:, i].sum(), cm[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[label] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                      "support": int(support)}
    return out


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


def melanoma_recall(cm: np.ndarray, labels: Sequence[str]) -> float | None:
    """Recall of 'mel'; None when the labels have no melanoma class or the data no melanoma."""
    if MELANOMA not in labels:
        return None
    i = list(labels).index(MELANOMA)
    support = cm[i].sum()
    return float(cm[i, i] / support) if support else None


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
        "accuracy": accuracy(cm),
        "balanced_accuracy": balanced_accuracy(cm),
        "per_class": per_class(cm, labels),
        "macro_auc": macro_auc(y_true, probs, labels)[0],
        "confusion_matrix": cm.tolist(),
        "melanoma_recall": melanoma_recall(cm, labels),
    }


def auc_skipped(y_true: Sequence[int], labels: Sequence[str]) -> list[str]:
    """Labels the macro AUC leaves out because the true labels have none (or only) of them."""
    y = np.asarray(y_true, np.int64)
    return [label for i, label in enumerate(labels) if not (y == i).any() or (y == i).all()]
