"""`train sample-data`, `train fit` and `train evaluate` through the real CLI, with real training.

One session fixture trains a small MobileNetV2 (96 px, alpha 0.35, no pretrained weights) on
synthetic sample data once; the tests read what it wrote. The sample dataset has two images
deleted and one corrupted, so the run also goes through the missing- and unreadable-image paths.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import urllib.error
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge.data.datasets import HAM_METADATA, LABELS, load_dataset
from train.cli import app

runner = CliRunner()
SMALL = (300, 225)  # sample images at half HAM10000's size: quicker to draw and decode, same layout
FIT = ["--image-size", "96", "--alpha", "0.35", "--weights", "none", "--batch-size", "32"]
TRAINING = ["--epochs", "18", "--lr", "2e-3", "--patience", "18", "--oversample"]
CHANCE = 1 / len(LABELS)
EXPECTED_KEYS = {"accuracy", "balanced_accuracy", "per_class", "macro_auc", "confusion_matrix", "melanoma_recall"}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, needle: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    err = result.stderr.strip().splitlines()[-1]
    assert err.startswith("error: ") and needle in err, result.stderr
    assert "Traceback" not in result.output


def make_sample(out: Path, lesions: int, seed: int) -> Path:
    from train.data.sample_data import make_sample_dataset

    make_sample_dataset(out, n_lesions=lesions, seed=seed, size=SMALL)
    return out


def image_path(root: Path, image_id: str) -> Path:
    return next(root.glob(f"HAM10000_images_part_*/{image_id}.jpg"))


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> dict:
    """Sample data with two images missing on disk and one corrupt JPEG."""
    root = make_sample(tmp_path_factory.mktemp("sample") / "data", lesions=250, seed=1)
    with open(root / HAM_METADATA, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missing = [rows[0]["image_id"], rows[-2]["image_id"]]
    for image_id in missing:
        image_path(root, image_id).unlink()
    corrupt = rows[-1]["image_id"]
    image_path(root, corrupt).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return {"root": root, "rows": rows, "corrupt": corrupt, "missing": missing}


@pytest.fixture(scope="session")
def trained(sample, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("runs") / "run"
    result = invoke("fit", "--data", sample["root"], "--out", out, *FIT, *TRAINING, "--json")
    assert result.exit_code == 0, result.output
    return {"run": out, "result": json.loads(result.stdout), "stderr": result.stderr}


@pytest.fixture(scope="session")
def held_out(tmp_path_factory) -> Path:
    """Another sample dataset (other seed, other lesions) the model has never seen."""
    return make_sample(tmp_path_factory.mktemp("held_out") / "data", lesions=120, seed=7)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    """21 lesions (3 per class) of small images: enough to reach the model quickly."""
    from train.data.sample_data import make_sample_dataset

    root = tmp_path_factory.mktemp("tiny") / "data"
    make_sample_dataset(root, n_lesions=21, seed=3, size=(160, 120), images_per_lesion=(1, 2))
    return root


def read_split(run: Path) -> list[dict]:
    with open(run / "split.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- sample-data


def test_sample_data_command_says_synthetic(tmp_path):
    result = invoke("sample-data", tmp_path / "s", "--lesions", "21", "--seed", "2", "--json")
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["synthetic"] is True and summary["lesions"] == 21
    assert len(load_dataset(tmp_path / "s").records) == summary["images"]


def test_sample_data_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys\nfrom train.commands.sample_data import sample_data\nimport train.data.sample_data, train.cli\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sample_data_refuses_too_few_lesions(tmp_path):
    result = invoke("sample-data", tmp_path / "s", "--lesions", "20")
    assert result.exit_code == 2  # typer's own range check


# ---------------------------------------------------------------- the trained run


def test_run_folder_has_every_output(trained):
    run = trained["run"]
    for name in ("model.keras", "labels.txt", "split.csv", "history.csv", "metrics.json", "run.json"):
        assert (run / name).is_file(), name
    for name in ("confusion_matrix", "confusion_matrix_normalised", "history", "class_distribution"):
        png = run / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert not (run / "cache").exists()
    assert not list(run.parent.glob("run.tmp-*"))
    assert (run / "labels.txt").read_text().split() == list(LABELS)


def test_split_is_lesion_safe_and_complete(trained, sample):
    rows = read_split(trained["run"])
    splits_of = defaultdict(set)
    for row in rows:
        splits_of[row["lesion_id"]].add(row["split"])
    assert all(len(s) == 1 for s in splits_of.values())
    assert {row["split"] for row in rows} == {"train", "val", "test"}
    listed = {row["image_id"] for row in rows}
    assert listed == {r["image_id"] for r in sample["rows"]} - set(sample["missing"])
    for split in ("train", "val", "test"):  # stratified: every class in every split
        assert {row["label"] for row in rows if row["split"] == split} == set(LABELS)


def test_metrics_json_has_the_issue_keys(trained):
    metrics = json.loads((trained["run"] / "metrics.json").read_text())
    assert EXPECTED_KEYS <= set(metrics)
    assert set(metrics["per_class"]) == set(LABELS)
    for values in metrics["per_class"].values():
        assert set(values) == {"precision", "recall", "f1", "support"}
    cm = np.array(metrics["confusion_matrix"])
    assert cm.shape == (7, 7) and cm.sum() == metrics["n"]
    assert metrics["melanoma_recall"] == metrics["per_class"]["mel"]["recall"]


def test_model_beats_chance_on_held_out_test_split(trained):
    metrics = trained["result"]["test"]
    # chance is 1/7 = 0.14; this run reaches about 0.55-0.65 on its test split
    assert metrics["balanced_accuracy"] > 2.5 * CHANCE, metrics
    assert metrics["macro_auc"] > 0.75, metrics


def test_model_beats_chance_on_another_dataset(trained, held_out, tmp_path):
    out = tmp_path / "held_out.json"
    result = invoke("evaluate", trained["run"], "--data", held_out, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(out.read_text())
    assert metrics["n"] == len(load_dataset(held_out).records)
    assert metrics["balanced_accuracy"] > 2.5 * CHANCE, metrics  # about 0.5-0.6 here; chance is 0.14
    assert (trained["run"] / "plots" / "eval-data-confusion_matrix.png").is_file()


def test_missing_and_unreadable_images_are_counted_and_skipped(trained):
    assert "2 of" in trained["stderr"] and "missing on disk" in trained["stderr"]
    assert "1 image(s) could not be read" in trained["stderr"]
    info = json.loads((trained["run"] / "run.json").read_text())
    assert info["missing_images"] == 2 and info["unreadable_images"] == 1


def test_run_json_describes_the_run(trained, sample):
    info = json.loads((trained["run"] / "run.json").read_text())
    assert info["data"] == str(sample["root"].resolve())
    assert info["layout"] == "ham10000" and info["image_size"] == [96, 96]
    assert info["alpha"] == 0.35 and info["weights"] == "none" and info["seed"] == 0
    assert info["labels"] == list(LABELS) and info["interrupted"] is False
    assert {"tensorflow", "keras", "numpy"} & set(info["versions"])
    assert info["images_per_second"] > 0


def test_history_has_one_row_per_epoch(trained):
    with open(trained["run"] / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == trained["result"]["epochs"] >= 1
    for column in ("loss", "accuracy", "val_loss", "val_balanced_accuracy", "learning_rate", "images_per_second"):
        assert column in rows[0]
    best = max(float(r["val_balanced_accuracy"]) for r in rows)
    assert best == pytest.approx(trained["result"]["best_val_balanced_accuracy"])


def test_saved_model_takes_raw_pixels_and_augmentation_is_off(trained, sample):
    import keras

    from edge.ops.image import load_image
    from edge.ops.preprocess import fit_to_input

    model = keras.models.load_model(trained["run"] / "model.keras")
    assert tuple(model.input_shape) == (None, 96, 96, 3)
    rows = [r for r in read_split(trained["run"]) if r["split"] == "test" and r["image_id"] != sample["corrupt"]]
    x = np.stack([fit_to_input(load_image(image_path(sample["root"], r["image_id"])), 96, 96) for r in rows[:8]])
    first, second = model.predict(x.astype(np.float32), verbose=0), model.predict(x.astype(np.float32), verbose=0)
    np.testing.assert_array_equal(first, second)  # no random augmentation at inference
    np.testing.assert_allclose(first.sum(axis=1), 1, rtol=1e-5)


# ---------------------------------------------------------------- evaluate


def test_evaluate_recomputes_test_metrics_and_writes_isic_csv(trained, tmp_path):
    csv_path = tmp_path / "submission.csv"
    result = invoke("evaluate", trained["run"], "--isic-csv", csv_path)
    assert result.exit_code == 0, result.output
    recomputed = json.loads((trained["run"] / "eval-test.json").read_text())
    original = json.loads((trained["run"] / "metrics.json").read_text())
    assert recomputed["confusion_matrix"] == original["confusion_matrix"]
    assert recomputed["balanced_accuracy"] == pytest.approx(original["balanced_accuracy"])
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    assert len(rows) - 1 == original["n"]
    tested = {r["image_id"] for r in read_split(trained["run"]) if r["split"] == "test"}
    assert {row[0] for row in rows[1:]} <= tested
    sums = np.array([[float(v) for v in row[1:]] for row in rows[1:]]).sum(axis=1)
    np.testing.assert_allclose(sums, 1, atol=1e-4)


def test_evaluate_other_split(trained):
    result = invoke("evaluate", trained["run"], "--split", "val", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    assert EXPECTED_KEYS <= set(metrics)
    assert metrics["n"] == trained["result"]["images"]["val"]


def test_evaluate_unlabelled_images_writes_predictions_only(trained, sample, tmp_path):
    folder = tmp_path / "ISIC2018_Task3_Test_Input"
    folder.mkdir()
    for row in sample["rows"][10:14]:
        shutil.copy(image_path(sample["root"], row["image_id"]), folder)
    csv_path = tmp_path / "isic.csv"
    result = invoke("evaluate", trained["run"], "--data", folder, "--isic-csv", csv_path)
    assert result.exit_code == 0, result.output
    assert "no labels" in result.stderr
    assert len(csv_path.read_text().splitlines()) == 5


def test_evaluate_unknown_label_and_missing_run(trained, sample, tmp_path):
    other = tmp_path / "folders"
    for label in ("nv", "wart"):
        (other / label).mkdir(parents=True)
        for row in sample["rows"][20:22]:
            shutil.copy(image_path(sample["root"], row["image_id"]), other / label / f"{label}_{row['image_id']}.jpg")
    assert_one_line_error(invoke("evaluate", trained["run"], "--data", other), "wart")
    assert_one_line_error(invoke("evaluate", tmp_path / "nothing"), "does not exist")
    assert_one_line_error(invoke("evaluate", sample["root"]), "not a complete")


# ---------------------------------------------------------------- bad input to fit


def _ham_copy(sample: dict, dest: Path, edit) -> Path:
    """A copy of the sample's metadata CSV (images linked) with `edit(lines)` applied."""
    dest.mkdir()
    for part in sample["root"].glob("HAM10000_images_part_*"):
        (dest / part.name).symlink_to(part)
    lines = (sample["root"] / HAM_METADATA).read_text().splitlines()
    (dest / HAM_METADATA).write_text("\n".join(edit(lines)) + "\n")
    return dest


