"""Model latency measured the way TFLite's ``benchmark_model`` and pycoral's benchmarks do it.

Per model: interpreter init (file, checks, delegate, ``allocate_tensors``), the first invoke on
its own (the Edge TPU loads the model then), warm-up invokes, then ``runs`` invokes or
``seconds`` of them, each timed with ``time.perf_counter_ns`` around ``interpreter.invoke()``
only. The input is set once, outside the timed region: random pixels in the input's own dtype
and range (never zeros), or a real image through the same preparation as ``edge classify``.

The rest of ``edge benchmark``: which files (:mod:`edge.bench.targets`), ``--eval``
(:mod:`edge.bench.eval`), the machine (:mod:`edge.bench.machine`), ``--plot`` (:mod:`edge.bench.plot`)
and ``--source`` (:mod:`edge.bench.pipeline`).
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
from edge.bench.eval import EvalSet, evaluate, load_eval_set
from edge.bench.machine import MachineInfo, machine_info, peak_rss_mb, reset_peak_rss
from edge.bench.targets import Target, expand_targets, measure_each
from edge.errors import ConfigError, EdgeError, ImageError, ModelError, first_line
from edge.model.load import Model, load_model
from edge.model.tflite_file import read_tflite
from edge.ops.metrics import Scores

DEFAULT_RUNS = 100
DEFAULT_WARMUP = 5


@dataclass(frozen=True)
class LatencyStats:
    """Invoke latency in milliseconds over ``count`` timed runs."""

    count: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def from_ns(cls, samples_ns: np.ndarray) -> "LatencyStats":
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(count=int(ms.size), mean=float(ms.mean()), std=float(ms.std()), min=float(ms.min()),
                   p50=float(p50), p90=float(p90), p99=float(p99), max=float(ms.max()))

    def as_dict(self) -> dict[str, float]:
        return {k: round(getattr(self, k), 4) for k in ("mean", "std", "min", "p50", "p90", "p99", "max")}


def rounded(x: float | None, n: int = 3) -> float | None:
    """``x`` rounded to ``n`` decimals for JSON; None stays None."""
    return None if x is None else round(x, n)


class Outcome:
    """``ok`` and ``measured`` of one model's figures (a frozen dataclass with ``error`` and ``latency``)."""

    error: str | None
    latency: LatencyStats | None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def measured(self) -> bool:
        """Latency figures exist (an --eval failure leaves them, with ``error`` set)."""
        return self.latency is not None


class Report:
    """``failed`` of a report (a frozen dataclass with ``results``)."""

    results: tuple[Outcome, ...]

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.results)


@dataclass(frozen=True)
class ModelBenchmark(Outcome):
    """The figures of one model; ``error`` set (and figures None) when it could not be measured."""

    model: str
    name: str
    runtime: str | None = None
    device: str | None = None
    threads: int | None = None
    init_ms: float | None = None
    first_invoke_ms: float | None = None
    latency: LatencyStats | None = None
    peak_rss_mb: float | None = None
    size_bytes: int | None = None
    mac_count: int | None = None
    accuracy: Scores | None = None
    notes: tuple[str, ...] = ()
    error: str | None = None
    samples_ms: np.ndarray = field(default_factory=lambda: np.empty(0), compare=False, repr=False)

    @property
    def runs(self) -> int | None:
        return self.latency.count if self.latency else None

    @property
    def throughput_per_s(self) -> float | None:
        """Invokes per second over the timed runs (count / total invoke time)."""
        return 1e3 / self.latency.mean if self.latency and self.latency.mean > 0 else None

    @property
    def gmac_per_s(self) -> float | None:
        """Multiply-accumulates per second at the median latency, in billions."""
        if not self.latency or not self.mac_count or self.latency.p50 <= 0:
            return None
        return self.mac_count / (self.latency.p50 * 1e-3) / 1e9

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "runtime": self.runtime, "device": self.device, "threads": self.threads,
            "runs": self.runs, "init_ms": rounded(self.init_ms), "first_invoke_ms": rounded(self.first_invoke_ms),
            "latency_ms": self.latency.as_dict() if self.latency else None,
            "throughput_per_s": rounded(self.throughput_per_s, 2), "peak_rss_mb": rounded(self.peak_rss_mb, 1),
            "size_bytes": self.size_bytes, "mac_count": self.mac_count, "gmac_per_s": rounded(self.gmac_per_s),
            "accuracy": self.accuracy.as_dict() if self.accuracy else None, "error": self.error,
        }


