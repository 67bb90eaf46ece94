#!/usr/bin/env bash
# `make new-feature name=orders [singular=order]`: a new feature crate, crates/labs_orders, in
# the shape of the others (docs/ADDING-A-FEATURE.md), wired in and tested:
#
# - from scripts/new-feature/crate/: its routes (list, create, get, update, delete) with
#   OpenAPI paths and camelCase bodies, its SQL, a job written through the outbox with its
#   handler, a periodic job, validated values, tests on labs_testapp::TestApp;
# - from scripts/new-feature/migration.sql: its table, as migrations/<now>_orders.sql;
# - its line in the features' list (crates/labs_features/src/lib.rs), its dependency there and
#   in the workspace (Cargo.toml);
# - then regenerates what follows from them: .sqlx/ (make sqlx-prepare) and the OpenAPI
#   snapshot with the TypeScript SDK (make openapi). Review those diffs, then `make test`.
#
# The skeleton's placeholders: __features__ (the name), __feature__ (its singular), and their
# UpperCamelCase __Features__, __Feature__, and __FEATURES__ (in environment variables).
# A generated service keeps this script: the template renames its `labs` as everything else.
set -euo pipefail
cd "$(dirname "$0")/.."

name=${1:-}
singular=${2:-}
usage="usage: make new-feature name=orders [singular=order] (lowercase letters and digits)"
[[ $name =~ ^[a-z][a-z0-9]*$ ]] || { echo "$usage" >&2; exit 2; }
if [ -z "$singular" ]; then
  # orders -> order, boxes -> boxe (say singular=box), news -> new (say singular=news).
  singular=${name%s}
  [ -n "$singular" ] || singular=$name
fi
[[ $singular =~ ^[a-z][a-z0-9]*$ ]] || { echo "$usage" >&2; exit 2; }

crate=labs_$name
case $name in
  # The platform's crates and the base feature: their names are taken.
  accounts|api|auth|bench|db|domain|features|http|jobs|telemetry|testapp|testkit|worker)
    echo "new-feature: $name is the name of a crate of the platform" >&2; exit 1 ;;
esac
[ ! -e "crates/$crate" ] || { echo "new-feature: crates/$crate exists already" >&2; exit 1; }
# The name is a field of the features' list (Rust) and a table (SQL): no keyword of either.
rust_keywords=" as async await box break const continue crate do dyn else enum extern false final fn for gen if impl in let loop macro match mod move mut override priv pub ref return self static struct super trait true try type typeof union unsafe unsized use virtual where while yield "
for word in "$name" "$singular"; do
  if [[ $rust_keywords == *" $word "* ]]; then
    echo "new-feature: $word is a Rust keyword; pick another name" >&2; exit 1
  fi
done
admin=${LABS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
if [ "$(psql "$admin" -Atc "SELECT count(*) FROM pg_get_keywords() WHERE word = '$name' AND catcode <> 'U'")" != 0 ]; then
  echo "new-feature: $name is an SQL keyword (its table would need quoting); pick another name" >&2; exit 1
fi
if grep -qiE "CREATE TABLE (IF NOT EXISTS )?$name\b" migrations/*.sql; then
  echo "new-feature: a migration already creates a table named $name" >&2; exit 1
fi

camel() { echo "${1^}"; }
upper() { echo "${1^^}"; }
substitute() {
  sed -e "s/__features__/$name/g" -e "s/__feature__/$singular/g" \
      -e "s/__Features__/$(camel "$name")/g" -e "s/__Feature__/$(camel "$singular")/g" \
      -e "s/__FEATURES__/$(upper "$name")/g"
}

# The crate, its files renamed and filled in.
skeleton=scripts/new-feature/crate
while IFS= read -r -d '' file; do
  relative=${file#"$skeleton"/}
  target="crates/$crate/$(echo "$relative" | substitute)"
  mkdir -p "$(dirname "$target")"
  substitute < "$file" > "$target"
done < <(find "$skeleton" -type f -print0)

# Its table: a migration after every existing one.
migration="migrations/$(date -u +%Y%m%d%H%M%S)_$name.sql"
substitute < scripts/new-feature/migration.sql > "$migration"

# The wiring: the workspace's dependency table, the features' crate, its list.
python3 - "$crate" "$name" <<'EOF'
import re, sys
from pathlib import Path

crate, name = sys.argv[1], sys.argv[2]

def insert_after(path, anchor, line):
    text = Path(path).read_text()
    at = re.search(anchor, text, re.M)
    if not at:
        sys.exit(f"new-feature: {path} has no line matching {anchor!r}")
    end = text.index("\n", at.end()) + 1
    Path(path).write_text(text[:end] + line + "\n" + text[end:])

insert_after("Cargo.toml", r"^labs_features = \{ path", f'{crate} = {{ path = "crates/{crate}" }}')
insert_after("crates/labs_features/Cargo.toml", r"^\[dependencies\]", f"{crate}.workspace = true")

lib = Path("crates/labs_features/src/lib.rs")
text = lib.read_text()
at = text.rindex("features! {")
close = text.index("\n}", at)
camel = name[0].upper() + name[1:]
lib.write_text(text[:close] + f"\n    {name}: {crate}::{camel}," + text[close:])
EOF

cargo fmt --all
echo "new-feature: crates/$crate and $migration written, wired into crates/labs_features"
make --no-print-directory sqlx-prepare
make --no-print-directory openapi
echo "new-feature: done. Review git diff (the OpenAPI snapshot, .sqlx/, the SDK), then make test"
