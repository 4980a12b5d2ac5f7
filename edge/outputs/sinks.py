"""Where results go: a live terminal line, a JSON-lines file. (The web page is edge.outputs.server.)"""

from __future__ import annotations

import collections
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

    wants_frame = False  # results only: the pipeline need not make an RGB frame for this output

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
    While the file cannot be written (a full disk, a file-size limit, an unplugged USB stick) the
    lines wait in memory, up to :data:`MAX_WAITING`, and are written in order once it can be; a
    write cut short is undone (truncated back), so the file never holds half a line.
    """

    MAX_WAITING = 100_000  # ~100 MB at most; beyond it the oldest waiting lines are dropped, and counted

    wants_frame = False  # results only: the pipeline need not make an RGB frame for this output

    def __init__(self, path: str | Path, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.lines = 0
        self.dropped = 0  # lines given up on: more than MAX_WAITING waited
        self._failing = False
        self._waiting: collections.deque[bytes] = collections.deque()
        self._last_error = "the file could not be written"
        try:
            self._file = _open_for_appending(self.path)
            self._fd = self._file.fileno()
            # a pipe or a terminal (--jsonl /dev/stdout) cannot be fsynced or truncated, and need not be
            self._syncable = stat.S_ISREG(os.fstat(self._fd).st_mode)
            if self.path.is_file() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path):
                os.write(self._fd, b"\n")
        except OSError as e:
            raise EdgeError(f"--jsonl {self.path}: cannot open for appending ({e.strerror}).",
                            "Check that the folder exists and is writable.") from None

    def publish(self, result: FrameResult, frame: np.ndarray | None) -> None:
        self._waiting.append((result.json_line + "\n").encode("utf-8"))
        if len(self._waiting) > self.MAX_WAITING:
            self._waiting.popleft()
            self.dropped += 1
        self._write_waiting()

    def _write_waiting(self) -> bool:
        """Write the waiting lines in order; False (and one warning per outage) when the file refuses."""
        while self._waiting:
            try:
                self._write_line(self._waiting[0])
            except OSError as e:
                self._last_error = e.strerror or str(e)
                if not self._failing:
                    log.warning("%s: cannot write results (%s); keeping them in memory until it can be written",
                                self.path, e.strerror)
                self._failing = True
                return False
            self._waiting.popleft()
            self.lines += 1
        if self._failing:
            log.warning("%s: writing results again%s", self.path,
                        f" ({self.dropped} lines were dropped while it could not be)" if self.dropped else "")
            self._failing = False
        return True

    def _write_line(self, data: bytes) -> None:
        if not self._syncable:  # a pipe or a terminal: what was written is gone, so write the rest
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            return
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            if self.fsync and self._syncable:
                os.fsync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)  # never half a line in the file
            raise

    def close(self) -> None:
        """Write what waits, fsync; EdgeError (one line) when results could not be written out."""
        if self._file.closed:
            return
        try:
            written = self._write_waiting()
            if self._syncable:
                os.fsync(self._fd)
        except OSError as e:
            written, reason = False, e.strerror or str(e)
        else:
            reason = self._last_error
        left = len(self._waiting)
        with contextlib.suppress(OSError):
            self._file.close()
        if not written or self.dropped:
            raise EdgeError(f"{self.path}: {left + self.dropped} results could not be written ({reason}); "
                            f"the {self.lines} lines in it are intact.", "Check the free space and the disk.")


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
