"""``edge run`` as a process: config, outputs, signals, systemd notify, a lost stream, the demo video."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import pytest
from conftest import colour_image
from helpers import MJPEGCamera, drain, notify_listener, write_video

from edge.run.config import ConfigError, RunConfig, load_config, with_overrides

ROOT = Path(__file__).resolve().parents[1]
JSONL_KEYS = {"timestamp", "frame", "status", "reasons", "label", "score", "ood_score", "top_k", "raw_top_k", "times_ms",
              "latency_ms", "fps", "quality", "disclaimer"}


# ---------------------------------------------------------------- config


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, message", [
    ('model = "m"\nthreshhold = 0.5\n', "unknown key 'threshhold'. Did you mean 'threshold'?"),
    ("[quality]\nmin_sharpnes = 3\n", "unknown key 'quality.min_sharpnes'"),
    ("[camera]\nindex = 1\n", "camera: expected a string, got a table"),
    ('threshold = "high"\n', "threshold: expected a number, got a string ('high')"),
    ("top_k = 2.5\n", "top_k: expected an integer, got a number"),
    ("realtime = 1\n", "realtime: expected true or false, got an integer"),
    ("smoothing = 0\n", "smoothing: 0 is out of range"),
    ("threshold = 1.5\n", "threshold: 1.5 is out of range"),
    ("[reconnect]\nattempts = -1\n", "reconnect.attempts: -1 is out of range"),
    ("[quality]\nmin_brightness = 200\nmax_brightness = 100\n", "quality.min_brightness (200.0) must be below"),
    ('http = "8080"\n', "http: '8080' is not HOST:PORT"),
    ('device = "gpu"\n', "device: 'gpu' is not a device"),
    ('camera_size = [640]\n', "camera_size: expected [width, height]"),
    ("model = \n", "not valid TOML"),
])
def test_config_errors_name_the_key(tmp_path, text, message):
    path = write(tmp_path / "edge.toml", text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_unreadable_config(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config(tmp_path / "missing.toml")
    monkeypatch.setenv("SKIN_EDGE_CONFIG", "/proc/self/mem")  # a file whose reading fails, even for root
    with pytest.raises(ConfigError) as e:
        load_config()
    assert str(e.value) == ("/proc/self/mem: cannot read the config (Input/output error). "
                            "Give another with --config FILE, or none with SKIN_EDGE_CONFIG= (empty).")


def test_flags_override_the_config(tmp_path, monkeypatch):
    path = write(tmp_path / "edge.toml", 'model = "a"\ncamera = 1\nthreshold = 0.7\n[quality]\nmin_sharpness = 3\n')
    cfg = load_config(path)
    assert (cfg.model, cfg.camera, cfg.threshold, cfg.quality.min_sharpness) == ("a", "1", 0.7, 3.0)
    cfg2 = with_overrides(cfg, model="b", threshold=None, source="clip.mp4", top_k=5)
    assert (cfg2.model, cfg2.threshold, cfg2.top_k) == ("b", 0.7, 5)
    assert (cfg2.source, cfg2.camera) == ("clip.mp4", None)  # --source replaces the config's camera
    with pytest.raises(ConfigError, match="--threshold: 2.0 is out of range"):
        with_overrides(cfg, threshold=2.0)
    # the default system path is read when present (SKIN_EDGE_CONFIG points it elsewhere here)
    monkeypatch.setenv("SKIN_EDGE_CONFIG", str(path))
    assert load_config().model == "a"
    monkeypatch.setenv("SKIN_EDGE_CONFIG", "")
    assert load_config() == RunConfig()


def test_example_config_documents_and_validates_every_key():
    from edge.run.config import TABLES, TOP

    text = (ROOT / "systemd" / "edge.toml").read_text()
    cfg = load_config(ROOT / "systemd" / "edge.toml")
    assert cfg.model == "/var/lib/skin-edge/models/current" and cfg.http == "127.0.0.1:8080"
    assert cfg.jsonl == "/var/lib/skin-edge/results.jsonl"
    for key in TOP:
        assert f"\n{key} =" in text or f"\n# {key} =" in text, key
    for table, (cls, keys) in TABLES.items():
        # a key with no default value (None: the camera's own) can only be shown commented out
        unset = {f.name for f in dataclasses.fields(cls) if f.default is None}
        assert f"[{table}]" in text and all(f"\n{k} =" in text or (k in unset and f"\n# {k} =" in text)
                                            for k in keys), table


# ---------------------------------------------------------------- the process


def edge_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env.update(SKIN_EDGE_CONFIG="", PYTHONUNBUFFERED="1", **extra)
    return env


def edge_run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", "run", *args], capture_output=True, text=True,
                          env=env or edge_env(), timeout=timeout, cwd=ROOT)


class Running:
    """`edge run` in the background, its stderr collected line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "edge", "run", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env or edge_env(), cwd=ROOT)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.proc.poll() is None, f"edge run ended early: {self.lines}"
            assert time.monotonic() < deadline, f"timed out; stderr: {self.lines}"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def jsonl_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture()
