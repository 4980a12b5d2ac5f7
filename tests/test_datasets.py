"""Dataset readers and the lesion-safe split, on real files in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.data.datasets import (
    LABELS,
    DatasetError,
    Record,
    class_counts,
    load_dataset,
    read_split_csv,
    split_by_lesion,
    write_split_csv,
)

HAM_HEADER = "lesion_id,image_id,dx,dx_type,age,sex,localization\n"


def _jpg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), 128, np.uint8))
    return path


def _ham(root: Path, rows: list[tuple[str, str, str]], folders: dict[str, str] | None = None) -> Path:
    """Write HAM10000_metadata.csv and one JPEG per row (in `folders[image_id]`, default part 1)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [f"{lesion},{image},{dx},histo,50.0,male,back\n" for lesion, image, dx in rows]
    (root / "HAM10000_metadata.csv").write_text(HAM_HEADER + "".join(lines), encoding="utf-8")
    for _, image, _ in rows:
        folder = (folders or {}).get(image, "HAM10000_images_part_1")
        if folder is not None:
            _jpg(root / folder / f"{image}.jpg")
    return root


def _records(lesions_per_class: dict[str, int], seed: int = 0) -> list[Record]:
    """Records with 1 to 3 images per lesion (paths need not exist for splitting)."""
    rng = np.random.default_rng(seed)
    records, n = [], 0
    for label, count in lesions_per_class.items():
        for i in range(count):
            lesion = f"HAM_{label}_{i}"
            for _ in range(int(rng.integers(1, 4))):
                records.append(Record(f"ISIC_{n:07d}", lesion, label, Path(f"ISIC_{n:07d}.jpg")))
                n += 1
    return records


# ---------------------------------------------------------------- layouts


def test_ham10000_layout_reads_both_parts_and_lowercase_folders(tmp_path):
    rows = [("HAM_1", "ISIC_1", "nv"), ("HAM_1", "ISIC_2", "nv"), ("HAM_2", "ISIC_3", "mel"),
            ("HAM_3", "ISIC_4", "bkl")]  # fmt: skip
    folders = {"ISIC_2": "HAM10000_images_part_2", "ISIC_3": "ham10000_images_part_1", "ISIC_4": "images"}
    ds = load_dataset(_ham(tmp_path, rows, folders))
    assert ds.layout == "ham10000"
    assert ds.labels == LABELS
    assert ds.missing == 0 and ds.warnings == ()
    assert [(r.lesion_id, r.image_id, r.label) for r in ds.records] == rows
    assert all(r.path.is_file() and r.path.stem == r.image_id for r in ds.records)
    assert ds.records[1].path.parent.name == "HAM10000_images_part_2"


def test_ham10000_images_directly_in_root(tmp_path):
    ds = load_dataset(_ham(tmp_path, [("HAM_1", "ISIC_1", "DF")], {"ISIC_1": "."}))
    assert ds.records[0].label == "df"
    assert ds.records[0].path == tmp_path / "ISIC_1.jpg"


def _isic(root: Path, rows: list[tuple[str, str]], groupings: dict[str, str] | None = None) -> Path:
    columns = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
    lines = ["image," + ",".join(columns) + "\n"]
    for image, label in rows:
        lines.append(image + "," + ",".join("1.0" if c.lower() == label else "0.0" for c in columns) + "\n")
        _jpg(root / "ISIC2018_Task3_Training_Input" / f"{image}.jpg")
    (root / "ISIC2018_Task3_Training_GroundTruth.csv").write_text("".join(lines), encoding="utf-8")
    if groupings is not None:
        text = "image,lesion_id,diagnosis_confirm_type\n" + "".join(
            f"{image},{lesion},histopathology\n" for image, lesion in groupings.items()
        )
        (root / "ISIC2018_Task3_Training_LesionGroupings.csv").write_text(text, encoding="utf-8")
    return root


def test_isic2018_layout_with_lesion_groupings(tmp_path):
    rows = [("ISIC_0024306", "nv"), ("ISIC_0024307", "nv"), ("ISIC_0024308", "vasc")]
    groups = {"ISIC_0024306": "HAM_0000550", "ISIC_0024307": "HAM_0000550", "ISIC_0024308": "HAM_0003577"}
    ds = load_dataset(_isic(tmp_path, rows, groups))
    assert ds.layout == "isic2018" and ds.labels == LABELS and ds.warnings == ()
    assert [(r.image_id, r.lesion_id, r.label) for r in ds.records] == [
        ("ISIC_0024306", "HAM_0000550", "nv"),
        ("ISIC_0024307", "HAM_0000550", "nv"),
        ("ISIC_0024308", "HAM_0003577", "vasc"),
    ]


def test_isic2018_without_groupings_treats_each_image_as_a_lesion_and_warns(tmp_path):
    ds = load_dataset(_isic(tmp_path, [("ISIC_1", "mel"), ("ISIC_2", "akiec")]))
    assert [r.lesion_id for r in ds.records] == ["ISIC_1", "ISIC_2"]
    assert len(ds.warnings) == 1 and "lesion-safe" in ds.warnings[0] and "LesionGroupings" in ds.warnings[0]


