"""The Raspberry Pi camera through picamera2 (libcamera), imported only here and only when used.

picamera2 is not on PyPI for this platform: it needs libcamera and comes from Raspberry Pi OS's
apt as ``python3-picamera2``, used from a venv made with ``--system-site-packages``.

Two streams, as picamera2's own examples configure them: ``main`` (RGB, 640x480 unless
``camera_size`` says otherwise) for the live page and captures, and ``lores`` (YUV420, which every
Pi's ISP can give) at twice the model's input size for the model. The lores frame then goes
through the same preprocessing as training (centre crop, area reduction by 2, the final step), so
the model is not fed an ISP-scaled image of exactly its input size, which training never saw.
Both come from one request, so they show the same instant. picamera2's "RGB888" is B, G, R in
numpy's byte order; :meth:`PiCameraSource.read` returns R, G, B.

Camera controls for close-up lesion work (:class:`CameraControls`, picamera2's names): manual
focus (``LensPosition``, dioptres), the autofocus mode (``AfMode``), exposure and white-balance
lock (``AeEnable``/``AwbEnable`` false, with ``ExposureTime``/``AnalogueGain`` to fix them); the
focus figure of merit libcamera reports (``FocusFoM``) is kept as :attr:`PiCameraSource.focus`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import SourceError
from edge.sources.base import BaseSource, Views

MISSING = ("picamera2 is not installed: it is not on PyPI for this platform and needs libcamera. "
           "On Raspberry Pi OS run `sudo apt install python3-picamera2` and use a venv made with "
           "`python3 -m venv --system-site-packages`.")

DEFAULT_SIZE = (640, 480)
AF_MODES = {"manual": 0, "auto": 1, "continuous": 2}  # libcamera's controls.AfModeEnum


@dataclass(frozen=True)
class CameraControls:
    """libcamera controls, by picamera2's names; None leaves the camera's own default."""

    AfMode: str | None = None  # manual, auto, continuous
    LensPosition: float | None = None  # dioptres (1 / distance in metres): 10 = 10 cm; implies manual focus
    AeEnable: bool | None = None  # false: exposure locked (at ExposureTime / AnalogueGain when given)
    AwbEnable: bool | None = None  # false: white balance locked
    ExposureTime: int | None = None  # microseconds
    AnalogueGain: float | None = None

    def as_controls(self) -> dict[str, Any]:
        """The dict picamera2's ``controls=`` / ``set_controls`` take."""
        out: dict[str, Any] = {}
        mode = "manual" if self.LensPosition is not None and self.AfMode is None else self.AfMode
        if mode is not None:
            out["AfMode"] = AF_MODES[mode]
        for name in ("LensPosition", "AeEnable", "AwbEnable", "ExposureTime", "AnalogueGain"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


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
    """A libcamera camera via picamera2: :class:`Views` with ``display`` of ``size`` (width,
    height) and ``analysis`` at twice the model's input size, both RGB uint8."""

    def __init__(self, size: tuple[int, int] | None = None, camera_num: int = 0,
                 controls: CameraControls = CameraControls()) -> None:
        self.size = even_size(size or DEFAULT_SIZE)
        self.analysis_size = self.size
        self.camera_num = camera_num
        self.controls = controls
        self.name = f"picamera2 camera {camera_num}"
        self.focus: float | None = None  # libcamera's FocusFoM of the last frame
        self._cam: Any = None

    def prefer_size(self, size: tuple[int, int]) -> None:
        """The model's input (width, height): the lores stream is twice that, within the main stream."""
        w, h = (min(2 * v, limit) for v, limit in zip(size, self.size))
        self.analysis_size = even_size((w, h))

    def open(self) -> None:
        cls = load_picamera2()
        self.close()
        try:
            cam = cls(self.camera_num)
        except (RuntimeError, IndexError, OSError) as e:
            raise SourceError(f"{self.name}: cannot open ({e}).",
                              "Check the ribbon cable and `rpicam-hello --list-cameras`.") from None
        try:
            config = cam.create_video_configuration(main={"size": self.size, "format": "RGB888"},
                                                    lores={"size": self.analysis_size, "format": "YUV420"},
                                                    controls=self.controls.as_controls())
            cam.configure(config)
            cam.start()
        except (RuntimeError, ValueError, OSError, KeyError) as e:
            cam.close()
            raise SourceError(f"{self.name}: cannot start ({e}).",
                              "Check the camera controls in the config (picamera2's names and ranges).") from None
        self._cam = cam
        frame_us = (config.get("controls") or {}).get("FrameDurationLimits") if isinstance(config, dict) else None
        self.rate = 1e6 / frame_us[0] if frame_us and frame_us[0] else None

    def read(self) -> Views | None:
        if self._cam is None:
            raise SourceError(f"{self.name}: not open")
        try:
            request = self._cam.capture_request()
        except (RuntimeError, OSError) as e:
            raise SourceError(f"{self.name}: capture failed ({e})") from None
        if request is None:
            return None
        try:
            main, lores = request.make_array("main"), request.make_array("lores")
            self.focus = (request.get_metadata() or {}).get("FocusFoM")
        finally:
            request.release()  # the buffers go back to the camera at once
        return Views(display=bgr_array_to_rgb(np.asarray(main)), analysis=yuv420_to_rgb(np.asarray(lores)))

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()


def yuv420_to_rgb(array: np.ndarray) -> np.ndarray:
    """picamera2's "YUV420" array (height * 3/2 rows of planar I420) to RGB."""
    import cv2  # noqa: PLC0415

    if array.ndim != 2 or array.shape[0] % 3:
        return array  # an odd frame goes through as is; the pipeline reports it
    return cv2.cvtColor(array, cv2.COLOR_YUV2RGB_I420)


def bgr_array_to_rgb(array: np.ndarray) -> np.ndarray:
    """picamera2 "RGB888" (B, G, R bytes) or "XRGB8888" (B, G, R, X) to a contiguous RGB array."""
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return np.ascontiguousarray(array[:, :, 2::-1])
    return array  # an odd frame goes through as is; the pipeline reports it
