"""`train quantize`: calibration set, real int8 conversion, the gate and the bundle it writes.

A tiny run folder is made from real JPEGs (four colour classes in class folders) and the
conftest colour CNN; the conversions are real TensorFlow Lite conversions.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import INPUT_HW, LABELS
from helpers import CALIBRATION_SIZE, one_line_error, write_run
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture()
def run_copy(quantized, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(quantized["run"], dest)
    return dest


def train_quantize(*args: str):
    from train.cli import app

    return runner.invoke(app, ["quantize", *map(str, args)])


# ---------------------------------------------------------------- the bundle


def test_int8_model_is_integer_only_with_raw_pixel_input(quantized):
    from edge.model.tflite_file import read_tflite

    g = read_tflite(quantized["bundle"] / "model.tflite")
    inp, out = g.tensors[g.inputs[0]], g.tensors[g.outputs[0]]
    assert (inp.dtype, inp.scale, inp.zero_point) == ("uint8", 1.0, 0)  # exactly: raw camera pixels
    assert inp.shape == (1, *INPUT_HW, 3)  # static batch size 1
    assert out.dtype == "uint8"
    inner = [t.dtype for i, t in enumerate(g.tensors) if i not in (g.inputs[0], *g.outputs)]
    assert {g.tensors[i].dtype for i in g.outputs} == {"uint8"}  # logits, maps and features alike
    assert set(inner) <= {"int8", "int32"} and "int8" in inner
    assert "DEQUANTIZE" not in g.op_counts and not g.custom_ops
    assert read_tflite(quantized["bundle"] / "model_float.tflite").tensors[0].dtype == "float32"


def test_model_json_holds_gate_figures_provenance_and_golden(quantized):
    from edge.model.bundle import open_bundle, sha256_file

    bundle = open_bundle(quantized["bundle"])  # checksums and labels verified
    meta = bundle.meta
    m = meta["metrics"]
    for kind in ("float", "int8"):
        assert {"accuracy", "balanced_accuracy", "melanoma_recall"} <= set(m[kind])
    assert m["int8"]["balanced_accuracy"] > 0.9  # it really learnt the colours, and int8 kept it
    assert m["agreement"] >= 0.97 and 0 <= m["prob_mean_abs_diff"] <= m["prob_max_abs_diff"] < 0.1
    assert m["gate"] == {"thresholds": {"max_bal_acc_drop": 0.01, "min_agreement": 0.97},
                         "bal_acc_drop": m["gate"]["bal_acc_drop"], "agreement": m["agreement"],
                         "passed": True, "overridden": False}
    assert meta["provenance"]["run"] == str(quantized["run"].resolve())
    assert meta["provenance"]["versions"]["tensorflow"] and meta["provenance"]["versions"]["keras"]
    assert meta["calibration"]["size"] == CALIBRATION_SIZE
    assert set(meta["conversion_seconds"]) == {"float", "int8", "int8io", "trust"}
    assert meta["input"]["quantization"] == {"scale": 1.0, "zero_point": 0}
    golden = meta["golden"]
    for key, dtype in (("inputs", np.uint8), ("outputs", np.uint8)):
        path = quantized["bundle"] / golden[key]["file"]
        assert sha256_file(path) == golden[key]["sha256"]
        assert np.load(path).dtype == dtype
    inputs = np.load(quantized["bundle"] / golden["inputs"]["file"])
    assert inputs.shape == (8, *INPUT_HW, 3)
    assert len(set(golden["image_ids"])) == 8


def test_golden_outputs_are_what_the_int8_model_computes(quantized):
    from edge.model.load import load_model

    model = load_model(quantized["bundle"], device="cpu", threads=1)
    inputs = np.load(quantized["bundle"] / "golden_inputs.npy")
    outputs = np.load(quantized["bundle"] / "golden_outputs.npy")
    for img, expected in zip(inputs, outputs):
        np.testing.assert_array_equal(model.invoke(model.prepare(img)).reshape(-1), expected)


def test_result_reports_sizes_and_calibration(quantized):
    r = quantized["result"]
    assert r.bundle == quantized["bundle"] and r.gate.passed
    assert r.int8_size_bytes > 0 and r.float_size_bytes > 0  # (a model this tiny is all overhead)
    assert any("under 100" in w for w in r.warnings)


# ---------------------------------------------------------------- calibration set


def test_calibration_set_is_stored_from_the_training_split(quantized):
    from edge.ops.image import load_image
    from edge.ops.preprocess import fit_to_input

    sets = [p for p in quantized["calibration"].iterdir() if not p.name.startswith(".")]
    assert len(sets) == 1
    manifest = json.loads((sets[0] / "manifest.json").read_text())
    with open(quantized["run"] / "split.csv", newline="") as f:
        split = {row["image_id"]: row["split"] for row in csv.DictReader(f)}
    assert all(split[i] == "train" for i in manifest["image_ids"])
    assert manifest["size"] == CALIBRATION_SIZE == len(manifest["image_ids"])
    assert manifest["per_class"] == {c: 6 for c in LABELS}  # 8 training images per class, stratified
    assert manifest["input_size"] == list(INPUT_HW) and manifest["seed"] == 0
    assert manifest["source_run"] == str(quantized["run"].resolve())
    images = np.load(sets[0] / "images.npy")
    assert images.shape == (CALIBRATION_SIZE, *INPUT_HW, 3) and images.dtype == np.uint8
    first = quantized["data"] / manifest["image_labels"][0] / f"{manifest['image_ids'][0]}.jpg"
    np.testing.assert_array_equal(images[0], fit_to_input(load_image(first), *INPUT_HW))
    from edge.model.bundle import sha256_file

    assert sha256_file(sets[0] / "images.npy") == manifest["array_sha256"]


def test_calibration_set_is_reused_and_seeded(quantized):
    from edge.data.datasets import load_dataset, read_split_csv
    from train.data.calibration import prepare_calibration

    train = read_split_csv(quantized["run"] / "split.csv", load_dataset(quantized["data"]))["train"]
    kw = dict(run=quantized["run"], labels=LABELS, input_hw=INPUT_HW, dataset_root=quantized["data"],
              size=CALIBRATION_SIZE, directory=quantized["calibration"])
    again = prepare_calibration(train, seed=0, **kw)
    assert again.reused
    other = prepare_calibration(train, seed=1, **kw)
    assert not other.reused and other.root != again.root
    assert other.manifest["image_ids"] != again.manifest["image_ids"]
    assert prepare_calibration(train, seed=1, **kw).reused
    images = np.load(other.array_path)
    images[0] ^= 1  # as if the preprocessing code had changed since the set was built
    np.save(other.array_path, images)
    manifest = json.loads((other.root / "manifest.json").read_text())
    from edge.model.bundle import sha256_file

    manifest["array_sha256"] = sha256_file(other.array_path)
    (other.root / "manifest.json").write_text(json.dumps(manifest))
    rebuilt = prepare_calibration(train, seed=1, **kw)
    assert not rebuilt.reused and rebuilt.manifest["array_sha256"] != manifest["array_sha256"]
    shutil.rmtree(other.root)


def test_calibration_sample_feeds_the_full_pixel_range(quantized):
    from edge.data.datasets import load_dataset, read_split_csv
    from train.data.calibration import prepare_calibration

    train = read_split_csv(quantized["run"] / "split.csv", load_dataset(quantized["data"]))["train"]
    cal = prepare_calibration(train, run=quantized["run"], labels=LABELS, input_hw=INPUT_HW,
                              dataset_root=quantized["data"], size=CALIBRATION_SIZE, seed=0,
                              directory=quantized["calibration"])
    samples = list(cal.samples())
    assert len(samples) == CALIBRATION_SIZE and samples[0].shape == (1, *INPUT_HW, 3)
    assert samples[0].dtype == np.float32 and samples[0].min() == 0 and samples[0].max() == 255


def test_allocation_keeps_rare_classes():
    from train.data.calibration import allocate

    counts = allocate({"nv": 670, "mel": 111, "df": 11, "vasc": 14}, 100)
    assert sum(counts.values()) == 100
    assert counts["df"] == 11 and counts["vasc"] == 12  # every rare image, at least its equal share
    assert counts["nv"] > counts["mel"] > counts["vasc"]
    assert allocate({"a": 3, "b": 30}, 300) == {"a": 3, "b": 30}  # fewer images than asked: all of them


def _records(counts: dict[str, int]):
    from edge.data.datasets import Record

    return [Record(f"{c}_{i}", f"L{c}{i}", c, Path(f"/nowhere/{c}_{i}.jpg"))
            for c, n in counts.items() for i in range(n)]


@pytest.mark.parametrize(("counts", "size", "message"), [
    ({"red": 10, "green": 10, "blue": 10, "yellow": 0}, 24, "yellow have no images in the training split"),
    ({"red": 3, "green": 3, "blue": 3, "yellow": 3}, 24, "holds only 12 images"),
    ({"red": 10, "green": 10, "blue": 10, "yellow": 10}, 10, "10 images is too small"),
])
def test_calibration_refuses_bad_sets(counts, size, message):
    from train.data.calibration import select
    from train.errors import TrainError

    with pytest.raises(TrainError, match=message) as err:
        select(_records(counts), LABELS, size, seed=0)
    assert "\n" not in str(err.value)


def test_calibration_selection_is_seeded_and_stratified():
    from train.data.calibration import select

    records = _records({"red": 60, "green": 30, "blue": 5, "yellow": 1})
    a, b = select(records, LABELS, 40, 7), select(records, LABELS, 40, 7)
    assert [r.image_id for r in a] == [r.image_id for r in b]
    labels = [r.label for r in a]
    assert len(a) == 40 and labels.count("yellow") == 1 and labels.count("blue") == 5
    assert [r.image_id for r in select(records, LABELS, 40, 8)] != [r.image_id for r in a]


# ---------------------------------------------------------------- the command and bad input


def test_out_exists_is_refused_then_force_with_int8_io(quantized, tmp_path):
    from edge.model.bundle import open_bundle
    from edge.model.tflite_file import read_tflite

    out = tmp_path / "bundle"
    out.mkdir()
    assert "already exists" in one_line_error(train_quantize(quantized["run"], "--out", out))
    result = train_quantize(quantized["run"], "--out", out, "--force", "--io", "int8", "--calibration-size",
                            CALIBRATION_SIZE, "--calibration-dir", quantized["calibration"])
    assert result.exit_code == 0, result.output
    assert "balanced accuracy" in result.stdout and "PASSED" in result.stdout
    g = read_tflite(out / "model.tflite")
    inp, outp = g.tensors[g.inputs[0]], g.tensors[g.outputs[0]]
    assert (inp.dtype, inp.scale, inp.zero_point) == ("int8", 1.0, -128) and outp.dtype == "int8"
    meta = open_bundle(out).meta
    assert meta["quantization"]["io"] == "int8" and meta["golden"]["outputs"]["dtype"] == "int8"


@pytest.fixture(scope="session")
def flat_run(quantized, keras_model, tmp_path_factory) -> Path:
    """A run whose model's scores differ by far less than one int8 step: one class sits far below the
    others and stretches the output's range, so int8 cannot tell the other classes apart."""
    import keras

    flat = keras.models.clone_model(keras_model)
    flat.set_weights(keras_model.get_weights())
    dense = flat.layers[-1]
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 1e-3, np.array([0.0, 0.0, 0.0, -30.0], np.float32)])
    return write_run(tmp_path_factory.mktemp("flat") / "run", flat, quantized["data"])


