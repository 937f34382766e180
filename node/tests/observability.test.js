'use strict';
// Registry, events, metrics, health and the ready-made HTTP endpoints.

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const path = require('node:path');
const fs = require('node:fs');
const { spawnSync } = require('node:child_process');

const { CircuitBreaker, IdempotencyCache, ManualClock, Registry, SystemClock, observability } = require('seawall');

const repo = process.env.SEAWALL_REPO || path.resolve(__dirname, '..', '..');
const tick = () => new Promise((r) => setImmediate(r));
const boom = () => {
  throw new Error('boom');
};

/** Collects the process warnings emitted while `fn` runs (and a tick after). */
async function warningsDuring(fn) {
  const seen = [];
  const onWarning = (w) => seen.push(w);
  process.on('warning', onWarning);
  try {
    await fn();
    await tick();
    await tick();
  } finally {
    process.off('warning', onWarning);
  }
  return seen;
}

// --- the registry ---

test('registry.breaker gets or creates: one breaker per name, options used when creating', async () => {
  const clock = new ManualClock();
  const registry = new Registry({ clock });
  assert.equal(registry.clock, clock);
  const a = registry.breaker('db', { consecutiveFailures: 1 });
  const b = registry.breaker('db', { consecutiveFailures: 50 });
  assert.equal(a, b);
  assert.ok(a instanceof CircuitBreaker);
  assert.equal(a.name, 'db');
  assert.equal(a.clock, clock, "a registry's breakers read its clock by default");
  await assert.rejects(a.execute(boom));
  assert.equal(b.state, 'open', 'consecutiveFailures: 1 (the first options) is in force');
  assert.deepEqual(registry.breakerNames(), ['db']);
  assert.equal(registry.breaker('other', { clock: new SystemClock() }).clock instanceof SystemClock, true);
  assert.throws(() => registry.breaker('', {}), (e) => e.code === 'SEAWALL_CONFIG' && /needs a name/.test(e.message));
  assert.throws(() => registry.breaker(5), { code: 'SEAWALL_INVALID_ARGUMENT' });
  assert.throws(() => registry.breaker('bad', { windowSize: 0 }), (e) => e.code === 'SEAWALL_CONFIG' && e.field === 'windowSize');
  assert.throws(() => registry.breaker('bad', { fallback: 1 }), (e) => e.code === 'SEAWALL_CONFIG' && e.field === 'fallback');
  assert.equal(registry.removeBreaker('db'), true);
  assert.equal(registry.removeBreaker('db'), false);
  assert.notEqual(registry.breaker('db'), a, 'a removed name gets a new breaker');
});

test('the registry is bounded: past maxBreakers it forgets the least recently used', async () => {
  const registry = new Registry({ clock: new ManualClock(), maxBreakers: 10 });
  const first = registry.breaker('tenant-0');
  for (let i = 1; i < 50; i++) {
    registry.breaker(`tenant-${i}`);
    registry.breaker('tenant-0'); // kept warm
  }
  const names = registry.breakerNames();
  assert.ok(names.length <= 10, `${names.length} breakers kept`);
  assert.ok(names.includes('tenant-0'), 'the breaker in use stays');
  assert.ok(names.includes('tenant-49'));
  assert.equal(registry.breaker('tenant-0'), first);
  assert.throws(() => new Registry({ maxBreakers: 0 }), (e) => e.code === 'SEAWALL_CONFIG' && e.field === 'maxBreakers');
  assert.throws(() => new Registry({ maxBreakers: 1.5 }), (e) => e.field === 'maxBreakers');
  assert.throws(() => new Registry({ maxBreakers: 'ten' }), (e) => e instanceof TypeError && e.field === 'maxBreakers');
  assert.throws(() => new Registry({ bogus: 1 }), (e) => e.code === 'SEAWALL_CONFIG' && e.field === 'bogus');
  assert.throws(() => new Registry({ clock: 'x' }), (e) => e.field === 'clock');
});

