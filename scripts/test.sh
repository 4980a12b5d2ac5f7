#!/usr/bin/env bash
# Set up .venv with everything the tests need, then run the whole test suite.
# Debian packages: chromium + chromium-driver (the live page is tested in a real browser) and
# systemd (systemd-analyze verifies the unit files), mosquitto (the MQTT output is tested against a
# real broker) and openssl (its TLS test makes a certificate). Installed when missing and we are root.
# The emulated aarch64 check (tests/test_aarch64.py) installs what it needs itself: scripts/aarch64.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian packages: ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "warning: missing ${need[*]}; the tests that need them are skipped (install them with apt)." >&2
    fi
fi

scripts/setup.sh train,test
exec .venv/bin/python -m pytest "$@"
