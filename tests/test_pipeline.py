"""The pipeline with the real tiny model: quality gate, smoothing, bad frames, limits, sinks, notify."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time

import cv2
import numpy as np
import pytest
from conftest import colour_image
from helpers import drain, notify_listener, write_video

from edge import DISCLAIMER
from edge.errors import ImageError, SourceError
from edge.ops.quality import QualityThresholds, brightness, gate, measure, sharpness
from edge.ops.smoothing import Smoother
from edge.outputs.notify import Notifier, NotifySink
from edge.outputs.sinks import JsonlSink, TerminalSink, status_line
from edge.results import ERROR, OK, UNCERTAIN, FrameCounts, FrameResult
from edge.run.pipeline import (
    LOW_CONFIDENCE,
    Pipeline,
    PipelineOptions,
    frame_problem,
    run_frames,
)
from edge.sources.capture import Reconnect
from edge.sources.opencv import VideoFileSource


@pytest.fixture(scope="module")
def model(bundle_dir):
    from edge.model.load import load_model

    return load_model(bundle_dir, device="cpu", threads=1)


def textured(seed: int = 0, hw=(120, 160)) -> np.ndarray:
    """A sharp, mid-grey-brown image with edges everywhere (like skin with hair and pigment)."""
    rng = np.random.default_rng(seed)
    img = np.full((*hw, 3), (150, 110, 90), np.uint8)
    for _ in range(40):
        x0, y0 = rng.integers(0, hw[1]), rng.integers(0, hw[0])
        cv2.line(img, (int(x0), int(y0)), (int(x0) + 30, int(y0) + 20), (40, 30, 30), 1)
    return img


class ListSource:
    """A finite in-memory source: each item is a frame, or an exception raised for that frame."""

    finite = True
    rate = None
    name = "list"

    def __init__(self, items) -> None:
        self.items = list(items)

    def open(self) -> None:
        self.i = 0

    def read(self):
        if self.i >= len(self.items):
            return None
        item = self.items[self.i]
        self.i += 1
        if isinstance(item, Exception):
            raise item
        return item


    def close(self) -> None:
        pass


class Collect:
    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self.frames: list = []
        self.closed = 0

    def publish(self, result, frame) -> None:
        self.results.append(result)
        self.frames.append(frame)

    def close(self) -> None:
        self.closed += 1


# ---------------------------------------------------------------- quality


def test_sharpness_drops_with_blur_and_brightness_follows_exposure():
    img = textured()
    blurred = cv2.GaussianBlur(img, (0, 0), 4)
    assert sharpness(img) > 10 * sharpness(blurred)
    assert gate(img) == []
    assert gate(blurred) == ["too blurry"]
    dark = (img * 0.2).astype(np.uint8)
    bright = np.clip(img.astype(int) * 2 + 60, 0, 255).astype(np.uint8)
    assert brightness(dark) < 60 < brightness(img) < 215 < brightness(bright)
    assert "too dark" in gate(dark) and "too bright" in gate(bright)
    q = measure(img)
    assert q.sharpness == pytest.approx(sharpness(img)) and q.brightness == pytest.approx(brightness(img))


def test_quality_thresholds_are_configurable():
    img = textured()
    assert gate(img, QualityThresholds(min_sharpness=1e9)) == ["too blurry"]
    assert gate(img, QualityThresholds(min_sharpness=0, min_brightness=0, max_brightness=100)) == ["too bright"]


# ---------------------------------------------------------------- smoothing


def test_low_pass_filter_and_reset():
    s = Smoother(factor=0.5, reset_after=2)
    assert s.update(np.array([1.0, 0.0])).tolist() == [1.0, 0.0]
    assert s.update(np.array([0.0, 1.0])).tolist() == [0.5, 0.5]
    assert s.update(np.array([0.0, 1.0])).tolist() == [0.25, 0.75]
    s.note(False)
    assert s.state is not None
    s.note(True)  # a good frame in between restarts the count
    s.note(False)
    s.note(False)
    assert s.state is None  # two unlabelled frames in a row: forgotten
    assert Smoother(factor=1.0).update(np.array([0.2, 0.8])).tolist() == pytest.approx([0.2, 0.8])
    with pytest.raises(ValueError):
        Smoother(factor=0.0)


# ---------------------------------------------------------------- the pipeline


def test_video_through_the_pipeline(model, tmp_path):
    frames = [colour_image(n, seed=i) for n in ("red", "blue") for i in range(8)]
    video = write_video(tmp_path / "v.mp4", frames, fps=25.0)
    sink = Collect()
    opts = PipelineOptions(smoothing=0.5, realtime=False, quality=QualityThresholds(min_brightness=20))
    summary = run_frames(model, VideoFileSource(video), options=opts, sinks=[sink])
    results = summary.results
    assert summary.reason == "end of source" and len(results) == 16 and sink.results == list(results)
    assert sink.closed == 1
    assert [r.frame_index for r in results] == list(range(16))
    labels = [r.label for r in results]
    # smoothing: at the cut the scores are half red, half blue, under the threshold: "uncertain"
    assert labels == ["red"] * 8 + [None] + ["blue"] * 7
    assert results[8].status == UNCERTAIN and results[8].reasons == (LOW_CONFIDENCE,)
    assert results[8].raw_top[0].label == "blue"  # the frame alone already said blue
    assert results[8].top[0].score == pytest.approx(0.5, abs=0.01)
    r = results[5]
    assert r.times.invoke_ms > 0 and r.times.preprocess_ms > 0 and r.times.capture_ms > 0
    assert r.latency_ms >= r.times.invoke_ms
    assert set(r.quality) == {"sharpness", "brightness"}
    stats = summary.stats
    assert stats.frames == FrameCounts(captured=16, processed=16, dropped=0, errors=0, uncertain=1, ok=15)
    assert stats.latency_ms.p50 > 0 and stats.labels == {"red": 8, "blue": 7}
    assert stats.info.source_fps == pytest.approx(25.0) and stats.fps > 0
    d = stats.as_dict()  # the JSON boundary keeps the keys /api/stats always had
    assert d["frames"] == {"captured": 16, "processed": 16, "dropped": 0, "errors": 0, "uncertain": 1, "ok": 15}
    assert d["latency_ms"]["p50"] == stats.latency_ms.p50 and d["source_fps"] == stats.info.source_fps
    assert {"started", "uptime_s", "reconnects", "fps", "last_result", "last_inference", "invoke_ms", "labels",
            "source", "model", "device"} <= set(d)


def test_bad_frames_give_error_results_and_the_run_goes_on(model):
    good = colour_image("green", seed=3)
    items = [good, good[..., 0], np.dstack([good, good[..., :1]]), good.astype(np.float32), good[:1, :1],
             ImageError("frame 5: corrupt JPEG data"), good]
    sink = Collect()
    summary = run_frames(model, ListSource(items), sinks=[sink])
    statuses = [r.status for r in summary.results]
    assert statuses == [OK, ERROR, ERROR, ERROR, ERROR, ERROR, OK]
    reasons = [r.reasons[0] for r in summary.results[1:6]]
    assert reasons == ["frame has 1 channel, expected 3 (RGB)", "frame has 4 channels, expected 3 (RGB)",
                       "pixel type float32, expected uint8", "frame too small (1x1)", "frame 5: corrupt JPEG data"]
    assert summary.results[-1].label == "green"
    assert summary.stats.frames.errors == 5
    d = summary.results[2].as_dict()
    assert d["status"] == "error" and d["label"] is None and d["disclaimer"] == DISCLAIMER


def test_frame_problem_accepts_any_rgb_size():
    assert frame_problem(np.zeros((480, 640, 3), np.uint8)) is None
    assert frame_problem(None) == "not an image array (NoneType)"


def test_uncertain_when_the_gate_fails_or_the_score_is_low(model):
    red = colour_image("red", seed=1)
    dark = (red * 0.1).astype(np.uint8)
    flat = np.full((120, 160, 3), (128, 128, 40), np.uint8)  # no edges at all: "too blurry"
    opts = PipelineOptions(realtime=False, quality=QualityThresholds(min_sharpness=0.5))
    results = run_frames(model, ListSource([red, dark, flat, red]), options=opts).results
    assert [r.status for r in results] == [OK, UNCERTAIN, UNCERTAIN, OK]
    assert "too dark" in results[1].reasons and results[2].reasons == ("too blurry",)
    assert results[1].label is None and results[1].as_dict()["label"] is None
    assert results[1].raw_top  # the model still ran (watchdog) but nothing is shown
    strict = PipelineOptions(realtime=False, threshold=0.999)
    low = run_frames(model, ListSource([colour_image("yellow", seed=2)]), options=strict).results[0]
    assert low.status == UNCERTAIN and low.reasons == (LOW_CONFIDENCE,)


def test_gate_failures_do_not_feed_smoothing_and_reset_it(model):
    red, blue = colour_image("red", seed=1), colour_image("blue", seed=1)
    dark = np.zeros((120, 160, 3), np.uint8)
    opts = PipelineOptions(realtime=False, smoothing=0.3, reset_after=3, quality=QualityThresholds(min_brightness=20))
    results = run_frames(model, ListSource([red, red, dark, dark, dark, blue]), options=opts).results
    assert [r.status for r in results[2:5]] == [UNCERTAIN] * 3
    assert results[2].top[0].label == "red"  # held, not polluted by the dark frame
    assert results[5].label == "blue" and results[5].top[0].score > 0.9  # reset: no red left over


def test_max_frames_and_duration(model):
    camera = _Forever()
    summary = run_frames(model, camera, 5)
    assert summary.reason == "max frames" and len(summary.results) == 5
    t0 = time.perf_counter()
    summary = Pipeline(model, _Forever(), options=PipelineOptions(duration=0.3)).run()
    assert summary.reason == "duration" and 0.3 <= time.perf_counter() - t0 < 3


class _Forever:
    finite, rate, name = False, None, "forever"

    def open(self) -> None:
        pass

    def read(self):
        time.sleep(0.005)
        return colour_image("blue", seed=0)

    def close(self) -> None:
        pass


class _Vanishing(_Forever):
    """A camera that gives ``frames`` frames, then stops and cannot be reopened."""

    def __init__(self, frames: int) -> None:
        self.frames, self.reads = frames, 0

    def open(self) -> None:
        if self.reads:
            raise SourceError("camera 0: cannot open the camera.")

    def read(self):
        self.reads += 1
        return colour_image("red", seed=0) if self.reads <= self.frames else None


def test_stop_from_another_thread_ends_after_the_frame_in_flight(model):
    sink = Collect()
    p = Pipeline(model, _Forever(), [sink])
    threading.Timer(0.3, p.stop).start()
    summary = p.run()
    assert summary.reason == "stopped" and sink.closed == 1 and len(sink.results) > 3


def test_camera_lost_mid_run_raises_after_reconnecting(model):
    logs: list[str] = []
    sink = Collect()
    p = Pipeline(model, _Vanishing(frames=4), [sink], PipelineOptions(reconnect=Reconnect(delay=0.01, attempts=2)),
                 on_notice=logs.append)
    with pytest.raises(SourceError, match="gave up after 2 reconnect attempts"):
        p.run()
    assert 1 <= len(sink.results) <= 4 and sink.closed == 1
    assert p.summary.reason == "source failed" and len(logs) == 2


# ---------------------------------------------------------------- sinks


def _result(status=OK, label="red", score=0.9, reasons=()) -> FrameResult:
    from edge.ops.postprocess import Prediction

    return FrameResult(timestamp=time.time(), frame_index=7, status=status, reasons=reasons,
                       top=(Prediction(0, label, score),), latency_ms=12.0, fps=9.5)


def test_jsonl_lines_are_flushed_one_by_one_and_appended(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"old": 1}\n{"partial": ')  # a line cut off by a power cut
    sink = JsonlSink(path)
    sink.publish(_result(), None)
    lines = path.read_text().splitlines()  # readable while the file is still open
    assert json.loads(lines[-1])["label"] == "red" and lines[0] == '{"old": 1}'
    sink.publish(_result(UNCERTAIN, reasons=("too dark",)), None)
    sink.close()
    rows = path.read_text().splitlines()
    assert rows[1] == '{"partial": '  # the broken line stays on its own
    assert [json.loads(r)["status"] for r in rows[2:]] == ["ok", "uncertain"]


def test_jsonl_unwritable_is_one_line(tmp_path):
    from edge.errors import EdgeError

    with pytest.raises(EdgeError, match="cannot open for appending"):
        JsonlSink(tmp_path / "no" / "such" / "out.jsonl")


def test_jsonl_that_cannot_be_written_is_logged_once_then_one_line_at_close(model, tmp_path, caplog):
    import logging

    from edge.errors import EdgeError

    full = JsonlSink("/dev/full")  # every write: "No space left on device"
    other = Collect()
    p = Pipeline(model, ListSource([colour_image("red", seed=i) for i in range(3)]), [full, other],
                 PipelineOptions(realtime=False))
    with caplog.at_level(logging.INFO, logger="edge"), pytest.raises(EdgeError) as e:
        p.run()
    logs = [r.getMessage() for r in caplog.records if r.name.startswith("edge.")]
    assert str(e.value) == ("/dev/full: 3 results could not be written (No space left on device); the 0 lines "
                            "in it are intact. Check the free space and the disk.")
    assert logs == ["/dev/full: cannot write results (No space left on device); keeping them in memory until it "
                    "can be written"]
    assert len(other.results) == 3 and other.closed == 1  # the run went on; every sink was closed
    assert p.summary is not None and p.summary.stats.frames.processed == 3


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_line_in_place_on_a_tty_and_silent_otherwise():
    tty = _Tty()
    sink = TerminalSink(tty, interval=0.0)
    sink.publish(_result(), None)
    sink.publish(_result(UNCERTAIN, reasons=("too blurry",)), None)
    sink.close()
    text = tty.getvalue()
    assert text.count(DISCLAIMER) == 1 and text.count("\r") == 2 and text.endswith("\n")
    assert "red 0.90 | 9.5 fps | 12 ms | frame 7" in text and "uncertain (too blurry)" in text
    pipe = io.StringIO()
    quiet = TerminalSink(pipe)
    quiet.publish(_result(), None)
    quiet.close()
    assert pipe.getvalue() == ""
    assert status_line(_result(ERROR, reasons=("frame too small (1x1)",))).startswith("error: frame too small")


# ---------------------------------------------------------------- systemd notify


@pytest.fixture()
def notify_socket(tmp_path):
    with notify_listener(tmp_path / "notify.sock") as listener:
        yield listener


def test_notify_sink_ready_watchdog_status_stopping(notify_socket):
    sock, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    assert notifier.watchdog_interval == pytest.approx(0.1)
    sink = NotifySink(notifier, status_interval=10)
    sink.publish(_result(ERROR, reasons=("bad",)), None)  # no inference: nothing sent
    assert drain(sock) == []
    sink.publish(_result(), None)
    sink.publish(_result(), None)  # within the watchdog interval: nothing
    first = drain(sock)
    assert len(first) == 1
    assert first[0].split("\n")[:2] == ["READY=1", "WATCHDOG=1"] and "STATUS=running: 9.5 fps" in first[0]
    time.sleep(0.12)
    sink.publish(_result(UNCERTAIN, reasons=("too dark",)), None)
    assert drain(sock) == ["WATCHDOG=1"]
    sink.close()
    assert drain(sock)[0].startswith("STOPPING=1")


def test_notify_abstract_socket_and_no_op_without_systemd():
    name = f"skin-edge-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready("up")
        assert sock.recv(100) == b"READY=1\nSTATUS=up"
    finally:
        sock.close()
    off = Notifier({})
    assert not off.enabled and not off.ready() and off.watchdog_interval is None
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_interval is None


def test_a_bounded_reconnect_keeps_the_watchdog_fed(model, notify_socket):
    """WatchdogSec must not kill the daemon while it reopens a lost camera (bounded backoff)."""
    sock, path = notify_socket

    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})  # a ping every 0.05 s
    notify = NotifySink(notifier, status_interval=100)
    p = Pipeline(model, _Vanishing(frames=3), [notify], PipelineOptions(reconnect=Reconnect(delay=0.3, max_delay=0.3,
                                                                                    attempts=2)))
    p.on_idle = notify.idle
    with pytest.raises(SourceError, match="gave up after 2 reconnect attempts"):
        p.run()
    pings = [m for m in drain(sock) if "WATCHDOG=1" in m]
    assert len(pings) >= 5  # ~0.6 s of reconnecting, fed at every 0.1 s poll; the 3 frames alone give <= 3


def test_no_ping_while_an_open_hangs_past_its_timeout():
    """The watchdog goes unfed when one reopen attempt takes longer than Reconnect.open_timeout."""
    from edge.sources.capture import Capture

    class Hangs(_Forever):
        reads = 0

        def open(self) -> None:
            if self.reads:
                time.sleep(1.0)  # stuck in the driver
                raise SourceError("camera 0: cannot open the camera.")

        def read(self):
            self.reads += 1
            return colour_image("red", seed=0) if self.reads <= 1 else None

    cap = Capture(Hangs(), reconnect=Reconnect(delay=0.05, max_delay=0.05, attempts=1, open_timeout=0.2))
    cap.start()
    seen = []
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        cap.take(0.02)
        seen.append(cap.reconnecting)
        time.sleep(0.02)
    cap.stop()
    cap.join(2)
    assert any(seen) and not seen[-1]  # fed while the attempt was young, not once it hung past 0.2 s


def test_results_that_wait_for_a_full_disk_are_written_in_order_once_it_has_room(tmp_path):
    """RLIMIT_FSIZE makes writes past the file's size fail (EFBIG), as a full disk would: the lines wait,
    a write cut short is truncated back, and all of them arrive, in order, once it has room."""
    import json
    import resource
    import signal

    from edge.results import OK, FrameResult

    path = tmp_path / "results.jsonl"
    sink = JsonlSink(path)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        sink.publish(FrameResult(timestamp=0.0, frame_index=0, status=OK), None)
        resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 100, hard))  # room for less than a line
        for i in range(1, 6):
            sink.publish(FrameResult(timestamp=0.0, frame_index=i, status=OK), None)
        assert sink.lines == 1 and path.read_bytes().endswith(b"\n")  # nothing half-written
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    sink.publish(FrameResult(timestamp=0.0, frame_index=6, status=OK), None)
    sink.close()
    assert [json.loads(x)["frame"] for x in path.read_text().splitlines()] == list(range(7))
