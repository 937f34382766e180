'use strict';
// The public JS API of the installed `seawall` package: execute/wrap/fallback/isFailure,
// errors, events, permits and clocks.

const test = require('node:test');
const assert = require('node:assert/strict');
const { setImmediate: tick } = require('node:timers/promises');

const seawall = require('seawall');
const { CircuitBreaker, ManualClock, SystemClock } = seawall;

const boom = () => {
  throw new Error('boom');
};

/** A breaker on a manual clock that opens after `n` failures. */
function opening(n = 1, extra = {}) {
  const clock = new ManualClock();
  const breaker = new CircuitBreaker({ name: 'dep', consecutiveFailures: n, openDuration: 1000, clock, ...extra });
  return { clock, breaker };
}

async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('expected the promise to reject');
}

/** Collects process warnings emitted while `fn` runs (and one tick after). */
async function warningsDuring(fn) {
  const seen = [];
  const on = (w) => seen.push(w);
  process.on('warning', on);
  try {
    await fn();
    await tick();
    await tick();
  } finally {
    process.off('warning', on);
  }
  return seen;
}

test('execute runs a sync function and resolves with its result', async () => {
  const { breaker } = opening();
  const p = breaker.execute((a, b) => a + b, 2, 3);
  assert.ok(p instanceof Promise);
  assert.equal(await p, 5);
  assert.equal(breaker.snapshot().successes, 1);
});

test('execute awaits an async function and passes its arguments', async () => {
  const { breaker } = opening();
  const seen = [];
  const result = await breaker.execute(async (...args) => {
    seen.push(...args);
    await tick();
    return 'done';
  }, 'a', 1, null);
  assert.equal(result, 'done');
  assert.deepEqual(seen, ['a', 1, null]);
  assert.equal(breaker.snapshot().successes, 1);
});

test('a sync throw becomes a rejected promise with the same error, counted as a failure', async () => {
  const { breaker } = opening(3);
  const err = new Error('sync');
  let p;
  assert.doesNotThrow(() => {
    p = breaker.execute(() => {
      throw err;
    });
  });
  assert.equal(await rejection(p), err);
  const s = breaker.snapshot();
  assert.equal(s.failures, 1);
  assert.equal(s.consecutiveFailures, 1);
});

test("errors of fn propagate unchanged (identity, non-Error values, async rejections)", async () => {
  const { breaker } = opening(10);
  const err = Object.assign(new RangeError('custom'), { code: 'E_CUSTOM', extra: 42 });
  assert.equal(await rejection(breaker.execute(async () => Promise.reject(err))), err);
  assert.equal(await rejection(breaker.execute(() => { throw 'a string'; })), 'a string');
  assert.equal(await rejection(breaker.execute(() => Promise.reject(undefined))), undefined);
  assert.equal(err.code, 'E_CUSTOM');
  assert.equal(breaker.snapshot().failures, 3);
});

test('execute resolves thenables and plain values', async () => {
  const { breaker } = opening();
  const thenable = { then: (resolve) => resolve(7) };
  assert.equal(await breaker.execute(() => thenable), 7);
  assert.equal(await breaker.execute(() => undefined), undefined);
  assert.equal(breaker.snapshot().successes, 2);
});

test('execute with a non-function rejects with a TypeError (SEAWALL_INVALID_ARGUMENT)', async () => {
  const { breaker } = opening();
  const err = await rejection(breaker.execute('nope'));
  assert.ok(err instanceof TypeError);
  assert.equal(err.code, 'SEAWALL_INVALID_ARGUMENT');
  assert.throws(() => breaker.wrap(42), { code: 'SEAWALL_INVALID_ARGUMENT' });
});

test('wrap returns a function that keeps this and arguments and returns a Promise', async () => {
  const { breaker } = opening();
  const obj = {
    factor: 10,
    scale: breaker.wrap(function scale(x) {
      return this.factor * x;
    }),
  };
  const p = obj.scale(4);
  assert.ok(p instanceof Promise);
  assert.equal(await p, 40);
  assert.equal(obj.scale.name, 'scale');
  assert.equal(breaker.snapshot().successes, 1);
});

