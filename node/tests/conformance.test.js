'use strict';
// Replays every tests/conformance/breaker/*.json scenario (format: tests/conformance/README.md)
// through the public API of the installed `seawall` package, on a ManualClock.
//
// `call` steps go through `breaker.execute` (the per-call path users take) whenever the
// recorded duration cannot matter (it is 0, or the breaker has no slow-call threshold);
// otherwise, and for `acquire`/`record` steps, through `tryAcquire()` and the permit.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { CircuitBreaker, ManualClock } = require('seawall');

const repo = process.env.SEAWALL_REPO || path.resolve(__dirname, '..', '..');
const dir = path.join(repo, 'tests', 'conformance', 'breaker');
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
  for (const [k, v] of Object.entries(config)) {
    out[camel(k.endsWith('_ms') ? k.slice(0, -3) : k)] = special(v);
  }
  return out;
}

const expectedMs = (v) => (v === 'inf' ? Infinity : v);

class IgnoredError extends Error {}

function outcomeError(outcome) {
  if (outcome === 'failure') return new Error('conformance failure');
  if (outcome === 'timeout') return Object.assign(new Error('conformance timeout'), { code: 'SEAWALL_TIMEOUT' });
  if (outcome === 'ignore') return new IgnoredError('conformance ignored');
  return null;
}

function record(permit, outcome, ms) {
  switch (outcome) {
    case 'success':
      return permit.success(ms);
    case 'failure':
      return permit.failure(ms);
    case 'timeout':
      return permit.timeout(ms);
    case 'ignore':
      return permit.ignore();
    case 'cancel':
      return permit.cancel();
    default:
      throw new Error(`unknown outcome ${JSON.stringify(outcome)}`);
  }
}

async function callViaExecute(breaker, outcome, where) {
  const err = outcomeError(outcome);
  const fn = () => {
    if (err) throw err;
    return 'ok';
  };
  let result;
  let thrown = null;
  try {
    result = await breaker.execute(fn);
  } catch (e) {
    thrown = e;
  }
  if (err === null) {
    assert.equal(thrown, null, `${where}: execute rejected: ${thrown && thrown.message}`);
    assert.equal(result, 'ok', `${where}: execute's result`);
  } else {
    assert.equal(thrown, err, `${where}: execute must reject with fn's own error (got ${thrown && thrown.message})`);
  }
}

function callViaPermit(breaker, outcome, ms, where) {
  let permit;
  try {
    permit = breaker.tryAcquire();
  } catch (e) {
    assert.fail(`${where}: expected a permit, got ${e.code}: ${e.message}`);
  }
  record(permit, outcome, ms);
}

