#!/usr/bin/env bash
# HTTP benchmarks of a release build on loopback, with wrk (and each feature's own, in
# bench/http.d/): fixed duration and connections, several runs, medians. Every figure is also
# printed as a ratio to a ceiling measured in the same run, each run of an endpoint paired with
# a run of its ceiling just before it (this machine's speed drifts by a third within minutes;
# the ratios hold better): a bare hyper hello-world
# (`bench-hello`) for the HTTP path, pgbench `SELECT 1` at the pool's connection count for
# the endpoints that query Postgres, the raw argon2id rate (`bench-argon2`) for login. Also:
# cold start to ready and the API process's peak RSS. Procedure and results:
# docs/PERFORMANCE.md. Needs the local Postgres and Redis (make services), wrk and pgbench
# (apt install wrk postgresql-client). Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${DURATION:-10s}
connections=${CONNECTIONS:-64}
runs=${RUNS:-3}
. bench/server.sh

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
wait_and_log_in
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
  report "$name" "${results[@]}"
}
report() { # name, then the results of wrk_run
  local name=$1; shift
  local results=("$@")
  local rps p50 p99
  rps=$(printf '%s\n' "${results[@]}" | cut -d' ' -f1 | median)
  p50=$(printf '%s\n' "${results[@]}" | cut -d' ' -f2 | median)
  p99=$(printf '%s\n' "${results[@]}" | cut -d' ' -f3 | median)
  errors=$(printf '%s\n' "${results[@]}" | cut -d' ' -f4 | paste -sd+ | bc)
  echo "$name: runs [$(printf '%s\n' "${results[@]}" | cut -d' ' -f1 | paste -sd' ')] median ${rps} req/s, p50 ${p50} ms, p99 ${p99} ms, errors ${errors}"
}

common=(-t2 -c"$connections" -d"$duration")

# The ceilings, measured in this run and interleaved with it: each run of an endpoint comes
# right after a run of its ceiling, and its ratio is taken to that run (the machine's speed
# drifts within minutes, so a ceiling measured once at the start says little about the last
# endpoint). The API server is up but idle during the ceiling runs.
# 1. HTTP: a bare hyper server answering echo's body, same wrk settings.
"$target_dir/release/bench-hello" --bind "127.0.0.1:0" >"$work/hello.out" &
hello=$!
until grep -q '^listening on ' "$work/hello.out"; do sleep 0.05; done
hello_url="http://$(sed -n 's/^listening on //p' "$work/hello.out")/"
hello_run() { wrk_run "${common[@]}" "$hello_url" | cut -d' ' -f1; }
# 2. Postgres: `SELECT 1` over as many connections as the server's pool, prepared, with the TLS
# mode of the server's default URL (`sslmode=prefer`, so TLS where the server offers it).
echo 'SELECT 1;' >"$work/select1.sql"
pgbench_run() {
  PGSSLMODE=prefer pgbench -n -M prepared -f "$work/select1.sql" -c "$pool" -j 2 -T "${duration%s}" "$database" 2>&1 |
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | cut -d. -f1
}

ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }
# name, ceiling name, ceiling function, goal, then wrk arguments: RUNS pairs of (ceiling run,
# endpoint run); the endpoint's medians as `bench` prints them, the ceiling's runs, and the
# median of the per-pair ratios.
bench_against() {
  local name=$1 ceiling_name=$2 ceiling_run=$3 goal=$4
  shift 4
  local results=() ceilings=() ratios=() result ceiling
  for run in $(seq "$runs"); do
    ceiling=$($ceiling_run)
    result=$(wrk_run "$@")
    ceilings+=("$ceiling")
    results+=("$result")
    ratios+=("$(ratio "${result%% *}" "$ceiling")")
  done
  report "$name" "${results[@]}"
  echo "  $ceiling_name, paired runs [${ceilings[*]}]: ratios [${ratios[*]}] median $(printf '%s\n' "${ratios[@]}" | median) (goal >= $goal)"
}
bench_against "GET /api/ext/echo" "bare hyper" hello_run 0.60 "${common[@]}" "$base/ext/echo"
kill "$hello"
bench_against "GET /api/health/ready" "pgbench SELECT 1 ($pool connections)" pgbench_run 0.60 "${common[@]}" "$base/health/ready"
bench_against "GET /api/auth/me" "pgbench SELECT 1 ($pool connections)" pgbench_run 0.30 "${common[@]}" -H "Authorization: Bearer $token" "$base/auth/me"
bench_against "GET /api/users?limit=10" "pgbench SELECT 1 ($pool connections)" pgbench_run 0.20 "${common[@]}" -H "Authorization: Bearer $token" "$base/users?limit=10"
# Login: as many connections as cores (each login is one argon2id hash on one core); twice as
# many, so that a hash is always waiting while another login does its round trips (the CPU
# never idles: the throughput to compare with the raw rate); then 64, to show that queueing
# raises latency, not memory (hashes run one per core at a time).
cores=$(nproc)
bench "POST /api/auth/token ($cores connections)" -t"$cores" -c"$cores" -d"$duration" -s "$work/login.lua" "$base/auth/token"
# 3. Login, with a hash always waiting: paired with the raw argon2id rate of the login's
# parameters, one hash per core at a time (`bench-argon2`), for as long as a wrk run.
argon2_run() {
  "$target_dir/release/bench-argon2" --threads "$cores" --seconds "${duration%s}" | sed 's/.*hashes_per_s=\([0-9.]*\).*/\1/'
}
bench_against "POST /api/auth/token ($((2 * cores)) connections)" "raw argon2id ($cores threads)" argon2_run 0.85 \
  -t"$cores" -c"$((2 * cores))" -d"$duration" -s "$work/login.lua" "$base/auth/token"
bench "POST /api/auth/token ($connections connections)" "${common[@]}" -s "$work/login.lua" "$base/auth/token"
echo "raw argon2id, single hash: $("$target_dir/release/bench-argon2" --threads 1 --seconds 2 | sed 's/.*single_hash_ms=/single_hash_ms=/')"
# Each feature's own benchmarks against the same server: the files of bench/http.d/ (a
# template option that drops the feature drops its file).
for part in bench/http.d/*.sh; do
  if [ -f "$part" ]; then . "$part"; fi
done
echo "api process peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2 / 1024 " MiB"}')"
