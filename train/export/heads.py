"""The classifier as the device runs it: logits, class activation maps and pooled features.

A trained model ends in global average pooling, (dropout,) and a dense softmax layer. The exported
model outputs instead

- ``logits``: the dense layer without its softmax, so the device can apply the calibration
  temperature exactly (softmax(logits / T)) instead of undoing a quantized softmax;
- ``cam``: the dense layer's weights as a 1x1 convolution over the last feature map, one map per
  class (Zhou et al. 2016). Its mean over the positions is the logits; int8 and Edge TPU friendly;
- ``features``: the pooled features, from which the device computes the OOD score.

A model without that head (any other Keras model) is exported as it is, softmax only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np


@dataclass(frozen=True)
class Head:
    pool: Any  # the GlobalAveragePooling2D layer
    dense: Any  # the classifier layer

    @property
    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        kernel, bias = self.dense.get_weights()
        return np.asarray(kernel), np.asarray(bias)


def _producer(tensor: Any) -> Any:
    history = getattr(tensor, "_keras_history", None)
    return history[0] if history else None


def find_head(model: Any) -> Head | None:
    """The model's pooling + dense softmax head, when its last layers are GAP, (Dropout,) Dense."""
    dense = model.layers[-1] if model.layers else None
    if not isinstance(dense, keras.layers.Dense) or getattr(dense.activation, "__name__", "") != "softmax":
        return None
    layer = _producer(dense.input)
    while isinstance(layer, keras.layers.Dropout):
        layer = _producer(layer.input)
    if not isinstance(layer, keras.layers.GlobalAveragePooling2D) or len(layer.input.shape) != 4:
        return None
    return Head(layer, dense)


def export_model(model: Any, head: Head | None, batch_size: int | None = 1) -> Any:
    """The three-output model (logits, cam, features) with a static batch size (the Edge TPU rejects
    dynamic shapes); the model as it is when it has no head."""
    shape = tuple(model.input_shape)[1:]
    inp = keras.Input(shape=shape, batch_size=batch_size, name="image")
    if head is None:
        return keras.Model(inp, model(inp, training=False))
    trunk = keras.Model(model.inputs, head.pool.input, name="trunk")
    fmap = trunk(inp, training=False)
    kernel, bias = head.weights
    classes = kernel.shape[1]
    features = keras.layers.GlobalAveragePooling2D(name="features")(fmap)
    logits_layer = keras.layers.Dense(classes, name="logits")
    cam_layer = keras.layers.Conv2D(classes, 1, name="cam")
    logits, cam = logits_layer(features), cam_layer(fmap)
    logits_layer.set_weights([kernel, bias])
    cam_layer.set_weights([kernel.reshape(1, 1, *kernel.shape), bias])
    return keras.Model(inp, [logits, cam, features], name="skin_edge_export")


def logits_and_features(exported: Any, batches: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, logits, features) of an exported model with a head over (x, y) batches."""
    import tensorflow as tf  # noqa: PLC0415

    step = tf.function(lambda x: exported(x, training=False), reduce_retracing=True)
    ys, logits, feats = [], [], []
    for x, y in batches:
        lo, _, fe = step(x)
        logits.append(np.asarray(lo))
        feats.append(np.asarray(fe))
        ys.append(np.asarray(y))
    if not ys:
        return np.zeros((0,), np.int64), np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    return np.concatenate(ys).astype(np.int64), np.concatenate(logits), np.concatenate(feats)