test('an open breaker rejects with SEAWALL_BREAKER_OPEN, retryAfter in ms, state and breaker name', async () => {
  const { clock, breaker } = opening(1);
  await rejection(breaker.execute(boom));
  assert.equal(breaker.state, 'open');
  clock.advance(250);
  let called = false;
  const err = await rejection(breaker.execute(() => { called = true; }));
  assert.equal(called, false, 'fn must not run when rejected');
  assert.ok(err instanceof Error);
  assert.equal(err.code, 'SEAWALL_BREAKER_OPEN');
  assert.equal(err.retryAfter, 750);
  assert.equal(err.state, 'open');
  assert.equal(err.breaker, 'dep');
  assert.match(err.message, /dep/);
  assert.equal(breaker.snapshot().rejected, 1);
});

test('forced open rejects with retryAfter Infinity; saturated half-open with 0', async () => {
  const { clock, breaker } = opening(1);
  breaker.forceOpen();
  const forced = await rejection(breaker.execute(() => 1));
  assert.equal(forced.state, 'forced_open');
  assert.equal(forced.retryAfter, Infinity);
  assert.equal(breaker.snapshot().retryAfter, Infinity);
  breaker.reset();

  await rejection(breaker.execute(boom));
  clock.advance(1000);
  let release;
  const probe = breaker.execute(() => new Promise((r) => { release = r; }));
  assert.equal(breaker.state, 'half_open');
  const saturated = await rejection(breaker.execute(() => 1));
  assert.equal(saturated.code, 'SEAWALL_BREAKER_OPEN');
  assert.equal(saturated.state, 'half_open');
  assert.equal(saturated.retryAfter, 0);
  release('ok');
  assert.equal(await probe, 'ok');
  assert.equal(breaker.state, 'closed');
});

test('fallback is called only on rejection, with the rejection and the arguments; its result is returned', async () => {
  const calls = [];
  const { breaker } = opening(1, {
    fallback: (err, ...args) => {
      calls.push([err, args]);
      return `fallback:${args.join(',')}`;
    },
  });
  const own = new Error('own');
  assert.equal(await rejection(breaker.execute(() => { throw own; })), own, 'fn errors are not replaced');
  assert.equal(calls.length, 0, 'fallback not called for errors of fn');
  const result = await breaker.execute((x, y) => x + y, 1, 2);
  assert.equal(result, 'fallback:1,2');
  assert.equal(calls.length, 1);
  assert.equal(calls[0][0].code, 'SEAWALL_BREAKER_OPEN');
  assert.deepEqual(calls[0][1], [1, 2]);
});

test('an async fallback is awaited; a throwing fallback rejects with its error', async () => {
  const { breaker } = opening(1, { fallback: async () => 'later' });
  await rejection(breaker.execute(boom));
  assert.equal(await breaker.execute(() => 'x'), 'later');

  const fbErr = new Error('fallback failed');
  const b2 = opening(1, { fallback: () => { throw fbErr; } }).breaker;
  await rejection(b2.execute(boom));
  assert.equal(await rejection(b2.execute(() => 'x')), fbErr);
});

test('isFailure returning false ignores the outcome (counted only in ignored); the error still propagates', async () => {
  class NotFound extends Error {}
  const seen = [];
  const { breaker } = opening(2, {
    isFailure: (e) => {
      seen.push(e);
      return !(e instanceof NotFound);
    },
  });
  for (let i = 0; i < 5; i++) {
    const e = new NotFound('404');
    assert.equal(await rejection(breaker.execute(async () => { throw e; })), e);
  }
  let s = breaker.snapshot();
  assert.equal(s.state, 'closed');
  assert.equal(s.ignored, 5);
  assert.equal(s.failures, 0);
  assert.equal(s.consecutiveFailures, 0);
  assert.equal(seen.length, 5);
  await rejection(breaker.execute(boom));
  await rejection(breaker.execute(boom));
  s = breaker.snapshot();
  assert.equal(s.failures, 2);
  assert.equal(s.state, 'open');
  assert.equal(seen.length, 7);
});

test('isFailure is not called on success', async () => {
  let calls = 0;
  const { breaker } = opening(1, { isFailure: () => { calls++; return true; } });
  await breaker.execute(() => 1);
  assert.equal(calls, 0);
});

