"""Classify image files with one loaded model; a bad image fails alone."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from edge.errors import ImageError
from edge.model.load import Model
from edge.ops.image import load_image
from edge.ops.postprocess import Prediction


@dataclass(frozen=True)
class FileResult:
    path: Path
    top: tuple[Prediction, ...] = ()
    time_ms: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict:
        if not self.ok:
            return {"image": str(self.path), "error": self.error}
        best = self.top[0]
        return {"image": str(self.path), "label": best.label, "index": best.index,
                "score": round(best.score, 6), "top_k": [p.as_dict() for p in self.top],
                "time_ms": round(self.time_ms, 3)}


def classify_files(model: Model, paths: Iterable[Path], *, k: int = 3) -> Iterator[FileResult]:
    """Yield one result per file, in order; unreadable images become error results."""
    for path in paths:
        t0 = time.perf_counter_ns()
        try:
            rgb = load_image(path)  # its errors name the file
        except ImageError as e:
            yield FileResult(Path(path), error=str(e))
            continue
        try:
            result = model.classify(rgb, k)
        except ImageError as e:  # decoded, but unfit for the model (e.g. too small to crop)
            yield FileResult(Path(path), error=f"{path}: {e}")
            continue
        yield FileResult(Path(path), result.top, (time.perf_counter_ns() - t0) / 1e6)
