"""After ``edge benchmark --all-variants``: which of a bundle's files is fastest and correct here.

Each measured variant is checked against the bundle's golden outputs on this device (``edge
verify --variant``): a file that is fast but computes other numbers, or an Edge TPU file that fell
back to the CPU, is not eligible. The fastest eligible one is recorded (``edge.model.variants``)
for ``--variant fastest``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from edge.backends.devices import parse_device
from edge.errors import EdgeError
from edge.model.bundle import META_FILE, open_bundle, variant_of
from edge.model.variants import record_fastest
from edge.model.verify import verify_bundle


def _eligible(root: Path, variant: str, result: Any, device: str) -> tuple[bool, str | None]:
    if variant == "edgetpu" and result.device != "edgetpu":
        return False, "ran on the CPU, not the Edge TPU"
    try:
        report = verify_bundle(root, device=device, threads=result.threads, variant=variant)
    except EdgeError as e:
        return False, e.message
    return (True, None) if report.passed else (False, "; ".join(report.problems) or "golden check failed")


def record_variants(results: Sequence[Any], device: str) -> list[str]:
    """Group the measured results by bundle, check and record each; the lines to print."""
    by_bundle: dict[Path, list[tuple[str, Any]]] = {}
    for r in results:
        path = Path(r.model)
        variant = variant_of(path)
        if variant is not None and r.latency is not None and (path.parent / META_FILE).is_file():
            by_bundle.setdefault(path.parent, []).append((variant, r))
    lines = []
    mode = parse_device(device).mode
    for root, measured in by_bundle.items():
        try:
            bundle = open_bundle(root, verify=False)
        except EdgeError as e:
            lines.append(f"fastest: {root}: not recorded ({e.message})")
            continue
        if not isinstance(bundle.meta.get("golden"), dict):
            lines.append(f"fastest: {root.name}: not recorded: the bundle has no golden outputs to check its "
                         "variants against (`train quantize` writes them)")
            continue
        rows = []
        for variant, r in measured:
            ok, why = _eligible(root, variant, r, "edgetpu" if variant == "edgetpu" else device)
            rows.append({"variant": variant, "p50_ms": round(r.latency.p50, 4), "eligible": ok, "why": why})
        runtime, threads = measured[0][1].runtime, measured[0][1].threads
        try:
            saved = record_fastest(bundle, rows, runtime=runtime, threads=threads, device=mode)
        except (EdgeError, OSError) as e:
            lines.append(f"warning: {root}: the fastest variant was not recorded ({getattr(e, 'message', e)})")
            continue
        for row in rows:
            if not row["eligible"]:
                lines.append(f"note: {root.name}:{row['variant']} is not eligible as the fastest: {row['why']}")
        if saved is None:
            lines.append(f"warning: {root}: no variant passed its golden check; nothing recorded")
            continue
        path, best = saved
        p50 = next(r["p50_ms"] for r in rows if r["variant"] == best)
        lines.append(f"fastest: {root.name}:{best} (p50 {p50:.3g} ms, {runtime}, {threads} thread(s)) recorded "
                     f"in {path}; `--variant fastest` runs it")
    return lines
