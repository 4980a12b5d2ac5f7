"""The capture archive: an SQLite file (WAL mode, the standard library) plus one JPEG per capture.

``DIR/archive.sqlite3`` holds one row per capture: its result, the model that made it, its quality
figures, and an expert's review (diagnosis, lesion id, note). ``DIR/images/<uid>.jpg`` holds the
picture at full resolution, ``DIR/thumbs/<uid>.jpg`` a small copy for lists and, when the model has
activation maps, ``DIR/explain/<uid>.jpg`` the part the model saw with its top class's map over it.

Crash safety: a capture's picture is written to a temporary name, flushed to disk and renamed
before its row is committed (``synchronous=FULL``), so every row the archive shows has its
picture, whatever the moment power is cut. A crash can at most leave a picture without a row
(never shown, reported by :meth:`Archive.check`) or a temporary file (removed at the next open).

One process writes an archive at a time (``archive.lock``, held while it is open for writing);
readers (``edge export``, a second look while the daemon runs) open it read-only.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from edge.archive.review import ArchiveError, Review

DB_FILE = "archive.sqlite3"
LOCK_FILE = "archive.lock"
IMAGES, THUMBS, EXPLAIN = "images", "thumbs", "explain"
SCHEMA_VERSION = 1
JPEG_QUALITY = 95
THUMB_WIDTH = 240

_SCHEMA = """
CREATE TABLE IF NOT EXISTS captures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT UNIQUE NOT NULL,
    created REAL NOT NULL,
    source TEXT NOT NULL,
    original TEXT,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    image_bytes INTEGER NOT NULL,
    status TEXT NOT NULL,
    reasons TEXT NOT NULL,
    label TEXT,
    score REAL,
    top_k TEXT NOT NULL,
    quality TEXT NOT NULL,
    model TEXT NOT NULL,
    frame INTEGER,
    diagnosis TEXT,
    lesion_id TEXT,
    note TEXT,
    reviewed REAL
);
CREATE INDEX IF NOT EXISTS captures_reviewed ON captures (reviewed);
"""


class ArchiveBusy(ArchiveError):
    """Another process has the archive open for writing."""


class ArchiveFull(ArchiveError):
    """The archive's disk is full: the capture was not stored, nothing stored before is lost."""


@dataclass(frozen=True)
class Capture:
    """One archived picture with its result and its review."""

    id: int
    uid: str
    created: float
    source: str  # "camera" (edge run), "classify" (a still photo)
    original: str | None  # the still photo's file name
    width: int
    height: int
    image_bytes: int
    status: str
    reasons: tuple[str, ...]
    label: str | None  # the model's label, only when its status is ok
    score: float | None
    top_k: tuple[dict[str, Any], ...]
    quality: dict[str, float]
    model: dict[str, Any]
    frame: int | None = None
    diagnosis: str | None = None
    lesion_id: str | None = None
    note: str | None = None
    reviewed: float | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def image(self) -> str:
        return f"{IMAGES}/{self.uid}.jpg"

    @property
    def thumb(self) -> str:
        return f"{THUMBS}/{self.uid}.jpg"

    @property
    def explanation(self) -> str:
        return f"{EXPLAIN}/{self.uid}.jpg"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "uid": self.uid, "created": round(self.created, 3),
                "created_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
                "source": self.source, "original": self.original, "width": self.width, "height": self.height,
                "image_bytes": self.image_bytes, "status": self.status, "reasons": list(self.reasons),
                "label": self.label, "score": self.score, "top_k": list(self.top_k), "quality": self.quality,
                "model": self.model, "frame": self.frame, "diagnosis": self.diagnosis, "lesion_id": self.lesion_id,
                "note": self.note, "reviewed": self.reviewed, **self.extra}


