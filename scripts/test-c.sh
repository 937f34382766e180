#!/usr/bin/env bash
# C library: builds libseawall, checks that include/seawall.h is up to date, installs the
# library into a fresh prefix outside the tree (scripts/install-c.sh), then compiles the C
# tests and examples from a temporary directory against that installation only, through
# pkg-config, with -Wall -Wextra -Werror, and runs them:
#   api.c          the API contract (NULL arguments, errors, panics, listeners, ...)
#   deadline.c     the contract of deadlines, grpc-timeout values, cancel tokens and timers
#                  (incl. the system clock's timer thread cancelling a token)
#   conformance.c  every tests/conformance/breaker/*.json scenario
#   conformance_deadline.c  every tests/conformance/deadline/*.json scenario
#   threads.c      8 threads on one breaker (run 10 times)
#   idempotency.c  the contract of the seawall_idem_* API (waiters, callbacks, record format)
#   conformance_idempotency.c  every tests/conformance/idempotency/*.json scenario
#   idempotency_threads.c  8 threads racing on the same keys, with and without crashing
#                  owners (run 5 times)
#   panic.c        a panic armed inside the core (breaker, idempotency, registry) comes back
#                  as SEAWALL_E_INTERNAL and the object stays usable
#   bad_input.c    every function of seawall.h given bad input: exact status and message
#                  (the "## C" table of docs/bad-input.md)
#   registry.c     registry, health checks (incl. a hanging one), Prometheus counts after
#                  8 threads x 5000 calls, buffer rules
#   bench_idempotency.c  per-call cost of a replayed begin and a fresh begin + complete
#                  beside a bare call (printed; fails only when a call misbehaves)
#   examples/c/breaker.c, examples/c/deadline.c (a poll() bounded by a deadline),
#   examples/c/idempotency.c (a retried charge runs once),
#   examples/demo/demo.c (its output must equal the Rust demo's)
#   the example linked statically against libseawall.a
# Every step runs; the last line is "c: N passed, M failed"; the exit status is non-zero
# when anything failed.
#
# Usage: scripts/test-c.sh           run everything
#        scripts/test-c.sh --bless   regenerate include/seawall.h after changing the C API
# Env:   SEAWALL_C_PREFIX=DIR        install there (and keep it) instead of a temporary prefix
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

if [ "${1:-}" = "--bless" ]; then
  SEAWALL_BLESS=1 cargo test --release -p seawall-ffi --test header
  exit 0
fi

# Build and test tools: pkg-config and cJSON (the conformance runner parses JSON with it).
scripts/apt-ensure.sh test-c pkg-config libcjson-dev

echo "--- cargo build --release -p seawall-ffi"
cargo build --release -p seawall-ffi
echo "--- cargo test --release -p seawall-ffi (unit tests, header up to date)"
cargo test --release -p seawall-ffi

