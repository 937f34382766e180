'use strict';
// IdempotencyCache: run() (sync and async, replay, errors, serialisation, fingerprints),
// waiting duplicates (woken by completion, takeover, timeouts) without blocking the event
// loop, the low-level API, the record format shared with the other languages, and races of
// hundreds of concurrent promises, with and without crashed owners.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');

const {
  IdempotencyCache,
  IdempotencyRecord,
  MemoryStore,
  ManualClock,
  SystemClock,
  canonicalJson,
  fingerprint,
} = require('seawall');

const tick = () => new Promise((r) => setImmediate(r));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function manual(options = {}) {
  const clock = new ManualClock();
  return { clock, cache: new IdempotencyCache({ clock, ...options }) };
}

// --- run() ---

test('run executes once per key and replays the stored result to every later call', async () => {
  const { cache } = manual();
  let runs = 0;
  const first = await cache.run('order-1', () => {
    runs++;
    return { id: 1, items: ['a'] };
  });
  const second = await cache.run('order-1', () => {
    runs++;
    return { id: 2 };
  });
  assert.deepEqual(first, { id: 1, items: ['a'] });
  assert.deepEqual(second, { id: 1, items: ['a'] });
  assert.notEqual(first, second, 'each caller gets its own copy');
  assert.equal(runs, 1);
  const s = cache.stats();
  assert.equal(s.executed, 1);
  assert.equal(s.replayed, 1);
  assert.equal(s.completed, 1);
});

test('async functions: the result is awaited, stored and replayed', async () => {
  const { cache } = manual();
  const r = await cache.run('k', async () => {
    await tick();
    return 'late';
  });
  assert.equal(r, 'late');
  assert.equal(await cache.run('k', () => 'other'), 'late');
});

test('the caller that runs gets what duplicates get: the stored (JSON) form', async () => {
  const { cache } = manual();
  const when = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
  const first = await cache.run('d', () => ({ when, missing: undefined }));
  assert.deepEqual(first, { when: '2024-01-02T03:04:05.000Z' });
  assert.deepEqual(await cache.run('d', () => null), first);
  // undefined is stored as null (JSON has no undefined).
  assert.equal(await cache.run('u', () => undefined), null);
  assert.equal(await cache.run('u', () => 5), null);
});

test('Buffers and typed arrays are stored as bytes (application/octet-stream) and replayed as Buffers', async () => {
  const { cache } = manual();
  const out = await cache.run('b', () => Buffer.from([0, 1, 2, 255]));
  assert.ok(Buffer.isBuffer(out));
  assert.deepEqual([...out], [0, 1, 2, 255]);
  const again = await cache.run('b', () => Buffer.from('x'));
  assert.ok(Buffer.isBuffer(again));
  assert.deepEqual([...again], [0, 1, 2, 255]);
  const rec = cache.peek('b').record;
  assert.equal(rec.contentType, 'application/octet-stream');
  assert.deepEqual([...rec.result], [0, 1, 2, 255]);
  const u8 = await cache.run('u8', () => new Uint8Array([9, 8]));
  assert.ok(Buffer.isBuffer(u8));
  assert.deepEqual([...u8], [9, 8]);
  assert.equal(cache.peek('u8').record.contentType, 'application/octet-stream');
  assert.equal(cache.peek('b').state, 'completed');
});

test('fn receives a context with the key; renew extends the lease; the context is spent after the run', async () => {
  const { clock, cache } = manual({ lease: 1000 });
  let saved;
  await cache.run('ctx', (ctx) => {
    saved = ctx;
    assert.equal(ctx.key, 'ctx');
    assert.equal(ctx.tookOver, false);
    clock.advance(600);
    assert.equal(ctx.renew(), 1000);
    clock.advance(600); // 1200 ms after the claim: alive only thanks to renew
    return 'ok';
  });
  assert.equal(cache.peek('ctx').state, 'completed');
  assert.throws(() => saved.renew(), { code: 'SEAWALL_LEASE_LOST' });
});

test('fingerprints: same payload replays, another payload is a mismatch (code, key)', async () => {
  const { cache } = manual();
  await cache.run('pay', () => 'charged', { fingerprint: { amount: 100, currency: 'EUR' } });
  // Key order does not matter: the canonical form sorts keys.
  assert.equal(await cache.run('pay', () => 'again', { fingerprint: { currency: 'EUR', amount: 100 } }), 'charged');
  await assert.rejects(cache.run('pay', () => 'x', { fingerprint: { amount: 200, currency: 'EUR' } }), (err) => {
    assert.equal(err.code, 'SEAWALL_IDEMPOTENCY_MISMATCH');
    assert.equal(err.key, 'pay');
    assert.match(err.message, /different request payload/);
    return true;
  });
  // No fingerprint matches only "no fingerprint".
  await assert.rejects(cache.run('pay', () => 'x'), { code: 'SEAWALL_IDEMPOTENCY_MISMATCH' });
  // Strings are hashed as their UTF-8 bytes, Buffers as their bytes: the same payload.
  await cache.run('s', () => 1, { fingerprint: 'body' });
  assert.equal(await cache.run('s', () => 2, { fingerprint: Buffer.from('body') }), 1);
  assert.equal(await cache.run('s', () => 2, { fingerprint: new TextEncoder().encode('body').buffer }), 1);
  // null is "no fingerprint".
  await cache.run('n', () => 1, { fingerprint: null });
  assert.equal(await cache.run('n', () => 2), 1);
  assert.equal(cache.stats().mismatched, 2);
});

