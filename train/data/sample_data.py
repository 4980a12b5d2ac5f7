"""Synthetic sample data in the HAM10000 layout, and a demo video made from it.

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

from edge.data.datasets import HAM_METADATA, LABELS, DatasetError, Record, load_dataset

HAM_CLASS_COUNTS = {"akiec": 327, "bcc": 514, "bkl": 1099, "df": 115, "mel": 1113, "nv": 6705, "vasc": 142}
MIN_LESIONS_PER_CLASS = 3
IMAGE_DIRS = ("HAM10000_images_part_1", "HAM10000_images_part_2")
CANVAS_DETAIL = 0.6  # lesions are drawn at this fraction of photo resolution, then enlarged
FIRST_IMAGE, FIRST_PART_2_IMAGE = 24306, 29306  # HAM10000 numbers its images ISIC_0024306 onwards
README = """\
SYNTHETIC SAMPLE DATA - NOT MEDICAL IMAGES

Every image in this folder was drawn by train/sample_data.py from random shapes,
colours and noise. None shows a real skin lesion or a real person, and the
metadata (diagnoses, ages, sexes, body sites) is made up.

The folder copies the layout of HAM10000 as Kaggle ships it, so the training
and deployment tools can be tried end to end without the real dataset.

Use it for demos and tests only. It is not for any clinical use: a model trained
on it has learned nothing about real skin lesions.
"""

# Colours are RGB.
SKIN_FAIR, SKIN_TAN = (238, 196, 176), (204, 150, 116)
TAN, LIGHT_BROWN, BROWN, DARK_BROWN = (192, 146, 104), (166, 114, 78), (124, 80, 54), (82, 52, 36)
BLACK, BLUE_GREY, REGRESSION = (38, 28, 30), (104, 112, 140), (222, 204, 198)
PINK, PEARL, VESSEL = (226, 150, 152), (238, 200, 196), (172, 30, 44)
RED, PURPLE, SEPTUM = (196, 40, 56), (104, 40, 96), (222, 176, 176)
RED_PATCH, SCALE, SCAR, MILIUM, HAIR = (206, 98, 92), (240, 230, 210), (236, 220, 206), (232, 218, 180), (44, 32, 28)


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


def _prepare_folder(out: Path) -> None:
    """Create `out`, or clear a previous sample there; refuse any other non-empty folder."""
    if out.exists() and not out.is_dir():
        raise SampleDataError(f"{out} is a file; choose a folder path for the sample data")
    if out.is_dir() and any(out.iterdir()):
        readme = out / "README.txt"
        if not (readme.is_file() and readme.read_text(encoding="utf-8", errors="replace").startswith("SYNTHETIC")):
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
    drawn = _draw_lesion(lesion.label, rng, min(size) / 450 * CANVAS_DETAIL)
    skin = _between(SKIN_FAIR, SKIN_TAN, rng.beta(1.5, 3.0))
    for image_id in lesion.image_ids:
        image = _photograph(drawn, skin, grain, rng, size)
        folder = IMAGE_DIRS[int(image_id[5:]) >= FIRST_PART_2_IMAGE]
        if not cv2.imwrite(str(out / folder / f"{image_id}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise SampleDataError(f"could not write {out / folder / image_id}.jpg; check free space and permissions")


# ---------------------------------------------------------------- drawing one lesion


def _draw_lesion(label: str, rng: np.random.Generator, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Square float32 canvases centred on the lesion: colour (RGB) and opacity."""
    low, high = {"nv": (80, 170), "mel": (95, 200), "bkl": (85, 185), "bcc": (85, 170),
                 "akiec": (90, 185), "df": (50, 100), "vasc": (75, 150)}[label]  # fmt: skip
    radius = rng.uniform(low, high) * scale
    side = int(2 * 1.75 * radius) + 8
    rgb, alpha = _PAINTERS[label](rng, side, radius)
    rgb = rgb * (1 + 0.04 * _noise(rng, side, radius / 5)[..., None])
    return np.clip(rgb, 0, 255).astype(np.float32), np.clip(alpha, 0, 1).astype(np.float32)


