"""From the archive back to training: `edge export` writes reviews in the HAM10000 layout and
`train fit --data HAM --data EXPORT` trains on both, split by lesion across them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from edge.archive.review import parse_review
from edge.archive.store import Archive
from edge.cli import app as edge_app
from edge.data.datasets import HAM_METADATA, LABELS, load_dataset
from edge.data.merge import load_datasets
from train.cli import app as train_app

runner = CliRunner()


def edge(*args):
    return runner.invoke(edge_app, [str(a) for a in args])


@pytest.fixture(scope="module")
def ham(tmp_path_factory) -> Path:
    from train.data.sample_data import make_sample_dataset

    root = tmp_path_factory.mktemp("ham") / "data"
    make_sample_dataset(root, n_lesions=21, seed=3, size=(160, 120), images_per_lesion=(1, 2))
    return root


@pytest.fixture(scope="module")
def reviewed_archive(ham, tmp_path_factory) -> Path:
    """21 captures of other sample lesions: 14 reviewed in pairs (7 lesions), one unknown, six unreviewed."""
    from train.data.sample_data import make_sample_dataset

    pictures = tmp_path_factory.mktemp("more") / "data"
    make_sample_dataset(pictures, n_lesions=21, seed=11, size=(160, 120), images_per_lesion=(1, 1))
    with open(pictures / HAM_METADATA, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    root = tmp_path_factory.mktemp("archive") / "a"
    with Archive(root) as archive:
        for i, row in enumerate(rows):
            path = next(pictures.glob(f"*/{row['image_id']}.jpg"))
            model_label = LABELS[(i + 1) % len(LABELS)]  # the model is wrong about these; the expert is not
            cap = archive.add(jpeg=path.read_bytes(), source="classify", status="ok", original=str(path),
                              top_k=[{"index": LABELS.index(model_label), "label": model_label, "score": 0.7}])
            if i < 14:  # pairs of captures: one lesion each, with its first picture's diagnosis
                dx = rows[i - i % 2]["dx"]
                review = {"diagnosis": dx, "lesion_id": f"L-{i // 2}", "note": None}
            elif i == 14:
                review = {"diagnosis": "unknown"}
            else:
                continue
            archive.review(cap.id, parse_review(review, LABELS))
    return root


def test_export_writes_the_ham10000_layout(reviewed_archive, tmp_path):
    out = tmp_path / "reviews"
    result = edge("export", "--archive", reviewed_archive, "--out", out, "--reviewed-only", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["images"] == 14 and summary["expert"] == 14 and summary["model"] == 0
    assert summary["skipped"] == {"reviewed as unknown": 1, "not reviewed": 6}
    with open(out / HAM_METADATA, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
    assert {r["dx_type"] for r in rows} == {"expert"} and len({r["lesion_id"] for r in rows}) == 7
    with Archive(reviewed_archive, write=False) as archive:  # the picture's bytes, as archived
        first = next(archive.all())
        assert (out / "images" / f"SE_{first.uid}.jpg").read_bytes() == (archive.root / first.image).read_bytes()
    data = load_dataset(out)
    assert data.layout == "ham10000" and len(data.records) == 14 and data.missing == 0
    assert not (tmp_path / "reviews.tmp").exists() and not list(tmp_path.glob(".reviews.*"))


def test_without_reviewed_only_model_labels_come_as_pseudo_labels(reviewed_archive, tmp_path):
    result = edge("export", "--archive", reviewed_archive, "--out", tmp_path / "all")
    assert result.exit_code == 0, result.output
    assert "14 expert diagnoses, 6 model labels" in result.stdout and "pseudo-labels" in result.stderr
    with open(tmp_path / "all" / HAM_METADATA, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert sum(r["dx_type"] == "model" for r in rows) == 6


def test_export_refuses_what_it_cannot_do(reviewed_archive, tmp_path):
    (tmp_path / "taken").mkdir()
    for args, needle in [((reviewed_archive, tmp_path / "taken"), "already exists"),
                         ((tmp_path / "none", tmp_path / "x"), "no archive at")]:
        result = edge("export", "--archive", args[0], "--out", args[1])
        assert result.exit_code == 1 and needle in result.stderr and "Traceback" not in result.output
    empty = tmp_path / "empty"
    Archive(empty).close()
    result = edge("export", "--archive", empty, "--out", tmp_path / "y", "--reviewed-only")
    assert result.exit_code == 1 and "holds no reviewed captures" in result.stderr
    assert not (tmp_path / "y").exists()


def test_pooled_datasets_split_by_lesion_together(ham, reviewed_archive, tmp_path):
    out = tmp_path / "reviews"
    assert edge("export", "--archive", reviewed_archive, "--out", out, "--reviewed-only").exit_code == 0
    pooled = load_datasets([ham, out])
    assert len(pooled.records) == len(load_dataset(ham).records) + 14
    assert [(Path(root).name, layout) for root, layout, _ in pooled.parts] == [("data", "ham10000"),
                                                                               ("reviews", "ham10000")]
    with pytest.raises(Exception, match="given twice"):
        load_datasets([ham, ham])
    with pytest.raises(Exception, match="appear in more than one dataset"):
        import shutil

        twin = tmp_path / "twin"
        shutil.copytree(out, twin)
        load_datasets([out, twin])


def test_train_fit_on_ham_plus_exported_reviews(ham, reviewed_archive, tmp_path):
    """The round trip: reviews exported, then trained on with HAM10000-layout data, lesion-safe across both."""
    reviews = tmp_path / "reviews"
    assert edge("export", "--archive", reviewed_archive, "--out", reviews, "--reviewed-only").exit_code == 0
    run = tmp_path / "run"
    result = runner.invoke(train_app, ["fit", "--data", str(ham), "--data", str(reviews), "--out", str(run),
                                       "--image-size", "64", "--alpha", "0.35", "--weights", "none",
                                       "--epochs", "1", "--fine-tune-epochs", "0", "--batch-size", "16", "--json"])
    assert result.exit_code == 0, result.output
    assert "dataset data (ham10000):" in result.stderr and "dataset reviews (ham10000): 14 images" in result.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["datasets"] == [str(ham.resolve()), str(reviews.resolve())]
    assert info["dataset_images"]["reviews"] == 14 and info["layout"] == "ham10000+ham10000"
    with open(run / "split.csv", newline="", encoding="utf-8") as f:
        split = list(csv.DictReader(f))
    assert sum(r["image_id"].startswith("SE_") for r in split) == 14  # every exported review is in the split
    lesion_splits: dict[str, set[str]] = {}
    for r in split:
        lesion_splits.setdefault(r["lesion_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in lesion_splits.values())  # the two captures of each lesion stay together
    assert cv2.imread(str(next(reviews.glob("images/*.jpg")))) is not None
