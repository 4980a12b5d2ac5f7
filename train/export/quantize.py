"""A trained run folder to a checked model bundle: float32 and full-integer int8 TFLite.

The int8 model is calibrated on a representative dataset from the training split
(:mod:`train.data.calibration`), verified to be integer-only, evaluated against the float model on the
test split through the device runtime, gated on the loss, and written with golden inputs and
outputs so ``edge verify`` can prove a device computes the same thing.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ImageError, first_line
from edge.model.bundle import (
    INT8IO_FILE,
    MODEL_FILE,
    OOD_FILE,
    write_bundle,
)
from edge.model.tflite_file import read_tflite
from edge.ops.image import load_image
from edge.ops.preprocess import fit_to_input
from train.data.calibration import (
    DEFAULT_DIR,
    DEFAULT_SIZE,
    CalibrationSet,
    prepare_calibration,
)
from train.errors import TrainError
from train.export.golden import (
    GOLDEN_INPUTS,
    GOLDEN_OUTPUTS,
    golden_order,
    write_golden,
)
from train.export.provenance import provenance, trained_on
from train.export.trust_int8 import int8_trust
from train.export.variants import int8io_variant
from train.quiet import captured, import_tensorflow

IO_TYPES = ("uint8", "int8")
RUN_FILES = ("model.keras", "labels.txt", "split.csv", "run.json")


@dataclass(frozen=True)
class Gate:
    max_bal_acc_drop: float
    min_agreement: float
    bal_acc_drop: float
    agreement: float
    passed: bool
    overridden: bool

    def as_dict(self) -> dict[str, Any]:
        return {"thresholds": {"max_bal_acc_drop": self.max_bal_acc_drop, "min_agreement": self.min_agreement},
                "bal_acc_drop": self.bal_acc_drop, "agreement": self.agreement, "passed": self.passed,
                "overridden": self.overridden}


@dataclass(frozen=True)
class QuantizeResult:
    """What a conversion produced; ``bundle`` is None when the gate stopped it."""

    run: Path
    bundle: Path | None
    io: str
    metrics: dict[str, Any]
    gate: Gate
    calibration: CalibrationSet
    float_size_bytes: int
    int8_size_bytes: int
    conversion_seconds: dict[str, float]
    warnings: tuple[str, ...] = ()
    edgetpu: Any = None  # train.export.edgetpu_compile.CompileResult when --edgetpu ran
    ood: dict[str, Any] | None = None  # model.json's ood figures (None: a model without pooled features)

    @property
    def size_ratio(self) -> float:
        return self.int8_size_bytes / self.float_size_bytes


class QuantizeFailed(TrainError):
    """The conversion ran but its result was refused; ``result`` holds the figures to show."""

    def __init__(self, message: str, hint: str | None, result: QuantizeResult) -> None:
        super().__init__(message, hint)
        self.result = result


@dataclass(frozen=True)
class _Run:
    root: Path
    labels: tuple[str, ...]
    info: dict[str, Any]
    data: Path  # the first of `roots`
    splits: dict[str, list[Any]] = field(repr=False)
    roots: tuple[Path, ...] = ()  # every dataset folder the run was trained on


def quantize(run: str | Path, out: str | Path, *, name: str | None = None, io: str = "uint8",
             calibration_size: int = DEFAULT_SIZE, calibration_dir: str | Path = DEFAULT_DIR, seed: int = 0,
             max_bal_acc_drop: float = 0.01, min_agreement: float = 0.97, allow_degraded: bool = False,
             edgetpu: bool = False, allow_cpu_ops: bool = False, force: bool = False,
             data: str | Path | None = None) -> QuantizeResult:
    """Convert RUN/model.keras to a bundle at ``out``; raise QuantizeFailed when the gate fails."""
    if io not in IO_TYPES:
        raise TrainError(f"Unknown --io {io!r}.", "Use uint8 or int8.")
    out = Path(out)
    _check_out(out, Path(run), force)
    r = _open_run(Path(run), data)
    model, input_hw, logits = _load_keras(r)
    calibration = prepare_calibration(r.splits["train"], run=r.root, labels=r.labels, input_hw=input_hw,
                                      dataset_root=r.data, size=calibration_size, seed=seed,
                                      directory=Path(calibration_dir))
    with tempfile.TemporaryDirectory(prefix="skin-edge-quantize-") as tmp_name:
        tmp = Path(tmp_name)
        float_path, int8_path = tmp / "model_float.tflite", tmp / MODEL_FILE
        seconds = _convert_both(model, calibration, io, float_path, int8_path)
        check_int8_model(int8_path, io)
        metrics, golden, notes, test_out = _evaluate(float_path, int8_path, r, tmp, logits)
        gate = _gate(metrics, max_bal_acc_drop, min_agreement, allow_degraded)
        metrics["gate"] = gate.as_dict()
        result = QuantizeResult(run=r.root, bundle=None, io=io, metrics=metrics, gate=gate,
                                calibration=calibration, float_size_bytes=float_path.stat().st_size,
                                int8_size_bytes=int8_path.stat().st_size, conversion_seconds=seconds,
                                warnings=calibration.warnings + notes)
        if not gate.passed and not allow_degraded:
            raise QuantizeFailed(_gate_message(gate), "Nothing was written. Pass --allow-degraded to write it "
                                 "anyway; a larger --calibration-size or a better-trained model may help.", result)
        variants: dict[str, Any] = {}
        if io == "uint8":  # converted only for a bundle that will be written
            variants, variant_notes = int8io_variant(lambda: _convert(model, calibration, "int8"), check_int8_model,
                                                     tmp, seconds, np.load(tmp / GOLDEN_INPUTS),
                                                     np.load(tmp / GOLDEN_OUTPUTS))
            result = _replace(result, warnings=result.warnings + variant_notes)
        trust_meta: dict[str, Any] = {}
        if test_out is not None:
            trust_meta = int8_trust(int8_path, r.splits, r.labels, test_out, tmp, metrics, seconds)
            result = _replace(result, ood=trust_meta["ood"])
        extra = {"provenance": provenance(r), "trained_on": trained_on(r),
                 "quantization": _quantization_meta(io), "metrics": metrics,
                 "calibration": {**calibration.manifest, **trust_meta.get("calibration", {})},
                 "conversion_seconds": seconds, "golden": golden,
                 **({"ood": trust_meta["ood"]} if trust_meta else {}),
                 **({"variants": variants} if variants else {})}
        files = [GOLDEN_INPUTS, GOLDEN_OUTPUTS] + ([INT8IO_FILE] if variants else []) + \
            ([OOD_FILE] if trust_meta else [])
        try:
            bundle = write_bundle(out, model=int8_path, float_model=float_path, labels=r.labels,
                                  name=name or out.name, extra=extra, force=force,
                                  extra_files={f: tmp / f for f in files},
                                  activation="logits" if logits else "softmax")
        except OSError as e:
            raise TrainError(f"Cannot write the bundle {out}: {e.strerror or e}.",
                             "Nothing was written; free disk space or choose another --out.") from None
    result = _replace(result, bundle=bundle)
    if edgetpu:
        from train.export.edgetpu_compile import compile_bundle  # noqa: PLC0415

        try:
            result = _replace(result, edgetpu=compile_bundle(bundle, allow_cpu_ops=allow_cpu_ops))
        except TrainError as e:
            result = _replace(result, edgetpu=getattr(e, "result", None))
            raise QuantizeFailed(f"The int8 bundle {bundle} is complete, but Edge TPU compilation failed: "
                                 f"{e.message}", e.hint, result) from None
    return result


def _check_out(out: Path, run: Path, force: bool) -> None:
    """Refuse an --out that exists (unless --force), is a file, holds the run, or whose folder cannot be made."""
    if out.exists() and not force:
        raise TrainError(f"{out} already exists.", "Choose another --out or pass --force to replace it.")
    if out.exists() and not out.is_dir():
        raise TrainError(f"{out} is a file.", "--out must name a bundle folder, e.g. models/NAME.")
    resolved = out.resolve()
    if resolved == run.resolve() or resolved in run.resolve().parents:
        raise TrainError(f"--out {out} would replace the run folder {run}.", "Choose another --out.")
    try:  # now, not after minutes of conversion
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrainError(f"Cannot create {out.parent}: {e.strerror or e}.", "Choose another --out.") from None


def _replace(result: QuantizeResult, **changes: Any) -> QuantizeResult:
    import dataclasses  # noqa: PLC0415

    return dataclasses.replace(result, **changes)


# ---------------------------------------------------------------- the run folder


def _open_run(run: Path, data: str | Path | None) -> _Run:
    if not run.is_dir():
        raise TrainError(f"Run folder not found: {run}.", "Pass the folder `train fit --out` wrote.")
    for name in RUN_FILES:
        if not (run / name).is_file():
            raise TrainError(f"{run} has no {name}: it is not a complete training run.",
                             "Train it with `train fit --out RUN` (an interrupted run keeps no model).")
    labels = tuple(x.strip() for x in (run / "labels.txt").read_text(encoding="utf-8").splitlines() if x.strip())
    try:
        info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    except ValueError as e:
        raise TrainError(f"{run / 'run.json'} is not valid JSON ({e}).", "Train the run again.") from None
    if not isinstance(info, dict):
        raise TrainError(f"{run / 'run.json'} is not a run description (a JSON object).", "Train the run again.")
    if data is None and not info.get("data"):
        raise TrainError(f"{run / 'run.json'} does not name the dataset it was trained on.",
                         "Pass --data with the dataset the run was trained on.")
    from edge.data.datasets import DatasetError, read_split_csv  # noqa: PLC0415
    from edge.data.merge import load_datasets  # noqa: PLC0415
    from train.fit.run import dataset_roots  # noqa: PLC0415

    roots = [Path(data)] if data is not None else dataset_roots(info)
    root = roots[0]

    try:
        splits = read_split_csv(run / "split.csv", load_datasets(roots))
    except DatasetError as e:
        raise TrainError(f"Cannot read the run's dataset at {root}: {e}.",
                         "Pass --data with the dataset the run was trained on.") from None
    unknown = sorted({rec.label for rs in splits.values() for rec in rs} - set(labels))
    if unknown:
        raise TrainError(f"The dataset has label(s) {', '.join(unknown)} that {run / 'labels.txt'} lacks.",
                         "Use the dataset the run was trained on.")
    if not splits["test"]:
        raise TrainError(f"The test split in {run / 'split.csv'} is empty: nothing to evaluate on.")
    return _Run(run, labels, info, root, splits, tuple(roots))


def _load_keras(r: _Run) -> tuple[Any, tuple[int, int], bool]:
    """RUN/model.keras as the device runs it (train/export/heads.py: logits, class activation maps,
    pooled features) with a static batch size of 1 (the Edge TPU rejects dynamic shapes); the last
    value says whether it outputs logits (False: a model without that head, exported as it is)."""
    import_tensorflow()
    from train.export.heads import export_model, find_head  # noqa: PLC0415
    from train.fit.model import load_trained  # noqa: PLC0415

    model = load_trained(r.root / "model.keras", r.labels)
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[3] != 3 or None in shape[1:]:
        raise TrainError(f"{r.root / 'model.keras'} takes input {shape}, not a fixed-size RGB image.")
    head = find_head(model)
    return export_model(model, head), (int(shape[1]), int(shape[2])), head is not None


# ---------------------------------------------------------------- conversion


def _convert_both(model: Any, calibration: CalibrationSet, io: str, float_path: Path, int8_path: Path) -> dict:
    """Write the float32 and int8 files; the seconds each conversion took."""
    seconds = {}
    for kind, path, cal in (("float", float_path, None), ("int8", int8_path, calibration)):
        t0 = time.perf_counter()
        path.write_bytes(_convert(model, cal, io))
        seconds[kind] = round(time.perf_counter() - t0, 2)
    return seconds


def _convert(model: Any, calibration: CalibrationSet | None, io: str) -> bytes:
    """Float32 TFLite (no calibration) or full-integer int8 with ``io`` input and output."""
    import tensorflow as tf  # noqa: PLC0415

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if calibration is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x] for x in calibration.samples())
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.uint8 if io == "uint8" else tf.int8
    kind = "int8" if calibration is not None else "float32"
    error: Exception | None = None
    with captured() as log, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        try:
            return conv.convert()
        except Exception as e:  # noqa: BLE001  TF raises ConverterError, ValueError, RuntimeError...
            error = e
    detail = _error_line(str(error)) or _error_line(log.getvalue()) or first_line(error)
    raise TrainError(f"TensorFlow could not convert the model to {kind} TFLite: {detail}.",
                     "Only TFLite builtin int8 ops are allowed: replace the layer it names.")


def _error_line(text: str) -> str:
    """The useful part of a converter error: the ops TFLite lacks, or the first error line."""
    select = re.search(r"TF Select ops: (.+)", text)
    if select:
        return f"no TFLite builtin op for {select.group(1).strip()}"
    for line in text.splitlines():
        if "error:" in line:
            rest = line.split("error:", 1)[1].strip()
            return (rest.rsplit("): ", 1)[-1] if rest.startswith("loc(") else rest)[:240]
    return ""




def check_int8_model(path: Path, io: str) -> None:
    """Refuse an int8 file that is not integer-only with ``io`` I/O and raw-pixel input."""
    g = read_tflite(path)
    ends = {*g.inputs, *g.outputs}
    floats = [t.name for i, t in enumerate(g.tensors) if t.dtype not in ({io} if i in ends else {"int8", "int32"})]
    problems = []
    if floats:
        problems.append(f"{len(floats)} tensor(s) are not int8/int32 (first: {floats[0]})")
    if "DEQUANTIZE" in g.op_counts:
        problems.append("the graph has DEQUANTIZE ops")
    if g.custom_ops:
        problems.append(f"custom ops {', '.join(g.custom_ops)}")
    inp, outp = g.tensors[g.inputs[0]], g.tensors[g.outputs[0]]
    if inp.dtype != io or outp.dtype != io:
        problems.append(f"input/output are {inp.dtype}/{outp.dtype}, not {io}")
    want_zp = 0 if io == "uint8" else -128
    if (inp.scale, inp.zero_point) != (1.0, want_zp):
        problems.append(f"input quantization is scale {inp.scale!r}, zero point {inp.zero_point} instead of "
                        f"scale 1.0, zero point {want_zp} (the calibration did not cover pixels 0..255)")
    if problems:
        raise TrainError(f"The int8 model is not a clean full-integer model: {'; '.join(problems)}.",
                         "Nothing was written; report this with the run's model.keras.")


def _quantization_meta(io: str) -> dict[str, Any]:
    return {"scheme": "full-integer int8 (TFLITE_BUILTINS_INT8), per-channel weights, int32 biases",
            "io": io, "batch_size": 1, "converter": "tf.lite.TFLiteConverter.from_keras_model"}


# ---------------------------------------------------------------- evaluation through the device runtime


def _evaluate(float_path: Path, int8_path: Path, r: _Run, tmp: Path,
              logits: bool) -> tuple[dict, dict, tuple[str, ...], Any]:
    """Metrics of both models on the test split, via edge.model.load (the runtime the device uses);
    the int8 model's test outputs (logits, features) last, None when it outputs no logits."""
    from edge.model.load import load_model  # noqa: PLC0415
    from edge.ops.calibration import softmax_rows  # noqa: PLC0415
    from train.report.metrics import evaluate_predictions  # noqa: PLC0415
    from train.report.trust import Outputs  # noqa: PLC0415

    with captured():  # the runtime announces its CPU delegate
        fm, qm = load_model(float_path, device="cpu"), load_model(int8_path, device="cpu")
    h, w = qm.spec.height, qm.spec.width
    records = r.splits["test"]
    golden_idx = set(golden_order(records, r.labels))
    y, pf, pq, g_in, g_out, g_ids, skipped = [], [], [], [], [], [], []
    lq, fq = [], []

    def probs(m: Any, raw: np.ndarray) -> np.ndarray:  # uncalibrated: the temperature is fitted after
        return softmax_rows(m.logits(raw)) if logits else m.probabilities(raw)

    for i, rec in enumerate(records):
        try:
            pixels = fit_to_input(load_image(rec.path), h, w)
        except ImageError as e:
            skipped.append(f"{rec.image_id}: {e.message}")
            continue
        raw_f, raw_q = fm.invoke(fm.prepare(pixels)), qm.invoke(qm.prepare(pixels))
        y.append(r.labels.index(rec.label))
        pf.append(probs(fm, raw_f))
        pq.append(probs(qm, raw_q))
        if logits:
            lq.append(qm.logits(raw_q))
            fq.append(qm.features())
        if i in golden_idx:
            g_in.append(pixels)
            g_out.append(raw_q.reshape(-1))
            g_ids.append(rec.image_id)
    if not y or not g_in:
        raise TrainError("No test image could be read." if not y else "None of the golden test images could be read.",
                         "Check --data points at the run's dataset.")
    pf, pq = np.stack(pf), np.stack(pq)
    diff = np.abs(pf - pq)
    metrics = {"split": "test", "test_images": len(y),
               "float": evaluate_predictions(y, pf, r.labels), "int8": evaluate_predictions(y, pq, r.labels),
               "agreement": float(np.mean(pf.argmax(1) == pq.argmax(1))),
               "prob_mean_abs_diff": float(diff.mean()), "prob_max_abs_diff": float(diff.max())}
    golden = write_golden(tmp, np.stack(g_in), np.stack(g_out), g_ids, qm)
    notes = (f"{len(skipped)} test image(s) could not be read and were left out (first: {skipped[0]}).",) \
        if skipped else ()
    test_out = Outputs(np.asarray(y, np.int64), np.stack(lq), np.stack(fq)) if logits and fq[0] is not None else None
    return metrics, golden, notes, test_out


def _gate(metrics: dict, max_drop: float, min_agreement: float, allow: bool) -> Gate:
    drop = metrics["float"]["balanced_accuracy"] - metrics["int8"]["balanced_accuracy"]
    agreement = metrics["agreement"]
    passed = drop <= max_drop + 1e-9 and agreement >= min_agreement - 1e-9
    return Gate(max_drop, min_agreement, round(drop, 6), agreement, passed, overridden=allow and not passed)


def _gate_message(g: Gate) -> str:
    why = []
    if g.bal_acc_drop > g.max_bal_acc_drop + 1e-9:
        why.append(f"balanced accuracy dropped {g.bal_acc_drop * 100:.1f} points (limit "
                   f"{g.max_bal_acc_drop * 100:.1f})")
    if g.agreement < g.min_agreement - 1e-9:
        why.append(f"int8/float top-1 agreement {g.agreement:.1%} (minimum {g.min_agreement:.1%})")
    return "The int8 model fails the quantization gate: " + "; ".join(why) + "."


