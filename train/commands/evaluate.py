"""`train evaluate RUN`: metrics for any split of the run's dataset or another dataset; ISIC 2018 CSV."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from train.commands._common import handles_errors, note, print_json


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)


@handles_errors
def evaluate(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder written by `train fit`.", show_default=False)],
    data: Annotated[Path | None, typer.Option("--data", help="Another dataset: every image in it is "
                                              "evaluated \\[default: the run's own dataset].")] = None,
    split: Annotated[str, typer.Option("--split", help="train, val, test or all (the run's dataset).")] = "test",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.")] = 32,
    out: Annotated[Path | None, typer.Option("--out", help="Metrics JSON to write \\[default: "
                                             "RUN/eval-<split or data folder>.json].")] = None,
    isic_csv: Annotated[Path | None, typer.Option("--isic-csv", help="Also write an ISIC 2018 Task 3 "
                                                  "submission CSV here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Recompute accuracy, balanced accuracy, per-class metrics, AUC and melanoma recall."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from train.report.evaluate import evaluate as run_evaluate  # noqa: PLC0415

    result = run_evaluate(run, data=data, split=split, batch_size=batch_size, out=out, isic_csv=isic_csv,
                          report=note)
    if result.auc_skipped:
        note(f"macro AUC leaves out {', '.join(result.auc_skipped)}: no images of them in {result.name}")
    if json_out:
        print_json({"name": result.name, "n": result.n, "unreadable": result.unreadable,
                    "metrics_path": result.metrics_path, "isic_csv": result.isic_csv, "metrics": result.metrics})
        return
    from rich.console import Console  # noqa: PLC0415

    console = Console()
    if result.metrics is not None:
        console.print(metrics_table(result.metrics, f"{result.name} ({result.n} images)"))
        for line in trust_lines(result.metrics):
            console.print(line)
        console.print(f"metrics: {result.metrics_path}")
    if result.isic_csv:
        console.print(f"ISIC 2018 submission CSV ({result.n} images): {result.isic_csv}")


def metrics_table(metrics: dict, title: str):
    """A rich table of per-class metrics with the headline figures in its caption."""
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=title)
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for label, m in metrics["per_class"].items():
        table.add_row(label, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))

    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    table.caption = (f"accuracy {fmt(metrics['accuracy'])}  balanced accuracy {fmt(metrics['balanced_accuracy'])}  "
                     f"macro AUC {fmt(metrics['macro_auc'])}  melanoma recall {fmt(metrics['melanoma_recall'])}")
    return table


def trust_lines(metrics: dict) -> list[str]:
    """Calibration, OOD and per-group figures in a few lines (nothing for what a run lacks)."""
    lines = []
    cal, ood = metrics.get("calibration"), metrics.get("ood")
    if cal:
        lines.append(f"calibration: temperature {cal['temperature']:.3f}; ECE {cal['ece_uncalibrated']:.3f} "
                     f"uncalibrated -> {cal['ece']:.3f} ({cal['bins']} bins)")
    if ood:
        energy = "" if ood.get("auroc_energy") is None else f"; energy score {ood['auroc_energy']:.3f}"
        lines.append(f"OOD score: AUROC {ood['auroc']:.3f} against {ood['non_lesion_images']} non-lesion images"
                     f"{energy}; threshold {ood['threshold']:.3g} flags {ood['test_flagged']:.0%} of the test "
                     f"images and {ood['non_lesion_flagged']:.0%} of the non-lesion ones")
    groups = metrics.get("by_group")
    if groups:
        from train.report.trust import weakest  # noqa: PLC0415

        small = sum(g["small"] for key, vals in groups.items() if isinstance(vals, dict) for g in vals.values())
        line = weakest(groups)
        lines.append(f"by group (sex, age band, body site): {line or 'every group is small'}; "
                     f"{small} group(s) under {groups['small_group_below']} images flagged small")
    return lines
