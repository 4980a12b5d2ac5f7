"""The tables ``edge benchmark`` prints: model latency, and the pipeline over a source.

Both fit an 80-column terminal by default (the figures a comparison needs); ``--wide`` adds every
column (mean±std, min–max, GMAC/s, memory, size, each pipeline stage). JSON has every figure.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.bench.latency import BenchmarkReport
    from edge.bench.pipeline import PipelineReport


# names wrap (a long path folds onto more lines), figures never do
_COLUMN = {"left": {"min_width": 6, "overflow": "fold"}, "right": {"no_wrap": True}}


def _f(x: float | None, fmt: str = ".2f") -> str:
    return "—" if x is None else format(x, fmt)


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}" if 0.01 <= x < 100 else f"{x:.3g}"


def _ms(x: float) -> str:
    """Milliseconds with the decimals that matter at that size (Edge TPU 2.6, Pi float 150.3, tiny 0.0061)."""
    return f"{x:.1f}" if x >= 100 else f"{x:.2f}" if x >= 1 else f"{x:.4f}"


def _console(report, stream, wide: bool):  # noqa: ANN001, ANN202
    """A rich console on ``stream``, after one line about the machine."""
    from rich.console import Console  # noqa: PLC0415

    console = Console(file=stream, width=None if stream.isatty() else (240 if wide else 80), highlight=False)
    m, v = report.machine, report.machine.versions
    board = f", {m.board}" if m.board else ""
    console.print(f"{m.cpu} ({m.cores} cores{board}), governor {m.governor or 'n/a'}, "
                  f"load {m.load_average[0] if m.load_average else 'n/a'}; {v['name']} {v['version']}, "
                  f"numpy {v['numpy']}, OpenCV {v['opencv']}", soft_wrap=True)
    return console


def render_table(report: "BenchmarkReport", stream=None, *, wide: bool = False) -> None:  # noqa: ANN001
    from rich.table import Table  # noqa: PLC0415

    console = _console(report, stream or sys.stdout, wide)
    base = report.baseline
    caption = "times in ms" + (f"; ratio and speed-up: p50 against {base.name}" if base else "")
    table = Table(caption=caption, caption_justify="left")
    narrow = not wide and report.eval_set is not None  # room for the accuracy columns in 80
    columns = [("model", "left", lambda r, lat, ratio: r.name), ("device", "left", lambda r, lat, ratio: r.device)]
    if not narrow:
        columns += [("thr", "right", lambda r, lat, ratio: str(r.threads))]
    if wide:
        columns += [("runs", "right", lambda r, lat, ratio: str(lat.count))]
    if not narrow:
        columns += [("init", "right", lambda r, lat, ratio: _f(r.init_ms, ".1f"))]
    if wide:
        columns += [("1st", "right", lambda r, lat, ratio: _ms(r.first_invoke_ms)),
                    ("mean±std", "right", lambda r, lat, ratio: f"{_ms(lat.mean)}±{_ms(lat.std)}"),
                    ("min–max", "right", lambda r, lat, ratio: f"{_ms(lat.min)}–{_ms(lat.max)}")]
    columns += [("p50", "right", lambda r, lat, ratio: _ms(lat.p50))]
    if wide:
        columns += [("p90", "right", lambda r, lat, ratio: _ms(lat.p90))]
    if not narrow:
        columns += [("p99", "right", lambda r, lat, ratio: _ms(lat.p99))]
    columns += [("inv/s", "right", lambda r, lat, ratio: _f(r.throughput_per_s, ".1f"))]
    if wide:
        columns += [("GMAC/s", "right", lambda r, lat, ratio: _f(r.gmac_per_s)),
                    ("peak RSS MB", "right", lambda r, lat, ratio: _f(r.peak_rss_mb, ".1f")),
                    ("size MB", "right", lambda r, lat, ratio: f"{r.size_bytes / 1e6:.3f}"),
                    ("p50 ratio", "right", lambda r, lat, ratio: _ratio(ratio[0] if ratio else None))]
    columns += [("speed-up", "right", lambda r, lat, ratio: _ratio(ratio[1] if ratio else None) + "x")]
    for name, justify, _ in columns:
        table.add_column(name, justify=justify, **_COLUMN[justify])
    if report.eval_set is not None:
        for name in (("accuracy", "bal. acc.", "mel recall") if wide else ("bal. acc.", "mel rec.")):
            table.add_column(name, justify="right", no_wrap=True)
    for r in report.results:
        if not r.measured:
            table.add_row(r.name, r.device or "—", "failed", *["—"] * (len(table.columns) - 3))
            continue
        ratio = report.ratios(r)
        row = [cell(r, r.latency, ratio) for _, _, cell in columns]
        if report.eval_set is not None:
            a = r.accuracy
            figures = ([a.accuracy] if wide else []) + [a.balanced_accuracy, a.melanoma_recall] if a else None
            row += [_f(x, ".3f") for x in figures] if figures else ["failed"] * (3 if wide else 2)
        table.add_row(*row)
    console.print(table)
    if report.eval_set is not None:
        e = report.eval_set
        missing = f", {e.missing} listed but missing" if e.missing else ""
        skipped = max((r.accuracy.skipped for r in report.results if r.accuracy), default=0)
        unread = f", {skipped} unreadable" if skipped else ""
        console.print(f"--eval {e.root}: {len(e.items)} images, {len(e.classes)} classes ({e.layout} layout"
                      f"{missing}{unread}). Accuracy is top-1; not a medical diagnosis.", soft_wrap=True)


def render_pipeline_table(report: "PipelineReport", stream=None, *, wide: bool = False) -> None:  # noqa: ANN001
    from rich.table import Table  # noqa: PLC0415

    from edge.bench.pipeline import STAGES  # noqa: PLC0415

    console = _console(report, stream or sys.stdout, wide)
    if wide:
        caption = ("times in ms; stage columns: p50 per frame (first frame left out); latency: frame "
                   "captured to result ready")
        heads = ["model", "device", "init", "frames", "dropped", "errors", "FPS", *STAGES, "latency p50", "p90",
                 "p99", "first result"]
    else:
        caption = "times in ms, p50 per frame; latency: frame captured to result ready; --wide for more"
        heads = ["model", "device", "frames", "drop", "err", "FPS", "invoke", "latency"]
    table = Table(caption=caption, caption_justify="left")
    for i, h in enumerate(heads):
        justify = "left" if i < 2 else "right"
        table.add_column(h, justify=justify, **_COLUMN[justify])
    for r in report.results:
        if not r.measured:
            table.add_row(r.name, r.device or "—", "failed", *["—"] * (len(heads) - 3))
            continue
        f, lat = r.frames, r.latency
        counts = [str(f["processed"]), str(f["dropped"]), str(f["errors"]), _f(r.fps, ".1f")]
        if wide:
            row = [r.name, r.device, _f(r.init_ms, ".1f"), *counts, *[_ms(r.stages[s].p50) for s in STAGES],
                   _ms(lat.p50), _ms(lat.p90), _ms(lat.p99), _ms(r.first_result_ms)]
        else:
            row = [r.name, r.device, *counts, _ms(r.stages["invoke"].p50), _ms(lat.p50)]
        table.add_row(*row)
    console.print(table)
    rates = {r.source_fps for r in report.results if r.source_fps}
    rate = f" (nominal {rates.pop():.1f} fps)" if len(rates) == 1 else ""
    console.print(f"source: {report.source}{rate}. Not a medical diagnosis.", soft_wrap=True)
