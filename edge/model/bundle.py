"""The model bundle: the folder that carries a model, its labels and its contract together.

``models/<name>/`` holds ``model.tflite`` (int8), ``labels.txt``, ``model.json`` and optionally
``model_float.tflite`` and ``model_edgetpu.tflite``. See models/README.md for the format.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import BundleError
from edge.util.atomic import atomic_folder, copy_file, write_text
from edge.util.files import read_capped

BUNDLE_FORMAT = "skin-edge-bundle"
FORMAT_VERSION = 1
MODEL_FILE = "model.tflite"
FLOAT_FILE = "model_float.tflite"
EDGETPU_FILE = "model_edgetpu.tflite"
INT8IO_FILE = "model_int8io.tflite"  # model.tflite with int8 instead of uint8 input and output
OOD_FILE = "ood.npz"  # the OOD score's fitted statistics (edge.ops.ood)
LABELS_FILE = "labels.txt"
META_FILE = "model.json"
VARIANTS = {"int8": MODEL_FILE, "int8io": INT8IO_FILE, "float": FLOAT_FILE, "edgetpu": EDGETPU_FILE}


def variant_of(path: Path) -> str | None:
    """The variant a bundle file is (``model_int8io.tflite`` -> ``int8io``), or None."""
    return next((v for v, name in VARIANTS.items() if name == path.name), None)


@dataclass(frozen=True)
class Bundle:
    """A bundle folder, or a bare .tflite file (``root`` None, labels optional)."""

    model_path: Path
    root: Path | None = None
    labels: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.meta.get("name") or (self.root.name if self.root else self.model_path.stem)

    @property
    def pixel_scaling(self) -> tuple[float, float]:
        """(scale, offset) applied to raw 0..255 pixels before quantization; raw pixels by default."""
        ps = self.meta.get("input", {}).get("pixel_scaling") or {}
        return float(ps.get("scale", 1.0)), float(ps.get("offset", 0.0))

    @property
    def display_names(self) -> dict[str, str]:
        return display_names(self.labels, self.meta)

    @property
    def model_id(self) -> dict[str, Any]:
        """Which model made a result, as the archive records it with every capture: name, file, the
        file's SHA-256, what it was trained on (``synthetic`` when that was the built-in sample data)."""
        files = self.meta.get("files") or {}
        sha = (files.get(self.model_path.name) or {}).get("sha256")
        trained = self.meta.get("trained_on") if isinstance(self.meta.get("trained_on"), dict) else {}
        return {"name": self.name, "file": self.model_path.name, "sha256": sha, "trained_on": trained}

    @property
    def identity(self) -> dict[str, Any]:
        """:attr:`model_id` and what the pages show besides: the short SHA-256, the creation time."""
        ident = self.model_id
        sha = ident["sha256"]
        return {**ident, "short_sha256": sha[:12] if isinstance(sha, str) else None,
                "created": self.meta.get("created")}

    @property
    def logits(self) -> bool:
        """The class scores are logits (softmax with the temperature on the device), not probabilities."""
        return (self.meta.get("output") or {}).get("activation") == "logits"

    @property
    def temperature(self) -> float | None:
        """model.json's calibration temperature (checked), or None when the bundle has none."""
        cal = self.meta.get("calibration")
        if not isinstance(cal, dict) or "temperature" not in cal:
            return None
        from edge.ops.calibration import check_temperature  # noqa: PLC0415

        return check_temperature(cal["temperature"], f"{self.root / META_FILE}")

    def lacks(self) -> list[str]:
        """What an older bundle does not carry, one phrase each (empty for a current bundle)."""
        missing = []
        if self.temperature is None:
            missing.append("no calibration temperature (scores are the raw softmax)")
        if not isinstance(self.meta.get("ood"), dict):
            missing.append("no OOD data (no ood_score, no 'unfamiliar image')")
        if "cam" not in self.meta:
            missing.append("no class activation maps (no --explain)")
        return missing

    def variant(self, kind: str) -> Path | None:
        """The file of a variant (int8, int8io, float, edgetpu) when the bundle has it."""
        if self.root is None:
            return None
        path = self.root / VARIANTS[kind]
        return path if path.is_file() else None


