"""Synthetic sample data in the HAM10000 layout (the images: :mod:`train.data.sample_lesions`; the
demo video made from them: :mod:`train.data.sample_video`).

The images are drawn from random shapes, colours and noise. They only mimic
the look of dermoscopy photographs so that the tools can be tried end to end;
they are not medical images and carry no clinical meaning.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.data.datasets import HAM_METADATA, LABELS, DatasetError
from train.data.sample_lesions import (
    CANVAS_DETAIL,
    SKIN_FAIR,
    SKIN_TAN,
    between,
    draw_lesion,
    photograph,
)

HAM_CLASS_COUNTS = {"akiec": 327, "bcc": 514, "bkl": 1099, "df": 115, "mel": 1113, "nv": 6705, "vasc": 142}
MIN_LESIONS_PER_CLASS = 3
IMAGE_DIRS = ("HAM10000_images_part_1", "HAM10000_images_part_2")
FIRST_IMAGE, FIRST_PART_2_IMAGE = 24306, 29306  # HAM10000 numbers its images ISIC_0024306 onwards
README = """\
SYNTHETIC SAMPLE DATA - NOT MEDICAL IMAGES

Every image in this folder was drawn by train/data/sample_data.py from random shapes,
colours and noise. None shows a real skin lesion or a real person, and the
metadata (diagnoses, ages, sexes, body sites) is made up.

The folder copies the layout of HAM10000 as Kaggle ships it, so the training
and deployment tools can be tried end to end without the real dataset.

Use it for demos and tests only. It is not for any clinical use: a model trained
on it has learned nothing about real skin lesions.
"""



class SampleDataError(DatasetError):
    """Sample data cannot be made as asked; the message says what to change."""


@dataclass(frozen=True)
class SampleSummary:
    """What `make_sample_dataset` wrote."""

    out: Path
    n_images: int
    n_lesions: int
    images_per_class: dict[str, int]
    lesions_per_class: dict[str, int]


@dataclass(frozen=True)
class _Lesion:
    label: str
    lesion_id: str
    image_ids: tuple[str, ...]
    age: int
    sex: str
    localization: str
    dx_type: str


# ---------------------------------------------------------------- dataset


def make_sample_dataset(
    out: Path,
    *,
    n_lesions: int = 120,
    images_per_lesion: tuple[int, int] = (1, 4),
    seed: int = 0,
    size: tuple[int, int] = (600, 450),
) -> SampleSummary:
    """Write a synthetic dataset in HAM10000's Kaggle layout under `out`.

    `images_per_lesion` is an inclusive range; `size` is (width, height).
    The same seed gives the same content.
    """
    low, high = images_per_lesion
    if not 1 <= low <= high:
        raise SampleDataError(f"images_per_lesion={images_per_lesion} must be (low, high) with 1 <= low <= high")
    if min(size) < 32:
        raise SampleDataError(f"image size {size} is too small; use at least 32 x 32 pixels")
    counts = lesion_counts(n_lesions)
    out = Path(out)
    _prepare_folder(out)
    rng = np.random.default_rng(seed)
    lesions = _plan_lesions(rng, counts, low, high)
    grain = cv2.merge([rng.standard_normal((size[1] + 64, size[0] + 64), dtype=np.float32)] * 3)
    for i, lesion in enumerate(lesions):
        _write_lesion_images(out, lesion, np.random.default_rng([seed, i]), grain, size)
    _write_metadata(out / HAM_METADATA, lesions)
    (out / "README.txt").write_text(README, encoding="utf-8")
    return SampleSummary(
        out=out,
        n_images=sum(len(les.image_ids) for les in lesions),
        n_lesions=len(lesions),
        images_per_class={c: sum(len(les.image_ids) for les in lesions if les.label == c) for c in LABELS},
        lesions_per_class={c: sum(les.label == c for les in lesions) for c in LABELS},
    )


def lesion_counts(n_lesions: int) -> dict[str, int]:
    """Lesions per class in HAM10000's proportions, with at least 3 per class."""
    if n_lesions < MIN_LESIONS_PER_CLASS * len(LABELS):
        raise SampleDataError(
            f"n_lesions={n_lesions} is too few; use at least {MIN_LESIONS_PER_CLASS * len(LABELS)} "
            f"so each of the {len(LABELS)} classes gets {MIN_LESIONS_PER_CLASS} lesions"
        )
    total = sum(HAM_CLASS_COUNTS.values())
    target = {c: n_lesions * HAM_CLASS_COUNTS[c] / total for c in LABELS}
    counts = {c: max(MIN_LESIONS_PER_CLASS, int(target[c])) for c in LABELS}
    while sum(counts.values()) < n_lesions:
        counts[max(LABELS, key=lambda c: target[c] - counts[c])] += 1
    while sum(counts.values()) > n_lesions:
        shrinkable = [c for c in LABELS if counts[c] > MIN_LESIONS_PER_CLASS]
        counts[max(shrinkable, key=lambda c: counts[c] / target[c])] -= 1
    return counts


