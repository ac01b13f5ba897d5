#!/usr/bin/env bash
# Start (and, on exit of the sourcing script, stop) a 3-node quorumkv cluster of
# real processes on loopback. Source this file, then call
#   qkv_start BIN DIR BASEPORT [extra server flags...]
# It sets QKV_PIDS (array), QKV_HTTP (comma list of URLs), QKV_RESP (array of
# RESP addresses, host:port). Ports: node i uses BASEPORT+10*i+{0 http,1 rpc,2 gossip,3 resp}.
QKV_PIDS=()
QKV_RESP=()
QKV_HTTP=""

qkv_start() {
  local bin=$1 dir=$2 base=$3; shift 3
  local i join=()
  for i in 0 1 2; do
    local p=$((base + 10 * i))
    mkdir -p "$dir/n$i"
    "$bin" server --id "n$i" --data "$dir/n$i" \
      --http "127.0.0.1:$p" --rpc "127.0.0.1:$((p + 1))" --gossip "127.0.0.1:$((p + 2))" \
      --resp "127.0.0.1:$((p + 3))" --gossip-profile local --log-level warn \
      "${join[@]}" "$@" >"$dir/n$i.log" 2>&1 &
    QKV_PIDS+=($!)
    QKV_RESP+=("127.0.0.1:$((p + 3))")
    QKV_HTTP+="${QKV_HTTP:+,}http://127.0.0.1:$p"
    join=(--join "127.0.0.1:$((base + 2))")
    qkv_wait_http "http://127.0.0.1:$p/healthz" || return 1
  done
  # Wait until every node sees three alive members.
  local t
  for t in $(seq 1 100); do
    local ok=0
    for i in 0 1 2; do
      local n
      n=$(curl -s "http://127.0.0.1:$((base + 10 * i))/v1/status" | grep -o '"state": *"alive"' | wc -l)
      [ "$n" -ge 3 ] && ok=$((ok + 1))
    done
    [ "$ok" -eq 3 ] && return 0
    sleep 0.2
  done
  echo "quorumkv cluster did not converge" >&2
  return 1
}

# qkv_redis_bench PORT TEST N [ARGS...]: one `redis-benchmark -t TEST -n N
# -c 64 -d 100 ARGS` against 127.0.0.1:PORT, capped at 120 s; prints
# "REQUESTS_PER_SEC P99_MS".
qkv_redis_bench() {
  local port=$1 t=$2 n=$3 line
  shift 3
  line=$(timeout 120 redis-benchmark -h 127.0.0.1 -p "$port" -t "$t" -n "$n" "$@" \
    -c 64 -d 100 --csv 2>/dev/null | tail -1)
  echo "$(echo "$line" | cut -d, -f2 | tr -d '"') $(echo "$line" | cut -d, -f7 | tr -d '"')"
}

qkv_wait_http() {
  local t
  for t in $(seq 1 150); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.2
  done
  echo "no answer from $1" >&2
  return 1
}

qkv_stop() {
  local p
  for p in "${QKV_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${QKV_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  QKV_PIDS=() QKV_RESP=() QKV_HTTP=""
}
