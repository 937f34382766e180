'use strict';
// Replays every tests/conformance/idempotency/*.json scenario (format:
// tests/conformance/README.md, "Idempotency scenarios") through the low-level API of the
// installed `seawall` package (cache.begin / complete / fail / release / renew, waiters'
// poll and cancel, peek, stats), on a ManualClock. One test per file; the suite fails when
// it finds no file.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { IdempotencyCache, ManualClock } = require('seawall');

const repo = process.env.SEAWALL_REPO || path.resolve(__dirname, '..', '..');
const dir = path.join(repo, 'tests', 'conformance', 'idempotency');
const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];

const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

function special(v) {
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  return v;
}

/** Scenario config (snake case, `_ms` durations) -> Node options (camelCase, ms). */
function nodeOptions(config) {
  const out = {};
  for (const [k, v] of Object.entries(config)) out[camel(k.endsWith('_ms') ? k.slice(0, -3) : k)] = special(v);
  return out;
}

const ERROR_KEYS = ['expect_error', 'message_contains'];

function checkKeys(where, step, allowed) {
  for (const k of Object.keys(step)) {
    assert.ok(allowed.includes(k), `${where}: unknown key ${JSON.stringify(k)} (allowed: ${allowed.join(', ')})`);
  }
}

function keyOf(step, field) {
  const base = step[field];
  assert.equal(typeof base, 'string', `${field} must be a string`);
  return step.repeat === undefined ? base : base.repeat(step.repeat);
}

/**
 * Runs `fn`; checks its error against the step's `expect_error` / `message_contains`.
 * Returns `{ ok: true, value }` when it succeeded (and no error was expected).
 */
function attempt(where, step, what, fn) {
  let value;
  try {
    value = fn();
  } catch (err) {
    if (step.expect_error === undefined) {
      assert.fail(`${where}: ${what}: expected success, got ${err && err.code} (${err && err.message})`);
    }
    assert.equal(err.code, step.expect_error, `${where}: ${what}: error code (${err.message})`);
    if (step.message_contains !== undefined) {
      // Option names in messages are spelled as the language spells them (Node: camelCase),
      // as for configuration errors: `max_result_bytes` reads `maxResultBytes` here.
      const want = step.message_contains.replace(/\b[a-z]+(?:_[a-z]+)+\b/g, camel);
      assert.ok(
        err.message.includes(want),
        `${where}: ${what}: expected the message to contain ${JSON.stringify(want)}, got: ${err.message}`,
      );
    }
    return { ok: false };
  }
  assert.equal(step.expect_error, undefined, `${where}: ${what}: expected error ${step.expect_error}, but it succeeded`);
  return { ok: true, value };
}

function output(step) {
  let result = step.result === undefined ? '' : step.result;
  if (step.repeat !== undefined) result = result.repeat(step.repeat);
  return { result, contentType: step.content_type === undefined ? '' : step.content_type, metadata: step.metadata ?? [] };
}

const STATS = [
  'executed',
  'replayed',
  'in_progress',
  'mismatched',
  'waited',
  'taken_over',
  'completed',
  'released',
  'lease_lost',
  'store_errors',
  'unprotected',
];

class Run {
  constructor(file, cache, clock) {
    this.file = file;
    this.cache = cache;
    this.clock = clock;
    this.leases = new Map();
    this.waiters = new Map();
  }

  lease(where, name) {
    const l = this.leases.get(name);
    assert.ok(l !== undefined, `${where}: no lease named ${JSON.stringify(name)}`);
    return l;
  }

  keepLease(where, step, lease) {
    if (step.token_above !== undefined) {
      const other = this.lease(where, step.token_above);
      assert.ok(lease.token > other.token, `${where}: expected a token above ${step.token_above}'s (${other.token}), got ${lease.token}`);
    }
    if (step.took_over !== undefined) assert.equal(lease.tookOver, step.took_over, `${where}: took_over`);
    if (step.protected !== undefined) assert.equal(lease.protected, step.protected, `${where}: protected`);
    if (step.as !== undefined) this.leases.set(step.as, lease);
  }