def _noise(rng: np.random.Generator, side: int, cell: float) -> np.ndarray:
    """Smooth noise with zero mean and unit spread, varying over about `cell` pixels."""
    n = max(2, int(side / max(cell, 1.0)) + 2)
    field = cv2.resize(rng.standard_normal((n, n), dtype=np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def _shape(rng: np.random.Generator, side: int, radius: float, wobble: float, ragged: float, soft: float):
    """Blob mask in [0, 1] and its depth (0 at the border, 1 at the deepest point)."""
    phi = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    r = np.ones_like(phi)
    for k in range(1, 7):
        r += wobble * rng.normal(0, 1 / k) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    for k in range(7, 25) if ragged else ():
        r += ragged * rng.normal(0, 1 / np.sqrt(k)) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.35, 1.6) * radius
    points = np.stack([side / 2 + r * np.cos(phi), side / 2 + r * np.sin(phi)], axis=1)
    mask = np.zeros((side, side), np.uint8)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    depth = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    depth /= max(float(depth.max()), 1.0)
    return _blur(mask.astype(np.float32) / 255, soft), depth


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma) if sigma > 0.3 else image


def _fill(side: int, colour) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.float32), (side, side, 3)).copy()


def _mix(rgb: np.ndarray, colour, weight: np.ndarray) -> np.ndarray:
    """Blend `colour` into `rgb` with a per-pixel weight in [0, 1]."""
    w = np.clip(weight, 0, 1)[..., None]
    return rgb * (1 - w) + np.array(colour, np.float32) * w


def _between(a, b, t: float) -> np.ndarray:
    return np.array(a, np.float32) + t * (np.array(b, np.float32) - np.array(a, np.float32))


def _patches(rng: np.random.Generator, side: int, cell: float, cover: float, mask: np.ndarray, tilt: float = 0.0):
    """Soft patches covering about `cover` of the mask; `tilt` pushes them towards one side."""
    field = _noise(rng, side, cell)
    if tilt:
        angle = rng.uniform(0, 2 * np.pi)
        y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side - 0.5
        field += tilt * 4 * (x * np.cos(angle) + y * np.sin(angle))
    inside = field[::3, ::3][mask[::3, ::3] > 0.5]
    if cover <= 0 or inside.size == 0:
        return np.zeros_like(field)
    threshold = np.quantile(inside, 1 - cover)
    return np.clip((field - threshold) / 0.35, 0, 1)


def _lines(rng: np.random.Generator, side: int, radius: float, trunks: int, width: float) -> np.ndarray:
    """Branching thin lines (vessels) near the centre, as a weight in [0, 1]."""
    layer = np.zeros((side, side), np.uint8)
    stack = [(side / 2 + rng.uniform(-0.6, 0.6, 2) * radius, rng.uniform(0, 2 * np.pi), 1.0) for _ in range(trunks)]
    while stack:
        start, heading, thickness = stack.pop()
        points = [start]
        for _ in range(int(rng.integers(4, 10))):
            heading += rng.normal(0, 0.45)
            points.append(points[-1] + radius * 0.09 * np.array([np.cos(heading), np.sin(heading)]))
            if thickness > 0.5 and rng.random() < 0.18 and len(stack) < 40:
                stack.append((points[-1], heading + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1), thickness * 0.7))
        pts = np.round(np.array(points) * 16).astype(np.int32)
        cv2.polylines(layer, [pts], False, 255, max(1, round(width * thickness)), cv2.LINE_AA, shift=4)
    return layer.astype(np.float32) / 255


def _dots(rng: np.random.Generator, side: int, radius: float, count: int, size: float) -> np.ndarray:
    """Small round dots inside the lesion, as a weight in [0, 1]."""
    layer = np.zeros((side, side), np.uint8)
    for _ in range(count):
        centre = np.round((side / 2 + rng.uniform(-0.7, 0.7, 2) * radius) * 16).astype(int)
        r = max(1, round(size * rng.uniform(0.6, 1.4) * 16))
        cv2.circle(layer, tuple(int(v) for v in centre), int(r), 255, -1, cv2.LINE_AA, shift=4)
    return _blur(layer.astype(np.float32) / 255, size * 0.3)


def _paint_nv(rng, side, radius):
    """Common naevus: round or oval, evenly brown, smooth border."""
    mask, depth = _shape(rng, side, radius, rng.uniform(0.03, 0.12), 0.0, radius * rng.uniform(0.04, 0.1))
    rgb = _fill(side, _between(TAN, DARK_BROWN, rng.uniform(0.2, 0.9)))
    rgb *= (1 + rng.uniform(-0.25, 0.15) * depth + 0.05 * _noise(rng, side, radius / 3))[..., None]
    if rng.random() < 0.6:  # pigment network
        rgb *= (1 - rng.uniform(0.08, 0.2) * (np.abs(_noise(rng, side, radius / 9)) < 0.3))[..., None]
    if rng.random() < 0.3:  # an off-centre darker area, as in atypical naevi
        rgb = _mix(rgb, DARK_BROWN, rng.uniform(0.3, 0.7) * _patches(rng, side, radius / 2, 0.3, mask, tilt=0.6))
    return rgb, mask * rng.uniform(0.8, 0.95)


