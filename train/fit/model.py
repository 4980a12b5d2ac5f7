"""MobileNetV2 classifier taking raw 0..255 RGB: augmentation and pixel scaling live in the model.

Layout: input (H, W, 3) float 0..255 -> augmentation (active only in training) -> Rescaling to
[-1, 1] -> MobileNetV2 base (no top) -> global average pooling -> dropout -> dense softmax.
With pretrained weights the base is called with ``training=False``, so its BatchNorm layers
stay in inference mode in both phases (the standard Keras transfer-learning recipe).
"""

from __future__ import annotations

import re
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import keras

from edge.errors import first_line
from train.errors import TrainError

IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
IMAGENET_SIZES = (96, 128, 160, 192, 224)
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
BASE_NAME = "mobilenetv2_base"


def imagenet_file_name(alpha: float, size: int) -> str:
    """The Keras cache name of the no-top ImageNet weights (in ~/.keras/models/)."""
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{size}_no_top.h5"


def build_model(num_classes: int, *, image_size: int | tuple[int, int] = 224, alpha: float = 1.0,
                weights: str = "imagenet", dropout: float = 0.2, seed: int | None = None) -> keras.Model:
    """The classifier, uncompiled, base frozen when `weights` is pretrained.

    `weights`: "imagenet" (Keras download or its local cache), "none" (random initialisation,
    whole network trainable), or a path to a local .h5 / .weights.h5 file for the base.
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    pretrained = weights != "none"
    base = _base(height, width, alpha)
    if weights == "imagenet":
        load_base_weights(base, imagenet_weights(alpha, height, width))
    elif pretrained:
        load_base_weights(base, Path(weights))
    base.trainable = not pretrained
    if not pretrained:
        _faster_batchnorm_statistics(base)

    inputs = keras.Input((height, width, 3), name="image")
    x = augmentation(seed)(inputs)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_minus1_1")(x)
    x = base(x, training=False) if pretrained else base(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="skin_lesion_mobilenetv2")


def _faster_batchnorm_statistics(base: keras.Model, momentum: float = 0.9) -> None:
    """Keras' MobileNetV2 uses BatchNorm momentum 0.999, made for ImageNet's millions of steps.
    Trained from scratch on a small dataset the moving statistics would barely leave their
    initial values, and the model would predict one class at inference; 0.9 lets them follow."""
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def synchronize_batchnorm(model: keras.Model) -> int:
    """Make every BatchNorm layer compute its batch statistics over all replicas (returns how many).

    Without it each replica normalises with, and updates the moving averages from, its own part of
    the batch: the trainable weights stay in step, but the moving statistics drift apart between
    workers, and the model the chief saves is not the one the others hold. Frozen BatchNorm (the
    pretrained recipe) computes no batch statistics, so this matters only when they train.
    """
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.synchronized = True
    return len(layers)


def augmentation(seed: int | None = None) -> keras.Sequential:
    """Flips, rotation, zoom, brightness and contrast on 0..255 pixels; identity at inference."""

    def seed_of(k: int) -> int | None:  # one stream per layer, so their draws are independent
        return None if seed is None else seed * 10 + k

    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal_and_vertical", seed=seed_of(1)),
            keras.layers.RandomRotation(0.5, fill_mode="reflect", seed=seed_of(2)),
            keras.layers.RandomZoom((-0.2, 0.1), fill_mode="reflect", seed=seed_of(3)),
            keras.layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed_of(4)),
            keras.layers.RandomContrast(0.15, value_range=(0, 255), seed=seed_of(5)),
        ],
        name="augmentation",
    )


def _base(height: int, width: int, alpha: float) -> keras.Model:
    try:
        base = keras.applications.MobileNetV2(input_shape=(height, width, 3), alpha=alpha,
                                              include_top=False, weights=None, name=BASE_NAME)
    except ValueError as e:
        raise TrainError(f"MobileNetV2 cannot be built for {height}x{width} with alpha {alpha}: {e}") from None
    return base


def base_of(model: keras.Model) -> keras.Model:
    return model.get_layer(BASE_NAME)


def imagenet_weights(alpha: float, height: int, width: int) -> Path:
    """The local path of the ImageNet weights, downloaded by Keras unless already in its cache."""
    if alpha not in IMAGENET_ALPHAS:
        raise TrainError(f"ImageNet weights exist for alpha {', '.join(map(str, IMAGENET_ALPHAS))}, "
                         f"not {alpha}; choose one of those or use --weights none")
    size = height if height == width and height in IMAGENET_SIZES else 224
    name = imagenet_file_name(alpha, size)
    try:
        return Path(keras.utils.get_file(name, WEIGHTS_URL + name, cache_subdir="models"))
    except Exception as e:  # Keras raises a bare Exception for a failed fetch
        reason = first_line(e)
        raise TrainError(
            f"cannot download the ImageNet weights {name} ({reason}): no network — use --weights PATH "
            f"with a local weights file, e.g. the Keras cache file {name} copied from ~/.keras/models/ "
            "of a machine that has it, or --weights none"
        ) from None


def load_base_weights(base: keras.Model, path: Path) -> None:
    """Load a local weights file into the base: legacy .h5 by layer name, .weights.h5 by topology."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TrainError(f"weights file {path} does not exist; pass an existing .h5 or .weights.h5 file, "
                         "--weights imagenet or --weights none")
    name = path.name.lower()
    if not name.endswith((".h5", ".hdf5")):
        raise TrainError(f"weights file {path} is not .h5, .hdf5 or .weights.h5; "
                         "use a Keras weights file for MobileNetV2")
    try:
        if name.endswith(".weights.h5"):
            base.load_weights(path)
        else:
            _load_h5_by_name(base, path)
    except OSError as e:
        raise TrainError(f"cannot read {path} as an HDF5 weights file ({_mismatch(e)}); "
                         "pass a Keras .h5 or .weights.h5 file") from None
    except (ValueError, KeyError) as e:
        raise TrainError(f"weights in {path} do not fit MobileNetV2 with this --alpha and --image-size "
                         f"({_mismatch(e)}); use the file made for these settings") from None


