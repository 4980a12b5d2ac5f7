"""The pieces every ``edge doctor`` check is made of: a Check (pass, warn or fail, one line, the fix)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edge.errors import EdgeError

PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # PASS, WARN or FAIL
    summary: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "summary": self.summary, "fix": self.fix,
                "data": self.data}


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        counts = {s: sum(c.status == s for c in self.checks) for s in (PASS, WARN, FAIL)}
        return {"ok": self.ok, "summary": counts, "checks": [c.as_dict() for c in self.checks]}


def copy_again(bundle: Path | None) -> str:
    return f"Copy the bundle folder again, then `edge verify --model {bundle or 'BUNDLE'}`."


def from_error(name: str, status: str, error: EdgeError, fallback_fix: str,
               data: dict[str, Any] | None = None) -> Check:
    """A check from an :class:`~edge.errors.EdgeError`: its message, and its hint or ``fallback_fix``."""
    return Check(name, status, error.message, error.hint or fallback_fix, data or {})


def guarded(name: str, status: str, check: Callable[..., Any], *args: Any) -> Any:
    """``check(*args)`` (a Check, or a tuple led by one), or a ``status`` Check naming the error it raised.

    A probe tripping over something this machine does oddly must not hide the other checks:
    ``edge doctor`` exists for the machines where things are strange.
    """
    try:
        return check(*args)
    except Exception as e:  # noqa: BLE001 - reported as this check's result, not swallowed
        return Check(name, status, f"could not be checked: {type(e).__name__}: {e}",
                     "Run `edge doctor --json` and report this check's message together with the board and OS.")


def installed(module: str) -> bool:
    import importlib.util  # noqa: PLC0415

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
