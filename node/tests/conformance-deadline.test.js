'use strict';
// Replays every tests/conformance/deadline/*.json scenario (format: tests/conformance/README.md,
// "Deadline scenarios") through the public API of the installed `seawall` package, on
// ManualClocks. Durations are passed in Node's unit (ms), special values as JS numbers, so
// bad values take Node's own path into the core.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { Deadline, CancelToken, ManualClock, parseGrpcTimeout, formatGrpcTimeout } = require('seawall');

const repo = process.env.SEAWALL_REPO || path.resolve(__dirname, '..', '..');
const dir = path.join(repo, 'tests', 'conformance', 'deadline');
const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];

function special(v) {
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  return v;
}

/** Runs `fn`; with `code`, asserts it throws a seawall error with that code (and returns null). */
function attempt(where, code, fn) {
  if (code === undefined) return fn();
  assert.throws(
    fn,
    (err) => {
      assert.ok(err instanceof Error, `${where}: an Error`);
      assert.equal(err.code, code, `${where}: code of ${err.message}`);
      return true;
    },
    `${where}: should fail with ${code}`,
  );
  return null;
}

function replay(scenario) {
  const clocks = new Map([['main', new ManualClock()]]);
  const deadlines = new Map();
  const tokens = new Map();
  const timers = [];
  const clockOf = (step, where) => {
    const c = clocks.get(step.clock ?? 'main');
    assert.ok(c, `${where}: no clock named ${step.clock}`);
    return c;
  };
  const deadlineOf = (name, where) => {
    const d = deadlines.get(name);
    assert.ok(d, `${where}: no deadline named ${name}`);
    return d;
  };
  assert.ok(Array.isArray(scenario.steps) && scenario.steps.length > 0, 'scenario has steps');

  for (const [i, step] of scenario.steps.entries()) {
    const where = `step ${i} ${JSON.stringify(step)}`;
    const code = step.expect_error;
    if ('clock' in step && Object.keys(step).length === 1) {
      clocks.set(step.clock, new ManualClock());
    } else if ('deadline' in step) {
      const clock = clockOf(step, where);
      let d;
      if ('after_ms' in step) {
        d = attempt(where, code, () => Deadline.after(special(step.after_ms), { clock }));
      } else if ('grpc' in step) {
        d = attempt(where, code, () => Deadline.fromGrpcTimeout(step.grpc, { clock }));
      } else {
        throw new Error(`${where}: a deadline needs after_ms or grpc`);
      }
      if (d !== null) {
        assert.ok(d instanceof Deadline, `${where}: a Deadline`);
        deadlines.set(step.deadline, d);
      } else {
        deadlines.delete(step.deadline);
      }
    } else if ('advance_ms' in step) {
      clockOf(step, where).advance(step.advance_ms);
    } else if ('expect' in step && typeof step.expect === 'object' && !('grpc_format_ms' in step)) {
      for (const [name, want] of Object.entries(step.expect)) {
        const d = deadlineOf(name, where);
        if ('remaining_ms' in want) {
          assert.equal(d.remainingMs(), want.remaining_ms, `${where}: ${name}.remainingMs()`);
          assert.equal(Math.floor(d.remaining()), want.remaining_ms, `${where}: ${name}.remaining() rounded down`);
        }
        if ('expired' in want) assert.equal(d.expired(), want.expired, `${where}: ${name}.expired()`);
        if ('grpc' in want) assert.equal(d.toGrpcTimeout(), want.grpc, `${where}: ${name}.toGrpcTimeout()`);
      }
    } else if ('earliest' in step) {
      const [a, b] = step.earliest.map((n) => deadlineOf(n, where));
      const e = attempt(where, code, () => a.earliest(b));
      if (e !== null) {
        assert.ok(e === a || e === b, `${where}: earliest returns one of the two`);
        deadlines.set(step.as, e);
      }
    } else if ('budget' in step) {
      const d = deadlineOf(step.budget, where);
      const ms = attempt(where, code, () => d.budget(step.fraction, step.min_ms));
      if (ms !== null) assert.equal(Math.floor(ms), step.expect_ms, `${where}: budget`);
    } else if ('grpc_parse' in step) {
      const ms = attempt(where, code, () => parseGrpcTimeout(step.grpc_parse));
      if (ms !== null) assert.ok(Math.abs(ms - step.expect_ms) < 1e-9, `${where}: parsed ${ms} ms, want ${step.expect_ms}`);
    } else if ('grpc_format_ms' in step) {
      const s = attempt(where, code, () => formatGrpcTimeout(step.grpc_format_ms));
      if (s !== null) assert.equal(s, step.expect, `${where}: formatted`);
    } else if ('token' in step && Object.keys(step).length === 1) {
      tokens.set(step.token, new CancelToken());
    } else if ('cancel_at' in step) {
      const token = tokens.get(step.token);
      assert.ok(token, `${where}: no token named ${step.token}`);
      const timer = attempt(where, code, () => token.cancelAt(deadlineOf(step.cancel_at, where)));
      if (timer !== null) timers.push(timer); // kept: disposing would unschedule it
    } else if ('cancel' in step) {
      const token = tokens.get(step.cancel);
      assert.ok(token, `${where}: no token named ${step.cancel}`);
      token.cancel();
    } else if ('expect_token' in step) {
      for (const [name, want] of Object.entries(step.expect_token)) {
        const token = tokens.get(name);
        assert.ok(token, `${where}: no token named ${name}`);
        assert.equal(token.reason, want, `${where}: ${name}.reason`);
        assert.equal(token.cancelled, want !== null, `${where}: ${name}.cancelled`);
      }
    } else {
      throw new Error(`${where}: unknown step`);
    }
  }
}

test('deadline conformance scenarios exist', () => {
  assert.ok(files.length > 0, `no scenario file in ${dir}`);
});

for (const file of files) {
  const scenario = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
  test(`deadline/${file}: ${scenario.name}`, () => replay(scenario));
}

test.after(() => {
  console.log(`node conformance: replayed ${files.length} deadline scenario files from ${dir}`);
});
