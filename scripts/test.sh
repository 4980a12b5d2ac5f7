#!/usr/bin/env bash
# Set up .venv with everything the tests need, then run the whole test suite.
# Debian packages: chromium + chromium-driver (the live page is tested in a real browser) and
# systemd (systemd-analyze verifies the unit files), mosquitto (the MQTT output is tested against a
# real broker) and openssl (its TLS test makes a certificate). Installed when missing and we are root.
# mmdebstrap + systemd-container build and boot the Debian roots of the emulated aarch64 check
# (tests/test_aarch64.py, scripts/aarch64.sh) and the live systemd check (tests/live_systemd.py):
# installed here, up front, so that the two never run apt at the same time.
# The tests run on two pytest-xdist workers (pass -n 0 to run them in one process, -n 4 for four);
# conftest.py starts the slowest files first.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
roots=()  # as the root-only tests would install them (with their recommended packages)
if [ "$(id -u)" = 0 ]; then
    command -v mmdebstrap >/dev/null 2>&1 || roots+=(mmdebstrap)
    command -v systemd-nspawn >/dev/null 2>&1 || roots+=(systemd-container)
fi
if [ ${#need[@]} -gt 0 ] || [ ${#roots[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian packages: ${need[*]} ${roots[*]}"
        apt-get update -qq
        export DEBIAN_FRONTEND=noninteractive
        [ ${#need[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
        [ ${#roots[@]} -eq 0 ] || apt-get install -y -qq "${roots[@]}" >/dev/null
    else
        echo "warning: missing ${need[*]} ${roots[*]}; the tests that need them are skipped (install them with apt)." >&2
    fi
fi

scripts/setup.sh train,test
exec .venv/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder "$@"
