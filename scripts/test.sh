#!/usr/bin/env bash
# Runs every test suite, each to the end, and fails when any failed.
# Each suite prints its own results; the last line sums up the suites.
set -uo pipefail
cd "$(dirname "$0")/.."
export SEAWALL_REPO="$PWD"

# node before python: the Python suite also replays records through the built Node package.
suites=(readme rust c node python interop hardening)
passed=0 failed=0 failed_names=()
for s in "${suites[@]}"; do
  echo "=== suite: $s ==="
  start=$SECONDS
  case "$s" in
    readme) python3 scripts/check_readme.py ;;
    *) "scripts/test-$s.sh" ;;
  esac
  rc=$?
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1)); echo "=== suite $s: ok ($((SECONDS - start)) s) ==="
  else
    failed=$((failed + 1)); failed_names+=("$s"); echo "=== suite $s: FAILED (exit $rc, $((SECONDS - start)) s) ==="
  fi
done
echo
if ((failed)); then echo "failed suites: ${failed_names[*]}"; fi
echo "suites: $passed passed, $failed failed"
exit $((failed > 0))
