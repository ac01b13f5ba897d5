#!/usr/bin/env bash
# ab.sh — compare quorumkv builds on the RESP path, interleaved so a slow
# minute of the machine hits every build (docs/benchmarks.md, third round).
# For each round and each binary: a fresh 3-node cluster, then
# `redis-benchmark -t set` and `-t get` (-c 64 -d 100, N requests, plus
# RARGS) against node 0's RESP port; prints requests/s, p99, and the CPU time
# per request of node 0 and of the three nodes together (from
# /proc/PID/stat).
#
#   bench/compare/ab.sh 3 /tmp/quorumkv-old /tmp/quorumkv-new
#   RARGS="-r 100000" FLAGS="--sync always" N=30000 bench/compare/ab.sh 1 OLD NEW
set -u
cd "$(dirname "$0")/../.."
rounds=$1; shift
base=${BASE:-28500}
source bench/compare/cluster.sh
trap 'qkv_stop' EXIT
N=${N:-200000}
# cpu PID...: CPU time (user + system, in clock ticks) of the processes, summed.
cpu() { local p t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
for r in $(seq 1 "$rounds"); do
  for bin in "$@"; do
    dir=$(mktemp -d /tmp/qkv-ab.XXXXXX)
    QKV_PIDS=() QKV_RESP=() QKV_HTTP=""
    # shellcheck disable=SC2086 # FLAGS is a list of flags
    qkv_start "$bin" "$dir" "$base" ${FLAGS:-} || exit 1
    for t in set get; do
      c0=$(cpu "${QKV_PIDS[0]}") a0=$(cpu "${QKV_PIDS[@]}")
      # shellcheck disable=SC2086 # RARGS is a list of arguments
      read -r rps p99 < <(qkv_redis_bench $((base + 3)) $t "$N" ${RARGS:-})
      c1=$(cpu "${QKV_PIDS[0]}") a1=$(cpu "${QKV_PIDS[@]}")
      echo "round $r $bin $t ${rps}/s p99 ${p99} ms node0 $(( (c1 - c0) * 10000000 / N / 1000 )) us/request, cluster $(( (a1 - a0) * 10000000 / N / 1000 )) us/request"
    done
    qkv_stop
    rm -rf "$dir"
    base=$((base + 100))
  done
done
