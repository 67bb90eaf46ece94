#!/usr/bin/env bash
# Makes sure the Node.js test tools are installed, each pinned by its package-lock.json:
# - playwright-core (scripts/browser), which drives Debian's chromium (installed here from
#   apt; playwright's own browser download is never used) through the docs UI;
# - Redocly's CLI and @hey-api/openapi-ts (scripts/openapi-tools), which lint docs/openapi.json
#   and generate a TypeScript SDK from it (make lint-openapi);
# - Stripe's official SDK (scripts/stripe), which signs the webhook payloads the receiver's # template:only stripe
#   tests send. # template:only stripe
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
scripts/npm-ci.sh scripts/browser scripts/openapi-tools
scripts/npm-ci.sh scripts/stripe # template:only stripe