test('registry.idempotencyCache gets or creates a named cache on the registry clock', async () => {
  const clock = new ManualClock();
  const registry = new Registry({ clock });
  const c = registry.idempotencyCache('payments', { lease: 5000 });
  assert.ok(c instanceof IdempotencyCache);
  assert.equal(registry.idempotencyCache('payments'), c);
  assert.equal(c.name, 'payments');
  assert.equal(c.clock, clock);
  assert.equal(c.options.lease, 5000);
  assert.deepEqual([...registry.idempotencyCaches().keys()], ['payments']);
  assert.throws(() => registry.idempotencyCache(''), { code: 'SEAWALL_INVALID_ARGUMENT' });
  assert.equal(await c.run('k', () => 1), 1);
});

// --- events ---

test("breaker events: 'rejected', 'timeout', 'fallback', in order with 'stateChange'", async () => {
  const clock = new ManualClock();
  const breaker = new CircuitBreaker({
    name: 'dep',
    clock,
    consecutiveFailures: 2,
    openDuration: 1000,
    timeout: 50,
  });
  const seen = [];
  for (const name of ['stateChange', 'rejected', 'timeout', 'fallback']) {
    breaker.on(name, (e) => seen.push([name, e]));
  }
  const slow = breaker.execute(() => new Promise(() => {}));
  clock.advance(50);
  await assert.rejects(slow, { code: 'SEAWALL_TIMEOUT' });
  await assert.rejects(breaker.execute(boom));
  await assert.rejects(breaker.execute(() => 1), { code: 'SEAWALL_BREAKER_OPEN' });
  assert.deepEqual(seen, [
    ['timeout', { breaker: 'dep', took: 50, at: 50 }],
    ['stateChange', { breaker: 'dep', from: 'closed', to: 'open', at: 50, reason: 'consecutive_failures' }],
    ['rejected', { breaker: 'dep', state: 'open', retryAfter: 1000, at: 50 }],
  ]);
  const withFallback = new CircuitBreaker({ name: 'fb', clock, fallback: (err) => `stale (${err.state})` });
  const fb = [];
  withFallback.on('fallback', (e) => fb.push(e));
  withFallback.on('rejected', (e) => fb.push(e.state));
  withFallback.forceOpen();
  assert.equal(await withFallback.execute(() => 'fresh'), 'stale (forced_open)');
  assert.deepEqual(fb, ['forced_open', { breaker: 'fb', at: 50 }]);
  assert.equal(withFallback.snapshot().fallbacks, 1);
  // Without listeners nothing is queued; with them removed, nothing is delivered.
  withFallback.removeAllListeners('fallback');
  withFallback.removeAllListeners('rejected');
  await withFallback.execute(() => 'x');
  assert.equal(fb.length, 2);
  assert.equal(withFallback.snapshot().fallbacks, 2, 'still counted in metrics');
});

test("registry 'event' listeners see every breaker's events, typed", async () => {
  const clock = new ManualClock();
  const registry = new Registry({ clock });
  const early = registry.breaker('a', { consecutiveFailures: 1 });
  const events = [];
  registry.on('event', (e) => events.push(e));
  const late = registry.breaker('b', { consecutiveFailures: 1, fallback: () => 'fb' });
  await assert.rejects(early.execute(boom));
  await assert.rejects(early.execute(() => 1));
  await assert.rejects(late.execute(boom));
  assert.equal(await late.execute(() => 1), 'fb');
  assert.deepEqual(
    events.map((e) => `${e.type}:${e.breaker}`),
    ['stateChange:a', 'rejected:a', 'stateChange:b', 'rejected:b', 'fallback:b'],
  );
  assert.deepEqual(events[0], { type: 'stateChange', breaker: 'a', from: 'closed', to: 'open', at: 0, reason: 'consecutive_failures' });
  assert.deepEqual(events[1], { type: 'rejected', breaker: 'a', state: 'open', retryAfter: 30_000, at: 0 });
  registry.removeAllListeners('event');
  await assert.rejects(early.execute(() => 1));
  assert.equal(events.length, 5);
});

