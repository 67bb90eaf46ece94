#!/usr/bin/env bash
# Generates a TypeScript SDK from docs/openapi.json with @hey-api/openapi-ts (the generator
# FastAPI's full-stack template uses; pinned in clients/typescript, which also generates the
# committed SDK with it: scripts/client.sh) and fails if any type in it is `unknown`: an error
# or a success body the document does not describe, which a client team could then only handle
# with a cast.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# `./`: a bare `docs/openapi.json` reads as a Hey API registry name (`organization/project`).
# Its crash logs go to the temporary directory too, not into the checkout.
if ! clients/typescript/node_modules/.bin/openapi-ts -i ./docs/openapi.json -o "$out/sdk" \
  -c @hey-api/client-fetch -l "$out" >"$out/generate.log" 2>&1; then
  cat "$out/generate.log" "$out"/*.log >&2 || true
  echo "sdk: @hey-api/openapi-ts could not generate a client from docs/openapi.json" >&2
  exit 1
fi
# `unknown` where a type goes (`: unknown`, `unknown;`, `Array<unknown>`, `| unknown`), not
# the word in a JSDoc description.
if grep -n -B6 -E '(:|<|\|)[[:space:]]*unknown([[:space:]]*[;,>|)]|[[:space:]]*$)' "$out/sdk/types.gen.ts" >&2; then
  echo "sdk: the generated types above are \`unknown\`: describe that body in the handler's" \
    "utoipa::path (body = ...), then make openapi" >&2
  exit 1
fi
echo "sdk: every response and error of the generated TypeScript SDK is typed" \
  "($(grep -c '^export type .*Responses = ' "$out/sdk/types.gen.ts") operations)"
