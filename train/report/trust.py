"""The figures that say how far a model's outputs can be trusted: calibration (temperature and
expected calibration error), the OOD score (threshold, AUROC against non-lesion images) and the
metrics per patient group. Numpy and scikit-learn only; the model outputs come from the caller
(Keras in `train fit` / `train evaluate`, the int8 TFLite model in `train quantize`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.ops.calibration import (
    ECE_BINS,
    ece,
    fit_temperature,
    reliability,
    softmax_rows,
)
from edge.ops.metrics import (
    balanced_accuracy,
    confusion_matrix,
    finite_or_none,
    melanoma_recall,
)
from edge.ops.ood import METHOD, PASS_FRACTION, OodModel, energy, fit_ood

SMALL_GROUP = 30  # fewer test images than this: the group's figures are flagged as unreliable
AGE_BANDS = ((0, 30, "<30"), (30, 45, "30-44"), (45, 60, "45-59"), (60, 75, "60-74"), (75, 200, "75+"))


@dataclass(frozen=True)
class Outputs:
    """One split through one model: true labels, logits, pooled features."""

    y: np.ndarray
    logits: np.ndarray
    features: np.ndarray


def temperature_of(val: Outputs) -> float:
    """The temperature fitted on the validation split's logits."""
    return fit_temperature(val.logits, val.y)


def calibration_figures(test: Outputs, t: float, fitted_on: str) -> dict:
    """ECE before and after temperature ``t`` on ``test`` (15 bins), with both reliability tables."""
    before, after = softmax_rows(test.logits), softmax_rows(test.logits, t)
    return {"temperature": t, "fitted_on": fitted_on,
               "method": "temperature scaling (one parameter, minimum negative log-likelihood)",
               "bins": ECE_BINS, "ece_uncalibrated": round(ece(before, test.y), 6),
               "ece": round(ece(after, test.y), 6),
               "reliability_uncalibrated": reliability(before, test.y), "reliability": reliability(after, test.y)}


def ood_fit(train: Outputs, val: Outputs, classes: int) -> OodModel:
    """Fit on the training features; the threshold lets PASS_FRACTION of the validation split pass."""
    model = fit_ood(train.features, train.y, classes)
    return model.with_threshold(model.scores(val.features))


def auroc(familiar: np.ndarray, unfamiliar: np.ndarray) -> float | None:
    """How well a score (higher: less familiar) tells the two apart: 1 perfect, 0.5 chance."""
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    if not len(familiar) or not len(unfamiliar):
        return None
    y = np.r_[np.zeros(len(familiar)), np.ones(len(unfamiliar))]
    return round(float(roc_auc_score(y, np.r_[familiar, unfamiliar])), 6)


def ood_figures(ood: OodModel, test: Outputs, others: Outputs, names: Sequence[str], temperature: float,
                where: str) -> dict:
    """The OOD score on the test split against the non-lesion images (and the energy score's AUROC,
    for comparison)."""
    s_test, s_other = ood.scores(test.features), ood.scores(others.features)
    flagged = [n for n, s in zip(names, s_other) if s > ood.threshold]
    return {"method": METHOD, "components": int(ood.basis.shape[1]), "feature_dims": ood.dims,
            "threshold": round(ood.threshold, 6), "threshold_is": f"{PASS_FRACTION:.0%} of the validation "
            "split scores below it", "fitted_on": where,
            "auroc": auroc(s_test, s_other),
            "auroc_energy": auroc(energy(test.logits, temperature), energy(others.logits, temperature)),
            "test_images": len(s_test), "test_flagged": round(float(np.mean(s_test > ood.threshold)), 4),
            "non_lesion_images": len(s_other), "non_lesion_flagged": round(len(flagged) / max(1, len(names)), 4),
            "non_lesion_passed": [n for n, s in zip(names, s_other) if s <= ood.threshold][:20],
            "test_score_median": round(float(np.median(s_test)), 4),
            "non_lesion_score_median": round(float(np.median(s_other)), 4)}


def age_band(value: str) -> str:
    try:
        age = float(value)
    except ValueError:
        return "unknown"
    return next((name for lo, hi, name in AGE_BANDS if lo <= age < hi), "unknown")


def by_group(y: np.ndarray, probs: np.ndarray, labels: Sequence[str], metas: Sequence[dict]) -> dict:
    """Balanced accuracy and melanoma recall per sex, age band and body site, with counts; groups
    with fewer than SMALL_GROUP images are flagged ``small``. Empty when the data has no metadata."""
    y, pred = np.asarray(y, np.int64), np.asarray(probs).argmax(axis=1)
    keys = {"sex": lambda m: m.get("sex") or "unknown", "age_band": lambda m: age_band(m.get("age", "")),
            "body_site": lambda m: m.get("localization") or "unknown"}
    out: dict = {}
    if not any(metas):
        return out
    mel = list(labels).index("mel") if "mel" in labels else None
    for key, of in keys.items():
        values = np.array([of(m) for m in metas])
        groups = {}
        for value in sorted(set(values.tolist())):
            sel = values == value
            cm = confusion_matrix(y[sel], pred[sel], len(labels))
            groups[value] = {"n": int(sel.sum()), "melanoma_n": int((y[sel] == mel).sum()) if mel is not None else 0,
                             "balanced_accuracy": finite_or_none(balanced_accuracy(cm), 6),
                             "melanoma_recall": melanoma_recall(cm, labels), "small": bool(sel.sum() < SMALL_GROUP)}
        out[key] = groups
    out["small_group_below"] = SMALL_GROUP
    return out


def weakest(groups: dict) -> str | None:
    """One line naming the group (not flagged small) with the lowest balanced accuracy."""
    rows = [(g["balanced_accuracy"], key, value) for key, vals in groups.items() if isinstance(vals, dict)
            for value, g in vals.items() if not g["small"] and g["balanced_accuracy"] is not None]
    if not rows:
        return None
    score, key, value = min(rows)
    return f"weakest group: {key} {value} (balanced accuracy {score:.3f})"

