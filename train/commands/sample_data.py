"""`train sample-data OUT`: a SYNTHETIC dataset in the HAM10000 layout, for demos and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from train.commands._common import handles_errors, note, print_json


def register(app: typer.Typer) -> None:
    app.command("sample-data")(sample_data)


@handles_errors
def sample_data(
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write (new, empty, or a previous sample).",
                                        show_default=False)],
    lesions: Annotated[int, typer.Option("--lesions", min=21, max=100_000, help="Number of lesions (3+ per class).")] = 120,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, help="Random seed; the same seed gives the same data.")] = 0,
    video: Annotated[bool, typer.Option("--video", help="Also write sample_video.mp4, a camera-like video "
                                       "of some of the lesions.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Write SYNTHETIC lesion-like images (not medical images) in HAM10000's Kaggle layout."""
    from train.data.sample_data import (  # noqa: PLC0415
        SampleDataError,
        make_sample_dataset,
    )
    from train.data.sample_video import make_sample_video  # noqa: PLC0415
    from train.errors import TrainError  # noqa: PLC0415

    note("writing SYNTHETIC sample data: drawn shapes and colours, not medical images")
    try:
        summary = make_sample_dataset(out, n_lesions=lesions, seed=seed)
        video_path = make_sample_video(out / "sample_video.mp4", out, seed=seed) if video else None
    except SampleDataError as e:
        raise TrainError(str(e)) from None
    if json_out:
        print_json({"out": str(summary.out), "synthetic": True, "images": summary.n_images,
                    "lesions": summary.n_lesions, "images_per_class": summary.images_per_class,
                    "lesions_per_class": summary.lesions_per_class,
                    "video": str(video_path) if video_path else None})
        return
    _table(summary, video_path)


def _table(summary, video_path: Path | None) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(title="SYNTHETIC sample data (not medical images)")
    table.add_column("class")
    table.add_column("lesions", justify="right")
    table.add_column("images", justify="right")
    for label, images in summary.images_per_class.items():
        table.add_row(label, str(summary.lesions_per_class[label]), str(images))
    table.add_row("total", str(summary.n_lesions), str(summary.n_images), style="bold")
    console = Console()
    console.print(table)
    console.print(f"dataset (HAM10000 layout): {summary.out}")
    if video_path:
        console.print(f"video: {video_path}")
    console.print("The images are synthetic: a model trained on them knows nothing about real skin lesions.")
