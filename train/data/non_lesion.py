"""Images that are not skin lesions, for evaluating the OOD score honestly.

Real photographs that ship inside scikit-image (a person, a cat, coffee, a rocket, a galaxy field,
a microscope slide, coins, text...), each whole and as four corner crops, plus what a camera
gives when nothing useful is in front of it: black, white and noise frames, and heavily blurred
photographs. All go through the same preprocessing as every other image (``fit_to_input``).
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.ops.preprocess import fit_to_input

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "colorwheel",
          "camera", "coins", "moon", "page", "text", "clock", "brick", "grass", "gravel", "retina", "cell")
BLURRED = ("astronaut", "coffee", "rocket", "chelsea")
MIN_PHOTOS = 8


def _photo(name: str) -> np.ndarray | None:
    import skimage.data  # noqa: PLC0415

    try:
        image = np.asarray(getattr(skimage.data, name)())
    except Exception:  # noqa: BLE001  an image that needs a download (no network) is left out
        return None
    if image.dtype != np.uint8:
        image = (image.astype(np.float64) * (255 / max(1, image.max()))).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def _crops(image: np.ndarray) -> list[np.ndarray]:
    h, w = image.shape[:2]
    ch, cw = h * 3 // 5, w * 3 // 5
    return [image[:ch, :cw], image[:ch, w - cw:], image[h - ch:, :cw], image[h - ch:, w - cw:]]


def non_lesion_images(height: int, width: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8 pixels at the model's input size), photos first; RuntimeError when
    scikit-image offers too few photographs here."""
    photos = {name: img for name in PHOTOS if (img := _photo(name)) is not None}
    if len(photos) < MIN_PHOTOS:
        raise RuntimeError(f"scikit-image offers only {len(photos)} of its sample photographs here; "
                           "install scikit-image (pip install scikit-image)")
    out = []
    for name, img in photos.items():
        out.append((name, fit_to_input(img, height, width)))
        out += [(f"{name}-crop{i}", fit_to_input(np.ascontiguousarray(c), height, width))
                for i, c in enumerate(_crops(img))]
    rng = np.random.default_rng(seed)
    flat = {"black": 0, "white": 255, "grey": 128}
    out += [(name, np.full((height, width, 3), v, np.uint8)) for name, v in flat.items()]
    out.append(("noise", rng.integers(0, 256, (height, width, 3), dtype=np.uint8)))
    out.append(("noise-grey", np.repeat(rng.integers(0, 256, (height, width, 1), dtype=np.uint8), 3, axis=2)))
    for name in BLURRED:
        if name in photos:
            blurred = cv2.GaussianBlur(photos[name], (0, 0), sigmaX=max(photos[name].shape[:2]) / 30)
            out.append((f"{name}-blurred", fit_to_input(blurred, height, width)))
    return out
