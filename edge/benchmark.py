"""Model latency measured the way TFLite's ``benchmark_model`` and pycoral's benchmarks do it.

Per model: interpreter init (file, checks, delegate, ``allocate_tensors``), the first invoke on
its own (the Edge TPU loads the model then), warm-up invokes, then ``runs`` invokes or
``seconds`` of them, each timed with ``time.perf_counter_ns`` around ``interpreter.invoke()``
only. The input is set once, outside the timed region: random pixels in the input's own dtype
and range (never zeros), or a real image through the same preparation as ``edge classify``.
"""

from __future__ import annotations

import gc
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edge.bundle import VARIANTS, open_bundle
from edge.errors import ConfigError, EdgeError, ImageError, ModelError
from edge.metrics import Scores, score
from edge.model import Model, load_model
from edge.runtime import get_runtime
from edge.tflite_file import read_tflite

DEFAULT_RUNS = 100
DEFAULT_WARMUP = 5
VARIANT_ORDER = ("float", "int8", "edgetpu")


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


@dataclass(frozen=True)
class ModelBenchmark:
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
    def ok(self) -> bool:
        return self.error is None

    @property
    def measured(self) -> bool:
        """Latency figures exist (an --eval failure leaves them, with ``error`` set)."""
        return self.latency is not None

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
        def r(x: float | None, n: int = 3) -> float | None:
            return None if x is None else round(x, n)

        return {
            "model": self.model, "runtime": self.runtime, "device": self.device, "threads": self.threads,
            "runs": self.runs, "init_ms": r(self.init_ms), "first_invoke_ms": r(self.first_invoke_ms),
            "latency_ms": self.latency.as_dict() if self.latency else None,
            "throughput_per_s": r(self.throughput_per_s, 2), "peak_rss_mb": r(self.peak_rss_mb, 1),
            "size_bytes": self.size_bytes, "mac_count": self.mac_count, "gmac_per_s": r(self.gmac_per_s),
            "accuracy": self.accuracy.as_dict() if self.accuracy else None, "error": self.error,
        }


@dataclass(frozen=True)
class Target:
    """One model file to measure, as named on the command line or expanded from a bundle."""

    path: Path
    name: str
    device: str
    error: str | None = None


@dataclass(frozen=True)
class EvalSet:
    """Labelled images for ``--eval``: (path, label name) pairs, read once for all models."""

    root: Path
    layout: str
    items: tuple[tuple[Path, str], ...]
    missing: int = 0  # images listed in the dataset's CSV but not on disk

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(label for _, label in self.items))


@dataclass(frozen=True)
class BenchmarkReport:
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

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {**self.machine.as_dict(), "models": [r.as_dict() for r in self.results]}


# ---------------------------------------------------------------- the machine


@dataclass(frozen=True)
class MachineInfo:
    """What the figures depend on besides the model: CPU, board, clock policy, load, versions."""

    cpu: str
    cores: int
    board: str | None  # /proc/device-tree/model on a Raspberry Pi
    governor: str | None  # cpufreq scaling governor of cpu0; None where there is no cpufreq
    load_average: tuple[float, float, float] | None
    cpu_percent: float | None  # measured over a short moment before the runs
    memory_mb: float | None
    temperature_c: float | None
    system: str
    versions: dict[str, str]
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": {"cpu": self.cpu, "cores": self.cores, "board": self.board, "governor": self.governor,
                        "load_average": list(self.load_average) if self.load_average else None,
                        "cpu_percent": self.cpu_percent, "memory_mb": self.memory_mb,
                        "temperature_c": self.temperature_c, "system": self.system},
            "runtime": self.versions, "warnings": list(self.warnings),
        }


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").replace("\x00", "").strip() or None
    except OSError:
        return None


def cpu_model(cpuinfo: str | None = None) -> str:
    """'model name' (x86), else 'Model' or 'Hardware' (Raspberry Pi), else the platform's word."""
    text = cpuinfo if cpuinfo is not None else (_read("/proc/cpuinfo") or "")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip().lower(), value.strip())
    for key in ("model name", "model", "hardware", "cpu model", "processor"):
        if key in fields and not fields[key].isdigit():
            return fields[key]
    return platform.processor() or platform.machine() or "unknown"


