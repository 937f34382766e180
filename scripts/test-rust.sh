#!/usr/bin/env bash
# Rust: unit, integration (conformance, concurrency), doc tests, and the Rust examples.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test -p seawall
out=$(cargo run -q -p seawall --example breaker)
echo "$out"
grep -q "price = 42, state = closed" <<<"$out"
cargo run -q -p seawall --example demo >/dev/null