test('canonical JSON matches Python json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)', () => {
  const payload = {
    b: [1, 1.5, 1e-7, 0.0001, -2.5e-5, 123456.789, 1e300, 2n ** 60n, -0.5, 'é\u2028"\\\n\u0001/'],
    a: null,
    é: true,
    z: { '\u{1F600}': 1, '\uffff': 2, A: 3, a: [], '': {} },
    t: false,
  };
  // Produced by: python3 -c 'import json; print(json.dumps(p, sort_keys=True,
  //   separators=(",", ":"), ensure_ascii=False))' for the same data (2**60 an int, 1e300 a float).
  const python =
    '{"a":null,"b":[1,1.5,1e-07,0.0001,-2.5e-05,123456.789,1e+300,1152921504606846976,-0.5,"é\u2028\\"\\\\\\n\\u0001/"],' +
    '"t":false,"z":{"":{},"A":3,"a":[],"\uffff":2,"\u{1F600}":1},"é":true}';
  assert.equal(canonicalJson(payload), python);
  assert.equal(fingerprint(payload), '9815bc7456d5b7ee29dd08e7122f628d6017fa13cd0973d668d3abf62b9a9191');
  assert.equal(fingerprint(payload), crypto.createHash('sha256').update(python, 'utf8').digest('hex'));
  // Floats are written as Python's repr writes them.
  const cases = [
    [0.1, '0.1'],
    [1e-5, '1e-05'],
    [123e-20, '1.23e-18'],
    [2 ** 53, '9007199254740992.0'],
    [1e16, '1e+16'],
    [1.5e300, '1.5e+300'],
    [-1e-300, '-1e-300'],
    [5e-324, '5e-324'],
    [0.000123, '0.000123'],
  ];
  for (const [x, want] of cases) assert.equal(canonicalJson(x), want, String(x));
  assert.equal(canonicalJson([undefined, () => 1]), '[null,null]');
  assert.equal(canonicalJson({ a: undefined, b: 1 }), '{"b":1}');
  assert.throws(() => canonicalJson({ x: NaN }), { code: 'SEAWALL_INVALID_ARGUMENT' });
  const cyclic = {};
  cyclic.self = cyclic;
  assert.throws(() => canonicalJson(cyclic), /circular/);
  // When Python is here, ask it too (the expected text above is what it printed).
  const py = spawnSync(
    'python3',
    ['-c', 'import json,sys; print(json.dumps(json.loads(sys.stdin.read()), sort_keys=True, separators=(",", ":"), ensure_ascii=False), end="")'],
    { input: JSON.stringify({ k: [1, 2.5, 'é', { y: 1, x: [0.0001, 1e-7] }], a: { '\u{1F600}': 0, '\uffff': 1 } }), encoding: 'utf8' },
  );
  if (py.status === 0) {
    assert.equal(canonicalJson({ k: [1, 2.5, 'é', { y: 1, x: [0.0001, 1e-7] }], a: { '\u{1F600}': 0, '\uffff': 1 } }), py.stdout);
  }
});

test('an error releases the key (the retry runs) and reaches the caller unchanged', async () => {
  const { cache } = manual();
  const boom = new Error('card declined');
  let runs = 0;
  await assert.rejects(
    cache.run('e', () => {
      runs++;
      throw boom;
    }),
    (err) => err === boom,
  );
  await assert.rejects(
    cache.run('e', async () => {
      runs++;
      throw boom;
    }),
    (err) => err === boom,
  );
  assert.equal(cache.peek('e').state, 'absent');
  assert.equal(await cache.run('e', () => ++runs), 3);
  assert.equal(cache.stats().released, 2);
});

test('cacheErrors stores the error; duplicates get it again, rebuilt (name, message, code)', async () => {
  const { cache } = manual({ cacheErrors: true });
  class PaymentError extends Error {
    constructor(m) {
      super(m);
      this.name = 'PaymentError';
      this.code = 'E_DECLINED';
    }
  }
  const original = new PaymentError('card declined');
  await assert.rejects(
    cache.run('p', () => {
      throw original;
    }),
    (err) => err === original,
  );
  let ran = false;
  await assert.rejects(
    cache.run('p', () => {
      ran = true;
    }),
    (err) => {
      assert.ok(err instanceof Error);
      assert.equal(err.name, 'PaymentError');
      assert.equal(err.message, 'card declined');
      assert.equal(err.code, 'E_DECLINED');
      return true;
    },
  );
  assert.equal(ran, false);
  const rec = cache.peek('p').record;
  assert.equal(rec.error, true);
  assert.equal(rec.contentType, 'application/json');
  assert.deepEqual(JSON.parse(rec.result.toString()), { type: 'PaymentError', message: 'card declined', code: 'E_DECLINED' });
  assert.throws(() => rec.value(), { name: 'PaymentError', message: 'card declined' });
  // Built-in error types come back as themselves.
  await assert.rejects(
    cache.run('t', () => {
      throw new TypeError('bad');
    }),
    TypeError,
  );
  await assert.rejects(cache.run('t', () => 1), (err) => err instanceof TypeError && err.message === 'bad');
});

