#!/usr/bin/env bash
# The TypeScript SDK end to end (make sdk-e2e): clients/typescript/e2e/auth-flow.ts, built with
# the package's pinned tsc and run with node, drives a real `labs serve --role
# api,worker,scheduler` through signup, the emailed verification link, login, me, refresh,
# TOTP and logout, with the SDK's typed calls only. The worker sends the email over SMTP to a
# real server (aiosmtpd, from scripts/python-tools.sh) that writes a maildir, which the script
# reads for the link.
#
# Everything is this run's own, so that it runs beside a development server (8080, 9090) and
# other checkouts' suites on the one Postgres and Redis: free ports (HTTP, metrics, SMTP), a
# database, a job namespace and rate-limit budgets. All of it is stopped or dropped however the
# script ends; the server's log is kept, and its path said, when the run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[sdk-e2e] %s\n' "$*" >&2; }

python=$(scripts/python-tools.sh)
scripts/npm-ci.sh clients/typescript

cargo build -q -p labs
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/debug/labs"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
smtp_port=$(free_port)
admin=${LABS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
database_name="labs_sdk_e2e_$$"
database="${admin%/*}/$database_name"
namespace="labs_sdk_e2e_$$"
work=$(mktemp -d)
server_log="$work/serve.log"
export PGOPTIONS="-c client_min_messages=warning"
psql "$admin" -qc "DROP DATABASE IF EXISTS $database_name WITH (FORCE)"

processes=()
cleanup() {
  local status=$?
  for process in "${processes[@]}"; do kill "$process" 2>/dev/null || true; done
  for process in "${processes[@]}"; do wait "$process" 2>/dev/null || true; done
  psql "$admin" -qc "DROP DATABASE IF EXISTS $database_name WITH (FORCE)" || true
  # The job queue's keys (the scheduler's ticks, the email job) under this run's namespace.
  if command -v redis-cli >/dev/null; then
    redis-cli --scan --pattern "$namespace*" | xargs -r redis-cli del >/dev/null || true
    redis-cli --scan --pattern "labs:rl:sdk-e2e:$$*" | xargs -r redis-cli del >/dev/null || true
  fi
  if [ "$status" = 0 ]; then
    rm -rf "$work"
  else
    log "failed; the server's log is $server_log"
  fi
}
trap cleanup EXIT

"$python" -m aiosmtpd -n -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Mailbox "$work/maildir" \
  >"$work/smtp.log" 2>&1 &
smtp=$!
processes+=("$smtp")
deadline=$((SECONDS + 15))
until (exec 3<>"/dev/tcp/127.0.0.1/$smtp_port") 2>/dev/null; do
  kill -0 "$smtp" 2>/dev/null || { cat "$work/smtp.log" >&2; log "aiosmtpd exited"; exit 1; }
  [ "$SECONDS" -lt "$deadline" ] || { cat "$work/smtp.log" >&2; log "aiosmtpd did not listen within 15s"; exit 1; }
  sleep 0.1
done

env LABS_BIND="127.0.0.1:$port" LABS_METRICS_BIND="127.0.0.1:0" DATABASE_URL="$database" \
  LABS_LOG_FORMAT=json LABS_SMTP_URL="smtp://127.0.0.1:$smtp_port" \
  LABS_JOBS_NAMESPACE="$namespace" LABS_RATE_LIMIT_NAMESPACE="labs:rl:sdk-e2e:$$" \
  "$bin" serve --role api,worker,scheduler >"$server_log" 2>&1 &
server=$!
processes+=("$server")
# The TypeScript, built while the server starts, into the work folder (nothing lands in the
# checkout); `type: module` makes node read the output as the ES modules it is.
(cd clients/typescript && node_modules/.bin/tsc --strict -p . --outDir "$work/js")
echo '{"type": "module"}' >"$work/js/package.json"
scripts/wait-for-server.sh "the SDK's server (labs serve --role api,worker,scheduler)" "$server" \
  "http://127.0.0.1:$port/api/health/ready" "$server_log" 60

SDK_E2E_ORIGIN="http://127.0.0.1:$port" SDK_E2E_MAILDIR="$work/maildir" node "$work/js/e2e/auth-flow.js"

kill -TERM "$server"
if ! wait "$server"; then
  tail -n 20 "$server_log" >&2
  log "the server did not exit 0 after SIGTERM"
  exit 1
fi
if grep -q '"level":"ERROR"' "$server_log"; then
  grep '"level":"ERROR"' "$server_log" | head -n 20 >&2
  log "the server logged errors during the run (above)"
  exit 1
fi
log "the TypeScript SDK passed every step against the live server"
