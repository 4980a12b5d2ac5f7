"""``edge doctor``: what works on this device and what to do about what does not.

Each check gives pass, warn or fail, one line of what it found and, when it is not a pass, the
fix. The hardware facts come from :mod:`edge.device.hardware` (files and programs only, under the
:class:`Roots` a test can point at a fake tree). Python modules that may be built against another
numpy are imported in a child process: an ABI clash there is reported, not fatal.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edge.device import hardware as hw
from edge.device.checks import (
    FAIL,
    PASS,
    WARN,
    Check,
    DoctorReport,
    from_error,
    guarded,
)
from edge.device.checks import installed as _installed
from edge.device.checks_hardware import (
    check_camera_frame,
    check_cameras,
    check_cpu_governor,
    check_device_access,
    check_disk,
    check_edgetpu_devices,
    check_edgetpu_library,
    check_libcamera,
    check_temperature,
    check_throttling,
)
from edge.device.checks_model import check_model, check_smoke, find_model
from edge.device.hardware import Roots

ABI_SIGNS = ("numpy.core.multiarray failed to import", "_ARRAY_API not found", "compiled using NumPy 1.x",
             "numpy.dtype size changed", "numpy.core._multiarray_umath", "binary incompatibility")
_PROBE = ("import importlib, sys\nm = importlib.import_module(sys.argv[1])\n"
          "print(getattr(m, '__version__', ''))")


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
    if rt.name == "tflite-runtime":
        from edge.model.load import slow_int8_note  # noqa: PLC0415

        return Check("runtime", WARN, f"{summary}: {slow_int8_note(rt.version)}",
                     "Fine for the Edge TPU; for int8 on the CPU, pip install ai-edge-litert.", data)
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
