#!/usr/bin/env bash
# compare.sh — quorumkv against etcd (3 members) and Redis (one process), in
# one run on this machine, with the same load: 100-byte values, 64 clients,
# the same duration per phase. Everything listens on loopback only, every
# phase is bounded in time, and every process this script starts is stopped
# on exit (trap). See docs/benchmarks.md, "Performance".
#
#   bench/compare/compare.sh                 # 10 s per phase, one round
#   RUNS=3 bench/compare/compare.sh          # three rounds; medians
#   DUR=20s N_REDIS=400000 bench/compare/compare.sh
#
# With RUNS > 1 every phase runs once per round (rounds interleave the
# systems, so a slow minute of the machine hits all of them), and the table
# and the ratios use the median of each row over the rounds.
#
# Needs: go, curl, etcd (Debian: etcd-server), redis-server and
# redis-benchmark (Debian: redis-server, redis-tools).
#
# Ports: quorumkv 28000-28023 (sync never) and 28100-28123 (sync always),
# etcd clients 23791-23793 / peers 23801-23803, Redis 6390.
#
# HTTP phases (quorumkv HTTP API, etcd JSON gateway) use bench/compare/httpload,
# a single stdlib driver, so both sides see the same client. etcd runs the same
# load a second time through its own gRPC client (bench/compare/etcdgrpc, a
# module of its own, built here when its dependencies can be fetched), which is
# how etcd's users reach it; the ratio targets use the faster of the two. RESP phases use
# redis-benchmark against Redis and against node 0's --resp port; it has no
# duration flag, so -n is set per target (N_REDIS, N_QKV) and each run is
# capped by `timeout`. They run three ways: 64 clients and 100-byte values
# with -r KEYS (random keys) and without (one key), and with redis-benchmark's
# own defaults (50 clients, 3-byte values, one key), which is what a bare
# `redis-benchmark -t set,get` measures.
set -u
cd "$(dirname "$0")/../.."

DUR=${DUR:-10s}
CONC=${CONC:-64}
SIZE=${SIZE:-100}
KEYS=${KEYS:-100000}
N_REDIS=${N_REDIS:-200000}
N_QKV=${N_QKV:-20000}
CAP=${CAP:-90} # seconds, hard cap of any one redis-benchmark run
RUNS=${RUNS:-1}

WORK=$(mktemp -d /tmp/qkv-compare.XXXXXX)
PIDS=()
source bench/compare/cluster.sh

cleanup() {
  qkv_stop
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s (load average: %s)\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2; }
RESULTS="$WORK/results"
: >"$RESULTS"
row() { tee -a "$RESULTS"; }

go build -o "$WORK/quorumkv" ./cmd/quorumkv || exit 1
go build -o "$WORK/httpload" ./bench/compare/httpload || exit 1
LOAD="$WORK/httpload -c $CONC -d $DUR -size $SIZE -keys $KEYS"
ETCDGRPC=""
if (cd bench/compare/etcdgrpc && go build -o "$WORK/etcdgrpc" .); then
  ETCDGRPC="$WORK/etcdgrpc -c $CONC -d $DUR -size $SIZE -keys $KEYS"
else
  echo "compare.sh: bench/compare/etcdgrpc did not build; etcd runs through its JSON gateway only" >&2
fi

# redis_bench LABEL PORT N [extra args]: SET and GET rows from redis-benchmark
# --csv. Extra args come last, so a -c or -d there wins over CONC and SIZE.
redis_bench() {
  local label=$1 port=$2 n=$3; shift 3
  timeout "$CAP" redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -n "$n" -c "$CONC" -d "$SIZE" --csv "$@" 2>/dev/null |
    awk -F, -v l="$label" 'NR>1 { gsub(/"/,""); printf "%-24s %-4s %9.0f ops/s  p50 %7.2f ms  p99 %7.2f ms\n", l, tolower($1), $2, $5, $7 }' | row
}

# qkv_fresh BASEPORT [flags]: a 3-node cluster on empty data directories.
qkv_fresh() {
  local base=$1; shift
  rm -rf "$WORK/qkv-$base"
  qkv_start "$WORK/quorumkv" "$WORK/qkv-$base" "$base" "$@"
}

