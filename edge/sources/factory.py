"""``--source`` / ``--camera`` to a Source: which class reads what the user named."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from edge.errors import SourceError
from edge.ops.image import IMAGE_SUFFIXES
from edge.sources.base import Source
from edge.sources.folder import ImageFolderSource, is_glob
from edge.sources.opencv import (
    OpenCVCameraSource,
    StreamSource,
    VideoFileSource,
    is_stream_url,
)


def make_source(source: str | Path | None = None, camera: str | int | None = None, *,
                camera_size: tuple[int, int] | None = None,
                model_size: tuple[int, int] | None = None, controls: Any = None) -> Source:
    """Build (not open) the source for ``--source`` or ``--camera``.

    ``source``: a video file, an image folder, a glob, a single image, a stream URL or /dev/videoN.
    ``camera``: "auto" (picamera2 when present on a Pi, else OpenCV camera 0), "picamera2",
    "opencv" (OpenCV camera 0), an OpenCV index, or a /dev/videoN path. ``camera_size`` is the (width, height) to ask
    a camera for (picamera2's main stream: 640x480 without it; an OpenCV camera: its default);
    picamera2's second stream, for the model, is twice ``model_size``. ``controls``: picamera2's
    :class:`~edge.sources.picam.CameraControls`.
    """
    if (source is None) == (camera is None):
        raise SourceError("give exactly one of --source and --camera.")
    if camera is not None:
        return _camera_source(camera, camera_size, model_size, controls)
    text = str(source)
    if is_stream_url(text):
        return StreamSource(text)
    if text.startswith("/dev/video"):
        return _device_node(text, camera_size)
    if is_glob(text):
        return ImageFolderSource(text)
    path = Path(text)
    if not path.exists():
        raise SourceError(f"{text}: no such file or folder.",
                          "Give a video file, an image folder or glob, or a stream URL (rtsp://, http://).")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFolderSource(path)
    if not path.is_file():  # a named pipe or a device would block the decoder, or never end
        raise SourceError(f"{text}: not a regular file (a named pipe, a socket or a device), so not a video file.",
                          "Give a video file, an image folder, a stream URL, or --camera for a camera.")
    return VideoFileSource(path)


CAMERA_KINDS = ("auto", "picamera2", "opencv")


def _camera_source(camera: str | int, size: tuple[int, int] | None,
                   model_size: tuple[int, int] | None, controls: Any = None) -> Source:
    from edge.sources import picam  # noqa: PLC0415 (picamera2 only when a camera is asked for)

    def pi_camera() -> Source:
        src = picam.PiCameraSource(size=size, controls=controls or picam.CameraControls())
        if model_size:
            src.prefer_size(model_size)
        return src

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
        return pi_camera()
    if text == "auto":
        if picam.has_camera():
            return pi_camera()
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