test('ctx.abandon(): a failure after side effects keeps the claim until the lease expires', async () => {
  const { clock, cache } = manual({ lease: 1000, waitTimeout: 5000 });
  await assert.rejects(
    cache.run('a', (ctx) => {
      ctx.abandon();
      throw new Error('crashed after charging');
    }),
    /crashed/,
  );
  assert.equal(cache.peek('a').state, 'in_progress');
  assert.equal(cache.stats().abandoned, 1);
  let ran = 0;
  const dup = cache.run('a', (ctx) => {
    ran++;
    assert.equal(ctx.tookOver, true);
    return 'recovered';
  });
  await tick();
  assert.equal(ran, 0, 'the duplicate waits while the abandoned lease holds');
  clock.advance(1000);
  assert.equal(await dup, 'recovered');
  assert.equal(ran, 1);
  assert.equal(cache.stats().takenOver, 1);
});

test('a result that cannot be serialised is refused, nothing is stored and the key is released', async () => {
  const { cache } = manual();
  await assert.rejects(cache.run('big', () => 10n), (err) => {
    assert.ok(err instanceof TypeError);
    assert.equal(err.code, 'SEAWALL_INVALID_ARGUMENT');
    assert.match(err.message, /cannot store the result of idempotency key "big".*BigInt.*the key was released/);
    return true;
  });
  assert.equal(cache.peek('big').state, 'absent');
  assert.equal(await cache.run('big', () => 'fine'), 'fine');
});

test('a result over maxResultBytes is refused by the core; the key stays usable', async () => {
  const { cache } = manual({ maxResultBytes: 8 });
  await assert.rejects(cache.run('k', () => 'x'.repeat(20)), (err) => {
    assert.equal(err.code, 'SEAWALL_INVALID_ARGUMENT');
    assert.match(err.message, /22 bytes, over maxResultBytes \(8\)/);
    return true;
  });
  assert.equal(cache.peek('k').state, 'absent');
  assert.equal(await cache.run('k', () => 'ok'), 'ok');
});

test('bad keys and arguments reject (never throw synchronously) with SEAWALL_INVALID_ARGUMENT', async () => {
  const { cache } = manual();
  const cases = [
    ['', /empty/],
    ['k'.repeat(256), /256 bytes/],
    ['é'.repeat(128), /256 bytes/],
    [42, /key = <number>/],
    [undefined, /key = <undefined>/],
  ];
  for (const [key, msg] of cases) {
    let p;
    assert.doesNotThrow(() => {
      p = cache.run(key, () => 1);
    });
    await assert.rejects(p, (err) => err.code === 'SEAWALL_INVALID_ARGUMENT' && msg.test(err.message));
  }
  assert.equal(await cache.run('é'.repeat(127), () => 'fits'), 'fits');
  await assert.rejects(cache.run('k', 'not a function'), { code: 'SEAWALL_INVALID_ARGUMENT' });
  await assert.rejects(cache.run('k', () => 1, 'opts'), { code: 'SEAWALL_INVALID_ARGUMENT' });
  await assert.rejects(cache.run('k', () => 1, { fingerprint: { bad: NaN } }), { code: 'SEAWALL_INVALID_ARGUMENT' });
  await assert.rejects(cache.run('k', () => 1, { fingerprint: Symbol('s') }), { code: 'SEAWALL_INVALID_ARGUMENT' });
});

