"""Prove that this device computes what the workstation computed: the bundle's golden check.

``train quantize`` stores a few preprocessed test images and the int8 model's raw outputs for
them. Here they are run through the bundle with the chosen runtime and delegate and compared:

- exactly on the CPU with the reference runtime on the reference architecture (the ones the
  outputs were computed with): int8 inference is integer arithmetic, so any difference is a
  damaged file or a changed kernel;
- within ``OTHER_RUNTIME_TOLERANCE_STEPS`` and the same top-1 on the CPU with another runtime or
  architecture: tflite-runtime 2.14 runs TFLite's built-in int8 kernels instead of XNNPACK's, and
  XNNPACK's ARM kernels are not its x86 kernels; they round each layer's requantization
  differently, so an output can move by a few steps while the model is the same (LiteRT 2.3.0 on
  emulated aarch64: 1 step on 1 of 8 golden outputs of the demo bundle);
- within ``EDGETPU_TOLERANCE_STEPS`` and the same top-1 on the Edge TPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import BundleError
from edge.model.bundle import checksum_report, open_bundle, sha256_file
from edge.ops.preprocess import Quantization, dequantize

EDGETPU_TOLERANCE_STEPS = 2  # quantization steps of the output
# Other int8 kernels on the CPU (another runtime, or the same LiteRT on another architecture):
# up to 3 steps seen (tflite-runtime 2.14 against LiteRT 2.3 on a demo bundle), never a changed
# top-1; one step more for other models.
OTHER_RUNTIME_TOLERANCE_STEPS = 4
FLOAT_TOLERANCE_STEPS = 255  # the float variant: any difference, the same top-1


@dataclass(frozen=True)
class SampleCheck:
    index: int
    image_id: str
    max_abs_diff: int  # in quantization steps of the output
    expected_top1: int
    actual_top1: int
    ok: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class VerifyReport:
    bundle: Path
    model_file: str
    device: str
    runtime: str
    threads: int
    tolerance_steps: int  # 0 = exact
    checksums: tuple[dict[str, Any], ...]
    samples: tuple[SampleCheck, ...]
    problems: tuple[str, ...]
    notes: tuple[str, ...] = ()
    labels: tuple[str, ...] | None = None

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle), "model_file": self.model_file, "device": self.device,
                "runtime": self.runtime, "threads": self.threads,
                "tolerance": "exact" if self.tolerance_steps == 0 else
                f"max |diff| <= {self.tolerance_steps} steps, same top-1",
                "checksums": list(self.checksums), "samples": [s.as_dict() for s in self.samples],
                "passed": self.passed, "problems": list(self.problems), "notes": list(self.notes)}


def compare_outputs(expected: np.ndarray, actual: np.ndarray, tolerance_steps: int,
                    image_ids: list[str] | None = None) -> list[SampleCheck]:
    """Per golden sample: the largest difference and whether top-1 agrees.

    Exact (tolerance 0): every value must be equal. With a tolerance, values may differ by that
    many steps and the top-1 class must still be the same.
    """
    checks = []
    for i, (e, a) in enumerate(zip(expected.astype(np.int64), actual.astype(np.int64))):
        diff = int(np.abs(e - a).max())
        e1, a1 = int(np.argmax(e)), int(np.argmax(a))
        ok = diff <= tolerance_steps and e1 == a1
        ids = image_ids or []
        checks.append(SampleCheck(i, ids[i] if i < len(ids) else str(i), diff, e1, a1, ok))
    return checks


def _golden_entries(root: Path, meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    golden = meta.get("golden")
    if not isinstance(golden, dict) or not all(isinstance(golden.get(k), dict) for k in ("inputs", "outputs")):
        raise BundleError(f"{root} has no golden inputs in model.json.",
                          "Re-create the bundle with `train quantize` (it stores them).")
    for entry in (golden["inputs"], golden["outputs"]):
        name = entry.get("file")
        if not isinstance(name, str) or name != Path(name).name or name in ("", ".", ".."):
            raise BundleError(f"{root / 'model.json'}: the golden file {name!r} is not a plain file name in the "
                              "bundle (paths outside it are never read).", "Copy the bundle again.")
    return golden["inputs"], golden["outputs"]


def _checksum_row(root: Path, entry: dict[str, Any]) -> dict[str, Any]:
    path = root / str(entry.get("file"))
    link = path.is_symlink()
    actual = sha256_file(path) if path.is_file() and not link else None
    return {"file": str(entry.get("file")), "expected": entry.get("sha256"), "actual": actual, "symlink": link,
            "ok": actual is not None and actual == entry.get("sha256")}


def _load(path: Path, problems: list[str]) -> np.ndarray | None:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        problems.append(f"{path.name} is not a readable .npy file ({e})")
        return None


def verify_bundle(path: str | Path, *, device: str = "auto", threads: int | None = None,
                  variant: str | None = None, trusted: tuple[Any, ...] = ()) -> VerifyReport:
    """Check the bundle's checksums, then run its golden inputs and compare with the stored outputs.

    ``variant`` checks another of the bundle's files (``edge.model.variants``) against the same
    golden outputs: int8io exactly (its outputs are model.tflite's shifted by 128), float by top-1.
    """
    from edge.model.load import load_model  # noqa: PLC0415
    from edge.model.signing import check_trusted  # noqa: PLC0415

    bundle = open_bundle(path, verify=False)
    check_trusted(bundle.root, tuple(trusted), str(path))  # with trusted keys: signed by one, or refused
    if bundle.root is None:
        raise BundleError(f"{path} is a bare .tflite file: it has no golden outputs to check.",
                          "Pass the bundle folder written by `train quantize`.")
    golden_in, golden_out = _golden_entries(bundle.root, bundle.meta)
    listed = bundle.meta.get("files") or {}
    checksums = (*checksum_report(bundle), *(_checksum_row(bundle.root, g) for g in (golden_in, golden_out)
                                             if g.get("file") not in listed))
    problems = [f"{row['file']} is a symbolic link (never followed)" if row.get("symlink") else
                f"{row['file']} is missing" if row["actual"] is None else f"checksum mismatch for {row['file']}"
                for row in checksums if not row["ok"]]
    if bundle.model_path.name not in listed:
        problems.append(f"model.json does not list {bundle.model_path.name}: no checksum covers it")
    if not problems:
        inputs = _load(bundle.root / golden_in["file"], problems)
        expected = _load(bundle.root / golden_out["file"], problems)
    if problems:  # never run damaged files
        return VerifyReport(bundle.root, "-", device, "-", threads or 0, 0, checksums, (), tuple(problems),
                            labels=bundle.labels)
    model = load_model(bundle.root, device=device, threads=threads, variant=variant, trusted=tuple(trusted))
    runtime = f"{model.runtime.name} {model.runtime.version}"
    golden = bundle.meta["golden"]
    tolerance, why = tolerance_for(model.device, runtime, golden.get("reference_runtime"),
                                   golden.get("reference_machine"))
    if model.spec.output.dtype == "float32":
        tolerance, why = FLOAT_TOLERANCE_STEPS, ("the float model is the reference int8 was gated against, not its "
                                                 "copy: the same top-1 on every golden input is required")
    samples, problems = _run_golden(model, inputs, expected, list(golden.get("image_ids") or []), tolerance,
                                    _golden_quantization(bundle.meta))
    if any(not s.ok for s in samples):
        problems[-1] += f"; reference runtime {golden.get('reference_runtime', '?')}, here {runtime}"
    pixel_problem, pixel_note = _check_pixels(golden, model.spec.height, model.spec.width)
    problems += [pixel_problem] if pixel_problem else []
    notes = (*model.notes, *([why] if why else []), *([pixel_note] if pixel_note else []))
    return VerifyReport(bundle.root, model.path.name, model.device, runtime, model.threads, tolerance, checksums,
                        samples, tuple(problems), notes=notes, labels=bundle.labels)


def tolerance_for(device: str, runtime: str, reference: str | None, reference_machine: str | None = None,
                  machine: str | None = None) -> tuple[int, str | None]:
    """(allowed difference in output steps, why it is not exact) for this device, runtime and CPU."""
    import platform  # noqa: PLC0415

    if device != "cpu":
        return EDGETPU_TOLERANCE_STEPS, None
    machine = machine or platform.machine()
    here, there = f"{runtime} on {machine}", f"{reference} on {reference_machine or 'an unrecorded CPU'}"
    if reference is None or (reference == runtime and reference_machine == machine):
        return 0, None
    return OTHER_RUNTIME_TOLERANCE_STEPS, (
        f"the golden outputs come from {there}, this is {here}: other int8 kernels may round "
        f"differently, so up to {OTHER_RUNTIME_TOLERANCE_STEPS} steps and the same top-1 are allowed "
        "(exact with the reference runtime on the reference CPU)")


def _check_pixels(golden: dict[str, Any], height: int, width: int) -> tuple[str | None, str | None]:
    """(problem, note): does this device's preprocessing give the workstation's pixels, bit for bit?"""
    from edge.ops.preprocess import pixel_probe  # noqa: PLC0415

    expected = golden.get("pixels_sha256")
    if not isinstance(expected, str):
        return None, "this bundle predates the pixel check: preprocessing was not compared (re-quantize to add it)"
    actual = pixel_probe(height, width)
    if actual != expected:
        return (f"preprocessing on this device gives other pixels than on the workstation (test cards "
                f"{actual[:12]}…, expected {expected[:12]}…): OpenCV here resizes differently; install the "
                "OpenCV the bundle was made with"), None
    return None, None


def _golden_quantization(meta: dict[str, Any]) -> Quantization | None:
    """The output quantization of model.tflite, whose raw outputs the golden file holds."""
    q = (meta.get("output") or {}).get("quantization")
    try:
        return Quantization(float(q["scale"]), int(q["zero_point"])) if isinstance(q, dict) else None
    except (KeyError, TypeError, ValueError):
        return None


def _in_golden_steps(actual: np.ndarray, out: Quantization, golden: Quantization) -> np.ndarray:
    """Another variant's raw outputs (quantized by ``out``) in the golden file's integer steps."""
    if out.is_quantized and out.scale == golden.scale:  # int8io: the same steps, zero point moved
        return actual.astype(np.int64) - out.zero_point + golden.zero_point
    real = dequantize(actual, out)
    return np.round(real / golden.scale).astype(np.int64) + golden.zero_point


def _run_golden(model: Any, inputs: np.ndarray, expected: np.ndarray, ids: list[str],
                tolerance: int, golden_q: Quantization | None = None) -> tuple[tuple[SampleCheck, ...], list[str]]:
    spec, problems = model.spec, []
    # another variant than model.tflite: its outputs are compared in the golden file's steps
    other = golden_q is not None and golden_q.is_quantized and golden_q != spec.output.quantization
    want_dtype = expected.dtype.name if other else spec.output.dtype
    n = inputs.shape[0] if inputs.ndim else 0
    want = (n, spec.height, spec.width, 3)
    if n == 0 or inputs.shape != want or inputs.dtype != np.uint8:
        problems.append(f"golden inputs are {inputs.dtype}{list(inputs.shape)}, not uint8{list(want)}")
    if expected.shape != (n, spec.num_classes) or expected.dtype.name != want_dtype:
        problems.append(f"golden outputs are {expected.dtype}{list(expected.shape)}, not "
                        f"{want_dtype}[{n}, {spec.num_classes}]")
    if problems:
        return (), problems
    actual = np.stack([model.invoke(model.prepare(img)).reshape(-1) for img in inputs])
    if other:
        actual = _in_golden_steps(actual, spec.output.quantization, golden_q)
    samples = tuple(compare_outputs(expected, actual, tolerance, ids))
    bad = [s for s in samples if not s.ok]
    if bad:
        rule = "exact" if tolerance == 0 else f"{tolerance} steps, same top-1"
        problems.append(f"{len(bad)} of {len(samples)} golden outputs differ from the reference (largest "
                        f"difference {max(s.max_abs_diff for s in bad)} quantization steps, top-1 changed on "
                        f"{sum(s.expected_top1 != s.actual_top1 for s in bad)}; allowed: {rule})")
    return samples, problems
