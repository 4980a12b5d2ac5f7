"""Temporal smoothing of class probabilities, so the label shown does not flicker.

A first-order low-pass filter, as in TensorFlow Lite's original image-classification app:
``smoothed += factor * (new - smoothed)``. ``factor`` 1 turns smoothing off; smaller values
smooth more (0.4 follows about the last five frames). After ``reset_after`` frames in a row
that could not be labelled (blurred, dark, bright, unsure, broken) the filter forgets, so the
next lesion starts fresh instead of inheriting the last one's scores.
"""

from __future__ import annotations

import numpy as np


class Smoother:
    def __init__(self, factor: float = 0.4, reset_after: int = 10) -> None:
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"smoothing factor must be in (0, 1], got {factor}")
        self.factor = float(factor)
        self.reset_after = int(reset_after)
        self._state: np.ndarray | None = None
        self._misses = 0

    @property
    def state(self) -> np.ndarray | None:
        """The smoothed probabilities, or None before the first update / after a reset."""
        return self._state

    def update(self, probs: np.ndarray) -> np.ndarray:
        """Feed one frame's probabilities; returns the smoothed ones (a new array)."""
        p = np.asarray(probs, dtype=np.float32).reshape(-1)
        if self._state is None or self._state.shape != p.shape:
            self._state = p.copy()
        else:
            self._state = self._state + np.float32(self.factor) * (p - self._state)
        return self._state

    def note(self, labelled: bool) -> None:
        """Count frames that could not be labelled; reset after ``reset_after`` in a row."""
        if labelled:
            self._misses = 0
            return
        self._misses += 1
        if self.reset_after > 0 and self._misses >= self.reset_after:
            self.reset()

    def reset(self) -> None:
        self._state = None
        self._misses = 0
