"""Several datasets as one: `train fit --data A --data B` (HAM10000 plus exported reviews, say).

The records are pooled and split by lesion together, so a lesion id that appears in two datasets
(the same lesion photographed again and reviewed) still lands in one split; unrelated lesions
that happen to share an id only get kept together, which costs nothing. An image id found in two
datasets is refused: one of them would shadow the other in the split file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from edge.data.datasets import Dataset, DatasetError, label_order, load_dataset

_SHOW = 5


def load_datasets(roots: Sequence[Path], *, strict: bool = False) -> Dataset:
    """Read every root (each in its own layout) and pool them; one root is simply loaded."""
    roots = [Path(r) for r in roots]
    if not roots:
        raise DatasetError("no dataset given; pass --data DIR (repeat it to train on several)")
    if len({r.expanduser().resolve() for r in roots}) != len(roots):
        raise DatasetError("the same dataset folder is given twice; pass each --data once")
    if len(roots) == 1:
        return load_dataset(roots[0], strict=strict)
    parts = [(root, load_dataset(root, strict=strict)) for root in roots]
    return merge_datasets(parts)


def merge_datasets(parts: Sequence[tuple[Path, Dataset]]) -> Dataset:
    seen: Counter[str] = Counter(r.image_id for _, d in parts for r in d.records)
    twice = sorted(i for i, n in seen.items() if n > 1)
    if twice:
        more = ", ..." if len(twice) > _SHOW else ""
        raise DatasetError(f"{len(twice)} image ids appear in more than one dataset (first: "
                           f"{', '.join(twice[:_SHOW])}{more}); each image must be in one --data folder only")
    records = tuple(r for _, d in parts for r in d.records)
    labels = label_order({label for _, d in parts for label in d.labels})
    warnings = tuple(f"{root.name}: {w}" for root, d in parts for w in d.warnings)
    return Dataset(records, labels, "+".join(d.layout for _, d in parts), sum(d.missing for _, d in parts),
                   warnings, parts=tuple((str(root), d.layout, len(d.records)) for root, d in parts))


def dataset_of(dataset: Dataset) -> dict[Path, str]:
    """Each record's path -> the dataset root it came from (for per-dataset counts)."""
    out = {}
    for root, _, _ in dataset.parts:
        base = Path(root)
        for r in dataset.records:
            if r.path not in out and base in r.path.parents:
                out[r.path] = base.name
    return out
