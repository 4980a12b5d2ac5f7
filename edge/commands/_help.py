"""Help screens: a flag takes no value, so its help row shows no type.

Typer prints a type column for every option, ``<bool>`` for on/off flags too, which reads as if
``--json`` wanted a value. Both CLIs (``edge`` and ``train``) call :func:`flags_without_metavar`
once, before their help is rendered.
"""

from __future__ import annotations

from typing import Any


def flags_without_metavar() -> None:
    import typer.core  # noqa: PLC0415

    option = typer.core.TyperOption
    if getattr(option, "_skin_edge_flags", False):
        return
    shown = option.display_type_rich

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        return None if getattr(self, "is_flag", False) and self.metavar is None else shown(self, ctx)

    option.display_type_rich = display_type_rich  # type: ignore[method-assign]
    option._skin_edge_flags = True  # type: ignore[attr-defined]
