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
