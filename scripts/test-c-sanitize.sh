#!/usr/bin/env bash
# The C test suite under sanitizers and under valgrind (issue 9; docs/hardening.md, "C:
# sanitizers, valgrind and bad input"). Two builds of every C test program:
#   asan      gcc -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all,
#             linked against the STATIC libseawall.a, run with LeakSanitizer on
#             (detect_leaks=1, halt_on_error=1): no memory error in the C code, no undefined
#             behaviour, no leak anywhere (Rust's allocations go through the intercepted
#             malloc, so a handle never freed, or freed twice, is reported)
#   valgrind  a plain build (-O1 -g) linked against the SHARED libseawall.so, run under
#             valgrind memcheck (--error-exitcode=1 --leak-check=full
#             --errors-for-leak-kinds=definite): no invalid read or write anywhere, the Rust
#             code included, no use of uninitialised memory, no definite leak
# Programs: api, deadline, conformance (breaker, deadline and idempotency scenarios),
# threads, idempotency, idempotency_threads, registry, panic, bad_input, and redis (each run gets
# its own redis-server on a free loopback port; fails, never skips, without one).
# Before the suite, canaries prove that each tool is really on: a leaked handle must make
# LeakSanitizer fail the run, library bytes freed twice must stop AddressSanitizer, a
# handle used after free and a leaked one must make valgrind fail. No suppressions are
# used. A coverage check fails when a function of seawall.h is missing from bad_input.c or
# from the C table of docs/bad-input.md.
#
# One line per program and tool ("--- asan api: ok (0.6 s) 345 passed, 0 failed"); the
# last line is "c-sanitize: N passed, M failed"; non-zero exit when anything failed.
# 27 to 50 s on 2 cores once libseawall is built, depending on load (the full counts of
# every test: none needs to be scaled down for valgrind).
#
# Usage: scripts/test-c-sanitize.sh [asan|valgrind]   (default: both)
# Env:   SEAWALL_C_PREFIX=DIR        use (and keep) this installation prefix
set -uo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

modes=(asan valgrind)
case "${1:-}" in
  "") ;;
  asan | valgrind) modes=("$1") ;;
  *) echo "usage: $0 [asan|valgrind]" >&2; exit 2 ;;
esac

scripts/apt-ensure.sh test-c-sanitize pkg-config libcjson-dev valgrind redis-server

