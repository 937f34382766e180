#!/usr/bin/env bash
# Cross-language proof of the Redis store: Python, Node and C share one redis-server and one
# prefix, and replay each other's results (issue 5, docs/redis.md).
#
# Builds and installs the artifacts as the suites do (scripts/build-python.sh --venv,
# scripts/build-node.sh + npm install --offline of the tarball, scripts/install-c.sh + gcc
# with pkg-config), starts its own redis-server on a free 127.0.0.1 port (fails, never
# skips, when it is missing) and runs examples/interop/{python_side.py,node_side.js,c_side.c}:
#
#   1. Python completes key A with a JSON value;
#   2. Node replays A (same value) and completes key B;
#   3. C replays A and B (exact bytes and content type) and completes key C with JSON bytes;
#   4. Python replays B and C;
#   5. Node replays C;
#   6. a Python, a Node and a C process race on one key (3 rounds): exactly one executes,
#      the others wait for it and replay the same value.
#
# The last line is "interop: N passed, M failed". Usage: scripts/test-interop.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
started=$SECONDS

command -v redis-server >/dev/null || { echo "test-interop: redis-server is missing (scripts/bootstrap.sh installs it)" >&2; exit 1; }
command -v redis-cli >/dev/null || { echo "test-interop: redis-cli is missing (scripts/bootstrap.sh installs it)" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/seawall-interop.XXXXXX")"
redis_pid=""
cleanup() {
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- build and install -------------------------------------------------------------------
echo "== building the Python wheel into $work/venv" >&2
scripts/build-python.sh --venv "$work/venv" >/dev/null
echo "== building and packing the Node package" >&2
tarball="$(scripts/build-node.sh "$work/npm")"
mkdir -p "$work/node-project"
(cd "$work/node-project" && npm init -y >/dev/null && npm install --offline --no-audit --no-fund --silent "$tarball")
cp examples/interop/node_side.js examples/interop/values.json "$work/node-project/"
echo "== installing libseawall into $work/c" >&2
scripts/install-c.sh "$work/c"
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror -O2 -o "$work/c_side" examples/interop/c_side.c \
  $(PKG_CONFIG_PATH="$work/c/lib/pkgconfig" pkg-config --cflags --libs seawall) -Wl,-rpath,"$work/c/lib"

# --- redis-server --------------------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
redis-cli -p "$port" ping >/dev/null 2>&1 || { cat "$work/redis.log" >&2; echo "test-interop: redis-server did not start" >&2; exit 1; }
export SEAWALL_REDIS_URL="redis://127.0.0.1:$port/0"
export SEAWALL_INTEROP_PREFIX="interop-$$-$RANDOM:"
echo "== redis-server on 127.0.0.1:$port, prefix $SEAWALL_INTEROP_PREFIX" >&2

passed=0
failed=0
py() { timeout 10 "$work/venv/bin/python" "$repo/examples/interop/python_side.py" "$@"; }
nd() { (cd "$work/node-project" && timeout 10 node node_side.js "$@"); }
cc() { timeout 10 "$work/c_side" "$@"; }

# Runs one side; counts its PASS / FAIL lines; a failing exit without a FAIL line is one failure.
step() {
  local name=$1; shift
  local out rc=0 p f
  echo "-- $name"
  out="$("$@" 2>&1)" || rc=$?
  printf '%s\n' "$out" | sed 's/^/   /'
  p=$(printf '%s\n' "$out" | grep -c '^PASS: ' || true)
  f=$(printf '%s\n' "$out" | grep -c '^FAIL: ' || true)
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL: $name exited with status $rc"
    f=1
  fi
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL: $name checked nothing"
    f=1
  fi
  passed=$((passed + p))
  failed=$((failed + f))
}

expect() { # expect OK DESCRIPTION
  if [ "$1" = 1 ]; then echo "PASS: $2"; passed=$((passed + 1)); else echo "FAIL: $2"; failed=$((failed + 1)); fi
}

step "1. python completes A" py write-a
step "2. node replays A, completes B" nd replay-a-write-b
step "3. c replays A and B, completes C" cc replay-a-b-write-c
step "4. python replays B and C" py replay-b-c
step "5. node replays C" nd replay-c

# --- the race: three processes, one key, started at once (3 rounds, 3 keys) --------------
race() { # race ROUND
  local key="R$1" start_ms p1 p2 p3 rcs=0 lines n_lines n_exec winner n_values value
  echo "-- 6.$1 python, node and c race on key $key"
  start_ms=$(( $(date +%s%3N) + 1500 ))   # every process waits for this instant, so startup times do not matter
  py race "$key" "$start_ms" >"$work/race.py" 2>&1 & p1=$!
  nd race "$key" "$start_ms" >"$work/race.node" 2>&1 & p2=$!
  cc race "$key" "$start_ms" >"$work/race.c" 2>&1 & p3=$!
  wait "$p1" || rcs=$((rcs + 1))
  wait "$p2" || rcs=$((rcs + 1))
  wait "$p3" || rcs=$((rcs + 1))
  cat "$work/race.py" "$work/race.node" "$work/race.c" | sed 's/^/   /'
  expect "$([ "$rcs" -eq 0 ] && echo 1 || echo 0)" "race $key: all three processes exited with status 0"
  lines="$(cat "$work/race.py" "$work/race.node" "$work/race.c" | grep '^RACE ' || true)"
  n_lines=$(printf '%s\n' "$lines" | grep -c '^RACE ' || true)
  expect "$([ "$n_lines" -eq 3 ] && echo 1 || echo 0)" "race $key: each of python, node and c reported (got $n_lines reports)"
  n_exec=$(printf '%s\n' "$lines" | grep -c ' executed=1 ' || true)
  expect "$([ "$n_exec" -eq 1 ] && echo 1 || echo 0)" "race $key: exactly one process executed (got $n_exec)"
  winner=$(printf '%s\n' "$lines" | sed -n 's/^RACE \([a-z]*\) executed=1 .*/\1/p')
  n_values=$(printf '%s\n' "$lines" | sed -n 's/^RACE [a-z]* executed=[01] value=//p' | sort -u | wc -l)
  value=$(printf '%s\n' "$lines" | sed -n 's/^RACE [a-z]* executed=[01] value=//p' | sort -u | head -n 1)
  expect "$([ "$n_lines" -eq 3 ] && [ "$n_values" -eq 1 ] && echo 1 || echo 0)" "race $key: all three got the same value ($value)"
  expect "$([ -n "$winner" ] && [ "$value" = "{\"winner\":\"$winner\"}" ] && echo 1 || echo 0)" "race $key: the value is the one the executing process (${winner:-none}) stored"
}
race 1
race 2
race 3

echo "(took $((SECONDS - started)) s, builds included)"
echo "interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