test('a throwing listener is reported as a warning and never breaks the primitive or other listeners', async () => {
  const registry = new Registry({ clock: new ManualClock() });
  const breaker = registry.breaker('x', { consecutiveFailures: 1 });
  const got = [];
  breaker.on('rejected', () => {
    throw new Error('listener bug');
  });
  breaker.on('rejected', (e) => got.push(e.state));
  registry.on('event', () => Promise.reject(new Error('async listener bug')));
  registry.on('event', (e) => got.push(e.type));
  const warnings = await warningsDuring(async () => {
    await assert.rejects(breaker.execute(boom), /boom/);
    await assert.rejects(breaker.execute(() => 1), { code: 'SEAWALL_BREAKER_OPEN' });
  });
  assert.deepEqual(got, ['stateChange', 'open', 'rejected']);
  const ours = warnings.filter((w) => w.code === 'SEAWALL_LISTENER_ERROR');
  assert.ok(ours.some((w) => /'rejected' listener of circuit breaker 'x'/.test(w.message)), ours.map((w) => w.message).join('\n'));
  assert.ok(ours.some((w) => /'event' listener/.test(w.message) && /async listener bug/.test(w.detail)));
  assert.equal(breaker.snapshot().rejected, 1);
});

test("idempotency events: 'replay', 'mismatch', 'inProgress', 'takeover', 'leaseLost', on the cache and the registry", async () => {
  const clock = new ManualClock();
  const registry = new Registry({ clock });
  const cache = registry.idempotencyCache('payments', { lease: 1000, waitTimeout: 5000 });
  const own = [];
  for (const name of ['replay', 'mismatch', 'inProgress', 'takeover', 'leaseLost']) cache.on(name, (e) => own.push([name, e]));
  const all = [];
  registry.on('event', (e) => all.push(e));
  await cache.run('k', () => 1, { fingerprint: 'a' });
  await cache.run('k', () => 2, { fingerprint: 'a' });
  await assert.rejects(cache.run('k', () => 3, { fingerprint: 'b' }));
  // A crashed owner, a duplicate that takes over, the late owner whose result is refused.
  let finishLate;
  const late = cache.run('c', () => new Promise((r) => (finishLate = r)));
  const dup = cache.run('c', () => 'new');
  clock.advance(1000);
  assert.equal(await dup, 'new');
  finishLate('old');
  await assert.rejects(late, { code: 'SEAWALL_LEASE_LOST' });
  const strict = registry.idempotencyCache('strict', { onDuplicate: 'reject' });
  strict.run('x', () => new Promise(() => {}));
  await assert.rejects(strict.run('x', () => 1), { code: 'SEAWALL_IDEMPOTENCY_IN_PROGRESS' });
  assert.deepEqual(
    own.map(([n, e]) => `${n}:${e.key}`),
    ['replay:k', 'mismatch:k', 'takeover:c', 'leaseLost:c'],
  );
  assert.deepEqual(own[0][1], { cache: 'payments', key: 'k', at: 0 });
  assert.equal(own[3][1].token > 0, true);
  assert.deepEqual(
    all.map((e) => `${e.type}:${e.cache}:${e.key}`),
    ['replay:payments:k', 'mismatch:payments:k', 'takeover:payments:c', 'leaseLost:payments:c', 'inProgress:strict:x'],
  );
  assert.equal(all[4].retryAfter, 30_000);
});

// --- metrics ---