test('an isFailure that throws counts the call as a failure and rejects with its error', async () => {
  const bug = new Error('classifier bug');
  const { breaker } = opening(5, { isFailure: () => { throw bug; } });
  assert.equal(await rejection(breaker.execute(boom)), bug);
  assert.equal(await rejection(breaker.execute(async () => { throw new Error('x'); })), bug);
  assert.equal(breaker.snapshot().failures, 2);
});

test("an error with code 'SEAWALL_TIMEOUT' counts as a failure and a timeout", async () => {
  const { breaker } = opening(5);
  const t = Object.assign(new Error('late'), { code: 'SEAWALL_TIMEOUT' });
  assert.equal(await rejection(breaker.execute(() => { throw t; })), t);
  const s = breaker.snapshot();
  assert.equal(s.failures, 1);
  assert.equal(s.timeouts, 1);
});

test('durations are measured on the breaker clock: advancing it inside fn makes the call slow', async () => {
  const clock = new ManualClock();
  const breaker = new CircuitBreaker({
    name: 'slow', clock, slowCallDuration: 100, slowCallRateThreshold: 0.5, minimumCalls: 2, windowSize: 2,
  });
  await breaker.execute(() => { clock.advance(150); });
  await breaker.execute(async () => { await tick(); clock.advance(99); });
  let s = breaker.snapshot();
  assert.equal(s.slow, 1);
  assert.equal(s.state, 'open', 'slow-call rate 1/2 reached the threshold');
  assert.equal(s.slowCallRate, 0.5);
  // Without a slow-call threshold nothing is timed, so nothing is ever slow.
  const plain = new CircuitBreaker({ clock });
  await plain.execute(() => { clock.advance(10_000); });
  s = plain.snapshot();
  assert.equal(s.slow, 0);
  assert.equal(s.successes, 1);
});

test("'stateChange' events are delivered in order, before the call returns", async () => {
  const { clock, breaker } = opening(2, { halfOpenMaxCalls: 1 });
  const events = [];
  breaker.on('stateChange', (e) => events.push(e));
  await rejection(breaker.execute(boom));
  assert.equal(events.length, 0);
  const p = breaker.execute(boom);
  assert.equal(events.length, 1, 'delivered before execute returned');
  await rejection(p);
  clock.advance(1000);
  assert.equal(breaker.state, 'half_open');
  await breaker.execute(() => 'ok');
  breaker.forceOpen();
  breaker.disable();
  breaker.reset();
  breaker.reset(); // no change, no event
  assert.deepEqual(
    events.map((e) => [e.from, e.to, e.at, e.reason, e.breaker]),
    [
      ['closed', 'open', 0, 'consecutive_failures', 'dep'],
      ['open', 'half_open', 1000, 'open_duration_elapsed', 'dep'],
      ['half_open', 'closed', 1000, 'probe_successes', 'dep'],
      ['closed', 'forced_open', 1000, 'force_open', 'dep'],
      ['forced_open', 'disabled', 1000, 'disable', 'dep'],
      ['disabled', 'closed', 1000, 'reset', 'dep'],
    ],
  );
});

test('a listener that calls back into the breaker keeps every listener seeing events in order', async () => {
  const { breaker } = opening(1);
  const first = [];
  const second = [];
  breaker.on('stateChange', (e) => {
    first.push(`${e.from}->${e.to}`);
    if (e.to === 'open') breaker.forceOpen(); // a transition from inside a listener
  });
  breaker.on('stateChange', (e) => second.push(`${e.from}->${e.to}`));
  await rejection(breaker.execute(boom));
  assert.deepEqual(first, ['closed->open', 'open->forced_open']);
  assert.deepEqual(second, ['closed->open', 'open->forced_open']);
  assert.equal(breaker.state, 'forced_open');
});

test('once and off work for stateChange', async () => {
  const { breaker } = opening(1);
  let onceCalls = 0;
  let offCalls = 0;
  const off = () => offCalls++;
  breaker.once('stateChange', () => onceCalls++);
  breaker.on('stateChange', off);
  breaker.off('stateChange', off);
  breaker.forceOpen();
  breaker.reset();
  assert.equal(onceCalls, 1);
  assert.equal(offCalls, 0);
  assert.equal(breaker.listenerCount('stateChange'), 0);
});

