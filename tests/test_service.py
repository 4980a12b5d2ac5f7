"""`edge install-service` / `uninstall-service`: the unit passes systemd's own checks, the installer
writes the right paths into a temporary root (and nothing on a dry run), and `edge run` started the
way the unit starts it reaches a real notify socket with READY=1 and WATCHDOG=1."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.cli import app
from edge.device import service
from edge.device.service import (
    CURRENT,
    DEVICE_GROUPS,
    RULES_FILE,
    UNIT_FILE,
    edge_executable,
    existing_groups,
    render_unit,
)

runner = CliRunner()
EDGE = Path(sys.executable).absolute().parent / "edge"
UNIT = Path("etc/systemd/system") / UNIT_FILE
RULES = Path("etc/udev/rules.d") / RULES_FILE
CONFIG = Path("etc/skin-edge/edge.toml")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="session")
def systemd_analyze() -> str:
    """systemd-analyze (Debian's `systemd` package), installed with apt-get when missing."""
    tool = shutil.which("systemd-analyze")
    if tool is None and shutil.which("apt-get") and os.geteuid() == 0:
        for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "systemd"]):
            subprocess.run(argv, check=False, capture_output=True, timeout=600)
        tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is missing: sudo apt-get install systemd")
    return tool


@pytest.fixture()
def installed(tmp_path, bundle_dir) -> Path:
    root = tmp_path / "root"
    result = invoke("install-service", "--root", root, "--model", bundle_dir)
    assert result.exit_code == 0, result.output
    return root


