"""`edge run --no-realtime` against the simplest loop a user writes, on the same video and model.

    .venv/bin/python benchmarks/bench_naive.py [--rounds 5] [--frames 900] [--threads 1,2] [--json FILE]

The naive loop: ``cv2.VideoCapture`` -> ``cv2.resize`` to the model's input -> ``invoke()`` ->
``argmax``, serial, with the same runtime and thread count. The toolkit: the `edge run` pipeline
(capture thread, quality gate, shared preprocessing, smoothing, threshold) over the same 640x480
video, every frame. Printed per model and thread count, from rounds that alternate the two (so
drift on a shared machine hits both alike): frames per second (median, min-max), the ratio
toolkit / naive (median of the per-round ratios), CPU time per frame of each (all threads), and
the toolkit's ratio to the inference bound 1 / (invoke + preprocess), from the same run. Then
`edge run --variant int8io` (what `--variant fastest` picks where `edge benchmark --all-variants`
found it faster: the same numbers without the uint8 <-> int8 QUANTIZE ops) against the same naive
loop on model.tflite, in the same rounds. Then the per-frame work one loop does and the other
does not, medians inside the runs: the toolkit's exact preprocessing (centre crop, area
reduction, bilinear step, RGB order) plus its quality gate, against the naive loop's one
``cv2.resize``: the toolkit's CPU time per frame cannot be below the naive loop's plus that
difference. Last, `edge run` against the same serial loop given the toolkit's
preprocessing (`fit_to_input`, the pixels the model was trained on) instead of ``cv2.resize``: what
the pipeline itself (capture thread, gate, smoothing, results) costs or gains.

Models: MobileNetV2 0.35/128 (the demo bundle's shape) and 1.0/224, seven classes, random weights
(speed does not depend on them), int8 with uint8 input and its int8-I/O variant, built once in a
child process and cached.
Targets (issue "Speed"): toolkit >= 1.0x naive for both models at 1 and 2 threads, >= 0.9 of the
inference bound for MobileNetV2 224, CPU time per frame <= the naive loop's.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from bench_run import build_bundles, write_video
from model_cache import build_in_child, parser

from edge.model.bundle import INT8IO_FILE

MODELS = {"mobilenet_v2_0.35_128": (0.35, 128), "mobilenet_v2_1.0_224": (1.0, 224)}


def ensure_bundles(cache: Path) -> dict[str, Path]:
    paths = {name: cache / name for name in MODELS}
    if not all((p / INT8IO_FILE).is_file() for p in paths.values()):
        build_in_child(__file__, cache, "MobileNetV2 0.35/128 and 1.0/224 int8 bundles")
    return paths


def naive(bundle: Path, video: Path, threads: int, exact: bool = False) -> dict:
    """The serial loop; ``exact``: with the toolkit's preprocessing (``fit_to_input``, the training
    pixels) in place of the one ``cv2.resize``."""
    import cv2

    from edge.backends.runtime import get_runtime
    from edge.ops.preprocess import fit_to_input

    interp = get_runtime().Interpreter(model_path=str(bundle / "model.tflite"), num_threads=threads)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    h, w = int(inp["shape"][1]), int(inp["shape"][2])
    cpu0, t0 = time.process_time(), time.perf_counter()
    cap = cv2.VideoCapture(str(video))
    n, prep_ms = 0, []  # cv2.resize, or fit_to_input for the exact loop
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        r0 = time.perf_counter()
        small = fit_to_input(frame, h, w, bgr=True) if exact else cv2.resize(frame, (w, h))
        prep_ms.append((time.perf_counter() - r0) * 1e3)
        interp.set_tensor(inp["index"], small[None])
        interp.invoke()
        int(np.argmax(interp.get_tensor(out["index"])))
        n += 1
    cap.release()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"frames": n, "fps": n / wall, "cpu_ms": cpu / n * 1000, "prep_ms": statistics.median(prep_ms)}


def toolkit(model, video: Path) -> dict:
    from edge.run.pipeline import Pipeline, PipelineOptions
    from edge.sources.opencv import VideoFileSource

    pipeline = Pipeline(model, VideoFileSource(video), (), PipelineOptions(realtime=False))
    cpu0, t0 = time.process_time(), time.perf_counter()
    summary = pipeline.run(collect=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    n = summary.stats.frames.processed
    steady = summary.results[10:]
    invoke = statistics.median(r.times.invoke_ms for r in steady)
    prep = statistics.median(r.times.preprocess_ms for r in steady)
    gate = statistics.median(r.times.quality_ms for r in steady)
    return {"frames": n, "fps": n / wall, "cpu_ms": cpu / n * 1000, "invoke_ms": invoke, "preprocess_ms": prep,
            "bound_fps": 1000 / (invoke + prep), "dropped": summary.stats.frames.dropped, "gate_ms": gate}


def compare(bundle: Path, video: Path, threads: int, rounds: int) -> dict:
    from edge.model.load import load_model

    models = {"toolkit": load_model(bundle, device="cpu", threads=threads),
              "int8io": load_model(bundle, device="cpu", threads=threads, variant="int8io")}
    for model in models.values():
        toolkit(model, video)  # warm-up: file cache, interpreter, OpenCV
    kinds = ("naive", "toolkit", "int8io", "exact")
    runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for r in range(rounds):
        for kind in kinds[r % 4:] + kinds[: r % 4]:  # each kind in every position in turn
            if kind in ("naive", "exact"):
                runs[kind].append(naive(bundle, video, threads, exact=kind == "exact"))
            else:
                runs[kind].append(toolkit(models[kind], video))
    ratios = [t["fps"] / n["fps"] for n, t in zip(runs["naive"], runs["toolkit"])]
    exact = [t["fps"] / n["fps"] for n, t in zip(runs["exact"], runs["toolkit"])]
    exact_cpu = [t["cpu_ms"] / n["cpu_ms"] for n, t in zip(runs["exact"], runs["toolkit"])]
    io_ratios = [t["fps"] / n["fps"] for n, t in zip(runs["naive"], runs["int8io"])]
    cpu = [t["cpu_ms"] / n["cpu_ms"] for n, t in zip(runs["naive"], runs["toolkit"])]
    bound = [t["fps"] / t["bound_fps"] for t in runs["toolkit"]]

    def fps(kind: str) -> dict:
        values = [x["fps"] for x in runs[kind]]
        return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
                "max": round(max(values), 1), "cpu_ms": round(statistics.median(x["cpu_ms"] for x in runs[kind]), 3)}

    return {"model": bundle.name, "threads": threads, "rounds": rounds, "naive": fps("naive"),
            "toolkit": fps("toolkit"), "ratio": round(statistics.median(ratios), 3),
            "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3),
            "cpu_ratio": round(statistics.median(cpu), 3), "bound_ratio": round(statistics.median(bound), 3),
            "int8io": fps("int8io"), "int8io_ratio": round(statistics.median(io_ratios), 3),
            "int8io_ratio_min": round(min(io_ratios), 3), "int8io_ratio_max": round(max(io_ratios), 3),
            "invoke_ms": round(statistics.median(t["invoke_ms"] for t in runs["toolkit"]), 3),
            "preprocess_ms": round(statistics.median(t["preprocess_ms"] for t in runs["toolkit"]), 3),
            "exact": fps("exact"), "exact_ratio": round(statistics.median(exact), 3),
            "exact_ratio_min": round(min(exact), 3), "exact_ratio_max": round(max(exact), 3),
            "exact_cpu_ratio": round(statistics.median(exact_cpu), 3),
            "gate_ms": round(statistics.median(t["gate_ms"] for t in runs["toolkit"]), 3),
            "resize_ms": round(statistics.median(n["prep_ms"] for n in runs["naive"]), 3)}


def main() -> int:
    ap = parser(__doc__.splitlines()[0], "bench_run")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=900, help="frames of the 640x480 video")
    ap.add_argument("--threads", default="1,2", help="interpreter thread counts, comma-separated")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.build:
        build_bundles(args.cache, MODELS, int8io=True)
        return 0
    bundles = ensure_bundles(args.cache)
    video = write_video(args.cache / f"camera_{args.frames}.mp4", 30.0, args.frames)
    load = [round(x, 2) for x in os.getloadavg()]
    rows = [compare(b, video, int(t), args.rounds) for b in bundles.values() for t in args.threads.split(",")]
    print(f"machine: {os.cpu_count()} CPUs, load {load} before, {[round(x, 2) for x in os.getloadavg()]} after; "
          f"640x480 video, {args.frames} frames, {args.rounds} alternating rounds")
    print(f"{'model':<24} {'thr':>3}  {'naive fps (min-max)':>24}  {'edge run fps (min-max)':>24}  "
          f"{'edge/naive':>16}  {'CPU/frame e/n':>13}  {'of bound':>8}  {'int8io edge/naive':>17}  "
          f"{'prep+gate / resize ms':>21}  {'edge/exact-naive':>16}  {'CPU e/x':>7}")
    for r in rows:
        n, t = r["naive"], r["toolkit"]
        print(f"{r['model']:<24} {r['threads']:>3}  {n['median']:>8.1f} ({n['min']:.0f}-{n['max']:.0f}){'':>6}  "
              f"{t['median']:>8.1f} ({t['min']:.0f}-{t['max']:.0f}){'':>6}  "
              f"{r['ratio']:>5.3f} ({r['ratio_min']:.2f}-{r['ratio_max']:.2f})  {r['cpu_ratio']:>13.3f}  "
              f"{r['bound_ratio']:>8.3f}  {r['int8io_ratio']:>5.3f} ({r['int8io_ratio_min']:.2f}-"
              f"{r['int8io_ratio_max']:.2f})  {r['preprocess_ms']:>6.3f}+{r['gate_ms']:.3f} / {r['resize_ms']:.3f}  "
              f"{r['exact_ratio']:>5.3f} ({r['exact_ratio_min']:.2f}-{r['exact_ratio_max']:.2f})  "
              f"{r['exact_cpu_ratio']:>7.3f}")
    print("targets: edge/naive >= 1.0 for every row; CPU/frame <= 1.0; of bound >= 0.9 for MobileNetV2 224")
    if args.json:
        args.json.write_text(json.dumps({"load": load, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
