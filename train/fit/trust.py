"""The trust figures of a Keras model (`train fit`, `train evaluate`): the calibration temperature
and OOD statistics fitted on its own splits, ECE, OOD AUROC and per-group metrics on the test split.

The fitted values live in the run folder (``trust.json``, ``ood.npz``); `train quantize` fits its
own for the int8 model (train/export/trust_int8.py), since the device runs that one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from edge.data.datasets import Record
from edge.errors import BundleError
from edge.model.bundle import OOD_FILE
from edge.ops.calibration import check_temperature, softmax_rows
from edge.ops.ood import OodModel, load_ood
from train.data.non_lesion import non_lesion_images
from train.errors import TrainError
from train.export.heads import export_model, find_head, logits_and_features
from train.fit.inputs import Decoder, decoded, eval_batches
from train.report.trust import (
    Outputs,
    by_group,
    calibration_figures,
    ood_figures,
    ood_fit,
    temperature_of,
)

TRUST_FILE = "trust.json"


def split_outputs(exported, records: Sequence[Record], labels: Sequence[str], hw: tuple[int, int],
                  batch_size: int) -> tuple[Outputs, list[Record]]:
    """(labels, logits, features) of every readable record, and those records."""
    decoder = Decoder(*hw)
    index = {label: i for i, label in enumerate(labels)}
    y, logits, feats = logits_and_features(exported, eval_batches(decoded(records, index, decoder), batch_size))
    kept = [r for r in records if str(r.path) not in decoder.failed]
    return Outputs(y, logits, feats), kept


def non_lesion_outputs(exported, hw: tuple[int, int], batch_size: int) -> tuple[Outputs, list[str]]:
    items = non_lesion_images(*hw)
    x = np.stack([px for _, px in items]).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(len(x), np.int64))).batch(batch_size)
    y, logits, feats = logits_and_features(exported, ds)
    return Outputs(y, logits, feats), [name for name, _ in items]


def _hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    return (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)


def fit_trust(model, splits: Mapping[str, Sequence[Record]], labels: Sequence[str],
              image_size: int | tuple[int, int], batch_size: int, folder: Path) -> dict:
    """Fit the temperature (val) and the OOD statistics (train; threshold on val), write them to
    ``folder``, and return the test split's trust figures (empty when the model has no GAP head)."""
    head = find_head(model)
    if head is None:
        return {"calibration": None, "ood": None,
                "trust_note": "the model does not end in pooling + dense softmax: no temperature, no OOD score"}
    exported, hw = export_model(model, head, batch_size=None), _hw(image_size)
    outs = {name: split_outputs(exported, splits[name], labels, hw, batch_size)[0] for name in ("train", "val")}
    temperature = temperature_of(outs["val"])
    ood = ood_fit(outs["train"], outs["val"], len(labels))
    ood.save(folder / OOD_FILE)
    (folder / TRUST_FILE).write_text(json.dumps({"temperature": temperature, "ood_threshold": ood.threshold,
                                                 "ood_file": OOD_FILE}, indent=2) + "\n", encoding="utf-8")
    return assess(exported, splits["test"], labels, hw, batch_size, temperature, ood)


def load_trust(folder: Path) -> tuple[float, OodModel] | None:
    """A run folder's fitted temperature and OOD model; None for a run made before they existed."""
    path = Path(folder) / TRUST_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return (check_temperature(info["temperature"], str(path)),
                load_ood(Path(folder) / OOD_FILE, info["ood_threshold"]))
    except (ValueError, KeyError, TypeError) as e:
        raise TrainError(f"{path} is not valid ({e}); train the run again") from None
    except BundleError as e:  # the temperature or ood.npz failed the checks edge applies to a bundle
        raise TrainError(f"{path}: {e.message} Train the run again.") from None


def assess(exported, records: Sequence[Record], labels: Sequence[str], hw: tuple[int, int], batch_size: int,
           temperature: float, ood: OodModel) -> dict:
    """ECE before/after, OOD AUROC against the non-lesion images and per-group metrics on ``records``."""
    test, kept = split_outputs(exported, records, labels, hw, batch_size)
    if not len(test.y):
        raise TrainError(f"none of the {len(records)} images could be read; check the image files")
    others, names = non_lesion_outputs(exported, hw, batch_size)
    cal = calibration_figures(test, temperature, "the run's validation split, Keras float model")
    probs = softmax_rows(test.logits, temperature)
    oodf = ood_figures(ood, test, others, names, temperature, "training split features of the Keras model")
    return {"calibration": cal, "ece_uncalibrated": cal["ece_uncalibrated"], "ece": cal["ece"],
            "ood": oodf, "ood_auroc": oodf["auroc"],
            "by_group": by_group(test.y, probs, labels, [dict(r.meta) for r in kept])}
