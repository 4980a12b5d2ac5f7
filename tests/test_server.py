"""The live HTTP server, for real: a bound socket, real model results, real HTTP clients."""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
from conftest import colour_image
from helpers import Feeder, wait_until
from prometheus_client.parser import text_string_to_metric_families

from edge import DISCLAIMER
from edge.errors import ConfigError
from edge.model.load import load_model
from edge.outputs.annotate import headline
from edge.outputs.server import LiveServer
from edge.results import (
    ERROR,
    OK,
    UNCERTAIN,
    FrameCounts,
    FrameResult,
    RunStats,
    StageTimes,
)


class GrowingStats:
    """A run's stats snapshot (edge.results.RunStats) whose counters grow with every call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> RunStats:
        self.calls += 1
        frames = FrameCounts(captured=11 * self.calls, processed=10 * self.calls, dropped=self.calls)
        return RunStats(frames=frames, reconnects=0, fps=25.0, uptime_s=1.5)


@pytest.fixture(scope="module")
def model(bundle_dir):
    return load_model(bundle_dir, device="cpu", threads=1)


@pytest.fixture()
def server():
    live = LiveServer("127.0.0.1", 0, stats=GrowingStats(), stale_after_s=0.5).start()
    yield live
    live.close()


def get(live: LiveServer, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a GET, without raising on error statuses."""
    req = urllib.request.Request(live.url.rstrip("/") + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def result(status: str, reasons: tuple[str, ...] = (), index: int = 1) -> FrameResult:
    from edge.ops.postprocess import Prediction

    return FrameResult(timestamp=time.time(), frame_index=index, status=status, reasons=reasons,
                       top=(Prediction(2, "blue", 0.41),), times=StageTimes(invoke_ms=2.0), latency_ms=5.0, fps=9.0)


def test_before_the_first_result(server):
    code, headers, body = get(server, "/api/latest")
    assert code == 503 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"] == "no result yet"
    code, _, body = get(server, "/healthz")
    assert code == 503 and json.loads(body) == {"status": "starting", "age_s": None, "stale_after_s": 0.5}
    assert get(server, "/snapshot.jpg")[0] == 503
    code, headers, body = get(server, "/")
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert DISCLAIMER in body.decode() and "__DISCLAIMER__" not in body.decode()
    assert 'src="live.js"' in body.decode() and 'content=""' in body.decode()


def test_latest_stats_and_health_follow_the_results(server, model):
    with Feeder(server, model, "red"):
        wait_until(lambda: get(server, "/api/latest")[0] == 200)
        code, headers, body = get(server, "/api/latest")
        latest = json.loads(body)
        assert headers["Content-Type"] == "application/json"
        assert set(latest) == set(server.latest().as_dict())
        assert latest["status"] == "ok" and latest["label"] == "red" and latest["score"] > 0.5
        assert latest["disclaimer"] == DISCLAIMER and latest["times_ms"]["invoke"] >= 0

        code, _, body = get(server, "/api/stats")
        stats = json.loads(body)
        assert code == 200 and stats["frames"]["processed"] > 0 and stats["frames"]["dropped"] >= 1
        assert stats["server"]["results_published"] > 0 and stats["server"]["last_result_age_s"] < 5
        assert stats["disclaimer"] == DISCLAIMER  # it counts results per label

        code, headers, body = get(server, "/healthz")
        assert code == 200 and json.loads(body)["status"] == "ok" and json.loads(body)["age_s"] < 0.5
    wait_until(lambda: get(server, "/healthz")[0] == 503, timeout=3)
    health = json.loads(get(server, "/healthz")[2])
    assert health["status"] == "stale" and health["age_s"] > 0.5


def test_uncertain_counts_as_alive_and_shows_the_reason(server):
    frame = colour_image("blue")
    server.publish(result(UNCERTAIN, ("too blurry",)), frame)
    latest = json.loads(get(server, "/api/latest")[2])
    assert latest["status"] == "uncertain" and latest["label"] is None and latest["reasons"] == ["too blurry"]
    assert headline(server.latest()) == "uncertain: too blurry"
    assert get(server, "/healthz")[0] == 200
    time.sleep(0.6)
    server.publish(result(ERROR, ("corrupt frame",), index=2), None)  # errors do not make it healthy
    assert get(server, "/healthz")[0] == 503
    for bad in (np.zeros((0, 0, 3), np.uint8), np.zeros((30, 40, 2), np.uint8), np.zeros(5)):
        server.publish(result(ERROR, ("wrong frame shape",), index=3), bad)  # never replaces the last good frame
    code, _, jpeg = get(server, "/snapshot.jpg")
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert code == 200 and image.shape == (360, 480, 3)
    b, g, r = image[200, 240]
    assert b > 150 and r < 90  # the last good (blue) frame, with the error drawn on it


def test_metrics_parse_and_grow(server, model):
    def scrape() -> dict[str, list]:
        code, headers, body = get(server, "/metrics")
        assert code == 200 and headers["Content-Type"].startswith("text/plain")
        return {f.name: f.samples for f in text_string_to_metric_families(body.decode())}

    def value(samples, name, **labels):
        return next(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    with Feeder(server, model, "green") as feeder:
        wait_until(lambda: feeder.count >= 3)
        first = scrape()
        wait_until(lambda: feeder.count >= 8)
        second = scrape()
    for families in (first, second):
        assert {"edge_frames_captured", "edge_frames_processed", "edge_frames_dropped", "edge_frame_errors",
                "edge_source_reconnects", "edge_invoke_seconds", "edge_frame_latency_seconds", "edge_results",
                "edge_label_results", "edge_fps", "process_resident_memory_bytes"} <= set(families)
    assert value(second["edge_frames_processed"], "edge_frames_processed_total") > \
        value(first["edge_frames_processed"], "edge_frames_processed_total")
    assert value(second["edge_frames_dropped"], "edge_frames_dropped_total") > \
        value(first["edge_frames_dropped"], "edge_frames_dropped_total")
    assert value(second["edge_invoke_seconds"], "edge_invoke_seconds_count") > \
        value(first["edge_invoke_seconds"], "edge_invoke_seconds_count") >= 3
    assert value(second["edge_label_results"], "edge_label_results_total", label="green") >= 8
    assert value(second["edge_results"], "edge_results_total", status="ok") >= 8
    assert value(second["edge_results"], "edge_results_total", status="uncertain") == 0
    assert value(second["edge_fps"], "edge_fps") > 0


class MultipartReader:
    """Splits a multipart/x-mixed-replace body at its boundaries and decodes each JPEG part."""

    def __init__(self, resp: http.client.HTTPResponse) -> None:
        ctype = resp.getheader("Content-Type")
        assert resp.status == 200 and ctype.startswith("multipart/x-mixed-replace; boundary=")
        self.resp, self.fp, self.buf = resp, resp.fp, b""  # the response closes fp when collected
        self.delimiter = b"--" + ctype.split("boundary=")[1].encode() + b"\r\n"
        assert self._until(self.delimiter) == b""  # the body opens with the first boundary

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            chunk = self.fp.read1(65536)
            assert chunk, "the stream ended"
            self.buf += chunk
        head, self.buf = self.buf.split(marker, 1)
        return head

    def next_image(self) -> np.ndarray:
        headers = self._until(b"\r\n\r\n").decode()
        assert headers.lower() == "content-type: image/jpeg"
        data = self._until(b"\r\n" + self.delimiter)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")
        return image


def open_stream(live: LiveServer) -> tuple[http.client.HTTPConnection, MultipartReader]:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=5)
    conn.request("GET", "/stream.mjpg")
    return conn, MultipartReader(conn.getresponse())


def test_mjpeg_stream_yields_annotated_frames_and_close_ends_it(model):
    live = LiveServer("127.0.0.1", 0, max_stream_fps=20).start()
    streams = []
    try:
        with Feeder(live, model, "red", hz=80):
            t0 = time.monotonic()
            streams = [open_stream(live) for _ in range(3)]
            frames = [reader.next_image() for _, reader in streams for _ in range(4)]
            elapsed = time.monotonic() - t0
            b, g, r = frames[-1][frames[-1].shape[0] // 2, frames[-1].shape[1] // 2]
            assert r > 150 and g < 90 and b < 90  # the red camera frame, as BGR
            assert frames[0].shape[1] == 480  # small frames are enlarged so the text stays legible
            assert frames[-1][:20].mean() < frames[-1][200:260].mean()  # the dark band that carries the label
            assert json.loads(get(live, "/api/stats")[2])["server"]["stream_clients"] == 3
            # encoding is shared and capped: at most max_stream_fps images a second for all viewers together
            assert live.counts["jpeg_encoded"] <= 20 * elapsed + 3
        t0 = time.monotonic()
        live.close()
        assert time.monotonic() - t0 < 1.0
        for _, reader in streams:
            reader.fp.read()  # the stream ends instead of hanging until the 5 s socket timeout
        assert time.monotonic() - t0 < 2.0
    finally:
        for conn, _ in streams:
            conn.close()
        live.close()


def test_publish_does_not_encode_without_viewers(server, model):
    with Feeder(server, model, "yellow", hz=100) as feeder:
        wait_until(lambda: feeder.count >= 20)
    assert server.counts["jpeg_encoded"] == 0
    code, headers, jpeg = get(server, "/snapshot.jpg")
    assert code == 200 and headers["Content-Type"] == "image/jpeg" and server.counts["jpeg_encoded"] == 1
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (360, 480, 3)


def test_encoding_rate_is_capped_for_all_viewers():
    live = LiveServer("127.0.0.1", 0, max_stream_fps=2)  # at most one new image every 0.5 s
    frame = colour_image("green")
    live.publish(result(OK, index=1), frame)
    first_seq, first = live.jpeg()
    live.publish(result(OK, index=2), frame)
    assert live.jpeg() == (first_seq, first)  # a newer result within 0.5 s reuses the image
    time.sleep(0.55)
    assert live.jpeg()[0] == first_seq + 1 and live.counts["jpeg_encoded"] == 2


def test_token_guards_everything_but_healthz(model):
    live = LiveServer("127.0.0.1", 0, token="s3cret", stale_after_s=5).start()
    try:
        with Feeder(live, model, "blue") as feeder:
            wait_until(lambda: feeder.count >= 2)
            for path in ("/", "/api/latest", "/api/stats", "/metrics", "/snapshot.jpg", "/stream.mjpg", "/live.js"):
                code, headers, body = get(live, path)
                assert code == 401, path
                assert headers["WWW-Authenticate"].startswith("Bearer") and "token" in json.loads(body)["hint"]
                assert get(live, path + "?token=wrong")[0] == 401
            for path in ("/", "/api/latest", "/api/stats", "/metrics", "/snapshot.jpg"):
                assert get(live, path + "?token=s3cret")[0] == 200, path
                assert get(live, path, {"Authorization": "Bearer s3cret"})[0] == 200, path
            assert get(live, "/healthz")[0] == 200
            page = get(live, "/", {"Authorization": "Bearer s3cret"})[2].decode()
            assert 'src="live.js?token=s3cret"' in page and 'content="s3cret"' in page  # the page's own requests
        assert live.page_url == live.url + "?token=s3cret"
        assert json.loads(get(live, "/api/stats?token=s3cret")[2])["server"]["unauthorized"] >= 14
    finally:
        live.close()


def raw_request(live: LiveServer, method: str, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=5)
    try:
        conn.request(method, path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_unknown_paths_traversal_and_methods(server):
    for path in ("/nope", "/../../etc/passwd", "/%2e%2e/server.py", "/web/index.html", "/..%2fserver.py",
                 "/edge/server.py", "/api", "/api/latest/x"):
        assert raw_request(server, "GET", path) == 404, path
    assert raw_request(server, "GET", "/index.html") == 200
    assert raw_request(server, "HEAD", "/") == 200
    assert raw_request(server, "HEAD", "/stream.mjpg") == 200
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        assert raw_request(server, method, "/api/latest") == 405


def test_a_failing_stats_callable_does_not_break_the_server():
    def broken() -> dict:
        raise RuntimeError("pipeline gone")

    live = LiveServer("127.0.0.1", 0, stats=broken).start()
    try:
        code, _, body = get(live, "/api/stats")
        assert code == 200 and json.loads(body)["stats_error"] == "pipeline gone"
        code, _, body = get(live, "/metrics")
        families = {f.name for f in text_string_to_metric_families(body.decode())}
        assert code == 200 and "edge_frames_processed" in families and "edge_frames_dropped" not in families
    finally:
        live.close()


def test_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as err:
            LiveServer("127.0.0.1", port).start()
    assert str(err.value) == f"port {port} on 127.0.0.1 is in use; choose another with --http HOST:PORT"


def test_unusable_address_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot listen on 203.0.113.7:0"):
        LiveServer("203.0.113.7", 0).start()


def test_close_is_fast_and_idempotent(server):
    t0 = time.monotonic()
    server.close()
    server.close()
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_close_leaves_no_request_thread_behind(model, caplog):
    """Idle connections (a browser's preconnected sockets), half-sent requests and a stream viewer are
    all cut at close, and their threads have ended when close returns: a request thread still running
    while the interpreter exits can abort the process."""
    import logging

    caplog.set_level(logging.DEBUG, logger="edge.outputs.server")
    live = LiveServer("127.0.0.1", 0).start()
    idle = [socket.create_connection(("127.0.0.1", live.port)) for _ in range(3)]
    half = socket.create_connection(("127.0.0.1", live.port))
    half.sendall(b"GET /api/stats HTTP/1.1\r\nHost: x\r\n")
    with Feeder(live, model, "red", hz=50):
        conn, reader = open_stream(live)
        reader.next_image()
        wait_until(lambda: len(live._httpd._active) == 5, timeout=5)
        threads = list(live._httpd._active)
        t0 = time.monotonic()
        live.close()
        assert time.monotonic() - t0 < 2.5
    assert not live._httpd._active and not any(t.is_alive() for t in threads)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # cut by close: no complaint
    for s in idle + [half, conn]:
        s.close()


def test_wildcard_bind_reports_a_reachable_address():
    live = LiveServer("0.0.0.0", 0).start()
    try:
        assert live.url.startswith("http://") and "0.0.0.0" not in live.url and live.url.endswith(f":{live.port}/")
        assert get(live, "/healthz")[0] == 503  # answered on the address it reports
    finally:
        live.close()


def test_clients_that_go_away_mid_request_give_one_line_not_a_traceback(server, caplog):
    import logging
    import struct

    caplog.set_level(logging.DEBUG, logger="edge.outputs.server")
    host, port = server.url.split("//")[1].rstrip("/").rsplit(":", 1)
    for _ in range(30):  # half a request, then a reset (SO_LINGER 0): the server's read fails
        s = socket.create_connection((host, int(port)))
        s.sendall(b"GET /api/stats HTTP/1.1\r\nHost: x\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    wait_until(lambda: server._httpd.errors.total >= 30, timeout=10)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 <= len(warnings) <= 2, [r.getMessage() for r in warnings]
    assert "went away mid-request (ConnectionResetError)" in warnings[0].getMessage()
    assert not any(r.exc_info or r.exc_text for r in caplog.records)
    assert "Traceback" not in caplog.text
    status, _, body = get(server, "/api/stats")  # still serving
    assert status == 200 and json.loads(body)
