'use strict';
// Soak test of the Node binding: a mixed load for SEAWALL_SOAK_SECS seconds (default 120),
// with memory measured after a warm-up and at the end. Run with --expose-gc:
//
//   SEAWALL_SOAK_SECS=120 node --expose-gc bench/soak/soak.js
//
// Load, round after round (each round awaits its promises, so nothing piles up):
// - breakers through whole cycles on a ManualClock (successes, failures, open, rejections
//   with and without a fallback, half-open probes that fail and succeed), a breaker with a
//   `timeout` option on the system clock (calls that run out), event listeners;
// - timeouts on the system clock (some fire, most settle in time), withDeadline scopes,
//   CancelTokens cancelled at a deadline by the core's timer thread;
// - idempotency on a bounded MemoryStore (maxEntries 500, so fresh keys evict): fresh runs,
//   replays, in-progress duplicates (a held lease, a rejecting cache on the same store),
//   duplicates that wait for the owner, errors that release the key, mismatches;
// - a Registry with maxBreakers 200 fed 1000 tenant names (LRU eviction), a health check,
//   its snapshot and Prometheus text rendered every 10 rounds.
// Memory: heapUsed after gc() and RSS, after the warm-up and at the end. Exits 1 when the
// growth is over the thresholds below, or a part of the load never ran. Prints the figures.
const sw = require(process.env.SEAWALL_SOAK_MODULE || 'seawall');

const SECS = Number(process.env.SEAWALL_SOAK_SECS || 120);
const WARMUP = Math.min(10, Math.max(2, SECS * 0.1));
const HEAP_LIMIT_MB = Number(process.env.SEAWALL_SOAK_HEAP_MB || 2);
// RSS: V8 is still sizing its heap spaces in the first tens of seconds, so a short run
// (the 10 s CI variant, 2 s warm-up: +13 to +19 MB seen) only gets a coarse RSS bound that
// catches a native leak of a few hundred bytes per call; heapUsed is the fine leak guard.
const RSS_LIMIT_MB = Number(process.env.SEAWALL_SOAK_RSS_MB || (SECS < 60 ? 64 : 16));

if (typeof global.gc !== 'function') {
  console.error('soak.js: run with node --expose-gc');
  process.exit(2);
}

const counts = Object.fromEntries(
  ['calls', 'opened', 'rejected', 'fallbacks', 'probes', 'timeouts', 'tokensFired', 'fresh', 'replayed',
    'inProgress', 'waited', 'mismatch', 'released', 'renders'].map((k) => [k, 0]),
);
let events = 0;
class Fail extends Error {}

const clock = new sw.ManualClock();
const breaker = new sw.CircuitBreaker({
  name: 'cycle', consecutiveFailures: 3, openDuration: 1000, clock, halfOpenMaxCalls: 2, halfOpenSuccessThreshold: 2,
});
for (const e of ['stateChange', 'rejected']) breaker.on(e, () => { events++; });
const degraded = new sw.CircuitBreaker({ name: 'degraded', consecutiveFailures: 1, openDuration: 5000, clock, fallback: () => 'fallback' });
const timed = new sw.CircuitBreaker({ name: 'timed', timeout: 1, consecutiveFailures: 1000000 });

const store = new sw.MemoryStore({ maxEntries: 500, maxBytes: 1 << 20 });
const cache = new sw.IdempotencyCache({ name: 'soak', store, lease: 30000 });
const rejecting = new sw.IdempotencyCache({ name: 'soak-reject', store, onDuplicate: 'reject' });
for (const e of ['replay', 'mismatch', 'inProgress']) cache.on(e, () => { events++; });

const registry = new sw.Registry({ maxBreakers: 200 });
registry.addCheck('ok', () => true, { timeout: 1000, interval: 0 });
const regCache = registry.idempotencyCache('reg', { maxEntries: 200 });

