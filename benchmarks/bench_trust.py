"""What calibration, the OOD score and the activation maps cost per frame, measured in one run.

    .venv/bin/python benchmarks/bench_trust.py [--rounds 7] [--runs 300] [--threads 1] [--json FILE]

Two int8 bundles (uint8 I/O) of the same MobileNetV2 with the same random weights, as
`train quantize` makes them:

- ``softmax``: the classifier as trained, one output (bundles made before the trust outputs);
- ``trust``: logits + class activation maps + pooled features (train/export/heads.py), with a
  temperature and an OOD model (``ood.npz``, fitted on random images' features) in the bundle.

Rounds alternate the two (so drift on a shared machine hits both alike). Printed per model: the
median over rounds of each round's median ``invoke()`` of each bundle and their ratio, then the
device-side work per frame through the toolkit's own code (``edge.model.load.Model``): scores
(softmax of the dequantized output vs softmax(logits / T)), the OOD check, reading the top class's
map, and drawing the live view's overlay on a 640x480 frame (only while a viewer asks for it).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from model_cache import build_in_child, parser, random_calibration, to_tflite

MODELS = {"mobilenet_v2_0.35_128": (0.35, 128), "mobilenet_v2_1.0_224": (1.0, 224)}
LABELS = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
KINDS = ("softmax", "trust")


def build(cache: Path) -> None:
    """Both bundles of each model; the OOD model is fitted on the trust model's features of random images."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from edge.backends.runtime import get_runtime
    from edge.model.bundle import OOD_FILE, write_bundle
    from edge.ops.ood import fit_ood
    from train.export.heads import export_model, find_head

    for name, (alpha, side) in MODELS.items():
        keras.utils.set_random_seed(0)
        inp = keras.Input((side, side, 3))
        x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
        base = keras.applications.MobileNetV2(alpha=alpha, input_shape=(side, side, 3), weights=None,
                                              include_top=False)
        x = keras.layers.GlobalAveragePooling2D()(base(x))
        model = keras.Model(inp, keras.layers.Dense(len(LABELS), activation="softmax")(x))
        calib = random_calibration(16, (side, side))
        with tempfile.TemporaryDirectory() as tmp:
            plain, trust = Path(tmp) / "softmax.tflite", Path(tmp) / "trust.tflite"
            plain.write_bytes(to_tflite(model, calib))
            trust.write_bytes(to_tflite(export_model(model, find_head(model)), calib))
            interp = get_runtime().Interpreter(model_path=str(trust))
            interp.allocate_tensors()
            out = max(interp.get_output_details(), key=lambda d: d["shape"][-1] if len(d["shape"]) == 2 else 0)
            scale, zero = out["quantization"]
            feats = []
            for image in np.random.default_rng(1).integers(0, 256, (96, side, side, 3), dtype=np.uint8):
                interp.set_tensor(interp.get_input_details()[0]["index"], image[None])
                interp.invoke()
                feats.append((interp.get_tensor(out["index"]).astype(np.float32) - zero) * scale)
            feats_a = np.concatenate(feats)
            ood = fit_ood(feats_a, np.arange(len(feats_a)) % len(LABELS), len(LABELS), components=16)
            ood = ood.with_threshold(np.maximum(ood.scores(feats_a), 1.0))  # random weights: timing only
            ood_path = ood.save(Path(tmp) / OOD_FILE)
            provenance = {"provenance": {"source": "benchmarks/bench_trust.py, random weights"}}
            write_bundle(cache / name / "softmax", model=plain, labels=LABELS, name=f"{name} softmax",
                         force=True, extra=provenance)
            write_bundle(cache / name / "trust", model=trust, labels=LABELS, name=f"{name} trust", force=True,
                         activation="logits", extra_files={OOD_FILE: ood_path},
                         extra={**provenance, "calibration": {"temperature": 1.5},
                                "ood": {"threshold": ood.threshold, "method": "mahalanobis"}})


