#!/usr/bin/env bash
# Re-fetch the vendored front-end files from the npm registry at the pinned versions.
# The app serves them from static/vendor/ so it works offline; see static/vendor/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent htmx.org@2.0.11 chart.js@4.6.1 swagger-ui-dist@5.35.0 axe-core@4.14.1 >/dev/null)
for tgz in "$work"/*.tgz; do mkdir -p "${tgz%.tgz}" && tar xzf "$tgz" -C "${tgz%.tgz}"; done
cp "$work"/htmx.org-2.0.11/package/dist/htmx.min.js static/vendor/htmx-2.0.11.min.js
cp "$work"/chart.js-4.6.1/package/dist/chart.umd.min.js static/vendor/chart-4.6.1.umd.min.js
cp "$work"/htmx.org-2.0.11/package/LICENSE static/vendor/licenses/htmx.org-LICENSE
cp "$work"/chart.js-4.6.1/package/LICENSE.md static/vendor/licenses/chart.js-LICENSE.md
mkdir -p static/vendor/swagger-ui-5.35.0
cp "$work"/swagger-ui-dist-5.35.0/package/swagger-ui-bundle.js "$work"/swagger-ui-dist-5.35.0/package/swagger-ui.css static/vendor/swagger-ui-5.35.0/
cp "$work"/swagger-ui-dist-5.35.0/package/LICENSE static/vendor/licenses/swagger-ui-dist-LICENSE
cp "$work"/swagger-ui-dist-5.35.0/package/NOTICE static/vendor/licenses/swagger-ui-dist-NOTICE
cp "$work"/swagger-ui-dist-5.35.0/package/swagger-ui-bundle.js.LICENSE.txt static/vendor/licenses/swagger-ui-bundle-third-party-LICENSES.txt
# axe-core: for the accessibility browser tests only (tests/e2e inject it); no page loads it.
cp "$work"/axe-core-4.14.1/package/axe.min.js static/vendor/axe-core-4.14.1.min.js
cp "$work"/axe-core-4.14.1/package/LICENSE static/vendor/licenses/axe-core-LICENSE
cp "$work"/axe-core-4.14.1/package/LICENSE-3RD-PARTY.txt static/vendor/licenses/axe-core-third-party-LICENSES.txt
sha256sum static/vendor/*.js static/vendor/*.css static/vendor/swagger-ui-5.35.0/*
