#!/usr/bin/env bash
# Create .venv at the repository root and install skin-edge into it.
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh train,test
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-train}"

python=""
for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
        python="$candidate"
        break
    fi
done
if [ -z "$python" ]; then
    echo "error: Python 3.11 or newer is needed (Raspberry Pi OS Bookworm ships 3.11)." >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -qq --upgrade pip
.venv/bin/python -m pip install -qq -e ".[${extras}]"
echo "skin-edge installed in .venv ($(.venv/bin/python --version), extras: ${extras})"