def test_gate_failure_writes_nothing_unless_overridden(flat_run, quantized, tmp_path):
    out = tmp_path / "flat"
    args = (flat_run, "--out", out, "--calibration-size", CALIBRATION_SIZE,
            "--calibration-dir", quantized["calibration"])
    failed = train_quantize(*args)
    line = one_line_error(failed)
    assert "fails the quantization gate" in line and "agreement" in line and "--allow-degraded" in line
    assert "agreement" in failed.stdout and "FAILED" in failed.stdout  # figures shown either way
    assert not out.exists() and not list(tmp_path.glob(".flat*"))
    kept = train_quantize(*args, "--allow-degraded")
    assert kept.exit_code == 0, kept.output
    gate = json.loads((out / "model.json").read_text())["metrics"]["gate"]
    assert gate["passed"] is False and gate["overridden"] is True and gate["agreement"] < 0.97


def test_run_without_model_is_a_clear_error(run_copy, tmp_path):
    (run_copy / "model.keras").unlink()
    line = one_line_error(train_quantize(run_copy, "--out", tmp_path / "b"))
    assert "has no model.keras" in line
    assert not (tmp_path / "b").exists()


def test_missing_run_folder(tmp_path):
    assert "Run folder not found" in one_line_error(train_quantize(tmp_path / "nope", "--out", tmp_path / "b"))


