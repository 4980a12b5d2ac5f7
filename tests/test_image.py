"""Decoding: every format to RGB uint8, EXIF orientation, and refusal of bad files."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from edge.errors import ImageError
from edge.ops.image import decode_image, load_image, to_rgb


def _rgb_pattern(h=30, w=40) -> np.ndarray:
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = (200, 20, 10)  # left half red
    a[:, w // 2 :] = (10, 30, 210)  # right half blue
    return a


def _encode(pil_image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    pil_image.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("PNG", "png"), ("BMP", "bmp"), ("TIFF", "tif")])
def test_colour_formats_decode_to_rgb(tmp_path, fmt, ext):
    src = _rgb_pattern()
    path = tmp_path / f"x.{ext}"
    path.write_bytes(_encode(Image.fromarray(src), fmt, **({"quality": 98} if fmt == "JPEG" else {})))
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (30, 40, 3)
    tol = 12 if fmt == "JPEG" else 0
    assert np.abs(out[5, 5].astype(int) - [200, 20, 10]).max() <= tol  # red stays red: RGB order
    assert np.abs(out[5, 35].astype(int) - [10, 30, 210]).max() <= tol


def test_grey_png_becomes_three_equal_channels(tmp_path):
    grey = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (10, 1))
    path = tmp_path / "g.png"
    Image.fromarray(grey, "L").save(path)
    out = load_image(path)
    assert out.shape == (10, 25, 3)
    assert np.array_equal(out[..., 0], grey) and np.array_equal(out[..., 1], grey)


def test_rgba_png_drops_alpha(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 180, 77
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = load_image(path)
    assert out.shape == (8, 8, 3) and (out[..., 0] == 180).all() and (out[..., 1:] == 0).all()


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    grey16 = np.full((6, 6), 40000, np.uint16)  # 40000 / 257 ~ 155 in 8 bits
    path = tmp_path / "g16.png"
    cv2.imwrite(str(path), grey16)
    out = load_image(path)
    assert out.dtype == np.uint8 and abs(int(out[0, 0, 0]) - 155) <= 1


def test_16bit_colour_png(tmp_path):
    bgr16 = np.zeros((4, 4, 3), np.uint16)
    bgr16[..., 2] = 65535  # red in BGR order
    path = tmp_path / "c16.png"
    cv2.imwrite(str(path), bgr16)
    out = load_image(path)
    assert tuple(out[0, 0]) == (255, 0, 0)


def test_palette_png(tmp_path):
    p = Image.new("P", (10, 10))
    p.putpalette([0, 0, 0, 250, 100, 0] + [0] * 762)
    p.paste(1, (0, 0, 10, 10))
    path = tmp_path / "p.png"
    p.save(path)
    assert tuple(load_image(path)[3, 3]) == (250, 100, 0)


def test_exif_orientation_applied():
    src = _rgb_pattern(20, 40)  # landscape: red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = _encode(Image.fromarray(src), "JPEG", exif=exif.tobytes(), quality=98)
    out = decode_image(data)
    assert out.shape == (40, 20, 3)  # displayed as portrait
    assert out[2, 10, 0] > 150 and out[-3, 10, 2] > 150  # red on top, blue below


def test_to_rgb_frames():
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 0] = 255
    assert tuple(to_rgb(bgr)[0, 0]) == (0, 0, 255)
    assert to_rgb(np.zeros((4, 4), np.uint8)).shape == (4, 4, 3)
    assert to_rgb(np.zeros((4, 4, 4), np.uint8)).shape == (4, 4, 3)
    with pytest.raises(ImageError):
        to_rgb(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ImageError):
        to_rgb(np.zeros((0, 4, 3), np.uint8))


@pytest.mark.parametrize("content,needle", [
    (b"", "empty"),
    (b"this is a text file, not a picture", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "truncated or damaged PNG"),
])
def test_bad_bytes(content, needle):
    with pytest.raises(ImageError, match=needle):
        decode_image(content)


def test_truncated_jpeg_and_png(tmp_path):
    src = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    for fmt in ("JPEG", "PNG"):
        data = _encode(Image.fromarray(src), fmt)
        with pytest.raises(ImageError, match="truncated"):
            decode_image(data[: len(data) // 2])


def test_decompression_bomb_refused_before_decoding():
    # A PNG whose header claims 30000 x 30000 pixels: the decoder must never see it.
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
    with pytest.raises(ImageError, match="too large"):
        decode_image(data)
    with pytest.raises(ImageError, match="too large"):
        decode_image(_encode(Image.new("L", (100, 100)), "PNG"), max_pixels=5000)


def test_missing_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def test_large_image_refused_in_one_line_without_pillow_warning():
    """100 MP is past both our limit and Pillow's warning threshold: only our error, no warning."""
    import struct
    import warnings
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 10000, 10000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageError, match=r"too large \(10000x10000 = 100 MP, limit 64 MP\)"):
            decode_image(data)
    assert [str(w.message) for w in caught] == []


