"""What `edge install-service` does with a bundle and with signing keys: trust a public key (into
/etc/skin-edge/trusted-keys/), check a bundle (checksums of every listed file; with trusted keys, its
signature), and copy only the files model.json lists, never following a link, into
/var/lib/skin-edge/models/<name>, then point models/current at it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from edge.device.steps import CURRENT, MODELS_DIR, Step, _in_root, _mkdir, _write
from edge.errors import EdgeError
from edge.util import atomic


def trust_steps(root: Path, keys: list[Path]) -> tuple[list[Step], list]:
    """Steps that put each public key in the trusted-keys folder, and the keys themselves."""
    from edge.model.signing import TRUSTED_DIR, read_public_key  # noqa: PLC0415

    folder = _in_root(root, TRUSTED_DIR)
    steps: list[Step] = [Step("mkdir", str(folder), apply=_mkdir(folder, 0o755))] if keys else []
    parsed = []
    for path in keys:
        key = read_public_key(path)
        parsed.append(key)
        dest = folder / f"{key.key_id}.pub"
        if dest.is_file() and dest.read_text(encoding="utf-8", errors="replace") == key.line():
            steps.append(Step("keep", str(dest), f"key {key.label} is already trusted"))
        else:
            steps.append(Step("write", str(dest), f"trust key {key.label}: only bundles it signed will run",
                              _write(dest, key.line(), 0o644)))
    return steps, parsed


def device_keys(root: Path, config: Path, new: list) -> tuple:
    """The keys the installed service will trust: its trusted-keys folder, its config's trusted_keys
    (on the running system) and the keys being added."""
    from edge.model.signing import TRUSTED_DIR, trusted_keys  # noqa: PLC0415

    entries = [str(_in_root(root, TRUSTED_DIR))] if _in_root(root, TRUSTED_DIR).is_dir() else []
    if root == Path("/") and config.is_file():
        from edge.run.config import load_config  # noqa: PLC0415

        entries += list(load_config(config).trusted_keys)
    keys = {k.key_id: k for k in (*trusted_keys(entries), *new)}  # noqa: C416
    return tuple(keys.values())


def bundle_steps(root: Path, model: Path, trusted: tuple = ()) -> list[Step]:
    from edge.model.bundle import MODEL_FILE, verify_bundle_files  # noqa: PLC0415
    from edge.model.signing import check_trusted  # noqa: PLC0415

    # models/current: the folder it points at; every file it lists is checked, not only model.tflite
    check_trusted(model.resolve(), trusted, str(model))  # with trusted keys: signed by one, or refused
    bundle = verify_bundle_files(model.resolve())
    sha = (bundle.meta.get("files", {}).get(MODEL_FILE) or {}).get("sha256", "")[:12]
    name = bundle.root.name if not sha or bundle.root.name.endswith(f"-{sha}") else f"{bundle.root.name}-{sha}"
    models = _in_root(root, MODELS_DIR)
    dest = models / name
    steps = []
    if dest.is_dir():
        steps.append(Step("keep", str(dest), "this bundle is already installed"))
    else:
        steps.append(Step("copy", f"{bundle.root} -> {dest}", apply=lambda: _copy_bundle(bundle.root, dest)))
    steps.append(Step("link", f"{_in_root(root, CURRENT)} -> {name}",
                      apply=lambda: switch_current(models, name)))
    return steps


def _copy_bundle(src: Path, dest: Path) -> None:
    """Copy into a temporary folder next to ``dest``, check the copy, then rename (atomic)."""
    from edge.model.bundle import (  # noqa: PLC0415
        META_FILE,
        open_bundle,
        verify_bundle_files,  # noqa: PLC0415
    )
    from edge.model.signing import SIGNATURE_FILE  # noqa: PLC0415

    names = [META_FILE, *(open_bundle(src, verify=False).meta.get("files") or {})]
    names += [SIGNATURE_FILE] if (src / SIGNATURE_FILE).is_file() else []
    with atomic.atomic_folder(dest) as tmp:
        for name in names:  # only what model.json lists (and the signature); links are never followed
            _copy_plain(src / name, tmp / name)
        verify_bundle_files(tmp)


def _copy_plain(src: Path, dest: Path) -> None:
    if src.is_symlink() or not src.is_file():
        raise EdgeError(f"{src} is not a plain file (a link or a folder): a bundle's files are never followed.",
                        "Copy the bundle again without links.")
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f, open(dest, "wb") as out:
        shutil.copyfileobj(f, out)


def switch_current(models: Path, name: str) -> None:
    """Point ``models/current`` at ``models/<name>`` atomically (a new link renamed over the old)."""
    tmp = models / ".current.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(name)
    os.replace(tmp, models / "current")
