"""Signed bundles: who made a bundle, checked before anything in it is used.

A checksum says a file is the one model.json lists; it does not say who wrote model.json (replace
model.tflite, recompute its SHA-256 and every check passes). A signature does. ``train sign`` (or
``train quantize --sign KEY``) lists every file of the bundle in model.json and writes
``model.sig``: an Ed25519 signature over model.json's exact bytes, so over every file's SHA-256.

On the device, trusted public keys come from the config (``trusted_keys``: key lines, .pub files or
folders of them) and from ``/etc/skin-edge/trusted-keys/`` (``edge install-service --trust PUBKEY``
puts them there). When any key is trusted, ``edge run``, ``classify``, ``verify`` and
``install-service`` refuse an unsigned or wrongly signed bundle, or one whose folder holds a file
the signature does not cover. Without trusted keys bundles run as before, and ``edge info`` and
``edge doctor`` say whether a bundle is signed.

Public key file (``NAME.pub``, one line): ``skin-edge-ed25519 <base64 of the 32-byte key> NAME``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from edge.errors import BundleError, ConfigError

SIGNATURE_FILE = "model.sig"
META_FILE = "model.json"
KEY_PREFIX = "skin-edge-ed25519"
PAYLOAD_PREFIX = b"skin-edge bundle signature v1\n"
TRUSTED_DIR = Path("/etc/skin-edge/trusted-keys")
TRUSTED_DIR_ENV = "SKIN_EDGE_TRUSTED_KEYS_DIR"  # another folder (empty: none), e.g. for tests
SIG_MAX_BYTES = 16_384
KEY_MAX_BYTES = 4096


@dataclass(frozen=True)
class PublicKey:
    raw: bytes  # the 32-byte Ed25519 public key
    name: str = ""

    @property
    def key_id(self) -> str:
        """The first 16 hex digits of the key's SHA-256: how lines and files name a key."""
        return hashlib.sha256(self.raw).hexdigest()[:16]

    @property
    def label(self) -> str:
        return f"{self.key_id} ({self.name})" if self.name else self.key_id

    def line(self) -> str:
        return f"{KEY_PREFIX} {base64.b64encode(self.raw).decode()} {self.name}".rstrip() + "\n"


def parse_public_key(text: str, where: str) -> PublicKey:
    """One ``skin-edge-ed25519 BASE64 [NAME]`` line; ConfigError naming ``where`` otherwise."""
    parts = text.strip().split(None, 2)
    try:
        if len(parts) < 2 or parts[0] != KEY_PREFIX:
            raise ValueError
        raw = base64.b64decode(parts[1], validate=True)
        if len(raw) != 32:
            raise ValueError
    except (ValueError, binascii.Error):
        raise ConfigError(f"{where} is not a skin-edge public key (a line '{KEY_PREFIX} BASE64 NAME').",
                          "Use the .pub file `train keygen` wrote.") from None
    return PublicKey(raw, parts[2].strip() if len(parts) > 2 else "")


def read_public_key(path: Path) -> PublicKey:
    return parse_public_key(_read_small(path, KEY_MAX_BYTES, "public key", ConfigError).decode("utf-8", "replace"),
                            str(path))


def trusted_dir() -> Path | None:
    value = os.environ.get(TRUSTED_DIR_ENV)
    return TRUSTED_DIR if value is None else (Path(value) if value else None)


def trusted_keys(entries: Iterable[str] = ()) -> tuple[PublicKey, ...]:
    """The keys of ``entries`` (key lines, .pub files, folders of .pub files) and of the trusted folder."""
    keys: dict[str, PublicKey] = {}
    sources: list[str] = list(entries)
    folder = trusted_dir()
    if folder is not None and folder.is_dir():
        sources.append(str(folder))
    for entry in sources:
        if entry.strip().startswith(KEY_PREFIX):
            found = [parse_public_key(entry, "trusted_keys entry")]
        elif Path(entry).is_dir():
            found = [read_public_key(p) for p in sorted(Path(entry).glob("*.pub"))]
        else:
            found = [read_public_key(Path(entry))]
        for key in found:
            keys.setdefault(key.key_id, key)
    return tuple(keys.values())


def payload(meta_bytes: bytes) -> bytes:
    return PAYLOAD_PREFIX + meta_bytes


@dataclass(frozen=True)
class Signature:
    key: PublicKey
    signature: bytes
    signed: str = ""  # when (ISO 8601)

    def valid_for(self, meta_bytes: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: PLC0415

        try:
            Ed25519PublicKey.from_public_bytes(self.key.raw).verify(self.signature, payload(meta_bytes))
        except (InvalidSignature, ValueError):
            return False
        return True


def read_signature(root: Path) -> Signature | None:
    """The bundle's model.sig, None when there is none; BundleError when it is not one."""
    path = root / SIGNATURE_FILE
    if not path.exists() and not path.is_symlink():
        return None
    try:
        doc = json.loads(_read_small(path, SIG_MAX_BYTES, "signature", BundleError).decode("utf-8"))
        key = PublicKey(base64.b64decode(doc["key"], validate=True), str(doc.get("key_name", "")))
        sig = base64.b64decode(doc["signature"], validate=True)
        if doc.get("algorithm") != "ed25519" or len(key.raw) != 32 or len(sig) != 64:
            raise ValueError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, binascii.Error, RecursionError):
        raise BundleError(f"{path} is not a skin-edge signature.",
                          "Sign the bundle again with `train sign BUNDLE --key KEY`.") from None
    return Signature(key, sig, str(doc.get("signed", "")))