test('options go through the core: camelCase names, ms, errors naming field and value', () => {
  const c = new IdempotencyCache({ name: 'orders', ttl: 60_000, lease: 5000, onDuplicate: 'reject', clock: new ManualClock() });
  assert.equal(c.name, 'orders');
  const o = c.options;
  assert.equal(o.ttl, 60_000);
  assert.equal(o.lease, 5000);
  assert.equal(o.waitTimeout, 5000, 'defaults to the lease');
  assert.equal(o.onDuplicate, 'reject');
  assert.equal(o.maxEntries, 10_000);
  assert.throws(() => new IdempotencyCache({ ttl: -1 }), (e) => e.code === 'SEAWALL_CONFIG' && e.field === 'ttl' && e.value === '-1ms');
  assert.throws(() => new IdempotencyCache({ ttl: '1h' }), (e) => e instanceof TypeError && e.code === 'SEAWALL_CONFIG');
  assert.throws(() => new IdempotencyCache({ onDuplicate: 'later' }), (e) => e.field === 'onDuplicate' && /"wait" or "reject"/.test(e.message));
  assert.throws(() => new IdempotencyCache({ cacheErrors: 1 }), (e) => e instanceof TypeError && e.field === 'cacheErrors');
  assert.throws(() => new IdempotencyCache({ maxEntries: 0 }), (e) => e.field === 'maxEntries');
  assert.throws(() => new IdempotencyCache({ max_bytes: 10 }), (e) => e.code === 'SEAWALL_CONFIG');
  assert.throws(() => new IdempotencyCache({ bogus: 1 }), (e) => e.field === 'bogus' && /unknown option/.test(e.message));
  assert.throws(() => new IdempotencyCache({ clock: {} }), (e) => e.field === 'clock');
  assert.throws(() => new IdempotencyCache({ store: {} }), (e) => e.field === 'store');
  assert.throws(() => new IdempotencyCache({ serializer: { serialize() {} } }), (e) => e.field === 'serializer');
  assert.throws(() => new IdempotencyCache(null), { code: 'SEAWALL_INVALID_ARGUMENT' });
  assert.ok(new IdempotencyCache({ clock: new SystemClock(), ttl: undefined }).clock instanceof SystemClock);
});

test('a custom serializer stores and replays its own bytes and content type', async () => {
  const serializer = {
    serialize: (v) => ({ bytes: `v=${v}`, contentType: 'text/plain' }),
    deserialize: (bytes, ct) => {
      assert.equal(ct, 'text/plain');
      return bytes.toString('utf8').slice(2);
    },
  };
  const { cache } = manual({ serializer });
  assert.equal(cache.serializer, serializer);
  assert.equal(await cache.run('s', () => 42), '42');
  assert.equal(await cache.run('s', () => 0), '42');
  const rec = cache.peek('s').record;
  assert.equal(rec.contentType, 'text/plain');
  assert.equal(rec.result.toString(), 'v=42');
  assert.equal(rec.value(), '42');
  const broken = new IdempotencyCache({ clock: new ManualClock(), serializer: { serialize: () => 7, deserialize: () => 0 } });
  await assert.rejects(broken.run('k', () => 1), (e) => e.code === 'SEAWALL_INVALID_ARGUMENT' && /serializer/.test(e.message));
  assert.equal(broken.peek('k').state, 'absent');
});

test('wrap(fn, { key, fingerprint }) runs fn through run with a key from the arguments', async () => {
  const { cache } = manual();
  let runs = 0;
  const charge = cache.wrap(
    async function charge(order, amount) {
      runs++;
      return { order, amount, by: this && this.who };
    },
    { key: (order) => `charge:${order}`, fingerprint: (order, amount) => ({ amount }) },
  );
  assert.equal(charge.name, 'charge');
  const who = { who: 'svc', charge };
  assert.deepEqual(await who.charge('o1', 5), { order: 'o1', amount: 5, by: 'svc' });
  assert.deepEqual(await charge('o1', 5), { order: 'o1', amount: 5, by: 'svc' });
  await assert.rejects(charge('o1', 6), { code: 'SEAWALL_IDEMPOTENCY_MISMATCH' });
  assert.equal(runs, 1);
  assert.throws(() => cache.wrap(() => 1), { code: 'SEAWALL_INVALID_ARGUMENT' });
});

// --- duplicates in progress ---

test('duplicates in progress wait for the result and never run (woken by the completion)', async () => {
  const { cache } = manual();
  let release;
  const gate = new Promise((r) => (release = r));
  let runs = 0;
  const owner = cache.run('w', async () => {
    runs++;
    await gate;
    return { n: 1 };
  });
  const dups = Array.from({ length: 5 }, () => cache.run('w', () => runs++));
  await tick();
  assert.equal(cache.waiting, 5);
  release();
  assert.deepEqual(await owner, { n: 1 });
  assert.deepEqual(await Promise.all(dups), Array(5).fill({ n: 1 }));
  assert.equal(runs, 1);
  assert.equal(cache.waiting, 0);
  const s = cache.stats();
  assert.equal(s.waited, 5);
  assert.equal(s.replayed, 5);
});

test("onDuplicate: 'reject' refuses at once with SEAWALL_IDEMPOTENCY_IN_PROGRESS and retryAfter", async () => {
  const { clock, cache } = manual({ onDuplicate: 'reject', lease: 6000 });
  let release;
  const owner = cache.run('r', () => new Promise((r) => (release = r)));
  clock.advance(1000);
  await assert.rejects(cache.run('r', () => 1), (err) => {
    assert.equal(err.code, 'SEAWALL_IDEMPOTENCY_IN_PROGRESS');
    assert.equal(err.retryAfter, 5000);
    assert.equal(err.key, 'r');
    return true;
  });
  release('x');
  assert.equal(await owner, 'x');
});

