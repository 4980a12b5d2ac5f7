"""`edge verify`: the bundle's golden inputs run here must reproduce the stored int8 outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import one_line_error
from typer.testing import CliRunner

runner = CliRunner()


def verify_cli(*args):
    from edge.cli import app

    return runner.invoke(app, ["verify", *map(str, args)])


def rewrite_golden_outputs(bundle: Path, change) -> None:  # noqa: ANN001
    """Change the stored outputs and record the new checksum, as a bundle from another runtime would be."""
    from edge.model.bundle import file_entry, sha256_file

    path = bundle / "golden_outputs.npy"
    outputs = np.load(path)
    np.save(path, change(outputs.copy()), allow_pickle=False)
    meta = json.loads((bundle / "model.json").read_text())
    meta["golden"]["outputs"]["sha256"] = sha256_file(path)
    meta["files"]["golden_outputs.npy"] = file_entry(path)  # listed with every other file
    (bundle / "model.json").write_text(json.dumps(meta))


def test_good_bundle_passes_on_the_cpu(quantized):
    result = verify_cli("--model", quantized["bundle"], "--device", "cpu", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.stdout and "exact" in result.stdout
    assert result.stdout.count("yes") == 8


def test_json_report(quantized):
    from edge.model.verify import verify_bundle

    report = verify_bundle(quantized["bundle"], device="cpu")
    assert report.passed and report.device == "cpu" and report.tolerance_steps == 0
    assert len(report.samples) == 8 and all(s.max_abs_diff == 0 for s in report.samples)
    assert {row["file"] for row in report.checksums} >= {"model.tflite", "model_float.tflite"}
    result = verify_cli("--model", quantized["bundle"], "--device", "cpu", "--json")
    assert json.loads(result.stdout)["passed"] is True


def test_one_step_off_fails_on_the_cpu(bundle):
    def nudge(outputs):
        outputs[3, 0] = outputs[3, 0] + 1 if outputs[3, 0] < 255 else outputs[3, 0] - 1
        return outputs

    rewrite_golden_outputs(bundle, nudge)
    result = verify_cli("--model", bundle, "--device", "cpu")
    assert result.exit_code == 1
    assert "1 of 8 golden outputs differ from the reference (largest difference 1 quantization steps" in result.stderr
    assert "NO" in result.stdout and "FAILED" in result.stdout and "Traceback" not in result.output


def test_changed_top1_fails(bundle):
    rewrite_golden_outputs(bundle, lambda o: o[:, ::-1].copy())
    result = verify_cli("--model", bundle, "--device", "cpu")
    assert result.exit_code == 1 and "top-1 changed on" in result.stderr


@pytest.mark.parametrize("victim", ["golden_outputs.npy", "golden_inputs.npy", "model.tflite", "model_float.tflite"])
def test_checksum_mismatch_fails_without_running(bundle, victim):
    data = bytearray((bundle / victim).read_bytes())
    data[-1] ^= 0xFF
    (bundle / victim).write_bytes(bytes(data))
    result = verify_cli("--model", bundle, "--device", "cpu")
    assert result.exit_code == 1
    assert f"checksum mismatch for {victim}" in result.stderr and "Traceback" not in result.output


def test_missing_golden_file(bundle):
    (bundle / "golden_inputs.npy").unlink()
    result = verify_cli("--model", bundle, "--device", "cpu")
    assert result.exit_code == 1 and "golden_inputs.npy is missing" in result.stderr


def test_bundle_without_golden_data_is_one_line(bundle):
    meta = json.loads((bundle / "model.json").read_text())
    del meta["golden"]
    (bundle / "model.json").write_text(json.dumps(meta))
    line = one_line_error(verify_cli("--model", bundle, "--device", "cpu"))
    assert "no golden inputs" in line and "train quantize" in line


def test_edgetpu_without_libedgetpu_is_a_one_line_diagnosis(quantized):
    from edge.backends.edgetpu import _library_missing, delegate_library

    if not _library_missing(delegate_library()):
        pytest.skip("this machine has the Edge TPU runtime")
    line = one_line_error(verify_cli("--model", quantized["bundle"], "--device", "edgetpu"))
    assert "libedgetpu.so.1" in line and "apt-get install libedgetpu1-std" in line


def test_tolerance_on_the_edge_tpu():
    from edge.model.verify import compare_outputs

    expected = np.array([[10, 200, 30, 16], [100, 103, 20, 32]], np.uint8)
    close = np.array([[12, 198, 30, 16], [101, 102, 20, 32]], np.uint8)
    assert [c.ok for c in compare_outputs(expected, close, 2)] == [True, True]
    assert [c.ok for c in compare_outputs(expected, close, 0)] == [False, False]  # the CPU rule: exact
    far = np.array([[13, 200, 30, 16], [102, 101, 20, 32]], np.uint8)  # 3 steps; top-1 flipped in 2 steps
    checks = compare_outputs(expected, far, 2)
    assert [c.max_abs_diff for c in checks] == [3, 2] and [c.ok for c in checks] == [False, False]
    assert (checks[1].expected_top1, checks[1].actual_top1) == (1, 0)


def test_verify_never_imports_tensorflow(quantized):
    code = ("import sys; from typer.testing import CliRunner; from edge.cli import app; "
            f"r = CliRunner().invoke(app, ['verify', '--model', {str(quantized['bundle'])!r}, '--device', 'cpu']); "
            "assert r.exit_code == 0, r.output; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
            "assert not bad, bad; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_verify_recomputes_the_preprocessing_pixels(quantized):
    """train quantize stores the test cards' pixel hash; verify recomputes it on this device."""
    from edge.ops.preprocess import pixel_probe

    meta = json.loads((quantized["bundle"] / "model.json").read_text())
    h, w = meta["input"]["height"], meta["input"]["width"]
    assert meta["golden"]["pixels_sha256"] == pixel_probe(h, w)
    assert pixel_probe(h, w) != pixel_probe(h + 2, w)  # the probe depends on the input size


