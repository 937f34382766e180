#!/usr/bin/env bash
# Rust: unit, integration (conformance, concurrency), doc tests, and the Rust examples.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test -p seawall
out=$(cargo run -q -p seawall --example breaker)
echo "$out"
grep -q "price = 42, state = closed" <<<"$out"
cargo run -q -p seawall --example demo >/dev/null
# Benchmarks in smoke mode (a fraction of a second each, no thresholds), so they never rot.
SEAWALL_BENCH_SMOKE=1 cargo bench -q -p seawall-bench --bench peers >/dev/null
SEAWALL_BENCH_SMOKE=1 cargo bench -q -p seawall --bench overhead >/dev/null
SEAWALL_BENCH_SMOKE=1 cargo bench -q -p seawall --bench idempotency >/dev/null
echo "rust benches (smoke): ok"
