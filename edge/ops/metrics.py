"""Classification metrics in plain numpy: the one definition training, evaluation and the device use.

Labels are integer class indices. HAM10000 is imbalanced (nv ~67 %, df ~1 %), so accuracy alone
flatters a model that calls everything a naevus: balanced accuracy (the mean recall over the
classes that occur in ``y_true``, as scikit-learn defines it) is what model selection uses, and
melanoma recall is stated on its own because a missed melanoma costs most.

A figure with nothing to count (no images, no true examples of a class) is undefined: NaN here,
None in JSON (:func:`finite_or_none`), never a 0.0 that reads like a result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

MELANOMA = "mel"


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts ``cm[true, predicted]`` as int64, shape (num_classes, num_classes)."""
    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} entries, y_pred {p.size}")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes):
        raise ValueError(f"class index outside 0..{num_classes - 1}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def accuracy(cm: np.ndarray) -> float:
    total = int(cm.sum())
    return float(np.trace(cm)) / total if total else float("nan")


def recalls(cm: np.ndarray) -> np.ndarray:
    """Recall per class (NaN for a class with no true samples)."""
    support = cm.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes present in the true labels."""
    r = recalls(cm)
    present = ~np.isnan(r)
    return float(r[present].mean()) if present.any() else float("nan")


def melanoma_recall(cm: np.ndarray, labels: Sequence[str]) -> float | None:
    """Recall of 'mel'; None when the labels have no melanoma class or the data no melanoma."""
    if MELANOMA not in labels:
        return None
    r = recalls(cm)[list(labels).index(MELANOMA)]
    return None if np.isnan(r) else float(r)


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


def finite_or_none(x: float | None, digits: int | None = None) -> float | None:
    """``x`` for JSON: None for NaN/None (undefined), else a float (rounded to ``digits``)."""
    if x is None or np.isnan(x):
        return None
    return float(x) if digits is None else round(float(x), digits)


@dataclass(frozen=True)
class Scores:
    """Accuracy figures of one model on one labelled image set."""

    images: int
    accuracy: float
    balanced_accuracy: float
    melanoma_recall: float | None  # None when the set has no melanoma or the model no ``mel`` class
    per_class_recall: dict[str, float]
    skipped: int = 0  # images that could not be read

    def as_dict(self) -> dict:
        def r(x: float | None) -> float | None:
            return finite_or_none(x, 6)

        return {"images": self.images, "accuracy": r(self.accuracy),
                "balanced_accuracy": r(self.balanced_accuracy), "melanoma_recall": r(self.melanoma_recall),
                "per_class_recall": {k: r(v) for k, v in self.per_class_recall.items()},
                "skipped": self.skipped}


def score(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str], skipped: int = 0) -> Scores:
    """All figures at once; ``labels`` name the class indices (the model's output order)."""
    cm = confusion_matrix(y_true, y_pred, len(labels))
    r = recalls(cm)
    return Scores(images=int(cm.sum()), accuracy=accuracy(cm), balanced_accuracy=balanced_accuracy(cm),
                  melanoma_recall=melanoma_recall(cm, labels),
                  per_class_recall={label: float(r[i]) for i, label in enumerate(labels) if not np.isnan(r[i])},
                  skipped=skipped)