def _versions() -> dict[str, str]:
    import cv2  # noqa: PLC0415

    from edge import __version__  # noqa: PLC0415

    try:
        rt = get_runtime()
        name, version = rt.name, rt.version
    except EdgeError:
        name, version = None, None
    return {"name": name, "version": version, "numpy": np.__version__, "opencv": cv2.__version__,
            "python": platform.python_version(), "skin_edge": __version__}


def machine_warnings(governor: str | None, load: tuple[float, ...] | None, cpu_percent: float | None,
                     cores: int) -> tuple[str, ...]:
    """Why the figures may be slow or noisy: clock scaling, other work on the machine."""
    out = []
    if governor and governor != "performance":
        out.append(f"CPU governor is '{governor}', not 'performance': clock scaling makes latencies vary. "
                   "For stable figures: echo performance | sudo tee "
                   "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor")
    busy = []
    if load and load[0] > 0.5 * cores:
        busy.append(f"load average {load[0]:.2f} on {cores} cores")
    if cpu_percent is not None and cpu_percent > 50:
        busy.append(f"{cpu_percent:.0f}% CPU in use")
    if busy:
        out.append(f"The machine is busy ({', '.join(busy)}): figures will be slower and noisier. "
                   "Close other programs and run again.")
    return tuple(out)


def machine_info(sample_s: float = 0.3) -> MachineInfo:
    import psutil  # noqa: PLC0415

    cores = os.cpu_count() or 1
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    load = tuple(round(x, 2) for x in os.getloadavg()) if hasattr(os, "getloadavg") else None
    cpu_percent = psutil.cpu_percent(interval=sample_s) if sample_s > 0 else None
    temp = _read("/sys/class/thermal/thermal_zone0/temp")
    return MachineInfo(
        cpu=cpu_model(), cores=cores, board=_read("/proc/device-tree/model"), governor=governor,
        load_average=load, cpu_percent=cpu_percent,
        memory_mb=round(psutil.virtual_memory().total / 2**20, 1),
        temperature_c=round(int(temp) / 1000, 1) if temp and temp.lstrip("-").isdigit() else None,
        system=platform.platform(), versions=_versions(),
        warnings=machine_warnings(governor, load, cpu_percent, cores))


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: write 5 to /proc/self/clear_refs); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process since the last reset (VmHWM), else since it started."""
    status = _read("/proc/self/status") or ""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    try:
        import resource  # noqa: PLC0415
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024


# ---------------------------------------------------------------- measuring


def check_plan(runs: int | None, seconds: float | None, warmup: int) -> None:
    """Refuse a measurement plan that cannot give figures."""
    if runs is not None and seconds is not None:
        raise ConfigError("--runs and --seconds are alternatives.", "Pass one of them.")
    if runs is not None and runs < 1:
        raise ConfigError(f"--runs must be at least 1 (got {runs}).", "A latency needs at least one timed run.")
    if seconds is not None and not seconds > 0:
        raise ConfigError(f"--seconds must be more than 0 (got {seconds}).")
    if warmup < 0:
        raise ConfigError(f"--warmup cannot be negative (got {warmup}).")


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


def _invoke_or_fail(invoke: Any, path: Path) -> Any:
    def call() -> None:
        try:
            invoke()
        except (RuntimeError, ValueError) as e:
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"{path}: invoke failed: {detail}") from None
    return call


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
    if input_image is None:
        tensor = random_input(model)
    else:
        from edge.image import load_image  # noqa: PLC0415

        tensor = model.prepare(load_image(input_image) if isinstance(input_image, (str, Path)) else input_image)
    model.interpreter.set_tensor(model.spec.input.index, tensor)
    invoke = _invoke_or_fail(model.interpreter.invoke, model.path)
    first_invoke_ms = time_invokes(invoke, runs=1)[0] / 1e6
    for _ in range(warmup):
        invoke()
    samples = time_invokes(invoke, runs, seconds)
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


def load_eval_set(root: Path) -> EvalSet:
    """Class sub-folders or a HAM10000 / ISIC 2018 layout, read by the training side's own reader."""
    try:
        from train.datasets import DatasetError, load_dataset  # noqa: PLC0415 (pure Python, no TensorFlow)
    except ImportError as e:
        raise EdgeError(f"--eval needs skin-edge's dataset reader (train.datasets): {e}.",
                        "Reinstall skin-edge.") from None
    try:
        ds = load_dataset(Path(root))
    except DatasetError as e:
        raise EdgeError(f"--eval: {e}") from None
    return EvalSet(Path(root), ds.layout, tuple((r.path, r.label) for r in ds.records), ds.missing)


