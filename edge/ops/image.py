"""Decode image files to RGB uint8, the one pixel format the rest of the pipeline accepts.

The formats accepted are listed once, in :data:`FORMATS`: JPEG, PNG (grey, RGBA, 16-bit, palette),
BMP, TIFF and WebP; anything else a decoder could read (GIF, PSD, PPM, HDR, EXR, ...) is refused
by name. EXIF orientation is applied; truncated files and decompression bombs are refused before
they reach the decoder: the pixel count is read from the header and checked against
:data:`DEFAULT_MAX_PIXELS` (``SKIN_EDGE_MAX_IMAGE_PIXELS`` changes it), and the same limit is set
for Pillow (``Image.MAX_IMAGE_PIXELS``) and OpenCV (``OPENCV_IO_MAX_IMAGE_PIXELS``, unless already
set), so neither decoder ever allocates for more.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ImageError
from edge.util.files import read_capped

MAX_PIXELS_ENV = "SKIN_EDGE_MAX_IMAGE_PIXELS"


def _max_pixels() -> int:
    """64 megapixels (far above any dermatoscope or phone camera, far below a bomb), or the
    environment's ``SKIN_EDGE_MAX_IMAGE_PIXELS`` when it is a whole number from 1 MP to 1 GP."""
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    return int(value) if value.isdigit() and 1_000_000 <= int(value) <= 1_000_000_000 else 64_000_000


DEFAULT_MAX_PIXELS = _max_pixels()
_logging = getattr(getattr(cv2, "utils", None), "logging", None)
if _logging is not None:  # a damaged image is our one-line error, not also OpenCV's [ERROR] lines on stderr
    _logging.setLogLevel(_logging.LOG_LEVEL_SILENT)
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DEFAULT_MAX_PIXELS))  # read at OpenCV's first decode

# the largest file read as an image: a 64-megapixel 16-bit TIFF is ~400 MB; checked before reading
MAX_FILE_BYTES = 512_000_000

# Pillow's name for each accepted format -> its file name endings: the one list of what is accepted
FORMATS = {"JPEG": (".jpg", ".jpeg"), "PNG": (".png",), "BMP": (".bmp",), "TIFF": (".tif", ".tiff"),
           "WEBP": (".webp",)}
IMAGE_SUFFIXES = tuple(s for suffixes in FORMATS.values() for s in suffixes)


_MAGIC = {b"\xff\xd8": "JPEG", b"\x89PNG": "PNG", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}


def image_size(data: bytes) -> tuple[int, int, str]:
    """(width, height, format) from the header only, without decoding the pixels."""
    import warnings  # noqa: PLC0415

    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS  # Pillow's own bomb check at the same limit
    try:
        with warnings.catch_warnings():  # our own checks decide, in one line, not Pillow's warnings
            warnings.simplefilter("ignore")  # (a bomb, TIFF tags larger than the file, ...)
            with Image.open(io.BytesIO(data)) as im:
                return im.width, im.height, (im.format or "unknown")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        fmt = _MAGIC.get(data[:2]) or _MAGIC.get(data[:4])
        if fmt:
            raise ImageError(f"truncated or damaged {fmt} file", "Copy the image again.") from None
        raise ImageError("not an image file (unknown or damaged header)",
                         f"Use {', '.join(FORMATS)}.") from None
    except Image.DecompressionBombError:
        raise ImageError("image too large to decode safely (decompression bomb)") from None


def _looks_truncated(data: bytes, fmt: str) -> bool:
    if fmt == "JPEG":
        return not _jpeg_has_end(data)
    if fmt == "PNG":
        return b"IEND" not in data[-64:]
    return False


