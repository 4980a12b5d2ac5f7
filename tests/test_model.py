"""Loading models and bundles on the device runtime, and every bad model a user can hand us."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import INPUT_HW, LABELS, colour_image

from edge.errors import BundleError, DelegateError, ModelError
from edge.model.bundle import open_bundle
from edge.model.load import load_model
from edge.model.tflite_file import read_tflite


def with_custom_op(src: Path, dest: Path, custom_code: str) -> Path:
    """Copy a model, turning its first CONV_2D into a custom op (as the Edge TPU compiler does)."""
    from tensorflow.lite.tools import flatbuffer_utils as fb

    model = fb.read_model(str(src))
    for code in model.operatorCodes:
        if code.builtinCode == 3:  # CONV_2D
            code.builtinCode = code.deprecatedBuiltinCode = 32  # CUSTOM
            code.customCode = custom_code.encode()
            break
    fb.write_model(model, str(dest))
    return dest


@pytest.fixture(scope="session")
def odd_models(keras_model, tmp_path_factory) -> dict[str, Path]:
    """Models a user might wrongly pass: two inputs, a non-image input, custom ops."""
    import keras
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("odd")
    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    two = keras.Model([a, b], keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Add()([a, b]))))
    vec_in = keras.Input((10,))
    vec = keras.Model(vec_in, keras.layers.Dense(3, activation="softmax")(vec_in))
    paths = {}
    for name, model in (("two_inputs", two), ("vector_input", vec)):
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    float_model = folder / "float.tflite"
    float_model.write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras_model).convert())
    paths["custom"] = with_custom_op(float_model, folder / "custom.tflite", "MyFancyOp")
    paths["edgetpu"] = with_custom_op(float_model, folder / "model_edgetpu.tflite", "edgetpu-custom-op")
    return paths


@pytest.mark.parametrize("variant", ["float", "uint8", "int8"])
def test_all_variants_classify_colours(tflite_models, variant):
    model = load_model(tflite_models[variant], device="cpu", threads=1)
    assert (model.spec.height, model.spec.width) == INPUT_HW
    assert model.labels is None
    for index in range(len(LABELS)):
        result = model.classify(colour_image(LABELS[index], hw=(300, 400), seed=3), k=2)
        assert result.best.index == index and result.best.label == str(index)
        assert result.best.score > 0.6 and np.isclose(result.probabilities.sum(), 1.0, atol=0.02)


def test_bundle_gives_labels_and_same_answers_as_float(bundle_dir):
    int8 = load_model(bundle_dir, device="cpu")
    flt = load_model(bundle_dir / "model_float.tflite", device="cpu")
    assert int8.labels == LABELS == flt.labels
    assert int8.spec.input.dtype == "uint8" and int8.spec.input.quantization.scale == 1.0
    for name in LABELS:
        frame = colour_image(name, seed=11)
        a, b = int8.classify(frame), flt.classify(frame)
        assert a.best.label == b.best.label == name
        assert np.abs(a.probabilities - b.probabilities).max() < 0.05


def test_bundle_meta_describes_the_model(bundle_dir):
    meta = json.loads((bundle_dir / "model.json").read_text())
    assert meta["input"]["height"] == INPUT_HW[0] and meta["input"]["width"] == INPUT_HW[1]
    assert meta["input"]["dtype"] == "uint8" and meta["input"]["color_order"] == "RGB"
    assert meta["input"]["quantization"] == {"scale": 1.0, "zero_point": 0}
    assert meta["num_classes"] == len(LABELS) and meta["labels"] == list(LABELS)
    assert set(meta["files"]) == {"model.tflite", "model_float.tflite", "labels.txt"}  # every file
    assert len(meta["files"]["model.tflite"]["sha256"]) == 64


def test_model_built_once_per_process_not_per_image(bundle_dir, colour_files, monkeypatch):
    from typer.testing import CliRunner

    from edge.cli import app
    from edge.model import load as model_module

    built = []
    real = model_module.make_interpreter
    monkeypatch.setattr(model_module, "make_interpreter", lambda *a: built.append(a[1]) or real(*a))
    result = CliRunner().invoke(app, ["classify", *map(str, colour_files.values()), "--model", str(bundle_dir)])
    assert result.exit_code == 0, result.output
    assert len(built) == 1


@pytest.mark.parametrize("damage,needle", [
    (lambda p: p.write_bytes(b""), "empty or truncated"),
    (lambda p: p.write_bytes(p.read_bytes()[:700]), "damaged or truncated"),
    (lambda p: p.write_text("definitely not a model " * 10), "not a TFLite model"),
])
def test_bad_model_files(tflite_models, tmp_path, damage, needle):
    path = tmp_path / "bad.tflite"
    path.write_bytes(tflite_models["uint8"].read_bytes())
    damage(path)
    with pytest.raises(ModelError, match=needle):
        load_model(path)


def test_missing_model():
    with pytest.raises(BundleError, match="not found"):
        load_model("/nonexistent/model.tflite")


def test_checksum_mismatch(fresh_bundle):
    data = bytearray((fresh_bundle / "model.tflite").read_bytes())
    data[-20] ^= 0xFF
    (fresh_bundle / "model.tflite").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="Checksum mismatch"):
        load_model(fresh_bundle)


def test_label_count_mismatch(fresh_bundle):
    (fresh_bundle / "labels.txt").write_text("red\ngreen\nblue\n")
    with pytest.raises(BundleError, match="3 labels but model.json declares 4"):
        open_bundle(fresh_bundle)


def test_label_count_mismatch_for_bare_model(tflite_models, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    with pytest.raises(BundleError, match="2 labels but .* outputs 4 classes"):
        load_model(tflite_models["uint8"], labels=labels)


def test_missing_label_file(fresh_bundle):
    (fresh_bundle / "labels.txt").unlink()
    with pytest.raises(BundleError, match="Label file not found"):
        load_model(fresh_bundle)


def test_bundle_without_model_json(fresh_bundle):
    (fresh_bundle / "model.json").unlink()
    with pytest.raises(BundleError, match="no model.json"):
        load_model(fresh_bundle)


def test_not_an_image_classifier(odd_models):
    with pytest.raises(ModelError, match="2 inputs"):
        load_model(odd_models["two_inputs"])
    with pytest.raises(ModelError, match=r"input shape \[1, 10\]"):
        load_model(odd_models["vector_input"])


def test_custom_op_the_runtime_lacks(odd_models):
    info = read_tflite(odd_models["custom"])
    assert info.custom_ops == ("MyFancyOp",)
    with pytest.raises(ModelError, match="custom ops .* lacks: MyFancyOp"):
        load_model(odd_models["custom"])


def test_edgetpu_model_without_libedgetpu(odd_models):
    assert read_tflite(odd_models["edgetpu"]).has_edgetpu_op
    with pytest.raises(ModelError, match="compiled for the Edge TPU"):
        load_model(odd_models["edgetpu"], device="cpu")
    with pytest.raises(DelegateError, match="libedgetpu"):
        load_model(odd_models["edgetpu"], device="auto")


def test_edgetpu_device_without_runtime_gives_diagnosis(bundle_dir):
    with pytest.raises(DelegateError) as err:
        load_model(bundle_dir, device="edgetpu")
    line = str(err.value)
    assert "\n" not in line and "libedgetpu" in line and "plugdev" in line and "apt-get install" in line


def test_auto_falls_back_to_cpu_and_says_so(fresh_bundle, odd_models, no_tpu):
    from edge.model.bundle import add_file

    add_file(fresh_bundle, "model_edgetpu.tflite", odd_models["edgetpu"])
    seen = no_tpu
    model = load_model(fresh_bundle, device="auto")
    assert model.device == "cpu" and model.path.name == "model.tflite" and seen == [None]
    assert any("running model.tflite on the CPU" in n for n in model.notes)
    with pytest.raises(DelegateError):
        load_model(fresh_bundle, device="usb:1")
    assert seen[-1] == "usb:1"


@pytest.mark.parametrize("device", ["gpu", "usb:x", "pci:"])
def test_bad_device_strings(bundle_dir, device):
    with pytest.raises(DelegateError, match="device"):
        load_model(bundle_dir, device=device)


def test_edge_never_imports_tensorflow(bundle_dir, colour_files):
    import subprocess

    code = (
        "import sys, edge.cli, edge.model.load, edge.model.info, edge.model.classify\n"
        f"m = edge.model.load.load_model({str(bundle_dir)!r})\n"
        f"list(edge.model.classify.classify_files(m, [__import__('pathlib').Path({str(colour_files['red'])!r})]))\n"
        "edge.model.info.inspect_model(m.path)\n"
        "bad = [k for k in sys.modules if k.split('.')[0] in ('tensorflow', 'keras')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_file_named_explicitly_is_the_file_that_runs(fresh_bundle, no_tpu):
    """Only a bundle folder picks its Edge TPU build; naming model.tflite runs model.tflite."""
    from edge.model.bundle import add_file

    add_file(fresh_bundle, "model_edgetpu.tflite", fresh_bundle / "model.tflite")
    seen = no_tpu
    explicit = load_model(fresh_bundle / "model.tflite", device="auto")
    assert explicit.path.name == "model.tflite" and explicit.device == "cpu"
    assert seen == [] and explicit.notes == ()  # the Edge TPU was never tried, so nothing fell back
    folder = load_model(fresh_bundle, device="auto")
    assert seen == [None] and any("running model.tflite on the CPU" in n for n in folder.notes)


@pytest.mark.parametrize("edit,needle", [
    (lambda m: m.update(files={"../../etc/passwd": {"sha256": "0" * 64}}), "plain file names"),
    (lambda m: m.update(files={"model.tflite": "abc"}), "plain file names"),
    (lambda m: m.update(files=["model.tflite"]), "plain file names"),
    (lambda m: m.update(num_classes="seven"), "whole numbers"),
    (lambda m: m.update(format_version=99), "newer than this edge"),
])
def test_malformed_model_json(fresh_bundle, edit, needle):
    meta = json.loads((fresh_bundle / "model.json").read_text())
    edit(meta)
    (fresh_bundle / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=needle):
        open_bundle(fresh_bundle)


def test_edgetpu_asked_for_a_model_without_edgetpu_ops_runs_and_says_cpu(bundle_dir, monkeypatch):
    """A TPU is present but the bundle has no model_edgetpu.tflite: the delegate would run nothing."""
    from edge.backends import edgetpu

    monkeypatch.setattr(edgetpu, "load_edgetpu_delegate", lambda load, device=None: object())
    m = load_model(bundle_dir, device="edgetpu", threads=1)
    assert m.device == "cpu" and m.path.name == "model.tflite"
    assert any("no Edge TPU ops, so it runs on the CPU" in n and "compile-edgetpu" in n for n in m.notes)


@pytest.mark.parametrize("name,loads,classifier,verdict", [
    ("two_inputs", True, False, "loads on this CPU .*but edge classify/run cannot use it: .*2 inputs"),
    ("vector_input", True, False, "cannot use it: .*input shape \\[1, 10\\]"),
    ("custom", False, None, "this device cannot run it: it uses custom ops that .* lacks: MyFancyOp"),
    ("edgetpu", None, None, "compiled for the Edge TPU: runs only with --device edgetpu"),
])
def test_info_describes_any_tflite_file(odd_models, name, loads, classifier, verdict):
    """`edge info` describes models it cannot classify with, exits 0, and says so on one line."""
    import json
    import re

    from typer.testing import CliRunner

    from edge.cli import app

    result = CliRunner().invoke(app, ["info", str(odd_models[name]), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["loads_on_cpu"] is loads and data["image_classifier"] is classifier
    assert re.search(verdict, data["verdict"]) and data["op_counts"] and data["inputs"]
    text = CliRunner().invoke(app, ["info", str(odd_models[name])])
    assert text.exit_code == 0 and "on this device: " in text.stdout
