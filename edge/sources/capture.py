"""Capture in its own thread, handing inference always the newest frame.

The thread also runs part of the pipeline's per-frame preparation (quality measures, resizing to
the model's input), so that work overlaps inference instead of adding to it: :class:`Share` gives
it the fraction of frames that makes both threads equally busy, and inference prepares the rest.
A source with ``read_bgr()`` (OpenCV's) is read unconverted: ``Frame.bgr`` says so, the model's
preprocessing swaps the channels of the model-sized image, and ``Frame.rgb()`` converts the whole
frame only for outputs that show or keep it.

A one-slot mailbox sits between the capture thread and inference: a new frame replaces one not
yet taken (counted as dropped), so no queue builds up and latency stays one frame. Sources whose
every frame matters (an image folder; a video file read with ``realtime=False``) use the slot
losslessly instead: capture waits until inference took the previous frame.

A camera or stream that stops delivering is reopened with exponential backoff; after
``Reconnect.attempts`` failed tries in a row capture stops with a SourceError, so the daemon can
exit non-zero and systemd restart it. The end of a file or folder is a normal end.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from edge.errors import ImageError, SourceError
from edge.sources.base import Source, Views
from edge.sources.opencv import bgr_to_rgb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """One captured frame, or the error reading it."""

    index: int  # position in the source, counting every frame read (dropped ones too)
    image: np.ndarray | None
    captured: float  # time.perf_counter() when the frame was read
    capture_ms: float  # time spent reading and decoding it
    error: str | None = None
    prepared: Any = None  # what the ``prepare`` callable made of the image, in the capture thread
    analysis: np.ndarray | None = None  # the image to prepare when it is not ``image`` (two streams)
    bgr: bool = False  # ``image`` is in OpenCV's blue-first order (a source's ``read_bgr``)

    @property
    def to_prepare(self) -> np.ndarray | None:
        """What the model is to see: the analysis stream's image where there are two."""
        return self.image if self.analysis is None else self.analysis

    def rgb(self) -> np.ndarray | None:
        """``image`` in RGB order, for outputs that show or keep the frame (converted on each call)."""
        return bgr_to_rgb(self.image) if self.bgr and isinstance(self.image, np.ndarray) else self.image


@dataclass(frozen=True)
class Reconnect:
    """Backoff for a lost camera or stream: delay, doubling up to max_delay, give up after attempts.

    While a reconnect is in progress the daemon keeps systemd's watchdog fed (the source is being
    retried, the process is not hung), but only until ``open_timeout`` after the current attempt
    began: an ``open()`` that hangs in the driver stops the pings and the watchdog restarts the
    service, as it should.
    """

    delay: float = 0.5
    max_delay: float = 10.0
    attempts: int = 10  # failed reopen attempts in a row before giving up; 0 = never give up
    open_timeout: float = 15.0  # seconds one reopen attempt may take (streams time out after 5)


class Mailbox:
    """A one-slot handover between one producer and one consumer."""

    def __init__(self, lossless: bool = False) -> None:
        self.lossless = lossless
        self._cond = threading.Condition()
        self._item: Frame | None = None
        self._closed = False
        self._waiting = False  # the consumer is blocked in take()

    def put(self, frame: Frame, stop: threading.Event) -> bool:
        """Leave a frame; True when it replaced one never taken (a dropped frame)."""
        with self._cond:
            if self.lossless:
                while self._item is not None and not stop.is_set():
                    self._cond.wait(0.05)
                if stop.is_set():
                    return False
            dropped = self._item is not None
            self._item = frame
            self._cond.notify_all()
            return dropped

    def take(self, timeout: float) -> Frame | None:
        """The newest frame, waiting up to ``timeout`` s; None when there is none."""
        with self._cond:
            if self._item is None and not self._closed:
                self._waiting = True
                self._cond.wait(timeout)
                self._waiting = False
            item, self._item = self._item, None
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    @property
    def consumer_idle(self) -> bool:
        """The consumer waits for a frame right now (a hint: read without the lock)."""
        return self._waiting

    @property
    def finished(self) -> bool:
        """The producer is done and nothing is left to take."""
        with self._cond:
            return self._closed and self._item is None


