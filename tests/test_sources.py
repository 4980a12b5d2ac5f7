"""Frame sources and capture: real video files, image folders, an HTTP stream, a Picamera2 stand-in."""

from __future__ import annotations

import functools
import http.server
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import COLOURS, colour_image
from helpers import MJPEGCamera, write_video

from edge.errors import ConfigError, ImageError, SourceError
from edge.sources import picam
from edge.sources.capture import Capture, Frame, Mailbox, Reconnect
from edge.sources.factory import make_source, open_source
from edge.sources.folder import ImageFolderSource
from edge.sources.opencv import OpenCVCameraSource, StreamSource, VideoFileSource

RED, BLUE = colour_image("red", (48, 64)), colour_image("blue", (48, 64))


@pytest.fixture()
def video(tmp_path) -> Path:
    return write_video(tmp_path / "clip.mp4", [RED, BLUE] * 6, fps=10.0)


def read_all(source) -> list[np.ndarray]:
    frames = []
    with source:
        while (f := source.read()) is not None:
            frames.append(f)
    return frames


# ---------------------------------------------------------------- video files


def test_video_file_frames_are_rgb_in_order_and_end_normally(video):
    src = VideoFileSource(video)
    frames = read_all(src)
    assert len(frames) == 12 and src.finite and src.rate == pytest.approx(10.0)
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
    means = [f.reshape(-1, 3).mean(0) for f in frames]
    assert all(m[0] > 150 > m[2] for m in means[0::2])  # red first: R channel high
    assert all(m[2] > 150 > m[0] for m in means[1::2])


def test_not_a_video_is_one_line_source_error(tmp_path):
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("not a video")
    with pytest.raises(SourceError, match="not a video OpenCV can read") as e:
        VideoFileSource(bogus).open()
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- folders and globs


