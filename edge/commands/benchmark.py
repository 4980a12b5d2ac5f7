"""``edge benchmark``: model latency (and accuracy) side by side, or the live pipeline end to end."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edge.commands._common import (
    DeviceOpt,
    LabelsOpt,
    ThreadsOpt,
    fail,
    handles_errors,
    note,
)

if TYPE_CHECKING:
    from edge.bench.latency import BenchmarkReport
    from edge.bench.pipeline import PipelineReport


def register(app: typer.Typer) -> None:
    app.command("benchmark")(benchmark)


@handles_errors
def benchmark(
    model: Annotated[list[Path], typer.Option(
        "--model", "-m", show_default=False,
        help="A model bundle folder or a .tflite file; repeat to compare (ratios are to the first).")],
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed invokes after the first one.")] = 5,
    runs: Annotated[int | None, typer.Option("--runs", "-n", show_default=False,
                                             help="Timed invokes per model \\[default: 100].")] = None,
    seconds: Annotated[float | None, typer.Option("--seconds", "-s", show_default=False,
                                                  help="Time invokes for this long instead of --runs.")] = None,
    input_image: Annotated[Path | None, typer.Option(
        "--input", show_default=False,
        help="An image to feed the model \\[default: random pixels in the input's range].")] = None,
    eval_dir: Annotated[Path | None, typer.Option(
        "--eval", show_default=False,
        help="A folder of class sub-folders or a HAM10000-layout folder: adds accuracy, balanced "
             "accuracy and melanoma recall per model.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", show_default=False,
                                              help="Write a PNG of the latency distribution per model.")] = None,
    json_file: Annotated[Path | None, typer.Option(
        "--json", show_default=False, help="Write the figures as JSON to this file (- for stdout).")] = None,
    variants: Annotated[str | None, typer.Option(
        "--variants", show_default=False,
        help="For a bundle: measure these of its files, e.g. float,int8,edgetpu.")] = None,
    all_variants: Annotated[bool, typer.Option(
        "--all-variants", help="For a bundle: measure every file it has (float, int8, edgetpu).")] = False,
    source: Annotated[str | None, typer.Option(
        "--source", show_default=False,
        help="End to end through the `edge run` pipeline: a video file, image folder, glob or stream URL.")] = None,
    max_frames: Annotated[int | None, typer.Option(
        "--max-frames", show_default=False,
        help="With --source: stop after this many frames \\[default: all of a file or folder, 300 live].")] = None,
    realtime: Annotated[bool, typer.Option(
        "--realtime", help="With --source: play a video file at its frame rate, as `edge run` does "
                           "(frames inference cannot keep up with are dropped) \\[default: every frame, "
                           "as fast as possible].")] = False,
    labels: LabelsOpt = None,
) -> None:
    """Measure invoke latency (init, first invoke, p50/p90/p99, throughput, memory) for each model.

    Figures are comparable only within one run: all models share the machine's state then.
    """
    from edge.bench.latency import run_benchmark  # noqa: PLC0415
    from edge.bench.pipeline import run_pipeline_benchmark  # noqa: PLC0415
    from edge.bench.plot import plot_latencies  # noqa: PLC0415
    from edge.bench.targets import parse_variants  # noqa: PLC0415

    if source is not None:
        unused = [name for name, value in (("--runs", runs), ("--seconds", seconds), ("--input", input_image),
                                           ("--eval", eval_dir), ("--plot", plot)) if value is not None]
        if unused:
            raise fail(f"{', '.join(unused)} measure model latency and do not apply with --source.")
    for option, path in (("--json", json_file), ("--plot", plot)):
        check_output(option, path)  # before minutes of measuring, not after
    if source is not None:
        report = run_pipeline_benchmark(model, source, variants=parse_variants(variants, all_variants),
                                        device=device, threads=threads, max_frames=max_frames,
                                        labels=labels, realtime=realtime, skip_missing=all_variants)
        _show(report, json_file, render_pipeline_table)
        _exit_status(report)
        return
    chosen = parse_variants(variants, all_variants)
    report = run_benchmark(model, variants=chosen, device=device, threads=threads, warmup=warmup, runs=runs,
                           seconds=seconds, input_image=input_image, labels=labels, eval_dir=eval_dir,
                           skip_missing=all_variants)
    for r in report.results:
        for line in r.notes:
            note(f"note: {r.name}: {line}")
    _show(report, json_file, render_table)
    if plot is not None and any(r.measured for r in report.results):
        note(f"plot: {plot_latencies(report.results, plot)}")
    _exit_status(report)


def check_output(option: str, path: Path | None) -> None:
    """Refuse an output file that could not be written (its folder is missing, or it is a folder)."""
    if path is None or str(path) == "-":
        return
    if path.is_dir():
        raise fail(f"{option} {path} is a folder; give a file name.")
    if not path.parent.is_dir():
        raise fail(f"{option} {path}: the folder {path.parent} does not exist.")


def _show(report, json_file: Path | None, render) -> None:  # noqa: ANN001
    """Warnings, the table, the JSON file."""
    for line in report.machine.warnings:
        note(f"warning: {line}")
    to_stdout = json_file is not None and str(json_file) == "-"
    render(report, stream=sys.stderr if to_stdout else sys.stdout)
    if json_file is not None:
        write_json(report.as_dict(), json_file)


def _exit_status(report) -> None:  # noqa: ANN001
    """One error line per failed model; exit status 1 when any failed."""
    for r in report.results:
        if not r.ok:
            typer.echo(f"error: {r.name}: {r.error}", err=True)
    if report.failed:
        note(f"{report.failed} of {len(report.results)} models failed.")
        raise typer.Exit(1)


def write_json(data: dict, json_file: Path) -> None:
    import json  # noqa: PLC0415

    text = json.dumps(data, indent=2, default=str) + "\n"
    if str(json_file) == "-":
        sys.stdout.write(text)
        return
    try:
        Path(json_file).write_text(text, encoding="utf-8")
    except OSError as e:
        raise fail(f"cannot write {json_file}: {e.strerror or e}") from None


def _f(x: float | None, fmt: str = ".2f") -> str:
    return "—" if x is None else format(x, fmt)


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}" if 0.01 <= x < 100 else f"{x:.3g}"


def _ms(x: float) -> str:
    """Milliseconds with the decimals that matter at that size (Edge TPU 2.6, Pi float 150.3, tiny 0.0061)."""
    return f"{x:.1f}" if x >= 100 else f"{x:.2f}" if x >= 1 else f"{x:.4f}"


def _console(report, stream):  # noqa: ANN001, ANN202
    """A rich console on ``stream``, after one line about the machine."""
    from rich.console import Console  # noqa: PLC0415

    console = Console(file=stream, width=None if stream.isatty() else 240, highlight=False)
    m, v = report.machine, report.machine.versions
    board = f", {m.board}" if m.board else ""
    console.print(f"{m.cpu} ({m.cores} cores{board}), governor {m.governor or 'n/a'}, "
                  f"load {m.load_average[0] if m.load_average else 'n/a'}; {v['name']} {v['version']}, "
                  f"numpy {v['numpy']}, OpenCV {v['opencv']}")
    return console


def render_table(report: "BenchmarkReport", stream=None) -> None:  # noqa: ANN001
    from rich.table import Table  # noqa: PLC0415

    console = _console(report, stream or sys.stdout)
    base = report.baseline
    table = Table(caption=f"ratio and speed-up: p50 against {base.name}" if base else None,
                  caption_justify="left")
    for name, justify in (("model", "left"), ("device", "left"), ("threads", "right"), ("runs", "right"),
                          ("init ms", "right"), ("1st ms", "right"), ("mean±std ms", "right"),
                          ("min–max ms", "right"), ("p50 ms", "right"), ("p90 ms", "right"),
                          ("p99 ms", "right"), ("inv/s", "right"),
                          ("GMAC/s", "right"), ("peak RSS MB", "right"), ("size MB", "right"),
                          ("p50 ratio", "right"), ("speed-up", "right")):
        table.add_column(name, justify=justify)
    if report.eval_set is not None:
        for name in ("accuracy", "bal. acc.", "mel recall"):
            table.add_column(name, justify="right")
    for r in report.results:
        if not r.measured:
            table.add_row(r.name, r.device or "—", *["—"] * 4, "failed (see below)",
                          *["—"] * (len(table.columns) - 7))
            continue
        lat = r.latency
        ratio = report.ratios(r)
        row = [r.name, r.device, str(r.threads), str(lat.count), _f(r.init_ms, ".1f"), _ms(r.first_invoke_ms),
               f"{_ms(lat.mean)}±{_ms(lat.std)}", f"{_ms(lat.min)}–{_ms(lat.max)}", _ms(lat.p50),
               _ms(lat.p90), _ms(lat.p99), _f(r.throughput_per_s, ".1f"), _f(r.gmac_per_s), _f(r.peak_rss_mb, ".1f"),
               f"{r.size_bytes / 1e6:.3f}", _ratio(ratio[0] if ratio else None),
               _ratio(ratio[1] if ratio else None) + "x"]
        if report.eval_set is not None:
            a = r.accuracy
            row += [_f(a.accuracy, ".3f"), _f(a.balanced_accuracy, ".3f"), _f(a.melanoma_recall, ".3f")] \
                if a else ["failed"] * 3
        table.add_row(*row)
    console.print(table)
    if report.eval_set is not None:
        e = report.eval_set
        missing = f", {e.missing} listed but missing" if e.missing else ""
        skipped = max((r.accuracy.skipped for r in report.results if r.accuracy), default=0)
        unread = f", {skipped} unreadable" if skipped else ""
        console.print(f"--eval {e.root}: {len(e.items)} images, {len(e.classes)} classes ({e.layout} layout"
                      f"{missing}{unread}). Accuracy is top-1; not a medical diagnosis.")


def render_pipeline_table(report: "PipelineReport", stream=None) -> None:  # noqa: ANN001
    from rich.table import Table  # noqa: PLC0415

    from edge.bench.pipeline import STAGES  # noqa: PLC0415

    console = _console(report, stream or sys.stdout)
    table = Table(caption="stage columns: p50 ms per frame (first frame left out); latency: frame captured "
                          "to result ready", caption_justify="left")
    heads = ["model", "device", "init ms", "frames", "dropped", "errors", "FPS", *STAGES,
             "latency p50", "p90", "p99", "first result ms"]
    for i, h in enumerate(heads):
        table.add_column(h, justify="left" if i < 2 else "right")
    for r in report.results:
        if not r.measured:
            table.add_row(r.name, r.device or "—", "failed (see below)", *["—"] * (len(heads) - 3))
            continue
        f, lat = r.frames, r.latency
        table.add_row(r.name, r.device, _f(r.init_ms, ".1f"), str(f["processed"]), str(f["dropped"]),
                      str(f["errors"]), _f(r.fps, ".1f"), *[_ms(r.stages[s].p50) for s in STAGES],
                      _ms(lat.p50), _ms(lat.p90), _ms(lat.p99), _ms(r.first_result_ms))
    console.print(table)
    rates = {r.source_fps for r in report.results if r.source_fps}
    rate = f" (nominal {rates.pop():.1f} fps)" if len(rates) == 1 else ""
    console.print(f"source: {report.source}{rate}. Not a medical diagnosis.")
