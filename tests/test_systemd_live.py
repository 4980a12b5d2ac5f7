"""The service under a real systemd: Debian bookworm booted under systemd-nspawn.

skin-edge is installed into /opt/skin-edge/venv exactly as docs/deploy-pi.md says, then
`edge install-service --model BUNDLE` installs the unit, with a video file (and later a stream
that disappears) as the source. Checked on the live systemd: start returns only after READY=1,
/healthz answers, results.jsonl grows under the unit's sandboxing, a hung daemon (SIGSTOP) is
restarted by the watchdog, stop is clean with no cut line, and a lost stream ends in the
documented exit 1 ("gave up"), not in a watchdog kill.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import cv2
import pytest
from conftest import colour_image
from helpers import MJPEGCamera, free_port, wait_until
from live_systemd import Container, build_root, unavailable

ROOT = Path(__file__).resolve().parents[1]
UNIT = "skin-edge.service"
SOURCE_PARTS = ("edge", "train", "systemd", "pyproject.toml", "README.md", "LICENSE")
# For the test: a short watchdog and restart delay, so a hang is seen in seconds, not 30 s.
DROP_IN = "[Service]\nWatchdogSec=3s\nRestartSec=1s\n"

pytestmark = [pytest.mark.slow, pytest.mark.systemd]


@pytest.fixture(scope="module")
def box(tmp_path_factory, quantized_bundle):
    why = unavailable()
    if why:
        pytest.skip(why)
    root = build_root()
    for left in ("etc/skin-edge", "var/lib/skin-edge", "var/log/skin-edge", f"etc/systemd/system/{UNIT}.d"):
        shutil.rmtree(root / left, ignore_errors=True)  # an earlier run's install: start from scratch
    (root / f"etc/systemd/system/{UNIT}").unlink(missing_ok=True)
    with Container(root, tmp_path_factory.mktemp("nspawn") / "boot.log") as c:
        src = c.path("/opt/skin-edge/src")
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir(parents=True)
        for part in SOURCE_PARTS:
            (shutil.copytree if (ROOT / part).is_dir() else shutil.copy2)(
                ROOT / part, src / part, **({"symlinks": True, "ignore": shutil.ignore_patterns("__pycache__")}
                                            if (ROOT / part).is_dir() else {}))
        bundle = c.path("/opt/skin-edge/bundle")
        shutil.rmtree(bundle, ignore_errors=True)
        shutil.copytree(quantized_bundle, bundle)
        c.port = free_port()
        yield c
        c.run("systemctl", "stop", UNIT, check=False)


def _write_video(path: Path, seconds: int = 60, fps: int = 10) -> None:
    """A long lossless video of the colour classes: the service's "camera" for minutes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (160, 120))
    assert writer.isOpened()
    for i in range(seconds * fps):
        frame = colour_image(("red", "green", "blue", "yellow")[i // 25 % 4], hw=(120, 160), seed=i % 7)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    path.chmod(0o644)


def _configure(box, source: str, extra: str = "") -> None:
    config = (f'model = "/var/lib/skin-edge/models/current"\ndevice = "cpu"\nsource = "{source}"\nrealtime = true\n'
              f'jsonl = "/var/lib/skin-edge/results.jsonl"\nhttp = "127.0.0.1:{box.port}"\nquiet = true\n{extra}')
    box.path("/etc/skin-edge/edge.toml").write_text(config)
    drop_in = box.path(f"/etc/systemd/system/{UNIT}.d/test.conf")
    drop_in.parent.mkdir(parents=True, exist_ok=True)
    drop_in.write_text(DROP_IN)
    box.run("systemctl", "daemon-reload")
    box.run("systemctl", "reset-failed", UNIT, check=False)


def _results(box) -> list[str]:
    path = box.path("/var/lib/skin-edge/results.jsonl")
    return path.read_text().splitlines() if path.exists() else []


def _get(box, route: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{box.port}{route}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_install_as_the_deploy_guide_says(box):
    box.run("mkdir", "-p", "/opt/skin-edge")
    box.run("python3", "-m", "venv", "--system-site-packages", "/opt/skin-edge/venv")
    box.run("/opt/skin-edge/venv/bin/pip", "install", "-q", "--disable-pip-version-check", "/opt/skin-edge/src",
            "numpy<2", timeout=900)
    # a cached venv from an earlier run: the source of this run, whatever its version says
    box.run("/opt/skin-edge/venv/bin/pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
            "--force-reinstall", "/opt/skin-edge/src")
    done = box.run("/opt/skin-edge/venv/bin/edge", "install-service", "--model", "/opt/skin-edge/bundle")
    assert "write /etc/systemd/system/skin-edge.service" in done.stdout
    assert box.path(f"/etc/systemd/system/{UNIT}").is_file() and box.path("/etc/skin-edge/edge.toml").is_file()
    assert box.path("/var/lib/skin-edge/models/current/model.tflite").is_file()
    unit = box.path(f"/etc/systemd/system/{UNIT}").read_text()
    assert "ExecStart=/opt/skin-edge/venv/bin/edge run --config /etc/skin-edge/edge.toml" in unit


def test_start_returns_after_ready_and_the_sandboxed_service_works(box):
    _write_video(box.path("/var/lib/skin-edge/visit.avi"))
    box.path("/var/lib/skin-edge/results.jsonl").unlink(missing_ok=True)
    _configure(box, "/var/lib/skin-edge/visit.avi")
    box.run("systemctl", "start", UNIT, timeout=180)  # Type=notify: returns once READY=1 came
    state = box.show(UNIT, "ActiveState", "SubState", "ExecMainStartTimestampMonotonic",
                     "ActiveEnterTimestampMonotonic")
    assert state["ActiveState"] == "active" and state["SubState"] == "running", state
    journal = box.journal(UNIT)
    assert "edge run: /var/lib/skin-edge/models/current/model.tflite on cpu" in journal, journal[-2000:]
    # the first result (READY=1) came before systemd called the unit started
    assert int(state["ActiveEnterTimestampMonotonic"]) > int(state["ExecMainStartTimestampMonotonic"])
    code, body = _get(box, "/healthz")
    assert code == 200 and json.loads(body)["status"] == "ok"
    first = len(_results(box))
    wait_until(lambda: len(_results(box)) >= first + 10, timeout=15)  # grows: LiteRT, OpenCV, numpy run
    hardening = box.show(UNIT, "ProtectSystem", "DevicePolicy", "SystemCallFilter", "NoNewPrivileges", "User")
    assert hardening["ProtectSystem"] == "strict" and hardening["DevicePolicy"] == "closed"
    assert hardening["NoNewPrivileges"] == "yes" and hardening["User"] == "skin-edge"
    assert hardening["SystemCallFilter"]  # @system-service, applied


def test_litert_opencv_numpy_run_under_memory_deny_write_execute(box):
    """The unit leaves MemoryDenyWriteExecute off (unchecked on aarch64 and with libedgetpu); on x86-64
    the device side runs under it, with the unit's other hardening, as the service user."""
    done = box.run("systemd-run", "--wait", "--pipe", "--quiet", "-p", "MemoryDenyWriteExecute=yes",
                   "-p", "SystemCallFilter=@system-service", "-p", "ProtectSystem=strict", "-p", "ProtectHome=yes",
                   "-p", "DevicePolicy=closed", "-p", "NoNewPrivileges=yes", "-p", "User=skin-edge",
                   "/opt/skin-edge/venv/bin/edge", "verify", "--model", "/var/lib/skin-edge/models/current",
                   "--device", "cpu", "--threads", "1", check=False, timeout=120)
    assert done.returncode == 0 and "verify: PASSED" in done.stdout, done.stdout[-1500:] + done.stderr[-1500:]


def test_a_hung_daemon_is_restarted_by_the_watchdog(box):
    before = box.show(UNIT, "MainPID", "NRestarts")
    box.run("systemctl", "kill", "--kill-whom=main", "--signal=SIGSTOP", UNIT)  # hung: no frame, no ping
    wait_until(lambda: int(box.show(UNIT, "NRestarts")["NRestarts"]) > int(before["NRestarts"]), timeout=30)
    wait_until(lambda: box.show(UNIT, "ActiveState")["ActiveState"] == "active", timeout=60)
    assert box.show(UNIT, "MainPID")["MainPID"] != before["MainPID"]
    assert "Watchdog timeout" in box.journal(UNIT)


def test_stop_is_clean_and_no_result_line_is_cut(box):
    wait_until(lambda: len(_results(box)) > 0, timeout=30)
    box.run("systemctl", "stop", UNIT, timeout=60)
    state = box.show(UNIT, "ActiveState", "Result", "ExecMainStatus")
    assert state["ActiveState"] == "inactive" and state["Result"] == "success", state
    rows = _results(box)
    assert rows and all(json.loads(line)["status"] in ("ok", "uncertain", "error") for line in rows)


def test_a_lost_stream_ends_in_exit_1_not_a_watchdog_kill(box):
    kills = box.journal(UNIT).count("Watchdog timeout")
    camera = MJPEGCamera([colour_image("red"), colour_image("green")], fps=15)
    try:
        # about 1 + 2 + 2 s of backoff plus the failed opens: longer than WatchdogSec=3s
        _configure(box, camera.url, "[reconnect]\ndelay = 1.0\nmax_delay = 2.0\nattempts = 3\n")
        box.run("systemctl", "start", UNIT, timeout=120)
        count = len(_results(box))
        wait_until(lambda: len(_results(box)) >= count + 5, timeout=15)
        camera.stop()  # unplugged
        wait_until(lambda: "gave up after 3 reconnect attempts" in box.journal(UNIT), timeout=60)
    finally:
        camera.stop()
        box.run("systemctl", "stop", UNIT, check=False)
    journal = box.journal(UNIT)
    assert journal.count("Watchdog timeout") == kills, journal[-3000:]
    assert journal.count("reconnecting in") >= 3


@pytest.fixture(scope="module")
def quantized_bundle(keras_model, tmp_path_factory) -> Path:
    from helpers import build_quantized

    return build_quantized(keras_model, tmp_path_factory)["bundle"]
