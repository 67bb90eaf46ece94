#!/usr/bin/env bash
# Makes sure the Node.js test tools are installed, each pinned by its package-lock.json: every
# tool folder under scripts/ (its package.json says what it is for), and the TypeScript SDK's
# own tools. Among them:
# - playwright-core (scripts/browser), which drives Debian's chromium (installed here from
#   apt; playwright's own browser download is never used) through the docs UI;
# - Redocly's CLI (scripts/openapi-tools), which lints docs/openapi.json (make lint-openapi);
# - the TypeScript SDK's own tools (clients/typescript): @hey-api/openapi-ts, which generates
#   it (make client) and checks it current and typed (make check-client, make lint-openapi),
#   and TypeScript, which type-checks it and builds its end-to-end script (make sdk-e2e).
# A feature's own tools come and go with their folder (a template option that drops a feature
# drops its folder too).
set -euo pipefail
cd "$(dirname "$0")/.."
apt_install() {
  echo "[node-tools] installing $*" >&2
  if [ -z "${LABS_APT_UPDATED:-}" ]; then
    apt-get update -qq >&2
    export LABS_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}
command -v npm >/dev/null || apt_install nodejs npm
command -v chromium >/dev/null || apt_install chromium
tools=()
for lock in scripts/*/package-lock.json; do
  if [ -f "$lock" ]; then tools+=("${lock%/package-lock.json}"); fi
done
scripts/npm-ci.sh "${tools[@]}" clients/typescript
