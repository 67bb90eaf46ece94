#!/usr/bin/env bash
# Makes sure the Node.js test tools are installed: Stripe's official SDK (scripts/stripe), which
# signs the webhook payloads the receiver's tests send. Pinned by its package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null; then
  echo "[node-tools] installing nodejs and npm" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
fi
if [ ! -d scripts/stripe/node_modules/stripe ]; then
  echo "[node-tools] npm ci in scripts/stripe" >&2
  (cd scripts/stripe && npm ci --no-audit --no-fund --silent >&2)
fi
