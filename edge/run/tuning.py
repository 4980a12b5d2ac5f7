"""Process settings for a frame loop: OpenCV's thread pool and glibc's handling of frame buffers.

Both are process-wide, which is why the pipeline sets them for the length of a run and nothing
else in edge touches them. Measured on a 2-core x86-64 machine with the demo bundle
(docs/benchmarks.md, ``benchmarks/bench_naive.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)

# mallopt(3) parameters
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
FRAME_HEAP_BYTES = 32 * 1024 * 1024  # the largest a fixed mmap threshold may be on 64-bit glibc
TRIM_BYTES = 128 * 1024 * 1024

_heap_set = False


def keep_frames_on_heap() -> bool:
    """Let glibc serve frame-sized buffers (a 640x480 frame is 0.9 MB) from the heap.

    By default every buffer over 128 KB is a fresh mmap: each decoded frame, its RGB copy and each
    crop fault in their pages, and each free unmaps them, which interrupts the other thread's core
    to flush its TLB. Between threads glibc's self-adjusting threshold never settles, and a frame
    loop spends a fifth of its CPU time on it. Freed memory stays for reuse up to ``TRIM_BYTES``;
    RSS is bounded by the frames alive at once. Once per process; False where libc is not glibc.
    """
    global _heap_set
    if _heap_set:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = getattr(libc, "mallopt", None)
        if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):
            return False
        _heap_set = bool(mallopt(M_MMAP_THRESHOLD, FRAME_HEAP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
    except OSError as e:
        log.debug("mallopt unavailable: %s", e)
        return False
    return _heap_set


@contextmanager
def frame_loop() -> Iterator[None]:
    """For the length of a run: OpenCV on the calling thread only, frames on the heap.

    Every OpenCV call on a frame (colour, quality, resize) is small; split over OpenCV's pool, its
    workers spin on the cores the interpreter needs: a third more CPU per frame and no speed. The
    pool's old size comes back on exit.
    """
    import cv2  # noqa: PLC0415

    keep_frames_on_heap()
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)
