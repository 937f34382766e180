'use strict';
// IdempotencyCache over RedisStore, against a real redis-server started here on
// 127.0.0.1 (an ephemeral port, no persistence; stopped at the end). Two caches with two
// stores stand for two processes sharing keys. Needs `redis-server` on the PATH
// (scripts/bootstrap.sh installs it).

const test = require('node:test');
const assert = require('node:assert/strict');
const { freePort, startRedis } = require('./support/redis.js');

const { IdempotencyCache, ManualClock, RedisStore, Registry } = require('seawall');

const tick = () => new Promise((r) => setImmediate(r));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let server;
let url;
let prefixes = 0;
const prefix = () => `seawall-node-test:${process.pid}:${++prefixes}:`;

test.before(async () => {
  server = await startRedis();
  url = server.url;
});

test.after(() => {
  if (server) server.stop();
});

test('RedisStore: options through the core, ping, stats', async () => {
  const store = new RedisStore({ url, prefix: prefix(), commandTimeout: 500 });
  assert.equal(store.kind, 'redis');
  assert.equal(store.url, url);
  const ms = await store.ping();
  assert.equal(typeof ms, 'number');
  assert.ok(ms >= 0 && ms < 1000, `ping took ${ms} ms`);
  assert.ok(store.stats().connected);
  assert.throws(() => new RedisStore({ prefix: 'app:{x}:' }), (e) => e.code === 'SEAWALL_CONFIG' && e.field === 'prefix');
  assert.throws(() => new RedisStore({ url: 'rediss://h:6379' }), (e) => e.code === 'SEAWALL_CONFIG' && e.field === 'url');
  assert.throws(() => new RedisStore({ commandTimeout: -1 }), (e) => e.field === 'commandTimeout' && e.value === '-1ms');
  assert.throws(() => new RedisStore({ tls: true }), (e) => e.field === 'tls' && /unknown option/.test(e.message));
  assert.throws(() => new IdempotencyCache({ store, maxEntries: 5 }), (e) => e.field === 'maxEntries' && /redis store was passed in/.test(e.message));
});

test('two caches sharing Redis (two processes): once per key, replay, mismatch; calls leave the event loop', async () => {
  const p = prefix();
  const a = new IdempotencyCache({ store: new RedisStore({ url, prefix: p }), name: 'a' });
  const b = new IdempotencyCache({ store: new RedisStore({ url, prefix: p }), name: 'b' });
  let runs = 0;
  let ranSync = true;
  const first = a.run('charge-1', async () => {
    runs++;
    return { id: 'ch_1', amount: 100 };
  }, { fingerprint: { amount: 100 } });
  ranSync = runs === 1;
  assert.equal(ranSync, false, 'fn is not called synchronously: the claim goes to Redis off the event loop');
  assert.deepEqual(await first, { id: 'ch_1', amount: 100 });
  assert.deepEqual(await b.run('charge-1', () => ++runs, { fingerprint: { amount: 100 } }), { id: 'ch_1', amount: 100 });
  await assert.rejects(b.run('charge-1', () => ++runs, { fingerprint: { amount: 5 } }), { code: 'SEAWALL_IDEMPOTENCY_MISMATCH' });
  assert.equal(runs, 1);
  // Buffers and errors (released by default: the retry runs).
  assert.deepEqual([...(await a.run('bytes', () => Buffer.from([1, 2])))], [1, 2]);
  assert.deepEqual([...(await b.run('bytes', () => null))], [1, 2]);
  await assert.rejects(a.run('err', () => {
    throw new Error('declined');
  }), /declined/);
  assert.equal(await b.run('err', () => 'retried'), 'retried');
  assert.equal(b.peek('err').state, 'completed');
  assert.equal(a.stats().executed, 3);
});

test('200 concurrent promises over two caches sharing Redis: each key runs once, waiters woken by pub/sub', async () => {
  const p = prefix();
  const a = new IdempotencyCache({ store: new RedisStore({ url, prefix: p }) });
  const b = new IdempotencyCache({ store: new RedisStore({ url, prefix: p }) });
  const runs = new Map();
  const calls = [];
  for (let i = 0; i < 200; i++) {
    const key = `k${i % 10}`;
    const cache = i % 2 === 0 ? a : b;
    calls.push(
      cache.run(key, async () => {
        runs.set(key, (runs.get(key) || 0) + 1);
        await sleep(20);
        return `${key}:${Math.random()}`;
      }),
    );
  }
  const results = await Promise.all(calls);
  assert.equal(runs.size, 10);
  for (const [key, n] of runs) assert.equal(n, 1, `${key} ran once`);
  for (let i = 0; i < 200; i++) assert.equal(results[i], results[i % 10], `caller ${i} got its key's result`);
  assert.equal(a.stats().completed + b.stats().completed, 10);
  assert.equal(a.waiting + b.waiting, 0);
});

test('a crashed owner (lease left to expire, on a test clock): a duplicate in the other cache takes over', async () => {
  const clock = new ManualClock();
  const p = prefix();
  const a = new IdempotencyCache({ clock, lease: 1000, waitTimeout: 10_000, store: new RedisStore({ url, prefix: p, clock }) });
  const b = new IdempotencyCache({ clock, lease: 1000, waitTimeout: 10_000, store: new RedisStore({ url, prefix: p, clock }) });
  await assert.rejects(a.run('c', (ctx) => {
    ctx.abandon();
    throw new Error('crashed');
  }), /crashed/);
  let ran = 0;
  const dup = b.run('c', async (ctx) => {
    ran++;
    assert.equal(await ctx.renew(), 1000, 'renew goes to Redis too');
    return `took over: ${ctx.tookOver}`;
  });
  await sleep(50);
  assert.equal(ran, 0, 'waits while the abandoned lease holds');
  clock.advance(1000);
  assert.equal(await dup, 'took over: true');
  assert.equal(await a.run('c', () => 'again'), 'took over: true');
});

test('Redis down: SEAWALL_STORE_UNAVAILABLE fast, or an unprotected run with onStoreError: run', async () => {
  const port = await freePort(); // nothing listens there
  const store = new RedisStore({ url: `redis://127.0.0.1:${port}/0`, connectTimeout: 200 });
  const strict = new IdempotencyCache({ store });
  const started = Date.now();
  await assert.rejects(strict.run('k', () => 1), (e) => e.code === 'SEAWALL_STORE_UNAVAILABLE' && /unavailable/.test(e.message));
  assert.ok(Date.now() - started < 5000);
  await assert.rejects(store.ping(), { code: 'SEAWALL_STORE_UNAVAILABLE' });
  const open = new IdempotencyCache({ store, onStoreError: 'run' });
  assert.equal(await open.run('k', () => 'ran unprotected'), 'ran unprotected');
  assert.equal(open.stats().unprotected, 1);
});

test('a registry cache over Redis reports its counts', async () => {
  const registry = new Registry();
  const cache = registry.idempotencyCache('remote', { store: new RedisStore({ url, prefix: prefix() }) });
  await cache.run('x', () => 1);
  await cache.run('x', () => 2);
  const text = registry.prometheus();
  assert.ok(text.includes('seawall_idempotency_requests_total{cache="remote",result="execute"} 1\n'));
  assert.ok(text.includes('seawall_idempotency_requests_total{cache="remote",result="replay"} 1\n'));
  await tick();
});
