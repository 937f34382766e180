'use strict';
// `execute` admits a call in JS when the core's state word reads closed, and records the
// successes of such calls in batches (node/index.js, CircuitBreaker#run; docs/node.md,
// "What a call costs"). These tests check that the core decides exactly as if every call had
// its own permit: the same outcomes, in the same order, through `tryAcquire()` permits on a
// twin breaker give the same snapshots, states, rejections and events, whatever the timing
// of the flushes (none until the end, or a read at every step).

const test = require('node:test');
const assert = require('node:assert/strict');
const util = require('node:util');
const { execFileSync } = require('node:child_process');

const { CircuitBreaker, ManualClock, Registry } = require('seawall');

const CONFIGS = [
  { consecutiveFailures: 3, openDuration: 1000 },
  { failureRateThreshold: 0.5, minimumCalls: 4, windowSize: 6, openDuration: 1000, halfOpenMaxCalls: 2 },
  { failureRateThreshold: 0.4, minimumCalls: 3, windowSize: 5, consecutiveFailures: 4, openDuration: 700, halfOpenMaxCalls: 3, halfOpenSuccessThreshold: 2 },
  { window: 'time', windowDuration: 1000, windowBuckets: 4, failureRateThreshold: 0.5, minimumCalls: 3, openDuration: 500 },
];

function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

// A script: groups of calls started together and ended in a shuffled order, clock moves,
// manual transitions and reads.
function script(seed, length) {
  const r = rng(seed);
  const steps = [];
  for (let i = 0; i < length; i++) {
    const x = r();
    if (x < 0.6) {
      const k = 1 + Math.floor(r() * 5);
      const outcomes = Array.from({ length: k }, () => (r() < 0.45 ? 'fail' : r() < 0.08 ? 'ignore' : 'ok'));
      const order = outcomes.map((_, j) => j);
      for (let j = order.length - 1; j > 0; j--) {
        const m = Math.floor(r() * (j + 1));
        [order[j], order[m]] = [order[m], order[j]];
      }
      // Sometimes the state changes while the first calls run (calls of two epochs end together).
      const y = r();
      const mid = k < 2 || y < 0.5 ? undefined : y < 0.8 ? { action: 'reset' } : { advance: Math.floor(r() * 1200) };
      steps.push({ calls: outcomes, order, split: mid === undefined ? k : 1 + Math.floor(r() * (k - 1)), mid });
    } else if (x < 0.8) {
      steps.push({ advance: Math.floor(r() * 400) });
    } else if (x < 0.84) {
      steps.push({ action: r() < 0.5 ? 'reset' : r() < 0.5 ? 'forceOpen' : 'disable' });
    } else {
      steps.push({ read: true });
    }
  }
  return steps;
}

class Ignored extends Error {}
const isFailure = (e) => !(e instanceof Ignored);
const errorOf = (outcome) => (outcome === 'fail' ? new Error('fail') : new Ignored('ignored'));

const comparable = (s) => ({ ...s, name: undefined });

// What happens between the admissions of a group's first calls and the others.
function between(b, clock, mid) {
  if (mid.action) b[mid.action]();
  else clock.advance(mid.advance);
}

// A twin breaker for one script, with its state changes recorded when `listen`.
function twin(config, listen) {
  const clock = new ManualClock();
  const b = new CircuitBreaker({ ...config, name: 'twin', clock, isFailure });
  const events = [];
  if (listen) b.on('stateChange', (e) => events.push([e.from, e.to, e.at, e.reason]));
  return { b, clock, events };
}

// Plays `steps` on `b`; `calls(step)` makes a step's calls and returns what was rejected.
// What is seen: the rejections, the state and snapshot after each read, and at the end.
async function play(b, clock, steps, reads, calls) {
  const seen = [];
  for (const step of steps) {
    if (step.calls) seen.push(await calls(step));
    else if (step.advance !== undefined) clock.advance(step.advance);
    else if (step.action) b[step.action]();
    if (reads || step.read) seen.push([b.state, comparable(b.snapshot())]);
  }
  seen.push([b.state, comparable(b.snapshot())]);
  return seen;
}

