"""``edge benchmark``: model latency (and accuracy) side by side, or the live pipeline end to end."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from edge.commands._common import (
    DeviceOpt,
    LabelsOpt,
    ThreadsOpt,
    fail,
    handles_errors,
    note,
)


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
        help="For a bundle: measure these of its files, e.g. float,int8,int8io,edgetpu.")] = None,
    all_variants: Annotated[bool, typer.Option(
        "--all-variants", help="For a bundle: measure every file it has (float, int8, int8io, edgetpu) and record the "
                               "fastest correct one (see --record).")] = False,
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
    wide: Annotated[bool, typer.Option("--wide", help="Every column (the default fits 80 columns).")] = False,
    record: Annotated[bool, typer.Option(
        "--record/--no-record",
        help="With --variants/--all-variants on a bundle: check each file against the golden outputs and "
             "record the fastest correct one for `--variant fastest`.")] = True,
) -> None:
    """Measure invoke latency (init, first invoke, p50/p90/p99, throughput, memory) for each model.

    Figures are comparable only within one run: all models share the machine's state then.
    """
    from edge.bench.targets import parse_variants  # noqa: PLC0415

    if source is not None:
        unused = [name for name, value in (("--runs", runs), ("--seconds", seconds), ("--input", input_image),
                                           ("--eval", eval_dir), ("--plot", plot)) if value is not None]
        if unused:
            raise fail(f"{', '.join(unused)} measure model latency and do not apply with --source.")
    for option, path in (("--json", json_file), ("--plot", plot)):
        check_output(option, path)  # before minutes of measuring, not after
    chosen = parse_variants(variants, all_variants)
    if source is not None:
        pipeline_mode(model, source, chosen, device=device, threads=threads, max_frames=max_frames,
                      labels=labels, realtime=realtime, skip_missing=all_variants, json_file=json_file, wide=wide)
    else:
        latency_mode(model, chosen, device=device, threads=threads, warmup=warmup, runs=runs, seconds=seconds,
                     input_image=input_image, labels=labels, eval_dir=eval_dir, skip_missing=all_variants,
                     json_file=json_file, plot=plot, wide=wide, record=record and chosen is not None)


def latency_mode(models: list[Path], variants: tuple[str, ...] | None, *, json_file: Path | None,
                 plot: Path | None, wide: bool, record: bool = False, **measure) -> None:  # noqa: ANN003
    """Model latency (and --eval accuracy) side by side: :func:`edge.bench.latency.run_benchmark`;
    with ``record``, the fastest correct variant of each bundle (:mod:`edge.bench.fastest`)."""
    from edge.bench.latency import run_benchmark  # noqa: PLC0415
    from edge.bench.plot import plot_latencies  # noqa: PLC0415
    from edge.commands._bench_tables import render_table  # noqa: PLC0415

    report = run_benchmark(models, variants=variants, **measure)
    for r in report.results:
        for line in r.notes:
            note(f"note: {r.name}: {line}")
    _show(report, json_file, lambda rep, stream: render_table(rep, stream, wide=wide))
    if plot is not None and any(r.measured for r in report.results):
        note(f"plot: {plot_latencies(report.results, plot)}")
    if record:
        from edge.bench.fastest import record_variants  # noqa: PLC0415

        for line in record_variants(report.results, measure.get("device", "auto")):
            note(line)
    _exit_status(report)


def pipeline_mode(models: list[Path], source: str, variants: tuple[str, ...] | None, *,
                  json_file: Path | None, wide: bool, **measure) -> None:  # noqa: ANN003
    """``edge run``'s pipeline over a source: :func:`edge.bench.pipeline.run_pipeline_benchmark`."""
    from edge.bench.pipeline import run_pipeline_benchmark  # noqa: PLC0415
    from edge.commands._bench_tables import render_pipeline_table  # noqa: PLC0415

    report = run_pipeline_benchmark(models, source, variants=variants, **measure)
    _show(report, json_file, lambda rep, stream: render_pipeline_table(rep, stream, wide=wide))
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