test('metrics are exact after many concurrent async calls', async () => {
  const registry = new Registry({ clock: new ManualClock() });
  const names = ['a', 'b', 'c', 'd'];
  for (const n of names) registry.breaker(n, { consecutiveFailures: 1_000_000, isFailure: (e) => e.message !== 'ignored' });
  const calls = [];
  const want = Object.fromEntries(names.map((n) => [n, { successes: 0, failures: 0, ignored: 0 }]));
  for (let i = 0; i < 2000; i++) {
    const n = names[i % 4];
    const kind = i % 7 === 0 ? 'failures' : i % 11 === 0 ? 'ignored' : 'successes';
    want[n][kind]++;
    calls.push(
      registry.breaker(n).execute(async () => {
        await tick();
        if (kind === 'failures') throw new Error('down');
        if (kind === 'ignored') throw new Error('ignored');
        return i;
      }),
    );
  }
  await Promise.allSettled(calls);
  const snap = registry.snapshot();
  const text = registry.prometheus();
  for (const n of names) {
    const s = snap.breakers[n];
    assert.equal(s.successes, want[n].successes, `${n} successes`);
    assert.equal(s.failures, want[n].failures, `${n} failures`);
    assert.equal(s.ignored, want[n].ignored, `${n} ignored`);
    assert.ok(text.includes(`seawall_breaker_calls_total{breaker="${n}",outcome="success"} ${want[n].successes}\n`));
    assert.ok(text.includes(`seawall_breaker_calls_total{breaker="${n}",outcome="failure"} ${want[n].failures}\n`));
    assert.ok(text.includes(`seawall_breaker_calls_total{breaker="${n}",outcome="ignored"} ${want[n].ignored}\n`));
  }
  const total = names.reduce((t, n) => t + snap.breakers[n].successes + snap.breakers[n].failures + snap.breakers[n].ignored, 0);
  assert.equal(total, 2000);
});

/** A strict reader of the text exposition format (0.0.4): returns the samples. */
function parseExposition(text) {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const families = new Map();
  const samples = [];
  const label = String.raw`[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"`;
  const sampleRe = new RegExp(String.raw`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(${label}(?:,${label})*)?\})? (\S+)$`);
  for (const line of text.slice(0, -1).split('\n')) {
    let m;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line))) {
      assert.ok(!families.has(m[1]) || !families.get(m[1]).help, `one HELP for ${m[1]}`);
      families.set(m[1], { ...(families.get(m[1]) || {}), help: m[2] });
    } else if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      families.set(m[1], { ...(families.get(m[1]) || {}), type: m[2] });
    } else {
      m = sampleRe.exec(line);
      assert.ok(m, `a valid sample line: ${JSON.stringify(line)}`);
      const value = m[3];
      assert.ok(/^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]Inf)$/.test(value), `a valid value: ${line}`);
      const fam = families.get(m[1]);
      assert.ok(fam && fam.type, `TYPE before the samples of ${m[1]}`);
      if (fam.type === 'counter') assert.ok(m[1].endsWith('_total'), `${m[1]} is a counter named *_total`);
      samples.push({ name: m[1], labels: m[2] || '', value: Number(value) });
    }
  }
  return samples;
}

// The scenario of bindings/node/examples/observability_scenario.rs, through the Node package.
async function scenario() {
  const clock = new ManualClock();
  const registry = new Registry({ clock, maxBreakers: 100 });
  const db = registry.breaker('db', { consecutiveFailures: 2 });
  const cache = registry.breaker('cache', { consecutiveFailures: 1, critical: false, fallback: () => 'stale' });
  const api = registry.breaker('api "v2"', { slowCallDuration: 100, failureRateThreshold: 0.9 });
  for (let i = 0; i < 3; i++) await db.execute(() => 'ok');
  await assert.rejects(db.execute(boom));
  await assert.rejects(cache.execute(boom));
  assert.equal(await cache.execute(() => 'fresh'), 'stale'); // rejected, answered by the fallback
  assert.throws(() => cache.tryAcquire(), { code: 'SEAWALL_BREAKER_OPEN' }); // rejected
  clock.advance(500);
  api.tryAcquire().success(150);
  api.tryAcquire().timeout(40);
  api.tryAcquire().ignore();
  const payments = registry.idempotencyCache('payments');
  assert.deepEqual(await payments.run('charge-1', () => ({ id: 1 }), { fingerprint: { amount: 100 } }), { id: 1 });
  assert.deepEqual(await payments.run('charge-1', () => ({ id: 2 }), { fingerprint: { amount: 100 } }), { id: 1 });
  await assert.rejects(payments.run('charge-1', () => 0, { fingerprint: { amount: 200 } }), { code: 'SEAWALL_IDEMPOTENCY_MISMATCH' });
  await assert.rejects(payments.run('charge-2', boom), /boom/);
  registry.addCheck('disk', () => true);
  registry.addCheck('queue', () => {
    throw new Error('queue is full');
  }, { critical: false });
  const health = await registry.health();
  assert.equal(health.status, 'degraded');
  return registry;
}

