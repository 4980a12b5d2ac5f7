"""``train keygen`` and ``train sign``: signing keys, and signed bundles for devices that trust them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from train.commands._common import handles_errors


def register(app: typer.Typer) -> None:
    app.command("keygen")(keygen)
    app.command("sign")(sign)


@handles_errors
def keygen(
    out: Annotated[Path, typer.Argument(metavar="NAME", show_default=False,
                                        help="Writes NAME.key (private, mode 0600) and NAME.pub.")],
    name: Annotated[str | None, typer.Option("--name", help="The key's name in NAME.pub "
                                             "\\[default: NAME's file name].")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key.")] = False,
) -> None:
    """Make an Ed25519 signing key: NAME.key stays on this workstation, NAME.pub goes to the devices
    (`edge install-service --trust NAME.pub`)."""
    from edge.model.signing import read_public_key  # noqa: PLC0415
    from train.export.signing import keygen as make  # noqa: PLC0415

    key_path, pub_path = make(out, name, force=force)
    key = read_public_key(pub_path)
    typer.echo(f"wrote {key_path} (private: keep it here, mode 0600) and {pub_path} (key {key.label})")


@handles_errors
def sign(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", show_default=False,
                                           help="Bundle folder written by `train quantize`.")],
    key: Annotated[Path, typer.Option("--key", "-k", metavar="KEY", show_default=False,
                                      help="The .key file `train keygen` wrote.")],
) -> None:
    """Sign BUNDLE: every file is listed and hashed in model.json, and model.sig signs model.json."""
    from train.export.signing import load_signing_key, sign_bundle  # noqa: PLC0415

    signed = sign_bundle(bundle, load_signing_key(key))
    typer.echo(f"signed {bundle} with key {signed.label}: {bundle / 'model.sig'}")
