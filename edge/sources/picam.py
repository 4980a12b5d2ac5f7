"""The Raspberry Pi camera through picamera2 (libcamera), imported only here and only when used.

picamera2 is not on PyPI for this platform: it needs libcamera and comes from Raspberry Pi OS's
apt as ``python3-picamera2``, used from a venv made with ``--system-site-packages``.

The camera's ISP scales to the size asked for, so frames arrive near the model's input size and
preprocessing is almost free (as picamera2's own Hailo examples configure it). picamera2's
"RGB888" format is B, G, R in numpy's byte order; :meth:`PiCameraSource.read` returns R, G, B.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.errors import SourceError
from edge.sources.base import BaseSource

MISSING = ("picamera2 is not installed: it is not on PyPI for this platform and needs libcamera. "
           "On Raspberry Pi OS run `sudo apt install python3-picamera2` and use a venv made with "
           "`python3 -m venv --system-site-packages`.")

DEFAULT_SIZE = (640, 480)


def load_picamera2() -> Any:
    """The Picamera2 class (the seam tests replace with a stand-in of the same interface)."""
    try:
        from picamera2 import Picamera2  # noqa: PLC0415
    except ImportError:
        raise SourceError(MISSING) from None
    return Picamera2


def has_camera() -> bool:
    """True when picamera2 is importable and libcamera sees at least one camera."""
    try:
        cls = load_picamera2()
    except SourceError:
        return False
    info = getattr(cls, "global_camera_info", None)
    if not callable(info):
        return True
    try:
        return bool(info())
    except (RuntimeError, OSError):  # libcamera could not start: treat as no camera, OpenCV is tried next
        return False


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) rounded up to even numbers (the ISP's YUV/RGB outputs need them)."""
    w, h = (max(2, int(v)) for v in size)
    return w + (w & 1), h + (h & 1)


class PiCameraSource(BaseSource):
    """A libcamera camera via picamera2; frames RGB uint8 of ``size`` (width, height)."""

    def __init__(self, size: tuple[int, int] | None = None, camera_num: int = 0) -> None:
        self.size = even_size(size or DEFAULT_SIZE)
        self.size_given = size is not None
        self.camera_num = camera_num
        self.name = f"picamera2 camera {camera_num}"
        self._cam: Any = None

    def prefer_size(self, size: tuple[int, int]) -> None:
        """Ask for ``size`` (the model's input) unless a size was given explicitly."""
        if not self.size_given:
            self.size = even_size(size)

    def open(self) -> None:
        cls = load_picamera2()
        self.close()
        try:
            cam = cls(self.camera_num)
        except (RuntimeError, IndexError, OSError) as e:
            raise SourceError(f"{self.name}: cannot open ({e}).",
                              "Check the ribbon cable and `rpicam-hello --list-cameras`.") from None
        try:
            config = cam.create_video_configuration(main={"size": self.size, "format": "RGB888"})
            cam.configure(config)
            cam.start()
        except (RuntimeError, ValueError, OSError) as e:
            cam.close()
            raise SourceError(f"{self.name}: cannot start ({e}).") from None
        self._cam = cam
        frame_us = (config.get("controls") or {}).get("FrameDurationLimits") if isinstance(config, dict) else None
        self.rate = 1e6 / frame_us[0] if frame_us and frame_us[0] else None

    def read(self) -> np.ndarray | None:
        if self._cam is None:
            raise SourceError(f"{self.name}: not open")
        try:
            array = self._cam.capture_array("main")
        except (RuntimeError, OSError) as e:
            raise SourceError(f"{self.name}: capture failed ({e})") from None
        if array is None:
            return None
        return bgr_array_to_rgb(np.asarray(array))

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()


def bgr_array_to_rgb(array: np.ndarray) -> np.ndarray:
    """picamera2 "RGB888" (B, G, R bytes) or "XRGB8888" (B, G, R, X) to a contiguous RGB array."""
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return np.ascontiguousarray(array[:, :, 2::-1])
    return array  # an odd frame goes through as is; the pipeline reports it