def test_fit_missing_data_folder(tmp_path):
    assert_one_line_error(invoke("fit", "--data", tmp_path / "absent", "--out", tmp_path / "run", *FIT),
                          "does not exist")
    assert not (tmp_path / "run").exists()


def test_fit_malformed_csv(sample, tmp_path):
    data = _ham_copy(sample, tmp_path / "d", lambda lines: lines[:5] + [lines[5] + ",extra,fields"] + lines[6:])
    assert_one_line_error(invoke("fit", "--data", data, "--out", tmp_path / "run", *FIT), "fields")


def test_fit_csv_without_needed_columns(sample, tmp_path):
    data = _ham_copy(sample, tmp_path / "d", lambda lines: [lines[0].replace("dx,", "diagnosis,")] + lines[1:])
    assert_one_line_error(invoke("fit", "--data", data, "--out", tmp_path / "run", *FIT), "dx")


def test_fit_unknown_label(sample, tmp_path):
    def relabel_one(lines):
        i = next(i for i, line in enumerate(lines) if ",akiec," in line)
        return lines[:i] + [lines[i].replace(",akiec,", ",wart,")] + lines[i + 1:]

    data = _ham_copy(sample, tmp_path / "d", relabel_one)
    assert_one_line_error(invoke("fit", "--data", data, "--out", tmp_path / "run", *FIT), "unknown label")


