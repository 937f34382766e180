'use strict';
// The idempotency cache leaves nothing behind: the process exits once waiters settle (the
// thread-safe function that wakes the loop holds it only while duplicates on the system
// clock wait), and the JS heap stays flat over many runs. Children run the installed package.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');

const pkg = JSON.stringify(require.resolve('seawall'));

function runChild(code, args = [], limitMs = 60_000) {
  const started = Date.now();
  const r = spawnSync(process.execPath, [...args, '-e', code], { encoding: 'utf8', timeout: limitMs });
  return { ...r, elapsed: Date.now() - started };
}

test('the process stays alive while duplicates wait on the system clock, and exits once they settle', () => {
  const code = `
    const { IdempotencyCache } = require(${pkg});
    const cache = new IdempotencyCache({ lease: 60000, waitTimeout: 300 });
    const t0 = Date.now();
    cache.run('hang', () => new Promise(() => {}));            // an owner that never finishes
    const waits = Array.from({ length: 50 }, () => cache.run('hang', () => 1).catch((e) => e.code));
    let release;
    const owner = cache.run('k', () => new Promise((r) => (release = r)));
    const dups = Array.from({ length: 50 }, () => cache.run('k', () => 'dup'));
    setTimeout(() => release('done'), 20);
    Promise.all([owner, ...dups, ...waits]).then((all) => {
      const codes = new Set(all.slice(51));
      console.log(all[0], all.slice(1, 51).every((v) => v === 'done'), [...codes].join(), Date.now() - t0 >= 290);
    });
  `;
  const r = runChild(code, [], 30_000);
  assert.equal(r.error, undefined, `the child did not exit by itself (${r.error && r.error.message})`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'done true SEAWALL_IDEMPOTENCY_IN_PROGRESS true');
  assert.ok(r.elapsed < 10_000, `the child took ${r.elapsed} ms to exit`);
});

test('caches and stores that nobody waits on never keep the process alive', () => {
  const code = `
    const { IdempotencyCache, ManualClock, MemoryStore } = require(${pkg});
    const cache = new IdempotencyCache({ store: new MemoryStore() });
    cache.run('k', () => 1).then((v) => console.log('ran', v));
    // A duplicate waiting on a ManualClock that nobody advances does not hold the loop.
    const clock = new ManualClock();
    const manual = new IdempotencyCache({ clock });
    manual.run('m', () => new Promise(() => {}));
    manual.run('m', () => 2).then(() => console.log('never'));
  `;
  const r = runChild(code, [], 30_000);
  assert.equal(r.error, undefined, 'the child exits by itself');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'ran 1');
  assert.ok(r.elapsed < 10_000);
});

test('the JS heap stays flat over many runs, replays and waits', () => {
  const code = `
    const { IdempotencyCache, ManualClock } = require(${pkg});
    const clock = new ManualClock();
    const cache = new IdempotencyCache({ clock, maxEntries: 1000, lease: 10 });
    async function round(base) {
      for (let i = 0; i < 20000; i++) await cache.run('r', () => ({ ok: true }));
      for (let i = 0; i < 20000; i++) await cache.run('f' + (base + i), () => i);
      for (let i = 0; i < 200; i++) {
        let release;
        const o = cache.run('w' + (base + i), () => new Promise((r) => (release = r)));
        const d = cache.run('w' + (base + i), () => 0);
        release(i);
        await Promise.all([o, d]);
      }
    }
    (async () => {
      await round(0);
      global.gc();
      const before = process.memoryUsage().heapUsed;
      for (let k = 1; k <= 5; k++) await round(k * 100000);
      global.gc();
      const grown = process.memoryUsage().heapUsed - before;
      console.log(JSON.stringify({ grown, waiting: cache.waiting, timers: clock.pendingTimers }));
    })();
  `;
  const r = runChild(code, ['--expose-gc'], 120_000);
  assert.equal(r.status, 0, r.stderr);
  const { grown, waiting, timers } = JSON.parse(r.stdout);
  assert.equal(waiting, 0);
  assert.equal(timers, 0, 'no waiter timer left on the clock');
  assert.ok(grown < 2 * 1024 * 1024, `heap grew by ${grown} bytes over 200k runs`);
});
