#!/usr/bin/env bash
# Makes sure the local Postgres (127.0.0.1:5432, user postgres, trust) and Redis
# (127.0.0.1:6379) that `labs serve` and the tests use are installed and running.
# Idempotent: does nothing when both already answer. Installing needs root (apt-get).
set -euo pipefail

log() { printf '[services] %s\n' "$*"; }

apt_install() {
  if [ -z "${LABS_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    export LABS_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

postgres_answers() {
  psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1
}

ensure_postgres() {
  command -v psql >/dev/null && command -v pg_ctlcluster >/dev/null || { log "installing PostgreSQL"; apt_install postgresql postgresql-client; }
  postgres_answers && return
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  if ! postgres_answers; then
    # A fresh Debian cluster asks for a password on TCP; local development uses trust, as the
    # machines this project runs on do. Never do this on a shared server.
    log "allowing trust authentication from 127.0.0.1 and ::1"
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    sleep 0.5
  fi
  postgres_answers || { log "PostgreSQL does not answer on 127.0.0.1:5432"; exit 1; }
}

ensure_redis() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || { log "installing Redis"; apt_install redis-server redis-tools; }
  [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ] && return
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 50); do [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ] && return; sleep 0.1; done
  log "Redis does not answer on 127.0.0.1:6379"; exit 1
}

ensure_postgres
ensure_redis
log "PostgreSQL and Redis answer"