@pytest.fixture()
def folder(tmp_path) -> Path:
    d = tmp_path / "frames"
    d.mkdir()
    for i, name in enumerate(["red", "green", "blue"]):
        cv2.imwrite(str(d / f"{i}_{name}.jpg"), cv2.cvtColor(colour_image(name), cv2.COLOR_RGB2BGR))
    good = (d / "0_red.jpg").read_bytes()
    (d / "1b_broken.jpg").write_bytes(good[: len(good) // 2])  # truncated JPEG
    (d / "readme.txt").write_text("not an image")
    return d


def test_image_folder_bad_file_fails_alone(folder):
    src = ImageFolderSource(folder)
    assert [p.name for p in src.files] == ["0_red.jpg", "1_green.jpg", "1b_broken.jpg", "2_blue.jpg"]
    src.open()
    assert src.read()[..., 0].mean() > 150
    assert src.read()[..., 1].mean() > 150
    with pytest.raises(ImageError, match="1b_broken.jpg: truncated JPEG"):
        src.read()
    assert src.read()[..., 2].mean() > 150  # the folder goes on after the bad file
    assert src.read() is None


def test_glob_selects_files(folder):
    src = make_source(str(folder / "*_b*.jpg"))
    assert isinstance(src, ImageFolderSource)
    assert [p.name for p in src.files] == ["1b_broken.jpg", "2_blue.jpg"]


def test_make_source_picks_the_kind(folder, video, tmp_path):
    assert isinstance(make_source(folder), ImageFolderSource)
    assert isinstance(make_source(folder / "0_red.jpg"), ImageFolderSource)
    assert isinstance(make_source(str(video)), VideoFileSource)
    assert isinstance(make_source("rtsp://cam.local:554/stream"), StreamSource)
    with pytest.raises(SourceError, match="camera 97: /dev/video97 does not exist"):
        make_source(camera="97")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images found"):
        make_source(tmp_path / "empty")


@pytest.mark.parametrize("spec", ["missing/video.mp4", "/dev/video97"])
def test_missing_source_is_one_line(spec):
    with pytest.raises(SourceError) as e:
        open_source(spec)
    assert spec in str(e.value) and "\n" not in str(e.value)


def test_stream_name_hides_credentials():
    assert StreamSource("rtsp://admin:secret@10.0.0.5/live").name == "rtsp://***@10.0.0.5/live"


# ---------------------------------------------------------------- a real network stream


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def http_video(video):
    handler = functools.partial(_QuietHandler, directory=str(video.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/{video.name}"
    server.shutdown()
    server.server_close()


def test_http_stream_reads_frames(http_video):
    _, url = http_video
    src = make_source(url)
    assert isinstance(src, StreamSource) and not src.finite
    frames = read_all(src)
    assert len(frames) == 12 and frames[0][..., 0].mean() > 150


@pytest.fixture()
def mjpeg_camera():
    cam = MJPEGCamera([RED, BLUE])
    yield cam
    cam.stop()


def test_mjpeg_stream_that_ends_is_reconnected_then_given_up(mjpeg_camera):
    logs: list[str] = []
    cap = Capture(StreamSource(mjpeg_camera.url, timeout_ms=1000),
                  reconnect=Reconnect(delay=0.01, max_delay=0.02, attempts=2), on_notice=logs.append)
    cap.start()
    frames = [cap.take(2.0) for _ in range(3)]
    assert all(f is not None and f.image.shape == (48, 64, 3) for f in frames)
    mjpeg_camera.stop()  # the camera is unplugged
    while cap.take(2.0) is not None:
        pass
    assert cap.join(10) and cap.finished
    assert isinstance(cap.error, SourceError) and "gave up after 2 reconnect attempts" in str(cap.error)
    assert sum("reconnecting" in m for m in logs) == 2


def test_stream_that_cannot_be_opened_is_an_error_at_start(http_video):
    server, url = http_video
    server.shutdown()
    server.server_close()
    with pytest.raises(SourceError, match="cannot open the stream"):
        Capture(StreamSource(url, timeout_ms=1000)).start()


# ---------------------------------------------------------------- picamera2 through a stand-in


class StandInPicamera2:
    """The part of picamera2.Picamera2 the adapter uses: two streams from one request, "RGB888"
    main in B, G, R byte order and "YUV420" lores (planar I420), and libcamera's metadata."""

    instances: list["StandInPicamera2"] = []

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.calls: list[str] = []
        self.config: dict | None = None
        self.released = 0
        StandInPicamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list[dict]:
        return [{"Model": "imx708", "Num": 0}]

    def create_video_configuration(self, main: dict, lores: dict | None = None, controls: dict | None = None,
                                   **kw) -> dict:
        self.calls.append("create_video_configuration")
        return {"main": dict(main), "lores": dict(lores or {}), "controls": {"FrameDurationLimits": (33333, 33333),
                                                                             **(controls or {})}}

    def configure(self, config: dict) -> None:
        self.calls.append("configure")
        self.config = config

    def start(self) -> None:
        self.calls.append("start")

    def capture_request(self):
        camera = self

        class Request:
            def make_array(self, name: str) -> np.ndarray:
                w, h = camera.config[name]["size"]
                rgb = np.empty((h, w, 3), np.uint8)
                rgb[:] = COLOURS["red"]
                if name == "main":
                    return np.ascontiguousarray(rgb[..., ::-1])  # B, G, R byte order
                return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)

            def get_metadata(self) -> dict:
                return {"FocusFoM": 1234, "LensPosition": camera.config["controls"].get("LensPosition")}

            def release(self) -> None:
                camera.released += 1

        return Request()

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture()
def stand_in(monkeypatch):
    StandInPicamera2.instances.clear()
    monkeypatch.setattr(picam, "load_picamera2", lambda: StandInPicamera2)
    return StandInPicamera2


def test_picamera2_main_for_display_lores_for_the_model(stand_in):
    """main (640x480 RGB) for the page; lores (YUV420, twice the model size) for the shared preprocessing."""
    from edge.sources.base import Views

    src = make_source(camera="auto", model_size=(48, 40))
    assert isinstance(src, picam.PiCameraSource)
    with src:
        views = src.read()
        cam = stand_in.instances[-1]
        assert cam.config["main"] == {"size": (640, 480), "format": "RGB888"}
        assert cam.config["lores"] == {"size": (96, 80), "format": "YUV420"}
        assert src.rate == pytest.approx(30.0, rel=1e-3) and src.focus == 1234 and cam.released == 1
    assert isinstance(views, Views)
    assert views.display.shape == (480, 640, 3) and views.display.flags.c_contiguous
    assert views.display[0, 0].tolist() == list(COLOURS["red"])  # R, G, B
    assert views.analysis.shape == (80, 96, 3) and abs(int(views.analysis[0, 0, 0]) - COLOURS["red"][0]) <= 3
    assert cam.calls == ["create_video_configuration", "configure", "start", "stop", "close"]


def test_picamera2_controls_from_config_and_command_line(stand_in, tmp_path):
    """Close-up work: manual focus, locked exposure and white balance, by picamera2's names."""
    from edge.run.config import load_config, with_camera_controls
    from edge.sources.picam import CameraControls

    cfg_file = tmp_path / "edge.toml"
    cfg_file.write_text('[picamera2]\nAfMode = "continuous"\nAwbEnable = false\nExposureTime = 8000\n')
    cfg = with_camera_controls(load_config(cfg_file), LensPosition=12.5, AeEnable=False)
    assert cfg.picamera2 == CameraControls(AfMode="continuous", LensPosition=12.5, AeEnable=False,
                                           AwbEnable=False, ExposureTime=8000)
    with make_source(camera="picamera2", model_size=(48, 40), controls=cfg.picamera2) as src:
        src.read()
    controls = stand_in.instances[-1].config["controls"]
    assert controls["AfMode"] == 2 and controls["LensPosition"] == 12.5
    assert controls["AeEnable"] is False and controls["AwbEnable"] is False and controls["ExposureTime"] == 8000
    assert CameraControls(LensPosition=4.0).as_controls() == {"AfMode": 0, "LensPosition": 4.0}  # focus: manual
    bad = tmp_path / "bad.toml"
    bad.write_text('[picamera2]\nAfMode = "sometimes"\n')
    with pytest.raises(ConfigError, match="picamera2.AfMode: 'sometimes' is not one of manual, auto, continuous"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"--lens-position: 99.0 is out of range"):
        with_camera_controls(cfg, LensPosition=99.0)


def test_the_model_sees_lores_through_the_shared_preprocessing_and_the_page_sees_main(stand_in, model):
    """Views: quality and the model get the analysis image, the sinks the display image."""
    from edge.run.pipeline import Pipeline, PipelineOptions

    got = []

    class Keep:
        def publish(self, result, frame):
            got.append((result, frame))

        def close(self):
            pass

    src = make_source(camera="picamera2", model_size=(model.spec.width, model.spec.height))
    src.prefer_size((model.spec.width, model.spec.height))
    Pipeline(model, src, [Keep()], PipelineOptions(max_frames=2, realtime=False)).run()
    result, frame = got[0]
    assert frame.shape == (480, 640, 3) and result.status != "error", result.reasons
    assert result.raw_top[0].label == "red"  # the model ran on the lores image (the frame alone)


def test_picamera2_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 -> ImportError
    assert not picam.has_camera()
    if Path("/dev/video0").exists():
        assert isinstance(make_source(camera="auto"), OpenCVCameraSource)
    else:
        with pytest.raises(SourceError, match="no libcamera camera through picamera2, and /dev/video0 does not"):
            make_source(camera="auto")
    with pytest.raises(SourceError) as e:
        make_source(camera="picamera2").open()
    msg = str(e.value)
    assert "not on PyPI" in msg and "libcamera" in msg and "sudo apt install python3-picamera2" in msg
    assert "--system-site-packages" in msg and "\n" not in msg


def test_libcamera_that_fails_to_start_means_no_picamera2(monkeypatch):
    class Broken(StandInPicamera2):
        @staticmethod
        def global_camera_info() -> list[dict]:
            raise RuntimeError("Failed to start the camera manager")

    monkeypatch.setattr(picam, "load_picamera2", lambda: Broken)
    assert picam.has_camera() is False
    monkeypatch.setattr(picam, "load_picamera2", lambda: StandInPicamera2)
    assert picam.has_camera() is True


def test_unknown_camera_word():
    with pytest.raises(SourceError, match="unknown camera"):
        make_source(camera="webcam")


def test_camera_by_device_path():
    with pytest.raises(SourceError, match="^/dev/video97: no such camera device"):
        make_source(camera="/dev/video97")  # as systemd/edge.toml allows: camera = "/dev/video1"
    if Path("/dev/video0").exists():
        src = make_source(camera="/dev/video0")
        assert isinstance(src, OpenCVCameraSource) and src.index == "/dev/video0"


def test_opencv_camera_that_cannot_be_opened(tmp_path):
    fake = tmp_path / "video0"  # a device node path that is not a camera
    fake.write_bytes(b"")
    with pytest.raises(SourceError, match="cannot open the camera") as e:
        OpenCVCameraSource(str(fake)).open()
    assert "'video' group" in str(e.value)


# ---------------------------------------------------------------- capture


class SyntheticCamera:
    """A live source producing numbered frames as fast as asked; reads can be made to fail."""

    finite = False
    rate = None
    name = "synthetic camera"

    def __init__(self, fail_after: int | None = None, reopen_fails: bool = True) -> None:
        self.n = 0
        self.fail_after = fail_after
        self.reopen_fails = reopen_fails
        self.opens = self.closes = 0

    def open(self) -> None:
        if self.opens and self.reopen_fails:
            raise SourceError("camera gone")
        if self.opens:
            self.fail_after = None  # it came back for good
        self.opens += 1

    def read(self):
        if self.fail_after is not None and self.n >= self.fail_after:
            return None  # the camera stopped delivering
        self.n += 1
        time.sleep(0.002)
        return np.full((16, 16, 3), self.n % 256, np.uint8)

    def close(self) -> None:
        self.closes += 1


def test_capture_hands_over_the_newest_frame_and_counts_drops():
    cam = SyntheticCamera()
    cap = Capture(cam)
    cap.start()
    taken = []
    for _ in range(5):
        time.sleep(0.03)  # inference slower than the camera
        taken.append(cap.take(1.0))
    cap.stop()
    assert cap.join(2)
    indexes = [f.index for f in taken]
    assert indexes == sorted(indexes) and min(np.diff(indexes)) > 1  # frames in between were dropped
    assert cap.dropped > 0 and cap.dropped + len(taken) <= cap.captured
    assert cam.closes == 1  # the thread released the camera


def test_capture_of_a_folder_loses_nothing(folder):
    cap = Capture(ImageFolderSource(folder))
    cap.start()
    frames = []
    while not cap.finished:
        f = cap.take(0.5)
        if f is not None:
            frames.append(f)
            time.sleep(0.01)
    assert [f.index for f in frames] == [0, 1, 2, 3] and cap.dropped == 0
    assert [f.error is not None for f in frames] == [False, False, True, False]
    assert cap.error is None


def test_realtime_video_is_paced_at_its_frame_rate(tmp_path):
    video = write_video(tmp_path / "v.mp4", [RED] * 10, fps=40.0)
    cap = Capture(VideoFileSource(video), realtime=True)
    t0 = time.perf_counter()
    cap.start()
    while not cap.finished:
        cap.take(0.5)
    assert time.perf_counter() - t0 >= 9 / 40.0 * 0.9  # not faster than the file's rate


def test_camera_that_disappears_is_reconnected_then_given_up():
    logs: list[str] = []
    cap = Capture(SyntheticCamera(fail_after=3), reconnect=Reconnect(delay=0.01, max_delay=0.04, attempts=3),
                  on_notice=logs.append)
    cap.start()
    frames = [f for f in iter(lambda: cap.take(0.2), None)]
    assert cap.join(5) and cap.finished
    assert len(frames) >= 1 and cap.captured == 3
    assert isinstance(cap.error, SourceError) and "gave up after 3 reconnect attempts" in str(cap.error)
    assert [m.split("(attempt ")[1] for m in logs] == ["1/3)", "2/3)", "3/3)"]


def test_camera_that_comes_back_is_used_again():
    cam = SyntheticCamera(fail_after=2, reopen_fails=False)
    cap = Capture(cam, reconnect=Reconnect(delay=0.01))
    cap.start()
    deadline = time.time() + 5
    while cam.n < 10 and time.time() < deadline:
        cap.take(0.1)
    cap.stop()
    assert cap.join(2)
    assert cap.reconnects == 1 and cam.n >= 10 and cap.error is None


def test_lossless_mailbox_waits_for_the_consumer():
    box, stop = Mailbox(lossless=True), threading.Event()
    assert box.put(Frame(0, None, 0.0, 0.0), stop) is False
    t = threading.Thread(target=lambda: box.put(Frame(1, None, 0.0, 0.0), stop))
    t.start()
    time.sleep(0.05)
    assert t.is_alive()  # blocked until frame 0 is taken
    assert box.take(0.1).index == 0
    t.join(1)
    assert box.take(0.1).index == 1


def test_sources_open_with_an_opencv_4_that_lacks_cv2_utils_logging(tmp_path, monkeypatch):
    """The numpy<2 install of the deploy guide gets OpenCV 4.x, whose cv2.utils has no logging."""
    import cv2

    monkeypatch.delattr(cv2.utils, "logging")
    video = write_video(tmp_path / "v.mp4", [RED, BLUE])
    with VideoFileSource(video) as src:
        assert src.read() is not None


@pytest.fixture(scope="module")
def model(bundle_dir):
    from edge.model.load import load_model

    return load_model(bundle_dir, device="cpu", threads=1)


def test_share_splits_preparation_so_both_threads_are_equally_busy():
    from edge.sources.capture import Share

    share = Share()
    assert share.fraction == 1.0  # before any figures: the capture thread prepares
    share.read(0.6), share.prepared(0.8), share.inferred(0.6, None)
    assert abs(share.fraction - 0.5) < 1e-9  # 0.6 + 0.4 on each side
    taken = sum(share.here(False) for _ in range(1000))
    assert 495 <= taken <= 505  # spread evenly over the frames
    assert share.here(True) is False  # inference waits right now: never make it wait longer
    slow_camera = Share()
    slow_camera.read(33.0), slow_camera.prepared(0.8), slow_camera.inferred(0.6, 0.8)
    assert slow_camera.fraction == 0.0
    slow_model = Share()
    slow_model.read(0.6), slow_model.prepared(0.8), slow_model.inferred(40.0, None)
    assert slow_model.fraction == 1.0


def test_frames_prepared_by_either_thread_give_the_same_results(bundle_dir, video):
    """Work sharing moves where a frame is prepared, never what comes out."""
    from edge.model.load import load_model
    from edge.run.pipeline import Pipeline, PipelineOptions
    from edge.sources import capture
    from edge.sources.opencv import VideoFileSource

    model = load_model(bundle_dir, device="cpu", threads=1)
    runs = []
    for always in (True, False):
        original = capture.Share.here
        capture.Share.here = lambda self, idle, always=always: always  # all in capture, or all in inference
        try:
            summary = Pipeline(model, VideoFileSource(video), (), PipelineOptions(realtime=False)).run(collect=True)
        finally:
            capture.Share.here = original
        runs.append([(r.frame_index, r.status, r.reasons, [(p.label, p.score) for p in r.top], r.quality)
                     for r in summary.results])
    assert runs[0] == runs[1] and len(runs[0]) == 12


def test_capture_hands_decoded_frames_on_unconverted_and_the_outputs_see_rgb(bundle_dir, video):
    """An OpenCV source is read blue-first; the model, the quality gate and every output that wants
    the frame see exactly what an RGB-only source gives, and outputs that do not want it get None."""
    from edge.model.load import load_model
    from edge.run.pipeline import Pipeline, PipelineOptions

    class RgbOnly:  # the Source protocol alone: read() in RGB, no read_bgr
        def __init__(self, path):
            self._inner = VideoFileSource(path)
            self.name, self.finite = self._inner.name, True

        rate = property(lambda self: self._inner.rate)

        def open(self):
            self._inner.open()

        def read(self):
            return self._inner.read()

        def close(self):
            self._inner.close()

    class Keep:
        def __init__(self, wants):
            self.wants_frame, self.frames = wants, []

        def publish(self, result, frame):
            self.frames.append(frame)

        def close(self):
            pass

    class KeepAsDecoded(Keep):  # an output that converts only the frames it uses (the live page, the desk)
        takes_bgr = True

        def publish(self, result, frame, *, bgr=False):
            self.frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if bgr else frame)

    cap = Capture(VideoFileSource(video), realtime=False)
    cap.start()
    taken = []
    while not cap.finished:
        if (f := cap.take(0.5)) is not None:
            taken.append(f)
    rgb = read_all(VideoFileSource(video))
    assert len(taken) == len(rgb) == 12 and all(f.bgr for f in taken)
    assert all(np.array_equal(f.image, cv2.cvtColor(r, cv2.COLOR_RGB2BGR)) for f, r in zip(taken, rgb))
    assert all(np.array_equal(f.rgb(), r) for f, r in zip(taken, rgb))

    model = load_model(bundle_dir, device="cpu", threads=1)
    runs, shown = [], []
    for source in (VideoFileSource(video), RgbOnly(video)):
        sinks = [Keep(True), Keep(False), KeepAsDecoded(True)]
        summary = Pipeline(model, source, sinks, PipelineOptions(realtime=False)).run(collect=True)
        runs.append([(r.raw_top[0].label, r.status, r.reasons, [(p.label, p.score) for p in r.top], r.quality)
                     for r in summary.results])
        shown += [sinks[0].frames, sinks[2].frames]
        assert sinks[1].frames == [None] * 12
    assert runs[0] == runs[1] and [t[0] for t in runs[0]] == ["red", "blue"] * 6
    assert all(all(np.array_equal(f, r) for f in frames) for *frames, r in zip(*shown, rgb))

    converted = []  # no output needs an RGB frame: none is made
    original = Frame.rgb
    Frame.rgb = lambda self: converted.append(self.index) or original(self)
    try:
        alone, decoded = Keep(False), KeepAsDecoded(True)
        Pipeline(model, VideoFileSource(video), [alone, decoded], PipelineOptions(realtime=False)).run()
    finally:
        Frame.rgb = original
    assert alone.frames == [None] * 12 and len(decoded.frames) == 12 and converted == []


def test_a_truncated_video_ends_the_run_with_an_error_and_keeps_every_result(bundle_dir, tmp_path):
    """An AVI cut in half: its header announces every frame, half can be read. The run says so in one
    line and exits 1 (no longer 'end of source' with exit 0), and each frame read has its JSON line."""
    import json

    from helpers import one_line_error
    from typer.testing import CliRunner

    from edge.cli import app

    full = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(full), cv2.VideoWriter_fourcc(*"MJPG"), 15, (160, 120))
    for i in range(60):
        writer.write(cv2.cvtColor(colour_image("red", seed=i), cv2.COLOR_RGB2BGR))
    writer.release()
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    src = VideoFileSource(cut)
    src.open()
    assert src.frame_count == 60
    src.close()
    results = tmp_path / "results.jsonl"
    r = CliRunner().invoke(app, ["run", "--model", str(bundle_dir), "--source", str(cut), "--no-realtime",
                                 "--quiet", "--jsonl", str(results)])
    line = one_line_error(r)
    assert "ends after" in line and "of the 60 frames" in line and "truncated" in line
    read = int(line.split("ends after ")[1].split()[0])
    rows = [json.loads(x) for x in results.read_text().splitlines()]
    assert 10 < read < 60 and len(rows) == read and rows[-1]["frame"] == read - 1
    ok = CliRunner().invoke(app, ["run", "--model", str(bundle_dir), "--source", str(full), "--no-realtime", "--quiet"])
    assert ok.exit_code == 0, ok.output
