'use strict';
// seawall/express idempotency(): every answer of the middleware, through a real Express
// server on 127.0.0.1 and real HTTP requests (global fetch). Needs `express` installed next
// to the package (scripts/test-node.sh installs a pinned version).

const nodeTest = require('node:test');
const assert = require('node:assert/strict');

// Every test has a time limit: a regression that hangs a request fails instead of blocking the run.
const test = (name, fn) => nodeTest(name, { timeout: 20_000 }, fn);
test.before = nodeTest.before;
test.after = nodeTest.after;
const net = require('node:net');

// SEAWALL_TEST_EXPRESS: another Express to test against (scripts/test-node.sh also runs Express 4).
const express = require(process.env.SEAWALL_TEST_EXPRESS || 'express');
const { IdempotencyCache, MemoryStore, RedisStore } = require('seawall');
const { idempotency, deadlines, idempotencyStoreKey, PROBLEM_TYPE, DEFAULT_REPLAY_HEADERS } = require('seawall/express');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Serves `app` on 127.0.0.1 (an ephemeral port); returns its base URL. Closed after the test. */
async function serve(t, app) {
  const server = await new Promise((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
  t.after(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  return `http://127.0.0.1:${server.address().port}`;
}

function post(url, { key, body = { amount: 100 }, headers = {}, method = 'POST', raw } = {}) {
  const h = { 'content-type': 'application/json', ...headers };
  if (key !== undefined) h['idempotency-key'] = key;
  return fetch(url, { method, headers: h, body: raw !== undefined ? raw : method === 'GET' ? undefined : JSON.stringify(body) });
}

async function problem(res, status, slug) {
  assert.equal(res.status, status, `status of ${res.url}`);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  assert.equal(res.headers.get('cache-control'), 'no-store');
  const p = await res.json();
  assert.equal(p.type, `${PROBLEM_TYPE}${slug}`);
  assert.equal(p.status, status);
  assert.equal(typeof p.title, 'string');
  assert.equal(typeof p.detail, 'string');
  assert.ok(p.detail.length > 0);
  return p;
}

// An orders service: creates an order per request (counting the runs), with headers that
// must and must not be replayed.
function ordersApp(cache, options, route) {
  const app = express();
  const state = { runs: 0 };
  app.post(
    '/orders',
    idempotency(cache, options),
    express.json(),
    route ??
      ((req, res) => {
        state.runs++;
        res.status(201);
        res.set('Location', `/orders/${state.runs}`);
        res.set('ETag', `"v${state.runs}"`);
        res.set('X-Internal', 'not replayed');
        res.cookie('session', 'secret');
        res.json({ id: state.runs, amount: req.body.amount });
      }),
  );
  return { app, state };
}

test('first request runs and is stored; a retry replays status, allow-listed headers and body with Idempotent-Replayed', async (t) => {
  const cache = new IdempotencyCache({ name: 'orders' });
  const { app, state } = ordersApp(cache);
  const url = `${await serve(t, app)}/orders`;

  const first = await post(url, { key: '"order-1"' });
  assert.equal(first.status, 201);
  assert.equal(first.headers.get('idempotent-replayed'), null);
  assert.equal(first.headers.get('location'), '/orders/1');
  assert.equal(first.headers.get('x-internal'), 'not replayed', "the first response is the route's, untouched");
  assert.match(first.headers.get('set-cookie'), /^session=secret/);
  assert.deepEqual(await first.json(), { id: 1, amount: 100 });

  const again = await post(url, { key: '"order-1"' });
  assert.equal(again.status, 201);
  assert.equal(again.headers.get('idempotent-replayed'), 'true');
  assert.equal(again.headers.get('location'), '/orders/1');
  assert.equal(again.headers.get('etag'), '"v1"');
  assert.equal(again.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.equal(again.headers.get('x-internal'), null, 'headers outside the allow-list are not replayed');
  assert.equal(again.headers.get('set-cookie'), null, 'cookies are never stored');
  assert.deepEqual(await again.json(), { id: 1, amount: 100 });
  assert.equal(state.runs, 1);

  // Another key is another operation.
  const other = await post(url, { key: '"order-2"' });
  assert.equal(other.status, 201);
  assert.deepEqual(await other.json(), { id: 2, amount: 100 });
  assert.equal(state.runs, 2);
  assert.equal(cache.stats().replayed, 1);
});

test('the stored record: body bytes, content type and metadata seawall-http/status/h:<name> (docs/http.md)', async (t) => {
  const cache = new IdempotencyCache();
  const { app } = ordersApp(cache);
  const url = `${await serve(t, app)}/orders`;
  await (await post(url, { key: '"layout"' })).arrayBuffer();
  const storeKey = idempotencyStoreKey({ method: 'POST', path: '/orders', key: 'layout' });
  assert.match(storeKey, /^http:[0-9a-f]{64}$/);
  const peek = cache.peek(storeKey);
  assert.equal(peek.state, 'completed');
  const r = peek.record;
  assert.equal(r.contentType, 'application/json; charset=utf-8');
  assert.equal(Buffer.from(r.result).toString(), '{"id":1,"amount":100}');
  assert.deepEqual(r.metadata, [
    ['seawall-http', '1'],
    ['status', '201'],
    ['h:location', '/orders/1'],
    ['h:etag', '"v1"'],
  ]);
  assert.equal(r.error, false);
  assert.match(r.fingerprint, /^[0-9a-f]{64}$/);
});

test('400 for a malformed, empty or over-long key; parameters are accepted; 255 bytes is fine', async (t) => {
  const cache = new IdempotencyCache();
  const { app, state } = ordersApp(cache);
  const url = `${await serve(t, app)}/orders`;
  for (const key of [
    'order-1',
    '"unterminated',
    '"a"b',
    '"bad \\escape"',
    '""',
    `"${'k'.repeat(256)}"`,
    '"a", "b"',
    '?1',
    'x y',
  ]) {
    const p = await problem(await post(url, { key }), 400, 'idempotency-key-invalid');
    assert.match(p.detail, /^Idempotency-Key: /, key);
  }
  // Two header lines are two keys: refused.
  const two = await fetch(url, {
    method: 'POST',
    headers: [
      ['idempotency-key', '"a"'],
      ['idempotency-key', '"b"'],
      ['content-type', 'application/json'],
    ],
    body: '{}',
  });
  await problem(two, 400, 'idempotency-key-invalid');
  const long = await problem(await post(url, { key: `"${'k'.repeat(256)}"` }), 400, 'idempotency-key-invalid');
  assert.match(long.detail, /256 bytes long; a key is 1 to 255 bytes/);
  assert.equal(state.runs, 0, 'the route never ran');

  assert.equal((await post(url, { key: `"${'k'.repeat(255)}"` })).status, 201);
  assert.equal((await post(url, { key: '"with-params";v=1;ttl=?0' })).status, 201);
  assert.equal((await post(url, { key: '  "spaces-around"  ' })).status, 201);
  const escaped = await post(url, { key: '"q\\"uote"' });
  assert.equal(escaped.status, 201);
  assert.equal(state.runs, 4);
  // The escape is decoded: "q\"uote" is the key q"uote.
  assert.equal(cache.peek(idempotencyStoreKey({ method: 'POST', path: '/orders', key: 'q"uote' })).state, 'completed');
});

test('allowUnquotedKey accepts a bare key as many clients send it; the quoted form is the same key', async (t) => {
  const cache = new IdempotencyCache();
  const { app, state } = ordersApp(cache, { allowUnquotedKey: true });
  const url = `${await serve(t, app)}/orders`;
  assert.equal((await post(url, { key: '8e03978e-40d5-43e8-bc93-6894a57f9324' })).status, 201);
  const again = await post(url, { key: '"8e03978e-40d5-43e8-bc93-6894a57f9324"' });
  assert.equal(again.headers.get('idempotent-replayed'), 'true');
  await problem(await post(url, { key: 'a"b' }), 400, 'idempotency-key-invalid');
  assert.equal(state.runs, 1);
});

test('a missing key: passes through unprotected by default, 400 with required: true', async (t) => {
  const optional = ordersApp(new IdempotencyCache());
  const url1 = `${await serve(t, optional.app)}/orders`;
  assert.equal((await post(url1)).status, 201);
  assert.equal((await post(url1)).status, 201);
  assert.equal(optional.state.runs, 2, 'no key: no protection, the route runs each time');

  const req = ordersApp(new IdempotencyCache(), { required: true });
  const url2 = `${await serve(t, req.app)}/orders`;
  const p = await problem(await post(url2), 400, 'idempotency-key-missing');
  assert.match(p.detail, /POST requests to this endpoint need an Idempotency-Key header/);
  assert.equal(req.state.runs, 0);
  assert.equal((await post(url2, { key: '"k"' })).status, 201);
});

test('methods not covered pass through; methods can be configured', async (t) => {
  const cache = new IdempotencyCache();
  const app = express();
  let runs = 0;
  const guard = idempotency(cache, { required: true });
  app.get('/thing', guard, (req, res) => res.json({ run: ++runs }));
  app.put('/thing', guard, (req, res) => res.json({ run: ++runs }));
  app.patch('/thing', guard, (req, res) => res.json({ run: ++runs }));
  app.put('/put-covered', idempotency(cache, { methods: ['put'] }), (req, res) => res.json({ run: ++runs }));
  const base = await serve(t, app);
  assert.deepEqual(await (await post(`${base}/thing`, { method: 'GET', key: '"g"' })).json(), { run: 1 });
  assert.deepEqual(await (await post(`${base}/thing`, { method: 'GET', key: '"g"' })).json(), { run: 2 });
  assert.deepEqual(await (await post(`${base}/thing`, { method: 'PUT', key: '"p"' })).json(), { run: 3 });
  assert.deepEqual(await (await post(`${base}/thing`, { method: 'PUT', key: '"p"' })).json(), { run: 4 });
  await problem(await post(`${base}/thing`, { method: 'PATCH' }), 400, 'idempotency-key-missing');
  assert.deepEqual(await (await post(`${base}/thing`, { method: 'PATCH', key: '"p"' })).json(), { run: 5 });
  assert.deepEqual(await (await post(`${base}/thing`, { method: 'PATCH', key: '"p"' })).json(), { run: 5 });
  assert.deepEqual(await (await post(`${base}/put-covered`, { method: 'PUT', key: '"p"' })).json(), { run: 6 });
  const replay = await post(`${base}/put-covered`, { method: 'PUT', key: '"p"' });
  assert.equal(replay.headers.get('idempotent-replayed'), 'true');
  assert.deepEqual(await replay.json(), { run: 6 });
});

test('422 when the key is reused with another body, query string or fingerprint header', async (t) => {
  const cache = new IdempotencyCache();
  const app = express();
  let runs = 0;
  app.post('/pay', idempotency(cache, { fingerprintHeaders: ['X-Account'] }), express.json(), (req, res) =>
    res.json({ run: ++runs }),
  );
  const base = await serve(t, app);
  const headers = { 'x-account': 'acct_1' };
  assert.equal((await post(`${base}/pay?currency=eur`, { key: '"k"', headers })).status, 200);
  await problem(
    await post(`${base}/pay?currency=eur`, { key: '"k"', headers, body: { amount: 5 } }),
    422,
    'idempotency-key-reused',
  );
  await problem(await post(`${base}/pay?currency=usd`, { key: '"k"', headers }), 422, 'idempotency-key-reused');
  await problem(
    await post(`${base}/pay?currency=eur`, { key: '"k"', headers: { 'x-account': 'acct_2' } }),
    422,
    'idempotency-key-reused',
  );
  await problem(await post(`${base}/pay?currency=eur`, { key: '"k"' }), 422, 'idempotency-key-reused');
  // The body bytes count, not their meaning: other whitespace is another payload.
  await problem(
    await post(`${base}/pay?currency=eur`, { key: '"k"', headers, raw: '{ "amount": 100 }' }),
    422,
    'idempotency-key-reused',
  );
  const same = await post(`${base}/pay?currency=eur`, { key: '"k"', headers });
  assert.equal(same.headers.get('idempotent-replayed'), 'true');
  assert.equal(runs, 1);
  assert.equal(cache.stats().mismatched, 5);
});

test('the key is scoped by method and path: the same key on another endpoint is another operation', async (t) => {
  const cache = new IdempotencyCache();
  const app = express();
  let runs = 0;
  app.use(idempotency(cache, { methods: ['POST', 'PUT'] }));
  app.post('/a', (req, res) => res.json({ at: 'a', run: ++runs }));
  app.post('/b', (req, res) => res.json({ at: 'b', run: ++runs }));
  app.put('/a', (req, res) => res.json({ at: 'put a', run: ++runs }));
  const base = await serve(t, app);
  assert.deepEqual(await (await post(`${base}/a`, { key: '"same"' })).json(), { at: 'a', run: 1 });
  assert.deepEqual(await (await post(`${base}/b`, { key: '"same"' })).json(), { at: 'b', run: 2 });
  assert.deepEqual(await (await post(`${base}/a`, { key: '"same"', method: 'PUT' })).json(), { at: 'put a', run: 3 });
  assert.deepEqual(await (await post(`${base}/a`, { key: '"same"' })).json(), { at: 'a', run: 1 });
});

test("identity scoping: one caller cannot replay another caller's response", async (t) => {
  const cache = new IdempotencyCache();
  const app = express();
  let runs = 0;
  // identity may be async (a token lookup, say).
  app.post('/charges', idempotency(cache, { identity: async (req) => req.headers['x-user'] }), (req, res) =>
    res.json({ user: req.headers['x-user'], run: ++runs }),
  );
  const base = await serve(t, app);
  const as = (user) => post(`${base}/charges`, { key: '"guessable-key"', headers: { 'x-user': user } });
  assert.deepEqual(await (await as('alice')).json(), { user: 'alice', run: 1 });
  const bob = await as('bob');
  assert.equal(bob.headers.get('idempotent-replayed'), null);
  assert.deepEqual(await bob.json(), { user: 'bob', run: 2 }, "bob's request ran: alice's response is not his");
  const alice = await as('alice');
  assert.equal(alice.headers.get('idempotent-replayed'), 'true');
  assert.deepEqual(await alice.json(), { user: 'alice', run: 1 });
  const stored = cache.peek(idempotencyStoreKey({ method: 'POST', path: '/charges', identity: 'bob', key: 'guessable-key' }));
  assert.equal(stored.state, 'completed');
});

test('an identity function that returns a non-string is a server error, not a shared scope', async (t) => {
  const cache = new IdempotencyCache();
  const app = express();
  app.post('/x', idempotency(cache, { identity: () => 42 }), (req, res) => res.json({}));
  app.use((err, req, res, next) => res.status(500).json({ error: err.message }));
  const base = await serve(t, app);
  const res = await post(`${base}/x`, { key: '"k"' });
  assert.equal(res.status, 500);
  assert.match((await res.json()).error, /identity\(req\) must return a string/);
});

test('a configured allow-list replaces the default one', async (t) => {
  const cache = new IdempotencyCache();
  const app = express();
  app.post('/x', idempotency(cache, { replayHeaders: ['X-Order-Id', 'set-cookie'] }), (req, res) => {
    res.set('X-Order-Id', 'o1');
    res.set('Location', '/x/o1');
    res.append('Set-Cookie', ['a=1', 'b=2']);
    res.status(201).send('created');
  });
  const base = await serve(t, app);
  await (await post(`${base}/x`, { key: '"k"' })).arrayBuffer();
  const again = await post(`${base}/x`, { key: '"k"' });
  assert.equal(again.status, 201);
  assert.equal(again.headers.get('x-order-id'), 'o1');
  assert.equal(again.headers.get('location'), null);
  assert.deepEqual(again.headers.getSetCookie(), ['a=1', 'b=2'], 'multi-valued headers keep every value, in order');
  assert.equal(again.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(await again.text(), 'created');
  assert.ok(DEFAULT_REPLAY_HEADERS.includes('location'));
  assert.throws(
    () => idempotency(cache, { replayHeaders: ['Content-Length'] }),
    (e) => e.code === 'SEAWALL_CONFIG' && e.field === 'replayHeaders',
  );
});

test('409 with Retry-After while in progress (onDuplicate: reject); afterwards the result replays', async (t) => {
  const cache = new IdempotencyCache({ lease: 10_000 });
  let release;
  const gate = new Promise((r) => (release = r));
  let runs = 0;
  const { app } = ordersApp(cache, { onDuplicate: 'reject' }, async (req, res) => {
    runs++;
    await gate;
    res.status(201).json({ ok: true });
  });
  const url = `${await serve(t, app)}/orders`;
  const first = post(url, { key: '"slow"' });
  while (cache.peek(idempotencyStoreKey({ method: 'POST', path: '/orders', key: 'slow' })).state !== 'in_progress')
    await sleep(5);
  const dup = await post(url, { key: '"slow"' });
  const p = await problem(dup, 409, 'idempotency-key-in-progress');
  assert.match(p.detail, /still being processed/);
  const retryAfter = Number(dup.headers.get('retry-after'));
  assert.ok(retryAfter >= 1 && retryAfter <= 10, `Retry-After ${retryAfter} s (the owner's lease)`);
  release();
  assert.equal((await first).status, 201);
  const after = await post(url, { key: '"slow"' });
  assert.equal(after.headers.get('idempotent-replayed'), 'true');
  assert.equal(runs, 1);
});

test('a cache configured to reject answers 409 without the option too', async (t) => {
  const cache = new IdempotencyCache({ onDuplicate: 'reject' });
  let release;
  const gate = new Promise((r) => (release = r));
  const { app } = ordersApp(cache, undefined, async (req, res) => {
    await gate;
    res.json({});
  });
  const url = `${await serve(t, app)}/orders`;
  const first = post(url, { key: '"k"' });
  while (
    cache.waiting === 0 &&
    cache.peek(idempotencyStoreKey({ method: 'POST', path: '/orders', key: 'k' })).state !== 'in_progress'
  )
    await sleep(5);
  await problem(await post(url, { key: '"k"' }), 409, 'idempotency-key-in-progress');
  release();
  await first;
});

test('waiting duplicates (the default) get the first response; the route runs once', async (t) => {
  const cache = new IdempotencyCache();
  let runs = 0;
  const { app } = ordersApp(cache, undefined, async (req, res) => {
    runs++;
    await sleep(100);
    res.status(201).set('Location', '/orders/7').json({ id: 7, run: runs });
  });
  const url = `${await serve(t, app)}/orders`;
  const all = await Promise.all(Array.from({ length: 5 }, () => post(url, { key: '"burst"' })));
  assert.equal(runs, 1);
  const replayed = all.filter((r) => r.headers.get('idempotent-replayed') === 'true').length;
  assert.equal(replayed, 4, 'four duplicates were answered from the first run');
  for (const r of all) {
    assert.equal(r.status, 201);
    assert.equal(r.headers.get('location'), '/orders/7');
    assert.deepEqual(await r.json(), { id: 7, run: 1 });
  }
  assert.equal(cache.stats().waited, 4);
});

test('a waiting duplicate gives up after waitTimeout with 409, never hangs', async (t) => {
  const cache = new IdempotencyCache({ waitTimeout: 100, lease: 5000 });
  let release;
  const gate = new Promise((r) => (release = r));
  const { app } = ordersApp(cache, undefined, async (req, res) => {
    await gate;
    res.json({ done: true });
  });
  const url = `${await serve(t, app)}/orders`;
  const first = post(url, { key: '"k"' });
  await sleep(30);
  const started = Date.now();
  const dup = await post(url, { key: '"k"' });
  const took = Date.now() - started;
  const p = await problem(dup, 409, 'idempotency-key-in-progress');
  assert.match(p.detail, /after waiting \d+ ms/);
  assert.ok(took >= 90 && took < 3000, `gave up after ${took} ms`);
  assert.ok(Number(dup.headers.get('retry-after')) >= 1);
  release();
  assert.equal((await first).status, 200);
});

test('5xx releases the key: the failure reaches the client and a retry runs; a waiting duplicate takes over', async (t) => {
  const cache = new IdempotencyCache();
  let runs = 0;
  const { app } = ordersApp(cache, undefined, async (req, res) => {
    runs++;
    await sleep(50);
    if (runs === 1) return res.status(503).set('Retry-After', '1').json({ error: 'payment provider down' });
    return res.status(201).json({ id: runs });
  });
  const url = `${await serve(t, app)}/orders`;
  // The duplicate waits for the first run; when that one fails (503) the key is released
  // and the waiting duplicate runs the route itself.
  const [a, b] = await Promise.all([post(url, { key: '"k"' }), (async () => (await sleep(10), post(url, { key: '"k"' })))()]);
  assert.equal(a.status, 503);
  assert.deepEqual(await a.json(), { error: 'payment provider down' });
  assert.equal(b.status, 201);
  assert.equal(b.headers.get('idempotent-replayed'), null, 'the duplicate ran the route (it took the key over)');
  assert.deepEqual(await b.json(), { id: 2 });
  const c = await post(url, { key: '"k"' });
  assert.equal(c.headers.get('idempotent-replayed'), 'true');
  assert.deepEqual(await c.json(), { id: 2 });
  assert.equal(runs, 2);
});

test('a route that throws (Express answers 500) releases the key; so does a streamed 5xx', async (t) => {
  const cache = new IdempotencyCache();
  const app = express();
  let runs = 0;
  app.post('/boom', idempotency(cache), (req, res) => {
    runs++;
    if (runs === 1) throw new Error('boom');
    res.json({ run: runs });
  });
  app.post('/stream', idempotency(cache), (req, res) => {
    runs++;
    res.statusCode = runs === 3 ? 502 : 200;
    res.write('part 1,');
    setTimeout(() => res.end('part 2'), 10);
  });
  app.use((err, req, res, next) => res.status(500).json({ error: err.message }));
  const base = await serve(t, app);
  const first = await post(`${base}/boom`, { key: '"k"' });
  assert.equal(first.status, 500);
  assert.deepEqual(await first.json(), { error: 'boom' });
  assert.deepEqual(await (await post(`${base}/boom`, { key: '"k"' })).json(), { run: 2 });
  const s1 = await post(`${base}/stream`, { key: '"s"' });
  assert.equal(s1.status, 502);
  assert.equal(await s1.text(), 'part 1,part 2');
  const s2 = await post(`${base}/stream`, { key: '"s"' });
  assert.equal(s2.status, 200);
  assert.equal(await s2.text(), 'part 1,part 2');
  const s3 = await post(`${base}/stream`, { key: '"s"' });
  assert.equal(s3.headers.get('idempotent-replayed'), 'true');
  assert.equal(await s3.text(), 'part 1,part 2');
  assert.equal(runs, 4);
});

test('4xx responses are stored and replayed; 429 is not (configurable with shouldStore)', async (t) => {
  const cache = new IdempotencyCache();
  const app = express();
  let runs = 0;
  app.post('/declined', idempotency(cache), (req, res) => res.status(402).json({ declined: ++runs }));
  app.post('/busy', idempotency(cache), (req, res) => res.status(429).json({ busy: ++runs }));
  app.post('/custom', idempotency(cache, { shouldStore: (status) => status === 201 }), (req, res) =>
    res.status(runs++ === 3 ? 409 : 201).json({ run: runs }),
  );
  const base = await serve(t, app);
  assert.equal((await post(`${base}/declined`, { key: '"k"' })).status, 402);
  const replay = await post(`${base}/declined`, { key: '"k"' });
  assert.equal(replay.status, 402);
  assert.equal(replay.headers.get('idempotent-replayed'), 'true');
  assert.deepEqual(await replay.json(), { declined: 1 });
  assert.equal((await post(`${base}/busy`, { key: '"k"' })).status, 429);
  const busy = await post(`${base}/busy`, { key: '"k"' });
  assert.equal(busy.headers.get('idempotent-replayed'), null);
  assert.deepEqual(await busy.json(), { busy: 3 });
  const c1 = await post(`${base}/custom`, { key: '"k"' });
  assert.equal(c1.status, 409, 'not stored: shouldStore said no');
  const c2 = await post(`${base}/custom`, { key: '"k"' });
  assert.equal(c2.status, 201);
  const c3 = await post(`${base}/custom`, { key: '"k"' });
  assert.equal(c3.headers.get('idempotent-replayed'), 'true');
  assert.equal(runs, 5);
});

test('413 for a body over maxBodyBytes (announced or streamed); nothing is claimed', async (t) => {
  const cache = new IdempotencyCache();
  let runs = 0;
  const { app } = ordersApp(cache, { maxBodyBytes: 1000 }, (req, res) =>
    res.json({ run: ++runs, size: JSON.stringify(req.body).length }),
  );
  const url = `${await serve(t, app)}/orders`;
  const big = JSON.stringify({ blob: 'x'.repeat(5000) });
  const p = await problem(await post(url, { key: '"k"', raw: big }), 413, 'request-too-large');
  assert.match(p.detail, /at most 1000/);
  // Chunked (no Content-Length): the limit is found while reading.
  const stream = new Blob([big]).stream();
  const chunked = await fetch(url, {
    method: 'POST',
    headers: { 'idempotency-key': '"k"', 'content-type': 'application/json' },
    body: stream,
    duplex: 'half',
  });
  await problem(chunked, 413, 'request-too-large');
  assert.equal(runs, 0);
  assert.equal(cache.peek(idempotencyStoreKey({ method: 'POST', path: '/orders', key: 'k' })).state, 'absent');
  const ok = await post(url, { key: '"k"', body: { small: true } });
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { run: 1, size: 14 });
});

test("a response over the cache's maxResultBytes: 500 response-too-large, the key released", async (t) => {
  const cache = new IdempotencyCache({ maxResultBytes: 1000 });
  let runs = 0;
  const { app } = ordersApp(cache, undefined, (req, res) => {
    runs++;
    res.set('X-Route', 'set');
    res.json({ blob: 'y'.repeat(runs === 1 ? 5000 : 10) });
  });
  const url = `${await serve(t, app)}/orders`;
  const res = await post(url, { key: '"k"' });
  const p = await problem(res, 500, 'response-too-large');
  assert.match(p.detail, /over 1000 bytes/);
  assert.equal(res.headers.get('x-route'), null, "the problem replaces the route's response");
  const retry = await post(url, { key: '"k"' });
  assert.equal(retry.status, 200, 'the key was released: the retry ran');
  assert.equal(runs, 2);
});

test('503 with a problem body when the store is down; never hangs, the route does not run', async (t) => {
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port: p } = s.address();
      s.close(() => resolve(p));
    });
  });
  const cache = new IdempotencyCache({ store: new RedisStore({ url: `redis://127.0.0.1:${port}/0`, connectTimeout: 200 }) });
  let runs = 0;
  const { app } = ordersApp(cache, undefined, (req, res) => res.json({ run: ++runs }));
  const url = `${await serve(t, app)}/orders`;
  const started = Date.now();
  const res = await post(url, { key: '"k"' });
  const p = await problem(res, 503, 'idempotency-store-unavailable');
  assert.match(p.detail, /idempotency store unavailable: redis at 127\.0\.0\.1/);
  assert.match(p.detail, /the request was not processed/);
  assert.equal(res.headers.get('retry-after'), '1');
  assert.ok(Date.now() - started < 2000);
  assert.equal(runs, 0);
  // Without a key the request is not protected, so the store is not asked.
  assert.equal((await post(url)).status, 200);
});

