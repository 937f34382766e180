#!/usr/bin/env bash
# Per-call overhead of a guarded no-op call next to a bare call, in one run, in Rust,
# Python and Node, with the peer libraries of each language where they install
# (failsafe and recloser from crates.io, pybreaker from PyPI, opossum and cockatiel from npm). Reports ns
# per call and the ratio to bare.
# The machines are shared and noisy: compare the rows of one run, not runs.
set -euo pipefail
cd "$(dirname "$0")/.."
work=target/bench
mkdir -p "$work/npm-app"

echo "== Rust (cargo bench -p seawall-bench --bench peers: seawall, failsafe-rs, recloser, a hand-written floor)"
# Writes target/bench/rust.md and rust.json; SEAWALL_BENCH_SMOKE=1 makes it a < 1 s smoke run.
cargo bench -q -p seawall-bench --bench peers
echo
echo "== Rust idempotency cache (cargo bench -p seawall --bench idempotency: memory store, fresh and replay)"
# Writes target/bench/rust-idempotency.{md,json}.
cargo bench -q -p seawall --bench idempotency

echo
echo "== Python (bench/python_overhead.py: seawall, pybreaker, circuitbreaker, purgatory, aiobreaker, Powertools, a pyo3 floor)"
# Writes target/bench/python.md and python.json; SEAWALL_BENCH_SMOKE=1 makes it a few-second smoke run.
# Peers pinned; one that does not install gets a row saying so. Powertools' idempotency package
# imports boto3 even for the dict-backed layer the benchmark gives it.
scripts/build-python.sh --venv "$work/venv" >/dev/null
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "pybreaker==1.4.1" "circuitbreaker==2.1.3" \
  "purgatory==3.0.1" "aiobreaker==1.2.0" "aws-lambda-powertools==3.37.0" "boto3==1.44.8" \
  || echo "(a Python peer could not be installed; its rows say so)"
"$work/venv/bin/python" bench/python_overhead.py

echo
echo "== Node (bench/node_overhead.js: seawall, opossum, cockatiel)"
# Writes target/bench/node.md and node.json; SEAWALL_BENCH_SMOKE=1 makes it a ~1 s smoke run
# (node-smoke.{md,json}) that also works without the peers. Run from the npm app so that
# `require` finds the packages installed there; --expose-gc for the heap rows.
tarball=$(scripts/build-node.sh "$work")
node_bench="$PWD/bench/node_overhead.js"
(
  cd "$work/npm-app"
  [ -f package.json ] || npm init -y >/dev/null
  npm install --no-audit --no-fund "$tarball" >/dev/null
  for peer in "opossum@8.5.0" "cockatiel@3.2.1"; do
    npm install --no-audit --no-fund "$peer" >/dev/null 2>&1 || echo "($peer could not be installed; its rows say so)"
  done
  rm -f node_overhead.js # copied here by earlier versions of this script
  node --expose-gc "$node_bench"
)

echo
echo "== Redis (Python): seawall's RedisStore beside AWS Powertools' Redis persistence layer"
# Its own redis-server on a free loopback port; round trips per call (must be 2 fresh, 1
# replay: the script exits 1 otherwise) and calls/s. boto3 is imported by Powertools'
# idempotency package even for the Redis layer.
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check \
  "aws-lambda-powertools==3.37.0" "redis==8.1.0" "boto3==1.44.8" \
  || echo "(aws-lambda-powertools could not be installed; its row says why)"
"$work/venv/bin/python" bench/redis_python.py

echo
echo "== Report"
# One table of every target and every row of this run: bench/results.md (+ results.json).
python3 bench/report.py
