"""`train fit`: a lesion-safe split, two-phase MobileNetV2 training, an honest test evaluation.

Phase 1 trains the new head on a frozen pretrained base; phase 2 fine-tunes the top layers of
the base at a lower learning rate, BatchNorm kept frozen. Model selection, early stopping and
learning-rate reduction all follow validation balanced accuracy. The run folder is written
under a temporary name and renamed at the end, so a folder named RUN is always complete.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge.data.datasets import (
    DatasetError,
    Record,
    class_counts,
    split_by_lesion,
    write_split_csv,
)
from edge.data.merge import dataset_of, load_datasets
from edge.util.atomic import publish_folder
from train.errors import TrainError
from train.fit.resume import remove_backup

Report = Callable[[str], None]


@dataclass(frozen=True)
class FitResult:
    """What a training run produced; `metrics` are the test split's."""

    run: Path
    metrics: dict
    epochs: int
    best_epoch: int
    best_val_balanced_accuracy: float
    images_per_second: float
    seconds: float
    interrupted: bool
    images: dict[str, int]
    warnings: tuple[str, ...]
    strategy: str
    replicas: int
    weights_sha256: str = ""
    worker: int = 0
    workers: int = 1
    chief: bool = True


@dataclass(frozen=True)
class Settings:
    """Everything ``train fit`` was asked for, built once by the CLI and passed whole; run.json records it."""

    image_size: int = 224
    alpha: float = 1.0
    weights: str = "imagenet"  # imagenet, none, or the absolute path of a local weights file
    epochs: int = 10
    fine_tune_epochs: int = 10
    fine_tune_layers: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    fine_tune_lr: float | None = None  # None: a tenth of lr
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    strict: bool = False
    oversample: bool = False
    patience: int = 5
    dropout: float = 0.2
    backup_dir: str | None = None  # where each worker backs up its last epoch (see train/fit/resume.py)

    def __post_init__(self) -> None:
        if self.fine_tune_lr is None:
            object.__setattr__(self, "fine_tune_lr", self.lr / 10)

    def as_dict(self) -> dict:
        """The settings as run.json states them."""
        return {"image_size": [self.image_size, self.image_size], "alpha": self.alpha, "weights": self.weights,
                "seed": self.seed, "epochs": self.epochs, "fine_tune_epochs": self.fine_tune_epochs,
                "fine_tune_layers": self.fine_tune_layers, "batch_size": self.batch_size, "lr": self.lr,
                "fine_tune_lr": self.fine_tune_lr, "val_fraction": self.val_fraction,
                "test_fraction": self.test_fraction,
                "balancing": "oversample" if self.oversample else "class_weights"}


def fit(data: Path | Sequence[Path], out: Path, settings: Settings = Settings(), *, force: bool = False,
        report: Report | None = None) -> FitResult:
    """Train on the dataset under `data` (or several, pooled and split by lesion together) and write
    the run folder `out` (see docs/training.md)."""
    settings = replace(settings, weights=_weights_arg(settings.weights))
    _check_settings(settings)
    out = Path(out).expanduser().absolute()
    roots = as_roots(data)
    for root in roots:
        _check_out(out, root, force)
    report = report or (lambda message: None)
    dataset = load(roots, settings.strict)
    for warning in dataset.warnings:
        report(f"warning: {warning}")
    try:
        splits = split_by_lesion(dataset.records, val_fraction=settings.val_fraction,
                                 test_fraction=settings.test_fraction, seed=settings.seed)
        class_counts(dataset.records, dataset.labels)  # every label is one of the model's
    except DatasetError as e:
        raise TrainError(str(e)) from None
    for line in per_dataset_counts(dataset, splits):
        report(line)
    from train.quiet import import_tensorflow  # noqa: PLC0415

    import_tensorflow()
    from train.fit import cluster, training  # noqa: PLC0415  (TensorFlow from here on)

    strategy = cluster.choose_strategy()
    chief = cluster.is_chief(strategy)
    if settings.backup_dir is None and cluster.worker_count(strategy) > 1:
        settings = replace(settings, backup_dir=str(out.parent / f"{out.name}.backup"))
    tmp = _make_tmp(out, chief)
    try:
        outcome = training.train(dataset, splits, tmp, settings, strategy, report)
        result = _finish(roots, dataset, splits, tmp, out, settings, outcome, force, chief)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _make_tmp(out: Path, chief: bool) -> Path:
    """The chief works in RUN.tmp-xxxxxx next to RUN (renamed at the end); other workers of a
    multi-worker run in the system's temporary folder, so they write nothing next to the run."""
    import tempfile  # noqa: PLC0415

    try:
        if not chief:
            return Path(tempfile.mkdtemp(prefix=f"{out.name}.worker-"))
        _remove_stale_tmp(out)
        tmp = out.parent / f"{out.name}.tmp-{secrets.token_hex(3)}"
        tmp.mkdir(parents=True)
        (tmp / OWNER_FILE).write_text(f"{os.getpid()}\n")
        return tmp
    except OSError as e:
        raise TrainError(f"cannot create a temporary run folder: {e.strerror or e}; choose another --out "
                         "or free disk space") from None


