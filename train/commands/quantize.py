"""``train quantize``: a trained run to a checked int8 model bundle (optionally Edge TPU compiled)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from train.commands._common import fail, handles_errors, note


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize)


@handles_errors
def quantize(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder written by `train fit`.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle folder to write, e.g. models/NAME.",
                                      show_default=False)],
    io: Annotated[str, typer.Option("--io", help="Input/output type of the int8 model: uint8 or int8.")] = "uint8",
    calibration_size: Annotated[int, typer.Option("--calibration-size", min=1, max=100_000,
                                                  help="Images in the representative dataset.")] = 300,
    calibration_dir: Annotated[Path, typer.Option("--calibration-dir",
                                                  help="Where calibration sets are stored and reused.")] = Path(
        "calibration"),
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, help="Seed for choosing calibration images.")] = 0,
    max_drop: Annotated[float, typer.Option("--max-drop", min=0.0,
                                            help="Largest allowed balanced-accuracy drop, int8 vs float.")] = 0.01,
    min_agreement: Annotated[float, typer.Option("--min-agreement", min=0.0, max=1.0,
                                                 help="Smallest allowed int8/float top-1 agreement.")] = 0.97,
    allow_degraded: Annotated[bool, typer.Option("--allow-degraded",
                                                 help="Write the bundle even when the gate fails.")] = False,
    edgetpu: Annotated[bool, typer.Option("--edgetpu", help="Also compile for the Coral Edge TPU.")] = False,
    allow_cpu_ops: Annotated[bool, typer.Option("--allow-cpu-ops",
                                                help="With --edgetpu: keep a model that runs partly on the CPU.")
                             ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    data: Annotated[Path | None, typer.Option("--data", help="Dataset root, if it moved since training.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Model name in model.json \\[default: --out's name].")
                    ] = None,
    sign: Annotated[Path | None, typer.Option("--sign", metavar="KEY", show_default=False,
                                              help="Sign the bundle with this key (`train keygen`).")] = None,
) -> None:
    """Convert RUN to float32 and full-integer int8 TFLite, check the loss on the test split, write the bundle."""
    from train.export.quantize import QuantizeFailed  # noqa: PLC0415
    from train.export.quantize import quantize as run_quantize
    from train.export.signing import load_signing_key, sign_bundle  # noqa: PLC0415

    signing_key = load_signing_key(sign) if sign is not None else None  # a bad key fails before the work
    try:
        result = run_quantize(run, out, name=name, io=io, calibration_size=calibration_size,
                              calibration_dir=calibration_dir, seed=seed, max_bal_acc_drop=max_drop,
                              min_agreement=min_agreement, allow_degraded=allow_degraded, edgetpu=edgetpu,
                              allow_cpu_ops=allow_cpu_ops, force=force, data=data)
    except QuantizeFailed as e:
        render(e.result)
        raise fail(str(e)) from None
    render(result)
    if signing_key is not None:
        key = sign_bundle(out, signing_key)
        typer.echo(f"signed with key {key.label}: {out / 'model.sig'}")


def render(r) -> None:  # noqa: ANN001
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    for w in r.warnings:
        note(f"warning: {w}")
    out = Console(soft_wrap=True)
    cal = r.calibration
    out.print(f"calibration: {cal.manifest['size']} training images, {'reused' if cal.reused else 'built'} "
              f"at {cal.root}")
    m, g = r.metrics, r.gate
    t = Table("test split", "float32", "int8", "change",
              title=f"{m['test_images']} test images, via the device runtime")

    def fmt(x) -> str:  # noqa: ANN001
        return "-" if x is None else f"{x:.3f}"

    for key, label in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"),
                       ("melanoma_recall", "melanoma recall")):
        f, q = m["float"][key], m["int8"][key]
        t.add_row(label, fmt(f), fmt(q), "-" if f is None or q is None else f"{q - f:+.3f}")
    out.print(t)
    out.print(f"top-1 agreement int8 vs float: {m['agreement']:.1%} (minimum {g.min_agreement:.1%})")
    out.print(f"balanced accuracy drop: {g.bal_acc_drop * 100:.2f} points (limit {g.max_bal_acc_drop * 100:.2f})")
    out.print(f"probability difference: mean {m['prob_mean_abs_diff']:.4f}, max {m['prob_max_abs_diff']:.4f}")
    from train.commands.evaluate import trust_lines  # noqa: PLC0415

    for line in trust_lines({"calibration": m.get("calibration"), "ood": r.ood}):
        out.print(f"int8 {line}")
    state = "[green]PASSED[/green]" if g.passed else ("[yellow]FAILED (overridden)[/yellow]" if g.overridden
                                                    else "[red]FAILED[/red]")
    out.print(f"gate: {state}")
    out.print(f"size: float32 {r.float_size_bytes / 1e6:.2f} MB, int8 {r.int8_size_bytes / 1e6:.2f} MB "
              f"({r.size_ratio:.0%}); conversion {r.conversion_seconds['float']:.1f} s float, "
              f"{r.conversion_seconds['int8']:.1f} s int8 ({r.io} I/O)")
    if r.edgetpu is not None:
        from train.commands.compile_edgetpu import render as render_tpu  # noqa: PLC0415

        render_tpu(r.edgetpu)
    if r.bundle is not None:
        out.print(f"bundle: {r.bundle}")