def _paint_mel(rng, side, radius):
    """Melanoma: asymmetric, several colours, ragged border."""
    wobble, ragged, soft = rng.uniform(0.12, 0.3), rng.uniform(0.03, 0.09), radius * rng.uniform(0.02, 0.07)
    mask, _ = _shape(rng, side, radius, wobble, ragged, soft)
    rgb = _fill(side, _between(LIGHT_BROWN, DARK_BROWN, rng.uniform(0.2, 1.0)))
    rgb *= (1 + 0.1 * _noise(rng, side, radius / 4))[..., None]
    variegation = rng.uniform(0.25, 1.0)  # some melanomas show few colours
    for colour, cover, strength in (
        (BLACK, rng.uniform(0.05, 0.4), rng.uniform(0.5, 0.9)),
        (BLUE_GREY, rng.uniform(0.0, 0.3), rng.uniform(0.4, 0.75)),
        (REGRESSION, rng.uniform(0.0, 0.2), rng.uniform(0.3, 0.7)),
        (TAN, rng.uniform(0.0, 0.3), rng.uniform(0.3, 0.7)),
        (RED, rng.uniform(0.0, 0.1), rng.uniform(0.2, 0.5)),
    ):
        patches = _blur(_patches(rng, side, radius / 2.2, cover * variegation, mask, tilt=0.6), radius * 0.07)
        rgb = _mix(rgb, colour, strength * patches)
    return rgb, mask * rng.uniform(0.85, 0.97)


def _paint_bkl(rng, side, radius):
    """Benign keratosis: waxy tan, furrowed surface, milia-like pale dots, sharp border."""
    wobble, ragged, soft = rng.uniform(0.06, 0.18), rng.uniform(0.0, 0.03), radius * rng.uniform(0.01, 0.04)
    mask, _ = _shape(rng, side, radius, wobble, ragged, soft)
    if rng.random() < 0.75:
        base = _between(TAN, BROWN, rng.uniform(0, 1))
    else:  # dark variant, easily taken for a naevus or melanoma
        base = _between(BROWN, DARK_BROWN, rng.uniform(0, 0.7))
    rgb = _fill(side, base) * (1 + 0.12 * _noise(rng, side, radius / 4))[..., None]
    furrows = _blur(np.clip((1 - np.abs(_noise(rng, side, radius / 3.5)) - 0.65) / 0.3, 0, 1), radius * 0.02)
    rgb *= (1 - rng.uniform(0.2, 0.4) * furrows)[..., None]
    rgb = _mix(rgb, MILIUM, 0.6 * _dots(rng, side, radius, int(rng.integers(0, 12)), radius * 0.04))
    return rgb, mask * rng.uniform(0.85, 0.97)


def _paint_bcc(rng, side, radius):
    """Basal cell carcinoma: translucent pearly pink, branching vessels, sometimes blue-grey nests."""
    mask, _ = _shape(rng, side, radius, rng.uniform(0.05, 0.18), 0.0, radius * rng.uniform(0.08, 0.18))
    rgb = _fill(side, _between(PINK, PEARL, rng.uniform(0, 1)))
    rgb *= (1 + 0.05 * _noise(rng, side, radius / 3))[..., None]
    rgb = _mix(rgb, (250, 246, 242), 0.5 * np.clip(_noise(rng, side, radius / 3) - 1.2, 0, 1))
    vessels = _lines(rng, side, radius, int(rng.integers(2, 7)), 2.5 * radius / 100)
    rgb = _mix(rgb, VESSEL, rng.uniform(0.5, 0.9) * _blur(vessels, radius * 0.008))
    if rng.random() < 0.4:
        rgb = _mix(rgb, BLUE_GREY, 0.7 * _dots(rng, side, radius, int(rng.integers(1, 5)), radius * 0.1))
    if rng.random() < 0.25:  # ulceration
        rgb = _mix(rgb, (120, 40, 36), 0.8 * _dots(rng, side, radius * 0.4, 1, radius * 0.18))
    return rgb, mask * rng.uniform(0.75, 0.92)


