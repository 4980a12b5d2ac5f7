"""``edge benchmark --eval``: top-1 accuracy of each model on labelled images, read once for all models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import EdgeError, ImageError, ModelError, first_line
from edge.model.load import Model
from edge.ops.metrics import Scores, score


@dataclass(frozen=True)
class EvalSet:
    """Labelled images for ``--eval``: (path, label name) pairs, read once for all models."""

    root: Path
    layout: str
    items: tuple[tuple[Path, str], ...]
    missing: int = 0  # images listed in the dataset's CSV but not on disk

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(label for _, label in self.items))


def load_eval_set(root: Path) -> EvalSet:
    """Class sub-folders or a HAM10000 / ISIC 2018 layout, read by the training side's own reader."""
    try:
        from edge.data.datasets import DatasetError, load_dataset  # noqa: PLC0415 (pure Python, no TensorFlow)
    except ImportError as e:
        raise EdgeError(f"--eval needs skin-edge's dataset reader (edge.data.datasets): {e}.",
                        "Reinstall skin-edge.") from None
    try:
        ds = load_dataset(Path(root))
    except DatasetError as e:
        raise EdgeError(f"--eval: {e}") from None
    return EvalSet(Path(root), ds.layout, tuple((r.path, r.label) for r in ds.records), ds.missing)


def evaluate(model: Model, eval_set: EvalSet) -> Scores:
    """Top-1 accuracy figures of a loaded model; unreadable images are skipped and counted."""
    labels = model.labels
    if not labels:
        raise ModelError(f"--eval needs class names for {model.path}.", "Pass a bundle, or --labels labels.txt.")
    unknown = sorted({label for _, label in eval_set.items} - set(labels))
    if unknown:
        raise ModelError(f"--eval classes {', '.join(unknown)} are not among the labels of {model.path} "
                         f"({', '.join(labels)}).", "Name the class folders after the model's labels.")
    from edge.ops.image import load_image  # noqa: PLC0415

    y_true, y_pred, skipped = [], [], 0
    for path, label in eval_set.items:
        try:
            tensor = model.prepare(load_image(path))
        except ImageError:
            skipped += 1
            continue
        try:
            probs = model.probabilities(model.invoke(tensor))
        except (RuntimeError, ValueError) as e:
            raise ModelError(f"{model.path}: invoke failed on {path}: {first_line(e)}") from None
        y_true.append(labels.index(label))
        y_pred.append(int(np.argmax(probs)))
    return score(y_true, y_pred, list(labels), skipped)
