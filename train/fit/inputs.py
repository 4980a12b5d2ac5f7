"""The tf.data input pipeline: image files to batches of raw 0..255 RGB, streamed from disk.

Every image goes through ``edge.ops.image.load_image`` and ``edge.ops.preprocess.fit_to_input``, the
preprocessing the device runs, so the model trains on exactly what it will see on the Pi.
Decoding runs in parallel; decoded images are cached to a file (not memory) after the first
pass, so later epochs read small uint8 arrays instead of decoding JPEGs again. Memory stays
bounded by the shuffle buffer, whatever the size of the dataset.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from edge.data.datasets import Record
from edge.errors import ImageError
from edge.ops.image import load_image
from edge.ops.preprocess import fit_to_input

SHUFFLE_BUFFER = 1024  # images held for shuffling (1024 x 224 x 224 x 3 bytes = 154 MB at most)
AUTOTUNE = tf.data.AUTOTUNE


class Decoder:
    """Reads one image file into model input; remembers the files it could not read."""

    def __init__(self, height: int, width: int) -> None:
        self.height, self.width = height, width
        self._lock = threading.Lock()
        self._failed: dict[str, str] = {}

    def __call__(self, path: bytes) -> tuple[np.ndarray, np.bool_]:
        name = path.decode("utf-8")
        try:
            return fit_to_input(load_image(name), self.height, self.width), np.bool_(True)
        except ImageError as e:
            with self._lock:
                self._failed[name] = str(e)
            return np.zeros((self.height, self.width, 3), np.uint8), np.bool_(False)

    @property
    def failed(self) -> dict[str, str]:
        """{path: reason} of every image that could not be read so far."""
        with self._lock:
            return dict(self._failed)


def decoded(records: Sequence[Record], label_index: Mapping[str, int], decoder: Decoder,
            cache_file: Path | None = None) -> tf.data.Dataset:
    """(uint8 image, int32 label) per readable record, in record order; cached to `cache_file`."""
    paths = [str(r.path) for r in records]
    labels = np.array([label_index[r.label] for r in records], np.int32)
    h, w = decoder.height, decoder.width

    def load(path, label):
        image, ok = tf.numpy_function(decoder, [path], [tf.uint8, tf.bool], stateful=False)
        image.set_shape((h, w, 3))
        ok.set_shape(())
        return image, label, ok

    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.filter(_readable).map(_drop_flag)
    if cache_file is not None:
        ds = ds.cache(str(cache_file))
    return _with_options(ds)


def _readable(image, label, ok):
    return ok


def _drop_flag(image, label, ok):
    return image, label


def warm(ds: tf.data.Dataset) -> int:
    """Read `ds` once (decoding every image and filling its cache file); returns the image count."""
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1).numpy())


def _as_float(images, labels):
    return tf.cast(images, tf.float32), labels


def training_batches(ds: tf.data.Dataset, batch_size: int, seed: int) -> tf.data.Dataset:
    """An endless stream of shuffled (anew each pass), batched float32 0..255 images with int labels.

    Pass steps_per_epoch = ceil(images / batch_size) to fit.
    """
    ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True).repeat()
    return ds.batch(batch_size).map(_as_float, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def oversampled_batches(per_class: Sequence[tf.data.Dataset], batch_size: int, seed: int) -> tf.data.Dataset:
    """An endless stream drawing every class equally often (pass steps_per_epoch to fit)."""
    streams = [
        ds.shuffle(SHUFFLE_BUFFER // len(per_class) + 1, seed=seed + i, reshuffle_each_iteration=True).repeat()
        for i, ds in enumerate(per_class)
    ]
    ds = tf.data.Dataset.sample_from_datasets(streams, seed=seed)
    return ds.batch(batch_size).map(_as_float, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def eval_batches(ds: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """Batched float32 images in record order."""
    return ds.batch(batch_size).map(_as_float, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def _with_options(ds: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def balanced_class_weights(counts: Sequence[int]) -> dict[int, float]:
    """n / (k * count) per class (scikit-learn's "balanced"); classes without images get none."""
    counts = np.asarray(counts, np.float64)
    present = counts > 0
    weights = counts[present].sum() / (present.sum() * counts[present])
    return {int(i): float(w) for i, w in zip(np.flatnonzero(present), weights)}


class Predictor:
    """Runs a model in inference mode over a batched dataset; returns labels and probabilities."""

    def __init__(self, model) -> None:
        self._step = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self, batches: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
        ys, ps = [], []
        for x, y in batches:
            ps.append(np.asarray(self._step(x)))
            ys.append(y.numpy())
        if not ys:
            return np.zeros((0,), np.int64), np.zeros((0, 0), np.float32)
        return np.concatenate(ys).astype(np.int64), np.concatenate(ps)
