#!/usr/bin/env bash
# The database-driver spike (bench/db-driver/, docs/PERFORMANCE.md): sqlx in its own pool, sqlx's
# connections in deadpool's, and tokio-postgres with deadpool, on the query of every authenticated
# request, alternated, RUNS runs each of SECONDS, POOL connections, CALLERS concurrent callers;
# prints each run and the medians of queries/s and of the client's CPU per query. Builds the spike
# in its own target directory (DB_DRIVER_TARGET_DIR, default
# /var/cache/labs-bench/db-driver-target: a few minutes the first time). Needs the local Postgres
# and a release build of labs (for the migrations). Not part of the test suite or CI.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-3}
seconds=${SECONDS_PER_RUN:-8}
pool=${POOL:-10}
callers=${CALLERS:-64}
admin=${LABS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
database="${admin%/*}/labs_db_driver"
export PGOPTIONS="-c client_min_messages=warning"

CARGO_TARGET_DIR=${DB_DRIVER_TARGET_DIR:-/var/cache/labs-bench/db-driver-target} \
  cargo build -q --release --manifest-path bench/db-driver/Cargo.toml
spike="${DB_DRIVER_TARGET_DIR:-/var/cache/labs-bench/db-driver-target}/release/db-driver-spike"
cargo build -q --release -p labs
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

psql "$admin" -qc 'DROP DATABASE IF EXISTS labs_db_driver WITH (FORCE)' -c 'CREATE DATABASE labs_db_driver'
trap 'psql "$admin" -qc "DROP DATABASE IF EXISTS labs_db_driver WITH (FORCE)" >/dev/null || true' EXIT
DATABASE_URL="$database" "$target_dir/release/labs" migrate >/dev/null
session=$(psql "$database" -Atq <<'SQL'
INSERT INTO users (id, email) SELECT gen_random_uuid(), 'user' || i || '@example.com' FROM generate_series(1, 50) i;
INSERT INTO sessions (id, user_id) SELECT gen_random_uuid(), id FROM users;
SELECT id FROM sessions LIMIT 1;
SQL
)
url="$database?sslmode=disable"
declare -A rates cpus
for run in $(seq "$runs"); do
  for driver in sqlx sqlx-deadpool tokio-postgres; do
    line=$("$spike" "$driver" "$url" "$session" "$seconds" "$pool" "$callers")
    echo "$driver run $run: $line"
    rate=${line#queries_per_s=}; rates[$driver]+="${rate%% *} "
    cpu=${line#*cpu_us_per_query=}; cpus[$driver]+="${cpu%% *} "
  done
done
median() { tr ' ' '\n' | grep . | sort -n | sed -n "$(( (runs + 1) / 2 ))p"; }
for driver in sqlx sqlx-deadpool tokio-postgres; do
  echo "$driver: median $(echo "${rates[$driver]}" | median) queries/s, $(echo "${cpus[$driver]}" | median) µs of client CPU per query"
done
