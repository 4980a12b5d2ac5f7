"""Signed and confined bundles: train keygen / sign / quantize --sign, and a device that trusts keys
(edge.model.signing) refusing what its keys did not sign, in one line."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from helpers import one_line_error
from typer.testing import CliRunner

from edge.cli import app as edge_app
from train.cli import app as train_app

runner = CliRunner()


def edge(*args):
    return runner.invoke(edge_app, [str(a) for a in args])


def train(*args):
    return runner.invoke(train_app, [str(a) for a in args])


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keys")
    for name in ("clinic", "stranger"):
        r = train("keygen", folder / name)
        assert r.exit_code == 0, r.output
    return {"clinic": folder / "clinic", "stranger": folder / "stranger"}


@pytest.fixture()
def trusting(keys, tmp_path, monkeypatch) -> Path:
    """This device trusts the clinic's key (its trusted-keys folder holds clinic.pub)."""
    folder = tmp_path / "trusted-keys"
    folder.mkdir()
    (folder / "clinic.pub").write_text((keys["clinic"].with_suffix(".pub")).read_text())
    monkeypatch.setenv("SKIN_EDGE_TRUSTED_KEYS_DIR", str(folder))
    return folder


@pytest.fixture()
def signed(bundle, keys) -> Path:
    r = train("sign", bundle, "--key", keys["clinic"].with_suffix(".key"))
    assert r.exit_code == 0 and "signed" in r.stdout, r.output
    return bundle


def test_keygen_writes_a_private_key_only_its_owner_reads_and_refuses_to_overwrite(keys):
    key, pub = keys["clinic"].with_suffix(".key"), keys["clinic"].with_suffix(".pub")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and b"PRIVATE KEY" in key.read_bytes()
    assert pub.read_text().startswith("skin-edge-ed25519 ") and pub.read_text().rstrip().endswith(" clinic")
    line = one_line_error(train("keygen", keys["clinic"]))
    assert "already exists" in line


def test_signing_lists_every_file_and_info_says_who_signed(signed):
    meta = json.loads((signed / "model.json").read_text())
    assert {"labels.txt", "golden_inputs.npy", "golden_outputs.npy", "model.tflite", "ood.npz"} <= set(meta["files"])
    unsigned = edge("info", signed.parent / "nothing-here")  # (a missing path: one line, exit 1)
    assert unsigned.exit_code == 1
    shown = edge("info", signed, "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["signature"].startswith("signed by key ")
    assert "no keys are trusted here" in json.loads(shown.stdout)["signature"]


def test_a_device_with_trusted_keys_runs_what_they_signed(signed, trusting, colour_files):
    r = edge("classify", colour_files["red"], "--model", signed, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["results"][0]["label"] == "red"
    assert edge("verify", "--model", signed).exit_code == 0
    assert "trusted here" in json.loads(edge("info", signed, "--json").stdout)["signature"]


def test_unsigned_bare_and_strangers_bundles_are_refused_in_one_line(bundle, keys, trusting, colour_files, tmp_path):
    line = one_line_error(edge("classify", colour_files["red"], "--model", bundle))
    assert "is unsigned" in line and "clinic" in line
    line = one_line_error(edge("classify", colour_files["red"], "--model", bundle / "model.tflite"))
    assert "bare model file" in line or "is not listed" in line or "unsigned" in line
    assert train("sign", bundle, "--key", keys["stranger"].with_suffix(".key")).exit_code == 0
    line = one_line_error(edge("classify", colour_files["red"], "--model", bundle))
    assert "signed by key" in line and "stranger" in line and "not trusted" in line
    line = one_line_error(edge("verify", "--model", bundle))
    assert "not trusted" in line


def test_swapped_labels_or_a_replaced_model_are_caught(signed, trusting, colour_files):
    """Swapping two labels and fixing the checksum in model.json breaks the signature; swapping them
    without touching model.json breaks the checksum. Either way nothing runs."""
    from edge.model.bundle import file_entry

    labels = signed / "labels.txt"
    lines = labels.read_text().splitlines()
    labels.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    line = one_line_error(edge("classify", colour_files["red"], "--model", signed))
    assert "Checksum mismatch" in line and "labels.txt" in line
    meta = json.loads((signed / "model.json").read_text())
    meta["files"]["labels.txt"] = file_entry(labels)
    (signed / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    line = one_line_error(edge("classify", colour_files["red"], "--model", signed))
    assert "does not match" in line and "changed after it was signed" in line


def test_a_file_the_signature_does_not_cover_is_refused(signed, trusting, colour_files):
    os.symlink("/etc/passwd", signed / "README.txt")
    line = one_line_error(edge("classify", colour_files["red"], "--model", signed))
    assert "README.txt is a symbolic link" in line


def test_install_service_trusts_a_key_and_then_refuses_unsigned_bundles(bundle, signed, keys, tmp_path):
    import shutil

    unsigned = tmp_path / "unsigned"
    shutil.copytree(signed, unsigned)
    (unsigned / "model.sig").unlink()
    pub = keys["clinic"].with_suffix(".pub")
    root = tmp_path / "root"
    line = one_line_error(edge("install-service", "--root", root, "--trust", pub, "--model", unsigned))
    assert "is unsigned" in line and not root.exists()  # refused before anything was written
    r = edge("install-service", "--root", root, "--trust", pub, "--model", signed)
    assert r.exit_code == 0, r.output
    installed = list((root / "etc/skin-edge/trusted-keys").glob("*.pub"))
    assert [p.read_text() for p in installed] == [pub.read_text()]
    current = root / "var/lib/skin-edge/models/current"
    assert (current / "model.sig").is_file() and (current / "labels.txt").is_file()


def test_install_service_copies_only_listed_files_and_never_follows_links(fresh_bundle, tmp_path):
    os.symlink("/etc/passwd", fresh_bundle / "README.txt")
    (fresh_bundle / "notes.txt").write_text("not listed")
    root = tmp_path / "root"
    r = edge("install-service", "--root", root, "--model", fresh_bundle)
    assert r.exit_code == 0, r.output
    current = root / "var/lib/skin-edge/models/current"
    assert not (current / "README.txt").exists() and not (current / "README.txt").is_symlink()
    assert not (current / "notes.txt").exists() and (current / "model.tflite").is_file()


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(files={}), "lists no files"),
    (lambda m: m["files"].pop("model.tflite"), "does not list model.tflite"),
    (lambda m: m["golden"]["inputs"].update(file="/etc/passwd"), "not a plain file name"),
])
def test_confined_bundles(bundle, colour_files, change, message):
    meta = json.loads((bundle / "model.json").read_text())
    change(meta)
    (bundle / "model.json").write_text(json.dumps(meta))
    command = ["verify", "--model", bundle] if "golden" in message or "plain" in message else \
        ["classify", colour_files["red"], "--model", bundle]
    line = one_line_error(edge(*command))
    assert message in line


def test_quantize_with_a_bad_key_fails_before_the_work(quantized, tmp_path):
    (tmp_path / "bad.key").write_text("not a key")
    line = one_line_error(train("quantize", quantized["run"], "--out", tmp_path / "out", "--sign", tmp_path / "bad.key"))
    assert "not an Ed25519 private key" in line and not (tmp_path / "out").exists()
