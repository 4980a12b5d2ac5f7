"""Still images as a source: a folder, a glob pattern or a single file, in name order."""

from __future__ import annotations

import glob as globmod
from pathlib import Path

import numpy as np

from edge.errors import SourceError
from edge.ops.image import IMAGE_SUFFIXES, load_image
from edge.sources.base import BaseSource


class ImageFolderSource(BaseSource):
    """The images of a folder, a glob pattern or a single file, in name order; a bad file fails alone."""

    finite = True
    stills = True

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

    def frame_name(self, index: int) -> str | None:
        return str(self.files[index]) if 0 <= index < len(self.files) else None


def is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _image_files(pattern: str) -> list[Path]:
    p = Path(pattern)
    if is_glob(pattern):
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
