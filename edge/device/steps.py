"""The installer's steps (what `edge install-service` plans, then carries out) and the paths they share."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edge.util import atomic

STATE_DIR = Path("/var/lib/skin-edge")
MODELS_DIR = STATE_DIR / "models"
CURRENT = MODELS_DIR / "current"


@dataclass(frozen=True)
class Step:
    """One thing the installer does. ``apply`` is None for a step that only reports."""

    action: str  # write, keep, mkdir, copy, link, run, remove, skip
    target: str
    detail: str = ""
    apply: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def describe(self, dry_run: bool) -> str:
        verb = f"would {self.action}" if dry_run and self.apply else self.action
        return f"{verb} {self.target}" + (f"  ({self.detail})" if self.detail else "")


def _in_root(root: Path, path: Path) -> Path:
    return root / path.relative_to("/")


def _mkdir(path: Path, mode: int) -> Callable[[], None]:
    def apply() -> None:
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
    return apply


def _write(path: Path, text: str, mode: int = 0o644, group: Callable[[], int | None] = lambda: None
           ) -> Callable[[], None]:
    """Write atomically; ``group`` is asked when applying (the user may be created by an earlier step)."""
    def apply() -> None:
        atomic.write_text(path, text, mode=mode, gid=group())
    return apply