temp_dirs=()
cleanup() { if ((${#temp_dirs[@]})); then rm -rf "${temp_dirs[@]}"; fi; }
trap cleanup EXIT
if [ -n "${SEAWALL_C_PREFIX:-}" ]; then
  prefix="$SEAWALL_C_PREFIX"
else
  prefix="$(mktemp -d "${TMPDIR:-/tmp}/seawall-c-san.XXXXXX")"
  temp_dirs+=("$prefix")
fi
echo "--- install libseawall into $prefix"
scripts/install-c.sh "$prefix" || exit 1

work="$(mktemp -d "${TMPDIR:-/tmp}/seawall-c-san-build.XXXXXX")"
temp_dirs+=("$work")
cp bindings/c/tests/*.c bindings/c/tests/*.h "$work/"
cd "$work"
mkdir asan valgrind

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
version=$(pkg-config --modversion seawall)
SEAWALL_CFLAGS=$(pkg-config --cflags seawall)
CJSON=$(pkg-config --cflags --libs libcjson)
STATIC_LIBS=$(pkg-config --static --libs seawall | sed 's/-lseawall\b/-l:libseawall.a/')
SHARED_LIBS="$(pkg-config --libs seawall) -Wl,-rpath,$prefix/lib"
BASE_CFLAGS=(-std=c11 -O1 -g) # warnings are test-c.sh's job (-Werror at -O2)
SAN_CFLAGS=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)

# LeakSanitizer runs at exit; halt_on_error stops at the first report; the exit code of a
# report is 23, so that it cannot be mistaken for a test's own failure (1).
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=23:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:report_error_type=1:exitcode=23"
export RUST_BACKTRACE=0 # api.c and panic.c panic on purpose
VALGRIND=(valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite
  --show-leak-kinds=definite --num-callers=30)

# name | source | extra compiler flags and libraries | arguments
programs=(
  "api|api.c|-pthread -DSEAWALL_EXPECTED_VERSION=\"$version\"|" # the quotes reach gcc: a C string
  "deadline|deadline.c|-pthread -lm|"
  "conformance|conformance.c|$CJSON -lm|$repo/tests/conformance/breaker"
  "conformance_deadline|conformance_deadline.c|$CJSON -lm|$repo/tests/conformance/deadline"
  "conformance_idempotency|conformance_idempotency.c|$CJSON -lm|$repo/tests/conformance/idempotency"
  "threads|threads.c|-pthread|"
  "idempotency|idempotency.c|-pthread -lm|"
  "idempotency_threads|idempotency_threads.c|-pthread|"
  "registry|registry.c|-pthread|metrics.txt"
  "panic|panic.c||"
  "bad_input|bad_input.c|-pthread -lm|"
  "redis|redis.c|-pthread|"
)

passed=0 failed=0 failed_names=()
result() { # result NAME OK(0/1) DETAIL
  if [ "$2" = 0 ]; then
    passed=$((passed + 1))
    echo "--- $1: ok $3"
  else
    failed=$((failed + 1))
    failed_names+=("$1")
    echo "--- $1: FAILED $3"
  fi
}

# shellcheck disable=SC2086 # flag lists from pkg-config and the table
build_one() { # build_one MODE NAME SOURCE EXTRA
  local mode=$1 name=$2 src=$3 extra=$4
  if [ "$mode" = asan ]; then
    gcc "${BASE_CFLAGS[@]}" "${SAN_CFLAGS[@]}" $SEAWALL_CFLAGS "$src" -o "asan/$name" $extra $STATIC_LIBS
  else
    gcc "${BASE_CFLAGS[@]}" $SEAWALL_CFLAGS "$src" -o "valgrind/$name" $extra $SHARED_LIBS
  fi
}

echo "--- compile (${modes[*]}): ${#programs[@]} programs each"
start=$SECONDS
jobs_ok=1
for mode in "${modes[@]}"; do
  for p in "${programs[@]}"; do
    IFS='|' read -r name src extra _ <<<"$p"
    build_one "$mode" "$name" "$src" "$extra" >"build-$mode-$name.log" 2>&1 &
    if (($(jobs -rp | wc -l) >= 2)); then wait -n || jobs_ok=0; fi
  done
done
while (($(jobs -rp | wc -l) > 0)); do wait -n || jobs_ok=0; done
build_failed=0
for mode in "${modes[@]}"; do
  for p in "${programs[@]}"; do
    IFS='|' read -r name _ <<<"$p"
    if [ ! -x "$mode/$name" ]; then
      build_failed=1
      echo "compile $mode/$name failed:"
      cat "build-$mode-$name.log"
    fi
  done
done
((jobs_ok)) || build_failed=1
result "compile" "$build_failed" "($((SECONDS - start)) s)"

# Coverage: every function of seawall.h is given bad input in bad_input.c and has a row in
# the "## C" table of docs/bad-input.md.
coverage() {
  local funcs f missing=() table
  funcs=$(grep -oE '\bseawall_[a-z0-9_]+\(' "$repo/include/seawall.h" | tr -d '(' | sort -u)
  table=$(awk '/^## C$/ {on = 1; next} /^## / {on = 0} on' "$repo/docs/bad-input.md")
  for f in $funcs; do
    grep -qw "$f" bad_input.c || missing+=("$f (bad_input.c)")
    grep -qw "$f" <<<"$table" || missing+=("$f (docs/bad-input.md)")
  done
  if ((${#missing[@]})); then
    printf 'not covered: %s\n' "${missing[@]}"
    return 1
  fi
  echo "$(wc -w <<<"$funcs") functions, each in bad_input.c and in the table"
}
coverage
result "bad input covers every function of seawall.h" $? ""

# Canaries: each tool must catch what it is here to catch.
cat >canary_leak.c <<'EOF'
#include <seawall.h>
int main(void) {
    seawall_breaker_config *cfg = NULL;
    return seawall_breaker_config_new(&cfg) != SEAWALL_OK; /* never freed */
}
EOF
cat >canary_double_free.c <<'EOF'
#include <seawall.h>
int main(void) {
    seawall_idem_config *cfg = NULL;
    seawall_idem_cache *cache = NULL;
    seawall_idem_begin_result r;
    seawall_idem_record *rec = NULL;
    seawall_bytes bytes = {0, 0}, copy;
    if (seawall_idem_config_new(&cfg) || seawall_idem_cache_new(cfg, &cache)) return 1;
    if (seawall_idem_begin(cache, (const unsigned char *)"k", 1, 0, 0, &r)) return 1;
    if (seawall_idem_complete(cache, r.lease, (const unsigned char *)"x", 1, 0, &rec)) return 1;
    if (seawall_idem_record_encode(rec, &bytes)) return 1;
    copy = bytes;
    seawall_bytes_free(&bytes);
    seawall_bytes_free(&copy); /* the same bytes, freed twice */
    return 0;
}
EOF
cat >canary_use_after_free.c <<'EOF'
#include <seawall.h>
int main(void) {
    seawall_breaker_config *cfg = NULL;
    if (seawall_breaker_config_new(&cfg) != SEAWALL_OK) return 1;
    seawall_breaker_config_free(cfg);
    seawall_breaker_config_set_int(cfg, "window_size", 5); /* used after free */
    return 0;
}
EOF
canary() { # canary MODE SOURCE PATTERN: the tool must fail the program and print PATTERN
  local mode=$1 src=$2 pattern=$3 out rc bin="canary-$1-${2%.c}"
  # shellcheck disable=SC2086
  if [ "$mode" = asan ]; then
    gcc -g "${SAN_CFLAGS[@]}" $SEAWALL_CFLAGS "$src" -o "$bin" $STATIC_LIBS || return 1
    out=$(./"$bin" 2>&1)
  else
    gcc -g $SEAWALL_CFLAGS "$src" -o "$bin" $SHARED_LIBS || return 1
    out=$("${VALGRIND[@]}" ./"$bin" 2>&1)
  fi
  rc=$?
  if [ "$rc" = 0 ] || ! grep -q "$pattern" <<<"$out"; then
    echo "canary $mode $src was not caught (exit $rc; want \"$pattern\"):"
    echo "$out" | tail -20
    return 1
  fi
  echo "caught: $(grep -m1 "$pattern" <<<"$out" | sed 's/^==[0-9]*== *//')"
}
for mode in "${modes[@]}"; do
  if [ "$mode" = asan ]; then
    canary asan canary_leak.c "LeakSanitizer: detected memory leaks"
    result "asan canary: a leaked handle" $? ""
    canary asan canary_double_free.c "attempting double-free"
    result "asan canary: library memory freed twice" $? ""
  else
    canary valgrind canary_leak.c "definitely lost"
    result "valgrind canary: a leaked handle" $? ""
    canary valgrind canary_use_after_free.c "Invalid \(read\|write\)"
    result "valgrind canary: a handle used after free" $? ""
  fi
done

for mode in "${modes[@]}"; do
  for p in "${programs[@]}"; do
    IFS='|' read -r name _ _ args <<<"$p"
    [ -x "$mode/$name" ] || { result "$mode $name" 1 "(not built)"; continue; }
    cmd=("./$mode/$name")
    [ -n "$args" ] && cmd+=("$args")
    if [ "$mode" = asan ]; then
      cmd=(timeout 120 "${cmd[@]}")
    else
      cmd=(timeout 300 "${VALGRIND[@]}" "${cmd[@]}")
    fi
    [ "$name" = redis ] && cmd=("$repo/scripts/with-redis.sh" "${cmd[@]}")
    t0=$(date +%s%N)
    "${cmd[@]}" >"$mode-$name.out" 2>&1
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$mode-$name.out" | tail -1)
    if [ "$rc" = 0 ] && [ -n "$last" ]; then
      result "$mode $name" 0 "($((ms / 1000)).$((ms % 1000 / 100)) s) $last"
    else
      result "$mode $name" 1 "(exit $rc, $((ms / 1000)).$((ms % 1000 / 100)) s) ${last:-no summary line}"
      grep -E '^FAIL|ERROR|SUMMARY|runtime error|Invalid|definitely lost|uninitialised|==[0-9]+==' \
        "$mode-$name.out" | head -60
      echo "(last lines of the output:)"
      tail -15 "$mode-$name.out"
    fi
  done
done

echo
if ((failed)); then echo "failed: ${failed_names[*]}"; fi
echo "c-sanitize: $passed passed, $failed failed"
exit $((failed > 0))
