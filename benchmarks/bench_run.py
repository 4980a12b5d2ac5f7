"""Speed and memory targets of `edge run`, measured in one run on this machine (run by hand).

    .venv/bin/python benchmarks/bench_run.py [--cache DIR] [--frames 10000] [--json FILE]

1. Throughput: at least 90% of the slower of the source rate and the inference rate
   (1 / invoke p50) for a video source. A 640x480 video at a camera's 30 fps played in real time,
   as `edge run` plays it (the source is the slower); and a video at the model's input size (as
   picamera2 delivers frames) read with --no-realtime, every frame as fast as possible (the
   slower is inference, or decoding, whichever this machine makes slower: the source rate is
   then what the capture thread alone delivers, measured in the same run). The invoke p50 comes
   from the same run.
2. Steady memory: RSS after 10,000 frames within a few MB of RSS after 1,000, with every output
   of the daemon attached (JSON lines, the live page server with a page open on it and a metrics
   scraper, notify), a small model and a fast synthetic camera.
3. `edge run` to first result under 2 s for an int8 MobileNetV2 (the `edge` command started as a
   process, timed until its first JSON line is on disk), and no TensorFlow imported on that path.

The models (MobileNetV2 1.0/224 and 0.35/96, seven classes, random weights: speed and memory do
not depend on them) are built with Keras once, in a child process, converted to int8 with uint8
input (pixel scaling inside the model, as our bundles) and cached as bundles.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from model_cache import build_in_child, parser, random_calibration, to_tflite

from edge.model.bundle import INT8IO_FILE

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
MODELS = {"mobilenet_v2_1.0_224": (1.0, 224), "mobilenet_v2_0.35_96": (0.35, 96)}
FRAME_HW = (480, 640)


# ---------------------------------------------------------------- building (child process, TensorFlow)


def build(cache: Path) -> None:
    build_bundles(cache, MODELS)


def build_bundles(cache: Path, models: dict[str, tuple[float, int]], int8io: bool = False) -> None:
    """Int8 bundles (uint8 input, seven classes, random weights) of MobileNetV2 {name: (alpha, side)};
    ``int8io``: with the int8-I/O variant too (model_int8io.tflite), checked as `train quantize` does."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from edge.model.bundle import write_bundle

    for name, (alpha, side) in models.items():
        keras.utils.set_random_seed(0)
        inp = keras.Input((side, side, 3))
        x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
        base = keras.applications.MobileNetV2(alpha=alpha, input_shape=(side, side, 3), weights=None,
                                              include_top=False, pooling="avg")
        out = keras.layers.Dense(len(LABELS), activation="softmax")(base(x))
        model = keras.Model(inp, out)
        calib = random_calibration(16, (side, side))
        with tempfile.TemporaryDirectory() as tmp:
            tfl = Path(tmp) / "model.tflite"
            tfl.write_bytes(to_tflite(model, calib))
            extra, files = {"provenance": {"source": "benchmarks/bench_run.py, random weights"}}, {}
            if int8io:
                extra["variants"], files = _int8io(model, calib, tfl, Path(tmp)), {INT8IO_FILE: Path(tmp) / INT8IO_FILE}
            write_bundle(cache / name, model=tfl, labels=LABELS, name=name, force=True, extra=extra,
                         extra_files=files)


def _int8io(model, calib: np.ndarray, tfl: Path, tmp: Path) -> dict:  # noqa: ANN001 (a Keras model)
    """model_int8io.tflite in ``tmp``, with the check `train quantize` makes (train.export.variants)."""
    from edge.model.load import load_model
    from train.export.quantize import check_int8_model
    from train.export.variants import int8io_variant

    u8 = load_model(tfl, device="cpu", verify=False)
    inputs = calib[:8].astype(np.uint8)
    expected = np.stack([u8.invoke(u8.prepare(x)).reshape(-1) for x in inputs])
    variants, notes = int8io_variant(lambda: to_tflite(model, calib, "int8"), check_int8_model, tmp, {},
                                     inputs, expected)
    if notes:
        raise SystemExit(notes[0])
    return variants


def ensure_bundles(cache: Path) -> dict[str, Path]:
    paths = {name: cache / name for name in MODELS}
    if not all((p / "model.tflite").is_file() for p in paths.values()):
        build_in_child(__file__, cache, "MobileNetV2 int8 bundles")
    return paths


def write_video(path: Path, fps: float, frames: int, size: tuple[int, int] = (640, 480)) -> Path:
    """A camera-like MP4 of ``size`` (width, height): a textured scene panning slowly."""
    import cv2

    if path.is_file():
        return path
    w, h = size
    rng = np.random.default_rng(0)
    scene = cv2.resize(rng.integers(60, 200, (120, 160, 3), dtype=np.uint8), (2 * w, 2 * h),
                       interpolation=cv2.INTER_CUBIC)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for i in range(frames):
        x, y = int(w / 2 + w / 2.2 * np.sin(i / 40)), int(h / 2 + h / 2.2 * np.cos(i / 53))
        writer.write(scene[y : y + h, x : x + w])
    writer.release()
    return path


