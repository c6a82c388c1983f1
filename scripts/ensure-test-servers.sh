#!/usr/bin/env bash
# What the tests drive besides Python packages, from Debian: Chromium for the browser tests
# (Playwright's own browser download cannot work on a machine that reaches only the package
# registries) and PostgreSQL's server for the PostgreSQL tests (tests/postgres_server.py starts
# a throwaway one). Install whichever is missing, in one apt-get run.
set -euo pipefail
missing=()
if [ ! -x "${FLUX_PLAYGROUND_CHROMIUM:-/usr/bin/chromium}" ]; then
  missing+=(chromium)
fi
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "missing for the tests: ${missing[*]}; run 'sudo apt-get install ${missing[*]}'" \
    "(or set FLUX_PLAYGROUND_CHROMIUM to another Chromium)" >&2
  exit 1
fi
echo "installing Debian's ${missing[*]} for the tests..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
