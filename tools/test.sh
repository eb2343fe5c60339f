#!/usr/bin/env bash
# The project's test command (the README's): every package on its own, then the
# cross-package tests in tests/. Prints one summary line per package at the end.
# splatent-data runs in an isolated environment holding only that package and its
# own dependencies, which proves it installs and works without torch.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -a summary=()
status=0

suite() {  # suite NAME CMD...
  local name=$1; shift
  local log; log=$(mktemp)
  echo "=== $name: $*"
  set +e
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  local last; last=$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error)|no tests ran' "$log" | tail -n 1 | tr -d '=' | xargs || true)
  if [ "$rc" -ne 0 ]; then status=1; summary+=("FAIL $name: ${last:-exit $rc}"); else summary+=("ok   $name: $last"); fi
  rm -f "$log"
}

suite splatent-data uv run --isolated --no-project --with ./packages/splatent-data --with 'pytest>=8' \
  pytest packages/splatent-data/tests -q
for pkg in splatent-latents splatent-splat splatent-model splatent-train splatent-pipeline; do
  suite "$pkg" uv run --locked --package "$pkg" pytest "packages/$pkg/tests" -q
done
suite splatent-cli uv run --locked --package splatent-cli pytest apps/splatent-cli/tests -q
suite cross-package uv run --locked pytest tests -q

echo
echo "=== summary"
printf '%s\n' "${summary[@]}"
exit $status
