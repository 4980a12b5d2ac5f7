"""Model output to ranked, labelled probabilities: pure numpy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    score: float

    def as_dict(self) -> dict:
        return {"index": self.index, "label": self.label, "score": round(self.score, 6)}


def looks_like_probabilities(scores: np.ndarray, tolerance: float = 0.02) -> bool:
    """True when the scores are already a distribution (non-negative, summing to about 1)."""
    return bool(scores.min() >= -1e-6 and abs(float(scores.sum()) - 1.0) <= tolerance)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - np.max(logits)
    e = np.exp(z)
    return (e / e.sum()).astype(np.float32)


def to_probabilities(scores: np.ndarray, tolerance: float = 0.02) -> np.ndarray:
    """Softmax only when the model did not already output probabilities."""
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    return scores if looks_like_probabilities(scores, tolerance) else softmax(scores)


def label_for(index: int, labels: Sequence[str] | None) -> str:
    return labels[index] if labels else str(index)


def top_k(probs: np.ndarray, k: int, labels: Sequence[str] | None = None) -> tuple[Prediction, ...]:
    """The k best classes, best first; ties broken by index."""
    k = max(1, min(int(k), probs.size))
    order = np.argsort(-probs, kind="stable")[:k]
    return tuple(Prediction(int(i), label_for(int(i), labels), float(probs[i])) for i in order)
