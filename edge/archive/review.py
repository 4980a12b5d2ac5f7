"""What an expert records for a capture, and the check of a review sent to ``PATCH /api/captures/{id}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from edge.errors import EdgeError

UNKNOWN = "unknown"  # a reviewed capture whose diagnosis the expert could not give
MAX_NOTE, MAX_LESION_ID = 4000, 64


class ArchiveError(EdgeError):
    """The archive cannot do what was asked; the message says why and what to do."""


@dataclass(frozen=True)
class Review:
    """What an expert records for a capture; validated by :func:`parse_review`."""

    diagnosis: str | None
    lesion_id: str | None
    note: str | None


def parse_review(body: Any, classes: Sequence[str]) -> Review:
    """A PATCH body ``{"diagnosis", "lesion_id", "note"}`` checked against the model's classes."""
    if not isinstance(body, dict):
        raise ArchiveError("a review is a JSON object", 'Send {"diagnosis": ..., "lesion_id": ..., "note": ...}.')
    unknown = sorted(set(body) - {"diagnosis", "lesion_id", "note"})
    if unknown:
        raise ArchiveError(f"unknown field(s) {', '.join(map(repr, unknown))}",
                           "A review has diagnosis, lesion_id and note.")
    diagnosis = body.get("diagnosis")
    allowed = list(classes) + [UNKNOWN]
    if diagnosis is not None and diagnosis not in allowed:
        raise ArchiveError(f"unknown diagnosis {str(diagnosis)[:40]!r}", f"Use one of: {', '.join(allowed)}.")
    lesion = body.get("lesion_id")
    if lesion is not None:
        if not isinstance(lesion, str) or len(lesion.strip()) > MAX_LESION_ID or \
                any(not (c.isalnum() or c in "-_.") for c in lesion.strip()):
            raise ArchiveError("lesion_id must be up to 64 letters, digits, '-', '_' or '.'",
                               "Use the same id for every capture of one lesion, e.g. L-0042.")
        lesion = lesion.strip() or None
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise ArchiveError(f"note must be text of at most {MAX_NOTE} characters")
    return Review(diagnosis, lesion, note.strip() if isinstance(note, str) and note.strip() else None)
