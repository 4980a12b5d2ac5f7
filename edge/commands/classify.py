"""``edge classify``: label image files with a model bundle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edge.commands._common import (
    DeviceOpt,
    JsonFlag,
    LabelsOpt,
    ModelOpt,
    ThreadsOpt,
    handles_errors,
    note,
    print_json,
)

if TYPE_CHECKING:
    from edge.model.classify import FileResult


def result_text(r: "FileResult") -> str:
    """The top-k with full names when the status is ok; otherwise why there is no label."""
    if r.status == "ok":
        return "  ".join(f"{p.title} {p.score:.3f}" for p in r.top)
    return f"uncertain ({', '.join(r.reasons)})"


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)


@handles_errors
def classify(
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE", help="Image files (JPEG, PNG, BMP, TIFF).", show_default=False)],
    model: ModelOpt,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many classes to report.")] = 3,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    labels: LabelsOpt = None,
    json_out: JsonFlag = False,
    threshold: Annotated[float, typer.Option("--threshold", min=0.0, max=1.0,
                                             help="A top score below this is 'uncertain (low confidence)'.")] = 0.5,
) -> None:
    """Classify each image on its own, through the same quality gate as `edge run`: each result is ok,
    uncertain (with its reasons) or an error. A bad image is reported and the others still run
    (exit 1 if any failed)."""
    from edge import DISCLAIMER  # noqa: PLC0415
    from edge.model.classify import classify_files  # noqa: PLC0415
    from edge.model.load import load_model  # noqa: PLC0415

    m = load_model(model, device=device, threads=threads, labels=labels)
    for line in m.notes:
        note(line)
    results = []
    for r in classify_files(m, images, k=top_k, threshold=threshold):
        results.append(r)
        if not r.ok:
            typer.echo(f"error: {r.error}", err=True)
        elif not json_out:
            typer.echo(f"{r.path}: {result_text(r)}  ({r.time_ms:.1f} ms)")
    if json_out:
        print_json({"model": str(m.path), "runtime": f"{m.runtime.name} {m.runtime.version}",
                    "device": m.device, "disclaimer": DISCLAIMER,
                    "results": [r.as_dict() for r in results]})
    else:
        note(DISCLAIMER)
    failed = sum(not r.ok for r in results)
    if failed:
        note(f"{failed} of {len(results)} images failed.")
        raise typer.Exit(1)