function rustScenario() {
  const fixture = process.env.SEAWALL_OBSERVABILITY_FIXTURE;
  let text;
  if (fixture) {
    text = fs.readFileSync(fixture, 'utf8');
  } else {
    const r = spawnSync('cargo', ['run', '-q', '--release', '-p', 'seawall-node', '--example', 'observability_scenario'], {
      cwd: repo,
      encoding: 'utf8',
      timeout: 600_000,
    });
    assert.equal(r.status, 0, `cargo run --example observability_scenario failed: ${r.stderr}`);
    text = r.stdout;
  }
  const [prometheus, snapshot] = text.split('---\n');
  return { prometheus, snapshot: JSON.parse(snapshot) };
}

test('Prometheus text and snapshot are identical to the Rust registry for the same scenario', async () => {
  const registry = await scenario();
  const rust = rustScenario();
  const text = registry.prometheus();
  assert.equal(text, rust.prometheus);
  assert.deepEqual(registry.snapshot(), rust.snapshot);
  const samples = parseExposition(text);
  const find = (name, labels) => samples.find((s) => s.name === name && s.labels === labels);
  assert.equal(find('seawall_breaker_state', 'breaker="cache",state="open"').value, 1);
  assert.equal(find('seawall_breaker_fallbacks_total', 'breaker="cache"').value, 1);
  assert.equal(find('seawall_breaker_calls_total', 'breaker="cache",outcome="rejected"').value, 2);
  assert.equal(find('seawall_breaker_calls_total', 'breaker="api \\"v2\\"",outcome="timeout"').value, 1);
  assert.equal(find('seawall_breaker_slow_calls_total', 'breaker="api \\"v2\\""').value, 1);
  assert.equal(find('seawall_health_status', 'status="degraded"').value, 1);
  assert.equal(find('seawall_health_check_up', 'check="queue",kind="check"').value, 0);
  assert.equal(find('seawall_breaker_transitions_total', 'breaker="cache",from="closed",to="open"').value, 1);
  assert.equal(find('seawall_idempotency_requests_total', 'cache="payments",result="execute"').value, 2);
  assert.equal(find('seawall_idempotency_requests_total', 'cache="payments",result="replay"').value, 1);
  assert.equal(find('seawall_idempotency_requests_total', 'cache="payments",result="mismatch"').value, 1);
  assert.equal(find('seawall_idempotency_events_total', 'cache="payments",event="released"').value, 1);
  assert.equal(registry.snapshot().idempotency.payments.completed, 1);
});

// --- health ---