test('a waiting duplicate gives up after waitTimeout (manual clock)', async () => {
  const { clock, cache } = manual({ lease: 10_000, waitTimeout: 3000 });
  const owner = cache.run('t', () => new Promise(() => {}));
  const dup = cache.run('t', () => 1);
  clock.advance(2999);
  await tick();
  clock.advance(1);
  await assert.rejects(dup, (err) => {
    assert.equal(err.code, 'SEAWALL_IDEMPOTENCY_IN_PROGRESS');
    assert.equal(err.waited, 3000);
    assert.equal(err.retryAfter, 7000);
    assert.match(err.message, /after waiting 3000 ms/);
    return true;
  });
  assert.equal(cache.waiting, 0);
  void owner;
});

test('on the system clock, a waiter times out and takes over on the timer thread, without blocking the loop', async () => {
  const cache = new IdempotencyCache({ lease: 60, waitTimeout: 30 });
  cache.run('x', () => new Promise(() => {})); // an owner that never finishes
  let ticks = 0;
  const interval = setInterval(() => ticks++, 1);
  const started = Date.now();
  await assert.rejects(cache.run('x', () => 1), { code: 'SEAWALL_IDEMPOTENCY_IN_PROGRESS' });
  const waited = Date.now() - started;
  assert.ok(waited >= 25 && waited < 2000, `waited ${waited} ms`);
  // The lease (60 ms) expires: a new duplicate waits for it and takes over.
  const taken = await cache.run('x', (ctx) => (ctx.tookOver ? 'took over' : 'fresh'));
  clearInterval(interval);
  assert.equal(taken, 'took over');
  assert.ok(ticks >= 5, `the event loop kept running while duplicates waited (${ticks} ticks)`);
});

test('the owner releasing (an error) hands the key to the first waiter, which runs', async () => {
  const { cache } = manual();
  let fail;
  const owner = cache.run('h', () => new Promise((_, r) => (fail = r)));
  const order = [];
  const d1 = cache.run('h', () => {
    order.push('d1');
    return 'from d1';
  });
  const d2 = cache.run('h', () => {
    order.push('d2');
    return 'from d2';
  });
  fail(new Error('owner failed'));
  await assert.rejects(owner, /owner failed/);
  assert.deepEqual(await Promise.all([d1, d2]), ['from d1', 'from d1']);
  assert.deepEqual(order, ['d1']);
});

test('a late owner whose lease was taken over cannot overwrite: SEAWALL_LEASE_LOST', async () => {
  const { clock, cache } = manual({ lease: 1000, waitTimeout: 10_000 });
  let finishOwner;
  const owner = cache.run('late', () => new Promise((r) => (finishOwner = r)));
  const dup = cache.run('late', () => 'new owner');
  clock.advance(1000); // the owner's lease expires; the duplicate takes over and completes
  assert.equal(await dup, 'new owner');
  finishOwner('old owner');
  await assert.rejects(owner, (err) => {
    assert.equal(err.code, 'SEAWALL_LEASE_LOST');
    assert.equal(err.key, 'late');
    assert.equal(typeof err.token, 'number');
    return true;
  });
  assert.equal(await cache.run('late', () => 'x'), 'new owner');
  assert.equal(cache.stats().leaseLost, 1);
});

test('a shared MemoryStore: a completion in one cache wakes the waiters of another', async () => {
  const clock = new ManualClock();
  const store = new MemoryStore({ maxEntries: 100, clock });
  assert.equal(store.kind, 'memory');
  const a = new IdempotencyCache({ clock, store, name: 'a' });
  const b = new IdempotencyCache({ clock, store, name: 'b' });
  let release;
  const owner = a.run('k', () => new Promise((r) => (release = r)));
  const dup = b.run('k', () => 'b ran');
  await tick();
  assert.equal(b.waiting, 1);
  release('a ran');
  assert.equal(await owner, 'a ran');
  assert.equal(await dup, 'a ran');
  assert.equal(store.stats().entries, 1);
  assert.throws(() => new IdempotencyCache({ store, maxEntries: 5 }), (e) => e.field === 'maxEntries' && /memory store was passed in/.test(e.message));
  assert.throws(() => new MemoryStore({ maxBytes: -1 }), (e) => e.field === 'maxBytes');
});

test('a full store: SEAWALL_STORE_UNAVAILABLE, or an unprotected run with onStoreError: run', async () => {
  const clock = new ManualClock();
  const strict = new IdempotencyCache({ clock, maxEntries: 1 });
  const hold = strict.run('a', () => new Promise(() => {}));
  await assert.rejects(strict.run('b', () => 1), (e) => e.code === 'SEAWALL_STORE_UNAVAILABLE' && /live leases are never evicted/.test(e.message));
  const open = new IdempotencyCache({ clock, maxEntries: 1, onStoreError: 'run' });
  open.run('a', () => new Promise(() => {}));
  let runs = 0;
  assert.equal(await open.run('b', () => ++runs), 1);
  assert.equal(await open.run('b', () => ++runs), 2, 'nothing was stored: the next call runs again');
  assert.equal(open.stats().unprotected, 2);
  void hold;
});

// --- the low-level API ---

