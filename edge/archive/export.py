"""``edge export``: the archive's captures as a dataset in HAM10000's Kaggle layout, which
``train fit --data`` reads like the real download (and pools with it: ``--data HAM --data OUT``).

``OUT/HAM10000_metadata.csv`` (lesion_id, image_id, dx, dx_type, age, sex, localization) and
``OUT/images/<image_id>.jpg``. An expert's diagnosis gives ``dx_type`` ``expert``. Without
``--reviewed-only`` the captures nobody reviewed yet come too, labelled with the model's own label
and ``dx_type`` ``model`` (pseudo-labels: say so when training on them); captures reviewed as
``unknown``, uncertain captures nobody reviewed, and captures whose picture is gone are left out
and counted. The folder is written under a temporary name and renamed when complete, so an
interrupted export never looks like a dataset.
"""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from edge.archive.review import UNKNOWN, ArchiveError
from edge.archive.store import Archive, Capture
from edge.data.datasets import HAM_METADATA, LABELS
from edge.util.atomic import atomic_folder

COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
IMAGE_DIR = "images"


@dataclass
class ExportSummary:
    out: Path
    images: int = 0
    expert: int = 0
    model: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def as_dict(self) -> dict:
        return {"out": str(self.out), "images": self.images, "expert": self.expert, "model": self.model,
                "skipped": dict(self.skipped), "classes": dict(self.classes)}


def image_id(c: Capture) -> str:
    """Unique across archives (the capture's uid has its time and a random part)."""
    return f"SE_{c.uid}"


def export_dataset(archive_dir: str | Path, out: str | Path, *, reviewed_only: bool = False) -> ExportSummary:
    """Write the dataset; ArchiveError (nothing written) when there is nothing to export or OUT exists."""
    out = Path(out)
    if out.exists():
        raise ArchiveError(f"{out} already exists", "Choose a new --out folder; an export never overwrites.")
    summary = ExportSummary(out)
    with Archive(archive_dir, write=False) as archive:
        rows, copies = [], []
        for c in archive.all():
            row = _row(c, reviewed_only, summary)
            if row is None:
                continue
            src = archive.root / c.image
            if not src.is_file():
                summary.skip("picture missing")
                continue
            rows.append(row)
            copies.append((src, f"{row['image_id']}.jpg"))
        if not rows:
            what = "reviewed captures with a diagnosis" if reviewed_only else "captures with a label"
            raise ArchiveError(f"the archive {archive.root} holds no {what} to export",
                               "Review captures at /review first." if reviewed_only else None)
        try:
            with atomic_folder(out) as tmp:
                (tmp / IMAGE_DIR).mkdir()
                for src, name in copies:
                    shutil.copyfile(src, tmp / IMAGE_DIR / name)
                (tmp / HAM_METADATA).write_text(_csv(rows), encoding="utf-8")
                (tmp / "README.txt").write_text(_readme(archive.root, summary, reviewed_only), encoding="utf-8")
        except OSError as e:
            raise ArchiveError(f"cannot write the export to {out} ({e.strerror or e})",
                               "Check the free space and permissions; nothing was left behind.") from None
    return summary


def _row(c: Capture, reviewed_only: bool, summary: ExportSummary) -> dict[str, str] | None:
    if c.diagnosis == UNKNOWN:
        summary.skip("reviewed as unknown")
        return None
    if c.diagnosis:
        dx, dx_type = c.diagnosis, "expert"
    elif reviewed_only:
        summary.skip("not reviewed")
        return None
    elif c.label:
        dx, dx_type = c.label, "model"
    else:
        summary.skip("not reviewed and uncertain")
        return None
    if dx not in LABELS:
        raise ArchiveError(f"capture {c.id} is labelled {dx!r}, which is not one of HAM10000's classes "
                           f"({', '.join(LABELS)})", "The HAM10000 layout holds only those seven.")
    summary.images += 1
    summary.expert += dx_type == "expert"
    summary.model += dx_type == "model"
    summary.classes[dx] = summary.classes.get(dx, 0) + 1
    return {"lesion_id": c.lesion_id or f"SE_{c.uid}", "image_id": image_id(c), "dx": dx, "dx_type": dx_type,
            "age": "", "sex": "", "localization": ""}


def _csv(rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _readme(root: Path, s: ExportSummary, reviewed_only: bool) -> str:
    lines = [f"Captures exported from the skin-edge archive {root.resolve()} by `edge export`.",
             f"{s.images} images: {s.expert} with an expert's diagnosis (dx_type expert), "
             f"{s.model} labelled by the model alone (dx_type model).",
             "Only reviewed captures." if reviewed_only else
             "Model labels are pseudo-labels, not diagnoses: use --reviewed-only to leave them out.",
             "Not a medical dataset for diagnosis; research and education use only."]
    return "\n".join(lines) + "\n"