def evaluate(model: Model, eval_set: EvalSet) -> Scores:
    """Top-1 accuracy figures of a loaded model; unreadable images are skipped and counted."""
    labels = model.labels
    if not labels:
        raise ModelError(f"--eval needs class names for {model.path}.", "Pass a bundle, or --labels labels.txt.")
    unknown = sorted({label for _, label in eval_set.items} - set(labels))
    if unknown:
        raise ModelError(f"--eval classes {', '.join(unknown)} are not among the labels of {model.path} "
                         f"({', '.join(labels)}).", "Name the class folders after the model's labels.")
    from edge.image import load_image  # noqa: PLC0415

    y_true, y_pred, skipped = [], [], 0
    for path, label in eval_set.items:
        try:
            tensor = model.prepare(load_image(path))
        except ImageError:
            skipped += 1
            continue
        try:
            probs = model.probabilities(model.invoke(tensor))
        except (RuntimeError, ValueError) as e:
            raise ModelError(f"{model.path}: invoke failed on {path}: {str(e).strip() or type(e).__name__}") from None
        y_true.append(labels.index(label))
        y_pred.append(int(np.argmax(probs)))
    return score(y_true, y_pred, list(labels), skipped)


def expand_targets(models: Sequence[Path], variants: Sequence[str] | None, device: str) -> list[Target]:
    """Each --model, or for a bundle with variants asked for: its float, int8 and Edge TPU files."""
    targets: list[Target] = []
    for m in models:
        m = Path(m)
        if not variants or not m.is_dir():
            targets.append(Target(m, m.name or str(m), device))
            continue
        try:
            bundle = open_bundle(m, verify=False)
        except EdgeError as e:
            targets.append(Target(m, m.name or str(m), device, error=str(e)))
            continue
        for v in variants:
            path = m / VARIANTS[v]
            # An Edge TPU file must not quietly fall back to the CPU under --device auto.
            dev = "edgetpu" if v == "edgetpu" and device == "auto" else device
            missing = None if bundle.variant(v) else (
                f"{m} has no {VARIANTS[v]} ({v} variant)."
                + (" Build it with `train compile-edgetpu`." if v == "edgetpu" else ""))
            targets.append(Target(path, f"{bundle.name}:{v}", dev, error=missing))
    return targets


def parse_variants(text: str | None, all_variants: bool = False) -> tuple[str, ...] | None:
    """``float,int8,edgetpu`` -> a tuple in that order; ``all_variants`` -> all three."""
    if all_variants and text:
        raise ConfigError("--variants and --all-variants are alternatives.", "Pass one of them.")
    if all_variants:
        return VARIANT_ORDER
    if not text:
        return None
    names = tuple(v.strip().lower() for v in text.split(",") if v.strip())
    bad = [v for v in names if v not in VARIANTS]
    if bad or not names:
        raise ConfigError(f"Unknown variant {', '.join(bad) or repr(text)}.",
                          f"Use a comma-separated list of {', '.join(VARIANT_ORDER)}.")
    return tuple(dict.fromkeys(names))


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
    rgb = None
    if input_image is not None:
        from edge.image import load_image  # noqa: PLC0415

        rgb = load_image(input_image)
    eval_set = load_eval_set(eval_dir) if eval_dir is not None else None
    machine = machine_info()
    results = []
    for t in expand_targets(models, variants, device):
        if t.error and skip_missing and not t.path.exists():
            continue
        if t.error:
            results.append(ModelBenchmark(model=str(t.path), name=t.name, error=t.error))
            continue
        try:
            results.append(bench_model(t.path, device=t.device, threads=threads, warmup=warmup, runs=runs,
                                       seconds=seconds, input_image=rgb, labels=labels, eval_set=eval_set,
                                       name=t.name))
        except EdgeError as e:
            results.append(ModelBenchmark(model=str(t.path), name=t.name, device=t.device, error=str(e)))
    return BenchmarkReport(machine, tuple(results), eval_set)