def test_fit_class_with_too_few_lesions(sample, tmp_path):
    def drop_df_lesions(lines):
        df = [ln for ln in lines if ",df," in ln]
        keep = {ln.split(",")[0] for ln in df[:1]}
        return [ln for ln in lines if ",df," not in ln or ln.split(",")[0] in keep]

    data = _ham_copy(sample, tmp_path / "d", drop_df_lesions)
    assert_one_line_error(invoke("fit", "--data", data, "--out", tmp_path / "run", *FIT), "at least 3 lesions")


def test_fit_strict_stops_on_missing_images(sample, tmp_path):
    result = invoke("fit", "--data", sample["root"], "--out", tmp_path / "run", *FIT, "--strict")
    assert_one_line_error(result, "2 of")
    assert not (tmp_path / "run").exists()


def test_fit_strict_stops_on_unreadable_image(tiny, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(tiny, data)
    next(data.glob("HAM10000_images_part_*/*.jpg")).write_bytes(b"")
    result = invoke("fit", "--data", data, "--out", tmp_path / "run", *FIT, "--strict")
    assert_one_line_error(result, "could not be read")
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob("run.tmp-*"))


def test_fit_warns_about_a_class_without_a_usable_image(tiny, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(tiny, data)
    with open(data / HAM_METADATA, newline="", encoding="utf-8") as f:
        df = [r["image_id"] for r in csv.DictReader(f) if r["dx"] == "df"]
    for image_id in df:
        image_path(data, image_id).write_bytes(b"\xff\xd8 broken")
    result = invoke("fit", "--data", data, "--out", tmp_path / "run", *FIT, "--epochs", "1", "--json")
    assert result.exit_code == 0, result.output
    warning = "no usable training image for df: the model cannot learn this class"
    assert warning in result.stderr and any(warning in w for w in json.loads(result.stdout)["warnings"])


def test_fit_weights_path_that_does_not_exist(tiny, tmp_path):
    args = ["--image-size", "96", "--alpha", "0.35", "--weights", tmp_path / "nope.h5"]
    assert_one_line_error(invoke("fit", "--data", tiny, "--out", tmp_path / "run", *args), "no such file")


def test_fit_imagenet_offline_says_what_to_do(tiny, tmp_path, monkeypatch):
    from keras.src.backend import config
    from keras.src.utils import file_utils

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    (tmp_path / "keras_home").mkdir()
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path / "keras_home"))  # an empty Keras cache
    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    args = ["--image-size", "96", "--alpha", "0.35", "--weights", "imagenet"]
    result = invoke("fit", "--data", tiny, "--out", tmp_path / "run", *args)
    assert_one_line_error(result, "no network")
    assert "--weights PATH" in result.stderr
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5" in result.stderr
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob("run.tmp-*"))
    assert not list((tmp_path / "keras_home").rglob("*.h5"))  # no partial download left behind


