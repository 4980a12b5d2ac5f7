"""``edge doctor``'s hardware checks: cameras, the Edge TPU, device access, power, temperature, disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from edge.device import hardware as hw
from edge.device.checks import FAIL, PASS, WARN, Check, from_error, installed
from edge.device.hardware import Roots
from edge.errors import EdgeError

_PYCORAL = ("import json\nfrom pycoral.utils.edgetpu import list_edge_tpus\n"
            "print(json.dumps(list_edge_tpus()))")


# --- cameras ----------------------------------------------------------------------------------

def check_libcamera(pi: bool) -> Check:
    """The cameras libcamera sees (``rpicam-hello --list-cameras``), listed in ``data["cameras"]``."""
    tool, cams, error = hw.list_libcamera_cameras()
    if tool is None:
        if pi:
            return Check("libcamera", WARN, "rpicam-hello not found: libcamera cameras cannot be listed",
                         "sudo apt install rpicam-apps")
        return Check("libcamera", PASS, "not installed (only needed for a Raspberry Pi camera module)")
    data = {"tool": tool, "cameras": cams}
    if error:
        return Check("libcamera", WARN, f"{Path(tool).name} --list-cameras failed: {error}",
                     "Check the ribbon cable and `camera_auto_detect=1` in /boot/firmware/config.txt.", data)
    return Check("libcamera", PASS, f"{len(cams)} camera(s): " + (", ".join(c["sensor"] for c in cams) or "none"),
                 data=data)


def check_cameras(roots: Roots, libcams: list[dict[str, str]], required: bool) -> Check:
    nodes = hw.v4l_nodes(roots)
    usable = [n for n in nodes if not n["internal"]]
    data = {"v4l2": nodes, "libcamera": libcams}
    found = [f"{n['node']} ({n['name'] or 'unnamed'})" for n in usable] + [f"libcamera {c['sensor']}" for c in libcams]
    if found:
        return Check("cameras", PASS, ", ".join(found), data=data)
    return Check("cameras", FAIL if required else WARN, "no camera found"
                 + (f" ({len(nodes)} internal V4L2 nodes only)" if nodes else ""),
                 "Connect a camera: the camera module's ribbon cable (contacts the right way round), or a USB "
                 "webcam (it appears as /dev/videoN). Files and streams work without one (--source).", data)


def check_camera_frame(camera: str) -> tuple[Check, Any]:
    """Open ``camera`` the way ``edge run --camera`` does and grab a frame."""
    import numpy as np  # noqa: PLC0415

    from edge.sources.factory import make_source  # noqa: PLC0415

    frame = None
    try:
        with make_source(camera=camera) as src:
            for _ in range(10):  # the first frames may be empty or black while exposure settles
                frame = src.read()
                if frame is not None and float(np.mean(frame)) >= 3:
                    break
    except EdgeError as e:
        return from_error("camera_frame", FAIL, e, "See the picamera2, libcamera and cameras checks above."), None
    if frame is None:
        return Check("camera_frame", FAIL, f"camera {camera} opened but delivered no frame",
                     "Replug the camera; check `dmesg` for USB errors."), None
    mean = float(np.mean(frame))
    data = {"shape": list(frame.shape), "mean": round(mean, 1)}
    if mean < 3:
        return Check("camera_frame", WARN, f"frame {frame.shape[1]}x{frame.shape[0]} is black",
                     "Black frames from the camera module usually mean no access to /dev/dma_heap: add the user "
                     "to the video group (the service has DeviceAllow=char-dma_heap). Else: lens cap, light.",
                     data), frame
    return Check("camera_frame", PASS, f"frame {frame.shape[1]}x{frame.shape[0]}, mean level {mean:.0f}",
                 data=data), frame


# --- Edge TPU ---------------------------------------------------------------------------------

def check_edgetpu_library(roots: Roots, required: bool) -> Check:
    import ctypes  # noqa: PLC0415

    from edge.backends.edgetpu import INSTALL_HINT, delegate_library  # noqa: PLC0415
    from edge.errors import DelegateError  # noqa: PLC0415

    try:
        name = roots.library or delegate_library()
        lib = ctypes.CDLL(name)
    except DelegateError as e:
        return from_error("edgetpu_library", FAIL if required else WARN, e, INSTALL_HINT)
    except OSError:
        return Check("edgetpu_library", FAIL if required else WARN, f"{name} is not installed ("
                     + ("the Edge TPU cannot be used)" if required else "the Edge TPU cannot be used; the CPU is)"),
                     INSTALL_HINT, {"library": name})
    version = ""
    if hasattr(lib, "edgetpu_version"):
        lib.edgetpu_version.restype = ctypes.c_char_p
        version = (lib.edgetpu_version() or b"").decode(errors="replace")
    return Check("edgetpu_library", PASS, f"{name} {version}".strip(), data={"library": name, "version": version})


def list_edge_tpus_pycoral() -> list[dict[str, str]] | None:
    """Google's pycoral ``list_edge_tpus()`` when that pycoral is installed, else None."""
    import json  # noqa: PLC0415

    if not installed("pycoral"):
        return None
    try:
        done = subprocess.run([sys.executable, "-c", _PYCORAL], capture_output=True, text=True, timeout=60,
                              check=False)
        return json.loads(done.stdout) if done.returncode == 0 else None  # else: another package named pycoral
    except (subprocess.TimeoutExpired, json.JSONDecodeError):
        return None


