#!/usr/bin/env bash
# Fuzzes the running API from its own OpenAPI document with schemathesis (every check: no 5xx,
# status codes, content types, headers and bodies as documented, 405 with Allow for
# undocumented methods, ...). Starts its own `labs serve --role api` on free ports (HTTP and
# metrics) with its own development database, and stops it with SIGTERM, which must exit 0.
# FUZZ_TAG=orders fuzzes only the operations of that tag (FUZZ_EXAMPLES, FUZZ_SEED: how much).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=$(dirname "$(dirname "$(scripts/python-tools.sh)")")

cargo build -q -p labs
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/debug/labs"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
admin=${LABS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# A database of this run's own: two checkouts may fuzz at once on the one Postgres.
database_name="labs_fuzz_$$"
database="${admin%/*}/$database_name"
log=$(mktemp)
export PGOPTIONS="-c client_min_messages=warning"
psql "$admin" -qc "DROP DATABASE IF EXISTS $database_name WITH (FORCE)"

# The metrics listener on a free port too, and rate-limit budgets and a job queue of its own:
# a development server (`cargo run -- serve`) may be running on the default ports and the
# shared Redis.
settings=(LABS_BIND="127.0.0.1:$port" LABS_METRICS_BIND="127.0.0.1:0" DATABASE_URL="$database"
  LABS_LOG_FORMAT=json LABS_RATE_LIMIT_NAMESPACE="labs:rl:fuzz:$$" LABS_JOBS_NAMESPACE="labs_fuzz_$$")
processes=()
# Each feature's own settings and stand-ins: the files of scripts/fuzz-api.d/ (a template
# option that drops the feature drops its file).
for part in scripts/fuzz-api.d/*.sh; do
  if [ -f "$part" ]; then . "$part"; fi
done

env "${settings[@]}" "$bin" serve --role api >"$log" 2>&1 &
server=$!
processes+=("$server")
# The server's log is kept when the run fails, and its path said: it is where the why is.
cleanup() {
  local status=$?
  kill "${processes[@]}" 2>/dev/null || true
  psql "$admin" -qc "DROP DATABASE IF EXISTS $database_name WITH (FORCE)" || true
  if [ "$status" = 0 ]; then rm -f "$log"; else echo "[fuzz] the fuzzed server's log: $log" >&2; fi
}
trap cleanup EXIT

scripts/wait-for-server.sh "the fuzzed server (labs serve --role api)" "$server" \
  "http://127.0.0.1:$port/api/health/ready" "$log" 30

# Authenticated as an administrator, so that the fuzzer reaches past the 401s of the users
# and admin APIs (and checks those 401s itself, without the header).
password="fuzz-admin-$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')"
DATABASE_URL="$database" LABS_ADMIN_PASSWORD="$password" "$bin" user create-admin --email fuzz-admin@example.com >/dev/null
login=$(curl -s -w '\n%{http_code}' -H 'content-type: application/json' \
  -d "{\"email\": \"fuzz-admin@example.com\", \"password\": \"$password\"}" \
  "http://127.0.0.1:$port/api/auth/token" || true)
login_status=${login##*$'\n'} login_body=${login%$'\n'*}
if [ "$login_status" != 200 ]; then
  echo "[fuzz] the administrator's login answered ${login_status/#000/no connection}: $login_body" >&2
  exit 1
fi
token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' <<<"$login_body")

fuzz() {
  "$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/openapi.json" \
    --checks all --max-examples "${FUZZ_EXAMPLES:-200}" --seed "${FUZZ_SEED:-20261128}" \
    --header "Authorization: Bearer $token" --request-timeout 10 "$@"
}
status=0
if [ -n "${FUZZ_TAG:-}" ]; then
  # Only the operations of one tag (a feature's: .ci/new-feature.sh fuzzes the scaffold's).
  fuzz --include-tag "$FUZZ_TAG" || status=$?
else
  # Logout last and alone: it ends the session of the token the other operations use.
  fuzz --exclude-operation-id logout_user || status=$?
  fuzz --include-operation-id logout_user || status=$?
fi

kill -TERM "$server"
if ! wait "$server"; then
  echo "[fuzz] the server did not exit 0 after SIGTERM" >&2
  tail -n 20 "$log" >&2
  status=1
fi
if grep -q '"level":"ERROR"' "$log"; then
  echo "[fuzz] the server logged errors while fuzzed:" >&2
  grep '"level":"ERROR"' "$log" | head -n 20 >&2
  status=1
fi
exit "$status"
