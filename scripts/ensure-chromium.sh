#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (Playwright's own browser download cannot work on a
# machine that reaches only the package registries). Install it when it is missing.
set -euo pipefail
if [ -x "${FLUX_PLAYGROUND_CHROMIUM:-/usr/bin/chromium}" ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "Chromium is missing: run 'sudo apt-get install chromium' (or set FLUX_PLAYGROUND_CHROMIUM)" >&2
  exit 1
fi
echo "installing Debian's chromium for the browser tests..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