def test_isic2018_row_must_have_exactly_one_label(tmp_path):
    _isic(tmp_path, [("ISIC_1", "mel")])
    csv_path = tmp_path / "ISIC2018_Task3_Training_GroundTruth.csv"
    csv_path.write_text(csv_path.read_text() + "ISIC_2,1.0,1.0,0.0,0.0,0.0,0.0,0.0\n")
    with pytest.raises(DatasetError, match=r"line 3: ISIC_2 needs exactly one label"):
        load_dataset(tmp_path)


def test_class_folders_use_canonical_order_for_known_codes(tmp_path):
    for label, n in (("nv", 2), ("MEL", 1), ("df", 1), ("moles", 1), ("freckle", 1)):
        for i in range(n):
            _jpg(tmp_path / label / f"{label}_{i}.png")
    (tmp_path / "empty").mkdir()
    ds = load_dataset(tmp_path)
    assert ds.layout == "folders"
    assert ds.labels == ("df", "mel", "nv", "freckle", "moles")
    assert [r.label for r in ds.records] == ["df", "mel", "nv", "nv", "freckle", "moles"]
    assert all(r.lesion_id == r.image_id == r.path.stem for r in ds.records)


def test_class_folders_keep_all_seven_codes(tmp_path):
    for label in reversed(LABELS):
        _jpg(tmp_path / label / f"{label}.jpg")
    assert load_dataset(tmp_path).labels == LABELS


def test_class_folders_reject_the_same_image_name_twice(tmp_path):
    _jpg(tmp_path / "nv" / "a.jpg")
    _jpg(tmp_path / "mel" / "a.jpg")
    with pytest.raises(DatasetError, match="image name a appears twice"):
        load_dataset(tmp_path)


# ---------------------------------------------------------------- bad input


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")


def test_unrecognised_folder_names_what_was_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    _jpg(tmp_path / "only_class" / "x.jpg")
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path)
    message = str(err.value)
    assert "HAM10000_metadata.csv" in message and "GroundTruth" in message and "only_class" in message
    assert "\n" not in message


def test_missing_images_are_counted_and_skipped(tmp_path):
    rows = [("HAM_1", f"ISIC_{i}", "nv") for i in range(8)]
    ds = load_dataset(_ham(tmp_path, rows, {"ISIC_2": None, "ISIC_5": None}))
    assert ds.missing == 2
    assert [r.image_id for r in ds.records] == ["ISIC_0", "ISIC_1", "ISIC_3", "ISIC_4", "ISIC_6", "ISIC_7"]
    assert len(ds.warnings) == 1 and "2 of 8" in ds.warnings[0] and "ISIC_2, ISIC_5" in ds.warnings[0]


def test_missing_images_raise_when_strict(tmp_path):
    rows = [("HAM_1", f"ISIC_{i}", "nv") for i in range(10)]
    _ham(tmp_path, rows, {f"ISIC_{i}": None for i in range(1, 8)})
    with pytest.raises(DatasetError, match=r"7 of 10 images .* missing on disk \(first: ISIC_1, ISIC_2, .*, \.\.\.\)"):
        load_dataset(tmp_path, strict=True)


def test_no_listed_image_found(tmp_path):
    _ham(tmp_path, [("HAM_1", "ISIC_1", "nv")], {"ISIC_1": None})
    with pytest.raises(DatasetError, match="none of the 1 images"):
        load_dataset(tmp_path)


def test_missing_columns_are_named(tmp_path):
    (tmp_path / "HAM10000_metadata.csv").write_text("lesion_id,image,diagnosis\nHAM_1,ISIC_1,nv\n")
    with pytest.raises(DatasetError, match=r"lacks column\(s\) image_id, dx"):
        load_dataset(tmp_path)


def test_malformed_row_names_its_line(tmp_path):
    _ham(tmp_path, [("HAM_1", "ISIC_1", "nv")])
    csv_path = tmp_path / "HAM10000_metadata.csv"
    csv_path.write_text(csv_path.read_text() + 'HAM_2,ISIC_2,nv,"unterminated\n')
    with pytest.raises(DatasetError, match="line 3"):
        load_dataset(tmp_path)
    csv_path.write_text(HAM_HEADER + "HAM_1,ISIC_1,nv\n")
    with pytest.raises(DatasetError, match="line 2 has 3 fields but the header has 7"):
        load_dataset(tmp_path)


def test_empty_or_header_only_csv(tmp_path):
    csv_path = tmp_path / "HAM10000_metadata.csv"
    csv_path.write_text("")
    with pytest.raises(DatasetError, match="is empty"):
        load_dataset(tmp_path)
    csv_path.write_text(HAM_HEADER)
    with pytest.raises(DatasetError, match="lists no images"):
        load_dataset(tmp_path)


