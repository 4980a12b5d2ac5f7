"""What the pipeline produces per frame, and the interface of everything that consumes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edge import DISCLAIMER
from edge.ops.postprocess import Prediction

# status values
OK = "ok"
UNCERTAIN = "uncertain"
ERROR = "error"  # the frame could not be processed (bad frame); the daemon goes on


@dataclass(frozen=True)
class StageTimes:
    """Milliseconds spent per stage for one frame."""

    capture_ms: float = 0.0
    quality_ms: float = 0.0
    preprocess_ms: float = 0.0
    invoke_ms: float = 0.0
    postprocess_ms: float = 0.0


@dataclass(frozen=True)
class FrameResult:
    """One processed frame. ``top`` holds smoothed probabilities; ``status`` says if they can be shown."""

    timestamp: float  # time.time() when the result was ready
    frame_index: int  # index of the frame in the source (counts dropped frames too)
    status: str  # OK, UNCERTAIN or ERROR
    reasons: tuple[str, ...] = ()  # why uncertain / what went wrong
    top: tuple[Prediction, ...] = ()
    raw_top: tuple[Prediction, ...] = ()  # this frame alone, before smoothing
    times: StageTimes = field(default_factory=StageTimes)
    latency_ms: float = 0.0  # frame capture -> result ready
    fps: float = 0.0
    quality: dict[str, float] = field(default_factory=dict)  # e.g. {"sharpness": .., "brightness": ..}

    @property
    def label(self) -> str | None:
        """The label to show, or None when the result must not be shown as a label."""
        return self.top[0].label if self.status == OK and self.top else None

    def as_dict(self) -> dict[str, Any]:
        t = self.times
        return {
            "timestamp": round(self.timestamp, 3), "frame": self.frame_index, "status": self.status,
            "reasons": list(self.reasons), "label": self.label,
            "score": round(self.top[0].score, 4) if self.top else None,
            "top_k": [p.as_dict() for p in self.top], "raw_top_k": [p.as_dict() for p in self.raw_top],
            "times_ms": {"capture": round(t.capture_ms, 3), "quality": round(t.quality_ms, 3),
                         "preprocess": round(t.preprocess_ms, 3), "invoke": round(t.invoke_ms, 3),
                         "postprocess": round(t.postprocess_ms, 3)},
            "latency_ms": round(self.latency_ms, 3), "fps": round(self.fps, 2),
            "quality": {k: round(float(v), 3) for k, v in self.quality.items()},
            "disclaimer": DISCLAIMER,
        }


class Sink(Protocol):
    """Consumes results: the terminal line, a JSON-lines file, the HTTP server, systemd notify."""

    def publish(self, result: FrameResult, frame: np.ndarray | None) -> None:
        """Called from the inference thread for every result; must return quickly."""

    def close(self) -> None:
        """Flush and release; called once when the pipeline stops."""
