#!/usr/bin/env bash
# The template, used the way a team uses it (README, "Start a new service"): generate a new
# service offline from this working tree with cargo-generate, under another name and with the
# options switched off; check that nothing is left of the template's name nor of Stripe; take an
# improvement of the template with the service's scripts/template-sync.sh; then run the new
# service's own checks and whole test suite against the local Postgres and Redis.
#
# Builds share CI's target dir (the new service's crates are new, its dependencies are not), and
# cargo-generate is installed once under $LABS_CI_CACHE/tools.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${LABS_CI_CACHE:-/var/cache/labs-ci}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
log() { printf '[generate] %s\n' "$*" >&2; }

# cargo-generate 0.23.8 is the newest release that builds with our toolchain (1.95): 0.24 and
# later need rustc 1.96 (cargo-util-schemas, kstring).
tools=$cache/tools
if ! "$tools/bin/cargo-generate" --version 2>/dev/null | grep -qF 0.23.8; then
  log "installing cargo-generate 0.23.8"
  cargo install --quiet --locked --root "$tools" cargo-generate@0.23.8
fi
export PATH="$tools/bin:$PATH"

work=$(mktemp -d /tmp/labs-generate.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The template as a user gets it: the tracked and new files of this working tree, no build
# output, no installed node modules.
template=$work/template
mkdir -p "$template"
git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$template"

# Every default (Stripe on): renamed throughout, and it compiles.
log "cargo generate: billing-desk, every default"
cargo generate --path "$template" --name billing-desk --destination "$work" --vcs none --silent --allow-commands
if grep -rIil --exclude=.template-values.toml labs "$work/billing-desk"; then
  log "the template's name is left in the files above"
  exit 1
fi
(cd "$work/billing-desk" && cargo check --quiet --workspace --all-targets --locked)
log "generated with every default: nothing named labs is left, and it compiles"

log "cargo generate: acme-orders, environment prefix ACME, root path /v1, without Stripe"
cargo generate --path "$template" --name acme-orders --destination "$work" --vcs none \
  --silent --allow-commands \
  -d env_prefix=ACME -d root_path=/v1 -d stripe=false -d 'author=Ada Lovelace <ada@example.com>'
service=$work/acme-orders

# (.template-values.toml names the options, `stripe = false` among them. `stripEmptySlots` is a
# function of the TypeScript SDK's generated runtime, the same for every document: not Stripe.)
leftovers=$(grep -rIil --exclude=.template-values.toml -P 'labs|stripe(?!mptyslots)' "$service" || true)
if [ -n "$leftovers" ]; then
  grep -rIin --exclude=.template-values.toml -P 'labs|stripe(?!mptyslots)' "$service" | head -n 20 >&2
  log "the template's name or a switched-off option is left in: $leftovers"
  exit 1
fi
[ ! -e "$service/cargo-generate.toml" ] && [ ! -e "$service/template" ] || { log "template machinery left"; exit 1; }
grep -qF 'authors = ["Ada Lovelace <ada@example.com>"]' "$service/Cargo.toml"
grep -qF 'ACME_ROOT_PATH' "$service/README.md"
# The feature scaffold comes along, renamed with the rest (the grep above read its skeleton).
[ -x "$service/scripts/new-feature.sh" ] && [ -d "$service/scripts/new-feature/crate" ]
log "generated: nothing named labs or Stripe is left; the feature scaffold is there"

# The upgrade procedure of the README, step by step: commit the generated project and mark it
# as the `template` branch, change something of the service's own, then take an improvement of
# the template with scripts/template-sync.sh. Both changes must be in the merged result.
export GIT_AUTHOR_NAME=ci GIT_AUTHOR_EMAIL=ci@example.com GIT_COMMITTER_NAME=ci GIT_COMMITTER_EMAIL=ci@example.com
cd "$service"
git init -q -b main
git add -A
git commit -q -m "New service from the template"
git branch template
printf '\nOrders for Acme.\n' >>README.md
git commit -q -am "Say what the service is for"
printf '\n<!-- improved in the template -->\n' >>"$template/docs/OPERATIONS.md"
scripts/template-sync.sh "$template"
grep -qF 'Orders for Acme.' README.md
grep -qF 'improved in the template' docs/OPERATIONS.md
[ -z "$(git status --porcelain)" ]
log "template-sync: the template's improvement merged next to the service's own change"

# The new service's own checks and suite, as its .ci/run runs them, on CI's caches.
export ACME_CI_CACHE=$cache
log "cargo fmt, clippy"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log "sqlx offline data"
make sqlx-check
log "make test"
make test
log "the generated service passes its checks and tests"
