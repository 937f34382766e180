#!/usr/bin/env bash
# Node: builds and packs the npm package, installs the tarball into a fresh npm project
# outside the repository (offline: the package has no dependencies), and runs there
#   - the package's tests (node --test), which import the installed package,
#   - examples/node/*.js (each must exit by itself within 30 s; breaker.js, timeout.js,
#     idempotency.js, observability.js and express.js must print what is expected below) and
#     examples/demo/demo.js (its transition log must equal the Rust demo's byte for byte).
# The observability tests compare the Node registry's Prometheus text and snapshot with the
# Rust registry's for one scenario: bindings/node/examples/observability_scenario.rs, run
# here once (SEAWALL_OBSERVABILITY_FIXTURE). The Redis store tests start their own
# redis-server on 127.0.0.1 (scripts/bootstrap.sh installs it).
# The HTTP integration tests (seawall/express) and examples/node/express.js need Express,
# which is not a dependency of seawall (the middleware only uses node:http objects): the
# pinned versions below are installed into the test project from the npm registry (this
# step needs network access), and the Express tests run once more against Express 4.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
export SEAWALL_REPO="$repo"

work="$(mktemp -d "${TMPDIR:-/tmp}/seawall-node-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT

tarball="$(scripts/build-node.sh "$work/pack")"

project="$work/project"
mkdir -p "$project"
cd "$project"
npm init -y >/dev/null
npm install --offline --no-audit --no-fund --silent "$tarball"
echo "installed $(node -p 'require("seawall/package.json").name + "@" + require("seawall/package.json").version') in $project"
express_version=5.3.0
express4_version=4.22.3
npm install --no-audit --no-fund --silent "express@$express_version" "express4@npm:express@$express4_version"
echo "installed express@$express_version and express@$express4_version (as express4) for the HTTP integration tests"

status=0
fixture="$work/observability-rust.txt"
(cd "$repo" && cargo run -q --release -p seawall-node --example observability_scenario) >"$fixture"
export SEAWALL_OBSERVABILITY_FIXTURE="$fixture"
# The tests import `seawall`, which must resolve to node_modules here, not to the repo.
cp -r "$repo/node/tests" "$project/tests"
node --test tests/ || { status=1; echo "node: the package tests FAILED (see above)" >&2; }
# The short soak (bench/soak/soak.js; docs/hardening.md): mixed load, heap and RSS growth
# checked. SEAWALL_SOAK_CI_SECS=0 skips it; the full run is SEAWALL_SOAK_SECS=120.
if [ "${SEAWALL_SOAK_CI_SECS:-10}" != 0 ]; then
  echo "the soak (${SEAWALL_SOAK_CI_SECS:-10} s)"
  cp "$repo/bench/soak/soak.js" soak.js
  SEAWALL_SOAK_SECS="${SEAWALL_SOAK_CI_SECS:-10}" node --expose-gc soak.js || { status=1; echo "node: the soak FAILED (see above)" >&2; }
fi
# The benchmark's smoke run (every row, tiny counts, no thresholds; peers not installed
# here, their rows say so), so the benchmark never rots.
echo "the benchmark smoke run (bench/node_overhead.js)"
SEAWALL_BENCH_SMOKE=1 node "$repo/bench/node_overhead.js" >/dev/null || { status=1; echo "node: the benchmark smoke run FAILED" >&2; }
echo "the Express integration tests again, against Express $express4_version"
SEAWALL_TEST_EXPRESS=express4 node --test tests/express.test.js tests/express-deadline.test.js tests/express-redis.test.js ||
  { status=1; echo "node: the Express tests FAILED against Express $express4_version (see above)" >&2; }