def test_other_resize_rounding_fails_verify(bundle, monkeypatch):
    """What OpenCV's SIMD INTER_LINEAR does on ARM (other rounding) must fail verify by name."""
    import cv2

    from edge.model.verify import verify_bundle
    from edge.ops import preprocess

    monkeypatch.setattr(preprocess, "BILINEAR", cv2.INTER_LINEAR)  # not bit-exact across architectures
    report = verify_bundle(bundle, device="cpu", threads=1)
    assert not report.passed
    assert any("preprocessing on this device gives other pixels than on the workstation" in p
               for p in report.problems)


def test_bundle_without_pixel_hash_still_verifies_with_a_note(bundle):
    meta = json.loads((bundle / "model.json").read_text())
    del meta["golden"]["pixels_sha256"]
    (bundle / "model.json").write_text(json.dumps(meta))
    result = verify_cli("--model", bundle, "--device", "cpu", "--threads", "1")
    assert result.exit_code == 0 and "predates the pixel check" in result.stderr


@pytest.mark.parametrize("steps,passes", [(3, True), (5, False)])
def test_another_runtime_gets_the_stated_tolerance(bundle, steps, passes):
    """Outputs from another runtime's int8 kernels: up to 4 steps and the same top-1, with a note."""
    from edge.model.verify import OTHER_RUNTIME_TOLERANCE_STEPS

    def drift(outputs):
        i = outputs[0].argmin()  # a low score: top-1 stays
        outputs[0, i] = outputs[0, i] + steps
        return outputs

    rewrite_golden_outputs(bundle, drift)
    meta = json.loads((bundle / "model.json").read_text())
    meta["golden"]["reference_runtime"] = "tflite-runtime 2.14.0"
    (bundle / "model.json").write_text(json.dumps(meta))
    result = verify_cli("--model", bundle, "--device", "cpu", "--threads", "1")
    assert (result.exit_code == 0) is passes, result.output
    assert OTHER_RUNTIME_TOLERANCE_STEPS == 4 and "the golden outputs come from tflite-runtime 2.14.0" in result.stderr
    assert f"max |diff| <= {OTHER_RUNTIME_TOLERANCE_STEPS} steps, same top-1" in result.stdout


def test_the_same_runtime_on_another_cpu_gets_the_tolerance_too(bundle):
    """XNNPACK's aarch64 int8 kernels are not its x86 ones: exact only on the reference CPU."""
    meta = json.loads((bundle / "model.json").read_text())
    import platform

    assert meta["golden"]["reference_machine"] == platform.machine()
    meta["golden"]["reference_machine"] = "aarch64" if platform.machine() != "aarch64" else "x86_64"
    (bundle / "model.json").write_text(json.dumps(meta))
    result = verify_cli("--model", bundle, "--device", "cpu", "--threads", "1")
    assert result.exit_code == 0 and "max |diff| <= 4 steps, same top-1" in result.stdout
    assert "this is ai-edge-litert" in result.stderr and f"on {platform.machine()}" in result.stderr
