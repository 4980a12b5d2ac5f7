"""`train evaluate`: recompute a run's metrics on any split of its dataset or on another dataset,
and write the ISIC 2018 Task 3 submission CSV.

A folder of images without labels (such as the ISIC 2018 test input) can be scored for the
submission CSV only; metrics need labels.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.data.datasets import IMAGE_SUFFIXES, DatasetError, Record, read_split_csv
from edge.util.files import safe_name
from train.errors import TrainError
from train.fit.run import dataset_roots, load, write_json

ISIC_HEADER = ("image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
SPLIT_CHOICES = ("train", "val", "test", "all")
Report = Callable[[str], None]


@dataclass(frozen=True)
class EvalResult:
    """One evaluation: `metrics` is None for unlabelled images (predictions only)."""

    name: str
    n: int
    metrics: dict | None
    metrics_path: Path | None
    plots: tuple[Path, ...]
    isic_csv: Path | None
    unreadable: int
    auc_skipped: tuple[str, ...]


@dataclass(frozen=True)
class Run:
    folder: Path
    info: dict
    labels: tuple[str, ...]
    image_size: tuple[int, int]


def open_run(folder: Path) -> Run:
    """Read run.json and labels.txt of a `train fit` run folder; TrainError says what is wrong."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise TrainError(f"run folder {folder} does not exist; pass the --out folder of `train fit`")
    for name in ("run.json", "labels.txt", "model.keras"):
        if not (folder / name).is_file():
            raise TrainError(f"{folder} has no {name}; it is not a complete `train fit` run folder")
    try:
        info = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        height, width = info["image_size"]
    except (ValueError, KeyError, TypeError):
        raise TrainError(f"{folder / 'run.json'} is not valid run metadata; rerun `train fit`") from None
    labels = tuple(line.strip() for line in (folder / "labels.txt").read_text(encoding="utf-8").splitlines()
                   if line.strip())
    return Run(folder, info, labels, (int(height), int(width)))


def evaluate(run: Path, *, data: Path | None = None, split: str = "test", batch_size: int = 32,
             out: Path | None = None, isic_csv: Path | None = None, report: Report | None = None) -> EvalResult:
    """Evaluate the run's model on `split` of its own dataset, or on every image under `data`."""
    report = report or (lambda message: None)
    r = open_run(run)
    if split not in SPLIT_CHOICES:
        raise TrainError(f"--split {split} is not one of {', '.join(SPLIT_CHOICES)}")
    if batch_size < 1:
        raise TrainError(f"--batch-size {batch_size} must be at least 1")
    records, name, labelled = _records(r, data, split, isic_csv is not None, report)
    report(f"evaluating {len(records)} images ({name}) with {r.folder / 'model.keras'}")
    from train.quiet import import_tensorflow  # noqa: PLC0415

    import_tensorflow()
    from train.fit.model import load_trained  # noqa: PLC0415
    from train.fit.training import predict_records  # noqa: PLC0415

    model = load_trained(r.folder / "model.keras", r.labels)
    if labelled:
        y, probs, kept = predict_records(model, records, r.labels, r.image_size, batch_size)
    else:  # any label will do: it is not used
        placeholders = [Record(rec.image_id, rec.lesion_id, r.labels[0], rec.path) for rec in records]
        y, (_, probs, kept) = None, predict_records(model, placeholders, r.labels, r.image_size, batch_size)
    unreadable = len(records) - len(kept)
    if unreadable:
        report(f"warning: {unreadable} image(s) could not be read and were skipped")
    try:
        csv_path = write_isic_csv(Path(isic_csv), kept, probs, r.labels) if isic_csv else None
        if not labelled:
            return EvalResult(name, len(kept), None, None, (), csv_path, unreadable, ())
        return _write_metrics(r, name, y, probs, out, csv_path, unreadable, _trust(model, r, kept, y, probs, report))
    except OSError as e:
        raise TrainError(f"cannot write {e.filename or 'the results'}: {e.strerror or e}; "
                         "choose a writable --out / --isic-csv") from None


