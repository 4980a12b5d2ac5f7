"""Frames to results: quality gate, preprocess, invoke, postprocess, smoothing, threshold.

The quality measures and preprocessing of a frame (:meth:`Pipeline.prepare`) run in the capture
thread, overlapping the previous frame's inference, or in the inference thread, in the shares that
keep both equally busy (``edge.sources.capture.Share``); the inference thread invokes the model,
smooths, thresholds and publishes.

``edge run`` and ``edge benchmark --source`` both use :class:`Pipeline` (the latter through
:func:`run_frames`), so what the benchmark times is what the daemon does.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from edge.errors import EdgeError, ImageError, first_line
from edge.ops.postprocess import top_k
from edge.ops.quality import (
    LOW_CONFIDENCE,
    UNFAMILIAR,
    Quality,
    QualityThresholds,
    frame_problem,
    measure,
    reasons_for,
    too_small,
)
from edge.ops.smoothing import Smoother
from edge.results import (
    ERROR,
    OK,
    UNCERTAIN,
    FrameResult,
    RunInfo,
    RunStats,
    Sink,
    StageTimes,
)
from edge.run.stats import PipelineStats
from edge.run.tuning import frame_loop
from edge.sources.base import Source
from edge.sources.capture import Capture, Frame, Reconnect

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineOptions:
    top_k: int = 3
    threshold: float = 0.5  # smoothed top score below this: "uncertain"
    smoothing: float = 0.4  # low-pass factor, 1 = off
    reset_after: int = 10  # unlabelled frames in a row that reset the smoothing
    quality: QualityThresholds = field(default_factory=QualityThresholds)
    max_frames: int | None = None  # stop after this many results
    duration: float | None = None  # stop after this many seconds
    realtime: bool = True  # video files at their frame rate (False: every frame, as fast as possible)
    reconnect: Reconnect = field(default_factory=Reconnect)
    explain: bool = False  # keep each result's top-class activation map (for the live view and the archive)


@dataclass(frozen=True)
class RunSummary:
    reason: str  # "end of source", "max frames", "duration", "stopped", "source failed"
    stats: RunStats
    results: tuple[FrameResult, ...] = ()  # only when collected (benchmarks, tests)


@dataclass(frozen=True)
class Prepared:
    """A frame made ready for the model, or why it cannot be."""

    tensor: np.ndarray | None = None
    quality: Quality | None = None
    reasons: tuple[str, ...] = ()  # quality gate failures
    quality_ms: float = 0.0
    preprocess_ms: float = 0.0
    error: str | None = None


class Pipeline:
    """Runs ``model`` over ``source``, publishing every result to ``sinks``."""

    def __init__(self, model: Any, source: Source, sinks: Sequence[Sink] = (),
                 options: PipelineOptions = PipelineOptions(), *,
                 on_notice: Callable[[str], None] | None = None,
                 on_idle: Callable[[Capture], None] | None = None) -> None:
        self.model, self.source, self.options, self.on_notice = model, source, options, on_notice
        self.on_idle = on_idle  # called when no frame came in a poll (e.g. to feed the watchdog on reconnect)
        self.sinks: list[Sink] = list(sinks)
        self.smoother = Smoother(options.smoothing, options.reset_after)
        self.stats = PipelineStats()
        self.stats.info = RunInfo(source=source.name, model=str(getattr(model, "path", "")),
                                  device=getattr(model, "device", None))
        self.capture: Capture | None = None
        self.summary: RunSummary | None = None
        self._stop = threading.Event()
        self._labels = getattr(model, "labels", None)
        self._stills = bool(getattr(source, "stills", False)) and hasattr(source, "frame_name")
        self._names = getattr(model, "names", None)
        self._ood = getattr(model, "ood_check", None)
        spec = getattr(model, "spec", None)
        self._input_size = (spec.height, spec.width) if spec is not None else None
        self._cam = getattr(model, "cam", None) if options.explain and getattr(spec, "cam", None) is not None else None

    def snapshot(self) -> RunStats:
        return self.stats.snapshot()

    def stop(self) -> None:
        """Ask the run to end after the frame in flight (safe from a signal handler)."""
        self._stop.set()

    # ---------------------------------------------------------------- one frame

    def prepare(self, image: Any, bgr: bool = False) -> "Prepared":
        """Quality measures and the input tensor for one image (runs in the capture thread);
        ``bgr``: the image is in OpenCV's order (``Frame.bgr``)."""
        problem = frame_problem(image)
        if problem:
            return Prepared(error=problem)
        t0 = time.perf_counter()
        try:
            pixels = self.model.pixels(image, bgr=bgr)
            tensor = self.model.tensor(pixels)
        except ImageError as e:
            return Prepared(error=e.message)
        t1 = time.perf_counter()
        q = measure(pixels)  # on the model's input: what is labelled, and a 20th of the frame's pixels
        reasons = reasons_for(q, self.options.quality) + too_small(image.shape, self._input_size)
        t2 = time.perf_counter()
        return Prepared(tensor, q, tuple(reasons), (t2 - t1) * 1e3, (t1 - t0) * 1e3)

    def process(self, frame: Frame) -> FrameResult:
        """One frame through every stage; a bad frame gives an ERROR result, never an exception."""
        if frame.error is not None:
            return self._error(frame, frame.error)
        prep = frame.prepared if isinstance(frame.prepared, Prepared) else self.prepare(frame.to_prepare, frame.bgr)
        if prep.error is not None or prep.tensor is None or prep.quality is None:
            return self._error(frame, prep.error or "frame could not be prepared")
        t2 = time.perf_counter()
        try:
            raw = self.model.invoke(prep.tensor)
        except (RuntimeError, ValueError) as e:
            return self._error(frame, f"inference failed: {first_line(e)}")
        t3 = time.perf_counter()
        probs = self.model.probabilities(raw)
        k = self.options.top_k
        reasons = list(prep.reasons)
        ood, unfamiliar = self._ood() if self._ood is not None else (None, False)
        if unfamiliar:  # no label, and the smoother does not learn from it
            reasons.append(UNFAMILIAR)
        raw_top = top_k(probs, k, self._labels, self._names)
        if self._stills:  # unrelated photos: each image's result is its own
            smoothed, top = probs, raw_top
        else:
            smoothed = self.smoother.state if reasons else self.smoother.update(probs)
            top = top_k(smoothed, k, self._labels, self._names) if smoothed is not None else ()
        if not reasons and top[0].score < self.options.threshold:
            reasons.append(LOW_CONFIDENCE)
        status = UNCERTAIN if reasons else OK
        self.smoother.note(status == OK)
        cam = self._cam(raw_top[0].index) if self._cam is not None else None
        t4 = time.perf_counter()
        times = StageTimes(capture_ms=frame.capture_ms, quality_ms=prep.quality_ms,
                           preprocess_ms=prep.preprocess_ms, invoke_ms=(t3 - t2) * 1e3,
                           postprocess_ms=(t4 - t3) * 1e3)
        return FrameResult(timestamp=time.time(), frame_index=frame.index, status=status,
                           reasons=tuple(reasons), top=top, raw_top=raw_top, times=times,
                           latency_ms=(t4 - frame.captured) * 1e3, fps=self.stats.fps(t4),
                           quality=prep.quality.as_dict(), image=self._frame_name(frame.index), ood_score=ood,
                           cam=cam)

    def _error(self, frame: Frame, reason: str) -> FrameResult:
        self.smoother.note(False)
        now = time.perf_counter()
        return FrameResult(timestamp=time.time(), frame_index=frame.index, status=ERROR, reasons=(reason,),
                           times=StageTimes(capture_ms=frame.capture_ms),
                           latency_ms=(now - frame.captured) * 1e3, fps=self.stats.fps(now),
                           image=self._frame_name(frame.index))

    def _frame_name(self, index: int) -> str | None:
        return self.source.frame_name(index) if self._stills else None

    # ---------------------------------------------------------------- the loop

    def run(self, *, collect: bool = False, on_result: Callable[[FrameResult], None] | None = None) -> RunSummary:
        """Capture and process until the source ends, a limit is reached or :meth:`stop` is called.

        Closes the sinks and releases the source on the way out. Raises the capture's
        SourceError when a camera or stream was lost for good, or the EdgeError of a sink that
        could not flush its output, after the summary is kept in ``self.summary``.
        """
        with frame_loop():
            return self._run(collect, on_result)

    def _run(self, collect: bool, on_result: Callable[[FrameResult], None] | None) -> RunSummary:
        opts = self.options
        capture = Capture(self.source, realtime=opts.realtime, reconnect=opts.reconnect, on_notice=self.on_notice,
                          prepare=self.prepare)
        # the RGB frame is made only for outputs that show or keep it and cannot take OpenCV's order
        # (a sink says ``wants_frame = False`` or ``takes_bgr = True``: edge.results.Sink)
        outputs = [(sink, bool(getattr(sink, "wants_frame", True)), bool(getattr(sink, "takes_bgr", False)))
                   for sink in self.sinks]
        wants_rgb = any(wants and not bgr for _, wants, bgr in outputs)
        self.capture = self.stats.capture = capture
        capture.start()
        self.stats.info = replace(self.stats.info, source_fps=self.source.rate)
        results: list[FrameResult] = []
        reason = "stopped"
        deadline = time.perf_counter() + opts.duration if opts.duration else None
        try:
            while not self._stop.is_set():
                if opts.max_frames and self.stats.processed >= opts.max_frames:
                    reason = "max frames"
                    break
                if deadline is not None and time.perf_counter() >= deadline:
                    reason = "duration"
                    break
                frame = capture.take(0.1)
                if frame is None:
                    if capture.finished:
                        reason = "source failed" if capture.error else "end of source"
                        break
                    if self.on_idle is not None:
                        self.on_idle(capture)
                    continue
                t0 = time.perf_counter()
                result = self.process(frame)
                self.stats.record(result, time.perf_counter())
                image = frame.rgb() if wants_rgb else None
                for sink, wants, takes_bgr in outputs:
                    if takes_bgr:
                        sink.publish(result, frame.image, bgr=frame.bgr)  # type: ignore[call-arg]
                    else:
                        sink.publish(result, image if wants else None)
                # this thread's time on the frame, outputs included, tells capture how to share the work
                prepared_here = not isinstance(frame.prepared, Prepared) and result.status != ERROR
                own = result.times.quality_ms + result.times.preprocess_ms if prepared_here else None
                capture.report((time.perf_counter() - t0) * 1e3 - (own or 0.0), own)
                if collect:
                    results.append(result)
                if on_result is not None:
                    on_result(result)
        finally:
            close_error = self._shutdown(capture)
        self.summary = RunSummary(reason, self.stats.snapshot(), tuple(results))
        if capture.error is not None:
            raise capture.error
        if close_error is not None:
            raise close_error
        return self.summary

    def _shutdown(self, capture: Capture) -> EdgeError | None:
        """Stop capture and close every sink; the first sink's failure to close, if any."""
        capture.stop()
        if not capture.join(1.0):
            log.warning("%s: capture is blocked in the driver; not waiting for it", self.source.name)
        errors: list[EdgeError] = []
        for sink in self.sinks:  # every sink is closed even when one fails
            try:
                sink.close()
            except EdgeError as e:
                errors.append(e)
            except OSError as e:
                errors.append(EdgeError(f"cannot close the {type(sink).__name__} output ({e.strerror or e})."))
        return errors[0] if errors else None


def run_frames(model: Any, source: Source, frames: int | None = None, *,
               options: PipelineOptions | None = None, sinks: Sequence[Sink] = ()) -> RunSummary:
    """Run up to ``frames`` frames (all, when None) and return every result with the stats.

    By default every frame is processed as fast as possible (``realtime=False``), which is what a
    benchmark wants; pass ``options`` to change that.
    """
    opts = options or PipelineOptions(realtime=False)
    if frames is not None:
        opts = replace(opts, max_frames=frames)
    return Pipeline(model, source, sinks, opts).run(collect=True)
