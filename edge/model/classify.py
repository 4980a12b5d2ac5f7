"""Classify still images with one loaded model: each image on its own, through the same quality
gate as ``edge run`` (no smoothing: unrelated photos must not share a result); a bad image fails alone."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from edge import DISCLAIMER
from edge.errors import ImageError
from edge.model.load import Model
from edge.ops.image import load_image
from edge.ops.metrics import finite_or_none
from edge.ops.postprocess import Prediction
from edge.ops.quality import (
    LOW_CONFIDENCE,
    UNFAMILIAR,
    QualityThresholds,
    frame_problem,
    measure,
    reasons_for,
    too_small,
)
from edge.results import ERROR, OK, UNCERTAIN


@dataclass(frozen=True)
class FileResult:
    """One image's result. ``status`` and ``reasons`` mean what they mean in ``edge run``."""

    path: Path
    top: tuple[Prediction, ...] = ()
    time_ms: float = 0.0
    error: str | None = None
    status: str = OK
    reasons: tuple[str, ...] = ()
    quality: dict[str, float] = field(default_factory=dict)
    ood_score: float | None = None
    rgb: np.ndarray | None = field(default=None, repr=False, compare=False)  # kept only when asked
    cam: np.ndarray | None = field(default=None, repr=False, compare=False)  # the top class's map, when asked

    @property
    def ok(self) -> bool:
        """The image could be classified (its status may still be uncertain)."""
        return self.error is None

    @property
    def label(self) -> str | None:
        """The label to show: only when the status is ok."""
        return self.top[0].label if self.status == OK and self.top else None

    def as_dict(self) -> dict[str, Any]:
        if not self.ok:
            return {"image": str(self.path), "status": ERROR, "reasons": [self.error], "error": self.error,
                    "ood_score": None, "disclaimer": DISCLAIMER}
        return {"image": str(self.path), "status": self.status, "reasons": list(self.reasons),
                "label": self.label, "index": self.top[0].index if self.label else None,
                "score": round(self.top[0].score, 6),
                "ood_score": finite_or_none(self.ood_score, 4),
                "top_k": [p.as_dict() for p in self.top],
                "quality": {k: round(float(v), 3) for k, v in self.quality.items()},
                "time_ms": round(self.time_ms, 3), "disclaimer": DISCLAIMER}


def classify_image(model: Model, rgb: Any, path: Path, *, k: int = 3, threshold: float = 0.5,
                   quality: QualityThresholds = QualityThresholds(), keep: bool = False,
                   started_ns: int | None = None, explain: bool = False) -> FileResult:
    """One decoded image through the gate and the model: ok, uncertain (with reasons) or error."""
    t0 = started_ns if started_ns is not None else time.perf_counter_ns()
    problem = frame_problem(rgb, "image")
    if problem:
        return FileResult(path, error=f"{path}: {problem}", status=ERROR)
    try:
        pixels = model.pixels(rgb)
    except ImageError as e:  # decoded, but unfit for the model (e.g. too small to crop)
        return FileResult(path, error=f"{path}: {e}", status=ERROR)
    q = measure(pixels)  # what the model sees, as edge run measures it
    reasons = reasons_for(q, quality) + too_small(rgb.shape, (model.spec.height, model.spec.width))
    result = model.classify(rgb, k, pixels=pixels)
    ood, unfamiliar = model.ood_check()
    cam = model.cam(result.top[0].index) if explain else None
    if unfamiliar:
        reasons.append(UNFAMILIAR)
    if not reasons and result.top[0].score < threshold:
        reasons.append(LOW_CONFIDENCE)
    return FileResult(path, result.top, (time.perf_counter_ns() - t0) / 1e6, None,
                      UNCERTAIN if reasons else OK, tuple(reasons), q.as_dict(), ood,
                      rgb if keep or explain else None, cam)


def classify_files(model: Model, paths: Iterable[Path], *, k: int = 3, threshold: float = 0.5,
                   quality: QualityThresholds = QualityThresholds(), keep: bool = False,
                   explain: bool = False) -> Iterator[FileResult]:
    """Yield one result per file, in order; unreadable images become error results.
    ``keep``: the decoded RGB image rides along on each result (for the archive); ``explain``: so do
    it and the top class's activation map."""
    for path in paths:
        t0 = time.perf_counter_ns()
        try:
            rgb = load_image(path)  # its errors name the file
        except ImageError as e:
            yield FileResult(Path(path), error=str(e), status=ERROR)
            continue
        yield classify_image(model, rgb, Path(path), k=k, threshold=threshold, quality=quality, keep=keep,
                             started_ns=t0, explain=explain)