# ---------------------------------------------------------------- the plot (OpenCV: works on the device)


def plot_latencies(results: Sequence[ModelBenchmark], path: str | Path) -> Path:
    """A PNG of each model's per-run invoke latency: every run as a dot, a box (p25-p75), the median,
    whiskers from min to p99. A log axis when the models differ by more than 10x."""
    import cv2  # noqa: PLC0415

    measured = [r for r in results if r.measured and r.samples_ms.size]
    if not measured:
        raise EdgeError("Nothing to plot: no model was measured.")
    font, dark, grey = cv2.FONT_HERSHEY_SIMPLEX, (40, 40, 40), (200, 200, 200)
    names = [_fit_text(r.name, 340, font) for r in measured]
    left = 30 + max(cv2.getTextSize(n, font, 0.45, 1)[0][0] for n in names)
    row_h, right, top, bottom, width = 70, 40, 50, 60, left + 800
    height = top + bottom + row_h * len(measured)
    img = np.full((height, width, 3), 255, np.uint8)
    lo = min(float(r.samples_ms.min()) for r in measured)
    hi = max(float(r.samples_ms.max()) for r in measured)
    log = hi / max(lo, 1e-6) > 10
    if log:
        a, b = np.log10(lo) - 0.05, np.log10(hi) + 0.05
    else:
        a, b = 0.0, hi * 1.05

    def x(ms: np.ndarray | float) -> np.ndarray:
        v = np.log10(np.maximum(ms, 1e-6)) if log else np.asarray(ms, dtype=np.float64)
        return (left + (v - a) / max(b - a, 1e-9) * (width - left - right)).astype(np.int32)

    title = "Invoke latency per run (ms" + (", log scale)" if log else ")")
    cv2.putText(img, title, (left, 30), font, 0.6, dark, 1, cv2.LINE_AA)
    axis_y = height - bottom + 10
    decades = 10.0 ** np.arange(np.floor(a), np.ceil(b) + 1)
    ticks = np.outer(decades, [1, 2, 5]).ravel() if log else _nice_ticks(b)
    for t in ticks:
        tx = int(x(float(t)))
        if left <= tx <= width - right:
            cv2.line(img, (tx, top - 5), (tx, axis_y), grey, 1)
            cv2.putText(img, f"{t:g}", (tx - 12, axis_y + 20), font, 0.45, dark, 1, cv2.LINE_AA)
    rng = np.random.default_rng(0)
    colours = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148)]
    for i, r in enumerate(measured):
        cy, colour = top + row_h * i + row_h // 2, colours[i % len(colours)]
        cv2.putText(img, names[i], (10, cy + 5), font, 0.45, dark, 1, cv2.LINE_AA)
        xs = x(r.samples_ms)
        ys = cy + rng.integers(-row_h // 4, row_h // 4 + 1, xs.size)
        overlay = img.copy()
        for px, py in zip(xs, ys, strict=True):
            cv2.circle(overlay, (int(px), int(py)), 2, colour, -1, cv2.LINE_AA)
        img = cv2.addWeighted(overlay, 0.35, img, 0.65, 0)
        q25, q50, q75 = np.percentile(r.samples_ms, [25, 50, 75])
        h = row_h // 3
        cv2.line(img, (int(x(r.latency.min)), cy), (int(x(r.latency.p99)), cy), dark, 1, cv2.LINE_AA)
        cv2.rectangle(img, (int(x(q25)), cy - h // 2), (int(x(q75)), cy + h // 2), dark, 1)
        cv2.line(img, (int(x(q50)), cy - h // 2 - 3), (int(x(q50)), cy + h // 2 + 3), colour, 3)
        cv2.putText(img, f"p50 {r.latency.p50:.3g}", (int(x(q50)) + 6, cy - h // 2 - 6), font, 0.4, dark, 1,
                    cv2.LINE_AA)
    ok, png = cv2.imencode(".png", img)
    path = Path(path)
    try:
        if not ok:
            raise OSError("PNG encoding failed")
        path.write_bytes(png.tobytes())
    except OSError as e:
        raise EdgeError(f"Cannot write the plot to {path}: {e}.") from None
    return path


def _fit_text(text: str, max_px: int, font: int) -> str:
    """``text``, shortened in the middle with '..' until it is at most ``max_px`` wide."""
    import cv2  # noqa: PLC0415

    keep = len(text)
    short = text
    while keep > 4 and cv2.getTextSize(short, font, 0.45, 1)[0][0] > max_px:
        keep -= 1
        short = text[: keep // 2] + ".." + text[len(text) - (keep - keep // 2):]
    return short


def _nice_ticks(upper: float) -> np.ndarray:
    raw = upper / 5
    mag = 10 ** np.floor(np.log10(raw)) if raw > 0 else 1.0
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return np.arange(0, upper + step / 2, step)


# ---------------------------------------------------------------- end to end (the `edge run` pipeline)

STAGES = ("capture", "quality", "preprocess", "invoke", "postprocess")
LIVE_DEFAULT_FRAMES = 300  # a camera or stream never ends by itself


@dataclass(frozen=True)
class PipelineBenchmark:
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

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def measured(self) -> bool:
        return self.latency is not None

    def as_dict(self) -> dict[str, Any]:
        def r(x: float | None, n: int = 3) -> float | None:
            return None if x is None else round(x, n)

        return {
            "model": self.model, "source": self.source, "runtime": self.runtime, "device": self.device,
            "threads": self.threads, "init_ms": r(self.init_ms), "first_result_ms": r(self.first_result_ms),
            "frames": dict(self.frames), "fps": r(self.fps, 2), "source_fps": r(self.source_fps, 2),
            "stages_ms": {k: v.as_dict() for k, v in self.stages.items()},
            "latency_ms": self.latency.as_dict() if self.latency else None,
            "ended": self.reason, "error": self.error,
        }


def bench_pipeline(path: str | Path, source: str, *, device: str = "auto", threads: int | None = None,
                   max_frames: int | None = None, labels: Path | None = None, realtime: bool = False,
                   name: str | None = None) -> PipelineBenchmark:
    """Run ``edge run``'s pipeline over ``source`` and time every stage of every frame."""
    from edge.errors import SourceError  # noqa: PLC0415
    from edge.pipeline import PipelineOptions, run_frames  # noqa: PLC0415
    from edge.results import ERROR  # noqa: PLC0415
    from edge.sources import make_source  # noqa: PLC0415

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
    frames = summary.stats["frames"]
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
        frames={"captured": int(frames["captured"]), "processed": int(frames["processed"]),
                "dropped": int(frames["dropped"]), "errors": int(frames["errors"])},
        fps=(len(results) - 1) / span if len(results) > 1 and span > 0 else None,
        source_fps=src.rate, stages=stages, latency=latency, reason=summary.reason,
        error=None if good else f"{source}: none of the {len(results)} frames could be processed "
                                f"({results[0].reasons[0] if results[0].reasons else 'unknown'}).")


@dataclass(frozen=True)
class PipelineReport:
    machine: MachineInfo
    source: str
    results: tuple[PipelineBenchmark, ...]

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.results)

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
    from edge.sources import make_source  # noqa: PLC0415

    make_source(source)  # a path that does not exist fails once here, not once per model
    machine = machine_info()
    results = []
    for t in expand_targets(models, variants, device):
        if t.error and skip_missing and not t.path.exists():
            continue
        if t.error:
            results.append(PipelineBenchmark(model=str(t.path), name=t.name, source=source, error=t.error))
            continue
        gc.collect()
        try:
            results.append(bench_pipeline(t.path, source, device=t.device, threads=threads, max_frames=max_frames,
                                          labels=labels, realtime=realtime, name=t.name))
        except EdgeError as e:
            results.append(PipelineBenchmark(model=str(t.path), name=t.name, source=source, device=t.device,
                                             error=str(e)))
    return PipelineReport(machine, source, tuple(results))
