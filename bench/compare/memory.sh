#!/usr/bin/env bash
# memory.sh — resident memory of a 3-node cluster with 1M keys (docs/benchmarks.md,
# Memory). Starts three `quorumkv server` processes on loopback, loads RECORDS
# keys of 100 bytes with `quorumkv bench` (workload a, 64 clients, 20 s after
# the load), prints VmRSS/VmHWM/RssAnon/RssFile of every node every 10 s and
# at the end, and the data size of node 0. Everything stops on exit.
#
#   bench/compare/memory.sh                      # this tree's build
#   BIN=/path/to/quorumkv bench/compare/memory.sh --sync always
set -u
cd "$(dirname "$0")/../.."
RECORDS=${RECORDS:-1000000}
BASE=${BASE:-28400}
WORK=$(mktemp -d /tmp/qkv-memory.XXXXXX)
source bench/compare/cluster.sh
MON=""
trap '[ -n "$MON" ] && kill $MON 2>/dev/null; qkv_stop; rm -rf "$WORK"' EXIT
BIN=${BIN:-}
if [ -z "$BIN" ]; then
  go build -o "$WORK/quorumkv" ./cmd/quorumkv || exit 1
  BIN=$WORK/quorumkv
fi
qkv_start "$BIN" "$WORK" "$BASE" "$@" || exit 1
rss() {
  local p line=""
  for p in "${QKV_PIDS[@]}"; do
    line+="$(awk '/VmRSS|VmHWM|RssAnon|RssFile/{printf "%s%d ", $1, $2/1024}' /proc/$p/status)| "
  done
  echo "$(date +%T) MiB: $line"
}
( while true; do rss; sleep 10; done ) &
MON=$!
timeout 1200 "$BIN" bench --endpoints "$QKV_HTTP" --records "$RECORDS" --value-size 100 \
  --concurrency 64 --workload a --duration 20s --quiet
kill $MON; MON=""
rss
# Where node 0's resident pages are, by kind of mapping: the heap and other
# anonymous memory, badger's table files (.sst), its write-ahead logs (.mem,
# .vlog) and the rest (the binary, libraries).
awk '/^[0-9a-f]+-[0-9a-f]+ /{k="other"; if ($6=="" || $6 ~ /^\[/) k="anon"; else if ($6 ~ /\.sst$/) k="sst"; else if ($6 ~ /\.(mem|vlog)$/) k="wal"; next}
     /^Rss:/{r[k]+=$2} END{printf "node 0 Rss by mapping, MiB:"; for (k in r) printf " %s %d", k, r[k]/1024; print ""}' /proc/${QKV_PIDS[0]}/smaps
du -sm "$WORK/n0"