@dataclass(frozen=True)
class BenchmarkReport(Report):
    machine: MachineInfo
    results: tuple[ModelBenchmark, ...]
    eval_set: EvalSet | None = None

    @property
    def baseline(self) -> ModelBenchmark | None:
        """The model the others are compared with: the first one that was measured."""
        return next((r for r in self.results if r.measured), None)

    def ratios(self, result: ModelBenchmark) -> tuple[float, float] | None:
        """(latency ratio, speed-up) of ``result`` against the baseline, on the median latency."""
        base = self.baseline
        if base is None or not result.measured or result.latency.p50 <= 0:
            return None
        return result.latency.p50 / base.latency.p50, base.latency.p50 / result.latency.p50

    def as_dict(self) -> dict[str, Any]:
        return {**self.machine.as_dict(), "models": [r.as_dict() for r in self.results]}


# ---------------------------------------------------------------- measuring


MAX_RUNS = 10_000_000  # 80 MB of samples
MAX_SECONDS = 3600.0  # an hour of samples at 1 ms each stays near 100 MB
MAX_WARMUP = 100_000


def check_plan(runs: int | None, seconds: float | None, warmup: int) -> None:
    """Refuse a measurement plan that cannot give figures."""
    if runs is not None and seconds is not None:
        raise ConfigError("--runs and --seconds are alternatives.", "Pass one of them.")
    if runs is not None and not 1 <= runs <= MAX_RUNS:
        raise ConfigError(f"--runs must lie in 1..{MAX_RUNS:,} (got {runs:,}).",
                          "A latency needs at least one timed run; for long measurements use --seconds.")
    if seconds is not None and not 0 < seconds <= MAX_SECONDS:
        raise ConfigError(f"--seconds must lie in (0, {MAX_SECONDS:.0f}] (got {seconds}).")
    if not 0 <= warmup <= MAX_WARMUP:
        raise ConfigError(f"--warmup must lie in 0..{MAX_WARMUP:,} (got {warmup:,}).")


def random_input(model: Model, seed: int = 0) -> np.ndarray:
    """Random pixels of the input's exact size, turned into the input tensor (dtype, range, scaling)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (model.spec.height, model.spec.width, 3), dtype=np.uint8)
    return model.prepare(pixels)


def time_invokes(invoke: Any, runs: int | None = None, seconds: float | None = None) -> np.ndarray:
    """Nanoseconds of each call of ``invoke``: ``runs`` calls, or calls until ``seconds`` passed."""
    clock = time.perf_counter_ns
    if runs is not None:
        out = np.empty(runs, dtype=np.int64)
        for i in range(runs):
            t0 = clock()
            invoke()
            out[i] = clock() - t0
        return out
    samples: list[int] = []
    deadline = clock() + int(seconds * 1e9)
    while True:
        t0 = clock()
        invoke()
        t1 = clock()
        samples.append(t1 - t0)
        if t1 >= deadline:
            return np.array(samples, dtype=np.int64)


def _mac_count(model: Model) -> int:
    """MACs of the network; for an Edge TPU file (whose layers hide in a custom op) its CPU twin's."""
    twin = model.bundle.variant("int8") if model.graph.has_edgetpu_op else None
    return read_tflite(twin).mac_count() if twin else model.graph.mac_count()


def _measure_invokes(model: Model, warmup: int, runs: int | None,
                     seconds: float | None) -> tuple[float, np.ndarray]:
    """(first invoke ms, timed samples ns) of the bare ``interpreter.invoke``; ModelError if it fails."""
    invoke = model.interpreter.invoke
    try:
        first_ns = time_invokes(invoke, runs=1)[0]
        for _ in range(warmup):
            invoke()
        return first_ns / 1e6, time_invokes(invoke, runs, seconds)
    except (RuntimeError, ValueError) as e:
        detail = first_line(e)
        raise ModelError(f"{model.path}: invoke failed: {detail}") from None