class Share:
    """Which thread prepares the next frame, so that both finish a frame in the same time.

    With R the capture thread's time to read a frame, I the consumer's time to process one
    (prepared) and P the preparation's, the capture thread takes the fraction
    f = (I + P - R) / 2P of the preparations (0 <= f <= 1): then R + fP = I + (1 - f)P and
    neither thread waits for the other. A camera slower than inference gives f = 0; a model much
    slower than decoding, f = 1. The times are running averages; the fraction is spread evenly
    over frames (a credit counter). Before the consumer has reported, or when it waits right now,
    the capture thread does not make it wait longer.
    """

    ALPHA = 0.05  # weight of the newest measurement

    def __init__(self) -> None:
        self.read_ms = self.prepare_ms = self.inference_ms = None
        self._credit = 0.0

    def _avg(self, old: float | None, new: float) -> float:
        return new if old is None else old + self.ALPHA * (new - old)

    def read(self, ms: float) -> None:
        self.read_ms = self._avg(self.read_ms, ms)

    def prepared(self, ms: float) -> None:
        self.prepare_ms = self._avg(self.prepare_ms, ms)

    def inferred(self, ms: float, prepare_ms: float | None) -> None:  # from the consumer's thread
        self.inference_ms = self._avg(self.inference_ms, ms)
        if prepare_ms is not None:
            self.prepared(prepare_ms)

    @property
    def fraction(self) -> float:
        r, p, i = self.read_ms, self.prepare_ms, self.inference_ms
        if r is None or p is None or i is None or p <= 0:
            return 1.0
        return min(1.0, max(0.0, (i + p - r) / (2 * p)))

    def here(self, consumer_idle: bool) -> bool:
        """True: the capture thread prepares this frame."""
        if consumer_idle:
            return False
        self._credit += self.fraction
        if self._credit >= 1.0:
            self._credit -= 1.0
            return True
        return False


