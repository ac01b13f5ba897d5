#!/usr/bin/env bash
# Builds the static binary and the FROM-scratch image, starts compose.yaml's
# three-node cluster, waits until every node is healthy and sees the others,
# does a quorum write through one node and a quorum read through another
# with curl, and tears everything down (containers, network, volumes)
# whatever happens. Bounded by COMPOSE_CHECK_TIMEOUT (default 300s).
#
# Works with `docker compose` (v2) or `docker-compose` (v1), whichever
# exists. Ports and subnet are chosen so as not to collide with a cluster
# already running on this host.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

TIMEOUT=${COMPOSE_CHECK_TIMEOUT:-300}
IMAGE=${QUORUMKV_IMAGE:-quorumkv:compose-check}
PROJECT=qkvcheck$$
start=$(date +%s)
log() { echo "=== compose-check: $* ($(( $(date +%s) - start ))s)"; }
deadline() { [ $(( $(date +%s) - start )) -lt "$TIMEOUT" ]; }

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  echo "compose-check: neither 'docker compose' nor 'docker-compose' is installed" >&2
  exit 1
fi
log "using ${compose[*]} ($("${compose[@]}" version --short 2>/dev/null || echo '?'))"

# A free port: bind to port 0 through bash's /dev/tcp is not possible, so
# pick random high ports and skip those that answer.
free_port() {
  local p
  while :; do
    p=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
  done
}
export QUORUMKV_IMAGE=$IMAGE QKV_PORT_N1=$(free_port) QKV_PORT_N2=$(free_port) QKV_PORT_N3=$(free_port)

dc() { "${compose[@]}" -p "$PROJECT" -f compose.yaml "$@"; }
cleanup() {
  rc=$?
  if [ $rc -ne 0 ]; then
    log "FAILED; container logs follow"
    dc ps || true
    dc logs --no-color --tail 40 || true
  fi
  dc down -v --remove-orphans -t 20 >/dev/null 2>&1 || true
  docker rmi "$IMAGE" >/dev/null 2>&1 || true
  rm -rf deploy/build
  log "cleaned up"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building the static binary and the scratch image $IMAGE"
rm -rf deploy/build && mkdir -p deploy/build/data
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o deploy/build/quorumkv ./cmd/quorumkv
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" -f deploy/Dockerfile.scratch deploy >/dev/null

# The subnet must not overlap an existing Docker network: try a few.
up=0
for prefix in ${QKV_SUBNET_PREFIX:-10.213.77 10.213.78 172.29.77 192.168.237}; do
  export QKV_SUBNET_PREFIX=$prefix
  log "starting the cluster on $prefix.0/24, HTTP on 127.0.0.1:$QKV_PORT_N1,$QKV_PORT_N2,$QKV_PORT_N3"
  if out=$(timeout $(( TIMEOUT / 2 )) "${compose[@]}" -p "$PROJECT" -f compose.yaml up -d --no-build 2>&1); then
    up=1
    break
  fi
  echo "$out" | tail -5
  if ! echo "$out" | grep -qi "overlap\|pool"; then exit 1; fi
  dc down -v --remove-orphans >/dev/null 2>&1 || true
done
[ $up = 1 ] || { echo "compose-check: no free subnet" >&2; exit 1; }

ports=("$QKV_PORT_N1" "$QKV_PORT_N2" "$QKV_PORT_N3")
for p in "${ports[@]}"; do
  until curl -fsS -m 2 "http://127.0.0.1:$p/healthz" >/dev/null 2>&1; do
    deadline || { echo "compose-check: node on port $p not healthy in time" >&2; exit 1; }
    sleep 1
  done
done
log "every node answers /healthz"
for p in "${ports[@]}"; do
  until [ "$(curl -fsS -m 2 "http://127.0.0.1:$p/v1/status" | grep -o '"state": *"alive"' | wc -l)" -eq 3 ]; do
    deadline || { echo "compose-check: node on port $p does not see 3 alive members" >&2; exit 1; }
    sleep 1
  done
done
log "every node sees three alive members"
for p in "${ports[@]}"; do
  curl -fsS -m 2 "http://127.0.0.1:$p/v1/status" | grep -q '"cluster": *"compose"' ||
    { echo "compose-check: node on port $p does not report the cluster name compose" >&2; exit 1; }
done
log "every node is in the cluster named compose"

value="compose-check-$$-$RANDOM"
code=$(curl -sS -m 10 -o /dev/null -w '%{http_code}' -X PUT --data "$value" "http://127.0.0.1:${ports[0]}/v1/kv/compose-check?consistency=quorum")
[ "$code" = 204 ] || { echo "compose-check: quorum PUT answered $code" >&2; exit 1; }
got=$(curl -fsS -m 10 -D /tmp/qkv-compose-headers.$$ "http://127.0.0.1:${ports[1]}/v1/kv/compose-check?consistency=quorum")
acks=$(grep -i '^x-acks:' /tmp/qkv-compose-headers.$$ | tr -d '\r' | awk '{print $2}'); rm -f /tmp/qkv-compose-headers.$$
[ "$got" = "$value" ] || { echo "compose-check: quorum GET returned '$got', want '$value'" >&2; exit 1; }
[ "${acks:-0}" -ge 2 ] || { echo "compose-check: quorum GET acked by $acks replicas" >&2; exit 1; }
all=$(curl -fsS -m 10 "http://127.0.0.1:${ports[2]}/v1/kv/compose-check?consistency=all")
[ "$all" = "$value" ] || { echo "compose-check: read-all through n3 returned '$all'" >&2; exit 1; }
metrics=$(curl -fsS -m 5 "http://127.0.0.1:${ports[0]}/metrics")
grep -q '^quorumkv_requests_total{api="http",level="quorum",op="put",outcome="ok"} 1$' <<<"$metrics" \
  || { echo "compose-check: /metrics does not count the write" >&2; exit 1; }
log "quorum write via n1 and quorum read via n2 (acks=$acks) agree; read-all via n3 too"

# Graceful stop: every container must exit 0 on SIGTERM.
dc stop -t 25 >/dev/null 2>&1
for s in n1 n2 n3; do
  id=$(dc ps -q "$s")
  ec=$(docker inspect -f '{{.State.ExitCode}}' "$id")
  [ "$ec" = 0 ] || { echo "compose-check: $s exited $ec after SIGTERM" >&2; exit 1; }
done
log "OK: every node exited 0 on SIGTERM"