test('a memory store full of runs in progress answers 503 too', async (t) => {
  const store = new MemoryStore({ maxEntries: 1 });
  const cache = new IdempotencyCache({ store });
  let release;
  const gate = new Promise((r) => (release = r));
  const { app } = ordersApp(cache, undefined, async (req, res) => {
    await gate;
    res.json({});
  });
  const url = `${await serve(t, app)}/orders`;
  const first = post(url, { key: '"a"' });
  await sleep(30);
  const p = await problem(await post(url, { key: '"b"' }), 503, 'idempotency-store-unavailable');
  assert.match(p.detail, /memory store is full/);
  release();
  assert.equal((await first).status, 200);
});

test('the body is handed on: express.json(), express.text() and raw readers after the middleware see it', async (t) => {
  const cache = new IdempotencyCache();
  const app = express();
  app.use(idempotency(cache));
  app.post('/json', express.json(), (req, res) => res.json({ got: req.body }));
  app.post('/text', express.text(), (req, res) => res.json({ got: req.body }));
  app.post('/raw', (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => res.json({ bytes: Buffer.concat(chunks).length }));
  });
  const base = await serve(t, app);
  assert.deepEqual(await (await post(`${base}/json`, { key: '"j"', body: { a: [1, 2] } })).json(), { got: { a: [1, 2] } });
  const text = await fetch(`${base}/text`, {
    method: 'POST',
    headers: { 'idempotency-key': '"t"', 'content-type': 'text/plain' },
    body: 'hello',
  });
  assert.deepEqual(await text.json(), { got: 'hello' });
  const big = Buffer.alloc(300_000, 7);
  const raw = await fetch(`${base}/raw`, {
    method: 'POST',
    headers: { 'idempotency-key': '"r"' },
    body: new Blob([big]).stream(),
    duplex: 'half',
  });
  assert.deepEqual(await raw.json(), { bytes: 300_000 });
  const empty = await fetch(`${base}/json`, { method: 'POST', headers: { 'idempotency-key': '"e"' } });
  assert.equal(empty.status, 200);
});

