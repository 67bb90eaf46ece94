#!/usr/bin/env bash
# The TypeScript SDK in clients/typescript, generated from docs/openapi.json by
# @hey-api/openapi-ts (pinned in clients/typescript/package-lock.json; why hey-api:
# clients/typescript/README.md). Its generated part, src/gen, is committed like .sqlx/, and
# so is checked the same way:
#
#   scripts/client.sh          regenerate src/gen (make client; make openapi runs it too)
#   scripts/client.sh --check  fail if src/gen is not what docs/openapi.json generates, then
#                              type-check the package and its e2e script with tsc --strict
#                              (make check-client, part of make test)
#
# Nothing in src/gen is edited by hand: the generator rewrites the folder whole. Its output
# has no timestamp nor version stamp, so the same document and generator give the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
package=clients/typescript
scripts/npm-ci.sh "$package"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# CLIENT_OUTPUT: where openapi-ts.config.js writes (src/gen unless told). Its crash logs go to
# the temporary directory, not into the checkout.
generate() {
  if ! (cd "$package" && CLIENT_OUTPUT=$1 node_modules/.bin/openapi-ts -f openapi-ts.config.js \
    -l "$tmp" >"$tmp/generate.log" 2>&1); then
    cat "$tmp/generate.log" "$tmp"/*.log >&2 || true
    echo "client: @hey-api/openapi-ts could not generate the SDK from docs/openapi.json" >&2
    exit 1
  fi
}

case "${1:-}" in
  "")
    generate src/gen
    echo "client: regenerated $package/src/gen from docs/openapi.json"
    ;;
  --check)
    generate "$tmp/gen"
    if ! diff -ru "$package/src/gen" "$tmp/gen" >"$tmp/diff"; then
      head -n 60 "$tmp/diff" >&2
      echo "client: $package/src/gen is not what docs/openapi.json generates (diff above):" \
        "run make client, and commit the result" >&2
      exit 1
    fi
    echo "client: $package/src/gen is what docs/openapi.json generates"
    (cd "$package" && node_modules/.bin/tsc --strict --noEmit -p .)
    echo "client: the SDK and its e2e script type-check (tsc --strict)"
    ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac
