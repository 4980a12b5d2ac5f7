"""A bundle's variants: the int8-I/O copy `train quantize` writes, `edge verify --variant`, and the
fastest correct variant `edge benchmark --all-variants` records for `--variant fastest`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from conftest import colour_image
from typer.testing import CliRunner

from edge.cli import app
from edge.model.bundle import open_bundle
from edge.model.load import load_model
from edge.model.variants import record_fastest, recorded_fastest

runner = CliRunner()


def edge(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_quantize_writes_an_int8_io_copy_with_the_same_numbers(quantized):
    root = quantized["bundle"]
    meta = json.loads((root / "model.json").read_text())
    assert "model_int8io.tflite" in meta["files"]  # listed and hashed like every model file
    assert meta["variants"]["int8io"]["same_outputs_as"] == "model.tflite"
    u8, i8 = load_model(root, device="cpu"), load_model(root, device="cpu", variant="int8io")
    assert (u8.variant, i8.variant) == ("int8", "int8io")
    # what a capture records names the file that ran
    assert i8.bundle.model_id["file"] == "model_int8io.tflite"
    assert i8.bundle.model_id["sha256"] == meta["files"]["model_int8io.tflite"]["sha256"]
    assert u8.bundle.model_id["file"] == "model.tflite"
    assert i8.spec.input.dtype == "int8" and i8.spec.output.dtype == "int8"
    assert "QUANTIZE" in u8.graph.op_counts and "QUANTIZE" not in i8.graph.op_counts
    for seed in range(4):
        img = colour_image(("red", "green", "blue", "yellow")[seed], (200, 260), seed=seed)
        a = u8.invoke(u8.prepare(img)).astype(np.int64)
        b = i8.invoke(i8.prepare(img)).astype(np.int64) + 128
        assert np.array_equal(a, b)
        assert np.array_equal(u8.probabilities(u8.invoke(u8.prepare(img))), i8.probabilities(i8.invoke(i8.prepare(img))))


def _other_int8_model(tmp_path: Path) -> Path:
    import keras
    from conftest import INPUT_HW, _convert

    keras.utils.set_random_seed(5)
    inp = keras.Input((*INPUT_HW, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    out = keras.layers.Dense(4, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    path = tmp_path / "other.tflite"
    path.write_bytes(_convert(keras.Model(inp, out), "int8"))
    return path


def test_verify_checks_each_variant_against_the_same_golden_outputs(bundle, tmp_path):
    for variant in ("int8io", "float"):
        result = edge("verify", "--model", bundle, "--device", "cpu", "--variant", variant)
        assert result.exit_code == 0, result.output
        assert "PASSED" in result.output and ("model_int8io.tflite" if variant == "int8io" else "model_float.tflite") \
            in result.output
    # a copy that computes other numbers fails its check, even with a matching checksum
    from edge.model.bundle import add_file

    add_file(bundle, "model_int8io.tflite", _other_int8_model(tmp_path))  # same shapes, other weights
    result = edge("verify", "--model", bundle, "--device", "cpu", "--variant", "int8io")
    assert result.exit_code == 1 and "golden outputs differ from the reference" in result.output
    result = edge("verify", "--model", bundle, "--device", "cpu", "--variant", "edgetpu")
    assert result.exit_code == 1 and "no model_edgetpu.tflite (edgetpu variant)" in result.output
    result = edge("verify", "--model", bundle, "--variant", "fast")
    assert result.exit_code != 0 and "Unknown variant 'fast'" in result.output


def test_benchmark_records_the_fastest_correct_variant_and_fastest_runs_it(bundle, colour_files, tmp_path):
    state = Path(os.environ["STATE_DIRECTORY"])
    # nothing measured yet: fastest says so and runs model.tflite
    result = edge("classify", colour_files["red"], "--model", bundle, "--device", "cpu", "--variant", "fastest")
    assert result.exit_code == 0, result.output
    assert "no variant was measured for this bundle" in result.output and "edge benchmark" in result.output
    result = edge("benchmark", "--model", bundle, "--device", "cpu", "--all-variants", "--runs", 20, "--threads", 1)
    assert result.exit_code == 0, result.output
    record = json.loads((state / "variants.json").read_text())
    (entry,) = record["bundles"].values()
    (measured,) = entry["measured"].values()
    times = measured["p50_ms"]
    assert set(times) == {"float", "int8", "int8io"} and measured["threads"] == 1
    assert measured["fastest"] == min(times, key=times.get)
    assert f"fastest: bundle:{measured['fastest']}" in result.output and "--variant fastest" in result.output
    result = edge("classify", colour_files["red"], "--model", bundle, "--device", "cpu", "--variant", "fastest",
                  "--threads", 1, "--json")
    assert result.exit_code == 0, result.output
    assert f"variant {measured['fastest']} (" in result.output and "the fastest measured on this device" in result.output


def test_an_ineligible_variant_is_never_recorded_as_fastest(bundle):
    b = open_bundle(bundle, verify=False)
    rows = [{"variant": "int8io", "p50_ms": 0.1, "eligible": False, "why": "golden outputs differ"},
            {"variant": "int8", "p50_ms": 0.3, "eligible": True, "why": None}]
    path, best = record_fastest(b, rows, runtime="rt 1", threads=2, device="cpu")
    assert best == "int8"
    rec = recorded_fastest(b, runtime="rt 1", threads=2, device="cpu")
    assert rec["fastest"] == "int8" and rec["not_eligible"] == {"int8io": "golden outputs differ"}
    assert recorded_fastest(b, runtime="rt 2", threads=2, device="cpu") is None  # another runtime: measure again
    assert recorded_fastest(b, runtime="rt 1", threads=4, device="auto")["fastest"] == "int8"  # closest record
    assert record_fastest(b, rows[:1], runtime="rt 1", threads=2, device="cpu") is None
    (bundle / "model.json").write_text((bundle / "model.json").read_text().replace('"name"', '"name" ', 1))
    assert recorded_fastest(open_bundle(bundle, verify=False), runtime="rt 1", threads=2, device="cpu") is None
    path.write_text("{not json")  # a damaged record is no record, never a crash
    assert recorded_fastest(b, runtime="rt 1", threads=2, device="cpu") is None


def test_variant_in_the_config_and_for_a_bare_file(bundle, tmp_path, colour_files):
    cfg = tmp_path / "edge.toml"
    cfg.write_text('variant = "int8io"\n')
    result = edge("classify", colour_files["blue"], "--model", bundle, "--device", "cpu", "--config", cfg)
    assert result.exit_code == 0, result.output
    cfg.write_text('variant = "fast"\n')
    result = edge("classify", colour_files["blue"], "--model", bundle, "--config", cfg)
    assert result.exit_code != 0 and "not a variant" in result.output
    result = edge("classify", colour_files["blue"], "--model", bundle / "model.tflite", "--variant", "int8io")
    assert result.exit_code != 0 and "needs a bundle folder" in result.output
