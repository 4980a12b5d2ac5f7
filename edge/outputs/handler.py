"""The HTTP side of the live view: the request threads and the routes of :class:`LiveServer`.

:class:`HTTPServer` is the standard library's threading server with a bounded :meth:`~HTTPServer.drain`
at close; :class:`Handler` answers the page, the MJPEG stream, JSON, health and metrics, asking the
:class:`~edge.outputs.server.LiveServer` it serves for every piece of state.
"""

from __future__ import annotations

import json
import logging
import math
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edge import DISCLAIMER
from edge.outputs import captures_api
from edge.outputs.httplog import RequestErrors

log = logging.getLogger("edge.outputs.server")  # one logger for the live view

BOUNDARY = "frame"
# Each image is followed at once by the next part's boundary and headers: browsers show an image
# only when the next part begins, so this shows it now rather than one frame late.
_PART_HEAD = f"\r\n--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n".encode()
_TOKEN_RE = re.compile(r"token=[^&\s]*")


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # :meth:`drain` waits for the request threads, with a bound

    def __init__(self, host: str, port: int, live: Any) -> None:  # the LiveServer (which imports this module)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.live = live
        self.errors = RequestErrors()
        self._active: dict[threading.Thread, socket.socket] = {}  # request thread -> its connection
        self._active_lock = threading.Lock()
        super().__init__((host, port), Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        me = threading.current_thread()
        with self._active_lock:
            self._active[me] = request
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active.pop(me, None)

    def drain(self, timeout: float) -> None:
        """Let requests in flight finish, then cut the connections still open (idle keep-alive or
        preconnected sockets, slow clients) and wait for their threads: a thread still writing to
        the log while the interpreter exits would abort the process."""
        deadline = time.monotonic() + timeout
        for cut in (False, True):
            with self._active_lock:
                active = list(self._active.items())
            for thread, sock in active:
                if cut:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass  # already closed by the client
            for thread, _ in active:
                thread.join(max(0.0, (deadline - time.monotonic()) / (1 if cut else 2)))
        with self._active_lock:
            left = len(self._active)
        if left:
            log.debug("%d HTTP request thread(s) still running at close", left)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.live.closing.is_set():  # connections cut by close(): expected, not worth a line
            log.debug("HTTP request ended by close: %s", sys.exc_info()[1])
            return
        self.errors.report(client_address[0], sys.exc_info()[1])  # one line, rate-limited


def jsonable(obj: Any) -> Any:
    """Plain JSON: numpy scalars to Python, NaN and infinities to null."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj if isinstance(obj, (str, int, float, bool, type(None))) else str(obj)


class Handler(BaseHTTPRequestHandler):
    server_version = "skin-edge"
    sys_version = ""
    timeout = 15  # seconds a silent client may hold a thread
    server: HTTPServer

    def do_GET(self) -> None:
        live = self.server.live
        live.count("requests")
        url = urlsplit(self.path)
        route = url.path
        if route == "/healthz":
            ok, body = live.health()
            return self._json(200 if ok else 503, body)
        if not self._authorized(url.query):
            return None
        if captures_api.handles(route):
            return captures_api.answer(self, self.command, route, url.query)
        handler = self._routes().get(route)
        if handler is not None:
            return handler()
        name = {"/": "index.html", "/review": "review.html"}.get(route, route[1:])
        page = live.static(name)
        if page is None:
            live.count("not_found")
            return self._json(404, {"error": f"no such path: {route}"})
        return self._send(200, page[0], page[1])

    do_HEAD = do_GET

    def _write(self) -> None:
        """POST and PATCH: only the archive's API takes them."""
        self.server.live.count("requests")
        url = urlsplit(self.path)
        if captures_api.handles(url.path):
            if self._authorized(url.query):
                captures_api.answer(self, self.command, url.path, url.query)
            return
        self._not_allowed()

    do_POST = do_PATCH = _write

    def _authorized(self, query: str) -> bool:
        """True when the token (if one is set) came with the request; otherwise answers 401."""
        live = self.server.live
        if live.authorized(parse_qs(query), self.headers.get("Authorization")):
            return True
        live.count("unauthorized")
        self.close_connection = True  # an unread request body must not be taken for the next request
        self._json(401, {"error": "access token required",
                         "hint": "add ?token=TOKEN to the address or send Authorization: Bearer TOKEN"},
                   [("WWW-Authenticate", 'Bearer realm="skin-edge"')])
        return False

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._json(405, {"error": f"method {self.command} not allowed"}, [("Allow", "GET, HEAD")])

    do_PUT = do_DELETE = do_OPTIONS = _not_allowed

    def _routes(self) -> dict[str, Callable[[], None]]:
        return {"/api/latest": self._latest, "/api/stats": self._stats, "/metrics": self._metrics,
                "/snapshot.jpg": self._snapshot, "/stream.mjpg": self._stream, "/api/model": self._model}

    def _model(self) -> None:
        live = self.server.live
        self._json(200, live.model_info or {"name": None, "classes": [], "archive": live.desk is not None})

    def _latest(self) -> None:
        result = self.server.live.latest()
        if result is None:
            return self._json(503, {"error": "no result yet", "disclaimer": DISCLAIMER})
        self._json(200, result.as_dict())

    def _stats(self) -> None:
        self._json(200, self.server.live.stats())

    def _metrics(self) -> None:
        self._send(200, generate_latest(self.server.live.metrics.registry), CONTENT_TYPE_LATEST)

    def _overlay(self) -> bool:
        """?overlay=1: the picture with the activation map over it."""
        flag = (parse_qs(urlsplit(self.path).query).get("overlay") or ["0"])[0].lower()
        return flag in ("1", "true", "yes")

    def _snapshot(self) -> None:
        got = self.server.live.jpeg(self._overlay())
        if got is None:
            return self._json(503, {"error": "no frame yet"})
        self._send(200, got[1], "image/jpeg")

    def _stream(self) -> None:
        live = self.server.live
        if self.command == "HEAD":
            return self._send(200, b"", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        if not live.add_stream(self.connection):
            return self._json(503, {"error": "too many viewers"}, [("Retry-After", "5")])
        try:
            self.send_response(200)
            self._common_headers(f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(_PART_HEAD[2:])
            self._stream_parts(live, self._overlay())
        except OSError as e:  # the viewer went away or the server is closing
            log.debug("stream viewer left: %s", e)
        finally:
            live.remove_stream(self.connection)
            self.close_connection = True

    def _stream_parts(self, live: Any, overlay: bool) -> None:  # the LiveServer (which imports this module)
        seen = -1
        while not live.closing.is_set():
            if live.wait_new(seen, timeout=1.0) == seen:
                continue
            got = live.jpeg(overlay)
            if got is None or live.closing.is_set():
                continue
            seen, jpeg = got
            self.wfile.write(jpeg + _PART_HEAD)
            self.wfile.flush()
            live.closing.wait(live.min_interval)

    def _common_headers(self, content_type: str) -> None:
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'")

    def _send(self, code: int, body: bytes, content_type: str, extra: list[tuple[str, str]] = ()) -> None:
        self.send_response(code)
        self._common_headers(content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj: Any, extra: list[tuple[str, str]] = ()) -> None:
        body = json.dumps(jsonable(obj), separators=(",", ":")).encode()
        self._send(code, body, "application/json", extra)

    def parse_request(self) -> bool:
        """The standard library's parsing, minus HTTP/0.9 (a bare "GET /path" line, whose answer has no
        status line or headers, so no Content-Type or security headers either; found by fuzz/run.py)."""
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(505, "HTTP/0.9 is not supported: send HTTP/1.0 or HTTP/1.1")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's errors (a malformed request line, a header too long) as this server's
        JSON, always with a status line: it would answer a request it could not parse with a bare HTML
        page (HTTP/0.9 style, found by fuzz/run.py http)."""
        from http import HTTPStatus  # noqa: PLC0415

        self.close_connection = True
        if self.request_version == "HTTP/0.9" or not self.request_version:
            self.request_version = "HTTP/1.0"
        phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "error"
        self._json(code, {"error": message or phrase})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s %s", self.address_string(), _TOKEN_RE.sub("token=***", format % args))
