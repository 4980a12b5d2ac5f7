"""The Source protocol every frame producer follows: open, read an RGB frame, close.

``read()`` returns an RGB uint8 frame, or None when the source has no more frames (the end of a
video or folder; a camera or stream that stopped delivering). It raises ImageError for one bad
frame (the next read goes on) and SourceError when the source itself failed. ``finite`` sources
(files, folders) end normally; the others are reconnected by :mod:`edge.sources.capture`.
``stills`` sources (an image folder or glob) deliver unrelated photos: the pipeline classifies
each on its own and names its file in the result (``frame_name``). A source that decodes to
OpenCV's blue-first order may also offer ``read_bgr()``, the same frame unconverted: capture then
uses it, and the conversion happens once, on the model-sized image (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Views:
    """One capture as two images of the same instant, as a camera with two streams delivers it.

    ``display`` (full size) goes to the live page and captures; ``analysis`` (near the model's
    size) goes through the quality gate and the shared preprocessing to the model. A source
    whose ``read()`` returns a plain array uses that one array for both.
    """

    display: np.ndarray
    analysis: np.ndarray


@runtime_checkable
class Source(Protocol):
    name: str
    rate: float | None  # nominal frames per second, None when unknown or not timed
    finite: bool  # True: running out of frames is the normal end

    def open(self) -> None: ...

    def read(self) -> np.ndarray | Views | None: ...

    def close(self) -> None: ...


class BaseSource:
    """Context manager plumbing shared by all sources."""

    name = "source"
    rate: float | None = None
    finite = False
    stills = False  # independent still images (a folder): no smoothing across them, each result names its file

    def frame_name(self, index: int) -> str | None:
        """What the frame at ``index`` is, for a result (a still image's path); None for a stream."""
        return None

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