def long_video(tmp_path) -> Path:
    frames = [colour_image(n, seed=i) for i in range(10) for n in ("red", "yellow", "green")]
    return write_video(tmp_path / "long.mp4", frames * 5, fps=30.0)  # 150 frames, 5 s at its rate


def test_run_over_a_folder_writes_json_lines(bundle_dir, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, name in enumerate(["red", "green", "yellow"]):
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(colour_image(name, seed=i), cv2.COLOR_RGB2BGR))
    (folder / "1a.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole JPEG")
    out = tmp_path / "out.jsonl"
    out.write_text('{"earlier": true}\n')
    done = edge_run("--model", str(bundle_dir), "--source", str(folder), "--jsonl", str(out))
    assert done.returncode == 1, done.stderr  # as edge classify: a failed image fails the run...
    assert done.stdout == ""  # not a terminal: no live line
    rows = jsonl_rows(out)
    assert rows[0] == {"earlier": True}  # appended, not overwritten
    assert all(set(r) == JSONL_KEYS | {"image"} for r in rows[1:])  # each line names its image
    assert [r["image"] for r in rows[1:]] == [str(folder / n) for n in ("0.png", "1.png", "1a.jpg", "2.png")]
    assert [r["status"] for r in rows[1:]] == ["ok", "ok", "error", "ok"]  # ...but the corrupt file failed alone
    assert [r["label"] for r in rows[1:]] == ["red", "green", None, "yellow"]
    # unrelated photos are never smoothed together (the default smoothing is on): each result is its own
    assert all(r["top_k"] == r["raw_top_k"] for r in rows[1:] if r["status"] != "error")
    assert "1a.jpg" in rows[3]["reasons"][0]
    assert "end of source: 4 frames processed (3 labelled, 0 uncertain, 1 errors)" in done.stderr
    assert "1 of 4 images failed" in done.stderr and "Traceback" not in done.stderr


def test_json_lines_to_a_pipe(bundle_dir, long_video, tmp_path):
    cfg = write(tmp_path / "edge.toml", "fsync = true\n")  # a pipe cannot be fsynced: it is not tried
    done = edge_run("--model", str(bundle_dir), "--source", str(long_video), "--max-frames", "3",
                    "--jsonl", "/dev/stdout", "--config", str(cfg))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["frame"] for r in rows] == [0, 1, 2] and all(set(r) == JSONL_KEYS for r in rows)
    assert "error:" not in done.stderr and "cannot write" not in done.stderr


@pytest.mark.parametrize("args, message", [
    (["--source", "no/such/video.mp4"], "error: no/such/video.mp4: no such file or folder."),
    (["--source", "{notvideo}"], "error: {notvideo}: not a video OpenCV can read."),
    (["--camera", "picamera2"], "error: picamera2 is not installed: it is not on PyPI for this platform"),
    (["--camera", "/dev/video97"], "error: /dev/video97: no such camera device."),
    (["--source", "x.mp4", "--camera"], "error: give one source"),
    (["--source", "{video}", "--config", "{bad}"], "error: {bad}: unknown key 'colour'"),
    (["--source", "{video}", "--max-frames", "2", "--jsonl", "/dev/full"],
     "error: /dev/full: 2 results could not be written (No space left on device)"),
])
def test_bad_input_is_one_line_and_exit_1(bundle_dir, tmp_path, long_video, args, message):
    bad = write(tmp_path / "bad.toml", "colour = 1\n")
    notvideo = write(tmp_path / "notes.mp4", "not a video")
    args = [a.format(video=long_video, bad=bad, notvideo=notvideo) for a in args]
    done = edge_run("--model", str(bundle_dir), *args)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message.format(bad=bad, notvideo=notvideo)), done.stderr
    assert "Traceback" not in done.stderr
    assert not [line for line in done.stderr.splitlines() if line.startswith("[")]  # no FFmpeg chatter


def test_port_in_use_is_one_line(bundle_dir, long_video):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = edge_run("--model", str(bundle_dir), "--source", str(long_video), "--http", f"127.0.0.1:{port}")
    assert done.returncode == 1 and f"error: port {port} on 127.0.0.1 is in use" in done.stderr


