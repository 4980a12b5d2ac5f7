"""`train fit --data DIR --out RUN`: train a MobileNetV2 classifier and evaluate it on the test split."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from train.commands._common import handles_errors, note, print_json


def register(app: typer.Typer) -> None:
    app.command("fit")(fit)


@handles_errors
def fit(
    data: Annotated[list[Path], typer.Option("--data", help="Dataset folder: HAM10000, ISIC 2018 Task 3 or class "
                                             "sub-folders. Repeat it to train on several at once (e.g. "
                                             "HAM10000 and `edge export`ed reviews), split by lesion "
                                             "together.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Run folder to write (refused if it exists).",
                                      show_default=False)],
    image_size: Annotated[int, typer.Option("--image-size", help="Input height and width in pixels.")] = 224,
    alpha: Annotated[float, typer.Option("--alpha", help="MobileNetV2 width multiplier.")] = 1.0,
    weights: Annotated[str, typer.Option("--weights", help="imagenet (download or Keras cache), none, or "
                                         "PATH to a local .h5 / .weights.h5 file.")] = "imagenet",
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs with the base frozen (the only phase with "
                                        "--weights none).")] = 10,
    fine_tune_epochs: Annotated[int, typer.Option("--fine-tune-epochs", help="Epochs fine-tuning the top of "
                                                  "the base.")] = 10,
    fine_tune_layers: Annotated[int, typer.Option("--fine-tune-layers", help="Base layers to unfreeze in "
                                                  "phase 2.")] = 40,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Global batch size (split over replicas).")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (phase 2 uses a tenth).")] = 1e-3,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the split, weights and augmentation.")] = 0,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Share of lesions for validation.")] = 0.15,
    test_fraction: Annotated[float, typer.Option("--test-fraction", help="Share of lesions for test.")] = 0.15,
    strict: Annotated[bool, typer.Option("--strict", help="Stop on missing or unreadable images instead of "
                                         "skipping them.")] = False,
    oversample: Annotated[bool, typer.Option("--oversample", help="Draw classes equally often instead of "
                                             "weighting the loss.")] = False,
    patience: Annotated[int, typer.Option("--patience", help="Epochs without a better validation balanced "
                                          "accuracy before stopping.")] = 5,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out folder.")] = False,
    backup_dir: Annotated[Path | None, typer.Option("--backup-dir", help="Back up every epoch here; the same "
                                                    "command run again resumes from the last one (default "
                                                    "with a multi-worker TF_CONFIG: OUT.backup).",
                                                    show_default=False)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train on DIR (lesion-safe split), write RUN/ with model.keras, metrics.json and plots."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from train.fit.run import Settings  # noqa: PLC0415
    from train.fit.run import fit as run_fit  # noqa: PLC0415

    settings = Settings(image_size=image_size, alpha=alpha, weights=weights, epochs=epochs,
                        fine_tune_epochs=fine_tune_epochs, fine_tune_layers=fine_tune_layers, batch_size=batch_size,
                        lr=lr, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction, strict=strict,
                        oversample=oversample, patience=patience,
                        backup_dir=None if backup_dir is None else str(backup_dir.expanduser().absolute()))
    result = run_fit(data, out, settings, force=force, report=note)
    if json_out:
        print_json({"run": str(result.run), "interrupted": result.interrupted, "epochs": result.epochs,
                    "best_epoch": result.best_epoch,
                    "best_val_balanced_accuracy": result.best_val_balanced_accuracy,
                    "images_per_second": result.images_per_second, "seconds": result.seconds,
                    "images": result.images, "warnings": list(result.warnings), "test": result.metrics,
                    "strategy": result.strategy, "replicas": result.replicas, "worker": result.worker,
                    "workers": result.workers, "chief": result.chief, "weights_sha256": result.weights_sha256})
        return
    _summary(result)


def _summary(result) -> None:
    from rich.console import Console  # noqa: PLC0415

    from train.commands.evaluate import metrics_table, trust_lines  # noqa: PLC0415

    console = Console()
    if not result.chief:
        console.print(f"worker {result.worker} of {result.workers} done (weights sha256 "
                      f"{result.weights_sha256[:12]}); the chief writes the run folder {result.run}")
        return
    state = " (interrupted: best model so far)" if result.interrupted else ""
    console.print(f"run written to {result.run}{state}")
    console.print(f"{result.epochs} epochs in {result.seconds:.0f} s, {result.images_per_second:.0f} training "
                  f"images/s; best epoch {result.best_epoch} (validation balanced accuracy "
                  f"{result.best_val_balanced_accuracy:.3f}); images {result.images}")
    if result.metrics.get("evaluation") == "interrupted":
        console.print(f"no test metrics (the evaluation was interrupted): train evaluate {result.run}")
        return
    console.print(metrics_table(result.metrics, f"test split ({result.metrics['n']} images)"))
    for line in trust_lines(result.metrics):
        console.print(line)
