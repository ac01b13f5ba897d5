#!/usr/bin/env bash
# Runs every Go fuzz target in the module briefly (FUZZTIME each, default
# 300000 executions), one after the other, and fails if any crashes. Targets are found
# by name (func FuzzXxx in *_test.go), so new ones are picked up without
# editing this script. A crashing input is written by `go test` under the
# package's testdata/fuzz/ — commit it once fixed: it becomes a regression
# seed that plain `go test` runs every time.
#
#   scripts/fuzz-quick.sh                   # all targets, 300000 runs each
#   FUZZTIME=5000000x scripts/fuzz-quick.sh # longer
#
# The budget is a count of executions, not a duration: with a duration,
# go1.26's fuzz coordinator can report "context deadline exceeded" as a
# failure when the deadline fires while a worker is busy, with no failing
# input (Go issue 75804, fixed in go1.27). A count has no deadline to race.
#   scripts/fuzz-quick.sh ./wire       # only some packages
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-300000x}
PER_TARGET_TIMEOUT=${PER_TARGET_TIMEOUT:-5m}

pkgs=("$@")
if [ ${#pkgs[@]} -eq 0 ]; then
  mapfile -t pkgs < <(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.Dir}}{{end}}' ./... | sed "s|^$PWD|.|")
fi

ran=0
failed=()
for pkg in "${pkgs[@]}"; do
  [ -n "$pkg" ] || continue
  targets=$(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)\(f \*testing\.F\)' "$pkg"/*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/' | sort -u || true)
  for t in $targets; do
    echo "=== $pkg $t ($FUZZTIME)"
    if ! timeout "$PER_TARGET_TIMEOUT" go test -run '^$' -fuzz "^${t}\$" -fuzztime "$FUZZTIME" "$pkg"; then
      failed+=("$pkg $t")
    fi
    ran=$((ran + 1))
  done
done
echo "=== $ran fuzz targets run for $FUZZTIME each"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
