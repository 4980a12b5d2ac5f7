"""One line per failed HTTP request, rate-limited, never a traceback: a client that goes away
mid-request (or floods the server with such requests) cannot fill the journal."""

from __future__ import annotations

import logging
import threading
import time

from edge.errors import first_line

log = logging.getLogger("edge.outputs.server")

# the client closed or reset the connection, or stopped reading: nothing the server did wrong
DROPPED = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class RequestErrors:
    """Logs the first failure, then at most one line per ``interval`` seconds with how many more."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.total = 0
        self._lock = threading.Lock()
        self._last = -float("inf")
        self._suppressed = 0

    def report(self, client: str, error: BaseException | None) -> None:
        with self._lock:
            self.total += 1
            now = time.monotonic()
            if now - self._last < self.interval:
                self._suppressed += 1
                return
            more, self._suppressed, self._last = self._suppressed, 0, now
        what = type(error).__name__ if error is not None else "error"
        since = f"; {more} more failed request(s) in the last {self.interval:.0f} s" if more else ""
        if isinstance(error, DROPPED):
            log.warning(f"HTTP client {client} went away mid-request ({what}){since}")
        else:
            log.warning(f"HTTP request from {client} failed ({what}: {first_line(error) if error else ''}){since}")
            log.debug("HTTP request failure", exc_info=error)