def _paint_akiec(rng, side, radius):
    """Actinic keratosis / intraepidermal carcinoma: red, rough and scaly, ill-defined border."""
    wobble, ragged, soft = rng.uniform(0.1, 0.22), rng.uniform(0.02, 0.05), radius * rng.uniform(0.12, 0.25)
    mask, _ = _shape(rng, side, radius, wobble, ragged, soft)
    base = _between(RED_PATCH, PINK, rng.uniform(0, 0.6))
    if rng.random() < 0.25:  # pigmented variant
        base = _between(base, BROWN, rng.uniform(0.2, 0.45))
    rough = 0.1 * _noise(rng, side, radius / 14) + 0.06 * _noise(rng, side, radius / 4)
    rgb = _fill(side, base) * (1 + rough)[..., None]
    flakes = np.clip(_noise(rng, side, radius / 20) + 0.8, 0, 1)
    scale = _patches(rng, side, radius / 7, rng.uniform(0.15, 0.45), mask) * flakes
    rgb = _mix(rgb, SCALE, rng.uniform(0.55, 0.9) * scale)
    return rgb, mask * rng.uniform(0.6, 0.85)


def _paint_df(rng, side, radius):
    """Dermatofibroma: small, firm, light brown rim around a pale scar-like centre."""
    mask, depth = _shape(rng, side, radius, rng.uniform(0.04, 0.12), 0.0, radius * rng.uniform(0.1, 0.2))
    rgb = _fill(side, _between(LIGHT_BROWN, BROWN, rng.uniform(0, 0.7)))
    rgb *= (1 - 0.1 * (np.abs(_noise(rng, side, radius / 7)) < 0.3))[..., None]
    centre = np.clip((depth - rng.uniform(0.35, 0.6)) / 0.15 + 0.4 * _noise(rng, side, radius / 4), 0, 1)
    rgb = _mix(rgb, SCAR, rng.uniform(0.7, 0.95) * _blur(centre, radius * 0.08))
    return rgb, mask * rng.uniform(0.75, 0.92)


def _paint_vasc(rng, side, radius):
    """Vascular lesion: red to purple lacunae divided by pale septa."""
    count = int(rng.integers(4, 12))
    centres = side / 2 + rng.uniform(-0.55, 0.55, (count, 2)) * radius
    radii = radius * rng.uniform(0.22, 0.45, count)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    # signed distance to each lacuna's edge; the nearest lacuna owns the pixel
    edge = np.stack([np.hypot(x - cx, y - cy) - r for (cx, cy), r in zip(centres, radii)])
    nearest = np.argmin(edge, axis=0)
    first, second = np.partition(edge, 1, axis=0)[:2]
    hue = rng.uniform(0, 1)
    colours = np.array([_between(RED, PURPLE, float(np.clip(hue + rng.normal(0, 0.2), 0, 1))) for _ in range(count)])
    rgb = colours[nearest] * rng.uniform(0.7, 1.05, (count, 1))[nearest]
    rgb *= (1 - 0.3 * np.clip(-first / radii[nearest], 0, 1))[..., None]
    septa = np.clip(1 - (second - first) / (radius * rng.uniform(0.03, 0.06)), 0, 1)
    rgb = _mix(rgb, SEPTUM, 0.75 * septa)
    mask = _blur((first < 0).astype(np.float32), radius * 0.025)
    return rgb.astype(np.float32), mask * rng.uniform(0.85, 0.97)


_PAINTERS = {
    "akiec": _paint_akiec, "bcc": _paint_bcc, "bkl": _paint_bkl, "df": _paint_df,
    "mel": _paint_mel, "nv": _paint_nv, "vasc": _paint_vasc,
}  # fmt: skip


# ---------------------------------------------------------------- photographing it


