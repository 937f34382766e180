'use strict';
// The bad-input table (docs/bad-input.md, "Node"): every wrong type or value a user can pass
// to a public constructor, function or method, and the error they get.
//
// The whole table runs once in a child process (this file with SEAWALL_BAD_INPUT_CHILD=1),
// so a row that crashed the process fails the table instead of killing the test runner (the
// child writes each row's id to stderr before running it, which names the row that crashed).
// Then one test per row checks the error's class and `code`, and that the message contains
// the pieces listed (the field and the value).

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');

const sw = require('seawall');
const express = require('seawall/express');

const { CircuitBreaker: CB, IdempotencyCache: IC, ManualClock, MemoryStore, RedisStore, Registry, Deadline, CancelToken } = sw;
const CONFIG = 'SEAWALL_CONFIG';
const INVALID = 'SEAWALL_INVALID_ARGUMENT';

// [id, call, class name (null: accepted), code, ...pieces the message must contain]
const cfg = (id, call, cls, ...must) => [id, call, cls, CONFIG, ...must];
const inv = (id, call, cls, ...must) => [id, call, cls, INVALID, ...must];
const cyclic = () => { const a = {}; a.a = a; return a; };
const permit = () => new CB({ clock: new ManualClock() }).tryAcquire();

const ROWS = [
  // -- CircuitBreaker options (checked by the core) ----------------------------------------
  cfg('breaker_duration_null', () => new CB({ openDuration: null }), 'TypeError', 'openDuration', '<null>'),
  ['breaker_duration_undefined', () => new CB({ openDuration: undefined }), null, null],
  cfg('breaker_duration_string', () => new CB({ openDuration: '30' }), 'TypeError', 'openDuration', '"30"', 'expected a duration'),
  cfg('breaker_duration_bool', () => new CB({ openDuration: true }), 'TypeError', 'openDuration', 'true'),
  cfg('breaker_duration_bigint', () => new CB({ openDuration: 10n }), 'TypeError', 'openDuration', '<bigint>'),
  cfg('breaker_duration_nan', () => new CB({ openDuration: NaN }), 'Error', 'openDuration', 'NaNms', 'not NaN'),
  cfg('breaker_duration_infinity', () => new CB({ openDuration: Infinity }), 'Error', 'openDuration', 'Infinityms', 'too large'),
  cfg('breaker_duration_negative', () => new CB({ openDuration: -1 }), 'Error', 'openDuration', '-1ms', 'negative'),
  cfg('breaker_duration_tiny_negative', () => new CB({ openDuration: -5e-324 }), 'Error', 'openDuration', '-5e-324ms', 'negative'),
  cfg('breaker_duration_huge', () => new CB({ openDuration: 1e300 }), 'Error', 'openDuration', '1e300ms', 'too large'),
  cfg('breaker_timeout_zero', () => new CB({ timeout: 0 }), 'Error', 'timeout', '0ms', 'greater than zero'),
  cfg('breaker_count_zero', () => new CB({ consecutiveFailures: 0 }), 'Error', 'consecutiveFailures', '0', 'at least 1'),
  cfg('breaker_count_fraction', () => new CB({ consecutiveFailures: 2.5 }), 'Error', 'consecutiveFailures', '2.5', 'whole number'),
  cfg('breaker_count_string', () => new CB({ consecutiveFailures: '5' }), 'TypeError', 'consecutiveFailures', '"5"'),
  cfg('breaker_count_huge', () => new CB({ consecutiveFailures: 2 ** 64 }), 'Error', 'consecutiveFailures', '1.8446744073709552e19', 'at most'),
  cfg('breaker_rate_over_one', () => new CB({ failureRateThreshold: 1.5 }), 'Error', 'failureRateThreshold', '1.5', '(0, 1]'),
  cfg('breaker_window_unknown', () => new CB({ window: 'x' }), 'Error', 'window', '"x"', '"count" or "time"'),
  cfg('breaker_unknown_option', () => new CB({ maxFailures: 3 }), 'Error', 'maxFailures', '3', 'unknown option'),
  inv('breaker_options_number', () => new CB(5), 'TypeError', 'options', 'number'),
  inv('breaker_options_null', () => new CB(null), 'TypeError', 'options', 'null'),
  inv('breaker_options_string', () => new CB('x'), 'TypeError', 'options', 'string'),
  cfg('breaker_clock_string', () => new CB({ clock: 'x' }), 'TypeError', 'clock', '"x"', 'ManualClock'),
  cfg('breaker_is_failure_number', () => new CB({ isFailure: 5 }), 'TypeError', 'isFailure', '5', 'function'),
  cfg('breaker_fallback_number', () => new CB({ fallback: 5 }), 'TypeError', 'fallback', '5', 'function'),
  cfg('breaker_name_number', () => new CB({ name: 5 }), 'TypeError', 'name', '5', 'string'),
  cfg('breaker_critical_string', () => new CB({ critical: 'yes' }), 'TypeError', 'critical', '"yes"', 'boolean'),
  inv('breaker_execute_number', () => new CB().execute(5), 'TypeError', 'execute(fn)', 'number'),
  inv('breaker_wrap_number', () => new CB().wrap(5), 'TypeError', 'wrap(fn)', 'number'),
  // -- permits, clocks ---------------------------------------------------------------------
  inv('permit_ms_negative', () => permit().success(-1), 'RangeError', 'ms', '-1ms', 'negative'),
  inv('permit_ms_nan', () => permit().failure(NaN), 'RangeError', 'ms', 'NaNms'),
  inv('permit_ms_string', () => permit().success('1'), 'TypeError', 'ms', '"1"'),
  inv('permit_ms_bool', () => permit().timeout(true), 'TypeError', 'ms', 'true'),
  ['permit_ms_null', () => permit().success(null), null, null],
  ['permit_second_outcome', () => { const p = permit(); p.success(0); p.failure(0); }, 'Error', 'SEAWALL_PERMIT_CONSUMED', 'already recorded'],
  inv('clock_advance_negative', () => new ManualClock().advance(-1), 'RangeError', 'ms', '-1ms'),
  inv('clock_advance_string', () => new ManualClock().advance('1'), 'TypeError', 'ms', '"1"'),
  inv('clock_advance_undefined', () => new ManualClock().advance(), 'TypeError', 'ms', '<undefined>'),
  inv('clock_advance_huge', () => new ManualClock().advance(1e300), 'RangeError', 'ms', '1e300ms', 'too large'),
  // -- timeout / withDeadline / Deadline / grpc-timeout / CancelToken -----------------------
  inv('timeout_negative', () => sw.timeout(-1, () => 1), 'RangeError', 'ms', '-1ms'),
  inv('timeout_string', () => sw.timeout('1', () => 1), 'TypeError', 'ms', '"1"'),
  inv('timeout_nan', () => sw.timeout(NaN, () => 1), 'RangeError', 'ms', 'NaNms'),
  inv('timeout_fn_number', () => sw.timeout(1, 5), 'TypeError', 'timeout(ms, fn)', 'number'),
  inv('timeout_clock_string', () => sw.timeout(1, () => 1, { clock: 'x' }), 'TypeError', 'clock', '<string>'),
  inv('timeout_signal_number', () => sw.timeout(1, () => 1, { signal: 5 }), 'TypeError', 'signal', '<number>', 'AbortSignal'),
  inv('with_deadline_negative', () => sw.withDeadline(-1, () => 1), 'RangeError', 'ms', '-1ms'),
  inv('with_deadline_string', () => sw.withDeadline('x', () => 1), 'TypeError', 'deadline', '"x"'),
  inv('with_deadline_fn_number', () => sw.withDeadline(1, 5), 'TypeError', 'withDeadline(deadline, fn)', 'number'),
  inv('deadline_after_negative', () => Deadline.after(-1), 'RangeError', 'ms', '-1ms'),
  inv('deadline_after_undefined', () => Deadline.after(), 'TypeError', 'ms', '<undefined>'),
  inv('deadline_after_string', () => Deadline.after('1'), 'TypeError', 'ms', '"1"'),
  inv('deadline_after_huge', () => Deadline.after(1e300), 'RangeError', 'ms', '1e300ms'),
  inv('deadline_new', () => new Deadline(), 'TypeError', 'Deadline.after(ms)'),
  inv('grpc_malformed', () => Deadline.fromGrpcTimeout('abc'), 'TypeError', 'grpc-timeout', '"abc"'),
  inv('grpc_number', () => Deadline.fromGrpcTimeout(5), 'TypeError', 'grpc-timeout', '<number>'),
  inv('parse_grpc_unit', () => sw.parseGrpcTimeout('1x'), 'TypeError', 'grpc-timeout', '"1x"', 'unit'),
  inv('format_grpc_negative', () => sw.formatGrpcTimeout(-1), 'RangeError', 'ms', '-1ms'),
  inv('budget_over_one', () => Deadline.after(1).budget(2), 'RangeError', 'fraction', '2', '[0, 1]'),
  inv('budget_string', () => Deadline.after(1).budget('x'), 'TypeError', 'fraction', '<string>'),
  inv('budget_min_negative', () => Deadline.after(1).budget(0.5, -1), 'RangeError', 'minMs', '-1ms'),
  inv('within_negative', () => Deadline.after(1).within(-1), 'RangeError', 'ms', '-1ms'),
  inv('earliest_number', () => Deadline.after(1).earliest(5), 'TypeError', 'other', '<number>'),
  inv('earliest_other_clock', () => Deadline.after(1).earliest(Deadline.after(1, { clock: new ManualClock() })), 'TypeError', 'different clocks'),
  inv('token_cancel_at_string', () => new CancelToken().cancelAt('x'), 'TypeError', 'deadline', '<string>'),
  // -- IdempotencyCache options and calls --------------------------------------------------
  cfg('cache_ttl_zero', () => new IC({ ttl: 0 }), 'Error', 'ttl', '0ms'),
  cfg('cache_ttl_string', () => new IC({ ttl: '1' }), 'TypeError', 'ttl', '"1"'),
  cfg('cache_ttl_nan', () => new IC({ ttl: NaN }), 'Error', 'ttl', 'NaNms'),
  cfg('cache_on_duplicate', () => new IC({ onDuplicate: 'x' }), 'Error', 'onDuplicate', '"x"'),
  cfg('cache_cache_errors_string', () => new IC({ cacheErrors: 'yes' }), 'TypeError', 'cacheErrors', '"yes"'),
  cfg('cache_max_result_negative', () => new IC({ maxResultBytes: -1 }), 'Error', 'maxResultBytes', '-1'),
  cfg('cache_unknown_option', () => new IC({ foo: 1 }), 'Error', 'foo', '1', 'unknown option'),
  cfg('cache_store_string', () => new IC({ store: 'x' }), 'TypeError', 'store', '"x"'),
  cfg('cache_store_and_bound', () => new IC({ store: new MemoryStore(), maxEntries: 5 }), 'Error', 'maxEntries', '5'),
  cfg('cache_serializer_number', () => new IC({ serializer: 5 }), 'TypeError', 'serializer', '5'),
  inv('cache_options_number', () => new IC(5), 'TypeError', 'options', 'number'),
  inv('run_key_empty', () => new IC().run('', () => 1), 'TypeError', 'key', '0 bytes'),
  inv('run_key_too_long', () => new IC().run('k'.repeat(256), () => 1), 'TypeError', 'key', '256 bytes'),
  inv('run_key_number', () => new IC().run(5, () => 1), 'TypeError', 'key', '<number>'),
  inv('run_key_undefined', () => new IC().run(undefined, () => 1), 'TypeError', 'key', '<undefined>'),
  inv('run_key_buffer', () => new IC().run(Buffer.from('k'), () => 1), 'TypeError', 'key', '<object>'),
  inv('run_key_lone_surrogate', () => new IC().run('a\ud800', () => 1), 'TypeError', 'key', '"a\\ud800"', 'surrogate'),
  inv('begin_key_lone_surrogate', () => new IC().begin('\udc00'), 'TypeError', 'key', '"\\udc00"'),
  inv('run_fn_number', () => new IC().run('k', 5), 'TypeError', 'run(key, fn)', 'number'),
  inv('run_options_number', () => new IC().run('k', () => 1, 5), 'TypeError', 'options', 'number'),
  inv('run_result_bigint', () => new IC().run('k', () => 10n), 'TypeError', '"k"', 'BigInt', 'released'),
  inv('run_result_cycle', () => new IC().run('k', cyclic), 'TypeError', '"k"', 'circular', 'released'),
  ['run_result_nan', () => new IC().run('k', () => NaN), null, null],
  ['run_result_undefined', () => new IC().run('k', () => undefined), null, null],
  inv('run_result_too_big', () => new IC({ maxResultBytes: 10 }).run('k', () => 'x'.repeat(100)), 'TypeError', '"k"', '102 bytes', 'maxResultBytes (10)'),
  inv('run_fingerprint_cycle', () => new IC().run('k', () => 1, { fingerprint: cyclic() }), 'TypeError', 'fingerprint', 'circular'),
  inv('run_fingerprint_nan', () => new IC().run('k', () => 1, { fingerprint: NaN }), 'TypeError', 'fingerprint', 'NaN'),
  inv('run_fingerprint_function', () => new IC().run('k', () => 1, { fingerprint: () => 1 }), 'TypeError', 'fingerprint', 'function'),
  inv('complete_not_a_lease', () => new IC().complete('x', { result: 'a' }), 'TypeError', 'lease', '<string>'),
  inv('complete_output_number', () => { const c = new IC(); c.complete(c.begin('k').lease, 5); }, 'TypeError', 'output', '<number>'),
  ['complete_twice', () => { const c = new IC(); const l = c.begin('k').lease; c.complete(l, { result: 'a' }); c.complete(l, { result: 'b' }); }, 'Error', 'SEAWALL_LEASE_LOST', '"k"', 'token 1', 'already completed'],
  inv('peek_number', () => new IC().peek(5), 'TypeError', 'key', '<number>'),
  inv('record_decode_string', () => sw.IdempotencyRecord.decode('x'), 'TypeError', 'bytes', '<string>'),
  inv('record_decode_garbage', () => sw.IdempotencyRecord.decode(Buffer.from('xx')), 'TypeError', 'not a seawall record'),
  // -- MemoryStore / RedisStore options ----------------------------------------------------
  cfg('memory_max_entries_zero', () => new MemoryStore({ maxEntries: 0 }), 'Error', 'maxEntries', '0'),
  cfg('memory_max_entries_string', () => new MemoryStore({ maxEntries: '1' }), 'TypeError', 'maxEntries', '"1"'),
  cfg('memory_unknown_option', () => new MemoryStore({ size: 1 }), 'Error', 'size', 'unknown option'),
  inv('memory_options_number', () => new MemoryStore(5), 'TypeError', 'options', 'number'),
  cfg('redis_url_http', () => new RedisStore({ url: 'http://x' }), 'Error', 'url', '"http://x"', 'Redis URL'),
  cfg('redis_url_number', () => new RedisStore({ url: 5 }), 'TypeError', 'url', '5'),
  cfg('redis_prefix_braces', () => new RedisStore({ prefix: '{a}' }), 'Error', 'prefix', '"{a}"'),
  cfg('redis_connect_timeout_negative', () => new RedisStore({ connectTimeout: -1 }), 'Error', 'connectTimeout', '-1ms'),
  cfg('redis_unknown_option', () => new RedisStore({ timeout: 1 }), 'Error', 'timeout', 'unknown option'),
  inv('redis_options_string', () => new RedisStore('redis://x'), 'TypeError', 'options', 'string'),
  // -- Registry, health checks, observability ----------------------------------------------
  cfg('registry_max_breakers_zero', () => new Registry({ maxBreakers: 0 }), 'Error', 'maxBreakers', '0'),
  cfg('registry_max_breakers_string', () => new Registry({ maxBreakers: '1' }), 'TypeError', 'maxBreakers', '"1"'),
  cfg('registry_unknown_option', () => new Registry({ size: 1 }), 'Error', 'size', 'unknown option'),
  inv('registry_breaker_name_number', () => new Registry().breaker(5), 'TypeError', 'name', '<number>'),
  cfg('registry_breaker_bad_option', () => new Registry().breaker('x', { openDuration: -1 }), 'Error', 'openDuration', '-1ms'),
  inv('registry_cache_name_number', () => new Registry().idempotencyCache(5), 'TypeError', 'name', '<number>'),
  inv('check_fn_number', () => new Registry().addCheck('x', 5), 'TypeError', 'addCheck(name, fn)', 'number'),
  inv('check_name_number', () => new Registry().addCheck(5, () => true), 'TypeError', 'name', '<number>'),
  cfg('check_timeout_negative', () => new Registry().addCheck('x', () => true, { timeout: -1 }), 'Error', 'timeout', '-1ms'),
  cfg('check_interval_nan', () => new Registry().addCheck('x', () => true, { interval: NaN }), 'Error', 'interval', 'NaNms'),
  cfg('check_critical_string', () => new Registry().addCheck('x', () => true, { critical: 'y' }), 'TypeError', 'critical', '"y"'),
  cfg('check_unknown_option', () => new Registry().addCheck('x', () => true, { bogus: 1 }), 'Error', 'bogus', 'unknown option'),
  inv('observability_registry_number', () => sw.observability.handler(5), 'TypeError', 'registry', '<number>'),
  cfg('observability_path_number', () => sw.observability.handler(new Registry(), { healthPath: 5 }), 'TypeError', 'healthPath', '5'),
  // -- seawall/express middlewares ---------------------------------------------------------
  inv('express_idempotency_cache_number', () => express.idempotency(5), 'TypeError', 'cache', '5'),
  cfg('express_methods_string', () => express.idempotency(new IC(), { methods: 'POST' }), 'TypeError', 'methods', '"POST"'),
  cfg('express_on_duplicate', () => express.idempotency(new IC(), { onDuplicate: 'x' }), 'Error', 'onDuplicate', '"x"'),
  cfg('express_max_body_negative', () => express.idempotency(new IC(), { maxBodyBytes: -1 }), 'RangeError', 'maxBodyBytes', '-1'),
  cfg('express_identity_number', () => express.idempotency(new IC(), { identity: 5 }), 'TypeError', 'identity', '5'),
  cfg('express_unknown_option', () => express.idempotency(new IC(), { bogus: 1 }), 'TypeError', 'bogus', 'unknown option'),
  cfg('express_replay_never', () => express.idempotency(new IC(), { replayHeaders: ['content-length'] }), 'TypeError', 'replayHeaders', '"content-length"', 'never'),
  cfg('deadlines_default_negative', () => express.deadlines({ defaultTimeout: -1 }), 'RangeError', 'defaultTimeout', '-1'),
  cfg('deadlines_max_string', () => express.deadlines({ maxTimeout: '1' }), 'TypeError', 'maxTimeout', '"1"'),
  cfg('deadlines_header_space', () => express.deadlines({ timeoutHeader: 'a b' }), 'TypeError', 'timeoutHeader', '"a b"'),
  cfg('deadlines_unknown_option', () => express.deadlines({ bogus: 1 }), 'TypeError', 'bogus', 'unknown option'),
  cfg('deadline_fetch_number', () => express.deadlineFetch(5), 'TypeError', 'fetch', '5'),
  // -- a misspelt option name is refused, never ignored ---------------------------------
  cfg('deadline_after_unknown_option', () => Deadline.after(10, { clok: new ManualClock() }), 'TypeError', 'clok', '<object>', 'unknown option of Deadline.after() (known: clock)'),
  cfg('deadline_grpc_unknown_option', () => Deadline.fromGrpcTimeout('1S', { bogus: 1 }), 'TypeError', 'bogus', '1', 'unknown option of Deadline.fromGrpcTimeout()'),
  cfg('timeout_unknown_option', () => sw.timeout(10, async () => 1, { signl: 1 }), 'TypeError', 'signl', '1', 'unknown option of timeout() (known: signal, clock)'),
  cfg('run_unknown_option', () => new IC().run('k', () => 1, { fingerprnt: { a: 1 } }), 'TypeError', 'fingerprnt', '<object>', 'unknown option of run() (known: fingerprint)'),
  cfg('begin_unknown_option', () => new IC().begin('k', { fingerPrint: 'x' }), 'TypeError', 'fingerPrint', '"x"', 'unknown option of begin()'),
  cfg('wrap_unknown_option', () => new IC().wrap(() => 1, { key: () => 'k', fingerprnt: 1 }), 'TypeError', 'fingerprnt', '1', 'unknown option of wrap() (known: key, fingerprint)'),
  cfg('record_decode_unknown_option', () => sw.IdempotencyRecord.decode(Buffer.from('xx'), { serialiser: 1 }), 'TypeError', 'serialiser', '1', 'unknown option of IdempotencyRecord.decode()'),
  inv('record_decode_options_number', () => sw.IdempotencyRecord.decode(Buffer.from('xx'), 5), 'TypeError', 'options must be an object, got number'),
  cfg('observability_unknown_option', () => sw.observability.handler(new Registry(), { healthpath: '/h' }), 'TypeError', 'healthpath', '"/h"', 'unknown option of observability.handler()'),
  cfg('parse_key_unknown_option', () => express.parseIdempotencyKey('"k"', { allowUnquotedKey: true }), 'TypeError', 'allowUnquotedKey', 'true', 'unknown option of parseIdempotencyKey() (known: allowUnquoted)'),
];

