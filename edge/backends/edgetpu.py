"""Everything specific to the Coral Edge TPU: the delegate library, device strings, diagnosis."""

from __future__ import annotations

import platform
from typing import Any

from edge.errors import DelegateError, first_line

# The delegate library's file name on each platform (as pycoral names them).
DELEGATE_LIBRARY = {
    "Linux": "libedgetpu.so.1",
    "Darwin": "libedgetpu.1.dylib",
    "Windows": "edgetpu.dll",
}


INSTALL_HINT = (
    "Install the Edge TPU runtime from Coral's package repository "
    "(sudo apt-get install libedgetpu1-std), plug in the USB Accelerator or check /dev/apex_0 for "
    "the PCIe/M.2 Coral, and make sure this user is in the plugdev (USB) or apex (PCIe) group "
    "with Coral's udev rules installed, then replug the device."
)


def delegate_library(system: str | None = None) -> str:
    system = system or platform.system()
    try:
        return DELEGATE_LIBRARY[system]
    except KeyError:
        raise DelegateError(f"The Edge TPU is not supported on {system}.", "Use --device cpu.") from None


def load_edgetpu_delegate(load_delegate: Any, device: str | None = None) -> Any:
    """Load the Edge TPU delegate through the runtime's ``load_delegate``; diagnose failures."""
    library = delegate_library()
    if _library_missing(library):  # checked first: the runtime's own failure path prints a traceback
        raise DelegateError(f"No Edge TPU runtime: {library} is not installed.", INSTALL_HINT)
    options = {"device": device} if device else {}
    try:
        return load_delegate(library, options)
    except (ValueError, OSError, RuntimeError) as e:
        detail = first_line(e)
        which = f" {device}" if device else ""
        raise DelegateError(
            f"{library} is installed but no Edge TPU{which} could be opened ({detail}).",
            "Check that the Coral is plugged in (a USB 3 port for the USB Accelerator), that this "
            "user is in the plugdev/apex group, and that no other process holds it.",
        ) from None


def _library_missing(library: str) -> bool:
    import ctypes  # noqa: PLC0415

    try:
        ctypes.CDLL(library)
    except OSError:
        return True
    return False