def is_sample_data(root: Path) -> bool:
    """True for a folder this module wrote (its README.txt says SYNTHETIC SAMPLE DATA)."""
    readme = Path(root) / "README.txt"
    try:
        return readme.is_file() and readme.read_text(encoding="utf-8", errors="replace").startswith("SYNTHETIC")
    except OSError:
        return False


def _prepare_folder(out: Path) -> None:
    """Create `out`, or clear a previous sample there; refuse any other non-empty folder."""
    if out.exists() and not out.is_dir():
        raise SampleDataError(f"{out} is a file; choose a folder path for the sample data")
    if out.is_dir() and any(out.iterdir()):
        if not is_sample_data(out):
            raise SampleDataError(f"{out} is not empty; choose an empty or new folder for the sample data")
        # the metadata and video go first: an interrupted rewrite must not look like a complete dataset
        for stale in (HAM_METADATA, "sample_video.mp4", "sample_video.avi"):
            (out / stale).unlink(missing_ok=True)
        for folder in IMAGE_DIRS:
            for image in (out / folder).glob("ISIC_*.jpg"):
                image.unlink()
    for folder in IMAGE_DIRS:
        (out / folder).mkdir(parents=True, exist_ok=True)


def _plan_lesions(rng: np.random.Generator, counts: dict[str, int], low: int, high: int) -> list[_Lesion]:
    labels = [c for c in LABELS for _ in range(counts[c])]
    n_images = rng.integers(low, high + 1, size=len(labels))
    lesion_numbers = rng.choice(max(7470, 2 * len(labels)), size=len(labels), replace=False)
    image_numbers = FIRST_IMAGE + rng.choice(max(10015, 2 * int(n_images.sum())), size=n_images.sum(), replace=False)
    lesions, used = [], 0
    for label, n, number in zip(labels, n_images, lesion_numbers):
        ids = tuple(f"ISIC_{k:07d}" for k in sorted(image_numbers[used : used + n]))
        used += n
        lesions.append(_Lesion(label, f"HAM_{number:07d}", ids, *_patient(rng, label)))
    return lesions


def _patient(rng: np.random.Generator, label: str) -> tuple[int, str, str, str]:
    """Made-up age, sex, body site and diagnosis method, loosely following HAM10000."""
    mean_age = {"akiec": 67, "bcc": 66, "bkl": 63, "df": 52, "mel": 61, "nv": 46, "vasc": 50}[label]
    age = int(np.clip(5 * round(rng.normal(mean_age, 14) / 5), 5, 85))
    sex = str(rng.choice(["male", "female", "unknown"], p=[0.54, 0.455, 0.005]))
    sites = ["back", "lower extremity", "trunk", "upper extremity", "abdomen", "face", "chest", "foot", "neck",
             "scalp", "hand", "ear", "genital", "acral", "unknown"]  # fmt: skip
    weights = np.array([22, 20, 14, 11, 10, 7, 4, 3, 2, 1.5, 1, 0.5, 0.5, 0.3, 2.2])
    if label in ("akiec", "bcc"):
        weights[[5, 9, 11]] *= 6  # face, scalp, ear
    site = str(rng.choice(sites, p=weights / weights.sum()))
    methods = {
        "nv": (["follow_up", "histo", "consensus"], [0.55, 0.33, 0.12]),
        "bkl": (["histo", "consensus", "confocal"], [0.5, 0.43, 0.07]),
        "df": (["histo", "consensus"], [0.55, 0.45]),
        "vasc": (["histo", "consensus"], [0.45, 0.55]),
    }.get(label, (["histo"], [1.0]))
    return age, sex, site, str(rng.choice(methods[0], p=methods[1]))


def _write_metadata(path: Path, lesions: Sequence[_Lesion]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"])
    for les in sorted(lesions, key=lambda les: (LABELS.index(les.label), les.lesion_id)):
        writer.writerows(
            [les.lesion_id, image_id, les.label, les.dx_type, f"{les.age}.0", les.sex, les.localization]
            for image_id in les.image_ids
        )
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _write_lesion_images(
    out: Path, lesion: _Lesion, rng: np.random.Generator, grain: np.ndarray, size: tuple[int, int]
) -> None:
    """Draw one lesion once, then photograph it once per image id with a new pose and lighting."""
    drawn = draw_lesion(lesion.label, rng, min(size) / 450 * CANVAS_DETAIL)
    skin = between(SKIN_FAIR, SKIN_TAN, rng.beta(1.5, 3.0))
    for image_id in lesion.image_ids:
        image = photograph(drawn, skin, grain, rng, size)
        folder = IMAGE_DIRS[int(image_id[5:]) >= FIRST_PART_2_IMAGE]
        if not cv2.imwrite(str(out / folder / f"{image_id}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise SampleDataError(f"could not write {out / folder / image_id}.jpg; check free space and permissions")