def test_fit_refuses_existing_out(tiny, tmp_path):
    (tmp_path / "run").mkdir()
    assert_one_line_error(invoke("fit", "--data", tiny, "--out", tmp_path / "run", *FIT), "already exists")


@pytest.mark.parametrize("option, value, needle", [
    ("--epochs", "0", "--epochs"), ("--image-size", "8", "--image-size"), ("--lr", "-1", "--lr"),
])
def test_fit_bad_numbers(tiny, tmp_path, option, value, needle):
    assert_one_line_error(invoke("fit", "--data", tiny, "--out", tmp_path / "run", *FIT, option, value), needle)


# ---------------------------------------------------------------- weights files


def test_weights_file_loads_by_name_or_says_it_does_not_fit(tmp_path):
    import keras

    from train.errors import TrainError
    from train.fit.model import base_of, build_model

    donor = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
    donor.save_weights(tmp_path / "donor.weights.h5")
    legacy = tmp_path / "donor.h5"
    _save_legacy_h5(donor, legacy)
    for path in (tmp_path / "donor.weights.h5", legacy):
        model = build_model(7, image_size=96, alpha=0.35, weights=str(path))
        np.testing.assert_array_equal(base_of(model).get_layer("Conv1").kernel.numpy(),
                                      donor.get_layer("Conv1").kernel.numpy())
        assert not base_of(model).trainable  # pretrained: phase 1 trains the head only
    with pytest.raises(TrainError, match="do not fit"):
        build_model(7, image_size=96, alpha=0.5, weights=str(legacy))
    with pytest.raises(TrainError, match="do not fit"):
        build_model(7, image_size=96, alpha=0.5, weights=str(tmp_path / "donor.weights.h5"))