def _link_speed(mbps: int) -> str:
    return f"at {mbps} Mbit/s" if mbps else "(link speed unknown)"  # 0: sysfs gave no number


def check_edgetpu_devices(roots: Roots, usb: list[dict[str, Any]], required: bool) -> Check:
    pci, apex = hw.coral_pci(roots), hw.apex_nodes(roots)
    data = {"pycoral": list_edge_tpus_pycoral(), "usb": usb, "pci": pci, "apex": apex}
    missing = FAIL if required else WARN
    if pci and not apex:
        return Check("edgetpu_devices", missing, "a PCIe/M.2 Coral is on the bus but /dev/apex_0 is missing",
                     "Install the gasket/apex driver (gasket-dkms, see docs/deploy-pi.md), add the apex udev "
                     "rule and reboot; on a Pi 5 also enable PCIe in /boot/firmware/config.txt.", data)
    slow = [u for u in usb if 0 < u["speed_mbps"] < 5000]
    found = ([f"{u['kind']} {u['id']} " + _link_speed(u["speed_mbps"]) for u in usb] + [f"PCIe {p}" for p in apex]
             or [f"pycoral: {t.get('type')} {t.get('path')}" for t in data["pycoral"] or []])
    if slow:
        return Check("edgetpu_devices", WARN, "; ".join(found) + ": on USB 2",
                     "Plug the USB Accelerator into a USB 3 port (blue) with its USB 3 cable: USB 2 makes "
                     "every inference several times slower.", data)
    if found:
        return Check("edgetpu_devices", PASS, "; ".join(found), data=data)
    if required:
        return Check("edgetpu_devices", FAIL, "no Edge TPU found",
                     "Plug in the USB Accelerator (USB 3 port), or check the M.2/PCIe Coral's driver.", data)
    return Check("edgetpu_devices", PASS, "no Edge TPU found: the CPU is used", data=data)


# --- access, power, disk ----------------------------------------------------------------------

