# Sourced by bench/http.sh and bench/profile.sh: a release build, a benchmark database (51
# accounts, an admin), and the server as both measure it. Defines `bin`, `target_dir`, `roles`,
# `port`, `base`, `work`, `database`, `password`, `free_port`, `start_server [wrapper...]`
# (the server, behind an optional wrapper command such as valgrind; pid in `server`),
# `wait_ready [seconds]`, `wait_and_log_in` (also sets `token`), and removes the database on
# exit.
cargo build -q --release -p labs -p labs_bench
admin=${LABS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
database="${admin%/*}/labs_bench"
# The pool's size in the benchmarked server (LABS_DB_MAX_CONNECTIONS, default 10): pgbench
# runs with as many connections.
pool=${LABS_DB_MAX_CONNECTIONS:-10}
export PGOPTIONS="-c client_min_messages=warning"

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# LABS_BIN: another build of the server to measure (a before/after comparison: build the other
# tree, point LABS_BIN at its binary; the ceilings and helpers still come from this tree).
bin=${LABS_BIN:-$target_dir/release/labs}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

psql "$admin" -qc 'DROP DATABASE IF EXISTS labs_bench WITH (FORCE)' -c 'CREATE DATABASE labs_bench'
DATABASE_URL="$database" "$bin" migrate >/dev/null
password="bench-$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')"
DATABASE_URL="$database" LABS_ADMIN_PASSWORD="$password" "$bin" user create-admin --email bench-admin@example.com >/dev/null
psql "$database" -qc "INSERT INTO users (id, email) SELECT gen_random_uuid(), 'user' || i || '@example.com' FROM generate_series(1, 50) i"

# The HTTP roles measured together, production-like: the API and the webhook receivers.
roles=api,hooks
port=$(free_port)
base="http://127.0.0.1:$port/api"
work=$(mktemp -d)
# The HTTP roles, production-like: JSON request logs (to a file), no migrations on
# start, rate limits out of the way (they would answer 429 to a load generator: logins in
# flight count as failed guesses until they succeed, so 64 at once spend a failure budget).
start_server() { # [wrapper command...]
  DATABASE_URL="$database" LABS_BIND="127.0.0.1:$port" LABS_METRICS_BIND="127.0.0.1:$(free_port)" \
    LABS_ROLES="$roles" LABS_MIGRATE_ON_START=false LABS_LOG_FORMAT=json \
    LABS_RATE_LIMIT_PER_IP=1000000000/1s LABS_RATE_LIMIT_PER_ACCOUNT=1000000000/1s \
    LABS_RATE_LIMIT_FAILURES_PER_CLIENT=1000000000/1s LABS_RATE_LIMIT_FAILURES_PER_ACCOUNT=1000000000/1s \
    LABS_RATE_LIMIT_NAMESPACE="bench:rl:$(date +%s%N)" \
    "$@" "$bin" serve >"$work/server.log" 2>&1 &
  server=$!
}
cleanup() {
  kill "${server:-}" "${hello:-}" 2>/dev/null || true
  psql "$admin" -qc 'DROP DATABASE IF EXISTS labs_bench WITH (FORCE)' >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_ready() { # [seconds to wait]
  scripts/wait-for-server.sh "the benchmarked server (labs serve --role $roles)" "$server" "$base/health/ready" "$work/server.log" "${1:-60}"
}
wait_and_log_in() {
  wait_ready
  token=$(curl -sf -H 'content-type: application/json' \
    -d "{\"email\": \"bench-admin@example.com\", \"password\": \"$password\"}" "$base/auth/token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
}
