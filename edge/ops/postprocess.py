"""Model output to ranked, labelled probabilities: pure numpy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str  # the class code (labels.txt), e.g. "mel"
    score: float
    name: str | None = None  # what a person reads, e.g. "Melanoma" (model.json's display_names)

    def as_dict(self) -> dict:
        d = {"index": self.index, "label": self.label, "score": round(self.score, 6)}
        if self.name is not None:
            d["name"] = self.name
        return d

    @property
    def title(self) -> str:
        """The full name with the code, "Melanoma (mel)"; the code alone when there is no name."""
        return f"{self.name} ({self.label})" if self.name and self.name != self.label else self.label


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


def top_k(probs: np.ndarray, k: int, labels: Sequence[str] | None = None,
          names: Mapping[str, str] | None = None) -> tuple[Prediction, ...]:
    """The k best classes, best first; ties broken by index. ``names``: code -> full name."""
    scores = probs.tolist()  # a handful of classes: plain Python beats numpy's per-call cost (3x)
    k = max(1, min(int(k), len(scores)))
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    out = []
    for i in order:
        label = label_for(i, labels)
        out.append(Prediction(i, label, scores[i], names.get(label) if names else None))
    return tuple(out)
