"""What the benchmark scripts share: models built once into a cache folder, by a child process.

The child (``SCRIPT --build --cache DIR``) imports Keras and TensorFlow; the measuring process
never does. Int8 models get uint8 input and output with the pixel scaling inside the model, as
our bundles do, calibrated on random images that span the whole 0..255 range.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def default_cache(name: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "skin-edge" / name


def parser(description: str, cache_name: str) -> argparse.ArgumentParser:
    """An argument parser with ``--cache`` and the hidden ``--build`` the child process is run with."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--cache", type=Path, default=default_cache(cache_name))
    ap.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    return ap


def build_in_child(script: str, cache: Path, what: str) -> None:
    """Run ``script --build --cache cache`` in a child Python; exit with its stderr when it fails."""
    print(f"building {what} into {cache} (once; needs the train extra) ...", flush=True)
    done = subprocess.run([sys.executable, script, "--build", "--cache", str(cache)],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"building the models failed:\n{done.stderr[-3000:]}")


def random_calibration(count: int, hw: tuple[int, int]) -> np.ndarray:
    """``count`` random float images of ``hw``; the first holds 0 and 255 (uint8 scale 1, zero point 0)."""
    calib = np.random.default_rng(0).integers(0, 256, (count, *hw, 3)).astype(np.float32)
    calib[0, 0, 0], calib[0, 0, 1] = 0.0, 255.0
    return calib


def to_tflite(model, calib: np.ndarray | None = None, io: str = "uint8") -> bytes:  # noqa: ANN001 (Keras)
    """The Keras model as TFLite: float, or with ``calib`` integer-only int8 with ``io`` (uint8 or
    int8) input and output."""
    import tensorflow as tf

    def representative():
        for i in range(len(calib)):
            yield [calib[i : i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if calib is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.uint8 if io == "uint8" else tf.int8
    return conv.convert()
