"""Single key presses on the terminal that runs ``edge run`` (``c``: capture), without Enter.

Only when stdin is a terminal: the terminal is put in cbreak mode (keys arrive one by one, Ctrl-C
still interrupts) and restored on close, whatever happens. A service (stdin is /dev/null) has no
keys and this does nothing.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
from typing import Callable, Mapping

log = logging.getLogger(__name__)


class KeyReader:
    """Calls ``actions[key]`` in its own thread for each key pressed; a failing action is logged."""

    def __init__(self, actions: Mapping[str, Callable[[], None]], stream: object = None) -> None:
        self.actions = {k.lower(): v for k, v in actions.items()}
        self._stream = stream if stream is not None else sys.stdin
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved: list | None = None
        self._fd: int | None = None

    def start(self) -> bool:
        """Start listening; False (and nothing changed) when stdin is not a terminal."""
        try:
            fd = self._stream.fileno()  # type: ignore[attr-defined]
        except (AttributeError, OSError, ValueError):
            return False
        if not os.isatty(fd):
            return False
        import termios  # noqa: PLC0415 (POSIX only)
        import tty  # noqa: PLC0415

        try:
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        except termios.error:
            return False
        self._fd = fd
        self._thread = threading.Thread(target=self._run, name="keys", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        assert self._fd is not None
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._fd], [], [], 0.2)
                if not ready:
                    continue
                data = os.read(self._fd, 1)
            except OSError:
                return  # the terminal went away
            if not data:
                return
            action = self.actions.get(data.decode(errors="ignore").lower())
            if action is None:
                continue
            try:
                action()
            except Exception as e:  # noqa: BLE001 - one line, never the end of the daemon
                log.warning("%s", e)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        if self._saved is not None and self._fd is not None:
            import termios  # noqa: PLC0415

            try:
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            except termios.error:
                pass
            self._saved = None
