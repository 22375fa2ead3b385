#!/usr/bin/env bash
# Install headless Chromium and its driver from apt (idempotent: skips when both are present).
# Used by the browser tests and the report check; needs root (or sudo) and the apt mirrors.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    echo "chromium and chromedriver already installed: $(/usr/bin/chromium --version 2>/dev/null || true)"
    exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-browser.sh: need root (or password-less sudo) to apt-get install chromium" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser.sh: apt-get not found; install chromium and chromedriver by hand" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium chromium-driver

for exe in /usr/bin/chromium /usr/bin/chromedriver; do
    if [[ ! -x "$exe" ]]; then
        echo "install-browser.sh: $exe still missing after apt-get install" >&2
        exit 1
    fi
done
echo "installed: $(/usr/bin/chromium --version 2>/dev/null || true)"