class Archive:
    """An archive folder, open for reading and (``write=True``) writing. Thread-safe."""

    def __init__(self, root: str | Path, *, write: bool = True, create: bool | None = None) -> None:
        self.root = Path(root)
        self.writable = write
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        create = write if create is None else create
        if not self.root.exists():
            if not create:
                raise ArchiveError(f"no archive at {self.root}", "Pass the folder given to --archive.")
            _makedirs(self.root)
        elif not self.root.is_dir():
            raise ArchiveError(f"{self.root} is a file, not an archive folder", "Give --archive a folder.")
        elif not write and not (self.root / DB_FILE).is_file():
            raise ArchiveError(f"{self.root} holds no archive ({DB_FILE} is missing)",
                               "Pass the folder given to --archive.")
        if write:
            self._take_lock()
        try:
            self._db = self._connect()
        except BaseException:
            self.close()
            raise
        if write:
            for d in (IMAGES, THUMBS, EXPLAIN):
                _makedirs(self.root / d)
            for tmp in [t for d in (IMAGES, THUMBS, EXPLAIN) for t in self.root.glob(f"{d}/.tmp-*")]:
                tmp.unlink(missing_ok=True)  # a capture that was being written when the power went

    # ---------------------------------------------------------------- opening

    def _take_lock(self) -> None:
        path = self.root / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ArchiveError(f"cannot open {path} ({e.strerror})", "Check the folder's permissions.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ArchiveBusy(f"the archive {self.root} is in use by another process (pid {holder})",
                              "One edge run (or edge classify --archive) writes an archive at a time: "
                              "stop the other one, or give this one its own --archive folder.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _connect(self) -> sqlite3.Connection:
        path = self.root / DB_FILE
        try:
            if self.writable:
                db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
            else:
                db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False,
                                     isolation_level=None, timeout=5)
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ArchiveError(f"{path} was written by a newer skin-edge (schema {version})",
                                   "Upgrade skin-edge on this machine.")
            if self.writable and version < SCHEMA_VERSION:
                db.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
            elif version < SCHEMA_VERSION:
                raise ArchiveError(f"{path} is not a skin-edge archive", "Pass the folder given to --archive.")
        except sqlite3.DatabaseError as e:
            raise ArchiveError(f"the archive database {path} is damaged ({e})",
                               f"Move {DB_FILE} aside (the pictures in {IMAGES}/ are kept) and start a new "
                               "archive, or restore it from a backup.") from None
        except sqlite3.OperationalError as e:
            raise ArchiveError(f"cannot open {path} ({e})", "Check the folder's permissions and free space.") from None
        return db

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            with self._lock:
                db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---------------------------------------------------------------- writing

    def add(self, rgb: np.ndarray | None = None, *, jpeg: bytes | None = None, source: str, status: str,
            reasons: Sequence[str] = (), top_k: Sequence[dict[str, Any]] = (), quality: dict[str, float] | None = None,
            model: dict[str, Any] | None = None, frame: int | None = None, original: str | None = None,
            created: float | None = None, explanation: bytes | None = None) -> Capture:
        """Store one picture (RGB pixels, or the bytes of a JPEG file as they are) with its result;
        ``explanation``: the JPEG of its activation-map overlay, kept next to it."""
        if not self.writable:
            raise ArchiveError(f"the archive {self.root} is open read-only")
        if jpeg is None:
            if rgb is None:
                raise ArchiveError("nothing to store: no picture")
            jpeg = encode_jpeg(rgb, JPEG_QUALITY)
        pixels = rgb if rgb is not None else cv2.cvtColor(_decode(jpeg), cv2.COLOR_BGR2RGB)
        h, w = pixels.shape[:2]
        uid = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(created or time.time()))}-{secrets.token_hex(4)}"
        image, thumb = self.root / IMAGES / f"{uid}.jpg", self.root / THUMBS / f"{uid}.jpg"
        explain_file = self.root / EXPLAIN / f"{uid}.jpg"
        ok = status == "ok"
        label = top_k[0]["label"] if ok and top_k else None
        score = float(top_k[0]["score"]) if top_k else None
        row = (uid, created or time.time(), source, original, w, h, len(jpeg), status, json.dumps(list(reasons)),
               label, score, json.dumps(list(top_k)), json.dumps(quality or {}), json.dumps(model or {}), frame)
        if self._db is None:
            raise ArchiveError(f"the archive {self.root} is closed: the capture was not stored")
        try:
            _write_durably(image, jpeg)
            _write_durably(thumb, encode_jpeg(_thumbnail(pixels), 80))
            if explanation is not None:
                _write_durably(explain_file, explanation)
            with self._lock:
                if self._db is None:
                    raise ArchiveError(f"the archive {self.root} is closed")
                cur = self._db.execute(
                    "INSERT INTO captures (uid, created, source, original, width, height, image_bytes, status, "
                    "reasons, label, score, top_k, quality, model, frame) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
                new_id = cur.lastrowid
        except OSError as e:
            _remove(image, thumb, explain_file)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._full() from None
            raise ArchiveError(f"cannot store the capture in {self.root} ({e.strerror or e})",
                               "Check the folder's permissions and free space.") from None
        except sqlite3.Error as e:
            _remove(image, thumb, explain_file)
            if "full" in str(e).lower():  # SQLITE_FULL: "database or disk is full"
                raise self._full() from None
            raise ArchiveError(f"cannot record the capture in {self.root / DB_FILE} ({e})") from None
        got = self.get(int(new_id))
        assert got is not None
        return got

    def _full(self) -> ArchiveFull:
        return ArchiveFull(f"the disk of the archive {self.root} is full: this capture was not stored",
                           "Free some space (or move the archive); earlier captures are intact.")

    def review(self, capture_id: int, review: Review) -> Capture:
        """Record (or replace) the expert's review of one capture; ArchiveError when there is no such id."""
        if not self.writable:
            raise ArchiveError(f"the archive {self.root} is open read-only")
        try:
            with self._lock:
                if self._db is None:
                    raise ArchiveError(f"the archive {self.root} is closed")
                cur = self._db.execute("UPDATE captures SET diagnosis = ?, lesion_id = ?, note = ?, reviewed = ? "
                                       "WHERE id = ?", (review.diagnosis, review.lesion_id, review.note,
                                                        time.time() if review.diagnosis else None, capture_id))
        except sqlite3.Error as e:
            raise ArchiveError(f"cannot record the review in {self.root / DB_FILE} ({e})",
                               "Check the free space; the capture is unchanged.") from None
        if cur.rowcount == 0:
            raise NoSuchCapture(capture_id)
        got = self.get(capture_id)
        assert got is not None
        return got

    # ---------------------------------------------------------------- reading

    def get(self, capture_id: int) -> Capture | None:
        rows = self._query("SELECT * FROM captures WHERE id = ?", (capture_id,))
        return self._capture(rows[0]) if rows else None

    def list(self, *, offset: int = 0, limit: int = 50, reviewed: bool | None = None) -> tuple[list[Capture], int]:
        """Newest first: (one page of captures, how many there are in all)."""
        where = "" if reviewed is None else ("WHERE reviewed IS NOT NULL" if reviewed else "WHERE reviewed IS NULL")
        total = self._query(f"SELECT COUNT(*) FROM captures {where}")[0][0]  # noqa: S608 (fixed strings)
        rows = self._query(f"SELECT * FROM captures {where} ORDER BY id DESC LIMIT ? OFFSET ?",  # noqa: S608
                           (int(limit), int(offset)))
        return [self._capture(r) for r in rows], int(total)

    def all(self) -> Iterator[Capture]:
        """Every capture, oldest first."""
        for row in self._query("SELECT * FROM captures ORDER BY id"):
            yield self._capture(row)

    def _capture(self, row: sqlite3.Row) -> Capture:
        cap = _capture(row)
        cap.extra["explained"] = (self.root / cap.explanation).is_file()  # the review page's overlay
        return cap

    def check(self) -> dict[str, int]:
        """How many captures, how many of their pictures are missing, how many pictures have no row."""
        uids = {c.uid for c in self.all()}
        files = {p.stem for p in (self.root / IMAGES).glob("*.jpg")}
        return {"captures": len(uids), "missing_images": len(uids - files), "orphan_images": len(files - uids)}

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            with self._lock:
                if self._db is None:
                    raise ArchiveError(f"the archive {self.root} is closed")
                self._db.row_factory = sqlite3.Row
                return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as e:
            raise ArchiveError(f"cannot read the archive database {self.root / DB_FILE} ({e})",
                               "If it is damaged, move it aside and restore a backup.") from None


class NoSuchCapture(ArchiveError):
    def __init__(self, capture_id: int) -> None:
        super().__init__(f"no capture {capture_id} in the archive", "List them with GET /api/captures.")


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ArchiveError("the picture could not be encoded as JPEG")
    return buf.tobytes()


def _decode(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ArchiveError("the picture is not a readable JPEG")
    return img


def _thumbnail(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    if w <= THUMB_WIDTH:
        return rgb
    return cv2.resize(rgb, (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA)


def _write_durably(path: Path, data: bytes) -> None:
    """Write under a temporary name, fsync, rename, fsync the folder: all of the file or none."""
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink(missing_ok=True)
        except OSError:
            pass


def _makedirs(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArchiveError(f"cannot create the archive folder {path} ({e.strerror})",
                           "Check the path and its permissions.") from None


def _capture(row: sqlite3.Row) -> Capture:
    return Capture(id=row["id"], uid=row["uid"], created=row["created"], source=row["source"],
                   original=row["original"], width=row["width"], height=row["height"],
                   image_bytes=row["image_bytes"], status=row["status"], reasons=tuple(json.loads(row["reasons"])),
                   label=row["label"], score=row["score"], top_k=tuple(json.loads(row["top_k"])),
                   quality=json.loads(row["quality"]), model=json.loads(row["model"]), frame=row["frame"],
                   diagnosis=row["diagnosis"], lesion_id=row["lesion_id"], note=row["note"], reviewed=row["reviewed"])
