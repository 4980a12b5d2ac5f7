"""The ``edge`` command. Each command lives in ``edge/commands/<name>.py`` and registers itself.

Only typer is imported here: numpy, OpenCV and the TFLite runtime load inside the command that
needs them, so ``edge --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

from edge.commands._help import flags_without_metavar

flags_without_metavar()
app = typer.Typer(
    name="edge",
    help="Run a skin-lesion classifier bundle on this device (Raspberry Pi, optional Coral Edge TPU). "
    "Not a medical diagnosis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

COMMANDS = ("info", "classify", "verify", "benchmark", "run", "export", "doctor", "service")

for _name in COMMANDS:
    importlib.import_module(f"edge.commands.{_name}").register(app)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    if version:
        from edge import __version__  # noqa: PLC0415

        typer.echo(__version__)
        raise typer.Exit()
    from edge.util.logs import configure  # noqa: PLC0415

    configure()  # the one place logging is set up: plain lines on stderr


def main() -> None:
    app()
