#!/usr/bin/env bash
# Runs every Go fuzz target in the module briefly (FUZZTIME each, default
# 10s), one after the other, and fails on the first crash. Targets are found
# by name (func FuzzXxx in *_test.go), so new ones are picked up without
# editing this script. A crashing input is written by `go test` under the
# package's testdata/fuzz/ — commit it once fixed: it becomes a regression
# seed that plain `go test` runs every time.
#
#   scripts/fuzz-quick.sh              # all targets, 10s each
#   FUZZTIME=1m scripts/fuzz-quick.sh  # longer
#   scripts/fuzz-quick.sh ./wire       # only some packages
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-10s}
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