test('after a body parser, the middleware uses req.rawBody or says how to fix the order', async (t) => {
  const cache = new IdempotencyCache();
  const app = express();
  app.post('/kept', express.json({ verify: (req, res, buf) => (req.rawBody = buf) }), idempotency(cache), (req, res) =>
    res.json({ got: req.body }),
  );
  app.post('/lost', express.json(), idempotency(cache), (req, res) => res.json({ got: req.body }));
  app.use((err, req, res, next) => res.status(500).json({ code: err.code, error: err.message }));
  const base = await serve(t, app);
  assert.deepEqual(await (await post(`${base}/kept`, { key: '"k"', body: { a: 1 } })).json(), { got: { a: 1 } });
  await problem(await post(`${base}/kept`, { key: '"k"', body: { a: 2 } }), 422, 'idempotency-key-reused');
  const lost = await post(`${base}/lost`, { key: '"k"' });
  assert.equal(lost.status, 500);
  const e = await lost.json();
  assert.equal(e.code, 'SEAWALL_BODY_CONSUMED');
  assert.match(e.error, /mount idempotency\(\) before the body parsers/);
});

test('res.write/res.end, writeHead with headers, sendStatus and redirect are captured and replayed', async (t) => {
  const cache = new IdempotencyCache();
  const app = express();
  app.use(idempotency(cache));
  app.post('/write', (req, res) => {
    res.writeHead(202, { 'Content-Type': 'text/plain', Location: '/jobs/1', 'X-No': 'x' });
    res.write('a');
    res.write(Buffer.from('b'));
    res.end('c');
  });
  app.post('/status', (req, res) => res.sendStatus(204));
  app.post('/redirect', (req, res) => res.redirect(303, '/orders/9'));
  const base = await serve(t, app);
  for (let i = 0; i < 2; i++) {
    const w = await post(`${base}/write`, { key: '"w"' });
    assert.equal(w.status, 202);
    assert.equal(w.headers.get('location'), '/jobs/1');
    assert.equal(w.headers.get('content-type'), 'text/plain');
    assert.equal(await w.text(), 'abc');
    assert.equal(w.headers.get('idempotent-replayed'), i === 0 ? null : 'true');
    assert.equal(w.headers.get('x-no'), i === 0 ? 'x' : null);
    const s = await post(`${base}/status`, { key: '"s"' });
    assert.equal(s.status, 204);
    assert.equal(await s.text(), '');
    const r = await fetch(`${base}/redirect`, { method: 'POST', headers: { 'idempotency-key': '"r"' }, redirect: 'manual' });
    assert.equal(r.status, 303);
    assert.equal(r.headers.get('location'), '/orders/9');
    assert.equal(r.headers.get('idempotent-replayed'), i === 0 ? null : 'true');
  }
});

