"""Atomic writes: a file or a folder appears complete under its final name, or not at all.

Everything is written under a temporary name beside the target (same file system), flushed, then
renamed. A crash, a full disk or Ctrl-C leaves the old version (or nothing) and at worst a
hidden ``.NAME.*`` temporary, never a half-written file that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _replacing(path: Path, mode: int, gid: int | None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.chmod(tmp, mode)
        if gid is not None:
            os.chown(tmp, 0, gid)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes, *, mode: int = 0o644, gid: int | None = None,
                fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _replacing(path, mode, gid) as tmp, open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    if fsync:
        _fsync_dir(path.parent)
    return path


def write_text(path: str | Path, text: str, *, mode: int = 0o644, gid: int | None = None,
               fsync: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"), mode=mode, gid=gid, fsync=fsync)


def copy_file(src: str | Path, dest: str | Path, *, mode: int = 0o644) -> Path:
    """Copy ``src`` to ``dest`` atomically (a reader never sees a partial copy)."""
    dest = Path(dest)
    with _replacing(dest, mode, None) as tmp:
        shutil.copyfile(src, tmp)
    return dest


@contextlib.contextmanager
def atomic_folder(out: str | Path, *, replace: bool = False, mode: int = 0o755) -> Iterator[Path]:
    """Build a folder under a temporary name and give it its final name only when the block succeeds.

    ``with atomic_folder(out) as tmp: ...write into tmp...``. On success ``tmp`` becomes ``out``
    (an existing ``out`` is swapped out first and removed when ``replace``; FileExistsError
    otherwise). On any exception, Ctrl-C included, the temporary folder is removed and ``out`` is
    left as it was.
    """
    out = Path(out)
    if out.exists() and not replace:
        raise FileExistsError(str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, mode)
        publish_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish_folder(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out``, swapping out (then removing) an existing ``out``."""
    if out.exists() or out.is_symlink():
        old = out.with_name(f".{out.name}.{secrets.token_hex(4)}.old")
        out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:
            old.rename(out)  # put the previous version back
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)
    _fsync_dir(out.parent)
