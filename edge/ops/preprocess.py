"""Pixels to model input: pure functions, shared by training, calibration and the device.

The training pipeline, the representative dataset and ``edge`` all call :func:`fit_to_input`
and :func:`quantize`, so what the model saw in training is what it sees on the Pi.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.errors import ImageError


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: real = scale * (q - zero_point). scale 0 = not quantized."""

    scale: float = 0.0
    zero_point: int = 0

    @property
    def is_quantized(self) -> bool:
        return self.scale != 0.0


def center_crop(rgb: np.ndarray, aspect: float) -> np.ndarray:
    """The largest centred crop of width/height ratio ``aspect`` (a view, no copy)."""
    h, w = rgb.shape[:2]
    if w / h > aspect:  # too wide
        new_w = max(1, round(h * aspect))
        x0 = (w - new_w) // 2
        return rgb[:, x0 : x0 + new_w]
    new_h = max(1, round(w / aspect))
    y0 = (h - new_h) // 2
    return rgb[y0 : y0 + new_h, :]


# Bit-exact on every architecture: OpenCV's INTER_AREA (integer and fractional factors) and
# INTER_LINEAR_EXACT give the same bytes on x86-64 and aarch64, while INTER_LINEAR's SIMD paths
# round differently (13% of pixels off by one on a 240->224 step, shown under emulated aarch64:
# scripts/aarch64.sh). Training, calibration and the device must see the same pixels.
SHRINK = cv2.INTER_AREA
BILINEAR = cv2.INTER_LINEAR_EXACT


