"""A run's live counters and recent timings, updated by the inference thread, read from any other."""

from __future__ import annotations

import threading
import time
from collections import deque

from edge.results import (
    ERROR,
    OK,
    FrameCounts,
    FrameResult,
    Percentiles,
    RunInfo,
    RunStats,
)
from edge.sources.capture import Capture


class PipelineStats:
    """Counters and recent timings, safe to read from another thread (the HTTP server)."""

    FPS_WINDOW_S = 3.0

    def __init__(self, window: int = 1000) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.processed = self.errors = self.uncertain = self.ok = 0
        self.last_result: float | None = None  # time.time() of the last result
        self.last_inference: float | None = None  # ... of the last result the model actually ran on
        self.labels: dict[str, int] = {}
        self.first_error: str | None = None  # the reason of the first frame that failed
        self._latency: deque[float] = deque(maxlen=window)
        self._invoke: deque[float] = deque(maxlen=window)
        self._times: deque[float] = deque(maxlen=256)
        self.capture: Capture | None = None
        self.info = RunInfo()  # model, device, source, ...: set by whoever runs the pipeline

    def fps(self, now: float | None = None) -> float:
        now = time.perf_counter() if now is None else now
        with self._lock:  # times are in order: drop the stale ones from the left, O(1) per frame
            times = self._times
            while times and now - times[0] > self.FPS_WINDOW_S:
                times.popleft()
            if len(times) < 2 or times[-1] == times[0]:
                return 0.0
            return (len(times) - 1) / (times[-1] - times[0])

    def record(self, result: FrameResult, done: float) -> None:
        with self._lock:
            self.processed += 1
            self.last_result = result.timestamp
            self._times.append(done)
            self._latency.append(result.latency_ms)
            if result.status == ERROR:
                self.errors += 1
                if self.first_error is None and result.reasons:
                    self.first_error = result.reasons[0]
                return
            self.last_inference = result.timestamp
            self._invoke.append(result.times.invoke_ms)
            if result.status == OK:
                self.ok += 1
                label = result.label or ""
                self.labels[label] = self.labels.get(label, 0) + 1
            else:
                self.uncertain += 1

    def snapshot(self) -> RunStats:
        """The counters and timings now (safe from any thread)."""
        cap = self.capture
        now = time.time()
        fps = self.fps()
        with self._lock:
            return RunStats(
                info=self.info, started=self.started, uptime_s=now - self.started,
                frames=FrameCounts(captured=cap.captured if cap else self.processed, processed=self.processed,
                                   dropped=cap.dropped if cap else 0, errors=self.errors,
                                   uncertain=self.uncertain, ok=self.ok),
                reconnects=cap.reconnects if cap else 0, fps=fps, last_result=self.last_result,
                last_inference=self.last_inference, latency_ms=Percentiles.of(self._latency),
                invoke_ms=Percentiles.of(self._invoke), labels=dict(self.labels))
