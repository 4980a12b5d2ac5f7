"""The live view over HTTP: a page, an MJPEG stream, JSON, health and Prometheus metrics.

A :class:`LiveServer` is a result sink. ``publish`` only stores the newest result and frame and
updates the metrics; JPEG encoding happens in the threads of connected viewers, at most
``max_stream_fps`` times a second, so the inference thread never waits for the network.
Only the standard library serves HTTP (the routes are in :mod:`edge.outputs.handler`). The frame
is drawn by :mod:`edge.outputs.annotate`; /metrics comes from the private registry of
:mod:`edge.outputs.telemetry`.
"""

from __future__ import annotations

import errno
import hmac
import html
import logging
import socket
import threading
import time
from importlib import resources
from typing import Any, Callable
from urllib.parse import quote

import cv2
import numpy as np

from edge import DISCLAIMER
from edge.errors import ConfigError
from edge.model.explain import overlay_frame
from edge.outputs.annotate import annotate, drawable
from edge.outputs.handler import HTTPServer
from edge.outputs.telemetry import ServerMetrics
from edge.results import OK, UNCERTAIN, FrameResult, RunStats

log = logging.getLogger(__name__)

WILDCARD_HOSTS = ("0.0.0.0", "::", "")


# ---------------------------------------------------------------- server

