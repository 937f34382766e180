#!/usr/bin/env bash
# Hardening tests of the core (issue 9, docs/hardening.md): the breaker against its
# reference model, property tests of every parser, fault injection on the idempotency
# store, and loom models of the lock-free parts; then the C test suite under
# AddressSanitizer + UBSan + LeakSanitizer and under valgrind (scripts/test-c-sanitize.sh,
# 30 to 50 s). Short variants by default (about a minute once built; the loom build adds
# about a minute the first time).
#
#   SEAWALL_HARDENING_LONG=1   long variants (more cases, random seeds, deeper loom search)
#   SEAWALL_HARDENING_CASES=N  N cases for every property test
#   SEAWALL_HARDENING_SEED=N   seed of the fault-injection runs; PROPTEST_RNG_SEED=N for properties
#   SEAWALL_HARDENING_KNOWN=1  also run the ignored tests that reproduce open core findings
#                              (they fail until the core is fixed; reported, not counted)
#   SEAWALL_FUZZ_SECS=N        run every cargo-fuzz target for N seconds (default 8; 0 skips).
#                              cargo-fuzz is installed into target/tools when missing; it runs
#                              on the machine's one (stable) toolchain with RUSTC_BOOTSTRAP=1
#                              and no sanitizer (SEAWALL_FUZZ_SANITIZER=address needs nightly)
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0 failed_names=()
step() {
  local name=$1
  shift
  echo "--- hardening: $name"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "--- hardening: $name ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1))
    failed_names+=("$name")
    echo "--- hardening: $name FAILED ($((SECONDS - start)) s)"
  fi
}

tests=(--test model_breaker --test prop_parsers --test faults_idempotency --test loom_breaker --test loom_store)

# Model, properties, faults (and the loom mirrors' drift guards): the ordinary test build.
step "model, properties, faults" cargo test -p seawall "${tests[@]}"

# loom: its own target directory (the cfg changes every crate's build), release as loom advises.
loom() {
  RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p seawall --no-default-features --release --test loom_breaker --test loom_store "$@"
}
step "loom models" loom

# The C suite under ASan + UBSan + LSan (static libseawall.a) and valgrind (libseawall.so).
step "C under sanitizers and valgrind" scripts/test-c-sanitize.sh

if [ "${SEAWALL_HARDENING_KNOWN:-}" = 1 ]; then
  echo "--- hardening: open findings (expected to fail until the core is fixed; not counted)"
  cargo test -p seawall --no-fail-fast --test model_breaker --test prop_parsers -- --ignored || true
  loom --no-fail-fast -- --ignored || true
fi

fuzz_secs="${SEAWALL_FUZZ_SECS:-8}"
if [ "$fuzz_secs" != 0 ]; then
  fuzz() {
    if ! command -v cargo-fuzz >/dev/null; then
      echo "installing cargo-fuzz 0.13.2 into target/tools (from crates.io)"
      cargo install -q --locked --version 0.13.2 --root target/tools cargo-fuzz || return 1
      export PATH="$PWD/target/tools/bin:$PATH"
    fi
    local t work sanitizer="${SEAWALL_FUZZ_SANITIZER:-none}"
    for t in config grpc_timeout idempotency_key record_decode breaker_model; do
      work="target/fuzz-corpus/$t"
      mkdir -p "$work"
      echo "fuzz target $t:"
      # New inputs go to target/fuzz-corpus; the committed seeds are read only. cargo-fuzz
      # passes nightly-only flags: RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
      (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer "$sanitizer" "$t" "../$work" "corpus/$t" -- \
        -max_total_time="$fuzz_secs" -print_final_stats=1 2>&1) |
        grep -E "^(Done|stat::number_of_executed_units|SUMMARY)|panicked|ERROR" || return 1
    done
  }
  step "fuzz (${fuzz_secs} s per target, libFuzzer)" fuzz
fi

echo
if ((failed)); then echo "failed: ${failed_names[*]}"; fi
echo "hardening: $passed passed, $failed failed"
exit $((failed > 0))
