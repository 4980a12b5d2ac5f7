"""Write the seed corpus of fuzz/run.py (committed; rerun only to change it). Needs the train extra.

    .venv/bin/python fuzz/make_corpus.py
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def tflite(folder: Path) -> None:
    """Tiny real classifiers: float, int8 with uint8 and with int8 I/O, and the three-output export."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    from train.export.heads import export_model, find_head

    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 16, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = keras.layers.DepthwiseConv2D(3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
    calib = np.random.default_rng(0).integers(0, 256, (8, 12, 16, 3)).astype(np.float32)

    def convert(m, io_type=None) -> bytes:
        conv = tf.lite.TFLiteConverter.from_keras_model(m)
        if io_type is not None:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = conv.inference_output_type = io_type
        return conv.convert()

    (folder / "float.tflite").write_bytes(convert(model))
    (folder / "uint8.tflite").write_bytes(convert(model, tf.uint8))
    (folder / "int8.tflite").write_bytes(convert(model, tf.int8))
    (folder / "trust_uint8.tflite").write_bytes(convert(export_model(model, find_head(model)), tf.uint8))


def images(folder: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    shots = {"rgb.jpg": (rgb, "JPEG", {}), "progressive.jpg": (rgb, "JPEG", {"progressive": True}),
             "rgb.png": (rgb, "PNG", {}), "grey.png": (rgb.convert("L"), "PNG", {}),
             "palette.png": (rgb.convert("P"), "PNG", {}), "rgba.png": (rgb.convert("RGBA"), "PNG", {}),
             "rgb.bmp": (rgb, "BMP", {}), "rgb.tif": (rgb, "TIFF", {}), "rgb.webp": (rgb, "WEBP", {"lossless": True}),
             "deep.png": (Image.fromarray(rng.integers(0, 65535, (8, 8), dtype=np.uint16)), "PNG", {})}
    for name, (im, fmt, kw) in shots.items():
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        (folder / name).write_bytes(buf.getvalue())
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", exif=exif)
    (folder / "exif.jpg").write_bytes(buf.getvalue())


def configs(folder: Path) -> None:
    shutil.copyfile(ROOT / "systemd" / "edge.toml", folder / "edge.toml")
    (folder / "small.toml").write_text('model = "/var/lib/skin-edge/models/current"\ncamera = "auto"\n'
                                       'http = "127.0.0.1:8080"\nthreshold = 0.6\ntrusted_keys = ["/etc/k.pub"]\n')
    (folder / "tables.toml").write_text('source = "/tmp/v.mp4"\n[quality]\nmin_sharpness = 5.0\n'
                                        '[reconnect]\ndelay = 0.5\nmax_delay = 30\nattempts = 0\n'
                                        '[picamera2]\nAfMode = "continuous"\nLensPosition = 2.5\n')


def requests(folder: Path) -> None:
    t = "fuzz-token"
    raw = {
        "page": f"GET /?token={t} HTTP/1.1\r\nHost: x\r\n\r\n",
        "latest": f"GET /api/latest HTTP/1.1\r\nAuthorization: Bearer {t}\r\n\r\n",
        "stats": f"GET /api/stats?token={t} HTTP/1.0\r\n\r\n",
        "metrics": f"HEAD /metrics?token={t} HTTP/1.1\r\nConnection: close\r\n\r\n",
        "health": "GET /healthz HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
        "list": f"GET /api/captures?limit=5&offset=0&reviewed=false&token={t} HTTP/1.1\r\n\r\n",
        "capture": f"POST /api/captures?token={t} HTTP/1.1\r\nContent-Type: application/json\r\n"
                   "Content-Length: 2\r\n\r\n{}",
        "review": f"PATCH /api/captures/1?token={t} HTTP/1.1\r\nContent-Type: application/json\r\n"
                  'Content-Length: 52\r\n\r\n{"diagnosis": "mel", "lesion_id": "L-1", "note": "x"}',
        "picture": f"GET /api/captures/1/explain.jpg?token={t} HTTP/1.1\r\n\r\n",
        "unauthorized": "GET /api/model HTTP/1.1\r\n\r\n",
        "method": f"DELETE /api/captures/1?token={t} HTTP/1.1\r\n\r\n",
    }
    for name, text in raw.items():
        (folder / f"{name}.http").write_bytes(text.encode())


if __name__ == "__main__":
    for name, make in (("tflite", tflite), ("image", images), ("config", configs), ("http", requests)):
        folder = HERE / "corpus" / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        make(folder)
        print(f"{name}: {len(list(folder.iterdir()))} seeds, {sum(p.stat().st_size for p in folder.iterdir())} bytes")
