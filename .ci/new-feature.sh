#!/usr/bin/env bash
# CI: the `make new-feature` scaffold, run in a scratch clone of this checkout's HEAD, makes a
# feature that builds, lints and passes its own tests, and leaves every check of the service
# green: the OpenAPI snapshot and its rules, Redocly's lint and the SDK's types, and
# schemathesis on the new operations (no 5xx, no schema-valid request refused).
#
# The scratch clone has a fixed path and a target dir of its own (under $LABS_CI_CACHE): cargo
# names a workspace crate's artifacts by its path within the workspace, not by the checkout,
# so sharing CI's main target dir with a second checkout would mix the two checkouts' builds.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${LABS_CI_CACHE:-/var/cache/labs-ci}
scratch=/tmp/labs-new-feature-check
rm -rf "$scratch"
git clone -q . "$scratch"
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
export CARGO_TARGET_DIR="$cache/target-new-feature"
# On a cold cache, start from CI's main target dir without the workspace's own crates: the
# dependencies' builds are the same for both checkouts, ours are not (see above).
if [ ! -d "$CARGO_TARGET_DIR" ] && [ -d "$cache/target" ]; then
  cp -a --reflink=auto "$cache/target" "$CARGO_TARGET_DIR"
  ours=$(cargo metadata --format-version 1 --no-deps | python3 -c \
    'import json,sys; print(" ".join("-p " + p["name"] for p in json.load(sys.stdin)["packages"]))')
  # shellcheck disable=SC2086 # one -p per crate
  cargo clean -q $ours
fi
admin=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

make --no-print-directory new-feature name=orders
git add -A
echo "[new-feature] outside crates/labs_orders it touched:"
git diff --cached --stat -- . ':(exclude)crates/labs_orders' | tail -n 1
git diff --cached --name-only -- . ':(exclude)crates/labs_orders' ':(exclude).sqlx' ':(exclude)clients' | sed 's/^/  /'

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
scripts/node-tools.sh
export DATABASE_URL="$admin" LABS_TEST_PYTHON=$(scripts/python-tools.sh)
cargo test --locked -p labs_orders
# The OpenAPI snapshot and the rules every operation keeps (summaries, documented errors).
cargo test --locked -p labs --test app api::
unset DATABASE_URL
make --no-print-directory check-client lint-openapi
LABS_TEST_DATABASE_URL="$admin" FUZZ_TAG=orders scripts/fuzz-api.sh
echo "[new-feature] make new-feature name=orders: a feature that builds, lints and passes"