def _input_tensor(model: Model, image: Path | np.ndarray | None) -> np.ndarray:
    """Random pixels, or ``image`` (a file or RGB array) prepared as ``edge classify`` does."""
    if image is None:
        return random_input(model)
    from edge.ops.image import load_image  # noqa: PLC0415

    try:
        return model.prepare(load_image(image) if isinstance(image, (str, Path)) else image)
    except ImageError as e:
        raise ImageError(f"--input: {e.message}", e.hint) from None


def bench_model(path: str | Path, *, device: str = "auto", threads: int | None = None,
                warmup: int = DEFAULT_WARMUP, runs: int | None = None, seconds: float | None = None,
                input_image: Path | np.ndarray | None = None, labels: Path | None = None,
                eval_set: EvalSet | None = None, name: str | None = None) -> ModelBenchmark:
    """Load one model and measure it; raises EdgeError when it cannot be loaded or run."""
    check_plan(runs, seconds, warmup)
    runs = DEFAULT_RUNS if runs is None and seconds is None else runs
    runtime = get_runtime()  # its import is not the model's init
    gc.collect()  # the previous model's interpreter goes before this one's peak RSS is taken
    reset_peak_rss()
    t0 = time.perf_counter_ns()
    model = load_model(path, device=device, threads=threads, labels=labels)
    init_ms = (time.perf_counter_ns() - t0) / 1e6
    model.interpreter.set_tensor(model.spec.input.index, _input_tensor(model, input_image))
    first_invoke_ms, samples = _measure_invokes(model, warmup, runs, seconds)
    rss = peak_rss_mb()
    accuracy, error = None, None
    if eval_set is not None:
        try:
            accuracy = evaluate(model, eval_set)
        except EdgeError as e:  # the latency figures still stand
            error = str(e)
    return ModelBenchmark(
        model=str(model.path), name=name or str(path), runtime=f"{runtime.name} {runtime.version}",
        device=model.device, threads=model.threads, init_ms=init_ms, first_invoke_ms=first_invoke_ms,
        latency=LatencyStats.from_ns(samples), peak_rss_mb=rss, size_bytes=model.path.stat().st_size,
        mac_count=_mac_count(model), accuracy=accuracy, notes=model.notes, error=error,
        samples_ms=samples / 1e6)


def run_benchmark(models: Sequence[Path], *, variants: Sequence[str] | None = None, device: str = "auto",
                  threads: int | None = None, warmup: int = DEFAULT_WARMUP, runs: int | None = None,
                  seconds: float | None = None, input_image: Path | None = None, labels: Path | None = None,
                  eval_dir: Path | None = None, skip_missing: bool = False) -> BenchmarkReport:
    """Measure several models one after the other in this process; a failing model fails alone.

    ``skip_missing`` drops bundle variants whose file is absent (for "all variants") instead of
    reporting them as failures.
    """
    check_plan(runs, seconds, warmup)
    if not models:
        raise ConfigError("No model to benchmark.", "Pass --model at least once.")
    parse_device(device)  # an unknown --device fails once, not once per model
    rgb = None
    if input_image is not None:
        from edge.ops.image import load_image  # noqa: PLC0415

        rgb = load_image(input_image)
    eval_set = load_eval_set(eval_dir) if eval_dir is not None else None
    machine = machine_info()

    def measure(t: Target) -> ModelBenchmark:
        return bench_model(t.path, device=t.device, threads=threads, warmup=warmup, runs=runs, seconds=seconds,
                           input_image=rgb, labels=labels, eval_set=eval_set, name=t.name)

    def failed(t: Target, error: str, device: str | None) -> ModelBenchmark:
        return ModelBenchmark(model=str(t.path), name=t.name, device=device, error=error)

    results = measure_each(expand_targets(models, variants, device), measure, failed, skip_missing)
    return BenchmarkReport(machine, results, eval_set)
