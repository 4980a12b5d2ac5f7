"""Shared fixtures: tiny real models (Keras -> TFLite float/int8) and real image files.

The models are trained for a few seconds on solid-colour images (as TFLite Model Maker's own
test does), so their answers are meaningful: a red image is "red".
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.register_assert_rewrite("helpers")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# one record of the model files already tried in a child process (edge.model.sandbox) for the whole
# session: each test has its own state folder, and would otherwise try every fixture model again
os.environ.setdefault("SKIN_EDGE_SEEN_MODELS", os.path.join(__import__("tempfile").mkdtemp(prefix="edge-seen-"),
                                                            "seen-models.json"))

# every colour bright enough for the quality gate's default (mean luminance >= 60)
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 70, 230), "yellow": (230, 220, 30)}
LABELS = tuple(COLOURS)
INPUT_HW = (40, 48)  # deliberately not square and not 224


def colour_image(name: str, hw: tuple[int, int] = (120, 160), seed: int = 0) -> np.ndarray:
    """An RGB uint8 image of one colour with mild noise."""
    rng = np.random.default_rng(seed)
    img = np.empty((*hw, 3), np.float32)
    img[:] = COLOURS[name]
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _training_set(n_per_class: int = 24):
    from edge.ops.preprocess import fit_to_input

    xs, ys = [], []
    for label, name in enumerate(LABELS):
        for i in range(n_per_class):
            xs.append(fit_to_input(colour_image(name, seed=100 * label + i), *INPUT_HW))
            ys.append(label)
    x = np.stack(xs).astype(np.float32)
    x[0, 0, 0], x[0, 0, 1] = 0.0, 255.0  # the input domain is 0..255: let calibration see all of it
    return x, np.array(ys)


# Files that take minutes, put first: scripts/test.sh runs the suite on two pytest-xdist workers, one
# file per worker at a time (--dist loadfile), and these started last would leave one worker idle
SLOW_FIRST = ("test_train.py", "test_multiworker.py", "test_aarch64.py", "test_systemd_live.py", "test_export.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(autouse=True)
def _state_directory(tmp_path_factory, monkeypatch):
    """Records such as the fastest variant go to a folder of the test's own (edge.model.variants), and
    no signing key this machine trusts (/etc/skin-edge/trusted-keys) applies unless a test sets one."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path_factory.mktemp("state")))
    monkeypatch.setenv("SKIN_EDGE_TRUSTED_KEYS_DIR", "")


@pytest.fixture(scope="session")
def keras_model():
    """A few-layer CNN taking raw 0..255 RGB, trained to tell four colours apart."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((*INPUT_HW, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(len(LABELS), activation="softmax")(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
    x_train, y_train = _training_set()
    model.fit(x_train, y_train, epochs=40, batch_size=32, verbose=0)
    return model


def _convert(model, mode: str) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode != "float":
        x_train, _ = _training_set(6)

        def representative():
            for i in range(len(x_train)):
                yield [x_train[i : i + 1]]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io = tf.uint8 if mode == "uint8" else tf.int8
        conv.inference_input_type = io
        conv.inference_output_type = io
    return conv.convert()


@pytest.fixture(scope="session")
def tflite_models(keras_model, tmp_path_factory) -> dict[str, Path]:
    """{"float", "uint8", "int8"}: float32, int8 with uint8 I/O, int8 with int8 I/O."""
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for mode in ("float", "uint8", "int8"):
        paths[mode] = folder / f"tiny_{mode}.tflite"
        paths[mode].write_bytes(_convert(keras_model, mode))
    return paths


@pytest.fixture(scope="session")
def bundle_dir(tflite_models, tmp_path_factory) -> Path:
    """A bundle (uint8-I/O int8 model + float model) as `train quantize` writes it."""
    from edge.model.bundle import write_bundle

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    return write_bundle(out, model=tflite_models["uint8"], float_model=tflite_models["float"],
                        labels=LABELS, name="tiny", extra={"provenance": {"source": "test fixture"}})


@pytest.fixture()
def fresh_bundle(bundle_dir, tmp_path) -> Path:
    """A private copy of the bundle, for tests that damage it."""
    import shutil

    dest = tmp_path / "bundle"
    shutil.copytree(bundle_dir, dest)
    return dest


@pytest.fixture()
def colour_files(tmp_path) -> dict[str, Path]:
    """One JPEG per colour class."""
    import cv2

    paths = {}
    for name in LABELS:
        p = tmp_path / f"{name}.jpg"
        cv2.imwrite(str(p), cv2.cvtColor(colour_image(name, seed=7), cv2.COLOR_RGB2BGR))
        paths[name] = p
    return paths


@pytest.fixture(scope="session")
def quantized(keras_model, tmp_path_factory) -> dict:
    """A run folder and the bundle `train quantize` made from it (built once per session)."""
    from helpers import build_quantized

    return build_quantized(keras_model, tmp_path_factory)


@pytest.fixture()
def bundle(quantized, tmp_path) -> Path:
    """A private copy of the quantized bundle, for tests that change it."""
    import shutil

    dest = tmp_path / "bundle"
    shutil.copytree(quantized["bundle"], dest)
    return dest


@pytest.fixture()
def no_tpu(monkeypatch) -> list:
    """No Edge TPU on this machine, faked at the seam edge.model.load uses; records each device tried."""
    from edge.backends import edgetpu
    from edge.errors import DelegateError

    tried: list = []

    def load(load_delegate, device=None):
        tried.append(device)
        raise DelegateError("No Edge TPU runtime: libedgetpu.so.1 is not installed.")

    monkeypatch.setattr(edgetpu, "load_edgetpu_delegate", load)
    return tried