class LiveServer:
    """HTTP sink: call :meth:`start`, then :meth:`publish` per result, then :meth:`close`."""

    def __init__(self, host: str, port: int, *, token: str | None = None,
                 stats: Callable[[], RunStats] | None = None, stale_after_s: float = 5.0,
                 max_stream_fps: float = 12.0, max_stream_clients: int = 8, jpeg_quality: int = 80,
                 model_info: dict[str, Any] | None = None, desk: Any = None, aspect: float | None = None) -> None:
        self.host, self.port, self.token = host, port, token or None
        self.model_info = model_info  # GET /api/model: what the page says runs
        self.desk = desk  # an edge.archive CaptureDesk: /api/captures and /review; None without --archive
        self.aspect = aspect  # the model's input width / height: the crop its activation maps cover
        self.stale_after_s, self.jpeg_quality = stale_after_s, jpeg_quality
        self.max_stream_clients = max_stream_clients
        self._min_interval = 1.0 / max_stream_fps
        self._stats_fn = stats
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._result: FrameResult | None = None
        self._frame: np.ndarray | None = None
        self._frame_bgr = False  # _frame is in OpenCV's order (converted only when drawn)
        self._seq = 0
        self._last_good: float | None = None
        self._encode_lock = threading.Lock()
        self._jpeg: dict[bool, tuple[int, float, bytes]] = {}  # overlay? -> (seq, monotonic time, bytes)
        self._streams: set[socket.socket] = set()
        self.counts = {"requests": 0, "unauthorized": 0, "not_found": 0, "jpeg_encoded": 0}
        self._count_lock = threading.Lock()
        self._started = time.monotonic()
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._static = _load_static(self.token)
        self.metrics = ServerMetrics(self._run_stats, lambda: self._seq)

    # -- lifecycle
    def start(self) -> "LiveServer":
        """Bind and serve in a background thread; a port in use raises ConfigError."""
        try:
            self._httpd = HTTPServer(self.host, self.port, self)
        except OSError as e:
            raise _bind_error(self.host, self.port, e) from None
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="edge-http", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        """The server's address; for a wildcard bind, this machine's address on the local network."""
        host = _lan_address() if self.host in WILDCARD_HOSTS else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    @property
    def page_url(self) -> str:
        """The page address a person opens, with the token when one is set."""
        return self.url + (f"?token={quote(self.token, safe='')}" if self.token else "")

    def close(self) -> None:
        """Stop serving and end the MJPEG streams; returns within about a second."""
        if self._closing.is_set():
            return
        self._closing.set()
        with self._cond:
            self._cond.notify_all()
            streams = list(self._streams)
        for sock in streams:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                log.debug("stream socket already closed")
        if self._httpd is not None:
            self._httpd.shutdown()  # no new connections
            self._httpd.drain(1.5)  # no request thread left running when the process exits
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    # -- the sink
    takes_bgr = True  # the pipeline hands decoded frames over as they are: they are drawn a few times a second

    def publish(self, result: FrameResult, frame: np.ndarray | None, *, bgr: bool = False) -> None:
        """Keep the newest result (and frame: RGB, or OpenCV's order with ``bgr``); never blocks on
        viewers or encoding."""
        with self._cond:
            self._result = result
            if drawable(frame):
                self._frame, self._frame_bgr = frame, bgr and frame.ndim == 3 and frame.shape[2] == 3
            self._seq += 1
            if result.status in (OK, UNCERTAIN):
                self._last_good = time.monotonic()
            self._cond.notify_all()
        self.metrics.observe(result)

    # -- what the handler serves
    def latest(self) -> FrameResult | None:
        return self._result

    def health(self) -> tuple[bool, dict[str, Any]]:
        last = self._last_good
        age = None if last is None else time.monotonic() - last
        ok = age is not None and age <= self.stale_after_s
        state = "ok" if ok else ("starting" if age is None else "stale")
        return ok, {"status": state, "age_s": None if age is None else round(age, 3),
                    "stale_after_s": self.stale_after_s}

    def stats(self) -> dict[str, Any]:
        with self._cond:
            clients = len(self._streams)
        age = None if self._result is None else round(time.time() - self._result.timestamp, 3)
        server = {"uptime_s": round(time.monotonic() - self._started, 3), "results_published": self._seq,
                  "stream_clients": clients, "last_result_age_s": age, **self.counts}
        run, error = self._read_run_stats()
        fields = {"stats_error": error} if error is not None else run.as_dict() if run is not None else {}
        return {**fields, "server": server, "disclaimer": DISCLAIMER}  # it counts labels

    def _run_stats(self) -> RunStats | None:
        """The run's snapshot for /metrics; None when there is none (or it could not be had)."""
        return self._read_run_stats()[0]

    def _read_run_stats(self) -> tuple[RunStats | None, str | None]:
        """(the run's snapshot, why it could not be had); the pipeline's callable must not break the server."""
        if self._stats_fn is None:
            return None, None
        try:
            return self._stats_fn(), None
        except Exception as e:  # noqa: BLE001 - reported in /api/stats and the log, never raised
            log.warning("stats callable failed: %s", e)
            return None, str(e)

    def wait_new(self, seen: int, timeout: float) -> int:
        """Block until a result newer than ``seen`` (or close, or timeout); the current seq."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq != seen or self._closing.is_set(), timeout)
            return self._seq

    def jpeg(self, overlay: bool = False) -> tuple[int, bytes] | None:
        """(seq, annotated JPEG) of the newest frame, re-encoded at most max_stream_fps times a second;
        ``overlay``: with the activation map of the frame's top class over the part the model saw
        (the plain frame when the result has no map)."""
        with self._encode_lock:
            with self._cond:
                seq, result, frame, bgr = self._seq, self._result, self._frame, self._frame_bgr
            cached = self._jpeg.get(overlay)
            if cached and (cached[0] == seq or time.monotonic() - cached[1] < self._min_interval):
                return cached[0], cached[2]
            if frame is None:
                return None
            try:
                if overlay and self._mappable(result, frame):
                    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if bgr else frame
                    frame, bgr = overlay_frame(rgb, result.cam, self.aspect), False  # type: ignore[union-attr,arg-type]
                image = annotate(frame, result, bgr=bgr)
                ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            except cv2.error as e:
                log.warning("cannot draw frame %s: %s", getattr(frame, "shape", "?"), e)
                return (cached[0], cached[2]) if cached else None
            if not ok:
                return (cached[0], cached[2]) if cached else None
            self._jpeg[overlay] = (seq, time.monotonic(), buf.tobytes())
            self.count("jpeg_encoded")
            return seq, self._jpeg[overlay][2]

    def _mappable(self, result: FrameResult | None, frame: np.ndarray) -> bool:
        """The result carries a map of this frame and the frame is RGB (not grey or RGBA)."""
        return (result is not None and result.cam is not None and self.aspect is not None
                and frame.ndim == 3 and frame.shape[2] == 3)

    def count(self, name: str) -> None:
        with self._count_lock:
            self.counts[name] += 1

    def add_stream(self, sock: socket.socket) -> bool:
        with self._cond:
            if len(self._streams) >= self.max_stream_clients or self._closing.is_set():
                return False
            self._streams.add(sock)
            self.metrics.clients.set(len(self._streams))
            return True

    def remove_stream(self, sock: socket.socket) -> None:
        with self._cond:
            self._streams.discard(sock)
            self.metrics.clients.set(len(self._streams))

    def authorized(self, query: dict[str, list[str]], header: str | None) -> bool:
        if self.token is None:
            return True
        given = (query.get("token") or [""])[0]
        if not given and header and header.lower().startswith("bearer "):
            given = header[7:].strip()
        return hmac.compare_digest(given.encode(), self.token.encode())

    def static(self, name: str) -> tuple[bytes, str] | None:
        return self._static.get(name)

    @property
    def closing(self) -> threading.Event:
        return self._closing

    @property
    def min_interval(self) -> float:
        return self._min_interval


def _lan_address() -> str:
    """The address other machines reach this one at (the interface of the default route), no packet sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the route
            return probe.getsockname()[0]
        except OSError:
            return socket.gethostname()


def _load_static(token: str | None) -> dict[str, tuple[bytes, str]]:
    """The files of edge/outputs/web, by name; the pages get the disclaimer and the token filled in."""
    types = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
             ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
    files: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files("edge.outputs").joinpath("web").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in types:
            files[entry.name] = (entry.read_bytes(), types[suffix])
    fill = {"__DISCLAIMER__": html.escape(DISCLAIMER), "__TOKEN__": html.escape(token or ""),
            "__TOKEN_QUERY__": html.escape(f"?token={quote(token, safe='')}" if token else "")}
    for name, (page, ctype) in list(files.items()):
        if name.endswith(".html"):
            for key, value in fill.items():
                page = page.replace(key.encode(), value.encode())
            files[name] = (page, ctype)
    return files


def _bind_error(host: str, port: int, e: OSError) -> ConfigError:
    if e.errno == errno.EADDRINUSE:
        return ConfigError(f"port {port} on {host} is in use; choose another with --http HOST:PORT")
    if e.errno == errno.EACCES:
        return ConfigError(f"no permission to listen on port {port} on {host}; use a port above 1023")
    reason = e.strerror or str(e)
    return ConfigError(f"cannot listen on {host}:{port}: {reason}; "
                       "give an address of this machine with --http HOST:PORT")
