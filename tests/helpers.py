"""Helpers several test files share: media and a camera stream, a result feeder, waiting, systemd's
notify socket, and a quantized bundle built once per session (the fixtures stay in the test files).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from conftest import INPUT_HW, LABELS, colour_image

from edge.results import OK, FrameResult, StageTimes

IMAGES_PER_CLASS = 14
CALIBRATION_SIZE = 24
_BUILT: dict[str, Path] = {}


# ---------------------------------------------------------------- media and sources


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """RGB frames -> an MP4 file (mp4v), as a camera recording would be."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


class MJPEGCamera:
    """An IP camera's HTTP stream (multipart JPEG, as most of them serve), until stop() unplugs it."""

    def __init__(self, frames: list[np.ndarray], fps: float = 30.0) -> None:
        jpegs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in frames]
        unplugged = self.unplugged = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                while not unplugged.is_set():
                    jpg = jpegs[i % len(jpegs)]
                    try:
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpg) + jpg + b"\r\n")
                    except OSError:
                        return
                    i += 1
                    time.sleep(1 / fps)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.unplugged.set()
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- results and waiting


class Feeder:
    """Publishes real classifications of solid-colour frames from its own thread, like the pipeline."""

    def __init__(self, sink, model, colour: str = "red", hz: float = 40.0) -> None:
        self.sink, self.model, self.colour, self.period = sink, model, colour, 1.0 / hz
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Feeder":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        started = time.perf_counter()
        while not self._stop.wait(self.period):
            rgb = colour_image(self.colour, hw=(120, 160), seed=self.count % 7)
            t0 = time.perf_counter()
            c = self.model.classify(rgb, k=3)
            self.count += 1
            fps = self.count / max(time.perf_counter() - started, 1e-6)
            times = StageTimes(preprocess_ms=c.preprocess_ms, invoke_ms=c.invoke_ms, postprocess_ms=c.postprocess_ms)
            result = FrameResult(timestamp=time.time(), frame_index=self.count, status=OK, top=c.top,
                                 raw_top=c.top, times=times, latency_ms=(time.perf_counter() - t0) * 1000,
                                 fps=fps, quality={"brightness": float(rgb.mean())})
            self.sink.publish(result, rgb)


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free right now (all held open together while they are picked)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def wait_until(predicate, timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it is true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# ---------------------------------------------------------------- systemd notify


@contextlib.contextmanager
def notify_listener(path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound at ``path``, standing in for systemd's NOTIFY_SOCKET: (socket, path)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    try:
        yield sock, str(path)
    finally:
        sock.close()


def drain(sock) -> list[str]:
    """The messages that arrive until the socket has been quiet for 0.2 s."""
    out = []
    sock.settimeout(0.2)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except socket.timeout:
        return out


# ---------------------------------------------------------------- a quantized bundle (`train quantize`)


def write_dataset(root: Path) -> Path:
    """Class folders of real JPEGs, one colour per class."""
    for label, name in enumerate(LABELS):
        (root / name).mkdir(parents=True)
        for i in range(IMAGES_PER_CLASS):
            rgb = colour_image(name, hw=(90 + 2 * i, 120), seed=1000 + 100 * label + i)
            cv2.imwrite(str(root / name / f"{name}_{i:02d}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return root


def write_run(run: Path, model, data: Path) -> Path:
    """A run folder as `train fit` writes it (the files `train quantize` reads)."""
    from edge.data.datasets import load_dataset, split_by_lesion, write_split_csv

    run.mkdir(parents=True)
    model.save(run / "model.keras")
    (run / "labels.txt").write_text("".join(f"{x}\n" for x in LABELS), encoding="utf-8")
    splits = split_by_lesion(load_dataset(data).records, val_fraction=0.15, test_fraction=0.3, seed=0)
    write_split_csv(run / "split.csv", splits)
    info = {"data": str(data.resolve()), "layout": "folders", "image_size": list(INPUT_HW), "alpha": None,
            "weights": "none", "seed": 0, "labels": list(LABELS), "created": "2024-01-01T00:00:00+00:00",
            "versions": {}}
    (run / "run.json").write_text(json.dumps(info), encoding="utf-8")
    return run


def build_quantized(keras_model, tmp_path_factory) -> dict[str, Path]:
    """Once per test session: dataset, run folder, calibration folder and a quantized bundle."""
    if not _BUILT:
        from train.export.quantize import quantize

        base = tmp_path_factory.mktemp("quantize")
        data = write_dataset(base / "data")
        run = write_run(base / "run", keras_model, data)
        cal = base / "calibration"
        bundle = base / "models" / "tiny"
        result = quantize(run, bundle, calibration_size=CALIBRATION_SIZE, calibration_dir=cal)
        _BUILT.update(base=base, data=data, run=run, calibration=cal, bundle=bundle)
        _BUILT["result"] = result  # type: ignore[assignment]
    return dict(_BUILT)


def one_line_error(result) -> str:
    """The one ``error:`` line of a command that failed with exit status 1, without a traceback."""
    assert result.exit_code == 1, result.output
    lines = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]