OWNER_FILE = ".owner-pid"


def _remove_stale_tmp(out: Path) -> None:
    """RUN.tmp-* folders of earlier runs whose process is gone (killed with SIGKILL, a power cut)."""
    for old in out.parent.glob(f"{out.name}.tmp-*"):
        try:
            pid = int((old / OWNER_FILE).read_text().strip())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except (OSError, ValueError):
            continue  # no owner recorded, or not ours to judge: left alone


def as_roots(data: Path | str | Sequence[Path]) -> list[Path]:
    """`--data` as a list of folders: one path, or several (pooled)."""
    return [Path(d) for d in ([data] if isinstance(data, (str, Path)) else data)]


def dataset_roots(info: Mapping) -> list[Path]:
    """The dataset folders a run.json names: `datasets`, or `data` alone (runs written before pooling)."""
    return [Path(p) for p in info.get("datasets") or [info["data"]]]


def load(data: Path | Sequence[Path], strict: bool):
    """The dataset under `data` (several: pooled); dataset problems become TrainError (one line, exit 1)."""
    try:
        return load_datasets([d.expanduser() for d in as_roots(data)], strict=strict)
    except DatasetError as e:
        raise TrainError(str(e)) from None


def per_dataset_counts(dataset, splits: Mapping[str, Sequence[Record]]) -> list[str]:
    """One line per pooled dataset: its images in each split (nothing for a single dataset)."""
    if not dataset.parts:
        return []
    origin = dataset_of(dataset)
    lines = []
    for root, layout, n in dataset.parts:
        name = Path(root).name
        per = {split: sum(origin.get(r.path) == name for r in recs) for split, recs in splits.items()}
        lines.append(f"dataset {name} ({layout}): {n} images, " + ", ".join(f"{k} {v}" for k, v in per.items()))
    return lines


def _weights_arg(weights: str) -> str:
    w = str(weights)
    if w.lower() in ("imagenet", "none"):
        return w.lower()
    path = Path(w).expanduser()
    if not path.is_file():
        raise TrainError(f"--weights {w}: no such file; pass a local .h5 / .weights.h5 file, imagenet or none")
    return str(path.absolute())


MAX_SEED = 2**32 - 1  # NumPy's and TensorFlow's seeds


def _check_settings(s: Settings) -> None:
    problems = [
        (not 32 <= s.image_size <= 1024, f"--image-size {s.image_size} must lie in 32..1024 (96..224 typical)"),
        (not 0 < s.alpha <= 2.0, f"--alpha {s.alpha} must lie in (0, 2] (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)"),
        (not 1 <= s.epochs <= 10_000, f"--epochs {s.epochs} must lie in 1..10000"),
        (not 0 <= s.fine_tune_epochs <= 10_000, f"--fine-tune-epochs {s.fine_tune_epochs} must lie in 0..10000"),
        (not 1 <= s.fine_tune_layers <= 10_000, f"--fine-tune-layers {s.fine_tune_layers} must lie in 1..10000"),
        (not 1 <= s.batch_size <= 4096, f"--batch-size {s.batch_size} must lie in 1..4096"),
        (not 0 < s.lr < 1, f"--lr {s.lr} must lie between 0 and 1"),
        (not 0 <= s.seed <= MAX_SEED, f"--seed {s.seed} must lie in 0..{MAX_SEED}"),
        (not (0 < s.val_fraction < 1 and 0 < s.test_fraction < 1 and s.val_fraction + s.test_fraction < 1),
         f"--val-fraction {s.val_fraction} and --test-fraction {s.test_fraction} must each lie between 0 and 1 "
         "and add up to less than 1"),
        (not 1 <= s.patience <= 10_000, f"--patience {s.patience} must lie in 1..10000"),
        (not 0 <= s.dropout < 1, f"dropout {s.dropout} must lie in [0, 1)"),
    ]
    for bad, message in problems:
        if bad:
            raise TrainError(message)


