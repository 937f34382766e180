'use strict';
// Timeouts, deadlines and cancellation in Node: every call gets a time limit, the work is
// told to stop (its AbortSignal aborts) when the limit passes, and what is left of the
// budget travels to the calls it makes.
//
// Run: node examples/node/timeout.js (with the seawall package installed)

const {
  timeout,
  withDeadline,
  currentDeadline,
  Deadline,
  CircuitBreaker,
  ManualClock,
} = require('seawall');

/** A dependency that answers after `ms`, unless its signal aborts first. */
function slowQuery(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve('rows'), ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer); // stop the work: nothing keeps running behind the caller's back
      reject(signal.reason);
    });
  });
}

async function main() {
  // 1. Real clock: a 20 ms limit on a query that would take 10 s.
  let sawAbort = false;
  try {
    await timeout(20, ({ signal }) => {
      signal.addEventListener('abort', () => (sawAbort = signal.aborted));
      return slowQuery(10_000, signal);
    });
  } catch (err) {
    console.log(`real clock: ${err.code} (${err.message}); the query saw signal.aborted = ${sawAbort}`);
  }

  // 2. The same on a ManualClock: exact and instant, for tests.
  const clock = new ManualClock();
  const call = timeout(100, ({ signal }) => slowQuery(10_000, signal), { clock });
  clock.advance(100); // the deadline passes inside advance(): the query is aborted now
  await call.catch((err) => console.log(`manual clock: ${err.code} at ${clock.now()} ms`));

  // 3. An incoming request's budget (a grpc-timeout header) is ambient: callees read what is
  //    left and pass it on, to a downstream header or to one attempt's share.
  const incoming = Deadline.fromGrpcTimeout('1S', { clock });
  await withDeadline(incoming, async () => {
    clock.advance(250); // some work
    const left = currentDeadline();
    console.log(`budget left: ${left.remainingMs()} ms, downstream grpc-timeout: ${left.toGrpcTimeout()}`);
    console.log(`one attempt may use: ${left.budget(0.4, 5)} ms`);
    // A callee's own, longer timeout is capped by the request's deadline.
    await timeout(5000, ({ deadline }) => console.log(`callee's deadline: ${deadline.remainingMs()} ms`));
  });

  // 4. A breaker with a timeout: a call that runs out is a failure and a timeout.
  const breaker = new CircuitBreaker({ name: 'reports', timeout: 50, consecutiveFailures: 2, clock });
  breaker.on('stateChange', (e) => console.log(`event: ${e.from} -> ${e.to} (${e.reason})`));
  const getReport = breaker.wrap((id, { signal }) => slowQuery(10_000, signal));
  for (let i = 0; i < 2; i++) {
    const p = getReport(i);
    clock.advance(50);
    await p.catch((err) => console.log(`report ${i}: ${err.message}`));
  }
  const s = breaker.snapshot();
  console.log(`state = ${s.state}, failures = ${s.failures}, timeouts = ${s.timeouts}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
