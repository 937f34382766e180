'use strict';
// The seawall demo scenario (examples/demo/README.md) from Node, on a ManualClock.
// stdout carries only the transition log and the summary, so it can be compared
// byte for byte with the Rust, C and Python programs.

const { CircuitBreaker, ManualClock, version } = require('seawall');

const clock = new ManualClock();
const breaker = new CircuitBreaker({
  name: 'inventory',
  consecutiveFailures: 3,
  openDuration: 2000,
  openDurationMax: 8000,
  backoffMultiplier: 2.0,
  halfOpenMaxCalls: 2,
  halfOpenSuccessThreshold: 2,
  clock,
});

breaker.on('stateChange', (e) => {
  process.stdout.write(`${String(e.at).padStart(6)} ms  ${e.breaker}: ${e.from} -> ${e.to} (${e.reason})\n`);
});

/** The flaky dependency: fails while t is in [2000, 5000) or [9000, 15000). */
const dependencyFails = (t) => (t >= 2000 && t < 5000) || (t >= 9000 && t < 15000);

process.stderr.write(`seawall ${version} demo (Node ${process.version}, manual clock)\n`);
for (let i = 0; i < 40; i++) {
  const t = 500 * i;
  let permit = null;
  try {
    permit = breaker.tryAcquire();
  } catch (err) {
    if (err.code !== 'SEAWALL_BREAKER_OPEN') throw err; // rejected: counted by the breaker
  }
  if (permit !== null) {
    if (dependencyFails(t)) permit.failure(10);
    else permit.success(10);
  }
  clock.advance(500);
}

const s = breaker.snapshot();
process.stdout.write(`summary: state=${s.state} successes=${s.successes} failures=${s.failures} rejected=${s.rejected}\n`);
