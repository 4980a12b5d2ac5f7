"""Synthetic sample data: HAM10000 layout, class mix, determinism, and the demo video."""

from __future__ import annotations

import csv
import re
from collections import Counter

import cv2
import numpy as np
import pytest

from edge.data.datasets import LABELS, load_dataset, split_by_lesion
from train.data.sample_data import (
    SampleDataError,
    lesion_counts,
    make_sample_dataset,
)
from train.data.sample_video import make_sample_video

HAM_PROPORTIONS = {"akiec": 327, "bcc": 514, "bkl": 1099, "df": 115, "mel": 1113, "nv": 6705, "vasc": 142}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "ham"
    return make_sample_dataset(out, n_lesions=40, seed=3)


def _rows(root):
    with open(root / "HAM10000_metadata.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_writes_the_kaggle_ham10000_layout(sample):
    root = sample.out
    assert sorted(p.name for p in root.iterdir()) == [
        "HAM10000_images_part_1", "HAM10000_images_part_2", "HAM10000_metadata.csv", "README.txt",
    ]  # fmt: skip
    rows = _rows(root)
    assert list(rows[0]) == ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
    assert len(rows) == sample.n_images == len({r["image_id"] for r in rows})
    for row in rows:
        assert re.fullmatch(r"HAM_\d{7}", row["lesion_id"]) and re.fullmatch(r"ISIC_\d{7}", row["image_id"])
        assert row["dx"] in LABELS
        assert row["dx_type"] in {"histo", "follow_up", "consensus", "confocal"}
        assert row["sex"] in {"male", "female", "unknown"} and 0 < float(row["age"]) <= 85
        part = 1 if int(row["image_id"][5:]) < 29306 else 2
        assert (root / f"HAM10000_images_part_{part}" / f"{row['image_id']}.jpg").is_file()
    assert all(any((root / f"HAM10000_images_part_{k}").iterdir()) for k in (1, 2))


def test_images_are_600_by_450_jpegs(sample):
    paths = sorted(sample.out.glob("HAM10000_images_part_*/*.jpg"))
    assert len(paths) == sample.n_images
    for path in paths[:: max(1, len(paths) // 8)]:
        image = cv2.imread(str(path))
        assert image.shape == (450, 600, 3)
        assert 40 < image.mean() < 240 and image.std() > 5


def test_every_class_present_with_several_images_per_lesion(sample):
    rows = _rows(sample.out)
    per_lesion = Counter(r["lesion_id"] for r in rows)
    assert len(per_lesion) == sample.n_lesions == 40
    assert set(per_lesion.values()) <= {1, 2, 3, 4} and max(per_lesion.values()) > 1
    assert {r["dx"] for r in rows} == set(LABELS)
    assert sample.lesions_per_class == lesion_counts(40)
    assert sample.images_per_class == {c: sum(r["dx"] == c for r in rows) for c in LABELS}
    lesion_labels = {(r["lesion_id"], r["dx"]) for r in rows}
    assert len(lesion_labels) == len(per_lesion)  # one diagnosis per lesion


def test_class_mix_follows_ham10000_with_three_lesions_minimum():
    counts = lesion_counts(120)
    assert sum(counts.values()) == 120 and min(counts.values()) >= 3
    assert max(counts, key=counts.get) == "nv" and counts["nv"] > 70
    big = lesion_counts(10015)
    assert all(abs(big[c] - HAM_PROPORTIONS[c]) <= 2 for c in LABELS)
    with pytest.raises(SampleDataError, match="at least 21"):
        lesion_counts(20)


def test_readme_says_the_images_are_synthetic(sample):
    text = (sample.out / "README.txt").read_text(encoding="utf-8")
    assert text.startswith("SYNTHETIC") and "not for any clinical use" in text


def test_loads_and_splits_by_lesion(sample):
    ds = load_dataset(sample.out, strict=True)
    assert ds.layout == "ham10000" and len(ds.records) == sample.n_images and ds.warnings == ()
    splits = split_by_lesion(ds.records)
    for name in ("train", "val", "test"):
        assert {r.label for r in splits[name]} == set(LABELS)


def test_same_seed_same_content_other_seed_other_content(tmp_path):
    def make(name, seed):
        summary = make_sample_dataset(tmp_path / name, n_lesions=21, images_per_lesion=(1, 2), seed=seed, size=(96, 72))
        rows = _rows(summary.out)
        images = [cv2.imread(str(next(summary.out.glob(f"*/{r['image_id']}.jpg")))) for r in rows]
        return rows, images

    rows_a, images_a = make("a", 5)
    rows_b, images_b = make("b", 5)
    assert rows_a == rows_b
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 2 for a, b in zip(images_a, images_b))
    assert images_a[0].shape == (72, 96, 3)
    rows_c, _ = make("c", 6)
    assert rows_c != rows_a


def test_refuses_a_folder_that_holds_other_files(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(SampleDataError, match="is not empty"):
        make_sample_dataset(tmp_path, n_lesions=21)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_regenerating_over_a_previous_sample_replaces_it(tmp_path):
    make_sample_dataset(tmp_path, n_lesions=21, images_per_lesion=(3, 3), size=(64, 48))
    summary = make_sample_dataset(tmp_path, n_lesions=21, images_per_lesion=(1, 1), size=(64, 48), seed=1)
    assert len(list(tmp_path.glob("*/*.jpg"))) == summary.n_images == 21


def test_interrupted_rewrite_does_not_look_like_a_dataset(tmp_path, monkeypatch):
    from edge.data.datasets import DatasetError
    from train.data import sample_data

    make_sample_dataset(tmp_path, n_lesions=21, images_per_lesion=(1, 1), size=(64, 48))
    (tmp_path / "sample_video.mp4").write_bytes(b"old video")
    real, calls = sample_data._write_lesion_images, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(sample_data, "_write_lesion_images", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_sample_dataset(tmp_path, n_lesions=21, images_per_lesion=(1, 1), size=(64, 48), seed=1)
    assert not (tmp_path / "HAM10000_metadata.csv").exists() and not (tmp_path / "sample_video.mp4").exists()
    with pytest.raises(DatasetError, match="no dataset found"):
        load_dataset(tmp_path)


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(SampleDataError, match="images_per_lesion"):
        make_sample_dataset(tmp_path / "x", images_per_lesion=(0, 2))
    with pytest.raises(SampleDataError, match="too small"):
        make_sample_dataset(tmp_path / "y", size=(16, 12))


def _read_video(path):
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened()
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def test_video_from_a_dataset_folder(sample, tmp_path):
    path = make_sample_video(tmp_path / "demo.mp4", sample.out, seconds=3, fps=10, size=(320, 240), seed=1)
    assert path.is_file() and path.suffix in {".mp4", ".avi"}
    frames = _read_video(path)
    assert len(frames) == 30 and frames[0].shape == (240, 320, 3)
    brightness = np.array([f.mean() for f in frames])
    assert brightness.max() - brightness.min() > 40  # has a too-dark and a too-bright stretch
    sharpness = np.array([cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var() for f in frames])
    assert sharpness.max() > 2 * sharpness.min()  # has a blurry stretch


def test_video_from_records_with_default_length(sample, tmp_path):
    records = load_dataset(sample.out).records[:5]
    frames = _read_video(make_sample_video(tmp_path / "v.mp4", records))
    assert len(frames) == 180 and frames[0].shape == (480, 640, 3)


def test_video_needs_images(tmp_path):
    with pytest.raises(SampleDataError, match="no images"):
        make_sample_video(tmp_path / "v.mp4", [])