# What a person reads next to HAM10000's codes, when model.json has no display_names of its own.
HAM10000_NAMES = {
    "akiec": "Actinic keratosis / intraepithelial carcinoma", "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis", "df": "Dermatofibroma", "mel": "Melanoma", "nv": "Melanocytic nevus",
    "vasc": "Vascular lesion",
}


def display_names(labels: tuple[str, ...] | list[str] | None, meta: dict[str, Any] | None = None) -> dict[str, str]:
    """Code -> full name for every label: model.json's ``display_names``, else HAM10000's name, else the code."""
    given = (meta or {}).get("display_names")
    given = {str(k): str(v) for k, v in given.items() if isinstance(v, str) and v.strip()} \
        if isinstance(given, dict) else {}
    return {code: given.get(code) or HAM10000_NAMES.get(code) or code for code in (labels or ())}


LABELS_MAX_BYTES = 1_000_000
META_MAX_BYTES = 10_000_000


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_labels(path: Path) -> tuple[str, ...]:
    """One label per line, in output order; blank lines ignored."""
    try:
        text = read_capped(path, LABELS_MAX_BYTES, "labels", BundleError).decode("utf-8")
    except FileNotFoundError:
        raise BundleError(f"Label file not found: {path}.", "Add labels.txt, one class per line.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BundleError(f"Cannot read labels from {path}: {e}.") from None
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not labels:
        raise BundleError(f"{path} holds no labels.", "Write one class per line, in output order.")
    return labels


def write_labels(path: Path, labels: list[str] | tuple[str, ...]) -> None:
    Path(path).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")


def checksum_report(bundle: Bundle, only: Path | None = None) -> list[dict[str, Any]]:
    """For each file model.json lists (or just ``only``): expected vs actual SHA-256 (actual None
    when missing). A symbolic link is never followed: its row says so."""
    report = []
    for name, entry in (bundle.meta.get("files") or {}).items():
        if only is not None and name != only.name:
            continue
        path = bundle.root / name
        link = path.is_symlink()
        actual = sha256_file(path) if path.is_file() and not link else None
        report.append({"file": name, "expected": entry.get("sha256"), "actual": actual, "symlink": link,
                       "ok": actual is not None and actual == entry.get("sha256")})
    return report


def verify_checksums(bundle: Bundle, only: Path | None = None) -> None:
    """Raise BundleError when a listed file is missing, a link, or its SHA-256 differs; or when
    ``only`` is not listed at all (a file no checksum covers is never loaded from a bundle)."""
    files = bundle.meta.get("files") or {}
    if only is not None and only.name not in files:
        raise BundleError(f"{bundle.root / META_FILE} does not list {only.name}: no checksum covers it.",
                          "Re-create the bundle with `train quantize`, or add the file with its checksum.")
    for row in checksum_report(bundle, only):
        if row["symlink"]:
            raise BundleError(f"{bundle.root / row['file']} is a symbolic link: bundle files must be plain "
                              "files (links are never followed).", "Copy the bundle again without links.")
        if row["actual"] is None:
            raise BundleError(f"Bundle {bundle.root} lists {row['file']} but it is missing.",
                              "Copy the whole bundle folder again.")
        if not row["ok"]:
            raise BundleError(f"Checksum mismatch for {bundle.root / row['file']} "
                              f"(expected {row['expected'][:12]}…, got {row['actual'][:12]}…).",
                              "The file is damaged or was replaced: copy the bundle again.")


def _read_meta(root: Path) -> dict[str, Any]:
    path = root / META_FILE
    try:
        meta = json.loads(read_capped(path, META_MAX_BYTES, META_FILE, BundleError).decode("utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{root} has no {META_FILE}.", "Is this a bundle written by `train quantize`?") from None
    except RecursionError:
        raise BundleError(f"{path} is nested too deeply to be a bundle description.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{path} is not valid JSON ({e}).", "Copy the bundle again.") from None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path} is not a {BUNDLE_FORMAT} description.")
    version, classes = meta.get("format_version", 0), meta.get("num_classes", 1)
    if not isinstance(version, int) or not isinstance(classes, int) or isinstance(classes, bool):
        raise BundleError(f"{path}: format_version and num_classes must be whole numbers.", "Copy the bundle again.")
    if version > FORMAT_VERSION:
        raise BundleError(f"{path} uses bundle format {version}, newer than this edge ({FORMAT_VERSION}).",
                          "Upgrade skin-edge on this device.")
    files = meta.get("files", {})
    well_formed = isinstance(files, dict) and all(
        isinstance(name, str) and name == Path(name).name and name not in ("", ".", "..")
        and isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
        for name, entry in files.items())
    if not well_formed:
        raise BundleError(f"{path}: 'files' must map plain file names in the bundle to {{\"sha256\": ...}}.",
                          "Copy the bundle again.")
    if not files:
        raise BundleError(f"{path} lists no files, so nothing in the bundle could be checked.",
                          "Re-create the bundle with `train quantize`.")
    return meta


def open_bundle(path: str | Path, *, labels: str | Path | None = None, verify: bool = True) -> Bundle:
    """Open a bundle folder, or a .tflite file (inside a bundle or bare); check checksums and labels."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"Model not found: {path}.", "Pass a bundle folder or a .tflite file.")
    if path.is_dir():
        root, model_path = path, path / MODEL_FILE
        if not model_path.is_file():
            raise BundleError(f"{path} has no {MODEL_FILE}.", "Pass a bundle folder or a .tflite file.")
    elif (path.parent / META_FILE).is_file() and path.name in VARIANTS.values():
        root, model_path = path.parent, path
    else:
        root, model_path = None, path
    if root is None:
        return Bundle(model_path=model_path, labels=read_labels(Path(labels)) if labels else None)
    meta = _read_meta(root)
    labels_path = Path(labels) if labels else root / LABELS_FILE
    bundle_labels = read_labels(labels_path)
    declared = meta.get("num_classes", len(meta.get("labels") or bundle_labels))
    if len(bundle_labels) != declared:
        raise BundleError(f"{labels_path} has {len(bundle_labels)} labels but {META_FILE} "
                          f"declares {declared}.",
                          "Use the bundle's own labels.txt." if labels else "Copy the bundle again.")
    bundle = Bundle(model_path=model_path, root=root, labels=bundle_labels, meta=meta)
    if verify:
        verify_checksums(bundle, only=model_path)
    return bundle


def verify_bundle_files(root: str | Path) -> Bundle:
    """Open the bundle folder ``root`` and check the checksum of every file model.json lists
    (the Edge TPU and float builds too, not only the file that runs); BundleError otherwise."""
    bundle = open_bundle(root, verify=False)
    if bundle.root is None:
        raise BundleError(f"{root} is a bare model file.", "--model takes a bundle folder (models/<name>/).")
    verify_checksums(bundle)
    return bundle


def describe_model(path: Path, activation: str = "softmax") -> dict[str, Any]:
    """The input/output contract of a classifier file, for model.json (read from the file itself).

    ``activation``: what the class scores are, ``softmax`` (probabilities) or ``logits`` (the device
    shows ``softmax(logits / calibration.temperature)``)."""
    from edge.model.spec import output_roles  # noqa: PLC0415
    from edge.model.tflite_file import read_tflite  # noqa: PLC0415

    graph = read_tflite(path)
    outs = [graph.tensors[i] for i in graph.outputs]
    roles = output_roles([tuple(t.shape) for t in outs])
    if len(graph.inputs) != 1 or roles is None:
        raise BundleError(f"{path} is not a single-input classifier (class scores, optionally with "
                          "activation maps and pooled features).")
    i, o = graph.tensors[graph.inputs[0]], outs[roles["scores"]]
    if len(i.shape) != 4:
        raise BundleError(f"{path} input shape {list(i.shape)} is not [1, height, width, channels].")

    def quant(t):  # noqa: ANN001, ANN202
        return {"scale": t.scale, "zero_point": t.zero_point} if t.scale else None

    def tensor(t, position: int, what: str) -> dict[str, Any]:  # noqa: ANN001
        return {"dtype": t.dtype, "quantization": quant(t), "shape": list(t.shape), "output_index": position,
                "is": what}

    extra = {}
    if "cam" in roles:
        extra["cam"] = tensor(outs[roles["cam"]], roles["cam"], "class activation maps: the classifier layer "
                              "applied at every position of the last feature map (their mean is the logits)")
    if "features" in roles:
        extra["features"] = tensor(outs[roles["features"]], roles["features"],
                                   "pooled features, the classifier layer's input (for the OOD score)")
    return {
        "input": {"height": i.shape[1], "width": i.shape[2], "channels": i.shape[3], "color_order": "RGB",
                  "dtype": i.dtype, "quantization": quant(i),
                  "pixel_scaling": {"scale": 1.0, "offset": 0.0},
                  "resize": "centre crop to the input's aspect ratio, then area interpolation"},
        "output": {"dtype": o.dtype, "quantization": quant(o), "shape": list(o.shape),
                   "activation": activation, "output_index": roles["scores"]},
        **extra,
    }


def file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "size_bytes": path.stat().st_size}


def write_bundle(out: str | Path, *, model: Path, labels: list[str] | tuple[str, ...], name: str | None = None,
                 float_model: Path | None = None, edgetpu_model: Path | None = None,
                 extra: dict[str, Any] | None = None, extra_files: dict[str, Path] | None = None,
                 force: bool = False, activation: str = "softmax") -> Path:
    """Write a bundle atomically: everything goes to a temporary folder renamed at the end.

    ``extra`` is merged into model.json (provenance, metrics, calibration, ...); ``extra_files``
    are copied in under the given names (e.g. golden inputs).
    """
    import datetime  # noqa: PLC0415
    import shutil  # noqa: PLC0415

    out = Path(out)
    if out.exists() and not force:
        raise BundleError(f"{out} already exists.", "Choose another --out or pass --force to replace it.")
    with atomic_folder(out, replace=force) as tmp:
        copies = {MODEL_FILE: model, FLOAT_FILE: float_model, EDGETPU_FILE: edgetpu_model, **(extra_files or {})}
        for dest, src in copies.items():
            if src is not None:
                shutil.copyfile(src, tmp / dest)
        write_labels(tmp / LABELS_FILE, labels)
        meta: dict[str, Any] = {
            "format": BUNDLE_FORMAT, "format_version": FORMAT_VERSION, "name": name or out.name,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "labels": list(labels), "num_classes": len(labels), "display_names": display_names(labels),
            **describe_model(tmp / MODEL_FILE, activation),
            "files": {p.name: file_entry(p) for p in sorted(tmp.iterdir()) if p.is_file()},  # every file
        }
        for key, value in (extra or {}).items():
            meta[key] = value
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


def add_file(bundle_root: Path, name: str, src: Path, meta_updates: dict[str, Any] | None = None) -> None:
    """Add (or replace) a file in an existing bundle and record its checksum, model.json rewritten atomically."""
    root = Path(bundle_root)
    meta = _read_meta(root)
    copy_file(src, root / name)
    meta.setdefault("files", {})[name] = file_entry(root / name)
    meta.update(meta_updates or {})
    write_text(root / META_FILE, json.dumps(meta, indent=2) + "\n")
    (root / "model.sig").unlink(missing_ok=True)  # it signed the old model.json: sign the bundle again