  checkRecord(where, want, record) {
    if (want === undefined) return;
    checkKeys(`${where} record`, want, [
      'result',
      'result_bytes',
      'content_type',
      'metadata',
      'error',
      'created_ms',
      'expires_ms',
      'token_of',
    ]);
    if (want.result !== undefined) {
      assert.equal(record.result.toString('utf8'), want.result, `${where}: record result`);
      assert.ok(record.result.equals(Buffer.from(want.result, 'utf8')), `${where}: record result bytes`);
    }
    if (want.result_bytes !== undefined) assert.equal(record.result.length, want.result_bytes, `${where}: result_bytes`);
    if (want.content_type !== undefined) assert.equal(record.contentType, want.content_type, `${where}: content_type`);
    if (want.metadata !== undefined) assert.deepEqual(record.metadata, want.metadata, `${where}: metadata`);
    if (want.error !== undefined) assert.equal(record.error, want.error, `${where}: error`);
    if (want.created_ms !== undefined) assert.equal(record.createdMs, want.created_ms, `${where}: created_ms`);
    if (want.expires_ms !== undefined) assert.equal(record.expiresMs, want.expires_ms, `${where}: expires_ms`);
    if (want.token_of !== undefined) {
      assert.equal(record.token, this.lease(where, want.token_of).token, `${where}: token_of ${want.token_of}`);
    }
  }

  step(i, step) {
    const where = `${this.file} [step ${i}]`;
    const c = this.cache;
    if ('begin' in step) {
      checkKeys(where, step, [
        'begin',
        'repeat',
        'fingerprint',
        'as',
        'expect',
        'token_above',
        'took_over',
        'protected',
        'retry_after_ms',
        'completed',
        'record',
        ...ERROR_KEYS,
      ]);
      const key = keyOf(step, 'begin');
      const opts = step.fingerprint === undefined ? undefined : { fingerprint: step.fingerprint };
      const r = attempt(where, step, `begin ${JSON.stringify(key)}`, () => c.begin(key, opts));
      if (!r.ok) return;
      const o = r.value;
      const got = o.kind === 'in_progress' && o.waiter !== null ? 'wait' : o.kind;
      assert.equal(got, step.expect, `${where}: begin ${JSON.stringify(key)}`);
      switch (o.kind) {
        case 'execute':
          this.keepLease(where, step, o.lease);
          break;
        case 'replay':
          this.checkRecord(where, step.record, o.record);
          break;
        case 'mismatch':
          if (step.completed !== undefined) assert.equal(o.completed, step.completed, `${where}: mismatch completed`);
          assert.equal(o.error.code, 'SEAWALL_IDEMPOTENCY_MISMATCH', `${where}: the mismatch error`);
          break;
        default:
          if (step.retry_after_ms !== undefined) assert.equal(o.retryAfter, step.retry_after_ms, `${where}: retry_after_ms`);
          if (o.waiter !== null) {
            assert.ok(step.as !== undefined, `${where}: a "wait" begin needs "as"`);
            this.waiters.set(step.as, o.waiter);
          } else {
            assert.equal(o.error.code, 'SEAWALL_IDEMPOTENCY_IN_PROGRESS', `${where}: the in-progress error`);
          }
      }
    } else if ('complete' in step) {
      checkKeys(where, step, ['complete', 'result', 'repeat', 'content_type', 'metadata', 'record', ...ERROR_KEYS]);
      const lease = this.lease(where, step.complete);
      const r = attempt(where, step, 'complete', () => c.complete(lease, output(step)));
      if (r.ok) this.checkRecord(where, step.record, r.value);
    } else if ('fail' in step) {
      checkKeys(where, step, ['fail', 'result', 'content_type', 'expect', 'record', ...ERROR_KEYS]);
      const lease = this.lease(where, step.fail);
      const r = attempt(where, step, 'fail', () => c.fail(lease, 'result' in step ? output(step) : undefined));
      if (!r.ok) return;
      const got = r.value === null ? 'released' : 'stored';
      if (step.expect !== undefined) assert.equal(got, step.expect, `${where}: fail`);
      if (r.value !== null) this.checkRecord(where, step.record, r.value);
    } else if ('release' in step) {
      checkKeys(where, step, ['release', ...ERROR_KEYS]);
      const lease = this.lease(where, step.release);
      attempt(where, step, 'release', () => c.release(lease));
    } else if ('renew' in step) {
      checkKeys(where, step, ['renew', 'remaining_ms', ...ERROR_KEYS]);
      const lease = this.lease(where, step.renew);
      const r = attempt(where, step, 'renew', () => c.renew(lease));
      if (r.ok && step.remaining_ms !== undefined) assert.equal(r.value, step.remaining_ms, `${where}: renew remaining_ms`);
    } else if ('poll' in step) {
      checkKeys(where, step, [
        'poll',
        'expect',
        'as',
        'token_above',
        'took_over',
        'protected',
        'record',
        'lease_expires_in_ms',
        'timeout_in_ms',
        ...ERROR_KEYS,
      ]);
      const w = this.waiters.get(step.poll);
      assert.ok(w !== undefined, `${where}: no waiter named ${JSON.stringify(step.poll)}`);
      const r = attempt(where, step, `poll ${step.poll}`, () => w.poll());
      if (!r.ok) return;
      const p = r.value;
      assert.equal(p.state, step.expect, `${where}: poll ${step.poll}`);
      if (p.state === 'pending') {
        if (step.lease_expires_in_ms !== undefined) {
          assert.equal(p.leaseExpiresIn, step.lease_expires_in_ms, `${where}: lease_expires_in_ms`);
        }
        if (step.timeout_in_ms !== undefined) assert.equal(p.timeoutIn, step.timeout_in_ms, `${where}: timeout_in_ms`);
      } else if (p.state === 'execute') {
        this.keepLease(where, step, p.lease);
      } else if (p.state === 'replay') {
        this.checkRecord(where, step.record, p.record);
      }
    } else if ('cancel' in step) {
      checkKeys(where, step, ['cancel']);
      const w = this.waiters.get(step.cancel);
      assert.ok(w !== undefined, `${where}: no waiter named ${JSON.stringify(step.cancel)}`);
      w.cancel();
    } else if ('advance_ms' in step) {
      checkKeys(where, step, ['advance_ms']);
      this.clock.advance(step.advance_ms);
    } else if ('expect_key' in step) {
      checkKeys(where, step, ['expect_key', 'repeat', 'state']);
      const key = keyOf(step, 'expect_key');
      assert.equal(c.peek(key).state, step.state, `${where}: expect_key ${JSON.stringify(key)}`);
    } else if ('expect_stats' in step) {
      checkKeys(where, step, ['expect_stats']);
      const stats = c.stats();
      for (const [field, want] of Object.entries(step.expect_stats)) {
        assert.ok(STATS.includes(field), `${where}: unknown stats field ${JSON.stringify(field)}`);
        assert.equal(stats[camel(field)], want, `${where}: stats ${field}`);
      }
    } else {
      assert.fail(`${where}: unknown step kind: ${JSON.stringify(step)}`);
    }
  }
}

