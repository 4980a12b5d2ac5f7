"""Frame sources behind one small interface: open, read an RGB frame, close.

``read()`` returns an RGB uint8 frame, or None when the source has no more frames (the end of a
video or folder; a camera or stream that stopped delivering). It raises ImageError for one bad
frame (the next read goes on) and SourceError when the source itself failed. ``finite`` sources
(files, folders) end normally; the others are reconnected by :mod:`edge.capture`.
"""

from __future__ import annotations

import glob as globmod
import os
import re
import sys
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from edge.errors import SourceError
from edge.image import IMAGE_SUFFIXES, load_image

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
STREAM_TIMEOUT_MS = 5000  # open and read timeout for network streams
# FFmpeg's own messages ("moov atom not found", "Connection refused") would come before our
# one-line error; only fatal ones are kept. Set the variable to 16 (errors) or 48 (debug) to see them.
FFMPEG_LOGLEVEL, FFMPEG_FATAL = "OPENCV_FFMPEG_LOGLEVEL", "8"


@runtime_checkable
class Source(Protocol):
    name: str
    rate: float | None  # nominal frames per second, None when unknown or not timed
    finite: bool  # True: running out of frames is the normal end

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


class BaseSource:
    """Context manager plumbing shared by all sources."""

    name = "source"
    rate: float | None = None
    finite = False

    def open(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def read(self) -> np.ndarray | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> "BaseSource":
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    import cv2  # noqa: PLC0415

    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    return frame  # an odd frame goes through as is; the pipeline reports it


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
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our message says it better
        os.environ.setdefault(FFMPEG_LOGLEVEL, FFMPEG_FATAL)  # read when OpenCV first starts FFmpeg
        try:
            cap = self._capture()
        except cv2.error as e:
            raise SourceError(f"{self.name}: cannot open ({str(e).strip().splitlines()[-1]})") from None
        if not cap.isOpened():
            cap.release()
            raise self._cannot_open()
        self._cap = cap
        self.rate = _fps(cap)

    def read(self) -> np.ndarray | None:
        import cv2  # noqa: PLC0415

        if self._cap is None:
            raise SourceError(f"{self.name}: not open")
        try:
            ok, frame = self._cap.read()
        except cv2.error as e:
            raise SourceError(f"{self.name}: read failed ({str(e).strip().splitlines()[-1]})") from None
        if not ok or frame is None:
            return None
        return _bgr_to_rgb(frame)

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

        return cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)

    def _cannot_open(self) -> SourceError:
        return SourceError(f"{self.path}: not a video OpenCV can read.",
                           "Use MP4, AVI, MKV or MOV, or an image folder.")


class StreamSource(_OpenCVSource):
    """A network stream (RTSP, HTTP, ...). It does not end: when it stops, capture reconnects."""

    def __init__(self, url: str, timeout_ms: int = STREAM_TIMEOUT_MS) -> None:
        super().__init__()
        self.url = url
        self.name = re.sub(r"//[^/@]*@", "//***@", url)  # never show credentials
        self.timeout_ms = timeout_ms

    def _capture(self) -> Any:
        import cv2  # noqa: PLC0415

        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.timeout_ms]
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


