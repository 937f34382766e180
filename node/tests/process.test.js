'use strict';
// Process safety (docs/hardening.md, "Bindings: process safety"): the addon loaded in several
// worker_threads at once (each its own Node-API environment), and in cluster (fork) workers.
// Each uses a breaker, a timeout and an idempotency cache (fresh, replayed, a duplicate that
// waits for its owner), exits cleanly, and the main thread keeps working afterwards. Children
// run under a time limit, so a hang fails the test.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { Worker } = require('node:worker_threads');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const sw = require('seawall');

const pkg = JSON.stringify(require.resolve('seawall'));

// What every worker (thread or process) does; returns a summary.
const WORK = `
const sw = require(${pkg});
async function work(id) {
  const clock = new sw.ManualClock();
  const b = new sw.CircuitBreaker({ name: 'w' + id, consecutiveFailures: 2, openDuration: 1000, clock });
  for (let i = 0; i < 2; i++) await b.execute(() => { throw new Error('down'); }).catch(() => {});
  const opened = b.state;
  const rejected = await b.execute(() => 1).then(() => null, (e) => e.code);
  clock.advance(1000);
  const probe = await b.execute(() => 'probe');
  const t = await sw.timeout(5, () => new Promise((r) => setTimeout(r, 200))).then(() => null, (e) => e.code);
  const inTime = await sw.timeout(1000, () => 'in time');
  const tok = new sw.CancelToken();
  tok.cancelAt(sw.Deadline.after(1));
  const end = Date.now() + 5000;
  while (!tok.cancelled && Date.now() < end) await new Promise((r) => setTimeout(r, 2));
  const cache = new sw.IdempotencyCache({ name: 'c' + id, maxEntries: 100 });
  let runs = 0;
  const fresh = await cache.run('k', () => { runs++; return { id }; });
  const replay = await cache.run('k', () => { runs++; return 'again'; });
  let release;
  const gate = new Promise((r) => { release = r; });
  const owner = cache.run('w', async () => { runs++; await gate; return 'owner'; });
  const dup = cache.run('w', () => { runs++; return 'dup'; });
  setTimeout(release, 5);
  const waited = await Promise.all([owner, dup]);
  const reg = new sw.Registry();
  await reg.breaker('db').execute(() => 1);
  return { id, opened, rejected, probe, t, inTime, token: tok.reason, fresh, replay, waited, runs,
           metrics: reg.prometheus().includes('seawall_breaker_state{breaker="db"'), timers: clock.pendingTimers };
}
`;

function check(got, id) {
  assert.deepEqual(got, {
    id,
    opened: 'open',
    rejected: 'SEAWALL_BREAKER_OPEN',
    probe: 'probe',
    t: 'SEAWALL_TIMEOUT',
    inTime: 'in time',
    token: 'deadline_exceeded',
    fresh: { id },
    replay: { id },
    waited: ['owner', 'owner'],
    runs: 2,
    metrics: true,
    timers: 0,
  });
}

async function mainThreadStillWorks() {
  const clock = new sw.ManualClock();
  const b = new sw.CircuitBreaker({ consecutiveFailures: 1, clock });
  await b.execute(() => { throw new Error('x'); }).catch(() => {});
  assert.equal(b.state, 'open');
  await assert.rejects(sw.timeout(5, () => new Promise((r) => setTimeout(r, 100))), { code: 'SEAWALL_TIMEOUT' });
  const c = new sw.IdempotencyCache();
  assert.equal(await c.run('main', () => 1), 1);
  assert.equal(await c.run('main', () => 2), 1);
  const tok = new sw.CancelToken();
  tok.cancelAt(sw.Deadline.after(1));
  for (let i = 0; i < 1000 && !tok.cancelled; i++) await new Promise((r) => setTimeout(r, 2));
  assert.equal(tok.reason, 'deadline_exceeded');
}

test('several worker_threads load the addon at once, use it and exit cleanly', { timeout: 60_000 }, async () => {
  // The main thread uses the addon first, and keeps a cache with a waiting duplicate
  // across the workers' lives.
  const cache = new sw.IdempotencyCache();
  let release;
  const gate = new Promise((r) => { release = r; });
  const owner = cache.run('across', async () => { await gate; return 'main'; });
  const dup = cache.run('across', () => 'dup');
  const code = `${WORK}
const { parentPort, workerData } = require('node:worker_threads');
work(workerData).then((r) => parentPort.postMessage(r), (e) => { parentPort.postMessage({ error: String(e && e.stack) }); });`;
  for (let round = 0; round < 2; round++) {
    const workers = [0, 1, 2, 3].map((i) => new Worker(code, { eval: true, workerData: round * 10 + i }));
    const results = await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
      let msg;
      w.on('message', (m) => { msg = m; });
      w.on('error', reject);
      w.on('exit', (exitCode) => resolve({ exitCode, msg }));
    })));
    results.forEach(({ exitCode, msg }, i) => {
      assert.equal(exitCode, 0, `worker ${i}: exit ${exitCode}`);
      assert.equal(msg.error, undefined, msg.error);
      check(msg, round * 10 + i);
    });
  }
  // A worker terminated while its cache has a waiting duplicate and a timeout pending.
  const stuck = new Worker(`${WORK}
const c = new sw.IdempotencyCache();
c.run('s', () => new Promise(() => {}));
c.run('s', () => 1);
sw.timeout(60000, () => new Promise(() => {}));
require('node:worker_threads').parentPort.postMessage('ready');`, { eval: true });
  await new Promise((r) => stuck.once('message', r));
  assert.equal(await stuck.terminate(), 1);
  release();
  assert.deepEqual(await Promise.all([owner, dup]), ['main', 'main']);
  await mainThreadStillWorks();
});

test('cluster (fork) workers use the addon and exit cleanly; the primary keeps working', { timeout: 60_000 }, async () => {
  const script = `${WORK}
const cluster = require('node:cluster');
if (cluster.isPrimary) {
  const sw0 = require(${pkg});
  new sw0.CircuitBreaker().execute(() => 1);   // the primary used the addon before forking
  const results = [];
  let exits = 0, bad = 0;
  for (let i = 0; i < 3; i++) {
    const w = cluster.fork({ SEAWALL_WORKER_ID: String(i) });
    w.on('message', (m) => results.push(m));
    w.on('exit', (code, signal) => {
      if (code !== 0) bad++;
      if (++exits === 3) {
        work(99).then((mine) => {
          process.stdout.write(JSON.stringify({ results: results.sort((a, b) => a.id - b.id), bad, mine }));
        });
      }
    });
  }
} else {
  work(Number(process.env.SEAWALL_WORKER_ID)).then((r) => { process.send(r, () => process.disconnect()); },
    (e) => { process.send({ error: String(e && e.stack) }, () => process.exit(1)); });
}`;
  // cluster.fork re-runs the primary's script file: write it out (not `-e`).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'seawall-cluster-'));
  const file = path.join(dir, 'cluster.js');
  fs.writeFileSync(file, script);
  const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 60_000 });
  fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(r.status, 0, `primary exited ${r.status} (${r.signal}): ${r.stderr}`);
  const out = JSON.parse(r.stdout);
  assert.equal(out.bad, 0, 'a cluster worker exited with a non-zero code');
  assert.equal(out.results.length, 3);
  out.results.forEach((m, i) => {
    assert.equal(m.error, undefined, m.error);
    check(m, i);
  });
  check(out.mine, 99);
  await mainThreadStillWorks();
});
