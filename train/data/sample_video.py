"""A demo video made from sample (or any HAM10000-layout) images: a camera drifting over lesions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.data.datasets import Record, load_dataset
from train.data.sample_data import SampleDataError
from train.data.sample_lesions import blur

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
            frame = blur(frame, sigma * min(size) / 480) * (1 - 0.75 * dark) * (1 + bright) + 45 * bright
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
