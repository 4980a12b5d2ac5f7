"""`train quantize`'s trust figures for the int8 model the device runs: the temperature re-fitted
on its own validation logits, the OOD statistics fitted on its own training features (threshold
on validation), ECE before/after and OOD AUROC on the test split, all through the device runtime.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ImageError
from edge.model.bundle import OOD_FILE
from edge.ops.image import load_image
from edge.ops.preprocess import fit_to_input
from train.data.non_lesion import non_lesion_images
from train.report.trust import (
    Outputs,
    calibration_figures,
    ood_figures,
    ood_fit,
    temperature_of,
)

WHERE = "the int8 model (model.tflite) on the device runtime"


def run_pixels(model: Any, pixels: Sequence[np.ndarray], y: Sequence[int]) -> Outputs:
    """Logits and pooled features of the int8 model for preprocessed images."""
    logits, feats = [], []
    for px in pixels:
        raw = model.invoke(model.prepare(px))
        logits.append(model.logits(raw))
        feats.append(model.features())
    return Outputs(np.asarray(y, np.int64), np.stack(logits), np.stack(feats))


def run_records(model: Any, records: Sequence[Any], labels: Sequence[str]) -> Outputs:
    """The same for dataset records (unreadable images left out: the test pass reports them)."""
    h, w = model.spec.height, model.spec.width
    pixels, y = [], []
    for rec in records:
        try:
            pixels.append(fit_to_input(load_image(rec.path), h, w))
        except ImageError:
            continue
        y.append(labels.index(rec.label))
    return run_pixels(model, pixels, y)


def int8_trust(int8_path: Path, splits: dict, labels: Sequence[str], test: Outputs, tmp: Path, metrics: dict,
               seconds: dict) -> dict[str, Any]:
    """model.json's ``calibration`` additions and ``ood`` (tmp/ood.npz written), the figures added to
    ``metrics`` and the seconds it took to ``seconds["trust"]``."""
    from edge.model.load import load_model  # noqa: PLC0415
    from train.quiet import captured  # noqa: PLC0415

    t0 = time.perf_counter()
    with captured():
        qm = load_model(int8_path, device="cpu")
    cal, ood = _fit(qm, splits, labels, test, tmp)
    seconds["trust"] = round(time.perf_counter() - t0, 2)
    metrics["int8"].update(ece_uncalibrated=cal["ece_uncalibrated"], ece=cal["ece"], ood_auroc=ood["auroc"])
    metrics["calibration"] = {k: cal[k] for k in ("temperature", "ece_uncalibrated", "ece", "bins")}
    metrics["ood_auroc"] = ood["auroc"]
    return {"calibration": cal, "ood": ood}


def _fit(model: Any, splits: dict, labels: Sequence[str], test: Outputs, tmp: Path) -> tuple[dict, dict]:
    val = run_records(model, splits["val"], labels)
    train = run_records(model, splits["train"], labels)
    temperature = temperature_of(val)
    ood = ood_fit(train, val, len(labels))
    ood.save(tmp / OOD_FILE)
    cal = calibration_figures(test, temperature, f"validation split ({len(val.y)} images), {WHERE}")
    items = non_lesion_images(model.spec.height, model.spec.width)
    others = run_pixels(model, [px for _, px in items], [0] * len(items))
    oodf = ood_figures(ood, test, others, [n for n, _ in items], temperature,
                       f"training split ({len(train.y)} images), {WHERE}")
    return cal, {**oodf, "file": OOD_FILE}