def test_unknown_label_names_label_and_row(tmp_path):
    _ham(tmp_path, [("HAM_1", "ISIC_1", "nv"), ("HAM_2", "ISIC_2", "melanoma")])
    with pytest.raises(DatasetError, match=r"line 3: unknown label 'melanoma' for ISIC_2; expected one of akiec"):
        load_dataset(tmp_path)


def test_duplicate_image_ids(tmp_path):
    _ham(tmp_path, [("HAM_1", "ISIC_1", "nv"), ("HAM_2", "ISIC_1", "nv")])
    with pytest.raises(DatasetError, match="more than once"):
        load_dataset(tmp_path)


# ---------------------------------------------------------------- split

COUNTS = {"akiec": 5, "bcc": 8, "bkl": 15, "df": 3, "mel": 15, "nv": 80, "vasc": 4}


def _lesions(records):
    return {r.lesion_id for r in records}


def test_split_keeps_each_lesion_in_one_split_and_every_class_in_every_split():
    records = _records(COUNTS)
    splits = split_by_lesion(records, seed=1)
    assert list(splits) == ["train", "val", "test"]
    train, val, test = (_lesions(splits[k]) for k in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert sorted(r.image_id for part in splits.values() for r in part) == sorted(r.image_id for r in records)
    for part in splits.values():
        assert {r.label for r in part} == set(COUNTS)
    nv = {k: len({r.lesion_id for r in part if r.label == "nv"}) for k, part in splits.items()}
    assert nv == {"train": 56, "val": 12, "test": 12}


def test_split_is_deterministic_for_a_seed_and_varies_with_it():
    records = _records(COUNTS)
    first = split_by_lesion(records, seed=7)
    assert first == split_by_lesion(records, seed=7)
    shuffled = split_by_lesion(list(reversed(records)), seed=7)  # input order does not matter
    assert all(_lesions(first[k]) == _lesions(shuffled[k]) for k in first)
    assert _lesions(first["test"]) != _lesions(split_by_lesion(records, seed=8)["test"])


def test_split_honours_fractions():
    splits = split_by_lesion(_records({"nv": 100, "mel": 100}), val_fraction=0.1, test_fraction=0.3)
    assert [len(_lesions(splits[k])) for k in ("train", "val", "test")] == [120, 20, 60]


def test_class_with_two_lesions_cannot_be_split():
    with pytest.raises(DatasetError, match=r"class df has 2 lesion\(s\) but needs at least 3 lesions"):
        split_by_lesion(_records({"nv": 10, "df": 2}))


def test_lesion_with_two_labels_cannot_be_split():
    records = _records({"nv": 5, "mel": 5})
    records.append(Record("ISIC_extra", records[0].lesion_id, "mel", Path("x.jpg")))
    with pytest.raises(DatasetError, match=f"lesion {records[0].lesion_id} has images labelled both nv and mel"):
        split_by_lesion(records)


@pytest.mark.parametrize(("val", "test"), [(0.0, 0.2), (0.5, 0.5), (-0.1, 0.2)])
def test_bad_fractions(val, test):
    with pytest.raises(DatasetError, match="must each be above 0"):
        split_by_lesion(_records({"nv": 10}), val_fraction=val, test_fraction=test)


# ---------------------------------------------------------------- split files and counts


def test_split_csv_round_trip(tmp_path):
    rows = [(f"HAM_{i // 2}", f"ISIC_{i}", label) for i, label in enumerate(["nv", "nv", "mel", "mel"] * 3)]
    ds = load_dataset(_ham(tmp_path / "data", rows))
    splits = split_by_lesion(ds.records)
    path = write_split_csv(tmp_path / "run" / "split.csv", splits)
    assert path.read_text().splitlines()[0] == "image_id,lesion_id,label,split"
    assert read_split_csv(path, ds) == splits


def test_split_csv_must_match_the_dataset(tmp_path):
    rows = [(f"HAM_{i}", f"ISIC_{i}", "nv") for i in range(4)]
    ds = load_dataset(_ham(tmp_path / "data", rows))
    path = tmp_path / "split.csv"
    path.write_text("image_id,lesion_id,label,split\nISIC_0,HAM_0,nv,train\nISIC_9,HAM_9,nv,test\n")
    with pytest.raises(DatasetError, match=r"1 images in split.csv are not in the dataset \(first: ISIC_9\)"):
        read_split_csv(path, ds)
    path.write_text("image_id,lesion_id,label,split\nISIC_0,HAM_0,mel,train\n")
    with pytest.raises(DatasetError, match="ISIC_0 is mel in the split file but nv in the dataset"):
        read_split_csv(path, ds)
    path.write_text("image_id,lesion_id,label,split\nISIC_0,HAM_0,nv,validation\n")
    with pytest.raises(DatasetError, match="unknown split 'validation'"):
        read_split_csv(path, ds)


def test_class_counts():
    records = _records({"nv": 2, "mel": 1}, seed=3)
    counts = class_counts(records, LABELS)
    assert list(counts) == list(LABELS)
    assert counts["nv"] + counts["mel"] == len(records) and counts["df"] == 0
    with pytest.raises(DatasetError, match="not one of"):
        class_counts(records, ("nv",))