test('idempotency conformance scenario files are present', () => {
  assert.ok(files.length > 0, `no scenario files (*.json) found in ${dir}`);
  console.log(`conformance (Node): replaying ${files.length} idempotency scenarios`);
});

for (const file of files) {
  test(`idempotency conformance: ${file}`, () => {
    const doc = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    checkKeys(file, doc, ['name', 'config', 'steps', 'expect_config_error']);
    assert.equal(typeof doc.name, 'string', `${file}: missing "name"`);
    const clock = new ManualClock();
    const options = { ...nodeOptions(doc.config), clock };
    if (doc.expect_config_error !== undefined) {
      assert.equal(doc.steps, undefined, `${file}: a scenario with "expect_config_error" must not have "steps"`);
      const want = doc.expect_config_error;
      const field = camel(want.field);
      assert.throws(
        () => new IdempotencyCache(options),
        (err) => {
          assert.equal(err.code, 'SEAWALL_CONFIG', `${file}: error code (${err.message})`);
          assert.ok(err.message.includes(field), `${file}: expected the message to name ${field}: ${err.message}`);
          assert.equal(err instanceof TypeError, want.type_error === true, `${file}: TypeError (${err.message})`);
          return true;
        },
      );
      return;
    }
    assert.ok(Array.isArray(doc.steps) && doc.steps.length > 0, `${file}: missing "steps"`);
    const run = new Run(file, new IdempotencyCache(options), clock);
    doc.steps.forEach((step, i) => run.step(i, step));
  });
}