@pytest.fixture()
def notify_socket(tmp_path):
    with notify_listener(tmp_path / "notify.sock") as listener:
        yield listener


def test_sigterm_stops_cleanly_within_2s(bundle_dir, long_video, tmp_path, notify_socket):
    sock, path = notify_socket
    out = tmp_path / "run.jsonl"
    run = Running("--model", str(bundle_dir), "--source", str(long_video), "--jsonl", str(out),
                  "--http", "127.0.0.1:0", env=edge_env(NOTIFY_SOCKET=path, SKIN_EDGE_TOKEN="s3cret"))
    try:
        run.wait_for(lambda: len(jsonl_rows(out)) >= 5)
        line = next(line for line in run.lines if line.startswith("live page: "))
        # stderr is not a terminal (as under systemd): the token stays out of the log
        assert "s3cret" not in line and line.endswith("/ (open it with ?token=TOKEN; the token is kept out of the log)")
        page = line.split()[2]
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(page + "api/stats", timeout=5)
        stats = json.load(urllib.request.urlopen(page + "api/stats?token=s3cret", timeout=5))
        assert stats["frames"]["processed"] >= 5 and stats["source"] == str(long_video)
        latest = json.load(urllib.request.urlopen(page + "api/latest?token=s3cret", timeout=5))
        assert set(latest) == JSONL_KEYS
        t0 = time.monotonic()
        run.proc.send_signal(signal.SIGTERM)
        rc = run.proc.wait(timeout=5)
        elapsed = time.monotonic() - t0
    finally:
        run.stop()
    assert rc == 0 and elapsed < 2.0, (rc, elapsed, run.lines)
    run._reader.join(2)
    assert not any("s3cret" in line for line in run.lines)
    text = out.read_text()
    rows = jsonl_rows(out)
    assert text.endswith("\n") and 5 <= len(rows) < 150  # flushed, and stopped before the end
    run._reader.join(2)
    assert any(line.startswith("stopped: ") for line in run.lines)
    messages = drain(sock)
    assert messages[0].startswith("READY=1") and messages[-1].startswith("STOPPING=1")


def test_sighup_stops_as_cleanly_as_sigterm(bundle_dir, long_video, tmp_path, notify_socket):
    sock, path = notify_socket
    out = tmp_path / "run.jsonl"
    run = Running("--model", str(bundle_dir), "--source", str(long_video), "--jsonl", str(out),
                  env=edge_env(NOTIFY_SOCKET=path))
    try:
        run.wait_for(lambda: len(jsonl_rows(out)) >= 3)
        run.proc.send_signal(signal.SIGHUP)
        rc = run.proc.wait(timeout=5)
    finally:
        run.stop()
    run._reader.join(2)
    assert rc == 0, run.lines
    assert any(line.startswith("stopped: ") for line in run.lines) and out.read_text().endswith("\n")
    messages = drain(sock)
    assert messages[-1].startswith("STOPPING=1")


def test_live_page_line_carries_the_token_on_a_terminal(bundle_dir, long_video):
    import pty

    primary, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--model", str(bundle_dir), "--source",
                             str(long_video), "--http", "127.0.0.1:0", "--token", "t0k/en", "--max-frames", "2"],
                            stdout=subprocess.DEVNULL, stderr=terminal, env=edge_env(), cwd=ROOT)
    os.close(terminal)
    chunks = []
    while True:
        try:
            data = os.read(primary, 4096)
        except OSError:  # EIO: the process has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    assert proc.wait(60) == 0
    lines = b"".join(chunks).decode().splitlines()
    page = [line for line in lines if line.startswith("live page: ")]
    assert len(page) == 1 and page[0].endswith("/?token=t0k%2Fen"), lines  # ready to open, as it is


def test_notify_ready_watchdog_status_on_a_real_socket(bundle_dir, long_video, notify_socket):
    sock, path = notify_socket
    done = edge_run("--model", str(bundle_dir), "--source", str(long_video), "--max-frames", "12",
                    env=edge_env(NOTIFY_SOCKET=path, WATCHDOG_USEC="100000"))
    assert done.returncode == 0, done.stderr
    messages = drain(sock)
    fields = [f for m in messages for f in m.split("\n")]
    assert messages[0].split("\n")[0] == "READY=1" and fields.count("READY=1") == 1
    assert fields.count("WATCHDOG=1") >= 3  # 12 frames at 30 fps, one ping per 50 ms at most
    assert any(f.startswith("STATUS=running: ") and " fps" in f for f in fields)
    assert messages[-1].startswith("STOPPING=1")


