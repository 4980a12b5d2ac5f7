"""Where results go: a live terminal line, a JSON-lines file. (The web page is edge.outputs.server.)"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from edge import DISCLAIMER
from edge.errors import EdgeError
from edge.results import ERROR, OK, FrameResult

log = logging.getLogger(__name__)


def status_line(result: FrameResult) -> str:
    """One line: label and score (or why there is none), FPS, latency, frame number."""
    if result.status == OK and result.top:
        head = f"{result.top[0].title} {result.top[0].score:.2f}"
    elif result.status == ERROR:
        head = f"error: {'; '.join(result.reasons)}"
    else:
        head = f"uncertain ({', '.join(result.reasons)})"
    return f"{head} | {result.fps:.1f} fps | {result.latency_ms:.0f} ms | frame {result.frame_index}"


class TerminalSink:
    """A live line refreshed in place on a terminal; silent when stdout is not a terminal."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False, interval: float = 0.1) -> None:
        self.stream = stream or sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.live = not quiet and bool(isatty and isatty())
        self.interval = interval
        self._shown = False
        self._last_draw = 0.0
        self._pending: FrameResult | None = None

    def publish(self, result: FrameResult, frame: np.ndarray | None) -> None:
        if not self.live:
            return
        if not self._shown:
            self.stream.write(DISCLAIMER + "\n")
            self._shown = True
        self._pending = result
        now = time.monotonic()
        if now - self._last_draw >= self.interval:
            self._draw()
            self._last_draw = now

    def _draw(self) -> None:
        if self._pending is None:
            return
        width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
        self.stream.write("\r" + status_line(self._pending)[:width] + "\x1b[K")
        self.stream.flush()
        self._pending = None

    def close(self) -> None:
        if self.live and self._shown:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


class JsonlSink:
    """Appends one JSON object per result to a file, flushed per line (optionally fsynced).

    A crash or power cut loses at most the line being written; a partial last line left by one
    is closed with a newline before new lines are appended, so every other line stays valid.
    """

    def __init__(self, path: str | Path, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.lines = 0
        self._failing = False
        try:
            self._file = _open_for_appending(self.path)
            # a pipe or a terminal (--jsonl /dev/stdout) cannot be fsynced, and need not be
            self._syncable = stat.S_ISREG(os.fstat(self._file.fileno()).st_mode)
            if self.path.is_file() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path):
                self._file.write("\n")
        except OSError as e:
            raise EdgeError(f"--jsonl {self.path}: cannot open for appending ({e.strerror}).",
                            "Check that the folder exists and is writable.") from None

    def publish(self, result: FrameResult, frame: np.ndarray | None) -> None:
        line = result.json_line + "\n"
        try:
            self._file.write(line)
            self._file.flush()
            if self.fsync and self._syncable:
                os.fsync(self._file.fileno())
        except OSError as e:
            if not self._failing:
                log.warning("%s: cannot write results (%s); will keep trying", self.path, e.strerror)
            self._failing = True
            return
        if self._failing:
            log.warning("%s: writing results again", self.path)
            self._failing = False
        self.lines += 1

    def close(self) -> None:
        """Flush and fsync; EdgeError (one line) when the results cannot be written out."""
        if self._file.closed:
            return
        try:
            self._file.flush()
            if self._syncable:
                os.fsync(self._file.fileno())
        except OSError as e:
            with contextlib.suppress(OSError):  # the same failure again while closing: reported below
                self._file.close()
            raise EdgeError(f"{self.path}: cannot write the last results ({e.strerror or e}).",
                            "Check the free space and the disk.") from None
        self._file.close()


def _open_for_appending(path: Path) -> Any:
    """The results file, kept open for the run. A named pipe is opened without blocking: with no
    process reading it, opening would wait for ever, so that is one clear error instead."""
    if path.is_fifo():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
        except OSError as e:
            if e.errno == errno.ENXIO:
                raise EdgeError(f"--jsonl {path} is a named pipe that no process reads.",
                                "Start the reader first, or give a regular file.") from None
            raise
        os.set_blocking(fd, True)  # a slow reader then slows the writes, as a file on a slow disk would
        return os.fdopen(fd, "a", encoding="utf-8")
    return open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
