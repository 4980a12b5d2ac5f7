"""What the fuzzers feed hostile bytes to: the device's own parsers, through the code paths users hit.

Each target takes bytes and either returns (the input was accepted, or refused with the project's
own one-line error) or raises: any other exception is a finding. ``EXPECTED`` names the refusals.

- ``tflite``: :func:`edge.model.tflite_file.parse_tflite` (the reader and the structural check that
  run before any native code sees a model);
- ``image``: :func:`edge.ops.image.decode_image` (header sniffing, the pixel cap, the format list,
  truncation checks, then OpenCV's decoder);
- ``config``: :func:`edge.run.config.parse_config` (TOML, then every key's check);
- ``http``: one raw request through the live server's real request handler
  (:class:`edge.outputs.handler.Handler`, with a token and an archive), over a socket pair.
"""

from __future__ import annotations

import socket
from typing import Callable

from edge.errors import EdgeError

EXPECTED = (EdgeError,)  # ModelError, ImageError, ConfigError: the one-line refusals


def tflite(data: bytes) -> None:
    from edge.model.tflite_file import parse_tflite

    try:
        parse_tflite(data)
    except EXPECTED:
        pass


def image(data: bytes) -> None:
    from edge.ops.image import decode_image

    try:
        decode_image(data)
    except EXPECTED:
        pass


def config(data: bytes) -> None:
    from edge.run.config import parse_config

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # load_config refuses it in one line before parsing
    try:
        parse_config(text, "fuzz.toml")
    except EXPECTED:
        pass


_LIVE: list = []


def _live_server():
    """One LiveServer with a token and an archive, bound to a free loopback port, for the whole run."""
    if not _LIVE:
        import tempfile

        from edge.archive.desk import CaptureDesk
        from edge.archive.store import Archive
        from edge.outputs.server import LiveServer

        desk = CaptureDesk(Archive(tempfile.mkdtemp(prefix="edge-fuzz-archive-")), model={"name": "fuzz"},
                           classes=("mel", "nv"))
        live = LiveServer("127.0.0.1", 0, token="fuzz-token", desk=desk,
                          model_info={"name": "fuzz", "archive": True, "classes": []}).start()
        _LIVE.append(live)
    return _LIVE[0]


def http(data: bytes) -> None:
    """Feed ``data`` as the bytes a client sent, then end the connection; the handler's answer is read
    and must be HTTP (or nothing, for a request line too broken to answer)."""
    from edge.outputs.handler import Handler

    if b"/stream.mjpg" in data:
        return  # an endless stream by design (its viewers and limits: tests/test_server.py)
    live = _live_server()
    ours, theirs = socket.socketpair()
    try:
        ours.settimeout(5)
        theirs.settimeout(5)
        ours.sendall(data[:65536])
        ours.shutdown(socket.SHUT_WR)
        Handler(theirs, ("127.0.0.1", 40000), live._httpd)
        theirs.close()
        answer = b"".join(iter(lambda: ours.recv(65536), b""))
        if answer and not answer.startswith(b"HTTP/1."):
            raise AssertionError(f"not an HTTP answer: {answer[:60]!r}")
    finally:
        ours.close()
        theirs.close()


TARGETS: dict[str, Callable[[bytes], None]] = {"tflite": tflite, "image": image, "config": config, "http": http}
