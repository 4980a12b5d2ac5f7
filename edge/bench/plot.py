"""The latency plot of ``edge benchmark --plot``, drawn with OpenCV (it works on the device)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from edge.errors import EdgeError

if TYPE_CHECKING:
    from edge.bench.latency import ModelBenchmark


def plot_latencies(results: Sequence[ModelBenchmark], path: str | Path) -> Path:
    """A PNG of each model's per-run invoke latency: every run as a dot, a box (p25-p75), the median,
    whiskers from min to p99. A log axis when the models differ by more than 10x."""
    import cv2  # noqa: PLC0415

    measured = [r for r in results if r.measured and r.samples_ms.size]
    if not measured:
        raise EdgeError("Nothing to plot: no model was measured.")
    font, dark, grey = cv2.FONT_HERSHEY_SIMPLEX, (40, 40, 40), (200, 200, 200)
    names = [_fit_text(r.name, 340, font) for r in measured]
    left = 30 + max(cv2.getTextSize(n, font, 0.45, 1)[0][0] for n in names)
    row_h, right, top, bottom, width = 70, 40, 50, 60, left + 800
    height = top + bottom + row_h * len(measured)
    img = np.full((height, width, 3), 255, np.uint8)
    lo = min(float(r.samples_ms.min()) for r in measured)
    hi = max(float(r.samples_ms.max()) for r in measured)
    log = hi / max(lo, 1e-6) > 10
    if log:
        a, b = np.log10(lo) - 0.05, np.log10(hi) + 0.05
    else:
        a, b = 0.0, hi * 1.05

    def x(ms: np.ndarray | float) -> np.ndarray:
        v = np.log10(np.maximum(ms, 1e-6)) if log else np.asarray(ms, dtype=np.float64)
        return (left + (v - a) / max(b - a, 1e-9) * (width - left - right)).astype(np.int32)

    title = "Invoke latency per run (ms" + (", log scale)" if log else ")")
    cv2.putText(img, title, (left, 30), font, 0.6, dark, 1, cv2.LINE_AA)
    axis_y = height - bottom + 10
    decades = 10.0 ** np.arange(np.floor(a), np.ceil(b) + 1)
    ticks = np.outer(decades, [1, 2, 5]).ravel() if log else _nice_ticks(b)
    for t in ticks:
        tx = int(x(float(t)))
        if left <= tx <= width - right:
            cv2.line(img, (tx, top - 5), (tx, axis_y), grey, 1)
            cv2.putText(img, f"{t:g}", (tx - 12, axis_y + 20), font, 0.45, dark, 1, cv2.LINE_AA)
    rng = np.random.default_rng(0)
    colours = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148)]
    for i, r in enumerate(measured):
        cy, colour = top + row_h * i + row_h // 2, colours[i % len(colours)]
        cv2.putText(img, names[i], (10, cy + 5), font, 0.45, dark, 1, cv2.LINE_AA)
        xs = x(r.samples_ms)
        ys = cy + rng.integers(-row_h // 4, row_h // 4 + 1, xs.size)
        overlay = img.copy()
        for px, py in zip(xs, ys, strict=True):
            cv2.circle(overlay, (int(px), int(py)), 2, colour, -1, cv2.LINE_AA)
        img = cv2.addWeighted(overlay, 0.35, img, 0.65, 0)
        q25, q50, q75 = np.percentile(r.samples_ms, [25, 50, 75])
        h = row_h // 3
        cv2.line(img, (int(x(r.latency.min)), cy), (int(x(r.latency.p99)), cy), dark, 1, cv2.LINE_AA)
        cv2.rectangle(img, (int(x(q25)), cy - h // 2), (int(x(q75)), cy + h // 2), dark, 1)
        cv2.line(img, (int(x(q50)), cy - h // 2 - 3), (int(x(q50)), cy + h // 2 + 3), colour, 3)
        cv2.putText(img, f"p50 {r.latency.p50:.3g}", (int(x(q50)) + 6, cy - h // 2 - 6), font, 0.4, dark, 1,
                    cv2.LINE_AA)
    ok, png = cv2.imencode(".png", img)
    path = Path(path)
    try:
        if not ok:
            raise OSError("PNG encoding failed")
        path.write_bytes(png.tobytes())
    except OSError as e:
        raise EdgeError(f"Cannot write the plot to {path}: {e.strerror or e}.") from None
    return path


def _fit_text(text: str, max_px: int, font: int) -> str:
    """``text``, shortened in the middle with '..' until it is at most ``max_px`` wide."""
    import cv2  # noqa: PLC0415

    keep = len(text)
    short = text
    while keep > 4 and cv2.getTextSize(short, font, 0.45, 1)[0][0] > max_px:
        keep -= 1
        short = text[: keep // 2] + ".." + text[len(text) - (keep - keep // 2):]
    return short


def _nice_ticks(upper: float) -> np.ndarray:
    raw = upper / 5
    mag = 10 ** np.floor(np.log10(raw)) if raw > 0 else 1.0
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return np.arange(0, upper + step / 2, step)

