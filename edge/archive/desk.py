"""The capture desk of a running daemon: it watches the results, keeps the sharpest frame of the
last second, and stores it in the archive when a person asks (the page's button, ``POST
/api/captures``, a key in the terminal).

Only frames that went through the model (ok or uncertain) are candidates. The candidates are a
monotonic queue: a frame is dropped as soon as a sharper one arrives after it, so the queue
stays short (at most ``max_frames`` references; no frame is copied) and its head is the sharpest
frame of the window.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from edge.archive.review import ArchiveError, Review
from edge.archive.store import Archive, Capture
from edge.model.explain import overlay_jpeg
from edge.ops.quality import LOW_CONFIDENCE, frame_problem
from edge.results import OK, UNCERTAIN, FrameResult

log = logging.getLogger(__name__)


class NothingToCapture(ArchiveError):
    """No frame went through the model in the last window (before the first frame, or a lost camera)."""


@dataclass(frozen=True)
class _Candidate:
    at: float  # monotonic time it was published
    sharpness: float
    result: FrameResult
    frame: np.ndarray
    bgr: bool = False  # ``frame`` in OpenCV's order: converted only if it is captured

    def rgb(self) -> np.ndarray:
        return cv2.cvtColor(self.frame, cv2.COLOR_BGR2RGB) if self.bgr else self.frame


class CaptureDesk:
    """A result sink over an open, writable :class:`Archive`; closing it closes the archive."""

    def __init__(self, archive: Archive, *, model: dict[str, Any], classes: Sequence[str],
                 names: dict[str, str] | None = None, threshold: float = 0.5, window_s: float = 1.0,
                 max_frames: int = 16, aspect: float = 1.0) -> None:
        self.archive, self.model, self.classes = archive, model, tuple(classes)
        self.names = dict(names or {})
        self.threshold, self.window_s = threshold, window_s
        self.aspect = aspect  # the model's input width / height: the crop its activation maps cover
        self._candidates: collections.deque[_Candidate] = collections.deque(maxlen=max_frames)
        self._lock = threading.Lock()
        self.stored = 0
        self.failed = 0
        self.last_capture_ms: float | None = None

    # ---------------------------------------------------------------- the sink

    takes_bgr = True  # decoded frames are kept as they are; the one captured is converted

    def publish(self, result: FrameResult, frame: np.ndarray | None, *, bgr: bool = False) -> None:
        if result.status not in (OK, UNCERTAIN) or not result.raw_top or frame_problem(frame) is not None:
            return
        sharp = float(result.quality.get("sharpness", 0.0))
        now = time.monotonic()
        with self._lock:
            c = self._candidates
            while c and c[-1].sharpness <= sharp:  # never the sharpest again while this one is in the window
                c.pop()
            c.append(_Candidate(now, sharp, result, frame, bgr))  # type: ignore[arg-type]

    def close(self) -> None:
        self.archive.close()

    # ---------------------------------------------------------------- captures

    def best(self) -> _Candidate | None:
        """The sharpest frame of the last ``window_s`` seconds, or None."""
        cutoff = time.monotonic() - self.window_s
        with self._lock:
            while self._candidates and self._candidates[0].at < cutoff:
                self._candidates.popleft()
            return self._candidates[0] if self._candidates else None

    def capture(self, source: str = "camera") -> Capture:
        """Store the sharpest frame of the last second at full resolution with its own result."""
        t0 = time.perf_counter()
        best = self.best()
        if best is None:
            raise NothingToCapture("no frame to capture: nothing reached the model in the last "
                                   f"{self.window_s:g} s", "Wait for the camera's first frames, then try again.")
        r, image = best.result, best.rgb()
        reasons = [x for x in r.reasons if x != LOW_CONFIDENCE]  # judged again on this frame's own score
        if not reasons and r.raw_top[0].score < self.threshold:
            reasons.append(LOW_CONFIDENCE)
        try:
            cap = self.archive.add(image, source=source, status=UNCERTAIN if reasons else OK, reasons=reasons,
                                   top_k=[p.as_dict() for p in r.raw_top], quality=dict(r.quality),
                                   model=self.model, frame=r.frame_index, explanation=self._explanation(r, image))
        except ArchiveError:
            self.failed += 1
            raise
        self.stored += 1
        self.last_capture_ms = (time.perf_counter() - t0) * 1e3
        log.info(f"capture {cap.id} stored: {cap.label or cap.status} ({cap.width}x{cap.height}, "
                 f"{cap.image_bytes // 1024} KB, {self.last_capture_ms:.0f} ms)")
        return cap

    def _explanation(self, result: FrameResult, rgb: np.ndarray) -> bytes | None:
        """The frame with its top class's activation map over it (JPEG), when the run keeps maps."""
        if result.cam is None or rgb.ndim != 3 or rgb.shape[2] != 3:
            return None
        try:
            return overlay_jpeg(rgb, result.cam, self.aspect)
        except (OSError, ValueError, cv2.error) as e:  # the capture itself still counts
            log.warning(f"capture: no activation map stored ({e})")
            return None

    def review(self, capture_id: int, review: Review) -> Capture:
        return self.archive.review(capture_id, review)