async function outcome(call) {
  try {
    const r = call();
    if (r && typeof r.then === 'function') await r;
  } catch (e) {
    return { cls: e && e.constructor && e.constructor.name, code: e && e.code, message: String(e && e.message), field: e && e.field, value: e && e.value };
  }
  return { cls: null };
}

if (process.env.SEAWALL_BAD_INPUT_CHILD === '1') {
  (async () => {
    const out = {};
    for (const [id, call] of ROWS) {
      process.stderr.write(`${id}\n`);
      out[id] = await outcome(call);
    }
    process.stdout.write(JSON.stringify(out));
  })();
} else {
  let table;
  let failure;
  const r = spawnSync(process.execPath, [__filename], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, SEAWALL_BAD_INPUT_CHILD: '1', NODE_TEST_CONTEXT: '' },
  });
  try {
    table = JSON.parse(r.stdout);
  } catch {
    const last = (r.stderr || '').trim().split('\n').pop();
    failure = `the bad-input child exited with ${r.status} (${r.signal}) during row ${last}:\n${(r.stderr || '').slice(-3000)}`;
  }

  test('the bad-input child ran every row without crashing', () => {
    assert.equal(failure, undefined, failure);
    assert.equal(r.status, 0);
    assert.equal(new Set(ROWS.map((row) => row[0])).size, ROWS.length, 'row ids are unique');
  });

  for (const [id, , cls, code, ...must] of ROWS) {
    test(`bad input: ${id}`, () => {
      assert.ok(table, failure);
      const got = table[id];
      if (cls === null) {
        assert.equal(got.cls, null, `${id}: expected to be accepted, got ${JSON.stringify(got)}`);
        return;
      }
      assert.equal(got.cls, cls, `${id}: ${JSON.stringify(got)}`);
      assert.equal(got.code, code, `${id}: ${JSON.stringify(got)}`);
      if (code === CONFIG && got.field !== undefined) {
        assert.ok(got.message.includes(got.field), `${id}: field ${got.field} not in ${got.message}`);
      }
      for (const piece of must) assert.ok(got.message.includes(piece), `${id}: ${JSON.stringify(piece)} not in ${JSON.stringify(got.message)}`);
    });
  }

  // -- a refused input changes nothing ----------------------------------------------------
  test('a refused run leaves the key free', async () => {
    const c = new IC({ clock: new ManualClock() });
    await assert.rejects(c.run('k', 5), { code: INVALID });
    await assert.rejects(c.run('k', () => 10n), { code: INVALID });
    assert.deepEqual(c.peek('k'), { state: 'absent' });
    assert.equal(await c.run('k', () => 7), 7);
    assert.equal(await c.run('k', () => 8), 7);
  });

  test('two keys differing only in a lone surrogate never share an entry', async () => {
    const c = new IC({ clock: new ManualClock() });
    await assert.rejects(c.run('a\ud800', () => 1), { code: INVALID });
    await assert.rejects(c.run('a\ud801', () => 2), { code: INVALID });
    assert.equal(await c.run('a\ufffd', () => 3), 3);
    assert.equal(await c.run('a\ud83d\ude00', () => 4), 4); // a well-formed pair is fine
  });

  test('a refused duration leaves the permit and the clock usable', () => {
    const clock = new ManualClock();
    const b = new CB({ clock });
    const p = b.tryAcquire();
    for (const bad of [-1, NaN, '1', true]) assert.throws(() => p.success(bad), { code: INVALID });
    assert.equal(p.done, false);
    p.failure(5);
    assert.equal(b.snapshot().failures, 1);
    clock.advance(10);
    for (const bad of [-1, NaN, Infinity, '1', undefined]) assert.throws(() => clock.advance(bad), { code: INVALID });
    assert.equal(clock.now(), 10);
  });

  test('execute of a non-function records nothing', async () => {
    const b = new CB({ consecutiveFailures: 1, clock: new ManualClock() });
    await assert.rejects(() => b.execute(5), { code: INVALID });
    assert.equal(b.state, 'closed');
    assert.equal(b.snapshot().failures, 0);
  });
}
