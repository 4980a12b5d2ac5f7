"""``edge info``: what a model is and whether this device can run it."""

from __future__ import annotations

import typer

from edge.commands._common import (
    JsonFlag,
    LabelsOpt,
    ModelArg,
    fail,
    handles_errors,
    print_json,
)


def register(app: typer.Typer) -> None:
    app.command("info")(info)


@handles_errors
def info(model: ModelArg, labels: LabelsOpt = None, json_out: JsonFlag = False) -> None:
    """Describe any TFLite model: tensors, ops, custom ops, MACs, labels, (for a bundle) checksums, and
    what this device can do with it. Exit status 1 only for a file that is not a readable TFLite
    model or a damaged bundle."""
    from edge.model.info import inspect_model  # noqa: PLC0415

    result = inspect_model(model, labels=labels)
    if json_out:
        print_json(result.as_dict())
    else:
        _render(result)
    bad = [row["file"] for row in result.checksums if not row["ok"]]
    if bad:
        raise fail(f"checksum mismatch or file missing in {result.bundle}: {', '.join(bad)}. "
                   "The bundle is damaged: copy it again.")
    if not result.labels_fit:
        raise fail(f"{len(result.labels)} labels but {result.path.name} outputs "
                   f"{result.outputs[0]['shape'][-1]} classes. Pass the labels.txt that came with the model.")


def _render(r) -> None:  # noqa: ANN001
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    out = Console()
    out.print(f"[bold]{r.path}[/bold]  {r.size_bytes / 1e6:.2f} MB  runtime: {r.runtime}")
    t = Table("tensor", "name", "shape", "dtype", "quantization")
    for kind, tensors in (("input", r.inputs), ("output", r.outputs)):
        for x in tensors:
            q = x["quantization"]
            qs = f"scale {q['scale']:.6g}, zero point {q['zero_point']}" if q else "-"
            t.add_row(kind, x["name"], str(x["shape"]), x["dtype"], qs)
    out.print(t)
    ops = ", ".join(f"{k} x{v}" for k, v in sorted(r.op_counts.items(), key=lambda kv: -kv[1]))
    out.print(f"ops: {ops}")
    out.print(f"multiply-accumulates: {r.mac_count / 1e6:.1f} M")
    out.print(f"Edge TPU custom op: {'yes' if r.edgetpu else 'no'}"
              + (f"   other custom ops: {', '.join(c for c in r.custom_ops if c != 'edgetpu-custom-op')}"
                 if any(c != "edgetpu-custom-op" for c in r.custom_ops) else ""))
    out.print(f"labels: {', '.join(r.labels) if r.labels else 'none (indices are reported)'}")
    if r.bundle:
        for row in r.checksums:
            state = "[green]ok[/green]" if row["ok"] else ("[red]missing[/red]" if row["actual"] is None
                                                         else "[red]MISMATCH[/red]")
            out.print(f"checksum {row['file']}: {state}")
    if r.bundle:
        lacks = "; ".join(x.rstrip(".") for x in r.lacks)
        out.print("trust: " + (f"this bundle has {lacks}. Re-create it with `train quantize` for them" if lacks
                               else "calibrated scores, OOD score, activation maps"), markup=False)
    if r.bundle:
        out.print(f"signature: {r.signature}", markup=False)
    out.print(f"on this device: {r.verdict}", markup=False)
