#!/usr/bin/env bash
# cache.sh — the object cache's effect (docs/benchmarks.md, "The object
# cache"). For each round and each --cache-bytes value: a fresh 3-node
# cluster, then `redis-benchmark -t set` and `-t get` with random keys
# (-r KEYS, -c 64 -d 100, N requests) against node 0's RESP port; prints
# requests/s, p99 and node 0's object cache hits and misses during the phase
# (from its /metrics). Ports 28600+.
#
#   bench/compare/cache.sh 2 16777216 67108864
#   BIN=/path/to/quorumkv KEYS=300000 bench/compare/cache.sh 1 16777216 134217728
set -u
cd "$(dirname "$0")/../.."
rounds=$1; shift
base=${BASE:-28600}
N=${N:-150000}
KEYS=${KEYS:-100000}
source bench/compare/cluster.sh
WORK=$(mktemp -d /tmp/qkv-cache.XXXXXX)
trap 'qkv_stop; rm -rf "$WORK"' EXIT
BIN=${BIN:-}
if [ -z "$BIN" ]; then
  go build -o "$WORK/quorumkv" ./cmd/quorumkv || exit 1
  BIN=$WORK/quorumkv
fi
# hits_misses: node 0's object cache counters.
hits_misses() {
  curl -s "http://127.0.0.1:$base/metrics" | awk '
    /^quorumkv_store_object_cache_hits_total/ {h = $2}
    /^quorumkv_store_object_cache_misses_total/ {m = $2}
    END {printf "%d %d\n", h, m}'
}
for r in $(seq 1 "$rounds"); do
  for bytes in "$@"; do
    dir="$WORK/r$r-$bytes"
    qkv_start "$BIN" "$dir" "$base" --cache-bytes "$bytes" || exit 1
    for t in set get; do
      read -r h0 m0 < <(hits_misses)
      read -r rps p99 < <(qkv_redis_bench $((base + 3)) $t "$N" -r "$KEYS")
      read -r h1 m1 < <(hits_misses)
      h=$((h1 - h0)) m=$((m1 - m0))
      echo "round $r cache-bytes $bytes $t ${rps}/s p99 ${p99} ms node0 hits $h misses $m" \
        "hit ratio $(awk -v h=$h -v m=$m 'BEGIN {if (h + m) printf "%.2f", h / (h + m); else print "-"}')"
    done
    qkv_stop
    rm -rf "$dir"
    base=$((base + 100))
  done
done
