"""`edge doctor`: real checks on this machine, and fake sysfs / /dev trees and firmware tools for the
hardware this machine lacks (a Raspberry Pi, cameras, a Coral on USB 2, USB 3 or PCIe)."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from conftest import LABELS
from typer.testing import CliRunner

from edge.cli import app
from edge.device import doctor
from edge.device import hardware as hw
from edge.device.doctor import FAIL, PASS, WARN
from edge.device.hardware import Roots

runner = CliRunner()
CHECKS = ["python", "runtime", "numpy_abi", "opencv", "picamera2", "libcamera", "cameras", "edgetpu_library",
          "edgetpu_devices", "device_access", "cpu_governor", "temperature", "throttling", "disk", "model", "smoke"]


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def tool(bin_dir: Path, name: str, output: str, code: int = 0) -> None:
    """A stand-in for a firmware/camera tool (vcgencmd, rpicam-hello) that prints ``output``."""
    path = write(bin_dir / name, f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\nexit {code}\n")
    path.chmod(0o755)


@pytest.fixture()
def roots(tmp_path) -> Roots:
    (tmp_path / "sys").mkdir()
    (tmp_path / "dev").mkdir()
    return Roots(sys=tmp_path / "sys", dev=tmp_path / "dev", state_dir=tmp_path / "state")


@pytest.fixture()
def fake_bin(tmp_path, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def coral_usb(roots: Roots, ids: tuple[str, str], speed: str) -> None:
    d = roots.sys / "bus/usb/devices/2-1"
    for name, value in (("idVendor", ids[0]), ("idProduct", ids[1]), ("speed", speed), ("busnum", "2"),
                        ("devnum", "3")):
        write(d / name, value + "\n")
    write(roots.dev / "bus/usb/002/003")


# --- the whole command on this machine -----------------------------------------------------------

def test_doctor_json_on_this_machine(bundle_dir):
    result = runner.invoke(app, ["doctor", "--model", str(bundle_dir), "--device", "cpu", "--json"])
    report = json.loads(result.stdout)
    assert set(report) == {"ok", "summary", "checks"}
    assert [c["name"] for c in report["checks"]] == CHECKS
    for c in report["checks"]:
        assert set(c) == {"name", "status", "summary", "fix", "data"} and c["status"] in (PASS, WARN, FAIL)
        assert c["status"] == PASS or c["fix"], c  # every problem comes with its fix
    assert result.exit_code == (0 if report["ok"] else 1)
    assert report["ok"] == all(c["status"] != FAIL for c in report["checks"])
    assert sum(report["summary"].values()) == len(CHECKS)
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["python"]["data"]["version"] == sys.version.split()[0]
    assert by_name["runtime"]["status"] == PASS and by_name["runtime"]["data"]["name"]
    assert by_name["numpy_abi"]["status"] == PASS and by_name["opencv"]["status"] == PASS
    assert by_name["model"]["status"] == PASS
    smoke = by_name["smoke"]
    assert smoke["status"] == PASS and smoke["data"]["device"] == "cpu"
    assert smoke["data"]["top"]["label"] in LABELS and smoke["data"]["frame_ms"] > 0


def test_doctor_table_and_exit_1_on_a_damaged_bundle(fresh_bundle):
    (fresh_bundle / "model.tflite").write_bytes((fresh_bundle / "model.tflite").read_bytes()[:-8])
    result = runner.invoke(app, ["doctor", "--model", str(fresh_bundle)])
    assert result.exit_code == 1 and "FAIL" in result.stdout and "1 fail" in result.stdout
    check = doctor.check_model(fresh_bundle)
    assert check.status == FAIL and "model.tflite damaged" in check.summary and "edge verify" in check.fix


def test_unknown_device_is_one_line():
    result = runner.invoke(app, ["doctor", "--device", "usb3"])
    assert result.exit_code == 1 and result.stderr.startswith("error: Unknown Edge TPU device 'usb3'")
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_missing_model_is_a_warning_not_a_failure(roots):
    assert doctor.find_model(None, roots) == (None, "no model given and none installed")
    assert doctor.check_model(None).status == WARN
    assert doctor.check_smoke(None, "auto").status == WARN


def test_the_installed_model_is_checked_by_default(roots, bundle_dir):
    (roots.state_dir / "models").mkdir(parents=True)
    (roots.state_dir / "models/current").symlink_to(bundle_dir)
    report = doctor.run_doctor(device="cpu", roots=roots)
    checks = {c.name: c for c in report.checks}
    assert checks["model"].status == PASS and checks["model"].data["path"] == str(roots.state_dir / "models/current")
    assert checks["smoke"].status == PASS


def test_smoke_run_with_the_test_bundle(bundle_dir):
    check = doctor.check_smoke(bundle_dir, "cpu")
    assert check.status == PASS and check.data["top"]["label"] in LABELS
    assert check.data["load_ms"] > 0 and "on cpu" in check.summary


def test_smoke_run_failure_is_reported(tmp_path):
    bad = write(tmp_path / "bad.tflite", "not a model")
    check = doctor.check_smoke(bad, "cpu")
    assert check.status == FAIL and check.summary


# --- Edge TPU ------------------------------------------------------------------------------------

def test_usb_accelerator_on_usb2_warns(roots):
    coral_usb(roots, ("18d1", "9302"), "480")
    check = doctor.check_edgetpu_devices(roots, hw.coral_usb(roots), required=False)
    assert check.status == WARN and "480 Mbit/s" in check.summary and "USB 3 port" in check.fix
    assert check.data["usb"][0]["node"] == str(roots.dev / "bus/usb/002/003")


def test_usb_accelerator_on_usb3_passes(roots):
    coral_usb(roots, ("1a6e", "089a"), "5000")
    check = doctor.check_edgetpu_devices(roots, hw.coral_usb(roots), required=True)
    assert check.status == PASS and "firmware not loaded yet" in check.summary and "5000 Mbit/s" in check.summary


def test_no_edge_tpu_fails_only_when_asked_for(roots):
    assert doctor.check_edgetpu_devices(roots, hw.coral_usb(roots), required=False).status == PASS
    check = doctor.check_edgetpu_devices(roots, hw.coral_usb(roots), required=True)
    assert check.status == FAIL and "USB Accelerator" in check.fix


def test_pcie_coral_without_driver(roots):
    d = roots.sys / "bus/pci/devices/0000:01:00.0"
    write(d / "vendor", "0x1ac1\n")
    write(d / "device", "0x089a\n")
    check = doctor.check_edgetpu_devices(roots, hw.coral_usb(roots), required=True)
    assert check.status == FAIL and "gasket" in check.fix and "/dev/apex_0 is missing" in check.summary
    write(roots.dev / "apex_0")
    assert doctor.check_edgetpu_devices(roots, hw.coral_usb(roots), required=True).status == PASS


def test_missing_libedgetpu_gives_the_fix(roots):
    from edge.backends.edgetpu import INSTALL_HINT

    missing = Roots(sys=roots.sys, dev=roots.dev, library="libedgetpu-not-here.so.1")
    check = doctor.check_edgetpu_library(missing, required=False)
    assert check.status == WARN and "libedgetpu-not-here.so.1 is not installed" in check.summary
    assert check.fix == INSTALL_HINT and "libedgetpu1-std" in check.fix
    assert doctor.check_edgetpu_library(missing, required=True).status == FAIL


def test_asking_for_a_missing_edge_tpu_fails_the_doctor(roots, bundle_dir):
    missing = Roots(sys=roots.sys, dev=roots.dev, state_dir=roots.state_dir, library="libedgetpu-not-here.so.1")
    report = doctor.run_doctor(model=bundle_dir, device="usb", roots=missing)
    status = {c.name: c.status for c in report.checks}
    assert not report.ok and status["edgetpu_library"] == FAIL and status["edgetpu_devices"] == FAIL
    assert status["smoke"] == FAIL  # load_model(device="usb") cannot open the Edge TPU here either


# --- device access -------------------------------------------------------------------------------

def test_device_access_names_the_group(roots):
    import grp

    node = write(roots.dev / "video0")
    node.chmod(0o660)
    group = grp.getgrgid(node.stat().st_gid).gr_name
    check = doctor.check_device_access(roots, [], uid=4242, gids=set())
    assert check.status == FAIL and f"usermod -aG {group}" in check.fix and str(node) in check.summary
    allowed = doctor.check_device_access(roots, [], uid=4242, gids={node.stat().st_gid})
    assert allowed.status == PASS and "1 camera/Coral device" in allowed.summary


def test_can_open_follows_the_mode_bits():
    st = os.stat_result((stat.S_IFCHR | 0o660, 0, 0, 0, 0, 44, 0, 0, 0, 0))
    assert hw.can_open(st, 1000, {44}) and not hw.can_open(st, 1000, {46})
    assert hw.can_open(st, 0, set())


# --- cameras -------------------------------------------------------------------------------------

def test_cameras_skip_the_pis_internal_nodes(roots):
    for i, name in enumerate(("pispbe", "rpi-hevc-dec", "HD Pro Webcam C920")):
        write(roots.dev / f"video{i}")
        write(roots.sys / f"class/video4linux/video{i}/name", name + "\n")
    check = doctor.check_cameras(roots, [], required=True)
    assert check.status == PASS and "video2 (HD Pro Webcam C920)" in check.summary and "pispbe" not in check.summary


def test_no_camera_warns_or_fails_when_required(roots):
    write(roots.dev / "video0")
    write(roots.sys / "class/video4linux/video0/name", "pispbe\n")
    assert doctor.check_cameras(roots, [], required=False).status == WARN
    check = doctor.check_cameras(roots, [], required=True)
    assert check.status == FAIL and "internal V4L2" in check.summary and "ribbon cable" in check.fix


def test_libcamera_cameras_listed(fake_bin):
    tool(fake_bin, "rpicam-hello", "Available cameras\n-----------------\n"
         "0 : imx708_wide [4608x2592 10-bit RGGB] (/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a)\n"
         "    Modes: 'SRGGB10_CSI2P' : 1536x864 [120.13 fps - (768, 432)/3072x1728 crop]")
    check = doctor.check_libcamera(pi=True)
    assert check.status == PASS and "imx708_wide" in check.summary
    assert check.data["cameras"] == [{"index": "0", "sensor": "imx708_wide", "modes": "4608x2592 10-bit RGGB"}]


def test_libcamera_no_cameras(fake_bin):
    tool(fake_bin, "rpicam-hello", "No cameras available!")
    check = doctor.check_libcamera(pi=True)
    assert check.status == PASS and check.data["cameras"] == [] and "0 camera(s)" in check.summary


def test_camera_frame_without_a_camera_fails_with_the_reason():
    check, frame = doctor.check_camera_frame("7")
    assert check.status == FAIL and frame is None and "camera 7" in check.summary and check.fix


# --- the Pi's power and temperature ---------------------------------------------------------------

def test_throttling_decoded(fake_bin):
    tool(fake_bin, "vcgencmd", "throttled=0x50005")
    check = doctor.check_throttling(pi=True)
    assert check.status == WARN and "under-voltage now" in check.summary and "power supply" in check.fix
    assert "throttling has occurred" in check.data["flags"]
    tool(fake_bin, "vcgencmd", "throttled=0x0")
    assert doctor.check_throttling(pi=True).status == PASS


def test_decode_throttled_bits():
    assert hw.decode_throttled(0x80008) == ["soft temperature limit now", "soft temperature limit has occurred"]
    assert hw.decode_throttled(0) == []


def test_temperature_and_governor(roots):
    write(roots.sys / "class/thermal/thermal_zone0/temp", "82300\n")
    assert doctor.check_temperature(roots).status == WARN
    write(roots.sys / "class/thermal/thermal_zone0/temp", "47250\n")
    check = doctor.check_temperature(roots)
    assert check.status == PASS and check.data["celsius"] == pytest.approx(47.25)
    for cpu in range(4):
        write(roots.sys / f"devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", "powersave\n")
    assert doctor.check_cpu_governor(roots).status == WARN


def test_raspberry_pi_detected_from_the_device_tree(roots):
    assert not hw.is_raspberry_pi(roots)
    write(roots.sys / "firmware/devicetree/base/model", "Raspberry Pi 5 Model B Rev 1.0\x00")
    assert hw.is_raspberry_pi(roots)
    assert doctor.check_picamera2(None, pi=True).status == WARN  # picamera2 is not installed here


def test_disk_reports_the_nearest_existing_folder(roots):
    check = doctor.check_disk(roots)
    assert check.data["path"] == str(roots.sys.parent) and check.data["free_mb"] > 0


# --- numpy ABI clash -----------------------------------------------------------------------------

def test_abi_clash_detected_in_a_child_process(tmp_path, monkeypatch):
    write(tmp_path / "site/builtfornumpy1.py",
          "raise ImportError('numpy.core.multiarray failed to import')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    probe = doctor.probe_import("builtfornumpy1")
    assert not probe.ok and probe.abi_clash and "multiarray failed to import" in probe.error
    check = doctor.check_numpy_abi([probe, doctor.probe_import("cv2")])
    assert check.status == FAIL and "builtfornumpy1" in check.summary and "numpy" in check.fix


def test_abi_messages():
    assert doctor.abi_clash("AttributeError: _ARRAY_API not found")
    assert doctor.abi_clash("ValueError: numpy.dtype size changed, may indicate binary incompatibility. "
                            "Expected 96 from C header, got 88 from PyObject")
    assert not doctor.abi_clash("ModuleNotFoundError: No module named 'tflite_runtime'")


# --- a strange machine: odd sysfs values, broken tools, damaged bundles ---------------------------

@pytest.fixture()
def odd_machine(roots, fake_bin) -> Roots:
    """A Pi whose sysfs holds values no kernel should write, with dangling device links and a
    vcgencmd that cannot be executed."""
    d = roots.sys / "bus/usb/devices/2-1"
    for name, value in (("idVendor", "18d1"), ("idProduct", "9302"), ("speed", "super"), ("busnum", "x"),
                        ("devnum", "")):
        write(d / name, value)
    write(roots.sys / "class/thermal/thermal_zone0/temp", "--5")
    write(roots.sys / "devices/system/cpu/cpu0/cpufreq/scaling_governor", "")
    write(roots.sys / "firmware/devicetree/base/model", "Raspberry Pi 4 Model B Rev 1.5\x00")
    (roots.dev / "video0").symlink_to(roots.dev / "gone")
    (roots.dev / "dma_heap").mkdir()
    (roots.dev / "dma_heap/linux,cma").symlink_to(roots.dev / "gone")
    write(fake_bin / "vcgencmd", "#!/nonexistent/interpreter\n").chmod(0o755)
    return roots


def test_odd_sysfs_values_are_read_as_unknown(odd_machine):
    usb = hw.coral_usb(odd_machine)
    assert usb == [{"sysfs": str(odd_machine.sys / "bus/usb/devices/2-1"), "id": "18d1:9302",
                    "kind": "USB Accelerator", "speed_mbps": 0, "node": None}]
    assert hw.temperature_c(odd_machine) is None and hw.cpu_governors(odd_machine) == []
    assert hw.v4l_nodes(odd_machine) == [] and hw.device_nodes(odd_machine, usb) == []
    said, value = hw.get_throttled()
    assert value is None and said.startswith("vcgencmd could not be run")
    check = doctor.check_edgetpu_devices(odd_machine, usb, required=True)
    assert check.status == PASS and "(link speed unknown)" in check.summary


def test_doctor_on_an_odd_machine_reports_every_check(odd_machine, bundle_dir):
    report = doctor.run_doctor(model=bundle_dir, device="cpu", roots=odd_machine)
    checks = {c.name: c for c in report.checks}
    assert list(checks) == CHECKS
    assert checks["throttling"].status == WARN and "could not be run" in checks["throttling"].summary
    assert checks["cameras"].status == WARN and checks["temperature"].summary == "not exposed here"
    assert checks["smoke"].status == PASS
    assert all(c.fix for c in report.checks if c.status != PASS)


def test_a_check_that_raises_is_reported_and_the_rest_still_run(roots, bundle_dir, monkeypatch):
    def unreadable(_roots):
        raise PermissionError(13, "Permission denied", "/sys/devices/system/cpu")

    monkeypatch.setattr(hw, "cpu_governors", unreadable)
    report = doctor.run_doctor(model=bundle_dir, device="cpu", roots=roots)
    checks = {c.name: c for c in report.checks}
    assert list(checks) == CHECKS
    governor = checks["cpu_governor"]
    assert governor.status == WARN and governor.fix
    assert governor.summary == "could not be checked: PermissionError: [Errno 13] Permission denied: " \
                               "'/sys/devices/system/cpu'"
    assert checks["smoke"].status == PASS


@pytest.mark.parametrize("files", ["model.tflite", ["model.tflite"], {"model.tflite": "3970cb34"},
                                   {"../../etc/hostname": {"sha256": "00"}}])
def test_malformed_files_entry_fails_with_a_fix_not_a_traceback(fresh_bundle, files):
    meta_path = fresh_bundle / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["files"] = files
    meta_path.write_text(json.dumps(meta))
    result = runner.invoke(app, ["doctor", "--model", str(fresh_bundle), "--device", "cpu", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert result.exit_code == 1
    assert checks["model"]["status"] == FAIL and "'files' must map plain file names" in checks["model"]["summary"]
    assert f"edge verify --model {fresh_bundle}" in checks["model"]["fix"]
    assert checks["smoke"]["status"] == WARN


def test_a_bundle_error_without_a_hint_still_gets_a_fix(fresh_bundle):
    (fresh_bundle / "model.json").write_text("[]")
    check = doctor.check_model(fresh_bundle)
    assert check.status == FAIL and "model.json" in check.summary
    assert check.fix == f"Copy the bundle folder again, then `edge verify --model {fresh_bundle}`."


def test_a_runtime_that_is_not_installed_is_no_warning_but_tflite_runtime_is(monkeypatch):
    from edge.backends import runtime
    fake = runtime.Runtime("tflite-runtime", "2.14.0", object, object,
                           skipped=("ai-edge-litert: No module named 'ai_edge_litert'",))
    monkeypatch.setattr(runtime, "get_runtime", lambda: fake)
    monkeypatch.setattr(doctor, "_installed", lambda module: module != "ai_edge_litert")
    check = doctor.check_runtime()
    # the absent ai-edge-litert is not "unusable"; tflite-runtime itself is flagged for its slow int8 on the CPU
    assert check.status == WARN and "not usable" not in check.summary
    assert check.summary.startswith("tflite-runtime 2.14.0: ") and "no fast int8 kernels" in check.summary
    assert "ai-edge-litert" in check.fix
    monkeypatch.setattr(doctor, "_installed", lambda module: True)  # installed, but it did not import
    check = doctor.check_runtime()
    assert check.status == WARN and "not usable: ai-edge-litert" in check.summary and check.fix


def test_device_access_lists_the_users_groups(roots):
    import grp

    node = write(roots.dev / "media0")
    node.chmod(0o660)
    check = doctor.check_device_access(roots, [], uid=4242, gids={node.stat().st_gid})
    assert check.status == PASS and check.data["groups"] == [grp.getgrgid(node.stat().st_gid).gr_name]
