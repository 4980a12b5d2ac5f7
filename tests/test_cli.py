"""`edge info` and `edge classify` through the real CLI, including every bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import LABELS, colour_image
from typer.testing import CliRunner

from edge.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, needle: str) -> str:
    assert result.exit_code == 1, result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and needle in err, err
    assert "Traceback" not in result.output and len(err.splitlines()) == 1
    return err


def test_help_is_fast_and_light():
    code = ("import sys, edge.cli\n"
            "heavy = [m for m in ('numpy', 'cv2', 'ai_edge_litert', 'tensorflow', 'PIL') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-m", "edge", "--help"], capture_output=True, text=True, check=True)
    for command in ("info", "classify"):
        assert command in out.stdout


def test_info_bundle_json(bundle_dir):
    result = invoke("info", bundle_dir, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["labels"] == list(LABELS) and data["checksums_ok"] is True
    assert data["inputs"][0]["dtype"] == "uint8" and data["inputs"][0]["quantization"]["scale"] == 1.0
    assert data["outputs"][0]["shape"] == [1, len(LABELS)]
    assert data["op_counts"]["CONV_2D"] == 1 and data["edgetpu_custom_op"] is False
    assert data["runtime"].startswith("ai-edge-litert") and data["loads_on_cpu"] is True
    assert data["mac_count"] > 0


def test_info_table(bundle_dir):
    result = invoke("info", bundle_dir)
    assert result.exit_code == 0
    for needle in ("uint8", "CONV_2D", "labels: red, green, blue, yellow", "checksum model.tflite: ok",
                   "Edge TPU custom op: no"):
        assert needle in result.stdout, needle


def test_info_reports_checksum_mismatch(fresh_bundle):
    with open(fresh_bundle / "model_float.tflite", "ab") as f:
        f.write(b"\0")
    result = invoke("info", fresh_bundle)
    assert result.exit_code == 1 and "MISMATCH" in result.stdout


def test_classify_json(bundle_dir, colour_files):
    result = invoke("classify", *colour_files.values(), "--model", bundle_dir, "--top-k", "2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["device"] == "cpu" and "Not a medical diagnosis" in data["disclaimer"]
    tops = [r["top_k"][0]["label"] for r in data["results"]]
    assert tops == list(colour_files)  # each colour recognised, order kept
    status = {r["image"].rsplit("/", 1)[-1]: (r["status"], r["reasons"], r["label"]) for r in data["results"]}
    assert status["blue.jpg"] == ("ok", [], "blue") and status["red.jpg"] == ("ok", [], "red")
    first = data["results"][0]
    assert len(first["top_k"]) == 2 and first["time_ms"] > 0 and 0 < first["score"] <= 1
    assert first["quality"]["brightness"] > 60 and first["quality"]["sharpness"] > 8


def test_classify_bad_image_does_not_stop_the_others(bundle_dir, colour_files, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(colour_files["red"].read_bytes()[:300])
    text = tmp_path / "notes.png"
    text.write_text("hello")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    files = [colour_files["red"], corrupt, text, empty, tmp_path / "missing.jpg", colour_files["green"]]
    result = invoke("classify", *files, "--model", bundle_dir)
    assert result.exit_code == 1
    assert f"{colour_files['red']}: red" in result.stdout and f"{colour_files['green']}: green" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 4 and "truncated" in errors[0] and "not an image" in errors[1]
    assert "empty" in errors[2] and "no such file" in errors[3]
    assert "4 of 6 images failed" in result.stderr and "Traceback" not in result.output


def test_classify_bare_model_reports_indices(tflite_models, colour_files):
    result = invoke("classify", colour_files["green"], "--model", tflite_models["int8"], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["label"] == str(LABELS.index("green"))


@pytest.mark.parametrize("make,needle", [
    (lambda p: p.write_bytes(b""), "empty or truncated"),
    (lambda p: p.write_text("#!/bin/sh\necho not a model\n" * 3), "not a TFLite model"),
])
def test_classify_bad_model_one_line(tmp_path, colour_files, make, needle):
    model = tmp_path / "m.tflite"
    make(model)
    assert_one_line_error(invoke("classify", colour_files["red"], "--model", model), needle)


def test_missing_model_and_bad_device(bundle_dir, colour_files):
    assert_one_line_error(invoke("info", "/nonexistent/x.tflite"), "Model not found")
    assert_one_line_error(invoke("classify", colour_files["red"], "--model", bundle_dir, "--device", "edgetpu"),
                          "libedgetpu")
    assert_one_line_error(invoke("classify", colour_files["red"], "--model", bundle_dir, "--device", "tpu9"),
                          "Unknown device")


def test_checksum_mismatch_refuses_to_classify(fresh_bundle, colour_files):
    with open(fresh_bundle / "model.tflite", "ab") as f:
        f.write(b"\0")
    assert_one_line_error(invoke("classify", colour_files["red"], "--model", fresh_bundle), "Checksum mismatch")


def test_console_script_runs(bundle_dir, colour_files):
    exe = subprocess.run([sys.executable, "-m", "edge", "classify", str(colour_files["yellow"]), "--model",
                          str(bundle_dir)], capture_output=True, text=True)
    assert exe.returncode == 0 and ": yellow" in exe.stdout


def test_classify_image_too_small_for_the_model_fails_alone(bundle_dir, colour_files, tmp_path):
    import cv2
    import numpy as np

    tiny = tmp_path / "tiny.png"
    cv2.imwrite(str(tiny), np.full((1, 1, 3), 200, np.uint8))  # decodes, but cannot be cropped and resized
    result = invoke("classify", tiny, colour_files["green"], "--model", bundle_dir)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{colour_files['green']}: green" in result.stdout  # the image after it still ran
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {tiny}: image too small (1x1)"]
    assert "1 of 2 images failed" in result.stderr


def test_classify_never_labels_a_black_blown_out_blurred_or_tiny_image(bundle_dir, colour_files, tmp_path):
    import cv2
    import numpy as np

    red = colour_image("red", (240, 320), seed=3)
    cases = {"black.png": np.zeros((240, 320, 3), np.uint8), "white.png": np.full((240, 320, 3), 255, np.uint8),
             "blurred.png": cv2.GaussianBlur(red, (0, 0), 12), "small.png": red[:16, :16],
             "five.png": red[:5, :5]}
    for name, img in cases.items():
        cv2.imwrite(str(tmp_path / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    result = invoke("classify", *(tmp_path / n for n in cases), "--model", bundle_dir, "--json")
    assert result.exit_code == 1  # the 5x5 image cannot be classified at all
    rows = {r["image"].rsplit("/", 1)[-1]: r for r in json.loads(result.stdout)["results"]}
    assert rows["five.png"]["status"] == "error" and rows["five.png"]["reasons"] == [f"{tmp_path / 'five.png'}: image too small (5x5)"]
    for name, reason in [("black.png", "too dark"), ("white.png", "too bright"), ("blurred.png", "too blurry"),
                         ("small.png", "too small")]:
        r = rows[name]
        assert r["status"] == "uncertain" and reason in r["reasons"] and r["label"] is None, r
    text = invoke("classify", tmp_path / "black.png", "--model", bundle_dir)
    assert text.exit_code == 0 and f"{tmp_path / 'black.png'}: uncertain (too dark" in text.stdout


def test_classify_applies_the_daemons_config(bundle_dir, colour_files, tmp_path):
    """The [quality] limits and threshold of edge run's config hold for photos too; a flag overrides."""
    cfg = tmp_path / "edge.toml"
    cfg.write_text("threshold = 0.2\n[quality]\nmin_brightness = 100\n")  # the red photo's is about 84
    result = invoke("classify", colour_files["red"], "--model", bundle_dir, "--config", cfg, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["reasons"] == ["too dark"]
    cfg.write_text("threshold = 0.9999\n")
    strict = json.loads(invoke("classify", colour_files["red"], "--model", bundle_dir, "--config", cfg,
                               "--json").stdout)["results"][0]
    assert strict["status"] == "uncertain" and strict["reasons"] == ["low confidence"]
    flag = json.loads(invoke("classify", colour_files["red"], "--model", bundle_dir, "--config", cfg,
                             "--threshold", "0.5", "--json").stdout)["results"][0]
    assert flag["status"] == "ok"
    cfg.write_text("[quality]\nmin_sharpnes = 3\n")
    bad = invoke("classify", colour_files["red"], "--model", bundle_dir, "--config", cfg)
    assert bad.exit_code == 1 and "unknown key 'quality.min_sharpnes'" in bad.stderr


def test_classify_shows_the_full_disclaimer(bundle_dir, colour_files):
    from edge import DISCLAIMER

    result = invoke("classify", colour_files["red"], "--model", bundle_dir, "--json")
    assert json.loads(result.stdout)["disclaimer"] == DISCLAIMER
    assert DISCLAIMER in invoke("classify", colour_files["red"], "--model", bundle_dir).stderr


def test_info_failures_end_with_one_error_line(fresh_bundle, tflite_models, tmp_path):
    with open(fresh_bundle / "model_float.tflite", "ab") as f:
        f.write(b"\0")
    line = assert_one_line_error(invoke("info", fresh_bundle, "--json"), "checksum mismatch")
    assert "model_float.tflite" in line and "model.tflite," not in line
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    result = invoke("info", tflite_models["uint8"], "--labels", labels)
    assert "2 labels do not fit tiny_uint8.tflite, which outputs 4 classes" in " ".join(result.stdout.split())
    assert_one_line_error(result, "2 labels but tiny_uint8.tflite outputs 4 classes")


def test_flags_show_no_value_in_help():
    """--json, --force, --wide take no value: their help rows must not read `<bool>`."""
    from edge.cli import app as edge_app
    from train.cli import app as train_app

    for cli, names in ((edge_app, ("info", "classify", "verify", "benchmark", "run", "doctor", "install-service")),
                       (train_app, ("fit", "quantize", "evaluate", "sample-data"))):
        for name in names:
            result = CliRunner().invoke(cli, [name, "--help"])
            assert result.exit_code == 0 and "--help" in result.stdout
            assert "<bool>" not in result.stdout, name