def test_lost_stream_reconnects_then_exits_non_zero(bundle_dir, tmp_path, notify_socket):
    sock, path = notify_socket
    camera = MJPEGCamera([colour_image("red"), colour_image("green")], fps=30)
    cfg = write(tmp_path / "edge.toml", "[reconnect]\ndelay = 0.05\nmax_delay = 0.1\nattempts = 2\n")
    out = tmp_path / "stream.jsonl"
    run = Running("--model", str(bundle_dir), "--source", camera.url, "--config", str(cfg), "--jsonl", str(out),
                  env=edge_env(NOTIFY_SOCKET=path))
    try:
        run.wait_for(lambda: len(jsonl_rows(out)) >= 3)
        camera.stop()  # unplugged
        rc = run.proc.wait(timeout=30)
    finally:
        run.stop()
        camera.stop()
    run._reader.join(2)
    assert rc == 1, run.lines
    assert sum("reconnecting" in line for line in run.lines) == 2
    assert run.lines[-1].startswith("error: ") and "gave up after 2 reconnect attempts" in run.lines[-1]
    assert jsonl_rows(out)[-1]["status"] in ("ok", "uncertain")  # every line written is whole
    statuses = [f for m in drain(sock) for f in m.split("\n") if f.startswith("STATUS=")]
    assert sum("reconnecting in" in f for f in statuses) == 2, statuses  # shown by `systemctl status`


def test_demo_sample_video_shows_the_gate_and_smoothing(bundle_dir, tmp_path):
    sample_data = pytest.importorskip("train.data.sample_data")
    data = tmp_path / "sample"
    sample_data.make_sample_dataset(data, n_lesions=21, size=(240, 180), seed=0)
    video = pytest.importorskip("train.data.sample_video").make_sample_video(tmp_path / "sample.mp4", data, seconds=8, fps=15, size=(320, 240))
    out = tmp_path / "demo.jsonl"
    done = edge_run("--model", str(bundle_dir), "--source", str(video), "--jsonl", str(out), "--no-realtime",
                    "--http", "127.0.0.1:0", "--max-frames", "500")
    assert done.returncode == 0, done.stderr
    assert "live page: http://127.0.0.1:" in done.stderr
    rows = jsonl_rows(out)
    assert len(rows) == 120 and all(set(r) == JSONL_KEYS for r in rows)
    reasons = {reason for r in rows for reason in r["reasons"]}
    assert {"too dark", "too bright"} <= reasons, reasons
    statuses = [r["status"] for r in rows]
    assert "uncertain" in statuses and all(r["label"] is None for r in rows if r["status"] != "ok")


def test_token_from_a_file(bundle_dir, long_video, tmp_path):
    from edge.run.config import read_token_file

    secret = tmp_path / "token"
    secret.write_text("f1le-t0ken\n")
    run = Running("--model", str(bundle_dir), "--source", str(long_video), "--http", "127.0.0.1:0",
                  "--token-file", str(secret), "--max-frames", "40")
    try:
        run.wait_for(lambda: any(line.startswith("live page: ") for line in run.lines))
        page = next(line for line in run.lines if line.startswith("live page: ")).split()[2]
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(page + "api/stats", timeout=5)
        assert json.load(urllib.request.urlopen(page + "api/stats?token=f1le-t0ken", timeout=5))["frames"]
    finally:
        run.stop()
    for content, needle in (("", "is empty"), ("x" * 5000, "bytes; a token file holds one short line")):
        secret.write_text(content)
        with pytest.raises(ConfigError, match=needle):
            read_token_file(str(secret))
    with pytest.raises(ConfigError, match="is not a regular file"):
        read_token_file(str(tmp_path))
    done = edge_run("--model", str(bundle_dir), "--source", str(long_video), "--http", "127.0.0.1:0",
                    "--token-file", str(tmp_path / "missing"))
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1].startswith("error: token_file: cannot read")


def test_a_run_in_which_every_frame_failed_exits_1(bundle_dir, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole JPEG")
    out = tmp_path / "out.jsonl"
    done = edge_run("--model", str(bundle_dir), "--source", str(folder), "--jsonl", str(out))
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: every one of the 3 frames failed (first: ") and "0.jpg" in last, last
    assert "end of source: 3 frames processed (0 labelled, 0 uncertain, 3 errors)" in done.stderr
    assert len(jsonl_rows(out)) == 3 and "Traceback" not in done.stderr  # the results are still all there