def _check_out(out: Path, data: Path, force: bool) -> None:
    if out.exists() and not force:
        raise TrainError(f"{out} already exists; choose another --out or pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise TrainError(f"{out} is a file; --out must name a folder")
    data = data.expanduser().resolve()
    if out.resolve() == data or out.resolve() in data.parents:
        raise TrainError(f"--out {out} holds the dataset {data}; a run folder must be somewhere else")


def _finish(data: Sequence[Path], dataset, splits: Mapping[str, Sequence[Record]], tmp: Path, out: Path, settings: Settings,
            outcome, force: bool, chief: bool) -> FitResult:
    """Write everything except the model and history (already in `tmp`), then rename tmp -> out."""
    from train.report import plots  # noqa: PLC0415

    if not chief:  # another worker of a multi-worker run: the chief writes the run folder
        shutil.rmtree(tmp, ignore_errors=True)
        return _result(out, dataset, outcome, chief)
    labels = list(dataset.labels)
    (tmp / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    write_split_csv(tmp / "split.csv", splits)
    write_json(tmp / "metrics.json", outcome.metrics)
    if "confusion_matrix" in outcome.metrics:  # not after an interrupted evaluation
        plots.confusion_matrices(outcome.metrics["confusion_matrix"], labels, tmp / "plots", title="test")
    if outcome.metrics.get("calibration"):
        plots.reliability_diagram(outcome.metrics["calibration"], tmp / "plots" / "reliability.png", title="test")
    if (tmp / "history.csv").is_file():
        plots.history_curves(tmp / "history.csv", tmp / "plots")
    plots.class_distribution({name: class_counts(recs, labels) for name, recs in splits.items()},
                             labels, tmp / "plots")
    run = run_info(data, dataset, settings, outcome, labels)
    write_json(tmp / "run.json", run)
    (tmp / OWNER_FILE).unlink(missing_ok=True)
    publish_folder(tmp, out)  # a --force'd previous run is swapped out, then removed
    remove_backup(settings.backup_dir)  # only now: a chief killed before this resumes from it
    return _result(out, dataset, outcome, chief)


def run_info(data: Path | Sequence[Path], dataset, settings: Settings, outcome, labels: Sequence[str]) -> dict:
    s = settings.as_dict()
    roots = [d.expanduser().resolve() for d in as_roots(data)]
    return {
        "data": str(roots[0]), "datasets": [str(r) for r in roots],
        "dataset_images": {Path(root).name: n for root, _, n in dataset.parts} or {roots[0].name: len(dataset.records)},
        "layout": dataset.layout,
        **{k: s[k] for k in ("image_size", "alpha", "weights", "seed")},
        "labels": list(labels), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(), "interrupted": outcome.interrupted,
        **{k: s[k] for k in ("epochs", "fine_tune_epochs", "fine_tune_layers", "batch_size", "lr", "fine_tune_lr",
                             "val_fraction", "test_fraction", "balancing")},
        "class_weights": outcome.class_weights, "epochs_run": outcome.epochs, "best_epoch": outcome.best_epoch,
        "best_val_balanced_accuracy": outcome.best_score, "images": outcome.images,
        "missing_images": dataset.missing, "unreadable_images": outcome.unreadable,
        "images_per_second": outcome.images_per_second, "seconds": outcome.seconds,
        "strategy": outcome.strategy, "replicas": outcome.replicas, "workers": outcome.workers,
        "weights_sha256": outcome.weights_sha256,
    }


def _result(out: Path, dataset, outcome, chief: bool) -> FitResult:
    return FitResult(run=out, metrics=outcome.metrics, epochs=outcome.epochs, best_epoch=outcome.best_epoch,
                     best_val_balanced_accuracy=outcome.best_score, images_per_second=outcome.images_per_second,
                     seconds=outcome.seconds, interrupted=outcome.interrupted, images=outcome.images,
                     warnings=tuple(dataset.warnings) + outcome.warnings, strategy=outcome.strategy,
                     replicas=outcome.replicas, weights_sha256=outcome.weights_sha256, worker=outcome.worker,
                     workers=outcome.workers, chief=chief)


def versions() -> dict[str, str]:
    import importlib.metadata as md  # noqa: PLC0415
    import platform  # noqa: PLC0415

    found = {"python": platform.python_version()}
    for package in ("skin-edge", "tensorflow", "tensorflow-cpu", "keras", "numpy", "scikit-learn"):
        try:
            found[package] = md.version(package)
        except md.PackageNotFoundError:
            continue
    return found


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


