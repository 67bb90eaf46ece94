#!/usr/bin/env bash
# Waits until a server the caller started answers 200 at a URL, and fails with a message that
# names the server and its log when it does not: because it exited (a port already taken, a
# bad setting) or because it did not answer in time. Without this, a script goes on to its
# next request and fails there with an error about something else (an empty JSON body).
#
#   scripts/wait-for-server.sh NAME PID URL LOG [SECONDS]
#
# PID is the server's process (`$!`), checked on every attempt so that an early exit is
# reported at once rather than after the whole wait; SECONDS defaults to 30.
set -euo pipefail

if [ $# -lt 4 ]; then
  echo "usage: $0 NAME PID URL LOG [SECONDS]" >&2
  exit 2
fi
name=$1 pid=$2 url=$3 log=$4 seconds=${5:-30}

# A process that exited but is not yet reaped by its parent is a zombie: kill -0 still
# succeeds on it, so its state is read as well.
alive() {
  kill -0 "$pid" 2>/dev/null || return 1
  local state
  state=$(ps -o stat= -p "$pid" 2>/dev/null || true)
  [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}

fail() {
  echo "[wait] $name (pid $pid) $1; its log is $log, last lines:" >&2
  tail -n 20 "$log" 2>/dev/null | sed 's/^/[wait]   /' >&2 || true
  exit 1
}

deadline=$((SECONDS + seconds))
while :; do
  alive || fail "exited before it answered $url"
  status=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" || true)
  [ "$status" = 200 ] && exit 0
  [ "$SECONDS" -lt "$deadline" ] || fail "did not answer 200 at $url within ${seconds}s (last: ${status/#000/no connection})"
  sleep 0.2
done