def _mismatch(error: Exception) -> str:
    """The first shape mismatch Keras reports, in one short line."""
    text = str(error)
    keras3 = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\)).*?path=([\w/.-]+)", text, re.S)
    if keras3:
        return f"{keras3.group(3)} has shape {keras3.group(1)}, the file {keras3.group(2)}"
    legacy = re.search(r"for weight (\S+?)\. Weight expects shape (\([^)]*\))\. Received saved weight with shape "
                       r"(\([^)]*\))", text)
    if legacy:
        return f"{legacy.group(1)} has shape {legacy.group(2)}, the file {legacy.group(3)}"
    lines = text.strip().splitlines()
    return lines[0].rstrip(":") if lines else type(error).__name__


def _load_h5_by_name(base: keras.Model, path: Path) -> None:
    import h5py  # noqa: PLC0415

    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        names = {n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("layer_names", [])}
        stored = {n for n in names if n in group and len(group[n].attrs.get("weight_names", [])) > 0}
    weighted = [layer.name for layer in base.layers if layer.weights]
    if not names & set(weighted):
        raise ValueError("no layer of MobileNetV2 is named in the file")
    # By-name loading skips the layers a file lacks; the base is then frozen, so phase 1 would train
    # a head on a partly random backbone. A file must cover every weighted layer.
    lacking = [name for name in weighted if name not in stored]
    if lacking:
        raise ValueError(f"the file lacks {len(lacking)} of the {len(weighted)} weighted MobileNetV2 layers "
                         f"(first: {lacking[0]}); it covers only part of the network")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        base.load_weights(path, by_name=True, skip_mismatch=False)
    skipped = [str(w.message) for w in caught if "Skipping" in str(w.message)]
    if skipped:  # Keras's "Skipping nested container": some weights were not loaded
        raise ValueError(first_line(ValueError(skipped[0])))


def compile_model(model: keras.Model, lr: float) -> None:
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])


def unfreeze_model(model: keras.Model, n_layers: int, lr: float) -> int:
    """Make the top `n_layers` of the base trainable (BatchNorm stays frozen) and recompile.

    Returns the number of base layers that are now trainable.
    """
    base = base_of(model)
    base.trainable = True
    boundary = max(0, len(base.layers) - n_layers)
    trainable = 0
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= boundary and not isinstance(layer, keras.layers.BatchNormalization)
        trainable += layer.trainable and bool(layer.weights)
    compile_model(model, lr)
    return trainable


def load_trained(path: Path, labels: Sequence[str]) -> keras.Model:
    """A run's model.keras for inference; TrainError when it cannot be read or does not fit `labels`."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise TrainError(f"{path} is not a Keras .keras file (not a zip archive); train the run again")
    try:
        model = keras.saving.load_model(path, compile=False)
    except (ValueError, TypeError, KeyError, OSError) as e:
        reason = first_line(e, limit=200).rstrip(".")
        raise TrainError(f"cannot load {path} ({reason}); train the run again") from None
    classes = model.output_shape[-1]
    if classes != len(labels):
        raise TrainError(f"{path} outputs {classes} classes but labels.txt lists {len(labels)}; "
                         "use the labels.txt written with the model")
    return model