test("a listener that throws is reported as a warning and skipped; the breaker goes on", async () => {
  const { clock, breaker } = opening(1);
  const delivered = [];
  breaker.on('stateChange', () => {
    throw new Error('listener bug');
  });
  breaker.on('stateChange', (e) => delivered.push(e.to));
  breaker.on('stateChange', async () => {
    throw new Error('async listener bug');
  });
  const warnings = await warningsDuring(async () => {
    await rejection(breaker.execute(boom));
    clock.advance(1000);
    assert.equal(await breaker.execute(() => 'fine'), 'fine');
  });
  assert.deepEqual(delivered, ['open', 'half_open', 'closed']);
  assert.equal(breaker.state, 'closed');
  const ours = warnings.filter((w) => w.code === 'SEAWALL_LISTENER_ERROR');
  assert.equal(ours.length, 6, 'one warning per throwing listener per event');
  assert.match(ours[0].message, /dep/);
  assert.ok(ours.some((w) => /async listener bug/.test(w.detail)));
});

test('tryAcquire gives a permit; outcomes are recorded once; a second one is SEAWALL_PERMIT_CONSUMED', () => {
  const { breaker } = opening(1);
  const p = breaker.tryAcquire();
  assert.equal(p.done, false);
  assert.equal(p.isProbe, false);
  p.success(5);
  assert.equal(p.done, true);
  for (const again of [() => p.success(), () => p.failure(1), () => p.timeout(1), () => p.ignore(), () => p.cancel()]) {
    assert.throws(again, (e) => e.code === 'SEAWALL_PERMIT_CONSUMED' && e instanceof Error);
  }
  const c = breaker.tryAcquire();
  c.cancel();
  assert.throws(() => c.success(), { code: 'SEAWALL_PERMIT_CONSUMED' });
  assert.equal(breaker.snapshot().successes, 1);
  assert.equal(breaker.state, 'closed');
});

test('tryAcquire throws the rejection when the breaker refuses; permit failure opens it', () => {
  const { breaker } = opening(1);
  const events = [];
  breaker.on('stateChange', (e) => events.push(e.to));
  breaker.tryAcquire().failure(1);
  assert.deepEqual(events, ['open']);
  assert.throws(() => breaker.tryAcquire(), (e) => e.code === 'SEAWALL_BREAKER_OPEN' && e.retryAfter === 1000);
});

test('a permit without a duration is timed on the breaker clock when the breaker needs durations', () => {
  const clock = new ManualClock();
  const breaker = new CircuitBreaker({ clock, slowCallDuration: 50, failureRateThreshold: 1 });
  const p = breaker.tryAcquire();
  clock.advance(60);
  p.success();
  assert.equal(breaker.snapshot().slow, 1);
  const q = breaker.tryAcquire();
  q.success(10);
  assert.equal(breaker.snapshot().slow, 1);
});

test('permit durations must be finite, non-negative numbers', () => {
  const { breaker } = opening(1);
  const p = breaker.tryAcquire();
  // Numbers out of range are RangeErrors, other types TypeErrors; the core's message names
  // the argument and the value.
  for (const [bad, Type, text] of [[-1, RangeError, 'ms = -1ms'], [NaN, RangeError, 'ms = NaNms'], [Infinity, RangeError, 'ms = Infinityms'], ['5', TypeError, 'ms = "5"']]) {
    assert.throws(
      () => p.success(bad),
      (e) => e instanceof Type && e.code === 'SEAWALL_INVALID_ARGUMENT' && e.message.includes(text),
      String(bad),
    );
  }
  assert.equal(p.done, false, 'a refused duration records nothing');
  p.success(0);
});

test('ManualClock starts at 0 and moves only on advance; bad advances are refused', () => {
  const clock = new ManualClock();
  assert.equal(clock.now(), 0);
  clock.advance(1.5);
  clock.advance(1000);
  assert.equal(clock.now(), 1001.5);
  for (const [bad, Type] of [[-1, RangeError], [NaN, RangeError], [Infinity, RangeError], ['x', TypeError], [undefined, TypeError]]) {
    assert.throws(
      () => clock.advance(bad),
      (e) => e instanceof Type && e.code === 'SEAWALL_INVALID_ARGUMENT' && e.message.includes('ms = '),
      String(bad),
    );
  }
  assert.equal(clock.now(), 1001.5);
});

