"""Reading a file the tools were pointed at: a regular file under a size cap, checked before reading.

A FIFO would block forever, ``/dev/zero`` would never end, a sparse 40 GB file would exhaust the
memory: each is refused by name, in one line, before a byte is read, and the read itself is
bounded (a file that grows after the check is refused too).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from edge.errors import EdgeError

MB = 1_000_000


def kind(mode: int) -> str:
    """What a non-regular file is, in words ("FIFO", "character device", ...)."""
    for test, name in ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def read_capped(path: str | Path, limit: int, what: str, error: type[EdgeError] = EdgeError, *,
                too_large: str | None = None, too_large_hint: str | None = None) -> bytes:
    """The bytes of ``path``; ``error`` (one line naming the file) when it is not a regular file or
    is larger than ``limit`` bytes. OSError (a missing file, permissions, an I/O error) propagates,
    for the caller to word with its own hint. ``too_large`` words the size refusal ("larger than
    ..."; default: what a ``what`` file can be), ``too_large_hint`` says what to do about it."""
    path = Path(path)
    article = "an" if what[:1] in "aeiou" else "a"
    info = os.stat(path)  # FileNotFoundError propagates
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: is a {kind(info.st_mode)}, not {article} {what} file.", f"Give a regular {what} file.")
    if info.st_size > limit:
        phrase = too_large or f"larger than {article} {what} file can be ({limit / MB:,.0f} MB)"
        raise error(f"{path}: {info.st_size / MB:,.1f} MB is {phrase}.", too_large_hint)
    with open(path, "rb") as f:  # OSError (permissions, I/O) is the caller's to word
        data = f.read(limit + 1)  # bounded even if the file grows after the check
    if len(data) > limit:
        raise error(f"{path}: grew past {limit / MB:,.0f} MB while being read.")
    return data


def safe_name(text: str, fallback: str) -> str:
    """``text`` as a file name: runs of anything but letters, digits, ``_ . -`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) or fallback
