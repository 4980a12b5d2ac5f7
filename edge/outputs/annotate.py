"""The live view's picture: the frame with the result, its speed and a short disclaimer drawn on it."""

from __future__ import annotations

import cv2
import numpy as np

from edge.results import ERROR, OK, UNCERTAIN, FrameResult

SHORT_DISCLAIMER = "Not a medical diagnosis"
_COLOURS = {OK: (90, 200, 60), UNCERTAIN: (0, 180, 255), ERROR: (60, 60, 230)}  # BGR


def annotate(frame: np.ndarray, result: FrameResult | None, *, bgr: bool = False) -> np.ndarray:
    """The RGB frame (``bgr``: a three-channel frame in OpenCV's order) as BGR with the result, FPS
    and a short disclaimer drawn on it; a copy, the frame itself is not drawn on."""
    img = frame if frame.dtype == np.uint8 else np.clip(frame, 0, 255).astype(np.uint8)
    img = img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif bgr and img.shape[2] == 3:
        img = img.copy()
    else:
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2BGR)
    h, w = img.shape[:2]
    width = min(max(w, 480), 960)  # enlarge small frames so the text stays legible, shrink big ones
    if width != w:
        size = (width, max(1, round(h * width / w)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if w > width else cv2.INTER_LINEAR)
    h, w = img.shape[:2]
    scale = w / 720
    line = max(14, round(40 * scale))
    _band(img, 0, int(line * 2.3))
    _band(img, h - int(line * 1.2), h)
    status = result.status if result else "waiting"
    colour = _COLOURS.get(status, (230, 230, 230))
    _text(img, headline(result), (int(line * 0.4), int(line * 1.0)), 1.1 * scale, colour, w)
    if result is not None:
        detail = f"{result.fps:.1f} fps   {result.latency_ms:.0f} ms   frame {result.frame_index}"
        _text(img, detail, (int(line * 0.4), int(line * 1.95)), 0.75 * scale, (235, 235, 235), w)
    _text(img, SHORT_DISCLAIMER, (int(line * 0.4), h - int(line * 0.35)), 0.75 * scale, (255, 255, 255), w)
    return img


def headline(result: FrameResult | None) -> str:
    """The one line shown for a result: the label and score only when the status is ok."""
    if result is None:
        return "waiting for the first result"
    if result.label is not None:
        return f"{result.top[0].title}  {100 * result.top[0].score:.1f} %"  # the page's number, to the digit
    reasons = ", ".join(result.reasons) or ("low confidence" if result.status == UNCERTAIN else "no result")
    return f"{result.status}: {reasons}"


def drawable(frame: np.ndarray | None) -> bool:
    """An image the live view can draw: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), not empty."""
    return (isinstance(frame, np.ndarray) and frame.size > 0 and
            (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (1, 3, 4))))


def _band(img: np.ndarray, y0: int, y1: int) -> None:
    region = img[max(0, y0):max(0, y1)]
    region[:] = (region * 0.35).astype(np.uint8)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, colour: tuple, width: int) -> None:
    text = text.encode("ascii", "replace").decode()
    thickness = max(1, round(scale * 2))
    room = width - 2 * org[0]
    while len(text) > 4 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] > room:
        text = text[:-4] + "..."
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