def check_device_access(roots: Roots, usb: list[dict[str, Any]], uid: int | None = None,
                        gids: set[int] | None = None) -> Check:
    uid = os.geteuid() if uid is None else uid
    gids = set(os.getgroups()) | {os.getegid()} if gids is None else gids
    paths = hw.device_nodes(roots, usb)
    denied: dict[str, list[str]] = {}
    for path in paths:
        try:
            st = path.stat()
        except OSError:  # unplugged since it was listed
            continue
        if not hw.can_open(st, uid, gids):
            denied.setdefault(_group_name(st.st_gid), []).append(str(path))
    data = {"uid": uid, "groups": sorted(_group_name(g) for g in gids), "checked": [str(p) for p in paths],
            "denied": denied}
    if not paths:
        return Check("device_access", PASS, "no camera or Coral device nodes to check", data=data)
    if denied:
        groups = ",".join(sorted(denied))
        return Check("device_access", FAIL, "no access to " + "; ".join(
            f"{', '.join(v[:3])}{' ...' if len(v) > 3 else ''} (group {g})" for g, v in sorted(denied.items())),
            f"sudo usermod -aG {groups} $USER, then log out and in again (the service user gets its groups "
            "from `edge install-service`).", data)
    who = "root" if uid == 0 else "this user"
    return Check("device_access", PASS, f"{who} can open all {len(paths)} camera/Coral device nodes", data=data)


def _group_name(gid: int) -> str:
    import grp  # noqa: PLC0415

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def check_cpu_governor(roots: Roots) -> Check:
    govs = hw.cpu_governors(roots)
    if not govs:
        return Check("cpu_governor", PASS, "not exposed here")
    if "powersave" in govs:
        return Check("cpu_governor", WARN, f"governor {', '.join(govs)}: the CPU stays at its lowest clock",
                     "echo ondemand | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",
                     {"governors": govs})
    return Check("cpu_governor", PASS, f"governor {', '.join(govs)}", data={"governors": govs})


def check_temperature(roots: Roots) -> Check:
    celsius = hw.temperature_c(roots)
    if celsius is None:
        return Check("temperature", PASS, "not exposed here")
    data = {"celsius": celsius}
    if celsius >= 80:
        return Check("temperature", WARN, f"{celsius:.1f} °C: the Pi slows down from 80 °C",
                     "Add a heatsink or fan (the Pi 5 Active Cooler) and keep the case ventilated.", data)
    return Check("temperature", PASS, f"{celsius:.1f} °C", data=data)


def check_throttling(pi: bool) -> Check:
    said, value = hw.get_throttled()
    if said is None:
        return Check("throttling", WARN if pi else PASS,
                     "vcgencmd not found" + ("" if pi else " (not a Raspberry Pi)"),
                     "sudo apt install libraspberrypi-bin" if pi else None)
    if value is None:
        return Check("throttling", WARN, f"vcgencmd get_throttled gave no reading: {said!r}",
                     "vcgencmd needs /dev/vcio: add this user to the video group (sudo usermod -aG video $USER), "
                     "then log out and in again.")
    flags = hw.decode_throttled(value)
    data = {"throttled": hex(value), "flags": flags}
    if not flags:
        return Check("throttling", PASS, "no under-voltage or throttling since boot", data=data)
    fix = ("Use the official power supply (5 V 3 A for a Pi 4, 5 V 5 A for a Pi 5); the USB Accelerator draws "
           "up to 900 mA, so use a powered hub if it resets." if value & 0x10001 else
           "Improve cooling (heatsink, fan).")
    return Check("throttling", WARN, f"{hex(value)}: {', '.join(flags)}", fix, data)


def check_disk(roots: Roots) -> Check:
    path = roots.state_dir.absolute()
    while path != path.parent:
        try:
            usage = shutil.disk_usage(path)
            break
        except OSError:  # missing, or not ours to look into: the folder it will be made in
            path = path.parent
    else:
        usage = shutil.disk_usage(path)
    free_mb = usage.free / 1e6
    data = {"path": str(path), "free_mb": round(free_mb)}
    fix = "Free space (sudo apt clean; old bundles in /var/lib/skin-edge/models; journalctl --vacuum-size=100M)."
    if free_mb < 200:
        return Check("disk", FAIL, f"{free_mb:.0f} MB free on {path}", fix, data)
    if free_mb < 1000:
        return Check("disk", WARN, f"{free_mb:.0f} MB free on {path}", fix, data)
    return Check("disk", PASS, f"{free_mb / 1000:.1f} GB free on {path}", data=data)
