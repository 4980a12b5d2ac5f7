#!/usr/bin/env bash
# Run Python on an emulated 64-bit Raspberry Pi OS Bookworm (aarch64, Python 3.11, glibc 2.36) on
# an x86-64 host, with the wheels a Pi's pip picks for this project: an arm64 Debian bookworm root
# filesystem (unpacked by mmdebstrap, nothing executed), qemu-user from Debian trixie (bookworm's
# qemu 7.2 segfaults inside LiteRT 2.x), and `pip install --platform manylinux..._aarch64` of the
# project's own dependencies. The project itself runs from the source tree.
#
#   scripts/aarch64.sh [python args...]      e.g. scripts/aarch64.sh -m edge info models/demo
#
# Needs root the first time (apt for mmdebstrap); later runs reuse the cache in $SKIN_EDGE_AARCH64
# (default /var/cache/skin-edge-aarch64). Emulation is slow: use it for "does it install, import
# and compute the same numbers", never for speed.
set -euo pipefail
PROJECT=$(cd "$(dirname "$0")/.." && pwd)
W=${SKIN_EDGE_AARCH64:-/var/cache/skin-edge-aarch64}
ROOT=$W/bookworm-arm64
QEMU=$W/qemu/usr/bin/qemu-aarch64
PIP=${PIP:-python3 -m pip}
mkdir -p "$W"
exec 9>"$W/.lock"
flock 9  # one build of the cache at a time

say() { echo "aarch64: $*" >&2; }
if ! command -v mmdebstrap >/dev/null; then
    say "installing mmdebstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null 2>&1 ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null; }
fi
if [ ! -x "$QEMU" ]; then
    say "fetching qemu-user from Debian trixie"
    A=$W/apt; mkdir -p "$A/state/lists/partial" "$A/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" >"$A/sources.list"
    o=(-o Dir::Etc::SourceList="$A/sources.list" -o Dir::Etc::SourceParts=/nonexistent -o Dir::State="$A/state"
       -o Dir::Cache="$A/cache")
    apt-get "${o[@]}" update -qq >/dev/null
    (cd "$A" && apt-get "${o[@]}" download qemu-user >/dev/null 2>&1)
    rm -rf "$W/qemu.tmp" && dpkg-deb -x "$A"/qemu-user_*.deb "$W/qemu.tmp"
    rm -rf "$W/qemu" && mv "$W/qemu.tmp" "$W/qemu"
    rm -rf "$A"
fi
if [ ! -x "$ROOT/usr/bin/python3.11" ]; then
    say "unpacking an arm64 Debian bookworm root filesystem"
    rm -rf "$ROOT.tmp"
    mmdebstrap --quiet --variant=extract --arch=arm64 \
        --include=python3,python3-minimal,libpython3.11-stdlib,libgomp1,libstdc++6,zlib1g,libexpat1 \
        bookworm "$ROOT.tmp" http://deb.debian.org/debian
    rm -rf "$ROOT" && mv "$ROOT.tmp" "$ROOT"
fi
# The dependencies as pyproject.toml states them, resolved the way a Pi's pip would: aarch64,
# CPython 3.11, manylinux up to glibc 2.36 (pip takes only the tags it is given: name each one).
key=$(sed -n '/^dependencies = \[/,/^\]/p' "$PROJECT/pyproject.toml" | sha256sum | cut -c1-12)
SITE=$W/site-$key
if [ ! -d "$SITE" ]; then
    say "installing the project's dependencies for aarch64 (${SITE##*/})"
    plat=(--platform manylinux2014_aarch64)
    for g in $(seq 17 36); do plat+=(--platform "manylinux_2_${g}_aarch64"); done
    rm -rf "$SITE.tmp"
    deps=$(sed -n '/^dependencies = \[/,/^\]/p' "$PROJECT/pyproject.toml" | sed -n 's/^ *"\([^"]*\)",*$/\1/p')
    mapfile -t reqs <<<"$deps"
    $PIP install -q --disable-pip-version-check --no-warn-conflicts --target "$SITE.tmp" "${plat[@]}" \
        --python-version 3.11 --implementation cp --only-binary=:all: "${reqs[@]}"
    mv "$SITE.tmp" "$SITE"
fi
# An emulated process cannot start another aarch64 one here (qemu-user, no binfmt_misc), so the
# first-load probe of edge/model/sandbox.py, which starts a child Python, is off under emulation.
exec env -u PYTHONHOME PYTHONPATH="$PROJECT:$SITE" QEMU_LD_PREFIX="$ROOT" PYTHONDONTWRITEBYTECODE=1 SKIN_EDGE_SANDBOX=0 \
    "$QEMU" "$ROOT/usr/bin/python3.11" "$@"
