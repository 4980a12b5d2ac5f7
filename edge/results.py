"""What the pipeline produces per frame, and the interface of everything that consumes it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from edge import DISCLAIMER
from edge.ops.metrics import finite_or_none
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
    """One processed frame. ``top`` holds smoothed probabilities (a still image's own: stills are
    never smoothed); ``status`` says if they can be shown."""

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
    image: str | None = None  # the still image's path (a folder run); None for a camera, video or stream
    ood_score: float | None = None  # how unfamiliar the frame is (edge.ops.ood); None without OOD data
    cam: Any = field(default=None, repr=False, compare=False)  # its top class's activation map (live view, archive); never in JSON

    @property
    def label(self) -> str | None:
        """The label to show, or None when the result must not be shown as a label."""
        return self.top[0].label if self.status == OK and self.top else None

    def as_dict(self) -> dict[str, Any]:
        t = self.times
        where = {"image": self.image} if self.image is not None else {}
        return {
            **where, "timestamp": round(self.timestamp, 3), "frame": self.frame_index, "status": self.status,
            "reasons": list(self.reasons), "label": self.label,
            "score": round(self.top[0].score, 4) if self.top else None, "ood_score": finite_or_none(self.ood_score, 4),
            "top_k": [p.as_dict() for p in self.top], "raw_top_k": [p.as_dict() for p in self.raw_top],
            "times_ms": {"capture": round(t.capture_ms, 3), "quality": round(t.quality_ms, 3),
                         "preprocess": round(t.preprocess_ms, 3), "invoke": round(t.invoke_ms, 3),
                         "postprocess": round(t.postprocess_ms, 3)},
            "latency_ms": round(self.latency_ms, 3), "fps": round(self.fps, 2),
            "quality": {k: round(float(v), 3) for k, v in self.quality.items()},
            "disclaimer": DISCLAIMER,
        }

    @cached_property
    def json_line(self) -> str:
        """:meth:`as_dict` as one compact JSON line (no newline): a --jsonl line, an MQTT result.
        Computed once per result, however many outputs send it."""
        return json.dumps(self.as_dict(), ensure_ascii=False, separators=(",", ":"))


class Sink(Protocol):
    """Consumes results: the terminal line, a JSON-lines file, the HTTP server, systemd notify.

    ``frame`` is the RGB frame the result is of. An output that never looks at it sets a class
    attribute ``wants_frame = False`` and gets None. One that uses the frame only now and then
    (the live page draws a few a second, the desk stores one on request) sets ``takes_bgr = True``
    and is called ``publish(result, frame, bgr=...)``: ``bgr=True`` when the frame is in OpenCV's
    order, as decoded, to be converted when it is used. When no output needs RGB, no frame of a
    run is converted (a 640x480 frame costs 0.05-0.2 ms).
    """

    def publish(self, result: FrameResult, frame: np.ndarray | None) -> None:
        """Called from the inference thread for every result; must return quickly."""

    def close(self) -> None:
        """Flush and release; called once when the pipeline stops."""


# ---------------------------------------------------------------- running statistics


@dataclass(frozen=True)
class FrameCounts:
    """Frames seen by a run: read from the source, processed, dropped, and by outcome."""

    captured: int = 0
    processed: int = 0
    dropped: int = 0
    errors: int = 0
    uncertain: int = 0
    ok: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Percentiles:
    """p50/p90/p99/max of recent timings in milliseconds; None before the first one."""

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: "Sequence[float]") -> "Percentiles":
        if not values:
            return cls()
        a = np.fromiter(values, dtype=np.float64)
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return cls(round(float(p50), 3), round(float(p90), 3), round(float(p99), 3), round(float(a.max()), 3))

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


@dataclass(frozen=True)
class RunInfo:
    """What runs: set once by whoever starts the pipeline (None: not known)."""

    source: str | None = None
    model: str | None = None
    device: str | None = None
    source_fps: float | None = None
    runtime: str | None = None
    threads: int | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.source, "model": self.model, "device": self.device,
                             "source_fps": self.source_fps}
        d.update({k: v for k, v in (("runtime", self.runtime), ("threads", self.threads)) if v is not None})
        return d


@dataclass(frozen=True)
class RunStats:
    """A snapshot of a run's counters and timings (what /api/stats serves, via :meth:`as_dict`)."""

    info: RunInfo = field(default_factory=RunInfo)
    started: float = 0.0  # time.time()
    uptime_s: float = 0.0
    frames: FrameCounts = field(default_factory=FrameCounts)
    reconnects: int = 0
    fps: float = 0.0
    last_result: float | None = None  # time.time() of the last result
    last_inference: float | None = None  # ... of the last result the model actually ran on
    latency_ms: Percentiles = field(default_factory=Percentiles)
    invoke_ms: Percentiles = field(default_factory=Percentiles)
    labels: "Mapping[str, int]" = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**self.info.as_dict(), "started": round(self.started, 3), "uptime_s": round(self.uptime_s, 3),
                "frames": self.frames.as_dict(), "reconnects": self.reconnects, "fps": round(self.fps, 2),
                "last_result": self.last_result, "last_inference": self.last_inference,
                "latency_ms": self.latency_ms.as_dict(), "invoke_ms": self.invoke_ms.as_dict(),
                "labels": dict(self.labels)}
