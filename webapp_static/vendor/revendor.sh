#!/usr/bin/env bash
# Re-vendors Chart.js from the npm registry: `bash webapp_static/vendor/revendor.sh`.
# The analytics page loads webapp_static/vendor/chart.umd.min.js from our own server (CSP script-src 'self');
# nothing is fetched at run time. To move to another version, set VERSION and INTEGRITY from
# `npm view chart.js@<version> dist.integrity`, run this, and commit the files it writes. The tarball is
# checked against INTEGRITY (npm's sha512), and tests/test_vendored.py checks the files against SHA256 below.
set -euo pipefail
VERSION=4.6.2
INTEGRITY=sha512-xachB+pPHjp0syJi7llUBA1w3kMYl6NF3o7eVrvjnWCT+IB2zMaF2pX5UYDiwbbfsioFEIRnAjreNOMsGj5TIA==
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "chart.js@$VERSION" >/dev/null)
TARBALL="$WORK/chart.js-$VERSION.tgz"
GOT="sha512-$(openssl dgst -sha512 -binary "$TARBALL" | base64 -w0)"
if [ "$GOT" != "$INTEGRITY" ]; then
  echo "chart.js-$VERSION.tgz is not the tarball npm published ($GOT)" >&2
  exit 1
fi
tar -xzf "$TARBALL" -C "$WORK" package/dist/chart.umd.min.js package/LICENSE.md
cp "$WORK/package/dist/chart.umd.min.js" "$HERE/chart.umd.min.js"
cp "$WORK/package/LICENSE.md" "$HERE/chart.js-LICENSE.md"
(cd "$HERE" && sha256sum chart.umd.min.js chart.js-LICENSE.md > SHA256SUMS)
echo "Chart.js $VERSION vendored into $HERE"
