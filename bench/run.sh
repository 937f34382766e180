#!/usr/bin/env bash
# Per-call overhead of a guarded no-op call next to a bare call, in one run, in Rust,
# Python and Node, with the peer libraries of each language where they install
# (failsafe and recloser from crates.io, pybreaker from PyPI, opossum from npm). Reports ns
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
echo "== Python"
scripts/build-python.sh --venv "$work/venv" >/dev/null
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check "pybreaker==1.4.1" \
  || echo "(pybreaker could not be installed; the peer row is left out)"
"$work/venv/bin/python" bench/python_overhead.py

echo
echo "== Node"
tarball=$(scripts/build-node.sh "$work")
(
  cd "$work/npm-app"
  [ -f package.json ] || npm init -y >/dev/null
  npm install --no-audit --no-fund "$tarball" >/dev/null
  npm install --no-audit --no-fund "opossum@8" >/dev/null 2>&1 || echo "(opossum could not be installed; the peer row is left out)"
)
cp bench/node_overhead.js "$work/npm-app/"
node "$work/npm-app/node_overhead.js"

echo
echo "== Redis (Python): seawall's RedisStore beside AWS Powertools' Redis persistence layer"
# Its own redis-server on a free loopback port; round trips per call (must be 2 fresh, 1
# replay: the script exits 1 otherwise) and calls/s. boto3 is imported by Powertools'
# idempotency package even for the Redis layer.
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check \
  "aws-lambda-powertools==3.37.0" "redis==8.1.0" "boto3==1.44.8" \
  || echo "(aws-lambda-powertools could not be installed; its row says why)"
"$work/venv/bin/python" bench/redis_python.py