def test_weights_file_covering_part_of_the_network_is_refused(tmp_path):
    """A backbone cut at block_6 loads by name with no error in Keras; here it is refused, with counts."""
    import keras

    from train.errors import TrainError
    from train.fit.model import build_model

    donor = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
    cut = keras.Model(donor.input, donor.get_layer("block_6_project_BN").output)
    partial = tmp_path / "cut.h5"
    _save_legacy_h5(cut, partial)
    with pytest.raises(TrainError, match=r"do not fit .*the file lacks \d+ of the \d+ weighted MobileNetV2 layers "
                                         r"\(first: block_7_expand\)"):
        build_model(7, image_size=96, alpha=0.35, weights=str(partial))


def _save_legacy_h5(model, path: Path) -> None:
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def test_unfreeze_keeps_batchnorm_frozen(tmp_path):
    import keras

    from train.fit.model import base_of, build_model, unfreeze_model

    donor = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
    donor.save_weights(tmp_path / "w.weights.h5")
    model = build_model(7, image_size=96, alpha=0.35, weights=str(tmp_path / "w.weights.h5"))
    unfreeze_model(model, 20, 1e-4)
    layers = base_of(model).layers
    assert not any(layer.trainable for layer in layers if isinstance(layer, keras.layers.BatchNormalization))
    assert not any(layer.trainable for layer in layers[:-20])
    assert any(layer.trainable for layer in layers[-20:])


# ---------------------------------------------------------------- interruption and atomicity


