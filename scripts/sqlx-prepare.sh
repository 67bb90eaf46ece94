#!/usr/bin/env bash
# Regenerates `.sqlx/`, the offline query data that lets every build check SQL without a
# database. With --check, regenerates into a scratch folder and fails if `.sqlx/` differs.
#
# How: apply the migrations to a scratch database with psql (not `labs migrate`: the binary
# cannot compile before its new queries are described), then let the sqlx macros describe
# every query against it (SQLX_OFFLINE=false) and write their data to SQLX_OFFLINE_DIR. This
# needs no sqlx-cli, whose build would cost minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
[ "${1:-}" = "--check" ] && check=true

export PGOPTIONS="-c client_min_messages=warning"
admin=${LABS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
scratch="${admin%/*}/labs_sqlx_prepare"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

psql "$admin" -qc 'DROP DATABASE IF EXISTS labs_sqlx_prepare WITH (FORCE)' >/dev/null
psql "$admin" -qc 'CREATE DATABASE labs_sqlx_prepare'
# sqlx's own bookkeeping table, which readiness queries (same columns as sqlx creates).
psql "$scratch" -q -v ON_ERROR_STOP=1 -c 'CREATE TABLE _sqlx_migrations (
  version BIGINT PRIMARY KEY, description TEXT NOT NULL,
  installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL,
  checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)'
for migration in migrations/*.sql; do
  psql "$scratch" -q -v ON_ERROR_STOP=1 -f "$migration" >/dev/null
done
# The macros only run when their crate is recompiled: touch every source file that may hold one.
find crates -name '*.rs' -exec touch {} +
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$out" DATABASE_URL="$scratch" \
  cargo check -q --workspace --all-targets
psql "$admin" -qc 'DROP DATABASE IF EXISTS labs_sqlx_prepare WITH (FORCE)' >/dev/null

if $check; then
  if ! diff -r "$out" .sqlx >/dev/null 2>&1; then
    diff -r "$out" .sqlx || true
    echo "sqlx: .sqlx/ is out of date; run scripts/sqlx-prepare.sh (make sqlx-prepare) and commit it" >&2
    exit 1
  fi
  echo "sqlx: .sqlx/ is current ($(ls "$out" | wc -l) queries)"
else
  rm -rf .sqlx
  cp -r "$out" .sqlx
  echo "sqlx: wrote $(ls .sqlx | wc -l) queries to .sqlx/"
fi
