"""A long `edge run` with faults injected from the outside, to show memory stays flat and nothing
finished is lost.

    .venv/bin/python fuzz/soak.py [--frames 10000] [--fps 250] [--model BUNDLE] [--json OUT]

The daemon (the real CLI, in its own process) reads an IP camera's MJPEG stream served here, writes
JSON lines, serves the live page and publishes to a real mosquitto broker. While it runs:

- every 40th frame the camera sends is a damaged JPEG (bad frames);
- at 20% of the frames the camera is unplugged for 2 s, then plugged in again (source loss);
- at 40% the results file's disk is "full" for 2 s (``prlimit RLIMIT_FSIZE`` on the daemon: its
  writes fail with EFBIG as they would with ENOSPC), then it is not;
- at 60% the broker is stopped for 3 s, then started again;
- all along, viewers open the MJPEG stream and the snapshot and vanish mid-answer.

Measured: the daemon's RSS every second (flat: the growth from 25% of the frames to the end);
afterwards every line of the results file must be valid JSON, in frame order, with none cut short,
and the daemon must exit 0 with its summary. Prints a table; exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import getpass
import http.server
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Camera:
    """An MJPEG camera that can be unplugged and plugged in again on the same port."""

    def __init__(self, fps: float) -> None:
        import cv2

        rng = np.random.default_rng(0)
        base = rng.integers(60, 200, (240, 320, 3), dtype=np.uint8)
        self.jpegs = [cv2.imencode(".jpg", np.roll(base, 7 * i, axis=1))[1].tobytes() for i in range(30)]
        self.fps, self.sent, self.bad = fps, 0, 0
        self.port = _free_port()
        self.plugged = threading.Event()
        self.plug()

    def plug(self) -> None:
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                next_at = time.monotonic()
                while camera.plugged.is_set():
                    jpg = camera.jpegs[camera.sent % len(camera.jpegs)]
                    if camera.sent % 40 == 39:  # a damaged frame: cut short, its end marker gone
                        jpg, camera.bad = jpg[: len(jpg) // 3], camera.bad + 1
                    try:
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpg) + jpg + b"\r\n")
                    except OSError:
                        return
                    camera.sent += 1
                    next_at += 1 / camera.fps
                    time.sleep(max(0.0, next_at - time.monotonic()))

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.plugged.set()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def unplug(self) -> None:
        self.plugged.clear()
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"


class Broker:
    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, _free_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
                             "log_dest none\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float | None:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _viewer(port: int, token: str, stop: threading.Event, counts: dict) -> None:
    """Open the stream or the snapshot, read a little, vanish (a reset, not a goodbye)."""
    i = 0
    while not stop.wait(0.2):
        path = "/stream.mjpg" if i % 2 else "/snapshot.jpg?overlay=1"
        i += 1
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=3)
            s.sendall(f"GET {path}{'&' if '?' in path else '?'}token={token} HTTP/1.1\r\n\r\n".encode())
            s.recv(4096)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
            counts["viewers"] += 1
        except OSError:
            counts["viewer_errors"] += 1


def make_bundle(work: Path) -> Path:
    sys.path.insert(0, str(HERE))
    from adversarial import make_bundle as build

    return build(work)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--fps", type=float, default=250.0, help="the camera's frame rate")
    ap.add_argument("--model", type=Path, help="a bundle [default: a small one built from fuzz/corpus]")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edge-soak-"))
    bundle = args.model or make_bundle(work)
    camera = Camera(args.fps)
    broker = Broker(work)
    broker.start()
    results, port, token = work / "results.jsonl", _free_port(), "soak-token"
    log = open(work / "daemon.log", "wb")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "STATE_DIRECTORY": str(work)}
    proc = subprocess.Popen([str(BIN / "edge"), "run", "--model", str(bundle), "--source", camera.url,
                             "--jsonl", str(results), "--http", f"127.0.0.1:{port}", "--token", token,
                             "--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--max-frames", str(args.frames),
                             "--quiet", "--threads", "1"], stdout=log, stderr=subprocess.STDOUT, env=env)
    stop, counts = threading.Event(), {"viewers": 0, "viewer_errors": 0}
    viewers = [threading.Thread(target=_viewer, args=(port, token, stop, counts), daemon=True) for _ in range(2)]
    for v in viewers:
        v.start()
    rss: list[tuple[int, float]] = []
    faults: list[str] = []
    done = {"unplug": False, "disk": False, "broker": False}
    t0 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t0 < 3600:
        time.sleep(0.5)
        lines = _count_lines(results)
        mb = _rss_mb(proc.pid)
        if mb is not None:
            rss.append((lines, mb))
        if not done["unplug"] and lines >= 0.2 * args.frames:
            done["unplug"] = True
            camera.unplug()
            time.sleep(2)
            camera.plug()
            faults.append(f"camera unplugged for 2 s at {lines} results")
        elif not done["disk"] and lines >= 0.4 * args.frames:
            done["disk"] = True
            size = results.stat().st_size
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
            time.sleep(2)
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            faults.append(f"results disk full for 2 s at {lines} results")
        elif not done["broker"] and lines >= 0.6 * args.frames:
            done["broker"] = True
            broker.stop()
            time.sleep(3)
            broker.start()
            faults.append(f"broker stopped for 3 s at {lines} results")
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    rc = proc.wait(60)
    stop.set()
    camera.unplug()
    broker.stop()
    log.close()
    elapsed = time.monotonic() - t0
    report = _check(results, rc, (work / "daemon.log").read_text(errors="replace"), rss, args.frames)
    report.update(faults=faults, camera_frames=camera.sent, damaged_frames_sent=camera.bad, seconds=round(elapsed, 1),
                  viewers=counts["viewers"])
    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if report["ok"]:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept for a look: {work}")
    return 0 if report["ok"] else 1


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


def _check(results: Path, rc: int, log: str, rss: list[tuple[int, float]], frames: int) -> dict:
    data = results.read_bytes() if results.exists() else b""
    rows, damaged = [], 0
    for line in data.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            damaged += 1
    in_order = all(a["frame"] < b["frame"] for a, b in zip(rows, rows[1:]))
    errors = sum(r["status"] == "error" for r in rows)
    warm = [mb for n, mb in rss if n >= 0.25 * frames] or [mb for _, mb in rss]
    growth = (max(warm[-5:]) - min(warm[:5])) if warm else None
    summary = [x for x in log.splitlines() if "frames processed" in x]
    processed = int(summary[-1].split(": ", 1)[1].split()[0]) if summary else -1
    checks = {
        "a line for every frame processed": len(rows) == processed,
        "exit 0 with a summary": rc == 0 and bool(summary),
        "no traceback in the log": "Traceback" not in log,
        "every line valid JSON": damaged == 0 and (not data or data.endswith(b"\n")),
        "lines in frame order": in_order,
        "RSS flat (under 10 MB growth after 25%)": growth is not None and growth < 10,
    }
    return {"ok": all(checks.values()), "checks": checks, "exit": rc, "lines": len(rows), "damaged_lines": damaged,
            "error_results": errors, "summary": summary[-1] if summary else None,
            "rss_mb": {"start": round(rss[0][1], 1) if rss else None, "at_25%": round(warm[0], 1) if warm else None,
                       "end": round(rss[-1][1], 1) if rss else None, "max": round(max(m for _, m in rss), 1) if rss else None},
            "rss_growth_after_25%_mb": round(growth, 1) if growth is not None else None,
            "log_lines": len(log.splitlines())}


def _print(r: dict) -> None:
    print(f"soak: {r['lines']} results in {r['seconds']} s ({r['camera_frames']} frames sent, "
          f"{r['damaged_frames_sent']} of them damaged; {r['viewers']} viewers came and went)")
    for f in r["faults"]:
        print(f"  fault: {f}")
    print(f"  daemon: {r['summary']}")
    print(f"  RSS MB: start {r['rss_mb']['start']}, at 25% {r['rss_mb']['at_25%']}, end {r['rss_mb']['end']}, "
          f"max {r['rss_mb']['max']} (growth after 25%: {r['rss_growth_after_25%_mb']} MB)")
    print(f"  results: {r['lines']} lines, {r['damaged_lines']} damaged, {r['error_results']} error results; "
          f"log {r['log_lines']} lines")
    for name, ok in r["checks"].items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")


if __name__ == "__main__":
    sys.exit(main())