def test_output_count_must_match_labels(run_copy, tmp_path):
    (run_copy / "labels.txt").write_text("".join(f"{x}\n" for x in (*LABELS, "purple")), encoding="utf-8")
    line = one_line_error(train_quantize(run_copy, "--out", tmp_path / "b"))
    assert "outputs 4 classes but labels.txt lists 5" in line


def test_unknown_io_type(quantized, tmp_path):
    assert "Unknown --io" in one_line_error(train_quantize(quantized["run"], "--out", tmp_path / "b", "--io", "fp16"))


class _Samples:
    """Calibration samples for a model on 8-value vectors."""

    def samples(self):
        rng = np.random.default_rng(0)
        for _ in range(4):
            yield rng.uniform(0, 255, (1, 8)).astype(np.float32)


def _vector_model(op):
    import keras

    inp = keras.Input((8,), batch_size=1)
    return keras.Model(inp, op(keras.layers.Dense(4)(inp)))


def test_conversion_error_is_one_line():
    import keras

    from train.errors import TrainError
    from train.export.quantize import _convert

    with pytest.raises(TrainError, match="could not convert the model to int8 TFLite: no TFLite builtin op for Erf"
                       ) as err:
        _convert(_vector_model(keras.ops.erf), _Samples(), "uint8")
    assert "\n" not in str(err.value)


