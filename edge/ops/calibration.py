"""Temperature scaling: one number that makes a classifier's probabilities mean what they say.

The model outputs logits; the probabilities shown are ``softmax(logits / T)``. ``T`` is fitted on
the validation split by minimising the negative log-likelihood (Guo et al. 2017), which changes
no ranking (the top-1 label is the same for every T) and only how confident each score is. Pure
numpy: the device applies it, training fits it, and both measure the expected calibration error.
"""

from __future__ import annotations

import math

import numpy as np

from edge.errors import BundleError

ECE_BINS = 15
T_MIN, T_MAX = 0.05, 20.0  # a fitted temperature outside this says the fit (or the file) is broken


def check_temperature(value: object, where: str = "model.json") -> float:
    """The temperature as a float; BundleError (one line) when it is not a sane positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BundleError(f"{where}: calibration temperature {value!r} is not a number.",
                          "Re-create the bundle with `train quantize`.")
    if not T_MIN <= float(value) <= T_MAX:
        raise BundleError(f"{where}: calibration temperature {value} is outside {T_MIN}..{T_MAX}: "
                          "no fitted model is that far off.", "Re-create the bundle with `train quantize`.")
    return float(value)


def softmax_rows(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` in float64."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true labels at ``temperature``."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T in [T_MIN, T_MAX] with the lowest NLL: golden-section search on log T (the NLL is
    convex in 1/T, so it has one minimum)."""
    logits, y = np.asarray(logits, np.float64), np.asarray(y, np.int64)
    if len(y) == 0:
        raise ValueError("no validation predictions to fit a temperature on")
    lo, hi = math.log(T_MIN), math.log(T_MAX)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(logits, y, math.exp(a)), nll(logits, y, math.exp(b))
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(logits, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(logits, y, math.exp(b))
    return round(math.exp((lo + hi) / 2), 4)


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> dict[str, list]:
    """Per confidence bin (equal widths over 0..1): count, mean confidence, accuracy (None if empty)."""
    probs, y = np.asarray(probs, np.float64), np.asarray(y, np.int64)
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == y
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    counts, confidence, accuracy = [], [], []
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        counts.append(n)
        confidence.append(float(conf[sel].mean()) if n else None)
        accuracy.append(float(correct[sel].mean()) if n else None)
    return {"bins": bins, "count": counts, "confidence": confidence, "accuracy": accuracy}


def ece(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| over the bins."""
    r = reliability(probs, y, bins)
    n = sum(r["count"])
    if n == 0:
        return float("nan")
    return float(sum(c * abs(a - f) for c, a, f in zip(r["count"], r["accuracy"], r["confidence"]) if c) / n)
