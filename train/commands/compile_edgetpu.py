"""``train compile-edgetpu``: compile a bundle's int8 model for the Coral Edge TPU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from train.commands._common import fail, handles_errors


def register(app: typer.Typer) -> None:
    app.command("compile-edgetpu")(compile_edgetpu)


@handles_errors
def compile_edgetpu(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle folder written by `train quantize`.", show_default=False)],
    allow_cpu_ops: Annotated[bool, typer.Option("--allow-cpu-ops",
                                                help="Keep the result even if ops run on the CPU.")] = False,
) -> None:
    """Run edgetpu_compiler on BUNDLE/model.tflite; add model_edgetpu.tflite and its report to the bundle."""
    from train.export.edgetpu_compile import CompileRefused, compile_bundle  # noqa: PLC0415

    try:
        result = compile_bundle(bundle, allow_cpu_ops=allow_cpu_ops)
    except CompileRefused as e:
        render(e.result)
        raise fail(str(e)) from None
    render(result)
    typer.echo(f"wrote {bundle / 'model_edgetpu.tflite'}")


def render(result) -> None:  # noqa: ANN001
    from collections import Counter  # noqa: PLC0415

    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    r = result.report
    out = Console(soft_wrap=True)
    out.print(f"Edge TPU compiler {r.compiler_version}: {r.num_subgraphs} Edge TPU subgraph(s), "
              f"{r.tpu_ops} op(s) on the Edge TPU, {r.cpu_ops} on the CPU")
    t = Table("operator", "count", "status")
    for o in r.operations:
        t.add_row(o.op, str(o.count), o.status if o.mapped else f"[yellow]{o.status}[/yellow]")
    out.print(t)
    out.print(f"on-chip memory: {r.on_chip_memory_used or '?'} used, {r.on_chip_memory_remaining or '?'} left; "
              f"off-chip: {r.off_chip_memory_used or '?'}")
    for where, ops in (("before the Edge TPU part ends", result.cpu_before_tpu),
                       ("after the Edge TPU part", result.cpu_tail)):
        if ops:
            counts = Counter(ops)
            out.print(f"on the CPU {where}: {', '.join(f'{op} x{n}' for op, n in counts.items())}")
    for p in result.problems:
        out.print(f"[red]problem:[/red] {p}" + (" (allowed by --allow-cpu-ops)" if result.allowed else ""))
