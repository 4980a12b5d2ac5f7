"""Training and device agree: same pixels from the same file, same probabilities from the same model."""

from __future__ import annotations

import cv2
import numpy as np
from conftest import INPUT_HW, LABELS, colour_image

from edge.model.load import load_model
from edge.ops.image import load_image
from edge.ops.preprocess import fit_to_input


def _files(tmp_path):
    """Images of several sizes, aspect ratios and formats, some needing a crop."""
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w, ext) in enumerate([(450, 600, "jpg"), (300, 200, "png"), (97, 131, "bmp"), (40, 48, "png")]):
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        img[: h // 2] = colour_image(LABELS[i % len(LABELS)], hw=(h // 2, w))
        path = tmp_path / f"img{i}.{ext}"
        cv2.imwrite(str(path), img)
        paths.append(path)
    return paths


def test_training_pipeline_pixels_equal_device_pixels(tmp_path):
    from edge.data.datasets import Record
    from train.fit.inputs import Decoder, decoded

    paths = _files(tmp_path)
    records = [Record(p.stem, p.stem, "red", p) for p in paths]
    ds = decoded(records, {"red": 0}, Decoder(*INPUT_HW))
    trained_on = [image.numpy() for image, _ in ds]
    on_device = [fit_to_input(load_image(p), *INPUT_HW) for p in paths]
    assert len(trained_on) == len(on_device) == len(paths)
    for a, b in zip(trained_on, on_device):
        assert a.dtype == b.dtype == np.uint8
        np.testing.assert_array_equal(a, b)


def test_keras_and_device_float_model_agree(keras_model, tflite_models, tmp_path):
    """The float TFLite run by `edge` gives Keras' probabilities for the same image file."""
    model = load_model(tflite_models["float"], device="cpu", threads=1)
    for path in _files(tmp_path):
        pixels = fit_to_input(load_image(path), *INPUT_HW)
        expected = keras_model.predict(pixels[np.newaxis].astype(np.float32), verbose=0)[0]
        got = model.probabilities(model.invoke(model.prepare(load_image(path))))
        np.testing.assert_allclose(got, expected, atol=1e-5)