one_round() {
  # --- quorumkv, --sync never -------------------------------------------------
  # Every write phase starts on a fresh cluster: a store that earlier
  # phases filled has more to flush and compact and a colder object cache,
  # so a write phase run second measures the first one's leftovers (seen:
  # quorum 18.6k/s, then `one` 15.7k/s, then quorum again 12.6k/s). The
  # reads read what the write phase before them wrote.
  say "quorumkv: 3 nodes, --sync never: writes and reads at quorum, then reads at one and strong"
  qkv_fresh 28000 --sync never || exit 1
  E=$QKV_HTTP
  $LOAD -target quorumkv -endpoints "$E" -op put -consistency quorum -label qkv-http-quorum | row
  $LOAD -target quorumkv -endpoints "$E" -op get -consistency quorum -label qkv-http-quorum | row
  $LOAD -target quorumkv -endpoints "$E" -op get -consistency one -label qkv-http-one | row
  $LOAD -target quorumkv -endpoints "$E" -op get -consistency strong -label qkv-http-strong | row
  qkv_stop
  say "quorumkv: 3 nodes, --sync never: writes at one"
  qkv_fresh 28000 --sync never || exit 1
  $LOAD -target quorumkv -endpoints "$QKV_HTTP" -op put -consistency one -label qkv-http-one | row
  qkv_stop
  say "quorumkv RESP (node 0, quorum), redis-benchmark -r $KEYS"
  qkv_fresh 28000 --sync never || exit 1
  RP=${QKV_RESP[0]##*:}
  redis_bench qkv-resp-r "$RP" "$N_QKV" -r "$KEYS"
  qkv_stop
  say "quorumkv RESP (node 0, quorum), redis-benchmark without -r (one key)"
  qkv_fresh 28000 --sync never || exit 1
  RP=${QKV_RESP[0]##*:}
  redis_bench qkv-resp-1key "$RP" "$N_QKV"
  qkv_stop
  say "quorumkv RESP (node 0, quorum), redis-benchmark's own defaults (-c 50 -d 3, one key)"
  qkv_fresh 28000 --sync never || exit 1
  RP=${QKV_RESP[0]##*:}
  redis_bench qkv-resp-dflt "$RP" "$N_QKV" -c 50 -d 3
  qkv_stop

  # --- quorumkv, --sync always ------------------------------------------------
  say "quorumkv: 3 nodes, --sync always"
  qkv_fresh 28100 --sync always || exit 1
  $LOAD -target quorumkv -endpoints "$QKV_HTTP" -op put -consistency quorum -label qkv-http-quorum-always | row
  qkv_stop

  # --- etcd: 3 members ---------------------------------------------------------
  say "etcd $(etcd --version | head -1 | awk '{print $3}'): 3 members"
  IC=""
  for i in 1 2 3; do IC+="${IC:+,}e$i=http://127.0.0.1:2380$i"; done
  for i in 1 2 3; do
    rm -rf "$WORK/etcd$i"; etcd --name "e$i" --data-dir "$WORK/etcd$i" \
      --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
      --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
      --initial-cluster "$IC" --initial-cluster-state new --initial-cluster-token qkv-compare \
      --log-level error >"$WORK/etcd$i.log" 2>&1 &
    PIDS+=($!)
  done
  EE=http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793
  for t in $(seq 1 150); do
    ETCDCTL_API=3 etcdctl --endpoints "${EE//http:\/\//}" endpoint health >/dev/null 2>&1 && break
    sleep 0.2
  done
  $LOAD -target etcd -endpoints "$EE" -op put -label etcd-put | row
  $LOAD -target etcd -endpoints "$EE" -op get -label etcd-range | row
  if [ -n "$ETCDGRPC" ]; then
    $ETCDGRPC -endpoints "$EE" -op put -label etcd-grpc-put | row
    $ETCDGRPC -endpoints "$EE" -op get -label etcd-grpc-range | row
  fi
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  PIDS=()

  # --- Redis: one process, no persistence ---------------------------------------
  say "redis $(redis-server --version | awk '{print $3}'): one process, --save '' --appendonly no"
  redis-server --bind 127.0.0.1 --port 6390 --save '' --appendonly no --daemonize no >"$WORK/redis.log" 2>&1 &
  PIDS+=($!)
  for t in $(seq 1 50); do redis-cli -p 6390 ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis_bench redis-r 6390 "$N_REDIS" -r "$KEYS"
  redis_bench redis-1key 6390 "$N_REDIS"
  redis_bench redis-dflt 6390 "$N_REDIS" -c 50 -d 3
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  PIDS=()
}

for round in $(seq 1 "$RUNS"); do
  say "round $round of $RUNS"
  one_round || exit 1
done

# --- table and ratios ----------------------------------------------------------
# median FIELD LABEL OP: the median of a column over the rounds.
median() {
  awk -v f="$1" -v l="$2" -v o="$3" '$1==l && $2==o {print $f}' "$RESULTS" | sort -g |
    awk '{v[NR]=$1} END { if (NR == 0) exit; if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2 }'
}
val() { median 3 "$1" "$2"; }
p99() { median 9 "$1" "$2"; }
ratio() { # ratio NAME A B TARGET
  awk -v n="$1" -v a="$2" -v b="$3" -v t="$4" 'BEGIN {
    if (a == "" || b == "" || b == 0) { printf "%-48s n/a\n", n; exit }
    r = a / b; printf "%-48s %6.2fx  (target >= %sx: %s)\n", n, r, t, (r >= t ? "met" : "NOT met") }'
}
echo
echo "=== results ($(nproc) cores, load average at end: $(cut -d' ' -f1-3 /proc/loadavg)), every round ==="
cat "$RESULTS"
if [ "$RUNS" -gt 1 ]; then
  echo
  echo "=== medians over $RUNS rounds ==="
  awk '{print $1, $2}' "$RESULTS" | awk '!seen[$0]++' | while read -r l o; do
    printf "%-24s %-4s %9.0f ops/s  p99 %7.2f ms\n" "$l" "$o" "$(val "$l" "$o")" "$(p99 "$l" "$o")"
  done
fi
echo
echo "=== ratios ==="
ratio "quorumkv RESP SET (quorum) / Redis SET, -r" "$(val qkv-resp-r set)" "$(val redis-r set)" 0.5
ratio "quorumkv RESP GET (quorum) / Redis GET, -r" "$(val qkv-resp-r get)" "$(val redis-r get)" 0.5
ratio "quorumkv RESP SET / Redis SET, one key" "$(val qkv-resp-1key set)" "$(val redis-1key set)" 0.5
ratio "quorumkv RESP GET / Redis GET, one key" "$(val qkv-resp-1key get)" "$(val redis-1key get)" 0.5
ratio "quorumkv RESP SET / Redis SET, -c 50 -d 3" "$(val qkv-resp-dflt set)" "$(val redis-dflt set)" 0.5
ratio "quorumkv RESP GET / Redis GET, -c 50 -d 3" "$(val qkv-resp-dflt get)" "$(val redis-dflt get)" 0.5
# etcd's better put rate of the two clients (gateway, gRPC).
ETCD_PUT=$(printf '%s\n%s\n' "$(val etcd-put put)" "$(val etcd-grpc-put put)" | sort -g | tail -1)
ratio "quorumkv quorum writes / etcd puts" "$(val qkv-http-quorum put)" "$ETCD_PUT" 4
ratio "quorumkv quorum writes --sync always / etcd puts" "$(val qkv-http-quorum-always put)" "$ETCD_PUT" 3
ratio "quorumkv one writes / quorum writes" "$(val qkv-http-one put)" "$(val qkv-http-quorum put)" 1.5
ratio "quorumkv one reads / quorum reads" "$(val qkv-http-one get)" "$(val qkv-http-quorum get)" 1.5
ratio "quorumkv strong reads / quorum reads" "$(val qkv-http-strong get)" "$(val qkv-http-quorum get)" 0.8
awk -v p="$(p99 qkv-http-quorum put)" 'BEGIN { printf "%-48s %6.2f ms (target < 5 ms: %s)\n", "quorumkv quorum write p99", p, (p < 5 ? "met" : "NOT met") }'
