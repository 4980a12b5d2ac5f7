"""Dataset readers for HAM10000, ISIC 2018 Task 3 and class folders, and a lesion-safe split.

HAM10000 holds several photographs of many lesions. Images of one lesion look alike, so a split that
puts one lesion in both train and test overstates accuracy. `split_by_lesion` keeps each in one split.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import EdgeError

LABELS: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
"""HAM10000 diagnosis codes in canonical label order."""

SPLITS: tuple[str, ...] = ("train", "val", "test")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
HAM_METADATA = "HAM10000_metadata.csv"
HAM_IMAGE_DIRS = ("ham10000_images_part_1", "ham10000_images_part_2", "images")
ISIC_COLUMNS = ("image", "mel", "nv", "bcc", "akiec", "bkl", "df", "vasc")
SPLIT_COLUMNS = ("image_id", "lesion_id", "label", "split")
_SHOW = 5  # how many example ids an error or warning names


class DatasetError(EdgeError):
    """A dataset on disk cannot be used as it is; the message says what to fix."""


@dataclass(frozen=True)
class Record:
    """One image: its id, lesion, label, file, and (key, value) metadata (HAM10000's age, sex, site)."""

    image_id: str
    lesion_id: str
    label: str
    path: Path
    meta: tuple[tuple[str, str], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Dataset:
    """Images found under a dataset root, with the label order the model uses."""

    records: tuple[Record, ...]
    labels: tuple[str, ...]
    layout: str  # "ham10000" | "isic2018" | "folders"
    missing: int = 0  # images listed in a CSV but not found on disk
    warnings: tuple[str, ...] = ()
    parts: tuple[tuple[str, str, int], ...] = ()  # pooled datasets (edge.data.merge): (root, layout, images)


@dataclass(frozen=True)
class _Entry:
    image_id: str
    lesion_id: str
    label: str
    meta: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------- loading


def load_dataset(root: Path, *, strict: bool = False) -> Dataset:
    """Read the dataset under `root`, detecting HAM10000, ISIC 2018 or class-folder layout.

    Images listed in a CSV but absent on disk are dropped with a warning,
    or raise DatasetError when `strict` is true.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist; check the path")
    if not root.is_dir():
        raise DatasetError(f"{root} is a file, not a folder; pass the folder that holds the dataset")

    ham_csv = _find_file(root, HAM_METADATA)
    if ham_csv is not None:
        return _load_ham10000(root, ham_csv, strict)
    truth = sorted(p for p in root.glob("*GroundTruth*.csv") if p.is_file())
    if len(truth) > 1:
        names = ", ".join(p.name for p in truth)
        raise DatasetError(f"{root} holds several ground-truth CSVs ({names}); keep one per dataset folder")
    if truth:
        return _load_isic2018(root, truth[0], strict)
    class_dirs = {d: _image_files(d) for d in _subdirs(root)}
    class_dirs = {d: files for d, files in class_dirs.items() if files}
    if len(class_dirs) >= 2:
        return _load_folders(root, class_dirs)
    found = f" (only one class folder with images: {next(iter(class_dirs)).name})" if class_dirs else ""
    raise DatasetError(
        f"no dataset found in {root}{found}: looked for {HAM_METADATA}, an ISIC 2018 *GroundTruth*.csv, "
        "or at least two class sub-folders of images; point to the folder that holds one of these"
    )


def _load_ham10000(root: Path, csv_path: Path, strict: bool) -> Dataset:
    entries = []
    for line, row in _read_csv(csv_path, ("lesion_id", "image_id", "dx")):
        image_id = _required(row, "image_id", csv_path, line)
        lesion_id = _required(row, "lesion_id", csv_path, line)
        meta = tuple((k, v) for k in ("age", "sex", "localization") if (v := (row.get(k) or "").strip()))
        entries.append(_Entry(image_id, lesion_id, _parse_label(row["dx"], csv_path, line, image_id), meta))
    dirs = [d for d in _subdirs(root) if d.name.lower() in HAM_IMAGE_DIRS] + [root]
    return _resolve(entries, dirs, csv_path, "ham10000", strict, ())


def _load_isic2018(root: Path, csv_path: Path, strict: bool) -> Dataset:
    groupings, warnings = _read_lesion_groupings(root)
    entries = []
    for line, row in _read_csv(csv_path, ISIC_COLUMNS):
        image_id = _required(row, "image", csv_path, line)
        label = _one_hot_label(row, csv_path, line, image_id)
        entries.append(_Entry(image_id, groupings.get(image_id, image_id), label))
    if groupings:
        ungrouped = [e.image_id for e in entries if e.image_id not in groupings]
        if ungrouped:
            warnings += (f"{len(ungrouped)} images have no lesion grouping (first: {_first(ungrouped)}); "
                         "each is treated as its own lesion",)
    inputs = sorted(_subdirs(root), key=lambda d: ("input" not in d.name.lower(), d.name))
    return _resolve(entries, inputs + [root], csv_path, "isic2018", strict, warnings)


def _read_lesion_groupings(root: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    files = sorted(p for p in root.glob("*LesionGroupings*.csv") if p.is_file())
    if not files:
        return {}, (
            "no *LesionGroupings*.csv found, so each image is treated as its own lesion and the split "
            "cannot be lesion-safe; add ISIC2018_Task3_Training_LesionGroupings.csv to the dataset folder",
        )
    groups = {}
    for line, row in _read_csv(files[0], ("image", "lesion_id")):
        groups[_required(row, "image", files[0], line)] = _required(row, "lesion_id", files[0], line)
    return groups, ()


def _one_hot_label(row: Mapping[str, str], csv_path: Path, line: int, image_id: str) -> str:
    try:
        scores = {code: float(row[code]) for code in LABELS}
    except ValueError:
        raise DatasetError(
            f"{csv_path.name} line {line}: non-numeric label column for {image_id}; expect 0.0 or 1.0"
        ) from None
    hits = [code for code, value in scores.items() if value >= 0.5]
    if len(hits) != 1:
        raise DatasetError(
            f"{csv_path.name} line {line}: {image_id} needs exactly one label column set to 1.0, "
            f"found {len(hits)}; fix that row"
        )
    return hits[0]


def _load_folders(root: Path, class_dirs: Mapping[Path, list[Path]]) -> Dataset:
    names = {d: d.name.lower() if d.name.lower() in LABELS else d.name for d in class_dirs}
    labels = label_order(names.values())
    seen: dict[str, Path] = {}
    records = []
    for d in sorted(class_dirs, key=lambda d: labels.index(names[d])):
        for path in class_dirs[d]:
            if path.stem in seen:
                raise DatasetError(
                    f"image name {path.stem} appears twice ({seen[path.stem]} and {path}); "
                    "rename or remove one so every image id is unique"
                )
            seen[path.stem] = path
            records.append(Record(path.stem, path.stem, names[d], path))
    warnings = (
        "class folders carry no lesion ids, so each image is treated as its own lesion "
        "and the split cannot be lesion-safe",
    )
    return Dataset(tuple(records), labels, "folders", 0, warnings)


def label_order(names: Iterable[str]) -> tuple[str, ...]:
    present = set(names)
    known = [code for code in LABELS if code in present]
    return tuple(known + sorted(present - set(LABELS)))


def _resolve(
    entries: Sequence[_Entry],
    dirs: Sequence[Path],
    csv_path: Path,
    layout: str,
    strict: bool,
    warnings: tuple[str, ...],
) -> Dataset:
    if not entries:
        raise DatasetError(f"{csv_path} lists no images; use the complete CSV that ships with the dataset")
    _check_unique(entries, csv_path)
    index: dict[str, Path] = {}
    for d in dirs:
        for path in _image_files(d):
            index.setdefault(path.stem, path)
    records = [Record(e.image_id, e.lesion_id, e.label, p, e.meta) for e in entries if (p := index.get(e.image_id))]
    absent = [e.image_id for e in entries if e.image_id not in index]
    where = ", ".join(f"{d.name}/" for d in dirs[:-1]) or "no image sub-folders"
    if not records:
        raise DatasetError(
            f"none of the {len(entries)} images listed in {csv_path.name} were found under {csv_path.parent} "
            f"(searched {where} and the folder itself); put the image folders next to the CSV"
        )
    if absent and strict:
        raise DatasetError(
            f"{len(absent)} of {len(entries)} images listed in {csv_path.name} are missing on disk "
            f"(first: {_first(absent)}); restore them, or load without strict to skip them"
        )
    if absent:
        warnings += (
            f"{len(absent)} of {len(entries)} images listed in {csv_path.name} are missing on disk and "
            f"were skipped (first: {_first(absent)})",
        )
    return Dataset(tuple(records), LABELS, layout, len(absent), warnings)


def _check_unique(entries: Sequence[_Entry], csv_path: Path) -> None:
    repeated = [image_id for image_id, n in Counter(e.image_id for e in entries).items() if n > 1]
    if repeated:
        raise DatasetError(
            f"{csv_path.name} lists {len(repeated)} image ids more than once (first: {_first(repeated)}); "
            "remove the duplicate rows"
        )


# ---------------------------------------------------------------- splitting


def split_by_lesion(
    records: Sequence[Record],
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> dict[str, list[Record]]:
    """Split records into train/val/test so that no lesion is in two splits.

    Lesions are stratified by class: each class's lesions are shuffled with
    `seed` and shared out by the fractions, with at least one lesion of every
    class in every split. Records keep their input order within a split.
    """
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DatasetError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must each be above 0 "
            "and add up to less than 1"
        )
    if not records:
        raise DatasetError("no records to split; load a dataset with at least one image per class")
    lesion_class = _lesion_classes(records)
    by_class: dict[str, list[str]] = {}
    for lesion_id in sorted(lesion_class):
        by_class.setdefault(lesion_class[lesion_id], []).append(lesion_id)
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for label in sorted(by_class):
        lesions = by_class[label]
        if len(lesions) < 3:
            raise DatasetError(
                f"class {label} has {len(lesions)} lesion(s) but needs at least 3 lesions to appear in "
                "train, val and test; add images of more lesions or leave the class out"
            )
        order = rng.permutation(len(lesions))
        n_val, n_test = _split_sizes(len(lesions), val_fraction, test_fraction)
        for rank, i in enumerate(order):
            split = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
            assignment[lesions[i]] = split
    splits: dict[str, list[Record]] = {name: [] for name in SPLITS}
    for record in records:
        splits[assignment[record.lesion_id]].append(record)
    return splits


def _lesion_classes(records: Iterable[Record]) -> dict[str, str]:
    classes: dict[str, str] = {}
    for r in records:
        known = classes.setdefault(r.lesion_id, r.label)
        if known != r.label:
            raise DatasetError(
                f"lesion {r.lesion_id} has images labelled both {known} and {r.label}; "
                "fix the labels so each lesion has one diagnosis"
            )
    return classes


def _split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """Lesion counts (val, test) for a class of n >= 3 lesions; train keeps at least one."""
    n_val = max(1, int(n * val_fraction + 0.5))
    n_test = max(1, int(n * test_fraction + 0.5))
    while n - n_val - n_test < 1:
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n_val, n_test


def class_counts(records: Iterable[Record], labels: Sequence[str]) -> dict[str, int]:
    """Number of records per label, in `labels` order (zero for absent labels)."""
    counts = dict.fromkeys(labels, 0)
    for r in records:
        if r.label not in counts:
            raise DatasetError(f"image {r.image_id} has label {r.label}, which is not one of {', '.join(labels)}")
        counts[r.label] += 1
    return counts


# ---------------------------------------------------------------- split files


def write_split_csv(path: Path, splits: Mapping[str, Sequence[Record]]) -> Path:
    """Write `image_id,lesion_id,label,split` rows, one per record; returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SPLIT_COLUMNS)
    for name, records in splits.items():
        writer.writerows((r.image_id, r.lesion_id, r.label, name) for r in records)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def read_split_csv(path: Path, dataset: Dataset) -> dict[str, list[Record]]:
    """Read a split file written by `write_split_csv`, matching rows to `dataset` by image id."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"split file {path} does not exist; write one first or check the path")
    by_id = {r.image_id: r for r in dataset.records}
    splits: dict[str, list[Record]] = {name: [] for name in SPLITS}
    unknown = []
    for line, row in _read_csv(path, ("image_id", "label", "split")):
        name = row["split"]
        if name not in splits:
            raise DatasetError(f"{path.name} line {line}: unknown split {name!r}; use train, val or test")
        record = by_id.get(row["image_id"])
        if record is None:
            unknown.append(row["image_id"])
        elif record.label != row["label"]:
            raise DatasetError(
                f"{path.name} line {line}: {record.image_id} is {row['label']} in the split file but "
                f"{record.label} in the dataset; rebuild the split for this dataset"
            )
        else:
            splits[name].append(record)
    if unknown:
        raise DatasetError(
            f"{len(unknown)} images in {path.name} are not in the dataset (first: {_first(unknown)}); "
            "use the dataset the split was made from, or rebuild the split"
        )
    return splits


# ---------------------------------------------------------------- small utilities


def _read_csv(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) with lower-case column names; check header and field counts."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{path} is not UTF-8 text; re-export it as a UTF-8 CSV") from None
    except OSError as exc:
        raise DatasetError(f"cannot read {path} ({exc.strerror}); check that the file is readable") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        if not any(header):
            raise DatasetError(f"{path} is empty; it needs a header row with {', '.join(required)}")
        missing = [c for c in required if c not in header]
        if missing:
            raise DatasetError(
                f"{path.name} lacks column(s) {', '.join(missing)} (found: {', '.join(header)}); "
                "use the CSV that ships with the dataset"
            )
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DatasetError(
                    f"{path.name} line {reader.line_num} has {len(row)} fields but the header has "
                    f"{len(header)}; fix or remove that line"
                )
            yield reader.line_num, {h: cell.strip() for h, cell in zip(header, row)}
    except csv.Error as exc:
        raise DatasetError(f"{path.name} line {reader.line_num} is not valid CSV ({exc}); fix that line") from None


def _required(row: Mapping[str, str], column: str, path: Path, line: int) -> str:
    value = row[column]
    if not value:
        raise DatasetError(f"{path.name} line {line}: empty {column}; fill it in or remove the row")
    return value


def _parse_label(value: str, path: Path, line: int, image_id: str) -> str:
    label = value.strip().lower()
    if label not in LABELS:
        raise DatasetError(
            f"{path.name} line {line}: unknown label {value!r} for {image_id}; expected one of {', '.join(LABELS)}"
        )
    return label


def _find_file(root: Path, name: str) -> Path | None:
    matches = sorted(p for p in root.iterdir() if p.is_file() and p.name.lower() == name.lower())
    return matches[0] if matches else None


def _subdirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def _first(ids: Sequence[str]) -> str:
    more = ", ..." if len(ids) > _SHOW else ""
    return ", ".join(ids[:_SHOW]) + more
