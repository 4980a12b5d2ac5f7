"""Sources read by OpenCV (FFmpeg, V4L2): video files, network streams, cameras."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import SourceError, first_line
from edge.sources.base import BaseSource

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
STREAM_TIMEOUT_MS = 5000  # open and read timeout for network streams
# FFmpeg decodes in the capture thread, which already runs beside inference: its own extra threads
# only take cores from the interpreter. One thread decodes a 640x480 video as fast as two, for
# two thirds of the CPU time (docs/benchmarks.md).
DECODE_THREADS = 1
# FFmpeg's own messages ("moov atom not found", "Connection refused") would come before our
# one-line error; only fatal ones are kept. Set the variable to 16 (errors) or 48 (debug) to see them.
FFMPEG_LOGLEVEL, FFMPEG_FATAL = "OPENCV_FFMPEG_LOGLEVEL", "8"


def _quiet(cv2: Any) -> None:
    """OpenCV's own warnings off (errors stay). OpenCV 5 has ``cv2.utils.logging``; the 4.x wheels a
    numpy<2 install picks (the deploy guide's, for picamera2) have only ``cv2.setLogLevel``."""
    logging_module = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_module is not None:
        logging_module.setLogLevel(logging_module.LOG_LEVEL_ERROR)
    elif callable(getattr(cv2, "setLogLevel", None)):
        cv2.setLogLevel(2)  # LOG_LEVEL_ERROR


def bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    """A three-channel frame in OpenCV's order as RGB (a new array); any other frame as it is."""
    import cv2  # noqa: PLC0415

    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    return frame  # an odd frame goes through as is; the pipeline reports it


def _decode_params(cv2: Any) -> list[int]:
    prop = getattr(cv2, "CAP_PROP_N_THREADS", None)  # OpenCV >= 4.6; older ones decode as they like
    return [prop, DECODE_THREADS] if prop is not None else []


def _fps(cap: Any) -> float | None:
    import cv2  # noqa: PLC0415

    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if 0.5 <= fps <= 1000.0 else None


class _OpenCVSource(BaseSource):
    """Shared by files, streams and cameras: a cv2.VideoCapture."""

    def __init__(self) -> None:
        self._cap: Any = None

    def _capture(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _cannot_open(self) -> SourceError:  # pragma: no cover - overridden
        raise NotImplementedError

    def open(self) -> None:
        import cv2  # noqa: PLC0415

        self.close()
        _quiet(cv2)  # our message says it better
        os.environ.setdefault(FFMPEG_LOGLEVEL, FFMPEG_FATAL)  # read when OpenCV first starts FFmpeg
        try:
            cap = self._capture()
        except cv2.error as e:
            raise SourceError(f"{self.name}: cannot open ({first_line(e, last=True)})") from None
        if not cap.isOpened():
            cap.release()
            raise self._cannot_open()
        self._cap = cap
        self.rate = _fps(cap)

    def read(self) -> np.ndarray | None:
        """The next frame, RGB."""
        frame = self.read_bgr()
        return None if frame is None else bgr_to_rgb(frame)

    def read_bgr(self) -> np.ndarray | None:
        """The next frame as decoded, blue first: capture hands it on so, and the model's
        preprocessing swaps the channels of the reduced image instead of the whole frame."""
        import cv2  # noqa: PLC0415

        if self._cap is None:
            raise SourceError(f"{self.name}: not open")
        try:
            ok, frame = self._cap.read()
        except cv2.error as e:
            raise SourceError(f"{self.name}: read failed ({first_line(e, last=True)})") from None
        return frame if ok and frame is not None else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class VideoFileSource(_OpenCVSource):
    """A video file decoded by OpenCV (FFmpeg). Ends normally at the last frame."""

    finite = True

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = str(self.path)

    def _capture(self) -> Any:
        import cv2  # noqa: PLC0415

        return cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, _decode_params(cv2))

    def _cannot_open(self) -> SourceError:
        return SourceError(f"{self.path}: not a video OpenCV can read.",
                           "Use MP4, AVI, MKV or MOV, or an image folder.")

    def open(self) -> None:
        import cv2  # noqa: PLC0415

        super().open()
        self.frames_read = 0
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if count == count and 0 < count < 1e9 else None  # what the file says

    def read_bgr(self) -> np.ndarray | None:
        frame = super().read_bgr()
        if frame is not None:
            self.frames_read += 1
            return frame
        expected = self.frame_count
        if expected and self.frames_read < 0.9 * expected and expected - self.frames_read > 5:
            raise SourceError(f"{self.path}: the video ends after {self.frames_read} of the {expected} frames its "
                              "header announces: the file is truncated or damaged.",
                              "The results of the frames read are kept; copy the video again.")
        return None


class StreamSource(_OpenCVSource):
    """A network stream (RTSP, HTTP, ...). It does not end: when it stops, capture reconnects."""

    def __init__(self, url: str, timeout_ms: int = STREAM_TIMEOUT_MS) -> None:
        super().__init__()
        self.url = url
        self.name = re.sub(r"//[^/@]*@", "//***@", url)  # never show credentials
        self.timeout_ms = timeout_ms

    def _capture(self) -> Any:
        import cv2  # noqa: PLC0415

        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.timeout_ms,
                  *_decode_params(cv2)]
        return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)

    def _cannot_open(self) -> SourceError:
        return SourceError(f"{self.name}: cannot open the stream.",
                           "Check the address, the network, and that the camera is streaming.")


class OpenCVCameraSource(_OpenCVSource):
    """A V4L2 camera (USB webcam; CSI camera through its V4L2 node) by index or /dev/video path."""

    def __init__(self, index: int | str = 0, size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.index = index
        self.size = size  # (width, height) to ask for; None: the camera's default
        self.name = f"camera {index}" if isinstance(index, int) else str(index)

    def _capture(self) -> Any:
        import cv2  # noqa: PLC0415

        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        cap = cv2.VideoCapture(self.index, backend)
        if cap.isOpened():
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if self.size:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        return cap

    def _cannot_open(self) -> SourceError:
        dev = f"/dev/video{self.index}" if isinstance(self.index, int) else self.index
        return SourceError(f"{self.name}: cannot open the camera.",
                           f"Check that {dev} exists (`edge doctor`) and that this user is in the 'video' group.")




def is_stream_url(text: str) -> bool:
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in STREAM_SCHEMES
