'use strict';
// Panic containment: a panic armed inside the core (core/src/failpoint.rs) reaches JS as a
// thrown Error through the real entry points, never crashes the process, and leaves the
// object usable (docs/hardening.md, "Panic containment").

const test = require('node:test');
const assert = require('node:assert/strict');
const seawall = require('seawall');

const { CircuitBreaker, IdempotencyCache, ManualClock, Registry } = seawall;
const { armPanic, disarmPanics } = seawall._internal;

test.afterEach(() => disarmPanics());

test('arming an unknown site is refused', () => {
  assert.throws(() => armPanic('nowhere'), (e) => e.code === 'SEAWALL_INVALID_ARGUMENT' && /site = "nowhere"/.test(e.message));
  assert.equal(Object.keys(seawall).includes('_internal'), false);
});

test('a panic while tripping: the call rejects with SEAWALL_INTERNAL, the breaker stays closed and usable', async () => {
  const breaker = new CircuitBreaker({ consecutiveFailures: 2, clock: new ManualClock() });
  const down = async () => {
    throw new Error('down');
  };
  await assert.rejects(breaker.execute(down), /down/);
  armPanic('breaker.trip');
  await assert.rejects(breaker.execute(down), (e) => e.code === 'SEAWALL_INTERNAL' && /breaker\.trip/.test(e.message));
  assert.equal(breaker.state, 'closed');
  assert.equal(breaker.snapshot().failures, 2);
  await assert.rejects(breaker.execute(down), /down/);
  assert.equal(breaker.state, 'open');
  await assert.rejects(breaker.execute(down), (e) => e.code === 'SEAWALL_BREAKER_OPEN');
});

test('a panic in begin claims nothing', async () => {
  const cache = new IdempotencyCache();
  armPanic('idempotency.begin');
  await assert.rejects(cache.run('order-1', async () => 1), (e) => e.code === 'SEAWALL_INTERNAL');
  assert.equal(await cache.run('order-1', async () => 2), 2);
  assert.equal(await cache.run('order-1', async () => 3), 2);
});

// Methods outside the hot paths are contained by napi-rs's `catch_unwind`; the package gives
// their Error seawall's code too (containPanics in index.js).
test('a panic while rendering: prometheus() throws SEAWALL_INTERNAL, the registry stays usable', () => {
  const registry = new Registry();
  registry.breaker('db');
  armPanic('registry.render');
  assert.throws(
    () => registry.prometheus(),
    (e) => e instanceof Error && e.code === 'SEAWALL_INTERNAL' && /panic at registry\.render/.test(e.message),
  );
  assert.match(registry.prometheus(), /seawall_breaker_state\{breaker="db"/);
});
