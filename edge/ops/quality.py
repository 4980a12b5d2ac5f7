"""Is a frame good enough to be labelled? Cheap, pure measures of focus and exposure.

The sharpness of an in-focus frame depends on what it shows (hair and pigment network give
hundreds, smooth skin about seven), so ``min_sharpness`` is a floor that only clearly defocused or
motion-blurred frames fall under; tune it for a camera with the ``quality`` figures that every
result carries (docs/run.md).

Sharpness is the variance of the Laplacian of a downscaled grey image (a sharp image has strong
edges; blur removes them). Brightness is the mean luminance, 0..255. Both are computed on a copy
at most ``WORK_WIDTH`` pixels wide (halved by area averaging, then the rest of the way), so the
check hardly depends on the camera's resolution. ``edge run`` and ``edge classify`` measure the
image the model is given (the centre crop at the model's input size, ``Model.pixels``): what is
labelled is what is judged, and a 128 or 224 pixel image costs 0.07 to 0.14 ms where a 640x480
frame cost 0.3 ms (one OpenCV thread, docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

WORK_WIDTH = 128  # the demo model's input: a 128 and a 224 pixel model are judged on one scale

TOO_BLURRY = "too blurry"
TOO_DARK = "too dark"
TOO_BRIGHT = "too bright"
TOO_SMALL = "too small"
LOW_CONFIDENCE = "low confidence"
UNFAMILIAR = "unfamiliar image"  # the OOD score is above the bundle's threshold (edge.ops.ood)

MIN_SIDE = 8  # below this a frame is an error, not a picture
MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of an acceptable frame. Set a limit to 0 (or 255 for ``max_brightness``) to disable it."""

    min_sharpness: float = 6.0  # camera grain alone gives about 4; in-focus skin 6.5 to 500
    min_brightness: float = 60.0  # about half what auto-exposure aims for
    max_brightness: float = 215.0


@dataclass(frozen=True)
class Quality:
    sharpness: float
    brightness: float

    def as_dict(self) -> dict[str, float]:
        return {"sharpness": self.sharpness, "brightness": self.brightness}


def _small_grey(rgb: np.ndarray) -> np.ndarray:
    """Grey, then halved by area averaging (OpenCV's vector path) while at least twice WORK_WIDTH
    wide, then the rest of the way: a 640x480 frame in ~0.1 ms, where one INTER_AREA step by 4 took
    three times that."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # one channel first: a third of the resizing work
    h, w = grey.shape
    while w >= 2 * WORK_WIDTH and h >= 2:
        h, w = h // 2, w // 2
        grey = cv2.resize(grey[: 2 * h, : 2 * w], (w, h), interpolation=cv2.INTER_AREA)
    if w > WORK_WIDTH:  # under 2x to go: linear (a 224 pixel model input in 0.02 ms; INTER_AREA took 0.1)
        grey = cv2.resize(grey, (WORK_WIDTH, max(1, round(h * WORK_WIDTH / w))), interpolation=cv2.INTER_LINEAR)
    return grey


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the downscaled grey image (higher is sharper)."""
    return _sharpness(_small_grey(rgb))


def brightness(rgb: np.ndarray) -> float:
    """Mean luminance (ITU-R BT.601 weights), 0..255."""
    return float(_small_grey(rgb).mean())


def _sharpness(grey: np.ndarray) -> float:
    _, std = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_16S))  # exact: |Laplacian of uint8| <= 1020
    return float(std[0, 0]) ** 2


def measure(rgb: np.ndarray) -> Quality:
    """Both measures from one downscaled grey copy."""
    grey = _small_grey(rgb)
    return Quality(sharpness=_sharpness(grey), brightness=float(grey.mean()))


def reasons_for(q: Quality, limits: QualityThresholds = QualityThresholds()) -> list[str]:
    """Why a frame with these measures must not be labelled (empty when it is fine)."""
    reasons = []
    if q.brightness < limits.min_brightness:
        reasons.append(TOO_DARK)
    elif q.brightness > limits.max_brightness:
        reasons.append(TOO_BRIGHT)
    if q.sharpness < limits.min_sharpness:
        reasons.append(TOO_BLURRY)
    return reasons


def too_small(shape: tuple[int, ...], input_size: tuple[int, int] | None) -> list[str]:
    """``[TOO_SMALL]`` when the image's shorter side is under half the model input's: it would be
    enlarged more than twice to be classified, inventing the detail the label rests on."""
    if not input_size or len(shape) < 2:
        return []
    need = min(input_size) / 2
    return [TOO_SMALL] if min(shape[0], shape[1]) < need else []


def frame_problem(image: Any, what: str = "frame") -> str | None:
    """Why a frame (``what``: or an "image") cannot be classified (wrong type, channels, size), or None."""
    if not isinstance(image, np.ndarray):
        return f"not an image array ({type(image).__name__})"
    if image.dtype != np.uint8:
        return f"pixel type {image.dtype}, expected uint8"
    if image.ndim != 3 or image.shape[2] != 3:
        channels = 1 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else None)
        channels_text = f"{channels} channel{'s' if channels != 1 else ''}" if channels else f"shape {image.shape}"
        return f"{what} has {channels_text}, expected 3 (RGB)"
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        return f"{what} too small ({w}x{h})"
    if h * w > MAX_PIXELS:
        return f"{what} too large ({w}x{h})"
    return None


def gate(rgb: np.ndarray, limits: QualityThresholds = QualityThresholds()) -> list[str]:
    """The reasons ("too blurry", "too dark", "too bright") this frame fails the gate; empty if it passes."""
    return reasons_for(measure(rgb), limits)
