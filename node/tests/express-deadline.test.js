'use strict';
// seawall/express deadlines() and fetchWithDeadline: the client's budget arrives in
// grpc-timeout (or a milliseconds header), is the ambient deadline of the route, is
// answered 504 when it passes, and is handed on to downstream services. Real Express
// servers on 127.0.0.1, real HTTP requests.

const nodeTest = require('node:test');
const assert = require('node:assert/strict');

// Every test has a time limit: a regression that hangs a request fails instead of blocking the run.
const test = (name, fn) => nodeTest(name, { timeout: 20_000 }, fn);
test.before = nodeTest.before;
test.after = nodeTest.after;

// SEAWALL_TEST_EXPRESS: another Express to test against (scripts/test-node.sh also runs Express 4).
const express = require(process.env.SEAWALL_TEST_EXPRESS || 'express');
const { IdempotencyCache, currentDeadline, timeout } = require('seawall');
const {
  deadlines,
  fetchWithDeadline,
  deadlineFetch,
  idempotency,
  requestSignal,
  requestDeadline,
  PROBLEM_TYPE,
} = require('seawall/express');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

async function problem(res, status, slug) {
  assert.equal(res.status, status);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  const p = await res.json();
  assert.equal(p.type, `${PROBLEM_TYPE}${slug}`);
  assert.equal(p.status, status);
  return p;
}

// Reports the ambient deadline the route sees.
function budgetApp(options) {
  const app = express();
  app.use(deadlines(options));
  app.all('/budget', express.json(), async (req, res) => {
    await sleep(1); // across an await, and after a body parser
    const d = currentDeadline();
    res.json({
      ambient: d === undefined ? null : d.remaining(),
      own: requestDeadline(req) === undefined ? null : requestDeadline(req).remaining(),
    });
  });
  return app;
}

test('grpc-timeout becomes the ambient deadline of the route (across awaits and body parsers)', async (t) => {
  const base = await serve(t, budgetApp());
  const r = await fetch(`${base}/budget`, {
    method: 'POST',
    headers: { 'grpc-timeout': '2S', 'content-type': 'application/json' },
    body: '{}',
  });
  const { ambient, own } = await r.json();
  assert.ok(ambient > 1500 && ambient <= 2000, `ambient deadline ${ambient} ms of 2000`);
  assert.ok(own > 1500 && own <= 2000);
  const m = await (await fetch(`${base}/budget`, { headers: { 'grpc-timeout': '300m' } })).json();
  assert.ok(m.ambient > 0 && m.ambient <= 300, `${m.ambient}`);
  const none = await (await fetch(`${base}/budget`)).json();
  assert.deepEqual(none, { ambient: null, own: null }, 'no header, no default: no deadline');
});

test('a milliseconds header (configured), the earliest of both, defaultTimeout and maxTimeout', async (t) => {
  const base = await serve(t, budgetApp({ timeoutHeader: 'Request-Timeout', defaultTimeout: 800, maxTimeout: 1500 }));
  const get = async (headers) => (await (await fetch(`${base}/budget`, { headers })).json()).ambient;
  const a = await get({ 'request-timeout': '400' });
  assert.ok(a > 200 && a <= 400, `${a}`);
  const b = await get({ 'request-timeout': '1200', 'grpc-timeout': '200m' });
  assert.ok(b > 0 && b <= 200, `the earliest: ${b}`);
  const c = await get({});
  assert.ok(c > 500 && c <= 800, `the default: ${c}`);
  const d = await get({ 'grpc-timeout': '1H' });
  assert.ok(d > 1200 && d <= 1500, `capped by maxTimeout: ${d}`);
  await problem(await fetch(`${base}/budget`, { headers: { 'request-timeout': '1.5s' } }), 400, 'invalid-timeout');
});

