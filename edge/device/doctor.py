"""``edge doctor``: what works on this device and what to do about what does not.

Each check gives pass, warn or fail, one line of what it found and, when it is not a pass, the
fix. The hardware facts come from :mod:`edge.device.hardware` (files and programs only, under the
:class:`Roots` a test can point at a fake tree). Python modules that may be built against another
numpy are imported in a child process: an ABI clash there is reported, not fatal.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edge.device import hardware as hw
from edge.device.hardware import Roots
from edge.errors import EdgeError

PASS, WARN, FAIL = "pass", "warn", "fail"
ABI_SIGNS = ("numpy.core.multiarray failed to import", "_ARRAY_API not found", "compiled using NumPy 1.x",
             "numpy.dtype size changed", "numpy.core._multiarray_umath", "binary incompatibility")
_PROBE = ("import importlib, sys\nm = importlib.import_module(sys.argv[1])\n"
          "print(getattr(m, '__version__', ''))")
_PYCORAL = ("import json\nfrom pycoral.utils.edgetpu import list_edge_tpus\n"
            "print(json.dumps(list_edge_tpus()))")


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


@dataclass(frozen=True)
class ImportProbe:
    module: str
    ok: bool
    version: str = ""
    error: str = ""
    abi_clash: bool = False


def abi_clash(text: str) -> bool:
    """True when an import error reads like a module built against another numpy."""
    return any(sign in text for sign in ABI_SIGNS)


def probe_import(module: str, timeout: float = 60.0) -> ImportProbe:
    """Import ``module`` in a child Python (a clash or a crash stays there) and report."""
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, module], capture_output=True, text=True,
                              timeout=timeout, check=False, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    except subprocess.TimeoutExpired:
        return ImportProbe(module, False, error=f"import took over {timeout:.0f} s")
    if done.returncode == 0:
        return ImportProbe(module, True, version=done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "")
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    error = lines[-1].strip() if lines else f"exit status {done.returncode}"
    if done.returncode < 0:
        error = f"crashed with signal {-done.returncode} ({error})"
    return ImportProbe(module, False, error=error, abi_clash=abi_clash(done.stderr))


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


def _installed(module: str) -> bool:
    import importlib.util  # noqa: PLC0415

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# --- software ---------------------------------------------------------------------------------

def check_python() -> Check:
    v = sys.version_info
    venv = sys.prefix != sys.base_prefix
    cfg = hw.read_text(Path(sys.prefix) / "pyvenv.cfg") or ""
    system_site = bool(re.search(r"include-system-site-packages\s*=\s*true", cfg))
    data = {"version": sys.version.split()[0], "executable": sys.executable, "venv": venv,
            "system_site_packages": system_site}
    if v < (3, 11):
        return Check("python", FAIL, f"Python {data['version']} is too old", "Use Python 3.11 or newer "
                     "(Raspberry Pi OS Bookworm has 3.11).", data)
    where = (f"venv {sys.prefix}" + (" with system site packages" if system_site else "")) if venv else "no venv"
    return Check("python", PASS, f"Python {data['version']} ({where})", data=data)


def check_runtime() -> Check:
    from importlib import metadata  # noqa: PLC0415

    from edge.backends.runtime import CANDIDATES, get_runtime  # noqa: PLC0415
    from edge.errors import RuntimeNotFound  # noqa: PLC0415

    versions = {}
    for dist in ("ai-edge-litert", "tflite-runtime", "tensorflow", "tensorflow-cpu"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        rt = get_runtime()
    except RuntimeNotFound as e:
        return from_error("runtime", FAIL, e, "pip install ai-edge-litert", {"versions": versions})
    # an earlier candidate that is installed but does not import is broken; one that is absent is not
    broken = [why for _, dist, top in CANDIDATES for why in rt.skipped
              if why.startswith(f"{dist}:") and _installed(top)]
    data = {"name": rt.name, "version": rt.version, "versions": versions, "skipped": list(rt.skipped)}
    summary = f"{rt.name} {rt.version}"
    if broken:
        return Check("runtime", WARN, f"{summary}; not usable: {'; '.join(broken)}",
                     "Reinstall or remove the broken runtime (see the numpy_abi check).", data)
    if rt.name == "tensorflow":
        return Check("runtime", WARN, f"{summary} (full TensorFlow: slow to start, large)",
                     "pip install ai-edge-litert", data)
    return Check("runtime", PASS, summary, data=data)


def check_numpy_abi(probes: list[ImportProbe]) -> Check:
    import numpy  # noqa: PLC0415

    clashes = [p for p in probes if p.abi_clash]
    data = {"numpy": numpy.__version__, "modules": {p.module: p.ok for p in probes}}
    if not clashes:
        names = ", ".join(p.module for p in probes) or "nothing to check"
        return Check("numpy_abi", PASS, f"numpy {numpy.__version__}: {names} import cleanly", data=data)
    fix = ("These modules were built for NumPy 1.x (apt's python3-picamera2/simplejpeg, tflite-runtime): in the "
           "venv run `pip install 'numpy<2'`, or use ai-edge-litert instead of tflite-runtime."
           if numpy.__version__.startswith("2") else
           "These modules need a newer numpy: in the venv run `pip install -U numpy`.")
    return Check("numpy_abi", FAIL, f"numpy {numpy.__version__} clashes with "
                 + "; ".join(f"{p.module} ({p.error})" for p in clashes), fix, data)


def check_opencv(probe: ImportProbe) -> Check:
    if probe.ok:
        return Check("opencv", PASS, f"OpenCV {probe.version}", data={"version": probe.version})
    return Check("opencv", FAIL, f"OpenCV does not import: {probe.error}",
                 "pip install opencv-python-headless", {"error": probe.error})


def check_picamera2(probe: ImportProbe | None, pi: bool) -> Check:
    from edge.sources.picam import MISSING  # noqa: PLC0415

    if probe is None:
        if pi:
            return Check("picamera2", WARN, "picamera2 is not installed (needed for the camera module)", MISSING)
        return Check("picamera2", PASS, "not installed (only needed for a Raspberry Pi camera module)")
    if probe.ok:
        return Check("picamera2", PASS, f"picamera2 {probe.version}".strip(), data={"version": probe.version})
    return Check("picamera2", FAIL, f"picamera2 does not import: {probe.error}",
                 "See the numpy_abi check; reinstall with `sudo apt install --reinstall python3-picamera2`.",
                 {"error": probe.error})


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

    if not _installed("pycoral"):
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


# --- the model --------------------------------------------------------------------------------

def find_model(model: Path | None, roots: Roots) -> tuple[Path | None, str]:
    """The bundle to check: the one given, else the installed one; (None, why) when there is none."""
    if model is not None:
        return model, ""
    current = roots.state_dir / "models/current"
    try:
        return (current, "") if current.exists() else (None, "no model given and none installed")
    except OSError:
        return None, f"no model given, and this user cannot read {roots.state_dir}"


def check_model(model: Path | None, why: str = "no model given") -> Check:
    from edge.model.bundle import checksum_report, open_bundle  # noqa: PLC0415

    if model is None:
        return Check("model", WARN, why, "Pass --model BUNDLE, or check the installed one as the service user: "
                     "sudo -u skin-edge edge doctor.")
    try:
        bundle = open_bundle(model, verify=False)
    except EdgeError as e:
        fix = f"{e.hint} Then check it with `edge verify --model {model}`." if e.hint else copy_again(model)
        return Check("model", FAIL, e.message, fix, {"path": str(model)})
    if bundle.root is None:
        return Check("model", PASS, f"{bundle.model_path} (a bare model: no checksums)", data={"path": str(model)})
    rows = checksum_report(bundle)
    bad = [r["file"] + (" missing" if r["actual"] is None else " damaged") for r in rows if not r["ok"]]
    data = {"path": str(bundle.root), "checksums": rows}
    if bad:
        return Check("model", FAIL, f"bundle {bundle.root}: {', '.join(bad)}",
                     copy_again(bundle.root), data)
    return Check("model", PASS, f"bundle {bundle.name}: {len(rows)} file(s), checksums match", data=data)


def check_smoke(model: Path | None, device: str, frame: Any = None) -> Check:
    """Load the model the way ``edge run`` does and classify one frame (a camera's, or synthetic)."""
    import time  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from edge.model.load import load_model  # noqa: PLC0415

    if model is None:
        return Check("smoke", WARN, "not run: no model", "Pass --model BUNDLE.")
    if frame is None:
        frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    try:
        t0 = time.perf_counter()
        m = load_model(model, device=device)
        t1 = time.perf_counter()
        result = m.classify(frame, k=1)
        t2 = time.perf_counter()
    except EdgeError as e:
        return from_error("smoke", FAIL, e, "See the model and runtime checks.")
    data = {"device": m.device, "runtime": f"{m.runtime.name} {m.runtime.version}",
            "load_ms": round((t1 - t0) * 1e3, 1), "frame_ms": round((t2 - t1) * 1e3, 2),
            "invoke_ms": round(result.invoke_ms, 2), "top": result.best.as_dict(), "notes": list(m.notes)}
    summary = (f"{m.path.name} on {m.device}: loaded in {data['load_ms']:.0f} ms, one frame in "
               f"{data['frame_ms']:.1f} ms (invoke {data['invoke_ms']:.1f} ms)")
    if m.notes:
        return Check("smoke", WARN, f"{summary}; {' '.join(m.notes)}",
                     "See the edgetpu_library and edgetpu_devices checks.", data)
    return Check("smoke", PASS, summary, data=data)


# --- all together -----------------------------------------------------------------------------

def run_doctor(*, model: Path | None = None, device: str = "auto", camera: str | None = None,
               roots: Roots = Roots()) -> DoctorReport:
    """Every check, in the order a person would fix things."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    from edge.backends.devices import parse_device  # noqa: PLC0415

    wants_tpu = parse_device(device).wants_tpu  # DelegateError (one line) for a string load_model would refuse
    pi = hw.is_raspberry_pi(roots)
    runtimes = [m for m in ("ai_edge_litert", "tflite_runtime") if _installed(m)] or (
        ["tensorflow"] if _installed("tensorflow") else [])
    modules = [f"{m}.interpreter" if m != "tensorflow" else "tensorflow.lite.python.interpreter" for m in runtimes]
    modules += ["cv2"] + (["picamera2"] if _installed("picamera2") else [])
    with ThreadPoolExecutor(max_workers=len(modules)) as pool:
        probes = dict(zip(modules, pool.map(probe_import, modules)))
    model, why = find_model(model, roots)
    usb = hw.coral_usb(roots)
    libcamera = guarded("libcamera", WARN, check_libcamera, pi)
    checks = [guarded("python", WARN, check_python), guarded("runtime", FAIL, check_runtime),
              guarded("numpy_abi", WARN, check_numpy_abi, list(probes.values())), check_opencv(probes["cv2"]),
              check_picamera2(probes.get("picamera2"), pi), libcamera,
              guarded("cameras", WARN, check_cameras, roots, libcamera.data.get("cameras", []), camera is not None)]
    frame = None
    if camera is not None:
        grabbed = guarded("camera_frame", FAIL, check_camera_frame, camera)
        frame_check, frame = grabbed if isinstance(grabbed, tuple) else (grabbed, None)
        checks.append(frame_check)
    checks += [guarded(name, WARN, check, *args) for name, check, *args in (
        ("edgetpu_library", check_edgetpu_library, roots, wants_tpu),
        ("edgetpu_devices", check_edgetpu_devices, roots, usb, wants_tpu),
        ("device_access", check_device_access, roots, usb), ("cpu_governor", check_cpu_governor, roots),
        ("temperature", check_temperature, roots), ("throttling", check_throttling, pi),
        ("disk", check_disk, roots))]
    model_check = guarded("model", FAIL, check_model, model, why)
    checks.append(model_check)
    checks.append(guarded("smoke", FAIL, check_smoke, model, device, frame) if model_check.status != FAIL else
                  Check("smoke", WARN, "not run: the model check failed", model_check.fix))
    return DoctorReport(tuple(checks))
