"""The ``train`` command (workstation side). Each command lives in ``train/commands/<name>.py``.

TensorFlow is imported inside the commands that need it, never at start-up.
"""

from __future__ import annotations

import importlib

import typer

from edge.commands._help import flags_without_metavar

flags_without_metavar()
app = typer.Typer(
    name="train",
    help="Train, evaluate and quantize a skin-lesion classifier for the edge (workstation side).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

COMMANDS = ("sample_data", "fit", "evaluate", "quantize", "compile_edgetpu", "sign")

for _name in COMMANDS:
    importlib.import_module(f"train.commands.{_name}").register(app)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # as Ctrl-C: the run so far is kept or its temporary folders removed


def main() -> None:
    import signal  # noqa: PLC0415

    from edge.util.logs import configure  # noqa: PLC0415

    configure()
    for sig in (signal.SIGTERM, signal.SIGHUP):  # `kill`, a closed terminal: the same clean stop as Ctrl-C
        signal.signal(sig, _interrupt)
    app()