test('low-level: begin / complete / replay / peek / release, with typed outcomes', () => {
  const { clock, cache } = manual({ lease: 1000 });
  const b = cache.begin('k', { fingerprint: 'req' });
  assert.equal(b.kind, 'execute');
  const lease = b.lease;
  assert.equal(lease.key, 'k');
  assert.equal(lease.tookOver, false);
  assert.equal(lease.protected, true);
  assert.equal(lease.expiresAt, 1000);
  assert.equal(lease.fingerprint, crypto.createHash('sha256').update('req').digest('hex'));
  assert.equal(cache.remaining(lease), 1000);
  const inProgress = cache.begin('k', { fingerprint: 'req' });
  assert.equal(inProgress.kind, 'in_progress');
  assert.equal(inProgress.retryAfter, 1000);
  assert.deepEqual(inProgress.waiter.poll(), { state: 'pending', leaseExpiresIn: 1000, timeoutIn: 1000 });
  const mismatch = cache.begin('k', { fingerprint: 'other' });
  assert.equal(mismatch.kind, 'mismatch');
  assert.equal(mismatch.completed, false);
  assert.equal(mismatch.error.code, 'SEAWALL_IDEMPOTENCY_MISMATCH');
  clock.advance(10);
  const rec = cache.complete(lease, { result: '{"ok":true}', contentType: 'application/json', metadata: [['status', '201']] });
  assert.equal(rec.createdMs, 10);
  assert.equal(rec.expiresMs, 10 + 86_400_000);
  assert.equal(rec.token, lease.token);
  assert.deepEqual(rec.metadata, [['status', '201']]);
  assert.deepEqual(rec.value(), { ok: true });
  const polled = inProgress.waiter.poll();
  assert.equal(polled.state, 'replay');
  assert.deepEqual(polled.record.value(), { ok: true });
  assert.equal(inProgress.waiter.poll().state, 'taken');
  const replay = cache.begin('k', { fingerprint: 'req' });
  assert.equal(replay.kind, 'replay');
  assert.equal(replay.record.token, lease.token);
  assert.throws(() => cache.complete(lease, { result: 'again' }), (e) => e.code === 'SEAWALL_LEASE_LOST' && /already completed/.test(e.message));
  assert.equal(cache.peek('k').state, 'completed');
  const l2 = cache.begin('k2').lease;
  assert.deepEqual(Object.keys(cache.peek('k2')).sort(), ['expiresIn', 'fingerprint', 'state', 'token']);
  cache.release(l2);
  assert.equal(cache.peek('k2').state, 'absent');
  assert.throws(() => cache.release(l2), { code: 'SEAWALL_LEASE_LOST' });
  assert.throws(() => cache.complete({}, { result: 'x' }), { code: 'SEAWALL_INVALID_ARGUMENT' });
  assert.throws(() => cache.complete(cache.begin('k3').lease, { result: 5 }), { code: 'SEAWALL_INVALID_ARGUMENT' });
  assert.throws(() => cache.begin('k4', 'x'), { code: 'SEAWALL_INVALID_ARGUMENT' });
});

test('low-level: waiter.result() resolves without polling (execute after a release, replay, cancel)', async () => {
  const { cache } = manual();
  const owner = cache.begin('k').lease;
  const w1 = cache.begin('k').waiter;
  const w2 = cache.begin('k').waiter;
  const w3 = cache.begin('k').waiter;
  assert.equal(w1.key, 'k');
  const p1 = w1.result();
  assert.equal(w1.result(), p1, 'one promise per waiter');
  const p2 = w2.result();
  w3.cancel();
  await assert.rejects(w3.result(), { code: 'SEAWALL_CANCELLED' });
  cache.release(owner);
  const r1 = await p1;
  assert.equal(r1.kind, 'execute');
  assert.equal(r1.lease.tookOver, true);
  assert.ok(r1.lease.token > owner.token);
  cache.complete(r1.lease, cache.serialize({ done: 1 }));
  const r2 = await p2;
  assert.equal(r2.kind, 'replay');
  assert.deepEqual(r2.record.value(), { done: 1 });
  assert.equal(w1.done, true);
  assert.equal(cache.waiting, 0);
});

test('low-level: fail stores an error with cacheErrors, releases otherwise; abandon and renew', () => {
  const { clock, cache } = manual({ cacheErrors: true, lease: 1000 });
  const l = cache.begin('e').lease;
  const rec = cache.fail(l, { result: 'boom', contentType: 'text/plain' });
  assert.equal(rec.error, true);
  assert.throws(() => rec.value(), /stored error of content type "text\/plain"/);
  const l2 = cache.begin('r').lease;
  assert.equal(cache.fail(l2), null);
  assert.equal(cache.peek('r').state, 'absent');
  const l3 = cache.begin('a').lease;
  clock.advance(400);
  assert.equal(cache.renew(l3), 1000);
  assert.equal(l3.expiresAt, 1400);
  cache.abandon(l3);
  assert.equal(cache.stats().abandoned, 1);
  clock.advance(1400);
  assert.throws(() => cache.renew(l3), (e) => e.code === 'SEAWALL_LEASE_LOST' && /expired/.test(e.message));
});