class Capture:
    """Reads ``source`` in a background thread. Call :meth:`start`, then :meth:`take` frames."""

    def __init__(self, source: Source, *, realtime: bool = True, reconnect: Reconnect = Reconnect(),
                 on_notice: Callable[[str], None] | None = None,
                 prepare: Callable[[np.ndarray, bool], Any] | None = None) -> None:
        self.source = source
        # per-frame work done here, overlapping the consumer's (preprocessing): prepare(image, bgr)
        self.prepare = prepare
        self.reconnect = reconnect
        self.on_notice = on_notice  # also told of reconnects (the daemon shows them in `systemctl status`)
        self.realtime = realtime
        self.error: SourceError | None = None
        self.captured = 0  # frames read (including bad ones)
        self.dropped = 0  # frames replaced before inference took them
        self.errors = 0  # frames that could not be read or decoded
        self.reconnects = 0  # successful reopenings
        self._failures = 0  # failed reopen attempts since the last good frame
        self._alive_until: float | None = None  # while reconnecting: monotonic time the current wait/attempt must end
        self._stop = threading.Event()
        self._mailbox = Mailbox()
        self._share = Share()
        self._thread: threading.Thread | None = None

    @property
    def paced(self) -> bool:
        """Video files in real time: frames are released at the file's frame rate."""
        return self.realtime and self.source.finite and bool(self.source.rate)

    def start(self) -> None:
        """Open the source (SourceError here when it cannot be) and start the thread."""
        self.source.open()
        self._mailbox = Mailbox(lossless=self.source.finite and not self.paced)
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def take(self, timeout: float = 0.1) -> Frame | None:
        return self._mailbox.take(timeout)

    def report(self, inference_ms: float, prepare_ms: float | None = None) -> None:
        """The consumer's time on a frame, without preparing it, and the preparation if it did it."""
        self._share.inferred(inference_ms, prepare_ms)

    @property
    def finished(self) -> bool:
        """The source ended (or failed, or capture was stopped) and every frame was taken."""
        return self._mailbox.finished

    def stop(self) -> None:
        self._stop.set()
        self._mailbox.wake()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread (which releases the source); True when it has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ---------------------------------------------------------------- the thread

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as e:  # noqa: BLE001 - any failure ends capture and is reported by the daemon
            self.error = SourceError(f"{self.source.name}: capture failed ({type(e).__name__}: {e}).")
        finally:
            try:
                self.source.close()
            finally:
                self._mailbox.close()

    def _loop(self) -> None:
        index, started = 0, time.perf_counter()
        read_bgr = getattr(self.source, "read_bgr", None)
        read, bgr = (read_bgr, True) if callable(read_bgr) else (self.source.read, False)
        while not self._stop.is_set():
            if self.paced:
                wait = started + index / float(self.source.rate or 1.0) - time.perf_counter()
                if wait > 0 and self._stop.wait(wait):
                    return
            t0 = time.perf_counter()
            try:
                image, error = read(), None
            except ImageError as e:
                image, error = None, str(e)
            except SourceError as e:
                if self.source.finite:  # a file that breaks off is not a camera to reconnect to
                    self.error = e
                    return
                if not self._reopen(e.message):
                    return
                continue
            t1 = time.perf_counter()
            if image is None and error is None:
                if self.source.finite or not self._reopen("no frame from the source"):
                    return
                continue
            self._failures = 0 if error is None else self._failures
            self.captured += 1
            self.errors += error is not None
            analysis = image
            if isinstance(image, Views):  # two streams: the model sees one, the page shows the other
                image, analysis = image.display, image.analysis
            prepared = None
            if self.prepare is not None and analysis is not None and self._share.here(self._mailbox.consumer_idle):
                t2 = time.perf_counter()
                prepared = self.prepare(analysis, bgr)
                self._share.prepared((time.perf_counter() - t2) * 1e3)
            read_ms = (t1 - t0) * 1e3
            self._share.read(read_ms)
            frame = Frame(index, image, t1, read_ms, error, prepared,
                          analysis if analysis is not image else None, bgr)
            if self._mailbox.put(frame, self._stop):
                self.dropped += 1
            index += 1

    @property
    def reconnecting(self) -> bool:
        """True while a bounded reconnect is making progress (waiting its backoff, or opening within
        ``Reconnect.open_timeout``): the process is alive although no frame arrives."""
        until = self._alive_until
        return until is not None and time.monotonic() < until

    def _notice(self, message: str) -> None:
        log.warning(message)
        if self.on_notice is not None:
            self.on_notice(message)

    def _reopen(self, reason: str) -> bool:
        """Close and reopen the source with backoff; False when stopped or given up (self.error set)."""
        policy = self.reconnect
        self.source.close()
        while not self._stop.is_set():
            self._failures += 1
            if policy.attempts and self._failures > policy.attempts:
                self.error = SourceError(f"{self.source.name}: {reason}; gave up after {policy.attempts} "
                                         "reconnect attempts.", "Check the camera or stream.")
                return False
            delay = min(policy.delay * 2 ** (self._failures - 1), policy.max_delay)
            limit = f"/{policy.attempts}" if policy.attempts else ""
            self._notice(f"{self.source.name}: {reason}; reconnecting in {delay:.1f} s "
                         f"(attempt {self._failures}{limit})")
            self._alive_until = time.monotonic() + delay + policy.open_timeout
            try:
                if self._stop.wait(delay):
                    return False
                self.source.open()
            except SourceError as e:
                reason = e.message
                continue
            finally:
                self._alive_until = None
            self.reconnects += 1
            self._notice(f"{self.source.name}: reconnected")
            return True
        return False