def _median_us(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1e3


def measure(paths: dict[str, Path], rounds: int, runs: int, threads: int) -> dict:
    from edge.model.explain import overlay_frame
    from edge.model.load import load_model

    models = {k: load_model(paths[k], device="cpu", threads=threads) for k in KINDS}
    trust = models["trust"]
    if trust.spec.cam is None or trust.ood is None:
        sys.exit(f"{paths['trust']} lacks the maps or the OOD data: delete the cache and run again")
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (1, trust.spec.height, trust.spec.width, 3), dtype=np.uint8)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    raw = {k: m.invoke(image) for k, m in models.items()}
    for m in models.values():
        for _ in range(30):
            m.invoke(image)
    per_round: dict[str, list[float]] = {k: [] for k in ("invoke_softmax", "invoke_trust", "ratio")}
    for r in range(rounds):
        order = KINDS if r % 2 == 0 else KINDS[::-1]
        got = {k: _median_us(lambda m=models[k]: m.invoke(image), runs) for k in order}
        per_round["invoke_softmax"].append(got["softmax"])
        per_round["invoke_trust"].append(got["trust"])
        per_round["ratio"].append(got["trust"] / got["softmax"])
    trust.invoke(image)
    index = int(np.argmax(trust.probabilities(raw["trust"])))
    cam = trust.cam(index)
    post = {
        "scores_softmax_us": _median_us(lambda: models["softmax"].probabilities(raw["softmax"]), 2000),
        "scores_logits_T_us": _median_us(lambda: trust.probabilities(raw["trust"]), 2000),
        "ood_check_us": _median_us(trust.ood_check, 2000),
        "cam_read_us": _median_us(lambda: trust.cam(index), 2000),
        "overlay_640x480_us": _median_us(lambda: overlay_frame(frame, cam, trust.spec.width / trust.spec.height), 200),
    }
    med = {k: statistics.median(v) for k, v in per_round.items()}
    return {"threads": threads, "rounds": rounds, "runs": runs, "cam_shape": list(trust.spec.cam.shape),
            "features": trust.spec.features.shape[-1],
            "invoke_softmax_us": round(med["invoke_softmax"], 1), "invoke_trust_us": round(med["invoke_trust"], 1),
            "invoke_ratio": round(med["ratio"], 4),
            "invoke_ratio_min_max": [round(min(per_round["ratio"]), 4), round(max(per_round["ratio"]), 4)],
            **{k: round(v, 1) for k, v in post.items()},
            "added_per_frame_us": round(med["invoke_trust"] - med["invoke_softmax"] + post["scores_logits_T_us"]
                                        - post["scores_softmax_us"] + post["ood_check_us"], 1)}


def main() -> None:
    ap = parser(__doc__.splitlines()[0], "bench-trust")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=300, help="invokes per bundle per round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.build:
        return build(args.cache)
    paths = {name: {k: args.cache / name / k for k in KINDS} for name in MODELS}
    if not all((p / "model.tflite").is_file() for d in paths.values() for p in d.values()):
        build_in_child(__file__, args.cache, "MobileNetV2 softmax and trust bundles")
    from edge.backends.runtime import get_runtime

    rt = get_runtime()
    print(f"{rt.name} {rt.version}, {args.threads} thread(s), {args.rounds} alternating rounds x {args.runs} invokes")
    report = {}
    for name, p in paths.items():
        r = report[name] = measure(p, args.rounds, args.runs, args.threads)
        lo, hi = r["invoke_ratio_min_max"]
        print(f"\n{name} (cam {r['cam_shape']}, {r['features']} features)")
        print(f"  invoke: softmax only {r['invoke_softmax_us']:.0f} us, logits + maps + features "
              f"{r['invoke_trust_us']:.0f} us: ratio {r['invoke_ratio']:.3f} ({lo:.3f}-{hi:.3f})")
        print(f"  scores: softmax output {r['scores_softmax_us']:.1f} us, softmax(logits / T) "
              f"{r['scores_logits_T_us']:.1f} us")
        print(f"  OOD check {r['ood_check_us']:.1f} us, map read {r['cam_read_us']:.1f} us, "
              f"live overlay 640x480 {r['overlay_640x480_us']:.0f} us (only while a viewer shows it)")
        print(f"  added per frame (invoke + scores + OOD): {r['added_per_frame_us']:.1f} us")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
