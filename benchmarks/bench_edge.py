"""Speed targets of `edge benchmark`, measured as ratios in one run on this machine (run by hand).

    .venv/bin/python benchmarks/bench_edge.py [--runs 300] [--rounds 5] [--cache DIR] [--json FILE]

1. The toolkit adds nothing measurable: `edge benchmark`'s invoke p50 within 5% of a bare loop of
   ``interpreter.invoke()`` on the same model.
2. Int8 pays off: MobileNetV2 1.0/224 int8 at least 1.8x faster than float (1 thread).
3. Preprocessing a 640x480 frame for the 224x224 uint8-input model costs under 10% of the int8
   invoke p50.
4. The model's multiply-accumulate count and the achieved GMAC/s.

MobileNetV2 1.0/224 (ImageNet head, random weights: speed does not depend on them) is built with
Keras once, in a child process (TensorFlow never enters the measuring process), converted to float
and to int8 with uint8 input/output (pixel scaling inside the model, as our bundles do), and cached.
Rounds alternate between the things compared, so drift on the machine hits both alike; each
figure is the median over rounds of the per-round p50.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from model_cache import build_in_child, parser, random_calibration, to_tflite

HW = (224, 224)
FRAME_HW = (480, 640)
NAMES = {"float": "mobilenet_v2_1.0_224_float.tflite", "int8": "mobilenet_v2_1.0_224_int8.tflite"}


# ---------------------------------------------------------------- building (child process, TensorFlow)


def build(cache: Path) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((*HW, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)  # raw 0..255 pixels in, as our bundles
    net = keras.applications.MobileNetV2(alpha=1.0, input_shape=(*HW, 3), weights=None, classes=1000)
    model = keras.Model(inp, net(x))
    calib = random_calibration(24, HW)

    cache.mkdir(parents=True, exist_ok=True)
    for kind in ("float", "int8"):
        tmp = cache / f".{NAMES[kind]}.tmp"
        tmp.write_bytes(to_tflite(model, calib if kind == "int8" else None))
        tmp.replace(cache / NAMES[kind])


def ensure_models(cache: Path) -> dict[str, Path]:
    paths = {k: cache / n for k, n in NAMES.items()}
    if not all(p.is_file() for p in paths.values()):
        build_in_child(__file__, cache, "MobileNetV2 1.0/224 float and int8")
    return paths


# ---------------------------------------------------------------- measuring (no TensorFlow here)


def bare_loop_p50(path: Path, runs: int, warmup: int) -> float:
    """A plain interpreter and a plain loop: the floor any benchmark tool can reach."""
    from edge.backends.runtime import get_runtime

    it = get_runtime().Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.random.default_rng(1).integers(0, 256, d["shape"]).astype(d["dtype"]))
    for _ in range(warmup):
        it.invoke()
    clock, out = time.perf_counter_ns, np.empty(runs, dtype=np.int64)
    for i in range(runs):
        t0 = clock()
        it.invoke()
        out[i] = clock() - t0
    return float(np.percentile(out / 1e6, 50))


def prepare_p50(path: Path, runs: int) -> tuple[float, str]:
    """Model.prepare (centre crop, area resize, quantize) of a 640x480 camera-like frame."""
    from edge.model.load import load_model

    model = load_model(path, device="cpu", threads=1)
    i = model.spec.input
    contract = f"{i.dtype} input, scale {i.quantization.scale:g}, zero point {i.quantization.zero_point}"
    h, w = FRAME_HW
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([120 + 60 * np.sin(xx / 50), 90 + 50 * np.cos(yy / 40), 80 + 0 * xx], axis=-1)
    frame = np.clip(base + np.random.default_rng(2).normal(0, 8, base.shape), 0, 255).astype(np.uint8)
    for _ in range(10):
        model.prepare(frame)
    clock, out = time.perf_counter_ns, np.empty(runs, dtype=np.int64)
    for k in range(runs):
        t0 = clock()
        model.prepare(frame)
        out[k] = clock() - t0
    return float(np.percentile(out / 1e6, 50)), contract


def main() -> int:
    ap = parser(__doc__.splitlines()[0], "bench_edge")
    ap.add_argument("--runs", type=int, default=300, help="timed invokes per measurement")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds; figures are medians over them")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if args.build:
        build(args.cache)
        return 0
    paths = ensure_models(args.cache)

    from edge.bench.latency import bench_model
    from edge.bench.machine import machine_info

    machine = machine_info()
    v = machine.versions
    print(f"machine: {machine.cpu}, {machine.cores} cores, governor {machine.governor or 'n/a'}, "
          f"load {machine.load_average}; {v['name']} {v['version']}, numpy {v['numpy']}, OpenCV {v['opencv']}")
    for w in machine.warnings:
        print(f"warning: {w}")

    bare, tool, flt, q8, prep, macs, gmacs = [], [], [], [], [], {}, {}
    contract = ""
    for r in range(args.rounds):
        bare.append(bare_loop_p50(paths["int8"], args.runs, args.warmup))
        for kind, store in (("int8", q8), ("float", flt)):
            res = bench_model(paths[kind], device="cpu", threads=1, warmup=args.warmup, runs=args.runs)
            store.append(res.latency.p50)
            macs[kind] = res.mac_count
            gmacs.setdefault(kind, []).append(res.gmac_per_s)
        tool.append(q8[-1])
        p, contract = prepare_p50(paths["int8"], args.runs)
        prep.append(p)
        print(f"round {r + 1}: bare {bare[-1]:.3f} ms, edge int8 {q8[-1]:.3f} ms, float {flt[-1]:.3f} ms, "
              f"prepare {prep[-1]:.3f} ms", flush=True)

    med = lambda xs: float(np.median(xs))  # noqa: E731
    overhead = med(tool) / med(bare)
    speedup = med(flt) / med(q8)
    prep_share = med(prep) / med(q8)
    rows = [
        ("1. edge benchmark p50 / bare invoke loop p50", f"{med(tool):.3f} / {med(bare):.3f} ms = {overhead:.3f}",
         "within 5%", abs(overhead - 1) <= 0.05),
        ("2. MobileNetV2 1.0/224 float p50 / int8 p50 (1 thread)", f"{med(flt):.3f} / {med(q8):.3f} ms = "
         f"{speedup:.2f}x", ">= 1.8x", speedup >= 1.8),
        ("3. prepare 640x480 -> 224x224 / int8 invoke p50", f"{med(prep):.3f} / {med(q8):.3f} ms = "
         f"{100 * prep_share:.1f}% ({contract})", "< 10%", prep_share < 0.10),
    ]
    for kind in ("float", "int8"):
        rows.append((f"4. {kind}: MACs per inference, achieved GMAC/s",
                     f"{macs[kind] / 1e6:.1f} M MACs, {med(gmacs[kind]):.1f} GMAC/s", "reported", True))
    print()
    for what, value, target, ok in rows:
        print(f"{what:58s} {value:52s} target {target:10s} {'met' if ok else 'NOT MET'}")
    if args.json:
        args.json.write_text(json.dumps({
            **machine.as_dict(), "runs": args.runs, "rounds": args.rounds,
            "bare_p50_ms": med(bare), "edge_p50_ms": med(tool), "overhead_ratio": overhead,
            "float_p50_ms": med(flt), "int8_p50_ms": med(q8), "int8_speedup": speedup,
            "prepare_p50_ms": med(prep), "prepare_share": prep_share, "input": contract,
            "mac_count": macs, "gmac_per_s": {k: med(g) for k, g in gmacs.items()},
        }, indent=2) + "\n")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
