"""``edge classify``: label image files with a model bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
) -> None:
    """Classify each image; a bad image is reported and the others still run (exit 1 if any failed)."""
    from edge import DISCLAIMER  # noqa: PLC0415
    from edge.model.classify import classify_files  # noqa: PLC0415
    from edge.model.load import load_model  # noqa: PLC0415

    m = load_model(model, device=device, threads=threads, labels=labels)
    for line in m.notes:
        note(line)
    results = []
    for r in classify_files(m, images, k=top_k):
        results.append(r)
        if r.ok:
            if not json_out:
                tops = "  ".join(f"{p.label} {p.score:.3f}" for p in r.top)
                typer.echo(f"{r.path}: {tops}  ({r.time_ms:.1f} ms)")
        else:
            typer.echo(f"error: {r.error}", err=True)
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