async function replay(scenario) {
  const clock = new ManualClock();
  const options = {
    ...nodeOptions(scenario.config || {}),
    clock,
    isFailure: (e) => !(e instanceof IgnoredError),
  };

  if (scenario.expect_config_error) {
    const { field, type_error: typeError } = scenario.expect_config_error;
    const want = camel(field);
    assert.throws(
      () => new CircuitBreaker(options),
      (err) => {
        assert.equal(err.code, 'SEAWALL_CONFIG', `code of ${err}`);
        assert.ok(err.message.includes(want), `message ${JSON.stringify(err.message)} should name ${want}`);
        if (typeError) assert.ok(err instanceof TypeError, `${err} should be a TypeError`);
        return true;
      },
      `building with ${JSON.stringify(scenario.config)} should fail on ${want}`,
    );
    return;
  }

  const breaker = new CircuitBreaker(options);
  const events = [];
  breaker.on('stateChange', (e) => events.push(e));
  const permits = new Map();
  const timed = Object.hasOwn(scenario.config || {}, 'slow_call_duration_ms');
  assert.ok(Array.isArray(scenario.steps), 'scenario has no steps');

  for (const [i, step] of scenario.steps.entries()) {
    const where = `step ${i} ${JSON.stringify(step)}`;
    if ('advance_ms' in step) {
      clock.advance(step.advance_ms);
    } else if ('acquire' in step) {
      let permit = null;
      let err = null;
      try {
        permit = breaker.tryAcquire();
      } catch (e) {
        err = e;
      }
      if (step.expect === 'permit') {
        assert.equal(err, null, `${where}: expected a permit, got ${err && err.message}`);
        permits.set(step.acquire, permit);
      } else if (step.expect === 'rejected') {
        assert.equal(permit, null, `${where}: expected a rejection, got a permit`);
        assert.equal(err.code, 'SEAWALL_BREAKER_OPEN', `${where}: code`);
        assert.ok(err instanceof Error, `${where}: rejection is an Error`);
        assert.equal(err.breaker, breaker.name, `${where}: err.breaker`);
        if ('retry_after_ms' in step) assert.equal(err.retryAfter, expectedMs(step.retry_after_ms), `${where}: retryAfter`);
        if ('rejected_state' in step) assert.equal(err.state, step.rejected_state, `${where}: state`);
      } else {
        throw new Error(`${where}: unknown expectation`);
      }
    } else if ('record' in step) {
      const permit = permits.get(step.record);
      assert.ok(permit, `${where}: no permit named ${step.record}`);
      if (step.expect_error) {
        assert.throws(
          () => record(permit, step.outcome, step.duration_ms ?? 0),
          (e) => e.code === step.expect_error,
          `${where}: should fail with ${step.expect_error}`,
        );
      } else {
        record(permit, step.outcome, step.duration_ms ?? 0);
      }
    } else if ('call' in step) {
      const times = step.times ?? 1;
      const ms = step.duration_ms ?? 0;
      for (let n = 0; n < times; n++) {
        if (step.call !== 'cancel' && (ms === 0 || !timed)) {
          await callViaExecute(breaker, step.call, `${where} #${n}`);
        } else {
          callViaPermit(breaker, step.call, ms, `${where} #${n}`);
        }
      }
    } else if ('expect_state' in step) {
      assert.equal(breaker.state, step.expect_state, `${where}: state`);
    } else if ('action' in step) {
      const method = { force_open: 'forceOpen', disable: 'disable', reset: 'reset' }[step.action];
      assert.ok(method, `${where}: unknown action`);
      breaker[method]();
    } else if ('expect_snapshot' in step) {
      const snap = breaker.snapshot();
      for (const [k, want] of Object.entries(step.expect_snapshot)) {
        if (k === 'retry_after_ms') {
          assert.equal(snap.retryAfter, expectedMs(want), `${where}: retryAfter`);
        } else if (k.endsWith('_rate')) {
          assert.ok(Math.abs(snap[camel(k)] - want) <= 1e-9, `${where}: ${camel(k)} = ${snap[camel(k)]}, want ${want}`);
        } else {
          assert.ok(camel(k) in snap, `${where}: snapshot has no ${camel(k)}`);
          assert.equal(snap[camel(k)], want, `${where}: ${camel(k)}`);
        }
      }
    } else if ('expect_events' in step) {
      const got = events.map((e) => {
        const o = { from: e.from, to: e.to, at_ms: e.at, reason: e.reason };
        return o;
      });
      const want = step.expect_events.map((e) => ({ from: e.from, to: e.to, at_ms: e.at_ms, reason: e.reason }));
      assert.deepEqual(got, want, `${where}: events`);
      for (const [j, e] of step.expect_events.entries()) {
        if ('breaker' in e) assert.equal(events[j].breaker, e.breaker, `${where}: event ${j} breaker`);
      }
      for (const e of events) assert.equal(e.breaker, breaker.name, `${where}: event breaker name`);
    } else {
      throw new Error(`${where}: unknown step`);
    }
  }
}

test('conformance scenarios exist', () => {
  assert.ok(files.length > 0, `no scenario file in ${dir}`);
});

for (const file of files) {
  const scenario = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
  test(`${file}: ${scenario.name}`, () => replay(scenario));
}

test.after(() => {
  console.log(`node conformance: replayed ${files.length} scenario files from ${dir}`);
});
