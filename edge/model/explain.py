"""Where the model looked: the predicted class's activation map laid over the image it saw.

The maps come out of the model itself (its ``cam`` output, one map per class at the resolution of
the last feature map, see models/README.md). The model sees the centre crop of a frame at its input
aspect ratio, so the overlay covers that crop: the map is upsampled to it, scaled to 0..1 (its
lowest value transparent blue, its highest opaque red) and blended over the pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.ops.preprocess import center_crop
from edge.util.atomic import write_bytes
from edge.util.files import safe_name

MAX_SIDE = 1024  # overlays are for looking at: a 4000 px photo is drawn at most this large


def heatmap(cam: np.ndarray, width: int, height: int) -> np.ndarray:
    """The map scaled to 0..1 (a flat map is all zeros) and upsampled to width x height."""
    cam = np.asarray(cam, np.float32)
    lo, hi = float(cam.min()), float(cam.max())
    unit = (cam - lo) / (hi - lo) if hi > lo else np.zeros_like(cam)
    return np.clip(cv2.resize(unit, (width, height), interpolation=cv2.INTER_CUBIC), 0, 1)


def blend(rgb: np.ndarray, cam: np.ndarray, strength: float = 0.5) -> np.ndarray:
    """The map upsampled to the image and blended over it (RGB uint8, same size). The colours and
    weights are made at a quarter of the size (the map is smooth) and blended in uint8: about 1 ms
    for a 480x480 crop."""
    h, w = rgb.shape[:2]
    heat = heatmap(cam, max(1, w // 4), max(1, h // 4))
    colour = cv2.cvtColor(cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    weight = np.round(255 * strength * (0.25 + 0.75 * heat)).astype(np.uint8)  # the hot parts show most
    colour = cv2.resize(colour, (w, h), interpolation=cv2.INTER_LINEAR)
    weight = cv2.merge([cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR)] * 3)
    return cv2.add(cv2.multiply(np.ascontiguousarray(rgb), cv2.bitwise_not(weight), scale=1 / 255),
                   cv2.multiply(colour, weight, scale=1 / 255))


def overlay(rgb: np.ndarray, cam: np.ndarray, aspect: float, strength: float = 0.5) -> np.ndarray:
    """The centre crop the model saw (at most MAX_SIDE px), with the map blended over it (RGB uint8)."""
    crop = center_crop(rgb, aspect)
    scale = min(1.0, MAX_SIDE / max(crop.shape[:2]))
    if scale < 1.0:
        crop = cv2.resize(crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)),
                          interpolation=cv2.INTER_AREA)
    return blend(crop, cam, strength)


def overlay_frame(rgb: np.ndarray, cam: np.ndarray, aspect: float, strength: float = 0.5) -> np.ndarray:
    """The whole frame (a copy) with the map blended over the centre crop the model saw, the rest
    dimmed: the live view's picture keeps its size."""
    out = cv2.convertScaleAbs(rgb, alpha=0.6)
    region = center_crop(out, aspect)  # a view into out
    region[:] = blend(center_crop(rgb, aspect), cam, strength)
    return out


def overlay_jpeg(rgb: np.ndarray, cam: np.ndarray, aspect: float, quality: int = 90) -> bytes:
    """:func:`overlay` as JPEG bytes (the archive keeps one per capture)."""
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(overlay(rgb, cam, aspect), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("cannot encode the overlay as JPEG")
    return jpeg.tobytes()


def explanation_path(folder: Path, image: Path, taken: set[str]) -> Path:
    """DIR/<image stem>.cam.png, numbered when two images share a stem."""
    stem = safe_name(Path(image).stem, "image")
    name, i = f"{stem}.cam.png", 1
    while name in taken:
        i += 1
        name = f"{stem}-{i}.cam.png"
    taken.add(name)
    return Path(folder) / name


def write_overlay(path: Path, rgb: np.ndarray, cam: np.ndarray, aspect: float) -> Path:
    """Write the overlay PNG atomically (never a half-written file)."""
    ok, png = cv2.imencode(".png", cv2.cvtColor(overlay(rgb, cam, aspect), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode the overlay for {path.name}")
    return write_bytes(path, png.tobytes())
