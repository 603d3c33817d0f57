#!/usr/bin/env bash
# Debian's Chromium for the dashboard's browser tests (driven by Playwright with executable_path).
# Idempotent: does nothing when Chromium is already there. Needs root (or sudo) for apt-get.
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ -x "$CHROMIUM" ]]; then
    exit 0
fi
SUDO=""
if [[ "$(id -u)" != "0" ]]; then
    SUDO="sudo"
fi
echo "Installing Debian's chromium for the browser tests..." >&2
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium
"$CHROMIUM" --version >&2
