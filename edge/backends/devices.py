"""Which device runs the model, and with how many threads: one parser for the CLI, the config and doctor.

``--device`` (and ``device =`` in the config) is ``auto`` (the Edge TPU when present, else the
CPU), ``cpu``, ``edgetpu`` (the first Edge TPU found), or a Coral device string as pycoral
names them: ``usb``, ``usb:N``, ``pci``, ``pci:N`` (N counts from 0).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from edge.errors import DelegateError

MODES = ("auto", "cpu", "edgetpu")
_CORAL_RE = re.compile(r"^(usb|pci)(:\d+)?$")
HINT = "Use auto, cpu, edgetpu, usb[:N] or pci[:N]."


@dataclass(frozen=True)
class DeviceChoice:
    """``mode`` auto|cpu|edgetpu, and the Coral device string (None: the first Edge TPU found)."""

    mode: str
    coral: str | None = None

    @property
    def wants_tpu(self) -> bool:
        return self.mode == "edgetpu"


def parse_device(text: str | None) -> DeviceChoice:
    """``--device`` text -> DeviceChoice; DelegateError (one line) for anything else."""
    value = "auto" if text is None else str(text).strip().lower()
    if value in MODES:
        return DeviceChoice(value)
    if _CORAL_RE.match(value):
        return DeviceChoice("edgetpu", value)
    if value.startswith(("usb", "pci")):
        raise DelegateError(f"Unknown Edge TPU device {text!r}.", "Use usb, usb:N, pci or pci:N (N counts from 0).")
    raise DelegateError(f"Unknown device {text!r}.", HINT)


def default_threads(reserve: int = 0) -> int:
    """Interpreter threads: every core less ``reserve`` (``edge run`` keeps one for capture and
    preprocessing, which overlap inference), at least one."""
    return max(1, (os.cpu_count() or 1) - reserve)