test('health: ok, degraded (non-critical failures) and down (critical failures), with check detail', async () => {
  const clock = new ManualClock();
  const registry = new Registry({ clock });
  assert.deepEqual(await registry.health(), { status: 'ok', checks: {} });
  const side = registry.breaker('recommendations', { critical: false });
  const core = registry.breaker('payments');
  assert.equal(side.critical, false);
  assert.equal(core.critical, true);
  side.forceOpen();
  let h = await registry.health();
  assert.equal(h.status, 'degraded');
  assert.deepEqual(h.checks.recommendations, {
    kind: 'breaker',
    ok: false,
    critical: false,
    status: 'degraded',
    error: 'breaker is forced_open',
    checked_at_ms: null,
    last_ok_at_ms: null,
    duration_ms: null,
  });
  core.forceOpen();
  h = await registry.health();
  assert.equal(h.status, 'down');
  core.reset();
  side.reset();
  let dbUp = true;
  registry.addCheck('db', async () => {
    await tick();
    if (!dbUp) throw new Error('connection refused');
  }, { interval: 0 });
  registry.addCheck('cache', () => dbUp, { critical: false, interval: 0 });
  h = await registry.health();
  assert.equal(h.status, 'ok');
  assert.equal(h.checks.db.ok, true);
  assert.equal(h.checks.db.kind, 'check');
  clock.advance(1000);
  dbUp = false;
  h = await registry.health();
  assert.equal(h.status, 'down');
  assert.equal(h.checks.db.error, 'connection refused');
  assert.equal(h.checks.db.last_ok_at_ms, 0);
  assert.equal(h.checks.db.checked_at_ms, 1000);
  assert.equal(h.checks.cache.error, 'the check returned false');
  assert.equal(h.checks.cache.status, 'degraded');
  assert.equal(registry.report().status, 'down', 'report() runs nothing and reads the last results');
  assert.throws(() => registry.addCheck('x', () => 1, { timeout: -1 }), (e) => e.code === 'SEAWALL_CONFIG' && e.field === 'timeout');
  assert.throws(() => registry.addCheck('x', () => 1, { critical: 'yes' }), (e) => e instanceof TypeError && e.field === 'critical');
  assert.throws(() => registry.addCheck('x', () => 1, { every: 5 }), (e) => e.field === 'every');
  assert.throws(() => registry.addCheck('x', 'fn'), { code: 'SEAWALL_INVALID_ARGUMENT' });
  assert.throws(() => registry.addCheck('', () => 1), (e) => e.code === 'SEAWALL_CONFIG' && e.field === 'name');
  assert.equal(registry.removeCheck('cache'), true);
  assert.equal((await registry.health()).checks.cache, undefined);
});

test('a hanging check fails at its timeout and never hangs health() (system clock)', async () => {
  const registry = new Registry();
  registry.addCheck('hangs', () => new Promise(() => {}), { timeout: 50, critical: false, interval: 0 });
  registry.addCheck('fine', () => true);
  let started = Date.now();
  let h = await registry.health();
  const took = Date.now() - started;
  assert.ok(took >= 45 && took < 2000, `health() took ${took} ms`);
  assert.equal(h.status, 'degraded');
  assert.equal(h.checks.hangs.error, 'timed out after 50 ms');
  assert.equal(h.checks.fine.ok, true);
  // The hung run never returned: no second run is started on top of it.
  started = Date.now();
  h = await registry.health();
  assert.equal(h.checks.hangs.error, 'the previous run has not returned; no new run was started');
  assert.ok(Date.now() - started < 45, 'answered at once');
});

test('a hanging check on a ManualClock times out when the clock passes its timeout', async () => {
  const clock = new ManualClock();
  const registry = new Registry({ clock });
  let release;
  registry.addCheck('slow', () => new Promise((r) => (release = r)), { timeout: 200 });
  let done = false;
  const p = registry.health().then((h) => {
    done = true;
    return h;
  });
  await tick();
  assert.equal(done, false);
  clock.advance(199);
  await tick();
  assert.equal(done, false);
  clock.advance(1);
  const h = await p;
  assert.equal(h.status, 'down');
  assert.equal(h.checks.slow.error, 'timed out after 200 ms');
  assert.equal(h.checks.slow.duration_ms, 200);
  release(true); // a late result of a timed-out run is ignored
  await tick();
  assert.equal(registry.report().checks.slow.ok, false);
  assert.equal(clock.pendingTimers, 0, 'no timer left behind');
});

test('the interval cache: a flood of health() calls runs a check once per interval', async () => {
  const clock = new ManualClock();
  const registry = new Registry({ clock });
  let runs = 0;
  registry.addCheck('db', async () => {
    runs++;
    await tick();
  }, { interval: 5000 });
  const all = await Promise.all(Array.from({ length: 50 }, () => registry.health()));
  assert.equal(runs, 1);
  assert.ok(all.every((h) => h.status === 'ok'), 'calls made while the run was going waited for it');
  clock.advance(4999);
  await registry.health();
  assert.equal(runs, 1);
  clock.advance(1);
  await registry.health();
  assert.equal(runs, 2);
});

// --- the HTTP endpoints ---

