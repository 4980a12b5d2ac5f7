"""What this device has, read from files and programs only: sysfs, /dev, ``rpicam-hello``, ``vcgencmd``.

Facts, no judgement (``edge doctor`` judges them). Nothing here opens a device. Every root path
comes from :class:`Roots`, so tests point the probes at a fake tree.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORAL_USB_IDS = {("1a6e", "089a"): "USB Accelerator (firmware not loaded yet: it loads on first use)",
                 ("18d1", "9302"): "USB Accelerator"}
CORAL_PCI_ID = ("0x1ac1", "0x089a")
PI_INTERNAL_V4L = ("bcm2835-codec", "bcm2835-isp", "pispbe", "rpi-hevc-dec", "rpivid")  # not cameras
DEVICE_NODES = ("video*", "media*", "dma_heap/*", "apex_*")  # what the camera and the Coral open
THROTTLE_BITS = {0: "under-voltage now", 1: "ARM frequency capped now", 2: "throttled now",
                 3: "soft temperature limit now", 16: "under-voltage has occurred",
                 17: "ARM frequency capping has occurred", 18: "throttling has occurred",
                 19: "soft temperature limit has occurred"}


@dataclass(frozen=True)
class Roots:
    """Where the hardware is read from (a fake tree in tests)."""

    sys: Path = Path("/sys")
    dev: Path = Path("/dev")
    state_dir: Path = Path("/var/lib/skin-edge")
    library: str | None = None  # the Edge TPU library; None: this platform's libedgetpu


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip().rstrip("\x00")
    except OSError:
        return None


def read_number(path: Path) -> float | None:
    """A number from a sysfs file; None when the file is missing, unreadable or not a number."""
    try:
        value = float(read_text(path) or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def board_model(roots: Roots) -> str | None:
    """The board's name from the device tree (/proc/device-tree/model), e.g. on a Raspberry Pi."""
    return read_text(roots.sys / "firmware/devicetree/base/model") or None


def is_raspberry_pi(roots: Roots) -> bool:
    return "Raspberry Pi" in (board_model(roots) or "")


def list_libcamera_cameras(timeout: float = 20.0) -> tuple[str | None, list[dict[str, str]], str | None]:
    """(tool used, cameras, error) from ``rpicam-hello --list-cameras`` (or libcamera-hello)."""
    tool = shutil.which("rpicam-hello") or shutil.which("libcamera-hello")
    if tool is None:
        return None, [], None
    done = _run([tool, "--list-cameras"], timeout)
    if isinstance(done, str):
        return tool, [], done
    cams = [{"index": m[1], "sensor": m[2], "modes": m[3]} for m in
            re.finditer(r"(?m)^\s*(\d+)\s*:\s*(\S+)\s*\[([^\]]*)\]", done.stdout + done.stderr)]
    error = None if done.returncode == 0 or cams else (done.stderr.strip().splitlines() or ["failed"])[-1]
    return tool, cams, error


def v4l_nodes(roots: Roots) -> list[dict[str, Any]]:
    """/dev/video* with the driver's name; ``internal`` for the Pi's codec and ISP nodes."""
    nodes = []
    for path in sorted((p for p in roots.dev.glob("video*") if p.exists()), key=lambda p: (len(p.name), p.name)):
        name = read_text(roots.sys / "class/video4linux" / path.name / "name") or ""
        nodes.append({"node": str(path), "name": name, "internal": name.startswith(PI_INTERNAL_V4L)})
    return nodes


def coral_usb(roots: Roots) -> list[dict[str, Any]]:
    """USB Accelerators under either id, with the link speed (480 = USB 2, 5000 = USB 3) and node."""
    found = []
    for d in sorted((roots.sys / "bus/usb/devices").glob("*")):
        ids = (read_text(d / "idVendor") or "", read_text(d / "idProduct") or "")
        if ids in CORAL_USB_IDS:
            bus, dev = read_number(d / "busnum"), read_number(d / "devnum")
            node = roots.dev / f"bus/usb/{int(bus):03d}/{int(dev):03d}" if bus and dev else None
            found.append({"sysfs": str(d), "id": ":".join(ids), "kind": CORAL_USB_IDS[ids],
                          "speed_mbps": int(read_number(d / "speed") or 0),  # 0: unknown
                          "node": str(node) if node else None})
    return found


def coral_pci(roots: Roots) -> list[dict[str, Any]]:
    """M.2/PCIe Corals on the bus, with the driver bound to them (None: no driver)."""
    return [{"sysfs": str(d), "driver": (d / "driver").resolve().name if (d / "driver").exists() else None}
            for d in sorted((roots.sys / "bus/pci/devices").glob("*"))
            if (read_text(d / "vendor"), read_text(d / "device")) == CORAL_PCI_ID]


def apex_nodes(roots: Roots) -> list[str]:
    return sorted(str(p) for p in roots.dev.glob("apex_*"))


def device_nodes(roots: Roots, usb: list[dict[str, Any]]) -> list[Path]:
    """The device nodes a camera and a Coral need: V4L2, media, dma_heap, apex, the Accelerator's USB node.

    Only nodes that exist (a dangling link, or a device unplugged meanwhile, is left out)."""
    paths = [p for pattern in DEVICE_NODES for p in sorted(roots.dev.glob(pattern))]
    paths += [Path(u["node"]) for u in usb if u["node"]]
    return [p for p in paths if p.exists()]


def can_open(st: os.stat_result, uid: int, gids: set[int]) -> bool:
    """Read and write permission for ``uid``/``gids`` from the mode bits (root may do anything)."""
    if uid == 0:
        return True
    if st.st_uid == uid:
        return st.st_mode & 0o600 == 0o600
    if st.st_gid in gids:
        return st.st_mode & 0o060 == 0o060
    return st.st_mode & 0o006 == 0o006


def cpu_governor(roots: Roots, cpu: str = "cpu0") -> str | None:
    """The cpufreq scaling governor of one CPU; None where there is no cpufreq."""
    return read_text(roots.sys / "devices/system/cpu" / cpu / "cpufreq/scaling_governor") or None


def cpu_governors(roots: Roots) -> list[str]:
    cpus = (roots.sys / "devices/system/cpu").glob("cpu[0-9]*")
    return sorted({g for g in (cpu_governor(roots, d.name) for d in cpus) if g})


def temperature_c(roots: Roots) -> float | None:
    millidegrees = read_number(roots.sys / "class/thermal/thermal_zone0/temp")
    return None if millidegrees is None else millidegrees / 1000


def get_throttled() -> tuple[str | None, int | None]:
    """(what ``vcgencmd get_throttled`` said, its value); (None, None) without vcgencmd."""
    tool = shutil.which("vcgencmd")
    if tool is None:
        return None, None
    done = _run([tool, "get_throttled"], 10)
    if isinstance(done, str):
        return done, None
    m = re.search(r"throttled=(0x[0-9a-fA-F]+)", done.stdout)
    return (done.stdout or done.stderr).strip(), int(m[1], 16) if m else None


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str] | str:
    """Run a probe program; what went wrong, as text, when it could not run or hung."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"{Path(argv[0]).name} {' '.join(argv[1:])} took over {timeout:.0f} s"
    except OSError as e:
        return f"{Path(argv[0]).name} could not be run: {e.strerror or e}"


def decode_throttled(value: int) -> list[str]:
    return [text for bit, text in THROTTLE_BITS.items() if value & (1 << bit)]