def unit_settings(text: str) -> dict[str, list[str]]:
    """Key -> values of a unit file (keys repeat, e.g. DeviceAllow=)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def verify_unit(tool: str, path: Path) -> None:
    done = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if path.name in line]
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr


def test_installed_unit_passes_systemd_verify_and_security(installed, systemd_analyze):
    unit = installed / UNIT
    text = unit.read_text()
    assert not re.search(r"@[A-Z_]+@", text)  # every placeholder filled
    verify_unit(systemd_analyze, unit)
    # the overall exposure score (0 = locked down, 10 = unprotected) stays in systemd's "OK" band
    done = subprocess.run([systemd_analyze, "security", "--offline=true", "--threshold=20", str(unit)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr


def test_unit_settings(installed):
    s = unit_settings((installed / UNIT).read_text())
    assert s["ExecStart"] == [f"{EDGE} run --config /etc/skin-edge/edge.toml"]
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"] and s["Restart"] == ["on-failure"]
    assert s["WatchdogSec"] == ["30s"] and s["StartLimitBurst"] == ["5"] and s["StartLimitIntervalSec"]
    assert s["User"] == ["skin-edge"] and s["CapabilityBoundingSet"] == [""]
    assert s["SupplementaryGroups"] == [" ".join(existing_groups(installed))]
    # the camera and the Coral stay reachable: no private /dev, an explicit device list instead
    assert "PrivateDevices" not in s and s["DevicePolicy"] == ["closed"]
    assert {"char-video4linux rw", "char-media rw", "char-dma_heap rw", "char-usb_device rw",
            "char-apex rw"} <= set(s["DeviceAllow"])
    assert "AF_NETLINK" in s["RestrictAddressFamilies"][0] and s["ProtectSystem"] == ["strict"]
    assert s["StateDirectory"] == ["skin-edge"] and "MemoryDenyWriteExecute" not in s
    assert "PYTHONUNBUFFERED=1" in s["Environment"][0]


def test_path_with_space_is_quoted_and_verifies(tmp_path, systemd_analyze):
    venv = tmp_path / "my venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "edge").symlink_to(EDGE)
    text = render_unit(edge=venv / "edge", config=Path("/etc/skin-edge/my 100%.toml"), groups=("video",))
    assert f'ExecStart="{venv}/edge" run --config "/etc/skin-edge/my 100%%.toml"' in text
    unit = tmp_path / UNIT_FILE
    unit.write_text(text)
    verify_unit(systemd_analyze, unit)


def test_udev_rules(installed):
    text = (installed / RULES).read_text()
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    usb = [r for r in rules if 'SUBSYSTEM=="usb"' in r]
    assert len(usb) == 2 and all('GROUP="plugdev"' in r and 'MODE="0660"' in r and 'TAG+="uaccess"' in r
                                 for r in usb)
    assert any('"1a6e"' in r and '"089a"' in r for r in usb) and any('"18d1"' in r and '"9302"' in r for r in usb)
    assert 'SUBSYSTEM=="apex", GROUP="apex", MODE="0660"' in rules


def test_config_and_model_installed(installed, bundle_dir):
    from edge.model.bundle import open_bundle
    from edge.run.config import load_config

    cfg = load_config(installed / CONFIG)  # the daemon's own validation
    assert cfg.model == str(CURRENT)
    assert (installed / CONFIG).stat().st_mode & 0o777 == 0o640  # it may hold the page's token
    current = installed / CURRENT.relative_to("/")
    assert current.is_symlink() and not os.readlink(current).startswith("/")  # relative: survives --root
    copy = open_bundle(current, verify=True)
    assert copy.labels == open_bundle(bundle_dir).labels and copy.root.resolve() != bundle_dir.resolve()


def test_reinstall_keeps_config_and_model(installed, bundle_dir):
    config = installed / CONFIG
    config.write_text(config.read_text() + "\n# edited by hand\n")
    before = sorted(p.name for p in (installed / "var/lib/skin-edge/models").iterdir())
    result = invoke("install-service", "--root", installed, "--model", bundle_dir)
    assert result.exit_code == 0, result.output
    assert "edited by hand" in config.read_text() and f"keep {config}" in result.output
    assert sorted(p.name for p in (installed / "var/lib/skin-edge/models").iterdir()) == before


def test_dry_run_prints_paths_and_writes_nothing(tmp_path, bundle_dir):
    root = tmp_path / "root"
    result = invoke("install-service", "--root", root, "--model", bundle_dir, "--dry-run")
    assert result.exit_code == 0, result.output
    assert not root.exists()
    out = result.stdout
    assert f"would write {root / UNIT}" in out and f"ExecStart={EDGE} run --config /etc/skin-edge/edge.toml" in out
    assert f"would write {root / RULES}" in out and f"would write {root / CONFIG}" in out
    assert f"would link {root / CURRENT.relative_to('/')} -> {bundle_dir.name}-" in out
    assert f"would copy {bundle_dir} -> {root}/var/lib/skin-edge/models/{bundle_dir.name}-" in out


def test_dry_run_on_the_real_system_writes_nothing(monkeypatch):
    # this machine's Python may live under /root or /home, which a real install refuses (tested below)
    monkeypatch.setattr(service, "HIDDEN_BY_PROTECT_HOME", ())
    before = {p: p.exists() for p in (Path("/") / UNIT, Path("/") / RULES, Path("/var/lib/skin-edge"))}
    result = invoke("install-service", "--dry-run")
    assert result.exit_code == 0, result.output
    assert {p: p.exists() for p in before} == before
    assert f"would write /{UNIT}" in result.stdout
    assert "sudo systemctl enable --now skin-edge" in result.stdout and "journalctl -u skin-edge" in result.stdout


def test_image_root_uses_its_own_groups_and_useradd_root(tmp_path):
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\nvideo:x:44:\n")
    assert existing_groups(root) == ("video",)  # no plugdev, no apex in this image
    result = invoke("install-service", "--root", root, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "; groups: video)" in result.stdout
    assert f"would run useradd --root {root} --system" in result.stdout and "--groups video skin-edge" in result.stdout
    assert "plugdev, apex do not exist" in result.stderr


def test_a_group_left_by_an_earlier_userdel_is_reused(tmp_path):
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\nvideo:x:44:\nskin-edge:x:990:\n")
    result = invoke("install-service", "--root", root, "--dry-run")
    assert result.exit_code == 0 and "--system --gid skin-edge --home-dir" in result.stdout


def test_groups_missing_here_are_left_out():
    import grp

    present = []
    for g in DEVICE_GROUPS:
        try:
            grp.getgrnam(g)
            present.append(g)
        except KeyError:
            pass
    assert existing_groups(Path("/")) == tuple(present)


def test_damaged_bundle_is_refused_before_anything_is_written(tmp_path, fresh_bundle):
    (fresh_bundle / "model.tflite").write_bytes(b"TFL3 damaged")
    root = tmp_path / "root"
    result = invoke("install-service", "--root", root, "--model", fresh_bundle)
    assert result.exit_code == 1 and "Checksum mismatch" in result.stderr and not root.exists()


@pytest.mark.parametrize("name", ["model_float.tflite", "model_edgetpu.tflite"])
def test_a_damaged_file_besides_model_tflite_is_refused_too(tmp_path, fresh_bundle, name):
    """Every file model.json lists is checked, not only the one the CPU runs."""
    from edge.model.bundle import add_file

    if name == "model_edgetpu.tflite":
        add_file(fresh_bundle, name, fresh_bundle / "model.tflite")
    (fresh_bundle / name).write_bytes((fresh_bundle / name).read_bytes()[:-16] + bytes(16))
    root = tmp_path / "root"
    result = invoke("install-service", "--root", root, "--model", fresh_bundle)
    assert result.exit_code == 1 and "Checksum mismatch" in result.stderr and name in result.stderr
    assert not root.exists()


def test_needs_root_for_the_real_system(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = invoke("install-service")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: install-service changes /etc and /var and needs root")
    assert f"sudo {EDGE} install-service" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("attr", ["executable", "base_prefix"])
def test_refuses_a_python_the_service_cannot_see(monkeypatch, attr):
    monkeypatch.setattr(service, "HIDDEN_BY_PROTECT_HOME", (Path("/home"),))
    monkeypatch.setattr(sys, attr, "/home/someone/.pyenv/versions/3.11.7" + ("/bin/python" * (attr == "executable")))
    monkeypatch.setattr(service, "edge_executable", lambda: EDGE)
    result = invoke("install-service", "--dry-run")
    assert result.exit_code == 1 and "/home/someone/.pyenv" in result.stderr
    assert "is under /home, which the service cannot see" in result.stderr
    assert "ProtectHome=yes" in result.stderr and "/opt/skin-edge" in result.stderr
    result = invoke("install-service", "--dry-run", "--root", "/tmp/image-root-that-is-not-written")
    assert result.exit_code == 0 and "the unit will not start" in result.stderr  # an image: a warning


def test_uninstall_keeps_state_unless_purged(installed):
    result = invoke("uninstall-service", "--root", installed)
    assert result.exit_code == 0, result.output
    assert not (installed / UNIT).exists() and not (installed / RULES).exists()
    assert (installed / CONFIG).exists() and (installed / CURRENT.relative_to("/")).exists()
    result = invoke("uninstall-service", "--root", installed, "--purge")
    assert result.exit_code == 0, result.output
    assert not (installed / "etc/skin-edge").exists() and not (installed / "var/lib/skin-edge").exists()


@pytest.mark.parametrize("config", ["/", "/etc", "/etc/passwd", "edge.toml"])
def test_purge_refuses_a_config_that_is_not_an_absolute_toml_path(installed, config):
    result = invoke("uninstall-service", "--root", installed, "--purge", "--config", config)
    assert result.exit_code == 1 and f"error: --config {config} is not an absolute path to a .toml file" \
        in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (installed / UNIT).exists() and (installed / RULES).exists()  # nothing removed
    assert (installed / CONFIG).exists() and (installed / CURRENT.relative_to("/")).exists()


def test_install_refuses_a_config_path_that_is_a_folder(tmp_path):
    root = tmp_path / "root"
    (root / "etc/skin-edge/edge.toml").mkdir(parents=True)
    result = invoke("install-service", "--root", root)
    assert result.exit_code == 1 and "error: --config /etc/skin-edge/edge.toml is a folder" in result.stderr
    assert not (root / UNIT).exists()


def test_a_root_that_resolves_to_slash_is_the_running_system(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = invoke("install-service", "--root", "/tmp/..")
    assert result.exit_code == 1 and "install-service changes /etc and /var and needs root" in result.stderr


def test_reinstalling_the_current_model_keeps_it(installed):
    models = installed / "var/lib/skin-edge/models"
    before = sorted(p.name for p in models.iterdir())
    result = invoke("install-service", "--root", installed, "--model", models / "current")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in models.iterdir()) == before and "this bundle is already installed" in result.stdout


def test_uninstall_refuses_while_enabled(installed):
    wants = installed / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / UNIT_FILE).symlink_to(f"/{UNIT}")
    result = invoke("uninstall-service", "--root", installed, "--dry-run")
    assert result.exit_code == 1 and "systemctl disable --now skin-edge" in result.stderr
    assert (installed / UNIT).exists()


def test_edge_executable_is_this_venvs():
    assert edge_executable() == EDGE and os.access(EDGE, os.X_OK)


# --- the daemon under the unit's command line, with a real notify socket --------------------------

def _receive(sock: socket.socket, proc: subprocess.Popen, deadline: float) -> list[tuple[int, str]]:
    """(sender pid, message) datagrams until the process exits or the deadline passes."""
    got = []
    while time.monotonic() < deadline:
        try:
            data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            if proc.poll() is not None:
                break
            continue
        pid = next((struct.unpack("3i", d[:12])[0] for lvl, typ, d in anc
                    if lvl == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS), -1)
        got.append((pid, data.decode()))
    return got


def test_edge_run_as_the_unit_starts_it_notifies_ready_and_watchdog(installed, tmp_path, colour_files):
    from conftest import LABELS

    s = unit_settings((installed / UNIT).read_text())
    argv = shlex.split(s["ExecStart"][0])
    config_arg = argv.index("--config") + 1
    assert argv[:2] == [str(EDGE), "run"] and argv[config_arg] == "/etc/skin-edge/edge.toml"
    # the installed config, model and state folder, seen in the temporary root instead of /;
    # an image folder instead of the camera, no web page
    config = installed / CONFIG
    state = installed / "var/lib/skin-edge"
    text = config.read_text().replace("/var/lib/skin-edge", str(state))
    text = re.sub(r'(?m)^camera = .*$', f'source = "{colour_files["red"].parent}"', text)
    config.write_text(re.sub(r'(?m)^http = .*$', 'http = ""', text))
    argv[config_arg] = str(config)
    env = {**os.environ, **dict(kv.split("=", 1) for kv in shlex.split(s["Environment"][0]))}
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.bind(str(sock_path))
        sock.settimeout(0.5)
        env.update(NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="2000000")
        proc = subprocess.Popen([*argv, "--max-frames", str(len(LABELS))], cwd=state, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            messages = _receive(sock, proc, time.monotonic() + 60)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    fields = [f for _, m in messages for f in m.splitlines()]
    assert "READY=1" in fields and "WATCHDOG=1" in fields, messages
    assert fields.index("READY=1") <= fields.index("WATCHDOG=1")
    assert {pid for pid, _ in messages} == {proc.pid}  # all from the main process (NotifyAccess=main)
    assert len((state / "results.jsonl").read_text().splitlines()) == len(LABELS)


def test_templates_ship_with_the_package():
    """edge/device/deploy/ links to systemd/; the package data must name it so wheels carry the files."""
    import tomllib

    from edge.device.service import CONFIG_TEMPLATE, DEPLOY

    repo = Path(__file__).resolve().parents[1]
    for name in (UNIT_FILE, RULES_FILE, CONFIG_TEMPLATE):
        assert (DEPLOY / name).is_file() and (DEPLOY / name).resolve() == (repo / "systemd" / name).resolve()
    meta = tomllib.loads((repo / "pyproject.toml").read_text())
    assert "device/deploy/*" in meta["tool"]["setuptools"]["package-data"]["edge"]
