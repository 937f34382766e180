#!/usr/bin/env bash
# The Python suite, against the installed wheel, the way users get it:
#   1. builds the wheel (scripts/build-python.sh);
#   2. installs it with pytest into a fresh virtualenv in a temporary directory outside
#      the repository;
#   3. runs pytest on python/tests from a directory outside the repository, so that
#      `import seawall` is the installed wheel (a test asserts it);
#   4. runs examples/python/*.py and examples/demo/demo.py with the virtualenv's python,
#      checks that demo.py prints exactly what the Rust demo prints, and runs the live
#      demo (examples/demo/live.py, ~4 s on the real clock) to its summary line.
# Exits non-zero when any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export SEAWALL_REPO=$repo

wheel=$(scripts/build-python.sh)
echo "test-python: wheel $wheel"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/seawall-python.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
py=$tmp/venv/bin/python
pytest_pin=$(grep -E '^pytest==' scripts/requirements-tools.txt 2>/dev/null || echo pytest)
"$py" -m pip install -q --disable-pip-version-check "$wheel" "$pytest_pin" prometheus_client==0.26.0 \
  starlette==1.10.0 httpx==0.28.1 uvicorn==0.54.0 fastapi==0.165.0

cd "$tmp"
echo "test-python: pytest (from $tmp)"
"$py" -m pytest -p no:cacheprovider -q -o "testpaths=" --rootdir "$repo/python" "$repo/python/tests"

# The short soak (bench/soak/soak.py; docs/hardening.md): mixed load, memory growth checked.
# SEAWALL_SOAK_CI_SECS=0 skips it; the full run is SEAWALL_SOAK_SECS=120 python bench/soak/soak.py.
if [ "${SEAWALL_SOAK_CI_SECS:-10}" != 0 ]; then
  echo "test-python: soak (${SEAWALL_SOAK_CI_SECS:-10} s)"
  SEAWALL_SOAK_SECS="${SEAWALL_SOAK_CI_SECS:-10}" "$py" "$repo/bench/soak/soak.py"
fi

# The benchmark's smoke run (bench/python_overhead.py: every row, tiny counts, no
# thresholds; peers not installed here, their rows say so), so the benchmark never rots.
echo "test-python: benchmark smoke run"
SEAWALL_BENCH_SMOKE=1 "$py" "$repo/bench/python_overhead.py" >/dev/null

echo "test-python: examples"
for ex in "$repo"/examples/python/*.py; do
  echo "--- $(basename "$ex")"
  "$py" "$ex"
done
echo "--- demo.py"
"$py" "$repo/examples/demo/demo.py" >"$tmp/demo-python.txt"
cat "$tmp/demo-python.txt"
if command -v cargo >/dev/null 2>&1 && [ -f "$repo/core/examples/demo.rs" ]; then
  (cd "$repo" && cargo run -q --release -p seawall --example demo) >"$tmp/demo-rust.txt" 2>/dev/null
  if ! diff -u "$tmp/demo-rust.txt" "$tmp/demo-python.txt"; then
    echo "test-python: demo.py output differs from the Rust demo" >&2
    exit 1
  fi
  echo "test-python: demo.py output is identical to the Rust demo"
fi
echo "--- live.py (real clock, about 4 s)"
"$py" "$repo/examples/demo/live.py" >"$tmp/live.txt"
grep -q '^summary: state=' "$tmp/live.txt" || { cat "$tmp/live.txt"; echo "test-python: live.py printed no summary" >&2; exit 1; }
grep '^summary: ' "$tmp/live.txt"
echo "test-python: ok"
