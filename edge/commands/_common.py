"""Options shared by several commands, and the one place errors become exit codes."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])

ModelArg = Annotated[Path, typer.Argument(metavar="MODEL", help="A model bundle folder or a .tflite file.", show_default=False)]
ModelOpt = Annotated[Path, typer.Option("--model", "-m", help="A model bundle folder or a .tflite file.",
                                        show_default=False)]
DeviceOpt = Annotated[str, typer.Option(
    "--device", "-d",
    help="auto (Edge TPU when present, else CPU), cpu, edgetpu, or a Coral device: usb, usb:N, pci, pci:N.")]
VariantOpt = Annotated[str | None, typer.Option(
    "--variant", show_default=False,
    help="Which of a bundle's files runs: int8 (model.tflite, the default), int8io, float, edgetpu, or fastest "
         "(the one `edge benchmark --all-variants` recorded on this device).")]
MAX_THREADS = 256  # more interpreter threads than any board has cores only starves the machine
ThreadsOpt = Annotated[int | None, typer.Option("--threads", "-t", min=1, max=MAX_THREADS,
                                                help="CPU threads for the interpreter \\[default: all cores].")]
LabelsOpt = Annotated[Path | None, typer.Option("--labels", help="labels.txt for a bare .tflite model.",
                                                exists=True, dir_okay=False)]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one line to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def handles_errors(fn: F) -> F:
    """Turn domain errors into one line on stderr and exit status 1; Ctrl-C into 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from edge.errors import EdgeError  # noqa: PLC0415

        try:
            return fn(*args, **kwargs)
        except EdgeError as e:
            raise fail(str(e)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except OSError as e:  # a file problem no check above named (a name too long, an I/O error): one line
            where = str(e.filename or "")
            where = where if len(where) <= 80 else where[:60] + "..." + where[-12:]
            raise fail(f"{where + ': ' if where else ''}{e.strerror or e}. Check the path, its permissions "
                       "and the free space.") from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def note(message: str) -> None:
    """A remark on stderr (so --json output on stdout stays clean)."""
    typer.echo(message, err=True)
