"""The machine benchmark figures depend on: CPU, board, clock policy, load, memory, versions.

The sysfs facts (board, governor, temperature) come from :mod:`edge.device.hardware`, the probes
``edge doctor`` uses. Also the peak resident memory of this process, per model.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends.runtime import get_runtime
from edge.device import hardware as hw
from edge.errors import EdgeError


@dataclass(frozen=True)
class MachineInfo:
    """What the figures depend on besides the model: CPU, board, clock policy, load, versions."""

    cpu: str
    cores: int
    board: str | None  # /proc/device-tree/model on a Raspberry Pi
    governor: str | None  # cpufreq scaling governor of cpu0; None where there is no cpufreq
    load_average: tuple[float, float, float] | None
    cpu_percent: float | None  # measured over a short moment before the runs
    memory_mb: float | None
    temperature_c: float | None
    system: str
    versions: dict[str, str]
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": {"cpu": self.cpu, "cores": self.cores, "board": self.board, "governor": self.governor,
                        "load_average": list(self.load_average) if self.load_average else None,
                        "cpu_percent": self.cpu_percent, "memory_mb": self.memory_mb,
                        "temperature_c": self.temperature_c, "system": self.system},
            "runtime": self.versions, "warnings": list(self.warnings),
        }


def cpu_model(cpuinfo: str | None = None) -> str:
    """'model name' (x86), else 'Model' or 'Hardware' (Raspberry Pi), else the platform's word."""
    text = cpuinfo if cpuinfo is not None else (hw.read_text(Path("/proc/cpuinfo")) or "")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip().lower(), value.strip())
    for key in ("model name", "model", "hardware", "cpu model", "processor"):
        if key in fields and not fields[key].isdigit():
            return fields[key]
    return platform.processor() or platform.machine() or "unknown"


def _versions() -> dict[str, str]:
    import cv2  # noqa: PLC0415

    from edge import __version__  # noqa: PLC0415

    try:
        rt = get_runtime()
        name, version = rt.name, rt.version
    except EdgeError:
        name, version = None, None
    return {"name": name, "version": version, "numpy": np.__version__, "opencv": cv2.__version__,
            "python": platform.python_version(), "skin_edge": __version__}


def machine_warnings(governor: str | None, load: tuple[float, ...] | None, cpu_percent: float | None,
                     cores: int) -> tuple[str, ...]:
    """Why the figures may be slow or noisy: clock scaling, other work on the machine."""
    out = []
    if governor and governor != "performance":
        out.append(f"CPU governor is '{governor}', not 'performance': clock scaling makes latencies vary. "
                   "For stable figures: echo performance | sudo tee "
                   "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor")
    busy = []
    if load and load[0] > 0.5 * cores:
        busy.append(f"load average {load[0]:.2f} on {cores} cores")
    if cpu_percent is not None and cpu_percent > 50:
        busy.append(f"{cpu_percent:.0f}% CPU in use")
    if busy:
        out.append(f"The machine is busy ({', '.join(busy)}): figures will be slower and noisier. "
                   "Close other programs and run again.")
    return tuple(out)


def machine_info(sample_s: float = 0.3, roots: hw.Roots = hw.Roots()) -> MachineInfo:
    import psutil  # noqa: PLC0415

    cores = os.cpu_count() or 1
    governor = hw.cpu_governor(roots)
    load = tuple(round(x, 2) for x in os.getloadavg()) if hasattr(os, "getloadavg") else None
    cpu_percent = psutil.cpu_percent(interval=sample_s) if sample_s > 0 else None
    temp = hw.temperature_c(roots)
    return MachineInfo(
        cpu=cpu_model(), cores=cores, board=hw.board_model(roots), governor=governor,
        load_average=load, cpu_percent=cpu_percent,
        memory_mb=round(psutil.virtual_memory().total / 2**20, 1),
        temperature_c=None if temp is None else round(temp, 1),
        system=platform.platform(), versions=_versions(),
        warnings=machine_warnings(governor, load, cpu_percent, cores))


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: write 5 to /proc/self/clear_refs); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process since the last reset (VmHWM), else since it started."""
    status = hw.read_text(Path("/proc/self/status")) or ""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    try:
        import resource  # noqa: PLC0415
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024
