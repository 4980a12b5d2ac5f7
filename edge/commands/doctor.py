"""``edge doctor``: check this device end to end; each problem comes with its fix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge.commands._common import DeviceOpt, JsonFlag, handles_errors, print_json


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


@handles_errors
def doctor(
    model: Annotated[Path | None, typer.Option(
        "--model", "-m", show_default=False,
        help="The bundle to check and smoke-test \\[default: /var/lib/skin-edge/models/current].")] = None,
    device: DeviceOpt = "auto",
    camera: Annotated[str | None, typer.Option(
        "--camera", help="Also grab a frame from this camera (auto, picamera2, opencv or an index, as for "
        "`edge run --camera`) and classify it.", show_default=False)] = None,
    json_out: JsonFlag = False,
) -> None:
    """Python, runtime, numpy, OpenCV, cameras, Edge TPU, device access, power, disk, model (exit 1 on a fail)."""
    from edge.device.doctor import run_doctor  # noqa: PLC0415

    report = run_doctor(model=model, device=device, camera=camera)
    if json_out:
        print_json(report.as_dict())
    else:
        _render(report)
    if not report.ok:
        raise typer.Exit(1)


def _render(report) -> None:  # noqa: ANN001
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    style = {"pass": "[green]pass[/green]", "warn": "[yellow]warn[/yellow]", "fail": "[bold red]FAIL[/bold red]"}
    table = Table("", "check", "found", "fix", show_lines=False)
    for c in report.checks:
        table.add_row(style[c.status], c.name, c.summary, c.fix or "")
    out = Console()
    out.print(table)
    counts = report.as_dict()["summary"]
    out.print(f"{counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail")