def area_reduce(rgb: np.ndarray, k: int) -> np.ndarray:
    """Mean of every k x k block (the image's sides multiples of k): OpenCV's INTER_AREA, same bytes.

    OpenCV's integer-factor INTER_AREA has a vector path only for k = 2; for k >= 3 its scalar
    loop costs ~0.8 ms on a 480x480 crop. Here the block sums are exact integers: the k rows of each
    block are added in uint16 (contiguous rows, vectorised), then an unnormalised 1 x k box filter
    sums each row's k neighbours and every k-th sum is kept. The mean is rounded as OpenCV rounds
    it, ``sum * float32(1/k^2)`` to nearest even, which is what ``convertScaleAbs`` computes (every
    sum of every factor checked: tests): 0.3-0.4 ms, bit-identical (tests compare the two).
    """
    h, w = rgb.shape[:2]
    if k == 2 or k * k * 255 > np.iinfo(np.uint16).max:
        return cv2.resize(rgb, (w // k, h // k), interpolation=SHRINK)
    rgb = rgb[: h // k * k, : w // k * k]  # whole blocks only: every row phase then has h // k rows
    rows = np.add(rgb[0::k], rgb[1::k], dtype=np.uint16)
    for i in range(2, k):
        rows += rgb[i::k]
    sums = cv2.boxFilter(rows, cv2.CV_16U, (k, 1), anchor=(0, 0), normalize=False, borderType=cv2.BORDER_CONSTANT)
    # every k-th sum, the window's left end (nearest-neighbour at an exact integer factor picks
    # pixel k*x; a numpy stride view does the same, 5x slower)
    block = cv2.resize(sums, (w // k, h // k), interpolation=cv2.INTER_NEAREST)
    return cv2.convertScaleAbs(block, alpha=float(np.float32(1.0) / np.float32(k * k)))


def _bilinear(image: np.ndarray, width: int, height: int, bgr: bool) -> np.ndarray:
    """INTER_LINEAR_EXACT to (width, height), RGB out. OpenCV's bit-exact resize has a faster
    path for four channels than for three (0.10 against 0.17 ms to 128x128, 0.36 against 0.43 ms
    to 224x224): the image goes through it with a fourth channel, added by the same
    ``cvtColor`` that puts red first, and dropped by another (a numpy slice copy of the result
    costs 0.3 ms at 224x224, ``cvtColor`` 0.01). Every step works per channel: the bytes are
    those of the three-channel resize (tests)."""
    four = cv2.cvtColor(image, cv2.COLOR_BGR2RGBA if bgr else cv2.COLOR_RGB2RGBA)
    return cv2.cvtColor(cv2.resize(four, (width, height), interpolation=BILINEAR), cv2.COLOR_RGBA2RGB)


def resize(rgb: np.ndarray, width: int, height: int, *, bgr: bool = False) -> np.ndarray:
    """Shrink by area averaging (no aliasing), enlarge bilinearly; the same bytes on x86 and ARM.

    Shrinking runs as an integer-factor area reduction (:func:`area_reduce`: a 640x480 frame to
    224x224 in ~0.1 ms instead of ~0.7 ms) followed by a bilinear step for the remaining factor,
    which is below 2. Training, calibration and the device all call this, so they agree exactly.
    ``bgr``: the image is in OpenCV's blue-first order, and the result RGB all the same; the
    channels are swapped on the reduced image (every step works per channel, so the bytes are
    those of swapping first, for a fraction of the work). The result may be a view.
    """
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB) if bgr else rgb
    k = min(w // width, h // height)
    if k >= 2:
        cw, ch = w // k * k, h // k * k
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        rgb = area_reduce(rgb[y0 : y0 + ch, x0 : x0 + cw], k)
        if rgb.shape[:2] == (height, width):
            return cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB) if bgr else rgb
    return _bilinear(rgb, width, height, bgr)


def pixel_probe(height: int, width: int) -> str:
    """SHA-256 of what :func:`fit_to_input` makes of a fixed set of test cards, for a model input size.

    The cards are built with integer numpy only (the same bytes everywhere) and cover the three
    paths: a 640x480 camera frame (area + bilinear), a portrait photo with an odd factor and an
    image smaller than the input (enlarged). ``train quantize`` stores the value in model.json and
    ``edge verify`` recomputes it on the device: equal means this device sees the training pixels.
    """
    import hashlib  # noqa: PLC0415

    digest = hashlib.sha256()
    for h, w, seed in ((480, 640, 1), (1001, 757, 2), (max(2, height // 2 + 3), max(2, width // 2 + 5), 3)):
        y, x = np.mgrid[0:h, 0:w].astype(np.uint32)
        card = np.stack([(x * 7 + y * 3 + seed) % 256, (x * y + 31 * seed) % 251, ((x ^ y) * 13) % 256], axis=-1)
        digest.update(fit_to_input(card.astype(np.uint8), height, width).tobytes())
    return digest.hexdigest()


def fit_to_input(rgb: np.ndarray, height: int, width: int, *, bgr: bool = False) -> np.ndarray:
    """Centre-crop to the model's aspect ratio, then resize: RGB uint8 (height, width, 3).

    ``bgr``: ``rgb`` is in OpenCV's channel order (a decoded video frame), and the same RGB bytes
    come out as from converting it first, without converting the whole frame.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageError(f"expected an RGB uint8 image, got shape {rgb.shape} {rgb.dtype}")
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise ImageError(f"image too small ({rgb.shape[1]}x{rgb.shape[0]})")
    return np.ascontiguousarray(resize(center_crop(rgb, width / height), width, height, bgr=bgr))


def quantize(pixels: np.ndarray, quant: Quantization, dtype: np.dtype | type,
             pixel_scale: float = 1.0, pixel_offset: float = 0.0) -> np.ndarray:
    """Turn uint8 pixels into the input tensor's values.

    The model sees ``value = pixel * pixel_scale + pixel_offset``; a quantized input stores
    ``round(value / scale) + zero_point``. With uint8 input, scale 1 and zero point 0 (our
    bundles, the pixel scaling being inside the model) this is a plain copy.
    """
    dtype = np.dtype(dtype)
    identity_pixels = pixel_scale == 1.0 and pixel_offset == 0.0
    if dtype == np.float32:
        if identity_pixels:
            return pixels.astype(np.float32)
        return pixels.astype(np.float32) * np.float32(pixel_scale) + np.float32(pixel_offset)
    if not quant.is_quantized:
        raise ValueError(f"{dtype} input without quantization parameters")
    if identity_pixels and quant.scale == 1.0:
        if dtype == np.uint8 and quant.zero_point == 0:
            return pixels.copy()
        if dtype == np.int8 and quant.zero_point == -128:
            return (pixels ^ np.uint8(0x80)).view(np.int8)  # pixel - 128, exactly
    info = np.iinfo(dtype)
    value = pixels.astype(np.float32) * np.float32(pixel_scale) + np.float32(pixel_offset)
    q = np.round(value / np.float32(quant.scale)) + quant.zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, quant: Quantization) -> np.ndarray:
    """Quantized values to real numbers (int64 maths: no overflow), float32."""
    if not quant.is_quantized:
        return np.asarray(q, dtype=np.float32)
    return (quant.scale * (q.astype(np.int64) - quant.zero_point)).astype(np.float32)
