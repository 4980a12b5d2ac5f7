"""``edge install-service`` / ``edge uninstall-service``: run ``edge run`` under systemd."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edge.commands._common import handles_errors

RootOpt = Annotated[Path, typer.Option(
    "--root", help="Write into this folder instead of / (an OS image being built, or a test).",
    file_okay=False)]
DryRunFlag = Annotated[bool, typer.Option("--dry-run", help="Print what would be done; change nothing.")]
ConfigPathOpt = Annotated[Path, typer.Option("--config", help="Where the service reads its TOML config.")]


def register(app: typer.Typer) -> None:
    app.command("install-service")(install_service)
    app.command("uninstall-service")(uninstall_service)


@handles_errors
def install_service(
    model: Annotated[Path | None, typer.Option(
        "--model", "-m", help="A bundle folder to install as /var/lib/skin-edge/models/current.",
        exists=True, file_okay=False)] = None,
    config: ConfigPathOpt = Path("/etc/skin-edge/edge.toml"),
    root: RootOpt = Path("/"),
    dry_run: DryRunFlag = False,
    trust: Annotated[list[Path] | None, typer.Option(
        "--trust", metavar="PUBKEY", dir_okay=False, show_default=False,
        help="Trust this public key (a .pub file from `train keygen`): it goes to "
             "/etc/skin-edge/trusted-keys/, and from then on only bundles signed by a trusted key run "
             "(repeat for several).")] = None,
) -> None:
    """Install the systemd unit, Coral udev rules, config, service user and (optionally) a model
    and trusted signing keys."""
    from edge.device.service import install_service as install  # noqa: PLC0415

    _render(install(root=root, config=config, model=model, dry_run=dry_run, trust=tuple(trust or ())))


@handles_errors
def uninstall_service(
    config: ConfigPathOpt = Path("/etc/skin-edge/edge.toml"),
    purge: Annotated[bool, typer.Option(
        "--purge", help="Also remove the config, /var/lib/skin-edge (models, results) and the user.")] = False,
    root: RootOpt = Path("/"),
    dry_run: DryRunFlag = False,
) -> None:
    """Remove the systemd unit and the udev rules (the state stays unless --purge)."""
    from edge.device.service import uninstall_service as uninstall  # noqa: PLC0415

    _render(uninstall(root=root, config=config, purge=purge, dry_run=dry_run))


def _render(report) -> None:  # noqa: ANN001
    if report.dry_run:
        typer.echo("dry run: nothing is written")
    for step in report.steps:
        typer.echo(step.describe(report.dry_run))
    for warning in report.warnings:
        typer.echo(f"note: {warning}", err=True)
    if report.next_commands:
        typer.echo("\nthen:" if not report.dry_run else "\nafter a real run:")
        for command in report.next_commands:
            typer.echo(f"  {command}")
