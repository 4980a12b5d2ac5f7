"""Which model files a benchmark measures (each ``--model``, or a bundle's variants), one after another.

Shared by the model-latency benchmark (:mod:`edge.bench.latency`) and the end-to-end one
(:mod:`edge.bench.pipeline`): a target that cannot be measured fails alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

from edge.errors import ConfigError, EdgeError
from edge.model.bundle import VARIANTS, open_bundle

VARIANT_ORDER = ("float", "int8", "int8io", "edgetpu")
R = TypeVar("R")


@dataclass(frozen=True)
class Target:
    """One model file to measure, as named on the command line or expanded from a bundle."""

    path: Path
    name: str
    device: str
    error: str | None = None


def expand_targets(models: Sequence[Path], variants: Sequence[str] | None, device: str) -> list[Target]:
    """Each --model, or for a bundle with variants asked for: its float, int8 and Edge TPU files."""
    targets: list[Target] = []
    for m in models:
        m = Path(m)
        if not variants or not m.is_dir():
            targets.append(Target(m, m.name or str(m), device))
            continue
        try:
            bundle = open_bundle(m, verify=False)
        except EdgeError as e:
            targets.append(Target(m, m.name or str(m), device, error=str(e)))
            continue
        for v in variants:
            path = m / VARIANTS[v]
            # An Edge TPU file must not quietly fall back to the CPU under --device auto.
            dev = "edgetpu" if v == "edgetpu" and device == "auto" else device
            missing = None if bundle.variant(v) else (
                f"{m} has no {VARIANTS[v]} ({v} variant)."
                + (" Build it with `train compile-edgetpu`." if v == "edgetpu" else ""))
            targets.append(Target(path, f"{bundle.name}:{v}", dev, error=missing))
    return targets


def parse_variants(text: str | None, all_variants: bool = False) -> tuple[str, ...] | None:
    """``float,int8,edgetpu`` -> a tuple in that order; ``all_variants`` -> all of them."""
    if all_variants and text:
        raise ConfigError("--variants and --all-variants are alternatives.", "Pass one of them.")
    if all_variants:
        return VARIANT_ORDER
    if not text:
        return None
    names = tuple(v.strip().lower() for v in text.split(",") if v.strip())
    bad = [v for v in names if v not in VARIANTS]
    if bad or not names:
        raise ConfigError(f"Unknown variant {', '.join(bad) or repr(text)}.",
                          f"Use a comma-separated list of {', '.join(VARIANT_ORDER)}.")
    return tuple(dict.fromkeys(names))


def measure_each(targets: Iterable[Target], measure: Callable[[Target], R],
                 failed: Callable[[Target, str, str | None], R], skip_missing: bool = False) -> tuple[R, ...]:
    """``measure`` each target in turn; a target that cannot be measured gives
    ``failed(target, error, device)`` (device None when the file was never tried) and the others go on.

    ``skip_missing`` drops bundle variants whose file is absent instead of reporting them.
    """
    results = []
    for t in targets:
        if t.error and skip_missing and not t.path.exists():
            continue
        if t.error:
            results.append(failed(t, t.error, None))
            continue
        try:
            results.append(measure(t))
        except EdgeError as e:
            results.append(failed(t, str(e), t.device))
    return tuple(results)