// The reference: one permit per call, outcomes recorded in the order the calls end.
async function runReference(config, steps, reads) {
  const { b, clock, events } = twin(config, true);
  const seen = await play(b, clock, steps, reads, (step) => {
    const permits = step.calls.map((_, j) => {
      if (j === step.split) between(b, clock, step.mid);
      try {
        return b.tryAcquire();
      } catch (err) {
        return { rejected: [err.code, err.state, err.retryAfter] };
      }
    });
    for (const j of step.order) {
      const p = permits[j];
      if (p.rejected) continue;
      const o = step.calls[j];
      if (o === 'ok') p.success(0);
      else if (o === 'fail') p.failure(0);
      else p.ignore();
    }
    return permits.map((p) => (p.rejected ? p.rejected : null));
  });
  return { seen, events };
}

// The same through execute: admitted together, each fn ends when its turn comes.
async function runExecute(config, steps, reads, listen) {
  const { b, clock, events } = twin(config, listen);
  const seen = await play(b, clock, steps, reads, async (step) => {
    const ends = [];
    const calls = step.calls.map((o, j) => {
      if (j === step.split) between(b, clock, step.mid);
      return b.execute(
        () =>
          new Promise((resolve, reject) => {
            ends[j] = () => (o === 'ok' ? resolve(j) : reject(errorOf(o)));
          }),
      );
    });
    for (const j of step.order) if (ends[j]) ends[j]();
    const settled = await Promise.allSettled(calls);
    return settled.map((r, j) => {
      if (ends[j]) {
        if (step.calls[j] === 'ok') assert.deepEqual(r, { status: 'fulfilled', value: j });
        else assert.equal(r.status, 'rejected');
        return null;
      }
      assert.equal(r.status, 'rejected');
      return [r.reason.code, r.reason.state, r.reason.retryAfter];
    });
  });
  return { seen, events };
}

test('batched successes decide like one permit each (random scripts, every config, with and without reads and listeners)', async () => {
  let compared = 0;
  for (const [c, config] of CONFIGS.entries()) {
    for (let seed = 1; seed <= 40; seed++) {
      const steps = script(seed * 7919 + c, 40);
      for (const reads of [false, true]) {
        const want = await runReference(config, steps, reads);
        for (const listen of [false, true]) {
          const got = await runExecute(config, steps, reads, listen);
          const where = `config ${c}, seed ${seed}, reads ${reads}, listener ${listen}`;
          assert.deepEqual(got.seen, want.seen, `${where}: states, snapshots and rejections`);
          if (listen) assert.deepEqual(got.events, want.events, `${where}: events`);
          compared++;
        }
      }
    }
  }
  assert.equal(compared, CONFIGS.length * 40 * 4);
});

test("a success that trips the breaker delivers its event before the caller's await resumes", async () => {
  const clock = new ManualClock();
  const b = new CircuitBreaker({ failureRateThreshold: 0.5, minimumCalls: 4, windowSize: 10, clock });
  const events = [];
  b.on('stateChange', (e) => events.push(`${e.from}->${e.to} ${e.reason}`));
  const fail = async () => {
    throw new Error('x');
  };
  for (let i = 0; i < 2; i++) await assert.rejects(b.execute(fail));
  assert.equal(await b.execute(async () => 1), 1);
  assert.deepEqual(events, []);
  assert.equal(await b.execute(async () => 2), 2); // 2 failures in 4 calls: opens
  assert.deepEqual(events, ['closed->open failure_rate']);
});

test('without a listener, a success that trips is seen by the next read', async () => {
  const clock = new ManualClock();
  const b = new CircuitBreaker({ failureRateThreshold: 0.5, minimumCalls: 4, windowSize: 10, clock });
  for (let i = 0; i < 2; i++) await assert.rejects(b.execute(() => Promise.reject(new Error('x'))));
  await b.execute(() => 1);
  await b.execute(() => 2);
  assert.equal(b.state, 'open');
  const s = b.snapshot();
  assert.equal(s.successes, 2);
  assert.equal(s.failures, 2);
  // And a listener added now does not get the change that happened before it.
  const events = [];
  b.on('stateChange', (e) => events.push(e.to));
  clock.advance(60_000);
  assert.equal(b.state, 'half_open');
  assert.deepEqual(events, ['half_open']);
});

test('successes are recorded at the instant the calls ended: ManualClock#advance and the registry flush them first', async () => {
  const clock = new ManualClock();
  const registry = new Registry({ clock });
  const b = registry.breaker('batched', { window: 'time', windowDuration: 1000, windowBuckets: 10, minimumCalls: 1e6, failureRateThreshold: 1 });
  for (let i = 0; i < 5; i++) await b.execute(() => i);
  // The registry reads the core directly: it sees every success without a read of `b`.
  assert.equal(registry.snapshot().breakers.batched.successes, 5);
  assert.match(registry.prometheus(), /seawall_breaker_calls_total\{breaker="batched",outcome="success"\} 5/);
  for (let i = 0; i < 3; i++) await b.execute(() => i);
  clock.advance(1500); // the 3 successes belong to t=0: out of the window after this
  const s = b.snapshot();
  assert.equal(s.successes, 8);
  assert.equal(s.windowCalls, 0);
});