const boom = () => { throw new Error('down'); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function breakerCycle() {
  for (let i = 0; i < 5; i++) { await breaker.execute(() => 1); counts.calls++; }
  for (let i = 0; i < 3; i++) await breaker.execute(boom).catch(() => {});
  if (breaker.state !== 'open') throw new Fail(`breaker did not open: ${JSON.stringify(breaker.snapshot())}`);
  counts.opened++;
  const rej = await breaker.execute(() => 1).then(() => null, (e) => e);
  if (!rej || rej.code !== 'SEAWALL_BREAKER_OPEN') throw new Fail('an open breaker admitted a call');
  counts.rejected++;
  clock.advance(1000);
  await breaker.execute(boom).catch(() => {}); // a failing probe re-opens
  clock.advance(1000);
  for (let i = 0; i < 2; i++) { await breaker.execute(() => 1); counts.probes++; }
  if (breaker.state !== 'closed') throw new Fail(`breaker did not close: ${JSON.stringify(breaker.snapshot())}`);
  await degraded.execute(boom).catch(() => {});
  if ((await degraded.execute(() => 1)) !== 'fallback') throw new Fail('no fallback');
  counts.fallbacks++;
  degraded.reset();
  const p = breaker.tryAcquire();
  p.success(1);
  breaker.tryAcquire(); // dropped without an outcome: cancelled when collected
}

async function timeouts(i) {
  await sw.timeout(5000, ({ signal }) => (signal.aborted ? 0 : 1));
  sw.withDeadline(1000, (d) => d.remaining());
  if (i % 20 === 0) {
    const t = await sw.timeout(1, () => sleep(5)).then(() => null, (e) => e);
    if (!t || t.code !== 'SEAWALL_TIMEOUT') throw new Fail('a timeout did not fire');
    counts.timeouts++;
    const b = await timed.execute(({ signal }) => sleep(5)).then(() => null, (e) => e);
    if (!b || b.code !== 'SEAWALL_TIMEOUT') throw new Fail('a breaker timeout did not fire');
    counts.timeouts++;
    const tok = new sw.CancelToken();
    tok.cancelAt(sw.Deadline.after(0.1));
    const end = Date.now() + 2000;
    while (!tok.cancelled && Date.now() < end) await sleep(1);
    if (!tok.cancelled) throw new Fail('the timer thread did not cancel a token');
    counts.tokensFired++;
  }
}

let seq = 0;
async function idempotency(i) {
  const k = `fresh-${++seq}`;
  const n = seq;
  const v = await cache.run(k, () => ({ n, pad: 'x'.repeat(64) }), { fingerprint: { k } });
  if (v.n !== n) throw new Fail('fresh run returned another result');
  counts.fresh++;
  for (let j = 0; j < 3; j++) {
    await cache.run(k, () => { throw new Fail('ran twice'); }, { fingerprint: { k } });
    counts.replayed++;
  }
  const m = await cache.run(k, () => 0, { fingerprint: { k: 'other' } }).then(() => null, (e) => e);
  if (m && m.code === 'SEAWALL_IDEMPOTENCY_MISMATCH') counts.mismatch++;
  // In progress: a held lease; the rejecting cache on the same store refuses the duplicate.
  const held = cache.begin(`held-${i % 50}`);
  if (held.kind === 'execute') {
    const r = await rejecting.run(`held-${i % 50}`, () => 0).then(() => null, (e) => e);
    if (!r || r.code !== 'SEAWALL_IDEMPOTENCY_IN_PROGRESS') throw new Fail('a duplicate ran while the key was in progress');
    counts.inProgress++;
    cache.release(held.lease);
  }
  // A duplicate that waits for its owner.
  if (i % 5 === 0) {
    let release;
    const gate = new Promise((r) => { release = r; });
    const owner = cache.run(`wait-${i}`, async () => { await gate; return i; });
    const dup = cache.run(`wait-${i}`, () => -1);
    release();
    const [a, b] = await Promise.all([owner, dup]);
    if (a !== i || b !== i) throw new Fail('a waiting duplicate got another result');
    counts.waited++;
  }
  await cache.run(`err-${i % 10}`, boom).catch(() => { counts.released++; });
}

async function registryRound(i) {
  for (let j = 0; j < 5; j++) {
    const b = registry.breaker(`tenant-${(i * 5 + j) % 1000}`, { consecutiveFailures: 2 });
    await b.execute(j === 0 ? boom : () => 1).catch(() => {});
  }
  await regCache.run(`r${i % 300}`, () => i);
  if (i % 10 === 0) {
    const text = registry.prometheus();
    const snap = registry.snapshot();
    const rep = await registry.health();
    if (!text.includes('seawall_breaker_state') || !rep.status || !Object.keys(snap.breakers).length) {
      throw new Fail('registry rendering');
    }
    counts.renders++;
  }
}

async function round(i) {
  await breakerCycle();
  await timeouts(i);
  await idempotency(i);
  await registryRound(i);
}

function measure() {
  global.gc();
  global.gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed / 2 ** 20, rss: m.rss / 2 ** 20, external: m.external / 2 ** 20 };
}

async function main() {
  const start = performance.now();
  const elapsed = () => (performance.now() - start) / 1000;
  let i = 0;
  while (elapsed() < WARMUP) await round(i++);
  await sleep(10);
  const m0 = measure();
  const warmRounds = i;
  while (elapsed() < SECS) await round(i++);
  await sleep(10);
  const m1 = measure();
  const heapGrowth = m1.heap - m0.heap;
  const rssGrowth = m1.rss - m0.rss;
  console.log(`soak.js: ${elapsed().toFixed(1)} s (${WARMUP.toFixed(0)} s warm-up), ${i} rounds (${i - warmRounds} measured), node ${process.version}, seawall ${sw.version}`);
  console.log(`soak.js: counts ${Object.entries(counts).map(([k, v]) => `${k}=${v}`).join(' ')} events=${events}`);
  console.log(`soak.js: store ${JSON.stringify(store.stats())}, registry breakers ${registry.breakerNames().length}, cache waiting ${cache.waiting}`);
  console.log(`soak.js: heapUsed after gc: ${m0.heap.toFixed(2)} MB after warm-up, ${m1.heap.toFixed(2)} MB at the end, growth ${heapGrowth >= 0 ? '+' : ''}${heapGrowth.toFixed(3)} MB (limit ${HEAP_LIMIT_MB} MB)`);
  console.log(`soak.js: RSS: ${m0.rss.toFixed(1)} MB after warm-up, ${m1.rss.toFixed(1)} MB at the end, growth ${rssGrowth >= 0 ? '+' : ''}${rssGrowth.toFixed(2)} MB (limit ${RSS_LIMIT_MB} MB); external ${m0.external.toFixed(2)} -> ${m1.external.toFixed(2)} MB`);
  let ok = true;
  if (heapGrowth > HEAP_LIMIT_MB) { console.error(`soak.js: FAILED: heapUsed grew ${heapGrowth.toFixed(3)} MB`); ok = false; }
  if (rssGrowth > RSS_LIMIT_MB) { console.error(`soak.js: FAILED: RSS grew ${rssGrowth.toFixed(2)} MB`); ok = false; }
  if (Math.min(...Object.values(counts)) === 0) { console.error(`soak.js: FAILED: a part of the load never ran: ${JSON.stringify(counts)}`); ok = false; }
  console.log(ok ? 'soak.js: ok' : 'soak.js: FAILED');
  process.exitCode = ok ? 0 : 1;
}

main().catch((err) => {
  console.error('soak.js: FAILED:', err);
  process.exitCode = 1;
});
