"""``edge export``: the archive's reviewed captures as a HAM10000-layout dataset for ``train fit``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge.commands._common import JsonFlag, handles_errors, note, print_json


def register(app: typer.Typer) -> None:
    app.command("export")(export)


@handles_errors
def export(
    archive: Annotated[Path, typer.Option("--archive", file_okay=False, metavar="DIR", show_default=False,
                                          help="The archive folder (edge run / edge classify --archive).")],
    out: Annotated[Path, typer.Option("--out", metavar="DATASET", show_default=False,
                                      help="The dataset folder to write (refused if it exists).")],
    reviewed_only: Annotated[bool, typer.Option(
        "--reviewed-only", help="Only captures an expert gave a diagnosis; otherwise unreviewed ones come too, "
                                "labelled by the model (dx_type model).")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Write HAM10000_metadata.csv (lesion_id, image_id, dx, dx_type expert) and the images, so
    `train fit --data DATASET` (with --data HAM10000 too, if you like) learns from the reviews.
    Safe while edge run writes the archive."""
    from edge.archive.export import export_dataset  # noqa: PLC0415

    s = export_dataset(archive, out, reviewed_only=reviewed_only)
    if json_out:
        print_json(s.as_dict())
        return
    classes = ", ".join(f"{k} {v}" for k, v in sorted(s.classes.items()))
    typer.echo(f"{s.out}: {s.images} images ({s.expert} expert diagnoses, {s.model} model labels): {classes}")
    for why, n in sorted(s.skipped.items()):
        note(f"left out {n}: {why}")
    if s.model:
        note("model labels are pseudo-labels, not diagnoses; --reviewed-only leaves them out.")