def png_chunks_fit(data: bytes) -> bool:
    """Every chunk of a PNG, up to IEND, fits in the file. OpenCV's PNG reader allocates what a chunk
    claims before reading it: a 43-byte file claiming a 3.6 GB chunk made it take 3.5 GB (found by
    fuzz/run.py image), enough to kill a Pi's daemon."""
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if length > 0x7FFFFFFF or pos + 12 + length > len(data):
            return False
        if kind == b"IEND":
            return True
        pos += 12 + length
    return False


def _jpeg_has_end(data: bytes) -> bool:
    """True when the image's first scan is followed by an end-of-image marker.

    The marker segments are skipped by their lengths up to the first scan, so an end marker inside
    them (an EXIF thumbnail) does not count, and data appended after the image (a phone's motion
    photo video, a gain map) does not make a complete file look truncated.
    """
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
        elif marker == 0xDA:  # start of scan: entropy-coded data, where 0xFF is always escaped
            return data.find(b"\xff\xd9", pos) != -1
        elif 0xD0 <= marker <= 0xD9 or marker == 0x01:  # markers without a length
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return False


def to_rgb(pixels: np.ndarray, order: str = "BGR") -> np.ndarray:
    """Any decoded array (grey, 3- or 4-channel, 8- or 16-bit, float 0..1) to RGB uint8."""
    a = np.asarray(pixels)
    if a.size == 0 or a.ndim not in (2, 3):
        raise ImageError(f"not an image array (shape {a.shape})")
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype in (np.float32, np.float64):
        a = np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise ImageError(f"unsupported pixel type {a.dtype}")
    if a.ndim == 2 or a.shape[2] == 1:
        return cv2.cvtColor(a.reshape(a.shape[0], a.shape[1]), cv2.COLOR_GRAY2RGB)
    channels = a.shape[2]
    if channels == 3:
        return cv2.cvtColor(a, cv2.COLOR_BGR2RGB) if order == "BGR" else np.ascontiguousarray(a)
    if channels == 4:
        code = cv2.COLOR_BGRA2RGB if order == "BGR" else cv2.COLOR_RGBA2RGB
        return cv2.cvtColor(a, code)
    raise ImageError(f"unsupported channel count {channels}")


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes to an RGB uint8 array (H, W, 3), EXIF orientation applied."""
    if not data:
        raise ImageError("empty file")
    width, height, fmt = image_size(data)
    if fmt not in FORMATS:
        raise ImageError(f"{fmt} images are not accepted", f"Use {', '.join(FORMATS)}.")
    if width * height > max_pixels:
        raise ImageError(f"image too large ({width}x{height} = {width * height / 1e6:.0f} MP, "
                         f"limit {max_pixels / 1e6:.0f} MP)", "Resize it first.")
    if _looks_truncated(data, fmt):
        raise ImageError(f"truncated {fmt} file", "Copy the image again.")
    if fmt == "PNG" and not png_chunks_fit(data):
        raise ImageError("damaged PNG file (a chunk claims more bytes than the file holds)", "Copy the image again.")
    buf = np.frombuffer(data, dtype=np.uint8)
    # IMREAD_COLOR applies EXIF orientation and reduces grey, alpha, palette and 16-bit to BGR 8-bit.
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as e:  # OpenCV's own limits and assertions (found by fuzz/run.py image)
        raise ImageError(f"{fmt} data OpenCV refuses ({str(e).strip().splitlines()[-1][:120]})",
                         "Copy the image again or re-export it.") from None
    if bgr is None:
        raise ImageError(f"corrupt {fmt} data", "Copy the image again or re-export it.")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read and decode an image file; ImageError names the file and the problem."""
    path = Path(path)
    try:
        data = read_capped(path, MAX_FILE_BYTES, "image", ImageError,
                           too_large=f"larger than any image it accepts ({MAX_FILE_BYTES // 1_000_000} MB)",
                           too_large_hint="Resize or re-encode the image.")
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror})") from None
    try:
        return decode_image(data, max_pixels=max_pixels)
    except ImageError as e:
        raise ImageError(f"{path}: {e.message}", e.hint) from None