def signature_document(key: PublicKey, signature: bytes, signed: str) -> dict[str, Any]:
    return {"format": "skin-edge-signature", "algorithm": "ed25519", "signs": META_FILE,
            "key": base64.b64encode(key.raw).decode(), "key_id": key.key_id, "key_name": key.name,
            "signature": base64.b64encode(signature).decode(), "signed": signed}


def unlisted(root: Path, meta: dict[str, Any]) -> list[str]:
    """What in the bundle folder a signature over model.json would not cover: files it does not list,
    links, folders (model.json and model.sig themselves excepted)."""
    listed = set((meta.get("files") or {}))
    problems = []
    for entry in sorted(root.iterdir()):
        if entry.name in (META_FILE, SIGNATURE_FILE) and not entry.is_symlink():
            continue
        if entry.is_symlink():
            problems.append(f"{entry.name} is a symbolic link")
        elif not entry.is_file():
            problems.append(f"{entry.name} is not a plain file")
        elif entry.name not in listed:
            problems.append(f"{entry.name} is not listed in model.json")
    return problems


def status(root: Path) -> tuple[str, Signature | None]:
    """("unsigned" | "signed" | "broken", the signature): what `edge info` and `doctor` say, with no
    trusted keys needed (a signature is "broken" when it does not match model.json)."""
    try:
        sig = read_signature(root)
    except BundleError:
        return "broken", None
    if sig is None:
        return "unsigned", None
    meta_bytes = _read_small(root / META_FILE, 1 << 20, "model.json", BundleError)
    return ("signed" if sig.valid_for(meta_bytes) else "broken"), sig


def describe(root: Path | None, keys: tuple[PublicKey, ...]) -> str:
    """One phrase for `edge info` and `edge doctor`: signed or not, by whom, trusted here or not."""
    if root is None:
        return "unsigned (a bare model file)" + ("; this device runs only signed bundles" if keys else "")
    state, sig = status(root)
    if state == "unsigned":
        return "unsigned" + ("; this device runs only bundles signed by a trusted key" if keys else "")
    if state == "broken" or sig is None:
        return "signature broken: model.sig does not match model.json (changed after signing)"
    trusted = sig.key.key_id in {k.key_id for k in keys}
    where = ("trusted here" if trusted else "not trusted here") if keys else "no keys are trusted here"
    gaps = unlisted(root, json.loads(_read_small(root / META_FILE, 1 << 20, "model.json", BundleError)))
    return f"signed by key {sig.key.label}, {where}" + (f"; but {gaps[0]}" if gaps else "")


def check_trusted(root: Path | None, keys: tuple[PublicKey, ...], what: str) -> Signature | None:
    """With trusted keys, raise BundleError (one line naming the file and the key) unless the bundle
    at ``root`` is signed by one of them and the signature covers every file in it."""
    if not keys:
        return None
    trusted = ", ".join(k.label for k in keys)
    if root is None:
        raise BundleError(f"{what} is a bare model file and cannot be signed, and this device only runs "
                          f"bundles signed by a trusted key ({trusted}).",
                          "Pass a bundle folder signed with `train sign`.")
    sig = read_signature(root)
    if sig is None:
        raise BundleError(f"{root} is unsigned (no {SIGNATURE_FILE}), and this device only runs bundles "
                          f"signed by a trusted key ({trusted}).", "Sign it with `train sign BUNDLE --key KEY`.")
    if sig.key.key_id not in {k.key_id for k in keys}:
        raise BundleError(f"{root / SIGNATURE_FILE} is signed by key {sig.key.label}, which is not trusted "
                          f"here (trusted: {trusted}).",
                          "Install its public key with `edge install-service --trust KEY.pub`, or sign "
                          "the bundle with a trusted key.")
    meta_bytes = _read_small(root / META_FILE, 1 << 20, "model.json", BundleError)
    if not sig.valid_for(meta_bytes):
        raise BundleError(f"{root / SIGNATURE_FILE} does not match {root / META_FILE} (key {sig.key.label}): "
                          "the bundle was changed after it was signed.", "Copy the signed bundle again.")
    problems = unlisted(root, json.loads(meta_bytes.decode("utf-8")))
    if problems:
        raise BundleError(f"{root}: {problems[0]}, so the signature (key {sig.key.label}) does not cover it.",
                          "Remove it, or sign the bundle again with `train sign` (which lists every file).")
    return sig


def _read_small(path: Path, cap: int, what: str, error: type) -> bytes:
    """A regular file of at most ``cap`` bytes (links and special files refused, never followed)."""
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path} is not a regular file (a link or a special file): the {what} is refused.")
        if info.st_size > cap:
            raise error(f"{path} is {info.st_size} bytes, more than a {what} can be ({cap}).")
        with open(path, "rb") as f:
            return f.read(cap + 1)[:cap]
    except OSError as e:
        raise error(f"cannot read the {what} {path} ({e.strerror}).", "Check the path and its permissions.") from None
