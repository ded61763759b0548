#!/bin/sh
# Copies the browser libraries pinned in package.json / package-lock.json (versions and sha512 hashes)
# from the npm registry into this folder. The copies are committed, so the app needs neither npm nor a
# network to run; run this only to change a version (edit package.json, `npm install --package-lock-only`).
#   sh static/vendor/update.sh          copy
#   sh static/vendor/update.sh --check  exit 1 if a committed copy differs from the pinned package
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$work/"
npm ci --prefix "$work" --ignore-scripts --no-audit --no-fund --loglevel=error
status=0
while read -r from to; do
    if [ "${1:-}" = "--check" ]; then
        cmp -s "$work/node_modules/$from" "$here/$to" || { echo "differs from the pinned package: $to"; status=1; }
    else
        cp "$work/node_modules/$from" "$here/$to"
    fi
done <<FILES
marked/lib/marked.esm.js marked.esm.js
marked/LICENSE marked.LICENSE
dompurify/dist/purify.es.mjs purify.es.mjs
dompurify/LICENSE dompurify.LICENSE
FILES
exit $status
