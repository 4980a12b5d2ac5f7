"""Shared pieces of the ``train`` commands (error handling is the device side's, one place)."""

from edge.commands._common import fail, handles_errors, note, print_json

__all__ = ["fail", "handles_errors", "note", "print_json"]
