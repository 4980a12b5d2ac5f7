"""Making signing keys and signing bundles (the device side checks them: edge/model/signing.py).

``train keygen OUT`` writes ``OUT.key`` (the Ed25519 private key, PKCS#8 PEM, mode 0600, never
leaves the workstation) and ``OUT.pub`` (one line, for the devices). ``train sign BUNDLE --key
OUT.key`` lists every file of the bundle in model.json (labels.txt and the golden files too; links
and sub-folders refused), rewrites model.json atomically, and writes ``model.sig`` over its bytes.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import BundleError, ConfigError
from edge.model.bundle import META_FILE, file_entry
from edge.model.signing import SIGNATURE_FILE, PublicKey, payload, signature_document
from edge.util.atomic import write_bytes, write_text

KEY_MAX_BYTES = 16_384


@dataclass(frozen=True)
class SigningKey:
    private: Any  # cryptography's Ed25519PrivateKey
    public: PublicKey


def keygen(out: Path, name: str | None = None, force: bool = False) -> tuple[Path, Path]:
    """Write OUT.key (0600) and OUT.pub; refuse to overwrite unless ``force``."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: PLC0415

    out = Path(out)
    key_path, pub_path = out.with_name(out.name + ".key"), out.with_name(out.name + ".pub")
    for p in (key_path, pub_path):
        if (p.exists() or p.is_symlink()) and not force:
            raise ConfigError(f"{p} already exists.", "Choose another name, or pass --force to replace the key "
                              "(bundles signed with the old one will no longer verify on devices trusting the new).")
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    public = PublicKey(raw, _clean_name(name or out.name))
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    try:
        write_bytes(key_path, pem, mode=0o600)
        write_text(pub_path, public.line(), mode=0o644)
    except OSError as e:
        raise ConfigError(f"cannot write the key to {out.parent} ({e.strerror}).", "Choose a writable folder.") from None
    return key_path, pub_path


def load_signing_key(path: Path) -> SigningKey:
    """The private key `train keygen` wrote; ConfigError in one line otherwise."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: PLC0415

    path = Path(path)
    try:
        if path.stat().st_size > KEY_MAX_BYTES or not path.is_file():
            raise ValueError
        data = path.read_bytes()
        private = serialization.load_pem_private_key(data, password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError
    except FileNotFoundError:
        raise ConfigError(f"no signing key at {path}.", "Make one with `train keygen NAME`.") from None
    except OSError as e:
        raise ConfigError(f"cannot read the signing key {path} ({e.strerror}).") from None
    except (ValueError, TypeError):
        raise ConfigError(f"{path} is not an Ed25519 private key from `train keygen`.",
                          "Pass the .key file (the .pub file goes to the devices).") from None
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pub = path.with_suffix(".pub")
    name = path.stem
    if pub.is_file():  # the name the .pub file carries
        line = pub.read_text(encoding="utf-8", errors="replace").split(None, 2)
        name = line[2].strip() if len(line) > 2 else name
    return SigningKey(private, PublicKey(raw, _clean_name(name)))


def sign_bundle(root: Path, key: SigningKey) -> PublicKey:
    """List every file of the bundle in model.json, then write model.sig over model.json's bytes."""
    root = Path(root)
    meta_path = root / META_FILE
    if not meta_path.is_file():
        raise BundleError(f"{root} has no {META_FILE}.", "Pass a bundle folder written by `train quantize`.")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BundleError(f"{meta_path} is not valid JSON ({e}).") from None
    files = dict(meta.get("files") or {})
    for entry in sorted(root.iterdir()):
        if entry.name in (META_FILE, SIGNATURE_FILE) or entry.name.startswith("."):
            continue
        if entry.is_symlink() or not entry.is_file():
            raise BundleError(f"{entry} is {'a link' if entry.is_symlink() else 'not a plain file'}: a signed "
                              "bundle holds plain files only.", "Remove it and sign again.")
        fresh = file_entry(entry)
        old = files.get(entry.name)
        if old is not None and old.get("sha256") != fresh["sha256"]:
            raise BundleError(f"{entry} does not match the checksum model.json lists: it changed after the bundle "
                              "was written.", "Re-create the bundle with `train quantize` and sign that.")
        files[entry.name] = {**(old or {}), **fresh}
    gone = [n for n in files if not (root / n).is_file()]
    if gone:
        raise BundleError(f"{root} lists {gone[0]} but it is missing.", "Copy the whole bundle again, then sign it.")
    meta["files"] = dict(sorted(files.items()))
    text = json.dumps(meta, indent=2) + "\n"
    write_text(meta_path, text)
    signed = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    signature = key.private.sign(payload(text.encode("utf-8")))
    write_text(root / SIGNATURE_FILE, json.dumps(signature_document(key.public, signature, signed), indent=2) + "\n")
    return key.public


def _clean_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "-" for c in name.strip())[:64] or "key"