def test_jpeg_with_data_after_the_image_is_not_truncated(tmp_path):
    """Phones append a video (motion photos) or a gain map after the JPEG's end marker."""
    src = _rgb_pattern()
    jpeg = _encode(Image.fromarray(src), "JPEG", quality=98)
    path = tmp_path / "motion.jpg"
    path.write_bytes(jpeg + b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)  # 10 kB of "video"
    out = load_image(path)
    assert out.shape == (30, 40, 3) and np.abs(out[5, 5].astype(int) - [200, 20, 10]).max() <= 12


def test_truncated_jpeg_with_an_end_marker_in_its_metadata():
    """An EXIF thumbnail's end marker, before the image's own data, does not hide a truncation."""
    src = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    jpeg = _encode(Image.fromarray(src), "JPEG")
    thumbnail = b"\xff\xd8" + b"\x00" * 64 + b"\xff\xd9"
    app1 = b"\xff\xe1" + (2 + 6 + len(thumbnail)).to_bytes(2, "big") + b"Exif\x00\x00" + thumbnail
    with_thumbnail = jpeg[:2] + app1 + jpeg[2:]
    assert decode_image(with_thumbnail).shape == (120, 160, 3)
    with pytest.raises(ImageError, match="truncated"):
        decode_image(with_thumbnail[: len(with_thumbnail) * 2 // 3])


def test_special_and_huge_files_are_refused_before_reading(tmp_path):
    import os

    from edge.ops.image import MAX_FILE_BYTES

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="pipe.jpg: is a FIFO, not an image file"):
        load_image(fifo)  # returns at once: a FIFO is never opened
    with pytest.raises(ImageError, match="is a character device, not an image file"):
        load_image("/dev/zero")
    sparse = tmp_path / "huge.jpg"
    with open(sparse, "wb") as f:  # 40 GB on paper, no disk used
        f.truncate(40_000_000_000)
    with pytest.raises(ImageError, match=f"larger than any image it accepts \\({MAX_FILE_BYTES // 1_000_000} MB\\)"):
        load_image(sparse)


@pytest.mark.parametrize("fmt", ["GIF", "PPM", "ICO", "TGA"])
def test_formats_outside_the_list_are_refused_by_name(fmt):
    """Pillow and OpenCV read many formats; only FORMATS' (JPEG, PNG, BMP, TIFF, WebP) get decoded."""
    data = _encode(Image.fromarray(_rgb_pattern()), fmt)
    with pytest.raises(ImageError, match=f"{fmt} images are not accepted") as e:
        decode_image(data)
    assert "JPEG, PNG" in str(e.value)
    assert decode_image(_encode(Image.fromarray(_rgb_pattern()), "WEBP", lossless=True))[0, 0].tolist() == [200, 20, 10]


def test_both_decoders_get_the_projects_pixel_limit():
    """Pillow's MAX_IMAGE_PIXELS and OpenCV's OPENCV_IO_MAX_IMAGE_PIXELS, set to the same limit in a
    fresh process, and SKIN_EDGE_MAX_IMAGE_PIXELS changes it."""
    import os
    import subprocess
    import sys

    probe = """
import os
import edge.ops.image as image
from PIL import Image
try:
    image.image_size(b"not an image")  # the first use sets Pillow's limit
except Exception:
    pass
print(image.DEFAULT_MAX_PIXELS, Image.MAX_IMAGE_PIXELS, os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"])
"""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENCV_IO_MAX_IMAGE_PIXELS", "SKIN_EDGE_MAX_IMAGE_PIXELS")}
    for limit, expected in ((None, "64000000"), ("20000000", "20000000"), ("7", "64000000")):
        extra = {"SKIN_EDGE_MAX_IMAGE_PIXELS": limit} if limit else {}
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                             env={**env, **extra})
        assert out.stdout.split() == [expected] * 3


def test_a_png_chunk_claiming_more_than_the_file_is_refused_before_opencv():
    """43 bytes whose chunk claims 3.6 GB: OpenCV's PNG reader allocated 3.5 GB for it (a fuzz finding,
    fuzz/crashes/image/finding-png-chunk-oom). It is refused by the chunk walk, before any decoder."""
    from pathlib import Path

    data = (Path(__file__).resolve().parents[1] / "fuzz" / "crashes" / "image" / "finding-png-chunk-oom").read_bytes()
    assert len(data) < 100
    with pytest.raises(ImageError, match="a chunk claims more bytes than the file holds"):
        decode_image(data)
    good = _encode(Image.fromarray(_rgb_pattern()), "PNG")
    assert decode_image(good + b"trailing bytes after IEND").shape == (30, 40, 3)