# Examples, run as a user would: copied into the project, importing the installed package.
mkdir -p examples
cp "$repo"/examples/node/*.js "$repo/examples/demo/demo.js" examples/

expected_breaker='failed: connection refused
event: closed -> open (consecutive_failures)
failed: connection refused
rejected: SEAWALL_BREAKER_OPEN, retry after 10000 ms
event: open -> half_open (open_duration_elapsed)
event: half_open -> closed (probe_successes)
price = 42, state = closed
failed: connection refused
quote = cached, state = open'
expected_timeout='real clock: SEAWALL_TIMEOUT (timed out: the 20 ms timeout elapsed); the query saw signal.aborted = true
manual clock: SEAWALL_TIMEOUT at 100 ms
budget left: 750 ms, downstream grpc-timeout: 750000u
one attempt may use: 300 ms
callee'"'"'s deadline: 750 ms
report 0: timed out: the 50 ms timeout of circuit breaker '"'"'reports'"'"' elapsed
event: closed -> open (consecutive_failures)
report 1: timed out: the 50 ms timeout of circuit breaker '"'"'reports'"'"' elapsed
state = open, failures = 2, timeouts = 2'
expected_idempotency='5 concurrent requests: 1 charge; every caller got ch_1: true
retry an hour later: ch_1, charges = 1
same key, another amount: SEAWALL_IDEMPOTENCY_MISMATCH
owner: crashed after calling the provider
duplicate, once the lease expired: recovered (took over: true)
stats: executed=3 replayed=5 mismatched=1 takenOver=1'
expected_express='first: 201 {"id":1,"item":"book"}
retry: 201 (replayed) {"id":1,"item":"book"}
same key, other item: 422 urn:seawall:problem:idempotency-key-reused
no key: 400 urn:seawall:problem:idempotency-key-missing
3 racing requests: 1 distinct response, orders created: 2
client budget 50 ms, 200 ms of work: 504 urn:seawall:problem:deadline-exceeded
its retry, once done: 201 (replayed) {"id":3,"item":"desk"}'
expected_observability='/health: 200 ok
event: stateChange recommendations -> open
event: rejected recommendations
event: fallback recommendations
recommendations while open: []
/health: 200 degraded
event: stateChange db -> forced_open
/health: 503 down
/metrics: 200 text/plain; version=0.0.4; charset=utf-8
  seawall_breaker_calls_total{breaker="db",outcome="success"} 1
  seawall_breaker_fallbacks_total{breaker="db"} 0
  seawall_breaker_fallbacks_total{breaker="recommendations"} 1
  seawall_health_status{status="ok"} 0
  seawall_health_status{status="degraded"} 0
  seawall_health_status{status="down"} 1'
for ex in "$repo"/examples/node/*.js; do
  name="$(basename "$ex")"
  echo "example: $name"
  # Every example must exit by itself, promptly (no timer or handle left behind).
  if ! out="$(timeout 30 node "examples/$name")"; then
    echo "examples/node/$name: failed or did not exit within 30 s" >&2
    status=1
    continue
  fi
  echo "$out"
  case "$name" in
    breaker.js) expected="$expected_breaker" ;;
    timeout.js) expected="$expected_timeout" ;;
    idempotency.js) expected="$expected_idempotency" ;;
    observability.js) expected="$expected_observability" ;;
    express.js) expected="$expected_express" ;;
    *) expected="" ;;
  esac
  if [ -n "$expected" ] && [ "$out" != "$expected" ]; then
    echo "examples/node/$name: unexpected output; expected:" >&2
    echo "$expected" >&2
    status=1
  fi
done

echo "example: demo.js"
node examples/demo.js >"$work/demo-node.txt"
cat "$work/demo-node.txt"
(cd "$repo" && cargo run -q --release -p seawall --example demo) >"$work/demo-rust.txt"
if diff -u "$work/demo-rust.txt" "$work/demo-node.txt"; then
  echo "demo.js: identical to the Rust demo"
else
  echo "examples/demo/demo.js: the transition log differs from the Rust demo's (diff above)" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "node: FAILED" >&2
  exit 1
fi
echo "node: all passed"
