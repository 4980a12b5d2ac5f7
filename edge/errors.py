"""Domain errors. Each carries one line saying what is wrong and, where known, what to do."""

from __future__ import annotations


class EdgeError(Exception):
    """Base class. ``str(err)`` is the one line a person sees."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        sep = " " if message.rstrip().endswith((".", "!", "?", ":")) else ". "
        super().__init__(message if not hint else f"{message}{sep}{hint}")


class ModelError(EdgeError):
    """The model file is missing, damaged, not TFLite, or not an image classifier."""


class BundleError(EdgeError):
    """A model bundle is incomplete or inconsistent (checksum, labels, model.json)."""


class RuntimeNotFound(EdgeError):
    """No TFLite runtime could be imported."""


class DelegateError(EdgeError):
    """The Edge TPU delegate could not be loaded."""


class ImageError(EdgeError):
    """An image could not be read or is not acceptable (corrupt, empty, too large)."""


class SourceError(EdgeError):
    """A frame source (camera, video, stream, folder) cannot be opened or has failed."""


class ConfigError(EdgeError):
    """A configuration file or option is invalid."""


def first_line(error: BaseException, *, last: bool = False, limit: int = 240) -> str:
    """One line that says what ``error`` is: its message's first non-blank line (``last``: the last
    one, where a library puts the cause at the end, as OpenCV does), else the exception's type name.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return (lines[-1] if last else lines[0])[:limit]
