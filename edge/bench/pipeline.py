"""``edge benchmark --source``: each model run over a frame source by ``edge run``'s own pipeline.

Every stage of every frame is timed (:func:`edge.run.pipeline.run_frames`), so the figures are those
of the live daemon: capture, quality, preprocess, invoke, postprocess and frame-to-result.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge.backends.devices import parse_device
from edge.backends.runtime import get_runtime
from edge.bench.latency import LatencyStats, Outcome, Report, rounded
from edge.bench.machine import MachineInfo, machine_info
from edge.bench.targets import Target, expand_targets, measure_each
from edge.errors import ConfigError, SourceError
from edge.model.load import load_model

STAGES = ("capture", "quality", "preprocess", "invoke", "postprocess")
LIVE_DEFAULT_FRAMES = 300  # a camera or stream never ends by itself


@dataclass(frozen=True)
class PipelineBenchmark(Outcome):
    """One model run over a frame source by the same pipeline as ``edge run``.

    Stage and latency statistics leave out the first frame (it pays the first invoke and the
    capture thread's start) and frames that could not be processed (counted in ``errors``).
    """

    model: str
    name: str
    source: str
    runtime: str | None = None
    device: str | None = None
    threads: int | None = None
    init_ms: float | None = None
    first_result_ms: float | None = None  # frame captured -> first result
    frames: dict[str, int] = field(default_factory=dict)  # captured, processed, dropped, errors
    fps: float | None = None  # results per second, first to last
    source_fps: float | None = None  # the source's nominal rate, when it has one
    stages: dict[str, LatencyStats] = field(default_factory=dict)
    latency: LatencyStats | None = None  # frame-to-result
    reason: str | None = None  # why the run ended
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "source": self.source, "runtime": self.runtime, "device": self.device,
            "threads": self.threads, "init_ms": rounded(self.init_ms),
            "first_result_ms": rounded(self.first_result_ms), "frames": dict(self.frames),
            "fps": rounded(self.fps, 2), "source_fps": rounded(self.source_fps, 2),
            "stages_ms": {k: v.as_dict() for k, v in self.stages.items()},
            "latency_ms": self.latency.as_dict() if self.latency else None,
            "ended": self.reason, "error": self.error,
        }


def bench_pipeline(path: str | Path, source: str, *, device: str = "auto", threads: int | None = None,
                   max_frames: int | None = None, labels: Path | None = None, realtime: bool = False,
                   name: str | None = None) -> PipelineBenchmark:
    """Run ``edge run``'s pipeline over ``source`` and time every stage of every frame."""
    from edge.results import ERROR  # noqa: PLC0415
    from edge.run.pipeline import PipelineOptions, run_frames  # noqa: PLC0415
    from edge.sources.factory import make_source  # noqa: PLC0415

    runtime = get_runtime()
    src = make_source(source)
    if max_frames is None and not src.finite:
        max_frames = LIVE_DEFAULT_FRAMES
    t0 = time.perf_counter_ns()
    model = load_model(path, device=device, threads=threads, labels=labels)
    init_ms = (time.perf_counter_ns() - t0) / 1e6
    summary = run_frames(model, src, max_frames, options=PipelineOptions(realtime=realtime))
    results = summary.results
    if not results:
        raise SourceError(f"{source}: no frames came from the source.")
    frames = summary.stats.frames
    good = [x for x in results[1:] if x.status != ERROR] or [x for x in results if x.status != ERROR]
    stages, latency = {}, None
    if good:
        for stage in STAGES:
            stages[stage] = LatencyStats.from_ns(np.array([getattr(x.times, f"{stage}_ms") for x in good]) * 1e6)
        latency = LatencyStats.from_ns(np.array([x.latency_ms for x in good]) * 1e6)
    span = results[-1].timestamp - results[0].timestamp
    return PipelineBenchmark(
        model=str(model.path), name=name or Path(path).name, source=source,
        runtime=f"{runtime.name} {runtime.version}", device=model.device, threads=model.threads,
        init_ms=init_ms, first_result_ms=results[0].latency_ms,
        frames={"captured": frames.captured, "processed": frames.processed, "dropped": frames.dropped,
                "errors": frames.errors},
        fps=(len(results) - 1) / span if len(results) > 1 and span > 0 else None,
        source_fps=src.rate, stages=stages, latency=latency, reason=summary.reason,
        error=None if good else f"{source}: none of the {len(results)} frames could be processed "
                                f"({results[0].reasons[0] if results[0].reasons else 'unknown'}).")


@dataclass(frozen=True)
class PipelineReport(Report):
    machine: MachineInfo
    source: str
    results: tuple[PipelineBenchmark, ...]

    def as_dict(self) -> dict[str, Any]:
        return {**self.machine.as_dict(), "source": self.source, "models": [r.as_dict() for r in self.results]}


def run_pipeline_benchmark(models: Sequence[Path], source: str, *, variants: Sequence[str] | None = None,
                           device: str = "auto", threads: int | None = None, max_frames: int | None = None,
                           labels: Path | None = None, realtime: bool = False,
                           skip_missing: bool = False) -> PipelineReport:
    """:func:`bench_pipeline` for each model in turn over the same source; a failure fails alone."""
    if not models:
        raise ConfigError("No model to benchmark.", "Pass --model at least once.")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"--max-frames must be at least 1 (got {max_frames}).")
    parse_device(device)  # an unknown --device fails once, not once per model
    from edge.sources.factory import make_source  # noqa: PLC0415

    make_source(source)  # a path that does not exist fails once here, not once per model
    machine = machine_info()

    def measure(t: Target) -> PipelineBenchmark:
        gc.collect()  # the previous model's interpreter goes first
        return bench_pipeline(t.path, source, device=t.device, threads=threads, max_frames=max_frames,
                              labels=labels, realtime=realtime, name=t.name)

    def failed(t: Target, error: str, device: str | None) -> PipelineBenchmark:
        return PipelineBenchmark(model=str(t.path), name=t.name, source=source, device=device, error=error)

    results = measure_each(expand_targets(models, variants, device), measure, failed, skip_missing)
    return PipelineReport(machine, source, results)
