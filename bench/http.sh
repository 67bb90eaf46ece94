#!/usr/bin/env bash
# HTTP benchmarks of a release build on loopback, with wrk (and each feature's own, in
# bench/http-FEATURE.sh): fixed duration and connections, several runs, medians. Also: cold
# start to ready, the raw argon2id rate of this machine (what login is compared with), and the
# API process's peak RSS. Procedure and results: docs/PERFORMANCE.md. Needs the local Postgres
# and Redis (make services) and wrk (apt install wrk). Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
runs=${RUNS:-3}
admin=${LABS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
database="${admin%/*}/labs_bench"
export PGOPTIONS="-c client_min_messages=warning"

cargo build -q --release -p labs -p labs_bench
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/release/labs"
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
# start, rate limits out of the way (they would answer 429 to a load generator).
start_server() {
  DATABASE_URL="$database" LABS_BIND="127.0.0.1:$port" LABS_METRICS_BIND="127.0.0.1:$(free_port)" \
    LABS_ROLES="$roles" LABS_MIGRATE_ON_START=false LABS_LOG_FORMAT=json \
    LABS_RATE_LIMIT_PER_IP=1000000000/1s LABS_RATE_LIMIT_PER_ACCOUNT=1000000000/1s \
    LABS_RATE_LIMIT_NAMESPACE="bench:rl:$(date +%s%N)" \
    "$bin" serve >"$work/server.log" 2>&1 &
  server=$!
}
cleanup() {
  kill "$server" 2>/dev/null || true
  psql "$admin" -qc 'DROP DATABASE IF EXISTS labs_bench WITH (FORCE)' >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Cold start: from exec to the first 200 from readiness (Postgres and Redis round trips). The
# polling is a Python loop (a request every 2 ms, no process started per attempt), so the
# figure is the server's, not the poller's.
starts=()
for run in $(seq "$runs"); do
  starts+=("$(DATABASE_URL="$database" LABS_BIND="127.0.0.1:$port" LABS_METRICS_BIND="127.0.0.1:$(free_port)" \
    LABS_ROLES="$roles" LABS_MIGRATE_ON_START=false LABS_LOG_FORMAT=json python3 - "$bin" "$port" "$work/cold-start.log" <<'PY'
import http.client, subprocess, sys, time
binary, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
started = time.monotonic()
server = subprocess.Popen([binary, "serve"], stdout=subprocess.DEVNULL, stderr=open(log, "w"))
while True:
    if server.poll() is not None:
        sys.exit(f"[bench] the cold-started server exited ({server.returncode}) before it was ready: {open(log).read()}")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", "/api/health/ready")
        if connection.getresponse().status == 200:
            break
    except OSError:
        pass
    time.sleep(0.002)
print(round((time.monotonic() - started) * 1000))
server.terminate()
server.wait()
PY
)")
done
echo "cold start to ready (ms): ${starts[*]}; median $(printf '%s\n' "${starts[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")"

start_server
scripts/wait-for-server.sh "the benchmarked server (labs serve --role $roles)" "$server" "$base/health/ready" "$work/server.log" 60
token=$(curl -sf -H 'content-type: application/json' \
  -d "{\"email\": \"bench-admin@example.com\", \"password\": \"$password\"}" "$base/auth/token" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
cat >"$work/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email": "bench-admin@example.com", "password": "$password"}'
LUA

median() { sort -n | sed -n "$(( (runs + 1) / 2 ))p"; }
# One wrk run: "requests_per_s p50_ms p99_ms errors".
wrk_run() {
  local output
  output=$(wrk --latency "$@")
  python3 - "$output" <<'PY'
import re, sys
text = sys.argv[1]
def ms(label):
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
print(f"{rps:.0f} {ms('50'):.2f} {ms('99'):.2f} {errors}")
PY
}
bench() { # name, then wrk arguments
  local name=$1; shift
  local results=()
  for run in $(seq "$runs"); do
    results+=("$(wrk_run "$@")")
  done
  local rps p50 p99
  rps=$(printf '%s\n' "${results[@]}" | cut -d' ' -f1 | median)
  p50=$(printf '%s\n' "${results[@]}" | cut -d' ' -f2 | median)
  p99=$(printf '%s\n' "${results[@]}" | cut -d' ' -f3 | median)
  errors=$(printf '%s\n' "${results[@]}" | cut -d' ' -f4 | paste -sd+ | bc)
  echo "$name: runs [$(printf '%s\n' "${results[@]}" | cut -d' ' -f1 | paste -sd' ')] median ${rps} req/s, p50 ${p50} ms, p99 ${p99} ms, errors ${errors}"
}

common=(-t2 -c"$connections" -d"$duration")
bench "GET /api/ext/echo" "${common[@]}" "$base/ext/echo"
bench "GET /api/health/ready" "${common[@]}" "$base/health/ready"
bench "GET /api/auth/me" "${common[@]}" -H "Authorization: Bearer $token" "$base/auth/me"
bench "GET /api/users?limit=10" "${common[@]}" -H "Authorization: Bearer $token" "$base/users?limit=10"
# Login: as many connections as cores (each login is one argon2id hash on one core); twice as
# many, so that a hash is always waiting while another login does its round trips (the CPU
# never idles: the throughput to compare with the raw rate); then 64, to show that queueing
# raises latency, not memory (hashes run one per core at a time).
cores=$(nproc)
bench "POST /api/auth/token ($cores connections)" -t"$cores" -c"$cores" -d"$duration" -s "$work/login.lua" "$base/auth/token"
bench "POST /api/auth/token ($((2 * cores)) connections)" -t"$cores" -c"$((2 * cores))" -d"$duration" -s "$work/login.lua" "$base/auth/token"
bench "POST /api/auth/token ($connections connections)" "${common[@]}" -s "$work/login.lua" "$base/auth/token"
"$target_dir/release/bench-argon2" --threads "$cores" --seconds 10 | sed 's/^/raw argon2id: /'
# Each feature's own benchmarks against the same server: the files of bench/http.d/ (a
# template option that drops the feature drops its file).
for part in bench/http.d/*.sh; do
  if [ -f "$part" ]; then . "$part"; fi
done
echo "api process peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2 / 1024 " MiB"}')"