test('successes are recorded after the current microtasks even if nothing reads the breaker', async () => {
  const registry = new Registry();
  const b = registry.breaker('tick');
  await b.execute(() => 1);
  await new Promise((resolve) => setImmediate(resolve));
  // Read through the registry's native snapshot, after the event loop went on.
  assert.equal(registry.snapshot().breakers.tick.successes, 1);
});

test('an open rejection is an Error with the code, the properties and the message of the core, and no stack frames', async () => {
  const clock = new ManualClock();
  const b = new CircuitBreaker({ name: 'pay', consecutiveFailures: 1, openDuration: 2500, clock });
  await assert.rejects(b.execute(() => Promise.reject(new Error('down'))));
  clock.advance(1000);
  const errs = [];
  for (let i = 0; i < 3; i++) {
    try {
      await b.execute(() => 'never');
    } catch (e) {
      errs.push(e);
    }
  }
  let permitErr;
  try {
    b.tryAcquire();
  } catch (e) {
    permitErr = e;
  }
  for (const err of [...errs, permitErr]) {
    assert.ok(err instanceof Error);
    assert.ok(util.types.isNativeError(err));
    assert.equal(Object.getPrototypeOf(err), Error.prototype);
    assert.equal(err.name, 'Error');
    assert.equal(err.code, 'SEAWALL_BREAKER_OPEN');
    assert.equal(err.message, "circuit breaker 'pay' is open; retry after 1500 ms");
    assert.equal(err.state, 'open');
    assert.equal(err.retryAfter, 1500);
    assert.equal(err.breaker, 'pay');
    assert.deepEqual(Object.keys(err), ['code', 'retryAfter', 'state', 'breaker']);
    assert.equal(err.stack, `Error: ${err.message}`);
  }
  assert.notEqual(errs[0], errs[1], 'a new error per rejection');
  assert.ok(Error.stackTraceLimit > 0, 'Error.stackTraceLimit is restored');
  b.forceOpen();
  await assert.rejects(b.execute(() => 'never'), {
    code: 'SEAWALL_BREAKER_OPEN',
    state: 'forced_open',
    retryAfter: Infinity,
    message: "circuit breaker 'pay' is forced_open; calls are rejected until reset()",
  });
  clock.advance(1); // the same message is reused natively; the properties stay exact
  await assert.rejects(b.execute(() => 'never'), { state: 'forced_open', retryAfter: Infinity });
});

test('a listener that is rejected in turn does not change the error of the call that caused the event', async () => {
  const clock = new ManualClock();
  const b = new CircuitBreaker({ name: 'nested', consecutiveFailures: 1, openDuration: 1000, clock });
  const inner = [];
  b.on('rejected', () => {
    if (inner.length === 0) {
      clock.advance(400); // the nested rejection has another wait, hence another message
      inner.push(b.execute(() => 'never').catch((e) => e));
    }
  });
  await assert.rejects(b.execute(() => Promise.reject(new Error('down'))));
  const outer = await b.execute(() => 'never').catch((e) => e);
  assert.equal(outer.retryAfter, 1000);
  assert.match(outer.message, /retry after 1000 ms/);
  const nested = await inner[0];
  assert.equal(nested.retryAfter, 600);
  assert.match(nested.message, /retry after 600 ms/);
});

test('an execute rejection nobody handles is still reported as an unhandled rejection', () => {
  // In a child process: the test runner turns unhandled rejections into failures.
  const script = `
    const { CircuitBreaker } = require(${JSON.stringify(require.resolve('seawall'))});
    process.on('unhandledRejection', (reason) => { console.log('unhandled', reason.code); });
    const b = new CircuitBreaker({ consecutiveFailures: 1, openDuration: 60000 });
    b.execute(() => Promise.reject(new Error('down'))).catch(() => {
      b.execute(() => 'never'); // no handler, ever
      const late = b.execute(() => 'never');
      setTimeout(() => late.catch(() => console.log('handled late')), 10);
    });`;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.equal(out, 'unhandled SEAWALL_BREAKER_OPEN\nunhandled SEAWALL_BREAKER_OPEN\nhandled late\n');
});
