"""The representative dataset that full-integer quantization is calibrated on.

Images come from the training split only (never validation or test), stratified by class so
rare classes are present, chosen reproducibly from a seed and preprocessed exactly as the device
does it (``edge.ops.image.load_image`` + ``edge.ops.preprocess.fit_to_input``). A set is stored under
``calibration/<name>/`` as ``images.npy`` (uint8, N x H x W x 3) and ``manifest.json`` and reused
when a later conversion asks for the same one.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ImageError
from edge.model.bundle import sha256_file
from edge.ops.image import load_image
from edge.ops.preprocess import fit_to_input
from edge.util.atomic import atomic_folder
from train.errors import TrainError

DEFAULT_SIZE = 300
MIN_SIZE = 20  # below this the activation ranges are guesses
WARN_SIZE = 100
ARRAY_FILE = "images.npy"
MANIFEST_FILE = "manifest.json"
DEFAULT_DIR = Path("calibration")
_MATCH_KEYS = ("source_run", "split_sha256", "seed", "requested_size", "input_size")


@dataclass(frozen=True)
class CalibrationSet:
    """A stored representative dataset: its folder, manifest and preprocessed images."""

    root: Path
    manifest: dict[str, Any]
    reused: bool
    warnings: tuple[str, ...] = ()

    @property
    def array_path(self) -> Path:
        return self.root / ARRAY_FILE

    def images(self) -> np.ndarray:
        return np.load(self.array_path, allow_pickle=False)

    def samples(self) -> Iterator[np.ndarray]:
        """Float32 batches of one image for the converter, raw 0..255 like the model's input.

        The first sample has one pixel set to 0 and one to 255, so the converter observes the
        whole input domain and a uint8 input gets scale 1 and zero point 0 exactly.
        """
        images = self.images()
        for i, img in enumerate(images):
            x = img.astype(np.float32)[np.newaxis]
            if i == 0:
                x[0, 0, 0, :], x[0, 0, 1, :] = 0.0, 255.0
            yield x


def allocate(available: dict[str, int], size: int) -> dict[str, int]:
    """Images per class: half the set shared equally (rare classes present), the rest by frequency."""
    n = min(size, sum(available.values()))
    counts = {c: min(a, max(1, n // (2 * len(available)))) for c, a in available.items()}
    while sum(counts.values()) < n:
        room = {c: available[c] - counts[c] for c in available if available[c] > counts[c]}
        left = n - sum(counts.values())
        total_room = sum(room.values())
        shares = {c: left * r / total_room for c, r in room.items()}
        extra = {c: min(room[c], int(s)) for c, s in shares.items()}
        if not any(extra.values()):  # fewer slots than classes with room: largest shares first
            for c in sorted(shares, key=lambda c: (-shares[c], c))[:left]:
                extra[c] = 1
        for c, k in extra.items():
            counts[c] += k
    return counts


def select(records: Sequence[Any], labels: Sequence[str], size: int, seed: int) -> list[Any]:
    """Choose a class-stratified calibration sample from training records (reproducible from seed)."""
    if size < max(MIN_SIZE, len(labels)):
        raise TrainError(f"A calibration set of {size} images is too small.",
                         f"Use --calibration-size {max(MIN_SIZE, len(labels))} or more "
                         f"(at least {MIN_SIZE}, one per class); a few hundred is typical.")
    by_class: dict[str, list[Any]] = {label: [] for label in labels}
    for r in records:
        if r.label not in by_class:
            raise TrainError(f"Training image {r.image_id} has label {r.label!r}, not one of the run's labels.",
                             "Use the dataset the run was trained on.")
        by_class[r.label].append(r)
    missing = [label for label, rs in by_class.items() if not rs]
    if missing:
        raise TrainError(f"Class(es) {', '.join(missing)} have no images in the training split, so the "
                         "calibration set cannot represent them.",
                         "Retrain with a split that puts every class in training, or check --data.")
    total = sum(len(rs) for rs in by_class.values())
    if total < MIN_SIZE:
        raise TrainError(f"The training split holds only {total} images; calibration needs at least {MIN_SIZE}.",
                         "Train on a larger dataset.")
    counts = allocate({c: len(rs) for c, rs in by_class.items()}, size)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in labels:
        rs = sorted(by_class[label], key=lambda r: r.image_id)
        order = rng.permutation(len(rs))[: counts[label]]
        chosen.extend(rs[i] for i in sorted(order))
    return chosen


def set_name(run: Path, split_sha: str, input_hw: tuple[int, int], size: int, seed: int) -> str:
    tag = hashlib.sha256(f"{run.resolve()}|{split_sha}".encode()).hexdigest()[:8]
    return f"{run.name}-{tag}-{input_hw[0]}x{input_hw[1]}-n{size}-seed{seed}"


def prepare_calibration(train_records: Sequence[Any], *, run: Path, labels: Sequence[str],
                        input_hw: tuple[int, int], dataset_root: Path, size: int = DEFAULT_SIZE,
                        seed: int = 0, directory: Path = DEFAULT_DIR) -> CalibrationSet:
    """Reuse the matching calibration set under ``directory``, or build and store it."""
    run = Path(run)
    chosen = select(train_records, labels, size, seed)
    warnings = []
    if len(chosen) < size:
        warnings.append(f"The training split has {len(chosen)} images: the calibration set uses all of them, "
                        f"not {size}.")
    if len(chosen) < WARN_SIZE:
        warnings.append(f"Calibrating on {len(chosen)} images (under {WARN_SIZE}): the int8 ranges may be "
                        "rough; use more training images if the gate fails.")
    split_sha = sha256_file(run / "split.csv")
    key = {"source_run": str(run.resolve()), "split_sha256": split_sha, "seed": seed,
           "requested_size": size, "input_size": list(input_hw)}
    root = Path(directory) / set_name(run, split_sha, input_hw, size, seed)
    existing = _load_matching(root, key, chosen)
    if existing is not None:
        return CalibrationSet(root, existing, reused=True, warnings=tuple(warnings))
    manifest = _build(root, chosen, key, labels, Path(dataset_root))
    return CalibrationSet(root, manifest, reused=False, warnings=tuple(warnings))


def _load_matching(root: Path, key: dict[str, Any], chosen: Sequence[Any]) -> dict[str, Any] | None:
    """The stored manifest when the set matches the request and today's preprocessing; else None."""
    try:
        manifest = json.loads((root / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or any(manifest.get(k) != v for k, v in key.items()):
        return None
    if manifest.get("image_ids") != [r.image_id for r in chosen] or not (root / ARRAY_FILE).is_file():
        return None
    if sha256_file(root / ARRAY_FILE) != manifest.get("array_sha256"):
        return None
    try:  # the preprocessing code may have changed since: the first image must come out the same
        first = np.load(root / ARRAY_FILE, mmap_mode="r", allow_pickle=False)[0]
        same = np.array_equal(first, _preprocess(chosen[:1], tuple(key["input_size"]))[0])
    except (OSError, ValueError, TrainError):
        return None
    return manifest if same else None


def _preprocess(records: Sequence[Any], input_hw: tuple[int, int]) -> np.ndarray:
    images = np.empty((len(records), *input_hw, 3), np.uint8)
    for i, r in enumerate(records):
        try:
            images[i] = fit_to_input(load_image(r.path), *input_hw)
        except ImageError as e:
            raise TrainError(f"Calibration image {r.image_id} cannot be used: {e.message}.",
                             "Fix or remove that image and retrain, or pass --data with the right dataset.") from None
    return images


def _build(root: Path, chosen: Sequence[Any], key: dict[str, Any], labels: Sequence[str],
           dataset_root: Path) -> dict[str, Any]:
    images = _preprocess(chosen, tuple(key["input_size"]))
    try:
        with atomic_folder(root, replace=True) as tmp:
            manifest = _write_set(tmp, root, images, chosen, key, labels, dataset_root)
    except OSError as e:
        raise _cannot_store(root, e) from None
    return manifest


def _write_set(tmp: Path, root: Path, images: np.ndarray, chosen: Sequence[Any], key: dict[str, Any],
               labels: Sequence[str], dataset_root: Path) -> dict[str, Any]:
    np.save(tmp / ARRAY_FILE, images, allow_pickle=False)
    manifest = {
        "name": root.name, **key, "dataset_root": str(dataset_root.resolve()), "split": "train",
        "size": len(chosen), "per_class": {c: sum(r.label == c for r in chosen) for c in labels},
        "image_ids": [r.image_id for r in chosen], "image_labels": [r.label for r in chosen],
        "preprocessing": "edge.ops.image.load_image + edge.ops.preprocess.fit_to_input (centre crop, area resize)",
        "array_file": ARRAY_FILE, "array_shape": list(images.shape), "array_dtype": "uint8",
        "array_sha256": sha256_file(tmp / ARRAY_FILE),
        "range_anchor": "sample 0 is fed with pixel (0,0) = 0 and pixel (0,1) = 255 so the converter "
                        "sees the full 0..255 input range",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _cannot_store(root: Path, e: OSError) -> TrainError:
    return TrainError(f"Cannot store the calibration set in {root.parent}: {e.strerror or e}.",
                      "Pass a writable --calibration-dir with free space.")