def test_failed_run_leaves_no_folder(tiny, tmp_path, monkeypatch):
    from train.errors import TrainError
    from train.fit import training

    real = training.prepare_inputs

    def fail_after_caching(*args, **kwargs):
        real(*args, **kwargs)  # decodes and fills the cache inside the temporary folder
        raise TrainError("simulated failure")

    monkeypatch.setattr(training, "prepare_inputs", fail_after_caching)
    assert_one_line_error(invoke("fit", "--data", tiny, "--out", tmp_path / "run", *FIT), "simulated failure")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_before_the_first_epoch_ends_leaves_no_folder(tiny, tmp_path, monkeypatch):
    from train.fit import training

    def interrupt(self, epoch, logs=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(training.Monitor, "on_epoch_begin", interrupt)
    result = invoke("fit", "--data", tiny, "--out", tmp_path / "run", *FIT)
    assert_one_line_error(result, "interrupted", code=130)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_keeps_the_best_model_so_far(tiny, tmp_path, monkeypatch):
    from train.fit import training

    real = training.Monitor.on_epoch_begin

    def interrupt_second_epoch(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt
        real(self, epoch, logs)

    monkeypatch.setattr(training.Monitor, "on_epoch_begin", interrupt_second_epoch)
    out = tmp_path / "run"
    result = invoke("fit", "--data", tiny, "--out", out, "--image-size", "64", "--alpha", "0.35",
                    "--weights", "none", "--epochs", "5", "--json")
    assert result.exit_code == 0, result.output
    assert "interrupted" in result.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["interrupted"] is True and info["epochs_run"] == 1 and info["best_epoch"] == 1
    assert (out / "model.keras").is_file() and EXPECTED_KEYS <= set(json.loads((out / "metrics.json").read_text()))
    with open(out / "history.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 1
    assert not list(tmp_path.glob("run.tmp-*"))


# ---------------------------------------------------------------- more bad input (found in review)


def test_fit_bad_split_fractions_name_the_options(tiny, tmp_path):
    result = invoke("fit", "--data", tiny, "--out", tmp_path / "run", *FIT, "--val-fraction", "0.6",
                    "--test-fraction", "0.5")
    assert_one_line_error(result, "--val-fraction 0.6 and --test-fraction 0.5")


def test_fit_out_that_cannot_be_created(tiny, tmp_path):
    (tmp_path / "afile").write_text("")
    assert_one_line_error(invoke("fit", "--data", tiny, "--out", tmp_path / "afile" / "run", *FIT), "cannot create")


def test_fit_force_never_replaces_the_dataset(tiny, tmp_path):
    data = tmp_path / "project" / "data"
    shutil.copytree(tiny, data)
    result = invoke("fit", "--data", data, "--out", tmp_path / "project", *FIT, "--force")
    assert_one_line_error(result, "holds the dataset")
    assert (data / HAM_METADATA).is_file()


def test_fit_error_after_tensorflow_starts_is_still_one_line(tiny, tmp_path):
    """In a fresh process TensorFlow prints log lines when imported; they must not bury the error."""
    import subprocess
    import sys

    code = "from train.cli import main; main()"
    args = ["fit", "--data", str(tiny), "--out", str(tmp_path / "run"), "--image-size", "96", "--alpha", "0.33",
            "--weights", "imagenet"]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ImageNet weights exist for alpha"), done.stderr


@pytest.fixture()
def run_copy(trained, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(trained["run"], dest)
    return dest


def test_evaluate_model_file_problems_are_one_line(run_copy):
    (run_copy / "labels.txt").write_text("".join(f"{x}\n" for x in (*LABELS, "wart")))
    assert_one_line_error(invoke("evaluate", run_copy), "outputs 7 classes but labels.txt lists 8")
    (run_copy / "model.keras").write_bytes(b"not a zip archive")
    assert_one_line_error(invoke("evaluate", run_copy), "is not a Keras .keras file")


def test_evaluate_unwritable_outputs_are_one_line(run_copy, tmp_path):
    (tmp_path / "afile").write_text("")
    assert_one_line_error(invoke("evaluate", run_copy, "--out", tmp_path / "afile" / "m.json"), "cannot write")
    assert_one_line_error(invoke("evaluate", run_copy, "--isic-csv", tmp_path / "afile" / "s.csv"), "cannot write")


def test_evaluate_run_json_without_the_dataset(run_copy):
    info = json.loads((run_copy / "run.json").read_text())
    del info["data"]
    (run_copy / "run.json").write_text(json.dumps(info))
    assert_one_line_error(invoke("evaluate", run_copy), "does not name the run's dataset")


def test_ctrl_c_during_the_final_evaluation_keeps_the_trained_model(tiny, tmp_path, monkeypatch):
    from train.fit import training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "evaluate_records", interrupted)
    out = tmp_path / "run"
    result = invoke("fit", "--data", tiny, "--out", out, *FIT)
    assert result.exit_code == 0, result.output
    assert "interrupted during the test evaluation" in result.stderr and "train evaluate" in result.stdout
    assert (out / "model.keras").is_file() and json.loads((out / "run.json").read_text())["interrupted"] is True
    assert json.loads((out / "metrics.json").read_text())["evaluation"] == "interrupted"
    assert not list(tmp_path.glob("run.tmp-*")) and not (out / ".owner-pid").exists()
    evaluated = invoke("evaluate", out)
    assert evaluated.exit_code == 0, evaluated.output


def test_sigterm_stops_training_like_ctrl_c_and_a_killed_runs_leftovers_go(tiny, tmp_path):
    """`kill` (SIGTERM) during the epochs: the run so far is kept, no RUN.tmp-* stays. A folder left by a
    run killed with SIGKILL (its owner pid gone) is removed by the next run; one of a live run is not."""
    import signal
    import subprocess
    import sys
    import threading
    import time

    dead = tmp_path / "run.tmp-dead00"
    dead.mkdir()
    (dead / ".owner-pid").write_text("999999999\n")
    alive = tmp_path / "run.tmp-live00"
    alive.mkdir()
    (alive / ".owner-pid").write_text(f"{os.getpid()}\n")
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "train", "fit", "--data", str(tiny), "--out", str(out),
                             "--image-size", "64", "--alpha", "0.35", "--weights", "none", "--epochs", "200"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any(x.startswith("epoch 2/") for x in lines):
        time.sleep(0.2)  # two epochs have ended
    assert not dead.exists() and alive.exists()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=240)
    reader.join(timeout=10)
    err = "".join(lines)
    assert proc.returncode == 0, err[-2000:]
    assert "interrupted: keeping the best model so far" in err
    assert (out / "model.keras").is_file() and json.loads((out / "run.json").read_text())["interrupted"] is True
    assert [p.name for p in tmp_path.glob("run.tmp-*")] == ["run.tmp-live00"]