temp_dirs=()
cleanup() { if ((${#temp_dirs[@]})); then rm -rf "${temp_dirs[@]}"; fi; }
trap cleanup EXIT
if [ -n "${SEAWALL_C_PREFIX:-}" ]; then
  prefix="$SEAWALL_C_PREFIX"
else
  prefix="$(mktemp -d "${TMPDIR:-/tmp}/seawall-c.XXXXXX")"
  temp_dirs+=("$prefix")
fi
echo "--- install into $prefix"
scripts/install-c.sh "$prefix"

work="$(mktemp -d "${TMPDIR:-/tmp}/seawall-c-build.XXXXXX")"
temp_dirs+=("$work")
cp bindings/c/tests/*.c bindings/c/tests/*.h examples/c/breaker.c examples/demo/demo.c "$work/"
cp examples/c/deadline.c "$work/example_deadline.c" # tests/deadline.c has the same name
cp examples/c/idempotency.c "$work/example_idempotency.c" # so has tests/idempotency.c
cd "$work"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
CFLAGS=(-std=c11 -Wall -Wextra -Werror -Wpedantic -O2 -g)
SEAWALL_CFLAGS=$(pkg-config --cflags seawall)
SEAWALL_LIBS=$(pkg-config --libs seawall)
RPATH="-Wl,-rpath,$prefix/lib"
version=$(pkg-config --modversion seawall)

passed=0 failed=0 failed_steps=()
step() { # step NAME COMMAND...: runs it, counts it, never stops the script
  local name=$1
  shift
  echo "--- $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failed_steps+=("$name")
    echo "--- $name: FAILED"
  fi
}

# shellcheck disable=SC2086 # the pkg-config outputs are lists of flags
build() { # build OUT SOURCE [EXTRA...]
  local out=$1 src=$2
  shift 2
  gcc "${CFLAGS[@]}" "$src" -o "$out" $SEAWALL_CFLAGS "$@" $SEAWALL_LIBS $RPATH
}

# shellcheck disable=SC2086
build_all() {
  build api api.c -pthread "-DSEAWALL_EXPECTED_VERSION=\"$version\"" &&
    build deadline deadline.c -pthread -lm &&
    build conformance conformance.c $(pkg-config --cflags --libs libcjson) -lm &&
    build conformance_deadline conformance_deadline.c $(pkg-config --cflags --libs libcjson) -lm &&
    build threads threads.c -pthread &&
    build idempotency idempotency.c -pthread -lm &&
    build conformance_idempotency conformance_idempotency.c $(pkg-config --cflags --libs libcjson) -lm &&
    build idempotency_threads idempotency_threads.c -pthread &&
    build registry registry.c -pthread &&
    build bad_input bad_input.c -pthread -lm &&
    build panic panic.c &&
    build redis redis.c -pthread &&
    build bench_idempotency bench_idempotency.c &&
    build breaker breaker.c &&
    build example_deadline example_deadline.c &&
    build example_idempotency example_idempotency.c &&
    build demo demo.c
}
step "compile tests and examples (gcc ${CFLAGS[*]}, pkg-config seawall $version)" build_all

header_cxx() { # the header also compiles as C++ (extern "C", no C-only syntax)
  printf '#include <seawall.h>\nint main() { return seawall_version() == nullptr; }\n' >cxx.cpp
  # shellcheck disable=SC2086
  g++ -std=c++17 -Wall -Wextra -Werror $SEAWALL_CFLAGS cxx.cpp -o cxx $SEAWALL_LIBS $RPATH && ./cxx
}
if command -v g++ >/dev/null 2>&1; then step "seawall.h compiles as C++" header_cxx; fi

exports_only_api() { # the shared library exports the C API and nothing else of Rust's
  local extra
  extra=$(nm -D --defined-only "$prefix/lib/libseawall.so" | awk '{print $3}' | grep -v '^seawall_' || true)
  if [ -n "$extra" ]; then
    echo "unexpected exported symbols:" $extra
    return 1
  fi
  echo "$(nm -D --defined-only "$prefix/lib/libseawall.so" | grep -c ' seawall_') symbols, all seawall_*"
}
step "libseawall.so exports only seawall_* symbols" exports_only_api

step "api" env RUST_BACKTRACE=0 ./api
step "deadline" timeout 60 ./deadline
step "conformance" ./conformance "$repo/tests/conformance/breaker"
step "conformance (deadline scenarios)" ./conformance_deadline "$repo/tests/conformance/deadline"

threads_10() {
  local i
  for i in $(seq 1 10); do
    echo "run $i/10"
    timeout 120 ./threads || return 1
  done
}
step "threads (10 runs)" threads_10

step "idempotency" timeout 60 ./idempotency
step "conformance (idempotency scenarios)" ./conformance_idempotency "$repo/tests/conformance/idempotency"

idempotency_threads_5() {
  local i
  for i in $(seq 1 5); do
    echo "run $i/5"
    timeout 120 ./idempotency_threads || return 1
  done
}
step "idempotency threads (5 runs)" idempotency_threads_5

redis_test() { # its own redis-server on a free loopback port; fails (never skips) without one
  "$repo/scripts/with-redis.sh" timeout 60 ./redis
}
step "idempotency on a real redis-server" redis_test

registry_test() {
  timeout 60 ./registry metrics.txt || return 1
  # Every line of the exposition is a comment (# HELP / # TYPE) or a sample "name{labels} value".
  local bad
  bad=$(grep -Ev '^# (HELP|TYPE) seawall_[a-z_]+ .+$|^seawall_[a-z_]+(\{[^}]*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$' metrics.txt || true)
  if [ -n "$bad" ]; then
    echo "lines that are not Prometheus text format:"
    echo "$bad"
    return 1
  fi
  echo "$(grep -vc '^#' metrics.txt) samples in the exposition, all well-formed"
}
step "registry" registry_test
step "bad input (docs/bad-input.md)" env RUST_BACKTRACE=0 ./bad_input
step "panic containment (a panic armed inside the core comes back as SEAWALL_E_INTERNAL)" env RUST_BACKTRACE=0 ./panic
step "bench: idempotency per-call cost (memory store, system clock)" timeout 120 ./bench_idempotency

example() {
  local out
  out=$(./breaker) || return 1
  echo "$out"
  grep -qx "price = 42, state = closed" <<<"$out"
}
step "examples/c/breaker.c" example

example_deadline() {
  local out
  out=$(timeout 30 ./example_deadline) || return 1
  echo "$out"
  grep -qx "poll: no data before the deadline (expired: yes)" <<<"$out" &&
    grep -qx "poll: woken by the cancel token (deadline_exceeded), request budget left: yes" <<<"$out"
}
step "examples/c/deadline.c" example_deadline

example_idempotency() {
  local out
  out=$(timeout 30 ./example_idempotency) || return 1
  echo "$out"
  grep -qx 'failed before charging -> 503 (key released)' <<<"$out" &&
    grep -qx 'executed -> 201 {"charge":"ch_1","request":{"amount":100}}' <<<"$out" &&
    [ "$(grep -cx 'replayed -> 201 {"charge":"ch_1","request":{"amount":100}}' <<<"$out")" = 2 ] &&
    grep -qx 'key key-1, other body -> 422 (SEAWALL_IDEMPOTENCY_MISMATCH)' <<<"$out" &&
    grep -qx 'charges: 1; executed 2, replayed 2, released 1, mismatched 1' <<<"$out"
}
step "examples/c/idempotency.c" example_idempotency

docs_snippets() { # the helpers docs/c.md shows (blocks after "<!-- compiled by scripts/test-c.sh -->") compile
  {
    printf '#define _POSIX_C_SOURCE 200809L\n#include <stdbool.h>\n#include <seawall.h>\n'
    awk '/^<!-- compiled by scripts\/test-c.sh -->$/ {marked = 1; next}
         /^```c$/ && marked {inblock = 1; marked = 0; next} /^```$/ {inblock = 0; next}
         inblock' "$repo/docs/c.md"
  } >docs_snippets.c
  local n
  n=$(grep -c '^static int' docs_snippets.c || true)
  echo "$n helper functions from docs/c.md"
  [ "$n" -ge 3 ] || return 1
  # shellcheck disable=SC2086
  gcc "${CFLAGS[@]}" -Wno-unused-function -c docs_snippets.c -o docs_snippets.o $SEAWALL_CFLAGS
}
step "docs/c.md helpers compile" docs_snippets

demo_matches_rust() {
  ./demo >demo-c.txt || return 1
  cat demo-c.txt
  (cd "$repo" && cargo run --release -q -p seawall --example demo) >demo-rust.txt 2>/dev/null || return 1
  if ! cmp -s demo-c.txt demo-rust.txt; then
    echo "the C demo's output differs from the Rust demo's:"
    diff demo-rust.txt demo-c.txt || true
    return 1
  fi
  echo "(identical to the Rust demo)"
}
step "examples/demo/demo.c (same output as the Rust demo)" demo_matches_rust

static_link() { # link libseawall.a (pkg-config --static adds what it needs)
  local libs
  libs=$(pkg-config --static --libs seawall | sed 's/-lseawall\b/-l:libseawall.a/')
  # shellcheck disable=SC2086
  gcc "${CFLAGS[@]}" breaker.c -o breaker-static $SEAWALL_CFLAGS $libs || return 1
  if readelf -d breaker-static | grep -q 'NEEDED.*libseawall'; then
    echo "breaker-static still needs libseawall.so"
    return 1
  fi
  # Not even findable: prove it runs without the shared library.
  env LD_LIBRARY_PATH=/nonexistent ./breaker-static | tail -1 | grep -qx "price = 42, state = closed"
}
step "static link against libseawall.a" static_link

echo
if ((failed)); then echo "failed: ${failed_steps[*]}"; fi
echo "c: $passed passed, $failed failed"
exit $((failed > 0))
