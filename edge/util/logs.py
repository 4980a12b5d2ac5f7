"""One logging path: modules log through ``logging.getLogger(__name__)``; the CLI configures it once.

Messages go to stderr as plain lines (``edge run``'s journal lines, warnings, reconnect notices):
no timestamps, since systemd's journal adds its own.
"""

from __future__ import annotations

import logging
import sys

ROOT_LOGGERS = ("edge", "train")


class _StderrHandler(logging.StreamHandler):
    """Writes to the *current* sys.stderr, so that a test's capture or a redirect is honoured."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass


def configure(level: int = logging.INFO) -> None:
    """Send the ``edge`` and ``train`` loggers to stderr, one plain line per message (idempotent)."""
    for name in ROOT_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
        logger.propagate = False
