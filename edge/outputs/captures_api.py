"""The archive over HTTP: ``/api/captures`` (list, take one), ``/api/captures/{id}`` (read, review)
and its pictures (``image.jpg``, ``thumb.jpg``, ``explain.jpg``: where the model looked), answered for :class:`~edge.outputs.handler.Handler`.

Writes (``POST``, ``PATCH``) take a JSON body (``Content-Type: application/json``, at most 64 KB):
a page on another site cannot send that without a CORS preflight, which this server never grants,
so a browser cannot be tricked into capturing or reviewing. Every answer is JSON, errors too:
``{"error": ..., "hint": ...}`` with 400 (a bad review), 404 (no such capture, no archive),
409 (nothing to capture yet), 413, 415, 507 (the archive's disk is full).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs

from edge.archive.desk import NothingToCapture
from edge.archive.review import ArchiveError, parse_review
from edge.archive.store import ArchiveFull, NoSuchCapture

log = logging.getLogger("edge.outputs.server")

MAX_BODY = 65536
PAGE_MAX = 200
_ONE = re.compile(r"^/api/captures/(\d{1,12})(/image\.jpg|/thumb\.jpg|/explain\.jpg)?$")


def handles(route: str) -> bool:
    return route == "/api/captures" or route.startswith("/api/captures/")


def answer(h: Any, method: str, route: str, query: str) -> None:
    """Answer one request under /api/captures; ``h`` is the request handler."""
    desk = h.server.live.desk
    if desk is None:
        return _error(h, 404, "this edge run keeps no archive", "Start it with --archive DIR.")
    one = _ONE.match(route)
    if route == "/api/captures":
        if method in ("GET", "HEAD"):
            return _list(h, desk, parse_qs(query))
        if method == "POST":
            return _take(h, desk)
    elif one is not None:
        capture_id, part = int(one.group(1)), one.group(2)
        if method in ("GET", "HEAD"):
            return _one(h, desk, capture_id, part)
        if method == "PATCH" and part is None:
            return _review(h, desk, capture_id)
    else:
        return _error(h, 404, f"no such path: {route}")
    allow = "GET, HEAD, POST" if route == "/api/captures" else ("GET, HEAD" if one.group(2) else "GET, HEAD, PATCH")
    h._json(405, {"error": f"method {method} not allowed here"}, [("Allow", allow)])


def _list(h: Any, desk: Any, q: dict[str, list[str]]) -> None:
    try:
        offset = int((q.get("offset") or ["0"])[0])
        limit = int((q.get("limit") or ["50"])[0])
    except ValueError:
        return _error(h, 400, "offset and limit must be whole numbers")
    if offset < 0 or not 1 <= limit <= PAGE_MAX:
        return _error(h, 400, f"offset must be 0 or more and limit 1 to {PAGE_MAX}")
    flag = (q.get("reviewed") or [""])[0].lower()
    reviewed = {"": None, "true": True, "1": True, "false": False, "0": False}.get(flag, "bad")
    if reviewed == "bad":
        return _error(h, 400, "reviewed must be true or false")
    try:
        items, total = desk.archive.list(offset=offset, limit=limit, reviewed=reviewed)
    except ArchiveError as e:
        return _archive_error(h, e)
    h._json(200, {"total": total, "offset": offset, "limit": limit,
                  "captures": [c.as_dict() for c in items]})


def _one(h: Any, desk: Any, capture_id: int, part: str | None) -> None:
    try:
        cap = desk.archive.get(capture_id)
    except ArchiveError as e:
        return _archive_error(h, e)
    if cap is None:
        return _error(h, 404, f"no capture {capture_id} in the archive", "List them with GET /api/captures.")
    if part is None:
        return h._json(200, cap.as_dict())
    rel = {"/image.jpg": cap.image, "/thumb.jpg": cap.thumb}.get(part, cap.explanation)
    if part == "/explain.jpg" and not cap.extra.get("explained"):
        return _error(h, 404, f"capture {capture_id} has no activation map",
                      "Only captures taken with a model that has activation maps (bundles from train quantize "
                      "since they were added) have one.")
    try:
        data = (desk.archive.root / rel).read_bytes()
    except OSError:
        return _error(h, 404, f"the picture of capture {capture_id} is missing from the archive ({rel})",
                      "It was deleted or moved; the capture's result and review are kept.")
    h._send(200, data, "image/jpeg")


def _take(h: Any, desk: Any) -> None:
    body = _body(h)
    if body is None:
        return
    try:
        cap = desk.capture()
    except NothingToCapture as e:
        return _error(h, 409, e.message, e.hint)
    except ArchiveError as e:
        log.warning("capture not stored: %s", e.message)
        return _archive_error(h, e)
    h._json(201, {**cap.as_dict(), "capture_ms": round(desk.last_capture_ms or 0.0, 3)},
            [("Location", f"/api/captures/{cap.id}")])


def _review(h: Any, desk: Any, capture_id: int) -> None:
    body = _body(h)
    if body is None:
        return
    try:
        review = parse_review(body, desk.classes)
    except ArchiveError as e:
        return _error(h, 400, e.message, e.hint)
    try:
        cap = desk.review(capture_id, review)
    except NoSuchCapture as e:
        return _error(h, 404, e.message, e.hint)
    except ArchiveError as e:
        return _archive_error(h, e)
    h._json(200, cap.as_dict())


def _body(h: Any) -> Any:
    """The request's JSON body ({} when empty), or None after answering why it cannot be had."""
    ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    try:
        length = int(h.headers.get("Content-Length") or 0)
    except ValueError:
        length = -1
    if length < 0:
        _error(h, 400, "bad Content-Length")
        return None
    if length > MAX_BODY:
        h.close_connection = True
        _error(h, 413, f"the body is larger than {MAX_BODY} bytes")
        return None
    raw = h.rfile.read(length) if length else b""
    if ctype != "application/json":
        _error(h, 415, "send the body as JSON", "Set Content-Type: application/json (an empty object is fine).")
        return None
    try:
        return json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        _error(h, 400, f"the body is not valid JSON ({type(e).__name__})")
        return None


def _archive_error(h: Any, e: ArchiveError) -> None:
    _error(h, 507 if isinstance(e, ArchiveFull) else 500, e.message, e.hint)


def _error(h: Any, code: int, message: str, hint: str | None = None) -> None:
    h._json(code, {"error": message, **({"hint": hint} if hint else {})})