def test_float_ops_left_in_the_int8_file_are_caught(tmp_path):
    import keras

    from train.errors import TrainError
    from train.export.quantize import _convert, check_int8_model

    path = tmp_path / "sin.tflite"
    path.write_bytes(_convert(_vector_model(keras.ops.sin), _Samples(), "uint8"))  # SIN has no int8 kernel
    with pytest.raises(TrainError, match="not a clean full-integer model: .*not int8/int32"):
        check_int8_model(path, "uint8")


def test_out_that_is_a_file_or_the_run_is_refused_even_with_force(run_copy, tmp_path):
    target = tmp_path / "afile"
    target.write_text("keep me")
    assert "afile is a file" in one_line_error(train_quantize(run_copy, "--out", target, "--force"))
    assert target.read_text() == "keep me" and not list(tmp_path.glob(".afile*"))
    line = one_line_error(train_quantize(run_copy, "--out", run_copy, "--force"))
    assert "would replace the run folder" in line and (run_copy / "model.keras").is_file()
    assert "Cannot create" in one_line_error(train_quantize(run_copy, "--out", target / "models" / "b"))


@pytest.mark.parametrize(("content", "needle"), [
    ("[1, 2]", "is not a run description"),
    ('{"image_size": [40, 48]}', "does not name the dataset"),
])
def test_bad_run_json_is_one_line(run_copy, tmp_path, content, needle):
    (run_copy / "run.json").write_text(content, encoding="utf-8")
    assert needle in one_line_error(train_quantize(run_copy, "--out", tmp_path / "b"))
    assert not (tmp_path / "b").exists()


def test_model_file_that_is_not_keras_is_one_line(run_copy, tmp_path):
    (run_copy / "model.keras").write_bytes(b"not a zip archive")
    assert "is not a Keras .keras file" in one_line_error(train_quantize(run_copy, "--out", tmp_path / "b"))


def test_unwritable_calibration_dir_is_one_line(run_copy, tmp_path):
    (tmp_path / "afile").write_text("")
    result = train_quantize(run_copy, "--out", tmp_path / "b", "--calibration-size", CALIBRATION_SIZE,
                            "--calibration-dir", tmp_path / "afile" / "cal")
    assert "Cannot store the calibration set" in one_line_error(result)
    assert not (tmp_path / "b").exists()