def _trust(model, r: Run, kept: list[Record], y, probs, report: Report) -> dict:
    """ECE, OOD AUROC and per-group metrics with the run's fitted temperature and OOD statistics;
    per-group metrics only (with a note) for a run made before they existed."""
    from train.export.heads import export_model, find_head  # noqa: PLC0415
    from train.fit.trust import assess, load_trust  # noqa: PLC0415
    from train.report.trust import by_group  # noqa: PLC0415

    fitted = load_trust(r.folder)
    head = find_head(model)
    if fitted is None or head is None:
        report("note: this run has no trust.json (trained before calibration and OOD statistics were "
               "fitted): no ECE or OOD AUROC; train it again for them")
        return {"by_group": by_group(y, probs, r.labels, [dict(rec.meta) for rec in kept])}
    return assess(export_model(model, head, batch_size=None), kept, r.labels, r.image_size, 32, *fitted)


def _write_metrics(r: Run, name: str, y, probs, out, csv_path, unreadable: int, trust: dict) -> EvalResult:
    from train.report import metrics as M  # noqa: PLC0415
    from train.report import plots  # noqa: PLC0415

    labels = r.labels
    metrics = {**M.evaluate_predictions(y, probs, labels), **trust}
    path = write_json(Path(out) if out else r.folder / f"eval-{name}.json", metrics)
    pngs = plots.confusion_matrices(metrics["confusion_matrix"], labels, r.folder / "plots",
                                    prefix=f"eval-{name}-confusion_matrix", title=name)
    if metrics.get("calibration"):
        pngs.append(plots.reliability_diagram(metrics["calibration"], r.folder / "plots" /
                                              f"eval-{name}-reliability.png", title=name))
    return EvalResult(name, metrics["n"], metrics, path, tuple(pngs), csv_path, unreadable,
                      tuple(M.auc_skipped(y, labels)))


def _records(r: Run, data: Path | None, split: str, predictions_only_ok: bool,
             report: Report) -> tuple[list[Record], str, bool]:
    """(records, name for the output files, whether they carry labels)."""
    if data is None:
        if not r.info.get("data"):
            raise TrainError(f"{r.folder / 'run.json'} does not name the run's dataset; pass --data")
        dataset = load(dataset_roots(r.info), strict=False)
        try:
            splits = read_split_csv(r.folder / "split.csv", dataset)
        except DatasetError as e:
            raise TrainError(str(e)) from None
        records = [rec for recs in splits.values() for rec in recs] if split == "all" else splits[split]
        if not records:
            raise TrainError(f"the {split} split of {r.folder} has no images")
        return records, split, True
    data = Path(data).expanduser()
    try:
        dataset = load(data, strict=False)
    except TrainError:
        images = _loose_images(data)
        if not (predictions_only_ok and images):
            raise
        report(f"{data} has images but no labels: writing predictions only, no metrics")
        return [Record(p.stem, p.stem, "", p) for p in images], _name(data), False
    for warning in dataset.warnings:
        report(f"warning: {warning}")
    unknown = sorted({rec.label for rec in dataset.records} - set(r.labels))
    if unknown:
        raise TrainError(f"{data} has label(s) {', '.join(unknown)} that the model does not know "
                         f"(it knows {', '.join(r.labels)}); evaluate on data with the model's classes")
    return list(dataset.records), _name(data), True


def _loose_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _name(folder: Path) -> str:
    return safe_name(folder.resolve().name, "data")


def write_isic_csv(path: Path, records: Sequence[Record], probs: np.ndarray, labels: Sequence[str]) -> Path:
    """ISIC 2018 Task 3 submission: image, MEL, NV, BCC, AKIEC, BKL, DF, VASC (probabilities)."""
    lower = [c.lower() for c in ISIC_HEADER[1:]]
    missing = [c for c in lower if c not in labels]
    if missing:
        raise TrainError(f"the ISIC 2018 CSV needs the model to predict {', '.join(lower)}; "
                         f"this model lacks {', '.join(missing)}")
    columns = [list(labels).index(c) for c in lower]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(ISIC_HEADER)
        for record, row in zip(records, probs):
            writer.writerow([record.image_id, *(f"{row[i]:.6f}" for i in columns)])
    return path