// --- the record format, shared with Rust, C and Python ---

const { withChecksums } = require('./support/record');

function be64(n) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

test('a record written from Node has the exact version-2 bytes of docs/idempotency.md', async () => {
  const { clock, cache } = manual();
  clock.advance(1000);
  const value = { id: 7, name: 'é' };
  await cache.run('charge-7', () => value, { fingerprint: { amount: 100 } });
  const rec = cache.peek('charge-7').record;
  const result = Buffer.from('{"id":7,"name":"é"}', 'utf8'); // JSON.stringify, UTF-8
  const ct = Buffer.from('application/json');
  const fp = crypto.createHash('sha256').update('{"amount":100}').digest();
  const expected = withChecksums(Buffer.concat([
    Buffer.from('SWR'),
    Buffer.from([2, 0, 0, 0, 0]),
    be64(rec.token),
    be64(1000),
    be64(1000 + 86_400_000),
    fp,
    Buffer.from([0, ct.length]),
    ct,
    Buffer.from([0, 0]),
    Buffer.from([0, 0, 0, result.length]),
    result,
  ]));
  assert.equal(rec.encode().toString('hex'), expected.toString('hex'));
  assert.equal(rec.fingerprint, fp.toString('hex'));
  const back = IdempotencyRecord.decode(rec.encode());
  assert.deepEqual(back.value(), value);
  // The example record of docs/idempotency.md (error flag, token 1, created 2, expires 3).
  const doc = Buffer.from(
    '5357520201000000' + '0000000000000001' + '0000000000000002' + '0000000000000003' + '00'.repeat(32) + '000174' + '0000' + '000000026f6b' +
      'e7297c37' + '8c7466d5',
    'hex',
  );
  assert.deepEqual(doc, withChecksums(doc.subarray(0, doc.length - 8)));
  const ex = IdempotencyRecord.decode(doc);
  assert.equal(ex.result.toString(), 'ok');
  assert.equal(ex.contentType, 't');
  assert.equal(ex.error, true);
  assert.equal(ex.token, 1);
  assert.equal(ex.createdMs, 2);
  assert.equal(ex.expiresMs, 3);
  assert.equal(ex.fingerprint, null);
  assert.equal(ex.encode().toString('hex'), doc.toString('hex'));
  assert.throws(() => IdempotencyRecord.decode(Buffer.from('nope')), (e) => e.code === 'SEAWALL_INVALID_ARGUMENT' && /not a seawall record/.test(e.message));
  const v1 = Buffer.from(doc);
  v1[3] = 1;
  assert.throws(() => IdempotencyRecord.decode(v1), /version 1 is not supported \(this build reads version 2\)/);
  // Every single-bit flip is refused, never decoded as another record (issue 9).
  for (let at = 0; at < doc.length; at++) {
    for (let bit = 0; bit < 8; bit++) {
      const bad = Buffer.from(doc);
      bad[at] ^= 1 << bit;
      assert.throws(() => IdempotencyRecord.decode(bad), (e) => e.code === 'SEAWALL_INVALID_ARGUMENT', `bit ${bit} at ${at}`);
    }
  }
  const corrupted = Buffer.from(doc);
  corrupted[73] ^= 1; // the result's "o"
  assert.throws(() => IdempotencyRecord.decode(corrupted), /body checksum mismatch/);
});

test("a result stored the way Python's json.dumps writes it replays in Node as the same value", async () => {
  const { cache } = manual();
  // json.dumps({"id": 7, "name": "é", "ok": True, "n": None}) with its defaults.
  const lease = cache.begin('py', { fingerprint: canonicalJson({ amount: 100 }) }).lease;
  cache.complete(lease, { result: '{"id": 7, "name": "\\u00e9", "ok": true, "n": null}', contentType: 'application/json' });
  const got = await cache.run('py', () => 'must not run', { fingerprint: { amount: 100 } });
  assert.deepEqual(got, { id: 7, name: 'é', ok: true, n: null });
  // And bytes stored by another language come back as a Buffer.
  const l2 = cache.begin('bytes').lease;
  cache.complete(l2, { result: Buffer.from([1, 2, 3]), contentType: 'application/octet-stream' });
  assert.deepEqual([...(await cache.run('bytes', () => null))], [1, 2, 3]);
});

// --- races ---

async function race(cache, keys, callersPerKey, work) {
  const runs = new Map();
  const calls = [];
  for (let c = 0; c < callersPerKey; c++) {
    for (const key of keys) {
      calls.push(
        cache.run(key, async (ctx) => {
          runs.set(key, (runs.get(key) || 0) + 1);
          return work(key, ctx);
        }),
      );
    }
  }
  return { runs, results: await Promise.allSettled(calls) };
}