def _photograph(
    lesion: tuple[np.ndarray, np.ndarray],
    skin_tone: np.ndarray,
    grain: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int],
) -> np.ndarray:
    """One BGR uint8 photo of the lesion on skin, with a new pose, lighting, focus and hairs."""
    width, height = size
    scale = min(size) / 450
    image = _low_res_map(_skin(rng, skin_tone, width // 4 + 1, height // 4 + 1), size)
    colour, alpha = lesion
    c = colour.shape[0] / 2
    pose = cv2.getRotationMatrix2D((c, c), rng.uniform(0, 360), rng.uniform(0.85, 1.2) / CANVAS_DETAIL)
    pose[:, 2] += np.array([width, height]) * (0.5 + np.clip(rng.normal(0, 0.07, 2), -0.15, 0.15)) - c
    colour = cv2.warpAffine(colour, pose, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(alpha, pose, size, flags=cv2.INTER_LINEAR, borderValue=0)
    image = cv2.blendLinear(image, colour, 1 - alpha, alpha)
    if rng.random() < 0.35:
        hairs = _hairs(rng, width, height, scale)
        image = image * (1 - hairs) + hairs * np.array(HAIR, np.float32)
    image *= _low_res_map(_light(rng, width // 4 + 1, height // 4 + 1), size)
    if rng.random() < 0.3:
        image = _blur(image, rng.uniform(0.5, 2.2) * scale)
    dx, dy = rng.integers(0, grain.shape[1] - width + 1), rng.integers(0, grain.shape[0] - height + 1)
    image += grain[dy : dy + height, dx : dx + width] * rng.uniform(1.5, 5)
    return cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)


def _low_res_map(small: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(small.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)


def _skin(rng: np.random.Generator, tone: np.ndarray, width: int, height: int) -> np.ndarray:
    """Skin colour with blotchy shading and redness, at low resolution."""
    side = max(width, height)
    shade = 0.035 * _noise(rng, side, side / 4) + 0.015 * _noise(rng, side, side / 20)
    redness = np.clip(_noise(rng, side, side / 6), 0, None) * rng.uniform(0, 0.06)
    image = np.broadcast_to(tone, (side, side, 3)) * (1 + shade)[..., None]
    image[..., 1:] *= (1 - redness)[..., None]
    return image[:height, :width]


def _hairs(rng: np.random.Generator, width: int, height: int, scale: float) -> np.ndarray:
    """Gently curved dark hairs as an RGB weight in [0, 1]."""
    layer = np.zeros((height, width), np.uint8)
    t = np.linspace(0, 1, 32)[:, None]
    for _ in range(int(rng.integers(1, 12))):
        start = rng.uniform(0, 1, 2) * (width, height)
        heading = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.3, 0.9) * width
        end = start + length * np.array([np.cos(heading), np.sin(heading)])
        bend = rng.normal(0, 0.12) * length * np.array([-np.sin(heading), np.cos(heading)])
        curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * ((start + end) / 2 + bend) + t**2 * end
        thickness = max(1, round(rng.uniform(0.8, 2.5) * scale))
        cv2.polylines(layer, [np.round(curve * 16).astype(np.int32)], False, 255, thickness, cv2.LINE_AA, shift=4)
    weight = layer.astype(np.float32) * (rng.uniform(0.6, 0.9) / 255)
    return cv2.merge([weight, weight, weight])


def _light(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Per-pixel RGB gain: exposure, colour cast, vignette, uneven light, sometimes a dermatoscope rim."""
    y, x = np.ogrid[0:height, 0:width]
    x, y = x / width - 0.5, y / height - 0.5
    cx, cy = rng.normal(0, 0.1, 2)
    gain = 1 - rng.uniform(0, 0.45) * ((x - cx) ** 2 + (y - cy) ** 2) * 2
    angle = rng.uniform(0, 2 * np.pi)
    gain = gain * (1 + rng.uniform(0, 0.15) * (x * np.cos(angle) + y * np.sin(angle)) * 2)
    if rng.random() < 0.25:
        aspect = width / height
        radius = rng.uniform(0.8, 0.97) * 0.5 * np.hypot(aspect, 1)
        distance = np.hypot((x - rng.normal(0, 0.03)) * aspect, y - rng.normal(0, 0.03))
        gain = gain * (1 - 0.93 * np.clip((distance - radius) / (0.03 * radius), 0, 1))
    cast = rng.uniform(0.78, 1.15) * rng.normal(1, 0.03, 3)
    return gain[..., None] * cast


# ---------------------------------------------------------------- demo video


def make_sample_video(
    out_path: Path,
    source: Path | Sequence[Record],
    *,
    seconds: float = 12.0,
    fps: int = 15,
    size: tuple[int, int] = (640, 480),
    seed: int = 0,
) -> Path:
    """Write a camera-like video over a few lesions of `source` (a dataset folder or records).

    The camera pans and zooms slowly, loses focus twice, and is too dark once
    and too bright once. Writes MP4 (mp4v), or MJPG .avi where mp4v is not
    available; returns the path written.
    """
    records = load_dataset(Path(source)).records if isinstance(source, (str, Path)) else tuple(source)
    if not records:
        raise SampleDataError("no images to make a video from; pass a dataset folder or a non-empty list of records")
    n_frames = max(1, round(seconds * fps))
    rng = np.random.default_rng(seed)
    shots = _pick_shots(records, rng, count=max(1, round(seconds / 3)))
    writer, path = _open_writer(Path(out_path), fps, size)
    noise = [rng.normal(0, 1, (size[1], size[0], 1)).astype(np.float32) for _ in range(4)]
    moves = [_camera_move(rng) for _ in shots]
    blur_at, dark_at, bright_at = rng.uniform(0.18, 0.26), rng.uniform(0.38, 0.44), rng.uniform(0.76, 0.82)
    try:
        for i in range(n_frames):
            t = i / max(n_frames - 1, 1)
            shot = min(int(t * len(shots)), len(shots) - 1)
            local = t * len(shots) - shot
            frame = _frame(shots[shot], moves[shot], min(local, 1.0), size).astype(np.float32)
            sigma = 10 * _bump(t, blur_at, 0.08) + 6 * _bump(t, 0.62, 0.05)
            dark, bright = _bump(t, dark_at, 0.1), _bump(t, bright_at, 0.08)
            frame = _blur(frame, sigma * min(size) / 480) * (1 - 0.75 * dark) * (1 + bright) + 45 * bright
            frame += (2 + 6 * dark) * noise[i % len(noise)]
            writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    finally:
        writer.release()
    return path


def _pick_shots(records: Sequence[Record], rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """Read one image each of up to `count` lesions, taking classes in turn."""
    by_class: dict[str, list[Record]] = {}
    for r in records:
        by_class.setdefault(r.label, []).append(r)
    queues = [list(rng.permutation(len(by_class[c]))) for c in sorted(by_class)]
    classes = [by_class[c] for c in sorted(by_class)]
    order = rng.permutation(len(classes))
    shots, seen = [], set()
    while len(shots) < count and any(queues):
        for k in order:
            if queues[k] and len(shots) < count:
                record = classes[k][queues[k].pop()]
                if record.lesion_id not in seen:
                    seen.add(record.lesion_id)
                    shots.append(_read_image(record.path))
    return shots


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SampleDataError(f"cannot read image {path}; check that it is a readable JPEG or PNG")
    return image


def _open_writer(path: Path, fps: int, size: tuple[int, int]) -> tuple[cv2.VideoWriter, Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    for codec, target in (("mp4v", path), ("MJPG", path.with_suffix(".avi"))):
        writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*codec), float(fps), size)
        if writer.isOpened():
            return writer, target
        writer.release()
    raise SampleDataError(
        f"OpenCV cannot write {path} with mp4v or MJPG; install an opencv-python build with video support"
    )


def _camera_move(rng: np.random.Generator) -> np.ndarray:
    """Start and end of a slow pan/zoom: rows (x offset, y offset, zoom, angle)."""
    start = [*rng.uniform(-0.12, 0.12, 2), rng.uniform(1.0, 1.25), rng.uniform(-8, 8)]
    end = [*rng.uniform(-0.12, 0.12, 2), rng.uniform(1.15, 1.6), rng.uniform(-8, 8)]
    return np.array([start, end])


def _frame(image: np.ndarray, move: np.ndarray, progress: float, size: tuple[int, int]) -> np.ndarray:
    """The camera's view of `image` part way (0..1) through `move`."""
    eased = progress * progress * (3 - 2 * progress)
    dx, dy, zoom, angle = move[0] + eased * (move[1] - move[0])
    height, width = image.shape[:2]
    fit = max(size[0] / width, size[1] / height)
    centre = (width * (0.5 + dx), height * (0.5 + dy))
    view = cv2.getRotationMatrix2D(centre, angle, zoom * fit)
    view[:, 2] += np.array(size) / 2 - np.array(centre)
    return cv2.warpAffine(image, view, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _bump(t: float, start: float, length: float) -> float:
    """0 outside [start, start + length], rising smoothly to 1 in the middle."""
    u = (t - start) / length
    return float(np.sin(np.pi * u) ** 2) if 0 <= u <= 1 else 0.0
