"""Choose the TFLite runtime, once per process: LiteRT, then tflite-runtime, then TensorFlow Lite.

Set ``SKIN_EDGE_RUNTIME`` to ``ai_edge_litert``, ``tflite_runtime`` or ``tensorflow`` to force one.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable

from edge.errors import RuntimeNotFound, first_line

# (module to import the interpreter from, distribution name, version module)
CANDIDATES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert", "ai_edge_litert"),
    ("tflite_runtime.interpreter", "tflite-runtime", "tflite_runtime"),
    ("tensorflow.lite.python.interpreter", "tensorflow", "tensorflow"),
)


@dataclass(frozen=True)
class Runtime:
    name: str  # distribution name, e.g. "ai-edge-litert"
    version: str
    Interpreter: Callable[..., Any]
    load_delegate: Callable[..., Any]
    skipped: tuple[str, ...] = ()  # why earlier candidates were not used


def _version(dist: str, module: str) -> str:
    from importlib import metadata  # noqa: PLC0415

    try:
        return metadata.version(dist if dist != "tensorflow" else "tensorflow-cpu")
    except metadata.PackageNotFoundError:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return str(getattr(importlib.import_module(module), "__version__", "unknown"))


@cache
def get_runtime(preferred: str | None = None) -> Runtime:
    """Import the first TFLite runtime that works and say which one it is."""
    preferred = preferred or os.environ.get("SKIN_EDGE_RUNTIME") or None
    candidates = [c for c in CANDIDATES if preferred in (None, c[2], c[1])]
    if not candidates:
        names = ", ".join(c[2] for c in CANDIDATES)
        raise RuntimeNotFound(f"Unknown runtime {preferred!r}.", f"Choose one of: {names}.")
    skipped = []
    for module_name, dist, top in candidates:
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:  # includes numpy ABI errors surfacing as ImportError
            skipped.append(f"{dist}: {first_line(e)}")
            continue
        except (AttributeError, RuntimeError) as e:  # e.g. a wheel built against another numpy
            skipped.append(f"{dist}: {type(e).__name__}: {first_line(e)}")
            continue
        return Runtime(name=dist, version=_version(dist, top), Interpreter=module.Interpreter,
                       load_delegate=module.load_delegate, skipped=tuple(skipped))
    raise RuntimeNotFound(
        "No TFLite runtime could be imported (" + "; ".join(skipped) + ").",
        "Install one: pip install ai-edge-litert (or tflite-runtime on numpy<2).",
    )