test('SystemClock is monotonic and the default clock', async () => {
  const c = new SystemClock();
  const a = c.now();
  await new Promise((r) => setTimeout(r, 5));
  const b = c.now();
  assert.ok(b >= a + 4, `${b} >= ${a} + 4`);
  const breaker = new CircuitBreaker();
  assert.ok(breaker.clock instanceof SystemClock);
  assert.equal(breaker.name, '');
  assert.equal(breaker.state, 'closed');
  const manual = new ManualClock();
  assert.equal(new CircuitBreaker({ clock: manual }).clock, manual);
  assert.ok(new CircuitBreaker({ clock: c }).clock === c);
});

test('default breaker opens after 5 consecutive failures; snapshot has every field', async () => {
  const breaker = new CircuitBreaker({ name: 'defaults', clock: new ManualClock() });
  for (let i = 0; i < 4; i++) await rejection(breaker.execute(boom));
  assert.equal(breaker.state, 'closed');
  await rejection(breaker.execute(boom));
  assert.equal(breaker.state, 'open');
  const s = breaker.snapshot();
  assert.deepEqual(Object.keys(s).sort(), [
    'consecutiveFailures', 'critical', 'failureRate', 'failures', 'fallbacks', 'halfOpenInFlight', 'ignored', 'name',
    'rejected', 'retryAfter', 'slow', 'slowCallRate', 'state', 'successes', 'timeouts', 'windowCalls',
  ]);
  assert.equal(s.critical, true, 'breakers are critical by default');
  assert.equal(s.fallbacks, 0);
  assert.equal(s.retryAfter, 30_000);
  assert.equal(s.name, 'defaults');
});

test('disable admits everything; forceOpen rejects everything until reset', async () => {
  const { breaker } = opening(1);
  breaker.disable();
  for (let i = 0; i < 3; i++) await rejection(breaker.execute(boom));
  assert.equal(breaker.state, 'disabled');
  assert.equal(breaker.snapshot().failures, 3);
  breaker.forceOpen();
  assert.equal((await rejection(breaker.execute(() => 1))).code, 'SEAWALL_BREAKER_OPEN');
  breaker.reset();
  assert.equal(await breaker.execute(() => 1), 1);
});

test('many concurrent async calls are each recorded once', async () => {
  const breaker = new CircuitBreaker({ failureRateThreshold: 0.9, minimumCalls: 1000, windowSize: 1000 });
  const calls = [];
  for (let i = 0; i < 500; i++) {
    calls.push(breaker.execute(async (n) => { await tick(); if (n % 2) throw new Error('odd'); return n; }, i));
  }
  const results = await Promise.allSettled(calls);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 250);
  const s = breaker.snapshot();
  assert.equal(s.successes, 250);
  assert.equal(s.failures, 250);
  assert.equal(s.windowCalls, 500);
  assert.equal(s.failureRate, 0.5);
});

test('a panic inside the core is an Error (SEAWALL_INTERNAL), never a crash', async () => {
  // Re-opening with an open duration near Duration::MAX once panicked in the core's
  // backoff arithmetic (now saturating). Should any panic happen, the addon must turn it
  // into an error and the process must live.
  const huge = 1.8e22; // ms, close to u64::MAX seconds
  const states = ['closed', 'open', 'half_open', 'forced_open', 'disabled'];
  for (const via of ['permit', 'execute']) {
    const clock = new ManualClock();
    const b = new CircuitBreaker({ consecutiveFailures: 1, openDuration: huge, openDurationMax: huge, backoffMultiplier: 2, clock });
    await rejection(b.execute(boom));
    clock.advance(huge);
    let err = null;
    try {
      if (via === 'permit') b.tryAcquire().failure(1);
      else await b.execute(boom);
    } catch (e) {
      err = e;
    }
    if (err !== null && err.message !== 'boom') {
      assert.equal(err.code, 'SEAWALL_INTERNAL', `${via}: ${err.message}`);
      assert.match(err.message, /panic/);
    }
    assert.ok(states.includes(b.state), `${via}: the breaker still answers`);
    assert.equal(typeof b.snapshot().failures, 'number');
  }
});
