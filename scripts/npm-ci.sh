#!/usr/bin/env bash
# Installs each Node.js package folder given (`scripts/npm-ci.sh DIR...`) exactly as its
# package-lock.json pins it (`npm ci`), unless node_modules already holds that lock: fast when
# nothing changed, and a changed lock (a new or bumped dependency) reinstalls rather than
# running on stale modules. (A check for one package's folder, which this replaces, missed
# that.) Needs npm, which scripts/node-tools.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { echo "[npm-ci] npm is missing: scripts/node-tools.sh installs it" >&2; exit 1; }
for dir in "$@"; do
  stamp="$dir/node_modules/.installed-package-lock.json"
  if ! cmp -s "$dir/package-lock.json" "$stamp"; then
    echo "[npm-ci] npm ci in $dir" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --silent >&2)
    cp "$dir/package-lock.json" "$stamp"
  fi
done
