"""The systemd notify protocol over the standard library's datagram socket.

With ``Type=notify`` systemd sets ``NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract
socket) and, with ``WatchdogSec=``, ``WATCHDOG_USEC``. We send ``READY=1`` once the model is
loaded and a first frame went through it, ``WATCHDOG=1`` only after a successful inference (at
most every half watchdog period), so a hung camera or Edge TPU gets the service restarted,
``STATUS=`` with the frame rate (and the reconnect notices of a lost camera), and
``STOPPING=1`` on shutdown. Without ``NOTIFY_SOCKET`` every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any, Callable, Mapping

import numpy as np

from edge.results import ERROR, FrameResult

log = logging.getLogger(__name__)


def _address(value: str) -> str | None:
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock: and others are not for a process on the device itself


class Notifier:
    """Sends notify messages to the service manager; a no-op when not run by systemd."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self.address = _address(raw) if raw else None
        self.watchdog_interval = _watchdog_interval(env)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()  # the inference and capture threads both send
        self._failed = False
        if raw and self.address is None:
            log.warning("NOTIFY_SOCKET=%s is not a Unix socket address; not notifying systemd", raw)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram; True when it was sent."""
        if self.address is None or not fields:
            return False
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto("\n".join(fields).encode("utf-8"), self.address)
            except OSError as e:
                if not self._failed:
                    log.warning("cannot notify systemd at %s (%s)", self.address.lstrip(chr(0)), e.strerror or e)
                self._failed = True
                return False
            self._failed = False
            return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *((f"STATUS={status}",) if status else ()))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1", *((f"STATUS={status}",) if status else ()))

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half the watchdog period in seconds, or None when the watchdog is off or meant for another process."""
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


class NotifySink:
    """Turns results into notify messages: READY, the watchdog ping, STATUS; STOPPING on close."""

    wants_frame = False  # results only: the pipeline need not make an RGB frame for this output

    def __init__(self, notifier: Notifier, *, status_interval: float = 5.0,
                 describe: Callable[[], str] | None = None) -> None:
        self.notifier = notifier
        self.status_interval = status_interval
        self.describe = describe
        self.ready = False
        self.stopped = False
        self._last_watchdog = self._last_status = float("-inf")

    def publish(self, result: FrameResult, frame: np.ndarray | None) -> None:
        if result.status == ERROR or not self.notifier.enabled:
            return  # no inference ran: nothing to tell the watchdog
        now = time.monotonic()
        fields = []
        if not self.ready:
            fields.append("READY=1")
        interval = self.notifier.watchdog_interval
        if interval is not None and now - self._last_watchdog >= interval:
            fields.append("WATCHDOG=1")
            self._last_watchdog = now
        if not self.ready or now - self._last_status >= self.status_interval:
            fields.append(f"STATUS={self._status(result)}")
            self._last_status = now
        if fields and self.notifier.send(*fields):
            self.ready = True

    def idle(self, capture: Any) -> None:
        """No frame came: ping the watchdog while ``capture`` is reconnecting within its bounds.

        A camera that is being reopened (backoff, bounded attempts) is not a hung process; an
        ``open()`` stuck past its timeout, or a source that simply stops, gets no ping.
        """
        interval = self.notifier.watchdog_interval
        if interval is None or not getattr(capture, "reconnecting", False):
            return
        now = time.monotonic()
        if now - self._last_watchdog >= interval and self.notifier.watchdog():
            self._last_watchdog = now

    def _status(self, result: FrameResult) -> str:
        if self.describe is not None:
            return self.describe()
        return f"running: {result.fps:.1f} fps, frame {result.frame_index}"

    def stop(self, status: str = "stopping") -> None:
        """Send STOPPING=1 once (from the signal handler or on close)."""
        if not self.stopped:
            self.stopped = True
            self.notifier.stopping(status)

    def close(self) -> None:
        self.stop()
        self.notifier.close()