function request(port, method, urlPath) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function serve(handler, fn) {
  const server = http.createServer(handler);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    await fn(server.address().port);
  } finally {
    await new Promise((r) => server.close(r));
  }
}

test('observability.handler serves /health and /metrics to a real http server', async () => {
  const registry = new Registry();
  const side = registry.breaker('search', { critical: false });
  const main = registry.breaker('orders');
  registry.addCheck('db', () => true);
  await serve(observability.handler(registry), async (port) => {
    let r = await request(port, 'GET', '/health');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.deepEqual(JSON.parse(r.body).status, 'ok');
    side.forceOpen();
    r = await request(port, 'GET', '/health?verbose=1');
    assert.equal(r.status, 200, 'degraded is still serving');
    assert.equal(JSON.parse(r.body).status, 'degraded');
    main.forceOpen();
    r = await request(port, 'GET', '/health');
    assert.equal(r.status, 503);
    const body = JSON.parse(r.body);
    assert.equal(body.status, 'down');
    assert.equal(body.checks.orders.error, 'breaker is forced_open');
    r = await request(port, 'GET', '/metrics');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(r.body, registry.prometheus());
    assert.ok(r.body.includes('seawall_breaker_state{breaker="orders",state="forced_open"} 1\n'));
    parseExposition(r.body);
    r = await request(port, 'HEAD', '/metrics');
    assert.equal(r.status, 200);
    assert.equal(r.body, '');
    r = await request(port, 'POST', '/health');
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, 'GET, HEAD');
    r = await request(port, 'GET', '/other');
    assert.equal(r.status, 404);
  });
});

test('observability.handler works as middleware: other paths go to next(); custom paths', async () => {
  const registry = new Registry({ clock: new ManualClock() });
  const mw = observability.handler(registry, { healthPath: '/_/health', metricsPath: '/_/metrics' });
  // A minimal Connect/Express-style chain.
  const app = (req, res) => mw(req, res, () => {
    res.statusCode = 200;
    res.end('app');
  });
  await serve(app, async (port) => {
    assert.equal((await request(port, 'GET', '/orders')).body, 'app');
    assert.equal((await request(port, 'GET', '/health')).body, 'app');
    assert.equal((await request(port, 'GET', '/_/health')).status, 200);
    assert.match((await request(port, 'GET', '/_/metrics')).body, /^# HELP seawall_breaker_state/);
  });
  assert.throws(() => observability.handler({}), { code: 'SEAWALL_INVALID_ARGUMENT' });
  assert.throws(() => observability.handler(registry, { healthPath: 'health' }), (e) => e.field === 'healthPath');
});

test('each cache store is a health check: down or degraded per its criticality', async () => {
  const { RedisStore } = require('seawall');
  const net = require('node:net');
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const gone = new RedisStore({ url: `redis://127.0.0.1:${port}`, connectTimeout: 200 });
  const r = new Registry();
  r.idempotencyCache('local');
  r.idempotencyCache('search', { store: gone, onStoreError: 'run' });
  let h = await r.health();
  assert.equal(h.status, 'degraded', JSON.stringify(h));
  const local = h.checks['idempotency:local'];
  const search = h.checks['idempotency:search'];
  assert.deepEqual([local.kind, local.ok, local.status], ['store', true, 'ok']);
  assert.deepEqual([search.kind, search.ok, search.critical, search.status], ['store', false, false, 'degraded']);
  assert.match(search.error, /^redis store unavailable: /);
  assert.equal(r.idempotencyCaches().get('search').options.critical, false);

  r.idempotencyCache('payments', { store: gone });
  h = await r.health();
  assert.equal(h.status, 'down', JSON.stringify(h));
  assert.equal(h.checks['idempotency:payments'].critical, true);
  assert.match(r.prometheus(), /seawall_health_check_up\{check="idempotency:payments",kind="store"\} 0/);
  assert.throws(
    () => r.idempotencyCache('bad', { critical: 'yes' }),
    (e) => e.code === 'SEAWALL_CONFIG' && e.field === 'critical' && /"yes"/.test(e.message),
  );
});
