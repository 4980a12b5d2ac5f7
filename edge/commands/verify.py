"""``edge verify``: run a bundle's golden inputs here and compare with the stored outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge.commands._common import (
    DeviceOpt,
    JsonFlag,
    ModelOpt,
    ThreadsOpt,
    VariantOpt,
    handles_errors,
    note,
    print_json,
)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


@handles_errors
def verify(model: ModelOpt, device: DeviceOpt = "auto", threads: ThreadsOpt = None, json_out: JsonFlag = False,
           variant: VariantOpt = None,
           config: Annotated[Path | None, typer.Option(
               "--config", dir_okay=False, show_default=False,
               help="edge run's TOML config, for its trusted_keys [default: /etc/skin-edge/edge.toml when "
                    "it exists].")] = None) -> None:
    """Check checksums and that this runtime/delegate reproduces the golden outputs (exit 1 if not);
    --variant checks another of the bundle's files against the same golden outputs. With trusted keys
    (the config's trusted_keys, /etc/skin-edge/trusted-keys/) the bundle must be signed by one."""
    from edge.model.verify import verify_bundle  # noqa: PLC0415
    from edge.run.config import load_config, trusted_keys_of  # noqa: PLC0415

    report = verify_bundle(model, device=device, threads=threads, variant=variant,
                           trusted=trusted_keys_of(load_config(config)))
    for line in report.notes:
        note(line)
    if json_out:
        print_json(report.as_dict())
    else:
        _render(report)
    if not report.passed:
        for p in report.problems:
            typer.echo(f"error: {p}", err=True)
        raise typer.Exit(1)


def _render(r) -> None:  # noqa: ANN001
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    out = Console(soft_wrap=True)
    for row in r.checksums:
        state = "[green]ok[/green]" if row["ok"] else ("[red]missing[/red]" if row["actual"] is None
                                                     else "[red]MISMATCH[/red]")
        out.print(f"checksum {row['file']}: {state}")
    if r.samples:
        rule = "exact" if r.tolerance_steps == 0 else f"max |diff| <= {r.tolerance_steps} steps, same top-1"
        t = Table("#", "image", "max |diff| (steps)", "top-1 expected", "top-1 here", "ok",
                  title=f"{r.model_file} on {r.device} ({r.runtime}, {r.threads} threads): {rule}")

        def name(i: int) -> str:
            return r.labels[i] if r.labels and i < len(r.labels) else str(i)

        for s in r.samples:
            t.add_row(str(s.index), s.image_id, str(s.max_abs_diff), name(s.expected_top1), name(s.actual_top1),
                      "[green]yes[/green]" if s.ok else "[red]NO[/red]")
        out.print(t)
        from edge import DISCLAIMER  # noqa: PLC0415

        out.print(DISCLAIMER)
    out.print("verify: " + ("[green]PASSED[/green]" if r.passed else "[red]FAILED[/red]"))
