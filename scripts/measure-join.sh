#!/usr/bin/env bash
# Measures ownership transfer on real processes: load RECORDS keys into a
# 3-node cluster, start a 4th node, and time until every node reports no
# transfer running and no partition arriving. Foreground latency is sampled
# with the bench tool before and during the move.
#   RECORDS=200000 scripts/measure-join.sh
set -euo pipefail
RECORDS=${RECORDS:-200000}
BASE=${BASE:-27000}
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
bin=$dir/quorumkv
CGO_ENABLED=0 go build -o "$bin" ./cmd/quorumkv
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
start() { # index
  local i=$1 join=()
  [ "$i" -gt 0 ] && join=(--join "127.0.0.1:$((BASE+200))")
  timeout 1800 "$bin" server --id "n$((i+1))" --data "$dir/n$i" --http "127.0.0.1:$((BASE+i))" --rpc "127.0.0.1:$((BASE+100+i))" \
    --gossip "127.0.0.1:$((BASE+200+i))" --gossip-profile local --anti-entropy-interval 1h --log-level warn "${join[@]}" >"$dir/n$i.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$((BASE+i))/healthz" >/dev/null && return; sleep 0.1; done
  echo "node $i did not start"; cat "$dir/n$i.log"; exit 1
}
for i in 0 1 2; do start $i; done
sleep 2
eps="http://127.0.0.1:$BASE,http://127.0.0.1:$((BASE+1)),http://127.0.0.1:$((BASE+2))"
echo "loading $RECORDS keys"
t0=$(date +%s.%N)
"$bin" bench --endpoints "$eps" --workload c --records "$RECORDS" --duration 5s --concurrency 32 --consistency quorum --json "$dir/before.json" >/dev/null
t1=$(date +%s.%N)
echo "load + 5s read baseline took $(echo "$t1 - $t0" | bc) s"
python3 -c "import json;d=json.load(open('$dir/before.json'));o=d['levels'][0]['ops']['read'];print('baseline read p99 %.2f ms, p50 %.2f ms, %.0f ops/s'%(o['p99_ms'],o['p50_ms'],d['levels'][0]['ops_per_sec']))"
settled() {
  for i in "$@"; do
    curl -sf "http://127.0.0.1:$((BASE+i))/v1/status" | python3 -c 'import json,sys;s=json.load(sys.stdin);sys.exit(0 if not s["transfers"] and s["partitions_arriving"]==0 else 1)' || return 1
  done
}
start 3
tj=$(date +%s.%N)
"$bin" bench --endpoints "$eps" --workload c --records 1000 --duration 5s --concurrency 32 --consistency quorum --json "$dir/during.json" >/dev/null &
benchpid=$!
until settled 0 1 2 3; do sleep 0.2; done
td=$(date +%s.%N)
wait $benchpid || true
moved=$(curl -sf "http://127.0.0.1:$((BASE+3))/metrics" | awk '/^quorumkv_transfer_keys_received_total/{print $2}')
moved=${moved:-0}
secs=$(echo "$td - $tj" | bc)
echo "4th node took its share in $secs s; keys received: $moved; rate $(echo "$moved / $secs" | bc) keys/s"
python3 -c "import json;d=json.load(open('$dir/during.json'));o=d['levels'][0]['ops']['read'];print('read p99 during the move %.2f ms, p50 %.2f ms, %.0f ops/s'%(o['p99_ms'],o['p50_ms'],d['levels'][0]['ops_per_sec']))"
curl -s "http://127.0.0.1:$((BASE+3))/v1/status" | python3 -c 'import json,sys;s=json.load(sys.stdin);print({m["id"]:m["partitions"] for m in s["members"]})'