# ---------------------------------------------------------------- 1. throughput


def source_rate(pipeline, video: Path) -> float:
    """Frames per second the capture thread alone delivers from a file read as fast as possible
    (decode, quality measures, preprocessing; no inference)."""
    from edge.sources.capture import Capture
    from edge.sources.opencv import VideoFileSource

    cap = Capture(VideoFileSource(video), realtime=False, prepare=pipeline.prepare)
    t0 = time.perf_counter()
    cap.start()
    n = 0
    while not cap.finished:
        n += cap.take(0.5) is not None
    return n / (time.perf_counter() - t0)


def throughput(model, video: Path, realtime: bool) -> dict:
    from edge.run.pipeline import Pipeline, PipelineOptions
    from edge.sources.opencv import VideoFileSource

    source = VideoFileSource(video)
    pipeline = Pipeline(model, source, (), PipelineOptions(realtime=realtime))
    rate = None if realtime else source_rate(pipeline, video)
    summary = pipeline.run(collect=True)
    results = summary.results[10:]  # past the start-up
    span = results[-1].timestamp - results[0].timestamp
    invoke_p50 = statistics.median(r.times.invoke_ms for r in results)
    frames = summary.stats.frames.as_dict()
    fps = (len(results) - 1) / span
    if rate is None:  # in real time the source delivers at most its frame rate
        rate = min(source.rate or 0.0, frames["captured"] / max(summary.stats.uptime_s, 1e-9))
    inference_rate = 1000.0 / invoke_p50
    bound = min(rate, inference_rate)
    return {"video": video.name, "mode": "real time" if realtime else "every frame", "nominal_fps": source.rate,
            "threads": model.threads, "source_rate": round(rate, 1), "invoke_p50_ms": round(invoke_p50, 3),
            "inference_rate": round(inference_rate, 1), "throughput": round(fps, 1),
            "ratio": round(fps / bound, 3), "dropped": frames["dropped"], "processed": frames["processed"]}