class ImageFolderSource(BaseSource):
    """The images of a folder, a glob pattern or a single file, in name order; a bad file fails alone."""

    finite = True

    def __init__(self, pattern: str | Path) -> None:
        self.pattern = str(pattern)
        self.name = self.pattern
        self.files = _image_files(self.pattern)
        self._next = 0

    def open(self) -> None:
        self._next = 0

    def read(self) -> np.ndarray | None:
        if self._next >= len(self.files):
            return None
        path = self.files[self._next]
        self._next += 1
        return load_image(path)  # ImageError for this file only; the next read goes on

    def close(self) -> None:
        self._next = len(self.files)


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _image_files(pattern: str) -> list[Path]:
    p = Path(pattern)
    if _is_glob(pattern):
        files = [Path(f) for f in sorted(globmod.glob(pattern, recursive=True))]
    elif p.is_dir():
        files = sorted(f for f in p.iterdir())
    else:
        files = [p]
    files = [f for f in files if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise SourceError(f"{pattern}: no images found.",
                          f"Use a folder or glob of {', '.join(s.lstrip('.') for s in IMAGE_SUFFIXES[:4])} files.")
    return files


def is_stream_url(text: str) -> bool:
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in STREAM_SCHEMES


def make_source(source: str | Path | None = None, camera: str | int | None = None, *,
                camera_size: tuple[int, int] | None = None,
                model_size: tuple[int, int] | None = None) -> Source:
    """Build (not open) the source for ``--source`` or ``--camera``.

    ``source``: a video file, an image folder, a glob, a single image, a stream URL or /dev/videoN.
    ``camera``: "auto" (picamera2 when present on a Pi, else OpenCV camera 0), "picamera2",
    "opencv" (OpenCV camera 0), an OpenCV index, or a /dev/videoN path. ``camera_size`` is the (width, height) to ask
    a camera for; without it picamera2 delivers ``model_size`` (the ISP scales for free) and an
    OpenCV camera its default.
    """
    if (source is None) == (camera is None):
        raise SourceError("give exactly one of --source and --camera.")
    if camera is not None:
        return _camera_source(camera, camera_size, model_size)
    text = str(source)
    if is_stream_url(text):
        return StreamSource(text)
    if text.startswith("/dev/video"):
        return _device_node(text, camera_size)
    if _is_glob(text):
        return ImageFolderSource(text)
    path = Path(text)
    if not path.exists():
        raise SourceError(f"{text}: no such file or folder.",
                          "Give a video file, an image folder or glob, or a stream URL (rtsp://, http://).")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFolderSource(path)
    return VideoFileSource(path)


CAMERA_KINDS = ("auto", "picamera2", "opencv")


def _camera_source(camera: str | int, size: tuple[int, int] | None,
                   model_size: tuple[int, int] | None) -> Source:
    from edge import picam  # noqa: PLC0415

    pi_size = size or model_size
    text = str(camera).strip().lower()
    if text.isdigit():
        _check_video_node(int(text))
        return OpenCVCameraSource(int(text), size)
    if text.startswith("/dev/video"):
        return _device_node(str(camera).strip(), size)
    if text == "opencv":
        _check_video_node(0)
        return OpenCVCameraSource(0, size)
    if text == "picamera2":
        return picam.PiCameraSource(size=pi_size)
    if text == "auto":
        if picam.has_camera():
            return picam.PiCameraSource(size=pi_size)
        _check_video_node(0, "no libcamera camera through picamera2, and ")
        return OpenCVCameraSource(0, size)
    raise SourceError(f"unknown camera {camera!r}.", "Use --camera alone, --camera N (an OpenCV index), "
                      "--camera /dev/videoN or --camera picamera2.")


def _device_node(path: str, size: tuple[int, int] | None) -> OpenCVCameraSource:
    if not Path(path).exists():
        raise SourceError(f"{path}: no such camera device.", "List the cameras with `edge doctor`.")
    return OpenCVCameraSource(path, size)


def _check_video_node(index: int, before: str = "") -> None:
    """On Linux an OpenCV camera index N is /dev/videoN: say so at once when it is missing."""
    node = Path(f"/dev/video{index}")
    if sys.platform.startswith("linux") and not node.exists():
        raise SourceError(f"camera {index}: {before}{node} does not exist.",
                          "Plug the camera in, or list the cameras with `edge doctor`.")


def open_source(source: str | Path | None = None, camera: str | int | None = None, *,
                camera_size: tuple[int, int] | None = None,
                model_size: tuple[int, int] | None = None) -> Source:
    """:func:`make_source`, opened. SourceError (one line) when it cannot be."""
    src = make_source(source, camera, camera_size=camera_size, model_size=model_size)
    src.open()
    return src
