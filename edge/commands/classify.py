"""``edge classify``: label image files with a model bundle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edge.commands._common import (
    DeviceOpt,
    JsonFlag,
    LabelsOpt,
    ModelOpt,
    ThreadsOpt,
    VariantOpt,
    handles_errors,
    note,
    print_json,
)

if TYPE_CHECKING:
    from edge.archive.store import Archive
    from edge.model.classify import FileResult
    from edge.model.load import Model


def result_text(r: "FileResult") -> str:
    """The top-k with full names when the status is ok; otherwise why there is no label."""
    if r.status == "ok":
        return "  ".join(f"{p.title} {p.score:.3f}" for p in r.top)
    return f"uncertain ({', '.join(r.reasons)})"


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)


@handles_errors
def classify(
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE", help="Image files (JPEG, PNG, BMP, TIFF).", show_default=False)],
    model: ModelOpt,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many classes to report.")] = 3,
    device: DeviceOpt = "auto",
    variant: VariantOpt = None,
    threads: ThreadsOpt = None,
    labels: LabelsOpt = None,
    json_out: JsonFlag = False,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", min=0.0, max=1.0, show_default=False,
        help="A top score below this is 'uncertain (low confidence)' \\[default: the config's, else 0.5].")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", dir_okay=False, show_default=False,
        help="edge run's TOML config, whose \\[quality] limits and threshold apply here too "
             "\\[default: /etc/skin-edge/edge.toml when it exists].")] = None,
    archive: Annotated[Path | None, typer.Option(
        "--archive", file_okay=False, metavar="DIR", show_default=False,
        help="Keep each classified photo with its result in this archive, for review (/review of an "
             "edge run --archive DIR --http, or edge export).")] = None,
    explain: Annotated[Path | None, typer.Option(
        "--explain", file_okay=False, metavar="DIR", show_default=False,
        help="Write DIR/<image>.cam.png per image: the image with the predicted class's activation map "
             "laid over it (where the model looked).")] = None,
) -> None:
    """Classify each image on its own, through the same quality gate as `edge run`: each result is ok,
    uncertain (with its reasons) or an error. A bad image is reported and the others still run
    (exit 1 if any failed)."""
    from edge import DISCLAIMER  # noqa: PLC0415
    from edge.model.classify import classify_files  # noqa: PLC0415
    from edge.model.load import load_model  # noqa: PLC0415
    from edge.run.config import load_config, trusted_keys_of  # noqa: PLC0415

    cfg = load_config(config)  # the daemon's gate: the same limits for a photo as for a camera frame
    threshold = cfg.threshold if threshold is None else threshold
    m = load_model(model, device=device, threads=threads, labels=labels, variant=variant or cfg.variant,
                   trusted=trusted_keys_of(cfg))
    for line in m.notes:
        note(line)
    if explain is not None:
        _explain_folder(explain, m)
    store = _open_archive(archive) if archive else None
    results, archived, unarchived, maps, taken = [], {}, 0, {}, set()
    try:
        for r in classify_files(m, images, k=top_k, threshold=threshold, quality=cfg.quality,
                                keep=store is not None,
                                explain=explain is not None or (store is not None and m.spec.cam is not None)):
            results.append(r)
            if not r.ok:
                typer.echo(f"error: {r.error}", err=True)
                continue
            where = ""
            if explain is not None:
                maps[str(r.path)] = _write_map(explain, r, m, taken)
                where += f"  [map {maps[str(r.path)]}]" if maps[str(r.path)] else ""
            if store is not None:
                cap_id = _archive_one(store, r, m)
                if cap_id is None:
                    unarchived += 1
                else:
                    archived[str(r.path)] = cap_id
                    where = f"  [capture {cap_id}]"
            if not json_out:
                typer.echo(f"{r.path}: {result_text(r)}  ({r.time_ms:.1f} ms){where}")
    finally:
        if store is not None:
            store.close()
    if json_out:
        print_json({"model": str(m.path), "runtime": f"{m.runtime.name} {m.runtime.version}",
                    "device": m.device, "disclaimer": DISCLAIMER,
                    "results": [{**r.as_dict(), **({"capture": archived[str(r.path)]} if str(r.path) in archived
                                                    else {}),
                                 **({"explanation": maps[str(r.path)]} if maps.get(str(r.path)) else {})}
                                for r in results]})
    else:
        note(DISCLAIMER)
    if store is not None:
        note(f"archived {len(archived)} of {len(results)} images in {store.root}.")
    failed = sum(not r.ok for r in results)
    if failed:
        note(f"{failed} of {len(results)} images failed.")
    unmapped = sum(1 for r in results if r.ok and explain is not None and not maps.get(str(r.path)))
    if failed or unarchived or unmapped:
        raise typer.Exit(1)


def _explain_folder(folder: Path, m: "Model") -> None:
    """Refuse --explain up front when the model has no maps or the folder cannot be made."""
    from edge.errors import ConfigError  # noqa: PLC0415

    if m.spec.cam is None:
        raise ConfigError(f"{m.path} has no class activation maps (a bundle made before they existed, or "
                          "a model without pooling + dense head).",
                          "Re-create the bundle with `train quantize`, or run without --explain.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--explain {folder}: cannot create it ({e.strerror}).",
                          "Choose a writable folder.") from None


def _write_map(folder: Path, r: "FileResult", m: "Model", taken: set) -> str | None:
    """Write one overlay; its path, or None after one line saying why not."""
    from edge.model.explain import explanation_path, write_overlay  # noqa: PLC0415

    path = explanation_path(folder, r.path, taken)
    try:
        write_overlay(path, r.rgb, r.cam, m.spec.width / m.spec.height)
    except OSError as e:
        typer.echo(f"error: {r.path}: no map written: {e.strerror or e}", err=True)
        return None
    return str(path)


def _open_archive(path: Path) -> "Archive":
    from edge.archive.store import Archive  # noqa: PLC0415

    return Archive(path)


def _archive_one(store: "Archive", r: "FileResult", m: "Model") -> int | None:
    """Store one classified photo (a JPEG's own bytes; other formats re-encoded); its capture id,
    or None after one line saying why it was not stored."""
    from edge.archive.review import ArchiveError  # noqa: PLC0415
    from edge.model.explain import overlay_jpeg  # noqa: PLC0415

    try:
        jpeg = r.path.read_bytes() if r.path.suffix.lower() in (".jpg", ".jpeg") else None
        mapped = overlay_jpeg(r.rgb, r.cam, m.spec.width / m.spec.height) if r.cam is not None else None
        cap = store.add(r.rgb, jpeg=jpeg, source="classify", status=r.status, reasons=r.reasons,
                        top_k=[p.as_dict() for p in r.top], quality=r.quality, original=str(r.path),
                        model=m.bundle.model_id, explanation=mapped)
    except ArchiveError as e:
        typer.echo(f"error: {r.path}: not archived: {e}", err=True)
        return None
    except OSError as e:
        typer.echo(f"error: {r.path}: not archived: cannot read it again ({e.strerror})", err=True)
        return None
    return cap.id