for (const clockKind of ['system', 'manual']) {
  test(`200 concurrent promises on 10 keys (${clockKind} clock): each fn runs once, every caller gets its result`, async () => {
    const clock = clockKind === 'manual' ? new ManualClock() : undefined;
    const cache = new IdempotencyCache({ clock });
    const keys = Array.from({ length: 10 }, (_, i) => `key-${i}`);
    const { runs, results } = await race(cache, keys, 20, async (key) => {
      await tick();
      await sleep(1);
      return { key, nonce: crypto.randomUUID() };
    });
    assert.equal(results.length, 200);
    for (const key of keys) assert.equal(runs.get(key), 1, `${key} ran once`);
    const byKey = new Map();
    for (const r of results) {
      assert.equal(r.status, 'fulfilled', r.reason && r.reason.stack);
      const seen = byKey.get(r.value.key);
      if (seen === undefined) byKey.set(r.value.key, r.value.nonce);
      else assert.equal(r.value.nonce, seen, `every caller of ${r.value.key} got the same result`);
    }
    assert.equal(byKey.size, 10);
    const s = cache.stats();
    assert.equal(s.executed, 10);
    assert.equal(s.completed, 10);
    assert.equal(s.replayed + s.executed, 200);
    assert.equal(cache.waiting, 0);
  });
}

test('200 concurrent promises with crashed owners: after the lease expires exactly one result per key', async () => {
  const clock = new ManualClock();
  const cache = new IdempotencyCache({ clock, lease: 1000, waitTimeout: 60_000 });
  const keys = Array.from({ length: 10 }, (_, i) => `crash-${i}`);
  const runs = new Map();
  const calls = [];
  for (let c = 0; c < 20; c++) {
    for (const key of keys) {
      calls.push(
        cache.run(key, async (ctx) => {
          const n = (runs.get(key) || 0) + 1;
          runs.set(key, n);
          await tick();
          if (n === 1) {
            // The first owner of every key crashes after side effects: outcome unknown.
            ctx.abandon();
            throw new Error(`owner of ${key} crashed`);
          }
          return { key, run: n, tookOver: ctx.tookOver };
        }).then(
          (value) => ({ status: 'fulfilled', value }),
          (reason) => ({ status: 'rejected', reason }), // handled now: the crashes reject early
        ),
      );
    }
  }
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(cache.stats().completed, 0, 'nothing completes while the crashed leases hold');
  assert.equal(cache.waiting, 190);
  clock.advance(1000); // every crashed lease expires: one waiter per key takes over
  const results = await Promise.all(calls);
  let crashed = 0;
  const byKey = new Map();
  for (const r of results) {
    if (r.status === 'rejected') {
      assert.match(r.reason.message, /crashed/);
      crashed++;
      continue;
    }
    const seen = byKey.get(r.value.key);
    if (seen === undefined) byKey.set(r.value.key, r.value);
    else assert.deepEqual(r.value, seen, 'every surviving caller got the one completed result');
  }
  assert.equal(crashed, 10, 'only the crashed owners failed');
  assert.equal(byKey.size, 10);
  for (const [key, v] of byKey) {
    assert.equal(v.run, 2, `${key}: exactly one takeover ran`);
    assert.equal(v.tookOver, true);
    assert.equal(runs.get(key), 2);
  }
  const s = cache.stats();
  assert.equal(s.completed, 10, 'exactly one completed result per key');
  assert.equal(s.takenOver, 10);
  assert.equal(s.abandoned, 10);
  assert.equal(cache.waiting, 0);
});

test('crashed owners that hang forever: the takeover completes and late duplicates replay it', async () => {
  const clock = new ManualClock();
  const cache = new IdempotencyCache({ clock, lease: 500, waitTimeout: 10_000 });
  let starts = 0;
  const calls = Array.from({ length: 200 }, (_, i) =>
    cache.run(`hang-${i % 4}`, () => {
      starts++;
      if (clock.now() < 500) return new Promise(() => {}); // the first owners never return
      return `done at ${clock.now()}`;
    }),
  );
  await tick();
  assert.equal(starts, 4);
  clock.advance(500);
  const done = await Promise.all(calls.slice(4));
  assert.ok(done.every((v) => v === 'done at 500'));
  assert.equal(starts, 8);
  assert.equal(cache.stats().completed, 4);
});

test('a lease is finished only by the cache that issued it', () => {
  const a = new IdempotencyCache({ name: 'a' });
  const b = new IdempotencyCache({ name: 'b' });
  const la = a.begin('k').lease;
  const lb = b.begin('k').lease;
  assert.equal(la.token, lb.token); // two memory stores: the same token for the same key
  assert.throws(
    () => b.complete(la, { result: 'from a' }),
    (e) => e.code === 'SEAWALL_INVALID_ARGUMENT' && /lease = <idempotency key "k", token 1>: issued by another cache/.test(e.message),
  );
  assert.throws(() => b.release(la), (e) => e.code === 'SEAWALL_INVALID_ARGUMENT');
  assert.equal(Buffer.from(b.complete(lb, { result: 'from b' }).result).toString(), 'from b');
  assert.equal(Buffer.from(a.complete(la, { result: 'from a' }).result).toString(), 'from a');
});
