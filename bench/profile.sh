#!/usr/bin/env bash
# Where one endpoint's CPU goes, in instructions: the release server (as bench/http.sh runs it)
# under `valgrind --tool=callgrind`, REQUEST_SECONDS (default 10) of wrk with 4 connections on
# PATH, instrumentation on only while wrk runs. Prints the instructions per request (user space:
# the kernel's TCP work is not counted) and the functions with the most inclusive cost; the
# profile stays in bench/profiles/ for callgrind_annotate or kcachegrind. Instruction counts
# are repeatable on a noisy machine where timings are not (docs/PERFORMANCE.md).
#   bench/profile.sh /api/ext/echo
#   bench/profile.sh /api/auth/me --token     (sends the admin's access token)
#   bench/profile.sh --hello                  (the bare hyper ceiling, for comparison)
# Needs valgrind (apt install valgrind), the local Postgres and Redis, wrk. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bench/profile.sh PATH [--token] | --hello" >&2; exit 2; }
seconds=${REQUEST_SECONDS:-10}
runs=1
. bench/server.sh
mkdir -p bench/profiles
name=$(echo "$1" | tr -c 'a-zA-Z0-9\n' '_' | sed 's/^_*//')
out="$PWD/bench/profiles/callgrind.${name:-hello}.out"
headers=()
if [ "$1" = --hello ]; then
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
    "$target_dir/release/bench-hello" --bind "127.0.0.1:$port" >"$work/server.log" 2>&1 &
  server=$!
  url="http://127.0.0.1:$port/"
  until grep -q '^listening on ' "$work/server.log"; do sleep 0.2; done
else
  if [ "${2:-}" = --token ]; then
    # Logged in against a native server: a login's hash is slow under valgrind.
    start_server
    wait_and_log_in
    kill "$server"
    wait "$server" || true
    headers=(-H "Authorization: Bearer $token")
  fi
  start_server valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out"
  wait_ready 300
  url="http://127.0.0.1:$port$1"
fi
wrk -t1 -c4 -d3s "${headers[@]}" "$url" >/dev/null
callgrind_control -i on "$server" >/dev/null
requests=$(wrk -t1 -c4 -d"${seconds}s" "${headers[@]}" "$url" | sed -n 's/^ *\([0-9]*\) requests in.*/\1/p')
callgrind_control -i off "$server" >/dev/null
kill "$server"
wait "$server" || true
server=
total=$(sed -n 's/^totals: //p' "$out")
echo "$1: $requests requests, $total instructions, $((total / requests)) instructions per request"
callgrind_annotate --inclusive=yes "$out" 2>/dev/null | grep -v "'2 " | sed -n '/^Ir /,$p' | sed -n '3,40p' | cut -c1-160