def throughput_rounds(bundle: Path, camera_video: Path, model_size_video: Path, threads: int | None,
                      rounds: int) -> list[dict]:
    """Both cases, alternating, ``rounds`` times; per case the round with the median ratio."""
    from edge.backends.devices import default_threads
    from edge.model.load import load_model

    model = load_model(bundle, device="cpu", threads=threads or default_threads(reserve=1))
    runs: dict[str, list[dict]] = {"camera": [], "model_size": []}
    for _ in range(rounds):
        runs["camera"].append(throughput(model, camera_video, True))
        runs["model_size"].append(throughput(model, model_size_video, False))
    out = []
    for case in runs.values():
        ranked = sorted(case, key=lambda r: r["ratio"])
        out.append({**ranked[len(ranked) // 2], "ratios": [r["ratio"] for r in case]})
    return out


# ---------------------------------------------------------------- 2. memory


class FastCamera:
    """A live source as fast as the pipeline takes frames: 640x480 RGB, a new array per frame."""

    finite, rate, name = False, None, "synthetic camera"

    def __init__(self) -> None:
        rng = np.random.default_rng(1)
        self.frames = [rng.integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8) for _ in range(8)]
        self.n = 0

    def open(self) -> None:
        pass

    def read(self) -> np.ndarray:
        self.n += 1
        return self.frames[self.n % len(self.frames)].copy()

    def close(self) -> None:
        pass


def _viewer(url: str, every: float, stop: threading.Event) -> None:
    """What the live page does (the MJPEG stream; /api/latest every 0.33 s, /api/stats every 2 s),
    and a Prometheus scraper (/metrics)."""
    import urllib.request

    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                while response.read(65536) and not stop.is_set() and not every:
                    pass
        except OSError:
            pass
        stop.wait(every or 0.5)


def memory(bundle: Path, frames: int, tmp: Path) -> dict:
    import psutil

    from edge.model.load import load_model
    from edge.outputs.notify import Notifier, NotifySink
    from edge.outputs.sinks import JsonlSink, TerminalSink
    from edge.run.pipeline import Pipeline, PipelineOptions

    model = load_model(bundle, device="cpu")
    proc = psutil.Process()
    pipeline = Pipeline(model, FastCamera(), (), PipelineOptions(max_frames=frames))
    sinks = [TerminalSink(quiet=True), JsonlSink(tmp / "memory.jsonl"), NotifySink(Notifier({}))]
    try:
        from edge.outputs.server import LiveServer

        server = LiveServer("127.0.0.1", 0, stats=pipeline.snapshot).start()
        sinks.append(server)
        stop = threading.Event()
        for path, every in (("stream.mjpg", 0.0), ("api/latest", 0.33), ("api/stats", 2.0), ("metrics", 5.0)):
            threading.Thread(target=_viewer, args=(server.url + path, every, stop), daemon=True).start()
    except ImportError:
        stop = threading.Event()
    pipeline.sinks = sinks
    rss: dict[int, int] = {}
    marks = (1000, frames)

    def on_result(result) -> None:
        n = pipeline.stats.processed
        if n in marks:
            rss[n] = proc.memory_info().rss

    t0 = time.perf_counter()
    pipeline.run(on_result=on_result)
    stop.set()
    seconds = time.perf_counter() - t0
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    mb = 1024 * 1024
    return {"frames": frames, "seconds": round(seconds, 1), "rss_1000_mb": round(rss[1000] / mb, 1),
            f"rss_{frames}_mb": round(rss[frames] / mb, 1), "growth_mb": round((rss[frames] - rss[1000]) / mb, 2),
            "peak_rss_mb": round(peak / mb, 1), "outputs": [type(s).__name__ for s in sinks]}


# ---------------------------------------------------------------- 3. first result


def first_result(bundle: Path, video: Path, tmp: Path, runs: int = 5) -> dict:
    edge = Path(sys.executable).with_name("edge")
    env = {**os.environ, "SKIN_EDGE_CONFIG": ""}
    env.pop("NOTIFY_SOCKET", None)
    times = []
    for i in range(runs):
        out = tmp / f"first_{i}.jsonl"
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(edge), "run", "--model", str(bundle), "--source", str(video), "--jsonl",
                                 str(out), "--max-frames", "1", "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        while not (out.is_file() and out.stat().st_size and out.read_bytes().endswith(b"\n")):
            if proc.poll() not in (None, 0):
                sys.exit(f"edge run failed with status {proc.returncode}")
            time.sleep(0.002)
        times.append(time.perf_counter() - t0)
        proc.wait()
    trace = subprocess.run([sys.executable, "-X", "importtime", "-m", "edge", "run", "--model", str(bundle),
                            "--source", str(video), "--max-frames", "1", "--quiet"],
                           capture_output=True, text=True, env=env, cwd=ROOT)
    heavy = sorted({line.split("|")[-1].strip().split(".")[0] for line in trace.stderr.splitlines()
                    if line.startswith("import time:") and line.split("|")[-1].strip().split(".")[0]
                    in ("tensorflow", "keras", "tf_keras", "jax", "torch")})
    return {"runs_s": [round(t, 3) for t in times], "median_s": round(statistics.median(times), 3),
            "heavy_imports": heavy}


# ---------------------------------------------------------------- report


def main() -> int:
    ap = parser(__doc__.splitlines()[0], "bench_run")
    ap.add_argument("--frames", type=int, default=10000, help="frames for the memory test")
    ap.add_argument("--threads", type=int, default=None, help="interpreter threads [edge run's default]")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the throughput cases (median reported)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.build:
        build(args.cache)
        return 0
    bundles = ensure_bundles(args.cache)
    big, small = bundles["mobilenet_v2_1.0_224"], bundles["mobilenet_v2_0.35_96"]
    cam30 = write_video(args.cache / "camera_30fps.mp4", 30.0, 150)
    fast = write_video(args.cache / "model_size.mp4", 30.0, 1500, (224, 224))
    report: dict = {"cpu_count": os.cpu_count(), "load_before": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as tmp:
        report["throughput"] = throughput_rounds(big, cam30, fast, args.threads, args.rounds)
        report["memory"] = memory(small, args.frames, Path(tmp))
        report["first_result"] = first_result(big, cam30, Path(tmp))
    report["load_after"] = [round(x, 2) for x in os.getloadavg()]

    print(f"machine: {os.cpu_count()} CPUs, load {report['load_before']} before, {report['load_after']} after")
    print("\n1. throughput, MobileNetV2 1.0/224 int8, video sources, median of the rounds (target ratio >= 0.90)")
    for t in report["throughput"]:
        print(f"   {t['video']:<17} {t['mode']:<11} source {t['source_rate']:7.1f} fps   inference {t['inference_rate']:7.1f} /s "
              f"(invoke p50 {t['invoke_p50_ms']:.2f} ms, {t['threads']} threads)   throughput {t['throughput']:7.1f} fps"
              f"   ratio {t['ratio']:.3f} {'ok' if t['ratio'] >= 0.9 else 'MISSED'}   dropped {t['dropped']}"
              f"   (ratios of the rounds {t['ratios']})")
    m = report["memory"]
    print(f"\n2. memory, MobileNetV2 0.35/96 int8, synthetic 640x480 camera, outputs {', '.join(m['outputs'])}")
    last = m[f"rss_{m['frames']}_mb"]
    print(f"   RSS after 1,000 frames {m['rss_1000_mb']} MB, after {m['frames']:,} frames "
          f"{last} MB: {m['growth_mb']:+.2f} MB "
          f"{'ok' if abs(m['growth_mb']) <= 5 else 'MISSED'} (peak {m['peak_rss_mb']} MB, {m['seconds']} s)")
    f = report["first_result"]
    print("\n3. `edge run` to first result, MobileNetV2 1.0/224 int8 (target < 2 s)")
    print(f"   median {f['median_s']:.3f} s over {len(f['runs_s'])} runs {f['runs_s']} "
          f"{'ok' if f['median_s'] < 2 else 'MISSED'}; TensorFlow-like imports: {f['heavy_imports'] or 'none'}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
