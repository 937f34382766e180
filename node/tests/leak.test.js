'use strict';
// Nothing is left behind once a call under a deadline settles: no timer keeps the process
// alive, no Timeout handle stays active, the heap stays flat over a million calls.
// Children run the installed package (resolved here, so they load the same copy).

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { setImmediate: tick } = require('node:timers/promises');

const { timeout, withDeadline, CircuitBreaker, ManualClock } = require('seawall');

const pkg = JSON.stringify(require.resolve('seawall'));

function runChild(code, args = [], limitMs = 60_000) {
  const started = Date.now();
  const r = spawnSync(process.execPath, [...args, '-e', code], { encoding: 'utf8', timeout: limitMs });
  return { ...r, elapsed: Date.now() - started };
}

const countTimeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

test('the process exits promptly after calls with long timeouts settle', () => {
  const code = `
    const { timeout, CircuitBreaker, withDeadline } = require(${pkg});
    const breaker = new CircuitBreaker({ timeout: 600000 });
    const work = () => new Promise((r) => setTimeout(() => r('ok'), 5));
    (async () => {
      const out = [];
      out.push(await timeout(600000, work));
      out.push(await timeout(600000, async () => { throw new Error('fail'); }).catch((e) => e.message));
      const ac = new AbortController();
      const p = timeout(600000, () => new Promise(() => {}), { signal: ac.signal });
      ac.abort(new Error('aborted'));
      out.push(await p.catch((e) => e.message));
      out.push(await breaker.execute(work));
      out.push(await withDeadline(600000, () => timeout(600000, () => timeout(600000, work))));
      console.log(out.join(','));
    })();
  `;
  const r = runChild(code, [], 30_000);
  assert.equal(r.error, undefined, `the child did not exit by itself (${r.error && r.error.message})`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'ok,fail,aborted,ok,ok');
  assert.ok(r.elapsed < 10_000, `the child took ${r.elapsed} ms to exit (its timers were 10 minutes)`);
});

test('no Timeout handle stays active after calls settle (resolve, reject, timeout, abort, breaker, nested)', async () => {
  const before = countTimeouts();
  const breaker = new CircuitBreaker({ timeout: 60_000 });
  const pending = [];
  pending.push(timeout(60_000, async () => 1));
  pending.push(timeout(60_000, async () => Promise.reject(new Error('x'))).catch(() => {}));
  pending.push(timeout(5, () => new Promise(() => {})).catch(() => {}));
  const ac = new AbortController();
  pending.push(timeout(60_000, () => new Promise(() => {}), { signal: ac.signal }).catch(() => {}));
  pending.push(breaker.execute(async () => 2));
  pending.push(withDeadline(60_000, () => timeout(60_000, () => timeout(60_000, async () => 3))));
  assert.ok(countTimeouts() > before, 'pending calls hold timers (the check can fail)');
  ac.abort(new Error('stop'));
  await Promise.all(pending);
  await tick();
  assert.equal(countTimeouts(), before, `active resources: ${process.getActiveResourcesInfo().join(', ')}`);
});

test('on a ManualClock, settled calls leave no timer on the clock', async () => {
  const clock = new ManualClock();
  const breaker = new CircuitBreaker({ timeout: 100, clock });
  for (let i = 0; i < 1000; i++) {
    await timeout(100, async () => i, { clock });
    await breaker.execute(async () => i);
    await timeout(100, async () => Promise.reject(new Error('x')), { clock }).catch(() => {});
  }
  const hung = timeout(100, () => new Promise(() => {}), { clock });
  assert.equal(clock.pendingTimers, 1);
  clock.advance(100);
  await hung.catch(() => {});
  assert.equal(clock.pendingTimers, 0);
});

test('the heap stays flat over a million calls (bounded run time)', () => {
  const code = `
    const { timeout, CircuitBreaker, ManualClock } = require(${pkg});
    const asyncNoop = async () => undefined;
    const syncNoop = () => undefined;
    const breaker = new CircuitBreaker({ timeout: 1000 });
    const clock = new ManualClock();
    const heap = () => { gc(); gc(); return process.memoryUsage().heapUsed; };
    const batch = async (n) => {
      for (let i = 0; i < n; i++) {
        switch (i & 3) {
          case 0: await timeout(1000, asyncNoop); break;
          case 1: await timeout(1000, syncNoop); break;
          case 2: await breaker.execute(asyncNoop); break;
          default: await timeout(1000, asyncNoop, { clock });
        }
      }
    };
    (async () => {
      const deadline = Date.now() + 45000;
      await batch(100000); // warm up
      const base = heap();
      const samples = [];
      let done = 0;
      while (done < 1000000 && Date.now() < deadline) {
        await batch(250000);
        done += 250000;
        samples.push(heap() - base);
      }
      console.log(JSON.stringify({ done, samples, pending: clock.pendingTimers }));
    })();
  `;
  const r = runChild(code, ['--expose-gc'], 90_000);
  assert.equal(r.error, undefined, `child failed: ${r.error && r.error.message}`);
  assert.equal(r.status, 0, r.stderr);
  const { done, samples, pending } = JSON.parse(r.stdout.trim().split('\n').pop());
  assert.equal(done, 1_000_000, `only ${done} calls ran within the time bound`);
  assert.equal(pending, 0);
  const growth = samples[samples.length - 1];
  console.log(`heap growth after ${done} calls: ${samples.map((b) => `${(b / 1024).toFixed(0)} KiB`).join(', ')}`);
  // A leak of even one small object per call would be tens of MiB.
  assert.ok(growth < 2 * 1024 * 1024, `heap grew by ${growth} bytes over ${done} calls`);
});