test('option errors name the option and the value', () => {
  const cache = new IdempotencyCache();
  assert.throws(
    () => idempotency({}),
    (e) => e.code === 'SEAWALL_INVALID_ARGUMENT' && /expected an IdempotencyCache/.test(e.message),
  );
  assert.throws(
    () => idempotency(cache, { onDuplicate: 'queue' }),
    (e) => e.code === 'SEAWALL_CONFIG' && e.field === 'onDuplicate' && e.value === '"queue"',
  );
  assert.throws(
    () => idempotency(cache, { maxBodyBytes: -1 }),
    (e) => e instanceof RangeError && e.field === 'maxBodyBytes',
  );
  assert.throws(
    () => idempotency(cache, { methods: 'POST' }),
    (e) => e instanceof TypeError && e.field === 'methods',
  );
  assert.throws(
    () => idempotency(cache, { identity: 'user' }),
    (e) => e.field === 'identity' && /expected a function/.test(e.message),
  );
  assert.throws(
    () => idempotency(cache, { requird: true }),
    (e) => e.field === 'requird' && /unknown option/.test(e.message),
  );
  assert.throws(
    () => idempotency(cache, { keyPrefix: 'x'.repeat(200) }),
    (e) => e.field === 'keyPrefix',
  );
  assert.throws(
    () => deadlines({ maxTimeout: -5 }),
    (e) => e instanceof RangeError && e.field === 'maxTimeout' && e.value === '-5',
  );
  assert.throws(
    () => deadlines({ timeoutHeader: 'bad header' }),
    (e) => e.field === 'timeoutHeader',
  );
});

test('plain node:http works too; an absolute-form request target counts by its path', async (t) => {
  const http = require('node:http');
  const cache = new IdempotencyCache();
  const mw = idempotency(cache);
  let runs = 0;
  const server = http.createServer((req, res) => mw(req, res, () => res.end(`run ${++runs}`)));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => server.close(r)));
  const raw = (target) =>
    new Promise((resolve, reject) => {
      const s = net.connect(server.address().port, '127.0.0.1', () =>
        s.write(
          `POST ${target} HTTP/1.1\r\nHost: example.com\r\nIdempotency-Key: "k"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
        ),
      );
      let out = '';
      s.on('data', (d) => (out += d));
      s.on('error', reject);
      s.on('close', () => resolve(out));
    });
  assert.match(await raw('http://example.com/orders?x=1'), /^HTTP\/1\.1 200 OK[\s\S]*run 1$/);
  const again = await raw('/orders?x=1');
  assert.match(again, /idempotent-replayed: true/i);
  assert.match(again, /run 1$/);
  assert.equal(cache.peek(idempotencyStoreKey({ method: 'POST', path: '/orders', key: 'k' })).state, 'completed');
  assert.equal(runs, 1);
});
