'use strict';
// Two services behind one key space: two Express servers, each with its own cache and its
// own RedisStore, share a real redis-server started here on 127.0.0.1 (an ephemeral port,
// no persistence; stopped at the end). A response stored by one is replayed by the other,
// byte for byte, as a Python service following docs/http.md must replay it too. Needs
// `redis-server` on the PATH (scripts/bootstrap.sh installs it).

const nodeTest = require('node:test');
const assert = require('node:assert/strict');

// Every test has a time limit: a regression that hangs a request fails instead of blocking the run.
const test = (name, fn) => nodeTest(name, { timeout: 20_000 }, fn);
test.before = nodeTest.before;
test.after = nodeTest.after;
const { startRedis } = require('./support/redis.js');

// SEAWALL_TEST_EXPRESS: another Express to test against (scripts/test-node.sh also runs Express 4).
const express = require(process.env.SEAWALL_TEST_EXPRESS || 'express');
const { IdempotencyCache, IdempotencyRecord, RedisStore } = require('seawall');
const { idempotency, idempotencyStoreKey, storedResponse } = require('seawall/express');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let server;
let url;
let prefixes = 0;
const prefix = () => `seawall-node-http-test:${process.pid}:${++prefixes}:`;

test.before(async () => {
  server = await startRedis();
  url = server.url;
});

test.after(() => {
  if (server) server.stop();
});

async function serve(t, app) {
  const s = await new Promise((resolve, reject) => {
    const x = app.listen(0, '127.0.0.1', () => resolve(x));
    x.on('error', reject);
  });
  t.after(() => {
    s.closeAllConnections();
    return new Promise((r) => s.close(r));
  });
  return `http://127.0.0.1:${s.address().port}`;
}

// One "service": its own cache over its own connection to the shared Redis.
function service(name, p, runs, delay = 0) {
  const cache = new IdempotencyCache({ name, store: new RedisStore({ url, prefix: p }) });
  const app = express();
  app.post('/payments', idempotency(cache, { identity: (req) => req.headers['x-account'] }), express.json(), async (req, res) => {
    runs.push(name);
    if (delay > 0) await sleep(delay);
    res.status(201).set('Location', `/payments/${name}-1`).set('X-Served-By', name).json({ by: name, amount: req.body.amount });
  });
  return { cache, app };
}

const pay = (base, key, amount = 100, account = 'acct_1') =>
  fetch(`${base}/payments`, {
    method: 'POST',
    headers: { 'idempotency-key': key, 'content-type': 'application/json', 'x-account': account },
    body: JSON.stringify({ amount }),
  });

test('a response stored by service A is replayed by service B (and the other way round)', async (t) => {
  const p = prefix();
  const runs = [];
  const a = service('node-a', p, runs);
  const b = service('node-b', p, runs);
  const baseA = await serve(t, a.app);
  const baseB = await serve(t, b.app);

  const first = await pay(baseA, '"pay-1"');
  assert.equal(first.status, 201);
  const firstBody = Buffer.from(await first.arrayBuffer());
  const replay = await pay(baseB, '"pay-1"');
  assert.equal(replay.status, 201);
  assert.equal(replay.headers.get('idempotent-replayed'), 'true');
  assert.equal(replay.headers.get('location'), '/payments/node-a-1');
  assert.equal(replay.headers.get('x-served-by'), null);
  assert.equal(replay.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.deepEqual(Buffer.from(await replay.arrayBuffer()), firstBody, 'the same bytes');
  assert.deepEqual(runs, ['node-a']);

  await pay(baseB, '"pay-2"', 7);
  const back = await pay(baseA, '"pay-2"', 7);
  assert.equal(back.headers.get('idempotent-replayed'), 'true');
  assert.deepEqual(await back.json(), { by: 'node-b', amount: 7 });
  assert.deepEqual(runs, ['node-a', 'node-b']);

  // Same key, other payload, on the other service: 422. Other account: its own scope.
  assert.equal((await pay(baseB, '"pay-1"', 5)).status, 422);
  const other = await pay(baseB, '"pay-1"', 100, 'acct_2');
  assert.equal(other.headers.get('idempotent-replayed'), null);
  assert.deepEqual(await other.json(), { by: 'node-b', amount: 100 });

  // What is in Redis is the record format any language reads (docs/http.md).
  const key = idempotencyStoreKey({ method: 'POST', path: '/payments', identity: 'acct_1', key: 'pay-1' });
  const peek = b.cache.peek(key);
  assert.equal(peek.state, 'completed');
  const decoded = IdempotencyRecord.decode(peek.record.encode());
  const stored = storedResponse(decoded);
  assert.equal(stored.status, 201);
  // Location, and the ETag Express computed for the body; not X-Served-By (not allow-listed).
  assert.deepEqual(
    stored.headers.map(([n]) => n),
    ['location', 'etag'],
  );
  assert.equal(stored.headers[0][1], '/payments/node-a-1');
  assert.equal(stored.contentType, 'application/json; charset=utf-8');
  assert.deepEqual(Buffer.from(stored.body), firstBody);
});

test("a duplicate on service B waits for service A's run and gets its response (woken by pub/sub)", async (t) => {
  const p = prefix();
  const runs = [];
  const a = service('node-a', p, runs, 200);
  const b = service('node-b', p, runs);
  const baseA = await serve(t, a.app);
  const baseB = await serve(t, b.app);
  const first = pay(baseA, '"race"');
  await sleep(60);
  const started = Date.now();
  const dup = await pay(baseB, '"race"');
  const waited = Date.now() - started;
  assert.equal(dup.status, 201);
  assert.equal(dup.headers.get('idempotent-replayed'), 'true');
  assert.deepEqual(await dup.json(), { by: 'node-a', amount: 100 });
  assert.ok(waited < 2000, `woken when A completed (${waited} ms), not at the lease's expiry`);
  assert.equal((await first).status, 201);
  assert.deepEqual(runs, ['node-a']);
  assert.equal(b.cache.stats().waited, 1);
});

test('a 5xx on service A releases the key in Redis: a retry on service B runs', async (t) => {
  const p = prefix();
  let fail = true;
  const cacheA = new IdempotencyCache({ store: new RedisStore({ url, prefix: p }) });
  const appA = express();
  appA.post('/payments', idempotency(cacheA), (req, res) => res.status(fail ? 502 : 201).json({ by: 'a' }));
  const runs = [];
  const b = service('node-b', p, runs);
  const baseA = await serve(t, appA);
  const baseB = await serve(t, b.app);
  const headers = { 'idempotency-key': '"k"', 'content-type': 'application/json', 'x-account': '' };
  assert.equal((await fetch(`${baseA}/payments`, { method: 'POST', headers, body: '{"amount":100}' })).status, 502);
  fail = false;
  const retry = await pay(baseB, '"k"', 100, '');
  assert.equal(retry.status, 201);
  assert.equal(retry.headers.get('idempotent-replayed'), null);
  assert.deepEqual(runs, ['node-b']);
});