test('a malformed grpc-timeout is a 400 problem that names the header and the value', async (t) => {
  const base = await serve(t, budgetApp());
  for (const bad of ['3s', '123456789S', 'S', '-1m']) {
    const p = await problem(await fetch(`${base}/budget`, { headers: { 'grpc-timeout': bad } }), 400, 'invalid-timeout');
    assert.match(p.detail, /^grpc-timeout: invalid argument: grpc-timeout "/, bad);
  }
});

test('504 problem when the deadline passes first; the late response is swallowed and the process lives on', async (t) => {
  const app = express();
  app.use(deadlines());
  let late;
  app.post('/slow', async (req, res) => {
    try {
      await sleep(150);
      res.set('X-Late', 'yes');
      res.status(201).json({ late: true }); // after the 504: ignored, no ERR_HTTP_HEADERS_SENT
      late = 'answered';
    } catch (err) {
      late = err;
    }
  });
  app.get('/fast', (req, res) => res.json({ fast: true }));
  const base = await serve(t, app);
  const started = Date.now();
  const res = await fetch(`${base}/slow`, { method: 'POST', headers: { 'grpc-timeout': '50m' } });
  const took = Date.now() - started;
  const p = await problem(res, 504, 'deadline-exceeded');
  assert.match(p.detail, /deadline \(50 ms\) passed/);
  assert.equal(res.headers.get('x-late'), null);
  assert.ok(took >= 45 && took < 1000, `answered at the deadline, after ${took} ms`);
  await sleep(200);
  assert.equal(late, 'answered', 'the route finished without an error');
  const fast = await fetch(`${base}/fast`, { headers: { 'grpc-timeout': '5S' } });
  assert.deepEqual(await fast.json(), { fast: true });
  // An expired budget ('0n') is answered at once; the route never runs.
  await problem(await fetch(`${base}/slow`, { method: 'POST', headers: { 'grpc-timeout': '0n' } }), 504, 'deadline-exceeded');
});

test('requestSignal aborts at the deadline; nested timeout() calls share the budget', async (t) => {
  const app = express();
  app.use(deadlines());
  const seen = {};
  app.get('/work', async (req, res) => {
    const signal = requestSignal(req);
    seen.signalAborted = signal.aborted;
    try {
      // A generous callee timeout is capped by the request's deadline.
      await timeout(
        10_000,
        ({ signal: inner }) => new Promise((_, reject) => inner.addEventListener('abort', () => reject(inner.reason))),
      );
    } catch (err) {
      seen.inner = err.code;
      seen.message = err.message;
    }
    await sleep(30); // (answering at once would race the middleware's 504, and might win)
    seen.signalAbortedAfter = signal.aborted;
    seen.reason = signal.reason && signal.reason.code;
    res.json({});
  });
  const base = await serve(t, app);
  await problem(await fetch(`${base}/work`, { headers: { 'grpc-timeout': '60m' } }), 504, 'deadline-exceeded');
  await sleep(60);
  assert.equal(seen.signalAborted, false);
  assert.equal(seen.inner, 'SEAWALL_TIMEOUT');
  // Whichever timer fires first: the callee's own (capped) one, or the request's, which
  // cancels what runs inside it with its reason.
  assert.match(
    seen.message,
    /^timed out: (the enclosing deadline passed before the 10000 ms timeout|the 60 ms timeout elapsed)$/,
  );
  assert.equal(seen.signalAbortedAfter, true);
  assert.equal(seen.reason, 'SEAWALL_TIMEOUT');
});

test('a client that disconnects aborts requestSignal (the work stops)', async (t) => {
  const app = express();
  app.use(deadlines());
  let resolveSeen;
  const seen = new Promise((r) => (resolveSeen = r));
  app.get('/hang', (req, res) => {
    requestSignal(req).addEventListener('abort', () => resolveSeen(requestSignal(req).reason));
  });
  const base = await serve(t, app);
  const client = new AbortController();
  const pending = fetch(`${base}/hang`, { headers: { 'grpc-timeout': '10S' }, signal: client.signal }).catch((e) => e);
  await sleep(50);
  client.abort();
  const reason = await seen;
  assert.equal(reason.code, 'ECONNRESET');
  assert.match(reason.message, /client closed the connection/);
  assert.equal((await pending).name, 'AbortError');
});

test('fetchWithDeadline hands the remaining budget to a downstream service (grpc-timeout), which runs under it', async (t) => {
  const downstream = express();
  downstream.use(deadlines());
  downstream.get('/stock', (req, res) =>
    res.json({ header: req.headers['grpc-timeout'], remaining: currentDeadline().remaining() }),
  );
  downstream.get('/slow', async (req, res) => {
    await sleep(500);
    res.json({});
  });
  const down = await serve(t, downstream);

  const app = express();
  app.use(deadlines());
  app.get('/order', async (req, res) => {
    await sleep(50); // spend some of the budget first
    const r = await fetchWithDeadline(`${down}/stock`);
    res.json(await r.json());
  });
  app.get('/order-slow', async (req, res) => {
    const started = Date.now();
    try {
      await fetchWithDeadline(`${down}/slow`);
      res.json({ ok: true });
    } catch (err) {
      await sleep(30); // the middleware's 504 goes out first
      res.status(200).json({ code: err.code, name: err.name, took: Date.now() - started, message: err.message });
    }
  });
  const base = await serve(t, app);
  const r = await (await fetch(`${base}/order`, { headers: { 'grpc-timeout': '1S' } })).json();
  assert.match(r.header, /^\d+[mu]$/);
  assert.ok(r.remaining > 400 && r.remaining < 955, `downstream budget ${r.remaining} ms: 1 s minus what the caller spent`);

  // The downstream call is aborted at the caller's deadline. (The caller's own 504 goes
  // out at that moment too, so read what the route saw from a longer-lived variant.)
  const app2 = express();
  let seen;
  app2.use((req, res, next) => next());
  app2.get('/x', async (req, res) => {
    const { withDeadline } = require('seawall');
    await withDeadline(100, async () => {
      const started = Date.now();
      try {
        await fetchWithDeadline(`${down}/slow`);
        seen = { ok: true };
      } catch (err) {
        seen = { code: err.code, name: err.name, took: Date.now() - started, cause: err.cause && err.cause.name };
      }
    });
    res.json(seen);
  });
  const base2 = await serve(t, app2);
  const s = await (await fetch(`${base2}/x`)).json();
  assert.equal(s.code, 'SEAWALL_TIMEOUT');
  assert.equal(s.name, 'TimeoutError');
  assert.ok(s.took >= 90 && s.took < 450, `aborted after ${s.took} ms`);
  const gone = await fetch(`${base}/order-slow`, { headers: { 'grpc-timeout': '100m' } });
  await problem(gone, 504, 'deadline-exceeded');

  // A response whose body stalls: reading it is aborted at the deadline too.
  const stalling = express();
  stalling.get('/stall', (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first part...');
    setTimeout(() => res.end('rest'), 500);
  });
  const base3 = await serve(t, stalling);
  const { withDeadline } = require('seawall');
  const started = Date.now();
  const body = await withDeadline(100, async () => {
    const r2 = await fetchWithDeadline(`${base3}/stall`);
    assert.equal(r2.status, 200);
    return r2.text().then(
      () => 'read',
      (err) => err,
    );
  });
  assert.equal(body.name, 'TimeoutError');
  assert.ok(Date.now() - started < 450, 'aborted at the deadline, not when the body ended');
});

test('fetchWithDeadline: no ambient deadline is plain fetch; an expired one sends nothing; caller headers and signal are kept', async (t) => {
  const seen = [];
  const app = express();
  app.get('/echo', (req, res) => {
    seen.push(req.headers);
    res.json({ grpc: req.headers['grpc-timeout'] ?? null, ms: req.headers['x-timeout-ms'] ?? null });
  });
  const base = await serve(t, app);
  const { withDeadline, Deadline } = require('seawall');
  assert.deepEqual(await (await fetchWithDeadline(`${base}/echo`)).json(), { grpc: null, ms: null });
  await assert.rejects(
    withDeadline(Deadline.after(0), () => fetchWithDeadline(`${base}/echo`)),
    (e) => e.code === 'SEAWALL_TIMEOUT' && /before the request to http:\/\/127\.0\.0\.1:\d+\/echo was sent/.test(e.message),
  );
  assert.equal(seen.length, 1, 'nothing was sent past the deadline');
  const kept = await withDeadline(5000, () => fetchWithDeadline(`${base}/echo`, { headers: { 'grpc-timeout': '1m' } }));
  assert.deepEqual(await kept.json(), { grpc: '1m', ms: null });
  const withMs = deadlineFetch(undefined, { timeoutHeader: 'X-Timeout-Ms' });
  const both = await (await withDeadline(3000, () => withMs(`${base}/echo`))).json();
  assert.match(both.grpc, /^\d+[mu]$/);
  assert.ok(Number(both.ms) > 2500 && Number(both.ms) <= 3000, both.ms);
  const none = deadlineFetch(undefined, { grpcTimeout: false });
  assert.deepEqual(await (await withDeadline(3000, () => none(`${base}/echo`))).json(), { grpc: null, ms: null });
  // The caller's own signal still aborts, with its own reason.
  const c = new AbortController();
  c.abort(new Error('mine'));
  await assert.rejects(
    withDeadline(3000, () => fetchWithDeadline(`${base}/echo`, { signal: c.signal })),
    /mine/,
  );
  // A custom fetch implementation receives the headers and the signal.
  let got;
  const spy = deadlineFetch(async (input, init) => {
    got = { input, grpc: init.headers.get('grpc-timeout'), signal: init.signal instanceof AbortSignal };
    return new Response('ok');
  });
  assert.equal(await (await withDeadline(1000, () => spy('http://example.invalid/x'))).text(), 'ok');
  assert.equal(got.input, 'http://example.invalid/x');
  assert.match(got.grpc, /^\d+[mu]$/);
  assert.equal(got.signal, true);
});

test("deadlines() with idempotency(): the 504 goes out, the route's late response is stored and replayed", async (t) => {
  const cache = new IdempotencyCache();
  const app = express();
  app.use(deadlines());
  let runs = 0;
  app.post('/orders', idempotency(cache), express.json(), async (req, res) => {
    runs++;
    await sleep(120);
    res.status(201).set('Location', '/orders/1').json({ id: 1 });
  });
  const base = await serve(t, app);
  const headers = { 'idempotency-key': '"k"', 'content-type': 'application/json' };
  await problem(
    await fetch(`${base}/orders`, { method: 'POST', headers: { ...headers, 'grpc-timeout': '40m' }, body: '{}' }),
    504,
    'deadline-exceeded',
  );
  // A duplicate arriving meanwhile waits, within its own deadline: 504 too, and its wait
  // is cancelled (it does not run the route).
  assert.equal(cache.waiting, 0);
  const dup = fetch(`${base}/orders`, { method: 'POST', headers: { ...headers, 'grpc-timeout': '20m' }, body: '{}' });
  await sleep(10);
  assert.equal(cache.waiting, 1, 'the duplicate waits for the first run');
  await problem(await dup, 504, 'deadline-exceeded');
  await sleep(10);
  assert.equal(cache.waiting, 0, 'its wait was cancelled with its request, before the first run ended');
  await sleep(120);
  const retry = await fetch(`${base}/orders`, { method: 'POST', headers, body: '{}' });
  assert.equal(retry.status, 201);
  assert.equal(retry.headers.get('idempotent-replayed'), 'true');
  assert.equal(retry.headers.get('location'), '/orders/1');
  assert.equal(retry.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.deepEqual(await retry.json(), { id: 1 });
  assert.equal(runs, 1);
});
