"""Pure pixel and number functions: crop, resize, quantize/dequantize, probabilities, top-k."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.errors import ImageError
from edge.ops.postprocess import (
    looks_like_probabilities,
    softmax,
    to_probabilities,
    top_k,
)
from edge.ops.preprocess import (
    Quantization,
    center_crop,
    dequantize,
    fit_to_input,
    quantize,
)


def test_center_crop_takes_the_middle():
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, 50:150] = 255
    crop = center_crop(img, 1.0)
    assert crop.shape == (100, 100, 3) and (crop == 255).all()
    tall = center_crop(np.zeros((300, 100, 3), np.uint8), 2.0)
    assert tall.shape == (50, 100, 3)


def test_fit_to_input_shape_and_area_interpolation():
    img = np.zeros((450, 600, 3), np.uint8)
    img[::2, ::2] = 255  # a fine checkerboard: area averaging gives ~grey, nearest would alias
    out = fit_to_input(img, 96, 96)
    assert out.shape == (96, 96, 3) and out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]
    assert 50 < out.mean() < 80  # a quarter of the pixels are white: 255/4 ~ 64
    assert fit_to_input(np.zeros((10, 12, 3), np.uint8), 40, 48).shape == (40, 48, 3)  # enlarging


def test_fit_to_input_rejects_non_rgb():
    with pytest.raises(ImageError):
        fit_to_input(np.zeros((10, 10), np.uint8), 8, 8)
    with pytest.raises(ImageError):
        fit_to_input(np.zeros((10, 10, 3), np.float32), 8, 8)


def test_uint8_scale_one_is_a_copy():
    px = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    q = quantize(px, Quantization(1.0, 0), np.uint8)
    assert np.array_equal(q, px) and q is not px and not np.shares_memory(q, px)


def test_int8_io_fast_path_equals_general_formula():
    px = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    fast = quantize(px, Quantization(1.0, -128), np.int8)
    assert fast.dtype == np.int8
    assert np.array_equal(fast.astype(int), px.astype(int) - 128)


@pytest.mark.parametrize("scale,zp,dtype", [(0.0078125, 0, np.int8), (0.5, 10, np.uint8), (2.0, -3, np.int8)])
def test_quantize_dequantize_round_trip(scale, zp, dtype):
    q = Quantization(scale, zp)
    # values the quantized type can represent exactly survive the round trip
    info = np.iinfo(dtype)
    ints = np.arange(info.min, info.max + 1, dtype=np.int64)
    real = dequantize(ints.astype(dtype), q)
    assert np.allclose(real, scale * (ints - zp))
    # pixels through a pixel scaling: error at most half a step
    px = np.arange(256, dtype=np.uint8)
    pixel_scale, offset = 1 / 127.5, -1.0
    back = dequantize(quantize(px, Quantization(1 / 128, 0), np.int8, pixel_scale, offset), Quantization(1 / 128, 0))
    expected = np.clip(px * pixel_scale + offset, -1.0, 127 / 128)
    assert np.abs(back - expected).max() <= 0.5 / 128 + 1e-6


def test_quantize_saturates_instead_of_wrapping():
    q = quantize(np.array([0, 255], np.uint8), Quantization(0.5, 0), np.int8)
    assert q.tolist() == [0, 127]


def test_dequantize_uses_int64_no_overflow():
    q = np.array([-128, 127], np.int8)
    out = dequantize(q, Quantization(1.0, 127))  # -128 - 127 overflows int8 arithmetic
    assert out.tolist() == [-255.0, 0.0]


def test_float_input_is_float32_pixels():
    px = np.array([[0, 128, 255]], np.uint8)
    assert quantize(px, Quantization(), np.float32).dtype == np.float32
    assert np.allclose(quantize(px, Quantization(), np.float32, 1 / 255, 0), [[0, 128 / 255, 1]])


def test_probabilities_only_softmaxed_when_needed():
    p = np.array([0.1, 0.7, 0.2], np.float32)
    assert looks_like_probabilities(p) and np.array_equal(to_probabilities(p), p)
    logits = np.array([2.0, -1.0, 0.5], np.float32)
    probs = to_probabilities(logits)
    assert np.isclose(probs.sum(), 1.0) and probs.argmax() == 0
    assert np.allclose(softmax(np.array([1000.0, 1000.0])), [0.5, 0.5])  # no overflow


def test_top_k_order_labels_and_bounds():
    probs = np.array([0.1, 0.5, 0.1, 0.3], np.float32)
    top = top_k(probs, 2, ["a", "b", "c", "d"])
    assert [(p.index, p.label) for p in top] == [(1, "b"), (3, "d")]
    assert [p.index for p in top_k(probs, 10)] == [1, 3, 0, 2]  # k capped, ties by index
    assert top_k(probs, 1)[0].label == "1"  # no labels: the index


def test_area_reduce_gives_opencv_inter_area_bytes_for_every_factor():
    """The fast integer-factor reduction is OpenCV's INTER_AREA to the byte (pixel_probe depends on it)."""
    from edge.ops.preprocess import area_reduce

    rng = np.random.default_rng(11)
    for k in range(2, 18):
        for trial in range(6):
            h, w = k * int(rng.integers(1, 40)), k * int(rng.integers(1, 40))
            cases = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8), np.full((h, w, 3), 255, np.uint8)]
            if trial == 0:  # a strided view, as the centre crop hands it over
                wide = rng.integers(0, 256, (h, w + 2 * k, 3), dtype=np.uint8)
                cases.append(wide[:, k : k + w])
            for img in cases:
                expect = cv2.resize(img, (w // k, h // k), interpolation=cv2.INTER_AREA)
                assert np.array_equal(area_reduce(img, k), expect), (k, img.shape)


def test_area_reduce_rounds_every_block_sum_as_opencv_does():
    """The mean is rounded by ``convertScaleAbs``: for every sum a block of every factor can have,
    the byte is OpenCV's ``rint(float32(sum) * float32(1/k^2))``."""
    for k in range(3, 17):
        sums = np.arange(k * k * 255 + 1, dtype=np.uint16)[np.newaxis]
        expect = np.rint(sums.astype(np.float32) * (np.float32(1.0) / np.float32(k * k))).astype(np.uint8)
        got = cv2.convertScaleAbs(sums, alpha=float(np.float32(1.0) / np.float32(k * k)))
        assert np.array_equal(got, expect), k


@pytest.mark.parametrize("shape,size", [
    ((480, 640), (128, 128)), ((480, 640), (224, 224)), ((480, 640), (96, 96)), ((1001, 757), (224, 224)),
    ((720, 1280), (128, 128)), ((256, 256), (128, 128)), ((128, 128), (128, 128)), ((60, 70), (96, 96)),
    ((333, 500), (120, 160)), ((241, 239), (224, 224)),
])
def test_bgr_input_gives_the_bytes_of_converting_first(shape, size):
    """A decoded (blue-first) frame is converted on the reduced image: enlarging, the exact size,
    a factor of 2 with and without a bilinear rest, odd factors and crops all give the same bytes."""
    rng = np.random.default_rng(sum(shape) + sum(size))
    for bgr in (rng.integers(0, 256, (*shape, 3), dtype=np.uint8),
                cv2.GaussianBlur(rng.integers(0, 256, (*shape, 3), dtype=np.uint8), (5, 5), 0)):
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        expect = fit_to_input(rgb, *size)
        got = fit_to_input(bgr, *size, bgr=True)
        assert got.shape == (*size, 3) and got.flags["C_CONTIGUOUS"]
        assert np.array_equal(got, expect), (shape, size)
        assert not np.shares_memory(got, bgr)  # the frame is never handed back in the wrong order


def test_four_channel_bilinear_step_is_the_three_channel_resize():
    from edge.ops.preprocess import BILINEAR, _bilinear

    rng = np.random.default_rng(5)
    for (h, w), (th, tw) in (((160, 160), (128, 128)), ((240, 240), (224, 224)), ((37, 41), (96, 80))):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        expect = cv2.resize(img, (tw, th), interpolation=BILINEAR)
        assert np.array_equal(_bilinear(img, tw, th, False), expect)
        assert np.array_equal(_bilinear(img[:, :, ::-1].copy(), tw, th, True), expect)


@pytest.mark.parametrize("size,digest", [
    ((96, 96), "378cfca31795a396af928947707b5e0770196e67994bd634e368d1d53bff388a"),
    ((128, 128), "0f1be2811150b65730de5775d4a3f02c735198a551b4779fea7a3571d2fdec66"),
    ((224, 224), "ffa9839005106c4b7a654e35fd6ee258f2984f4e8f99b7b3b2c642410eec8ecc"),
    ((160, 120), "522f4f5733f4795da496029d29ec305cf53fdd9fd7a48c75de70025a2137ce05"),
])
def test_pixel_probe_is_unchanged(size, digest):
    """Bundles made earlier carry these values; a faster preprocessing must give the same bytes."""
    from edge.ops.preprocess import pixel_probe

    assert pixel_probe(*size) == digest
