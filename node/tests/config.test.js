'use strict';
// Every invalid value listed in docs/breaker.md "Configuration" is refused when the breaker
// is built, with an Error whose code is 'SEAWALL_CONFIG' and whose message names the
// camelCase field and the value (a TypeError when the type is wrong).

const test = require('node:test');
const assert = require('node:assert/strict');

const { CircuitBreaker, ManualClock, SystemClock } = require('seawall');

// [description, options, field, text of the value in the message, TypeError?]
const INVALID = [
  // counts below 1 or not whole
  ['consecutiveFailures 0', { consecutiveFailures: 0 }, 'consecutiveFailures', '0'],
  ['consecutiveFailures -1', { consecutiveFailures: -1 }, 'consecutiveFailures', '-1'],
  ['consecutiveFailures 2.5', { consecutiveFailures: 2.5 }, 'consecutiveFailures', '2.5'],
  ['windowSize 0', { windowSize: 0 }, 'windowSize', '0'],
  ['windowSize 1.5', { windowSize: 1.5 }, 'windowSize', '1.5'],
  ['windowSize above 1,000,000', { windowSize: 1_000_001 }, 'windowSize', '1000001'],
  ['windowBuckets 0', { windowBuckets: 0 }, 'windowBuckets', '0'],
  ['windowBuckets above 10,000', { window: 'time', windowDuration: 100_010, windowBuckets: 10_001 }, 'windowBuckets', '10001'],
  ['minimumCalls 0', { minimumCalls: 0 }, 'minimumCalls', '0'],
  ['minimumCalls -3', { minimumCalls: -3 }, 'minimumCalls', '-3'],
  ['halfOpenMaxCalls 0', { halfOpenMaxCalls: 0 }, 'halfOpenMaxCalls', '0'],
  ['halfOpenMaxCalls above 10,000', { halfOpenMaxCalls: 10_001 }, 'halfOpenMaxCalls', '10001'],
  ['halfOpenSuccessThreshold 0', { halfOpenSuccessThreshold: 0 }, 'halfOpenSuccessThreshold', '0'],
  ['halfOpenSuccessThreshold above 10,000', { halfOpenMaxCalls: 10_000, halfOpenSuccessThreshold: 10_001 }, 'halfOpenSuccessThreshold', '10001'],
  // rates outside (0, 1] or NaN
  ['failureRateThreshold 0', { failureRateThreshold: 0 }, 'failureRateThreshold', '0'],
  ['failureRateThreshold 1.5', { failureRateThreshold: 1.5 }, 'failureRateThreshold', '1.5'],
  ['failureRateThreshold -0.5', { failureRateThreshold: -0.5 }, 'failureRateThreshold', '-0.5'],
  ['failureRateThreshold NaN', { failureRateThreshold: NaN }, 'failureRateThreshold', 'NaN'],
  ['slowCallRateThreshold 0', { slowCallRateThreshold: 0, slowCallDuration: 10 }, 'slowCallRateThreshold', '0'],
  ['slowCallRateThreshold 1.01', { slowCallRateThreshold: 1.01, slowCallDuration: 10 }, 'slowCallRateThreshold', '1.01'],
  ['slowCallRateThreshold NaN', { slowCallRateThreshold: NaN, slowCallDuration: 10 }, 'slowCallRateThreshold', 'NaN'],
  // negative or NaN durations; zero where not allowed
  ['openDuration -1', { openDuration: -1 }, 'openDuration', '-1ms'],
  ['openDuration NaN', { openDuration: NaN }, 'openDuration', 'NaNms'],
  ['openDurationMax -5', { openDurationMax: -5 }, 'openDurationMax', '-5ms'],
  ['slowCallDuration 0', { slowCallDuration: 0 }, 'slowCallDuration', '0ms'],
  ['slowCallDuration -10', { slowCallDuration: -10 }, 'slowCallDuration', '-10ms'],
  ['slowCallDuration NaN', { slowCallDuration: NaN }, 'slowCallDuration', 'NaNms'],
  ['windowDuration 0', { window: 'time', windowDuration: 0 }, 'windowDuration', '0ms'],
  ['windowDuration -1000', { windowDuration: -1000 }, 'windowDuration', '-1000ms'],
  ['probeTimeout 0', { probeTimeout: 0 }, 'probeTimeout', '0ms'],
  ['probeTimeout NaN', { probeTimeout: NaN }, 'probeTimeout', 'NaNms'],
  // backoff multiplier below 1, NaN or infinite
  ['backoffMultiplier 0.5', { backoffMultiplier: 0.5 }, 'backoffMultiplier', '0.5'],
  ['backoffMultiplier NaN', { backoffMultiplier: NaN }, 'backoffMultiplier', 'NaN'],
  // The core renders values the way JavaScript prints them.
  ['backoffMultiplier Infinity', { backoffMultiplier: Infinity }, 'backoffMultiplier', '= Infinity'],
  ['backoffMultiplier -Infinity', { backoffMultiplier: -Infinity }, 'backoffMultiplier', '= -Infinity'],
  // window kind
  ['window "sliding"', { window: 'sliding' }, 'window', '"sliding"'],
  // rules between fields
  ['windowBuckets not dividing windowDuration', { window: 'time', windowDuration: 1000, windowBuckets: 3 }, 'windowBuckets', '3'],
  ['halfOpenSuccessThreshold above halfOpenMaxCalls', { halfOpenMaxCalls: 2, halfOpenSuccessThreshold: 3 }, 'halfOpenSuccessThreshold', '3'],
  ['openDurationMax below openDuration', { openDuration: 1000, openDurationMax: 500 }, 'openDurationMax', '500ms'],
  ['slowCallRateThreshold without slowCallDuration', { slowCallRateThreshold: 0.5 }, 'slowCallDuration', 'unset'],
  // wrong types: TypeError
  ['windowSize as a string', { windowSize: '100' }, 'windowSize', '"100"', true],
  ['consecutiveFailures as a boolean', { consecutiveFailures: true }, 'consecutiveFailures', 'true', true],
  ['consecutiveFailures null', { consecutiveFailures: null }, 'consecutiveFailures', 'null', true],
  ['failureRateThreshold as a string', { failureRateThreshold: '0.5' }, 'failureRateThreshold', '"0.5"', true],
  ['openDuration as a string', { openDuration: '1s' }, 'openDuration', '"1s"', true],
  ['openDuration as an object', { openDuration: { ms: 5 } }, 'openDuration', 'object', true],
  ['name as a number', { name: 42 }, 'name', '42', true],
  ['window as a number', { window: 1 }, 'window', '1', true],
  ['minimumCalls as an array', { minimumCalls: [1] }, 'minimumCalls', 'object', true],
  // unknown option names
  ['unknown option maxFailures', { maxFailures: 3 }, 'maxFailures', '3'],
  ['timeout 0', { timeout: 0 }, 'timeout', '0ms'],
  ['timeout -1', { timeout: -1 }, 'timeout', '-1ms'],
  ['timeout as a string', { timeout: '5s' }, 'timeout', '"5s"', true],
  // JS-only options
  ['isFailure not a function', { isFailure: 'yes' }, 'isFailure', '"yes"', true],
  ['fallback not a function', { fallback: 42 }, 'fallback', '42', true],
  ['clock not a clock', { clock: { now: () => 0 } }, 'clock', 'object', true],
];

for (const [what, options, field, value, typeError = false] of INVALID) {
  test(`refused: ${what}`, () => {
    assert.throws(
      () => new CircuitBreaker({ name: 'cfg', ...options }),
      (err) => {
        assert.ok(err instanceof Error, 'an Error');
        assert.equal(err.code, 'SEAWALL_CONFIG', `code of ${err.message}`);
        assert.ok(err.message.includes(field), `message ${JSON.stringify(err.message)} names ${field}`);
        assert.ok(err.message.includes(value), `message ${JSON.stringify(err.message)} names the value ${value}`);
        assert.equal(err.field, field, 'err.field');
        assert.equal(typeof err.value, 'string', 'err.value');
        assert.equal(err instanceof TypeError, typeError, `TypeError: ${typeError}`);
        return true;
      },
    );
  });
}

test('every valid option is accepted, undefined values count as not given', () => {
  const b = new CircuitBreaker({
    name: 'all',
    consecutiveFailures: 3,
    failureRateThreshold: 0.5,
    slowCallRateThreshold: 1,
    slowCallDuration: 250,
    window: 'time',
    windowSize: 10,
    windowDuration: 10_000,
    windowBuckets: 10,
    minimumCalls: 5,
    openDuration: 0,
    openDurationMax: 60_000,
    backoffMultiplier: 2.5,
    halfOpenMaxCalls: 3,
    halfOpenSuccessThreshold: 2,
    probeTimeout: 5000,
    timeout: 2000,
    clock: new ManualClock(),
    isFailure: () => true,
    fallback: () => null,
    windowBucketz: undefined,
  });
  assert.equal(b.name, 'all');
  assert.equal(b.timeout, 2000);
  assert.equal(b.state, 'closed');
  assert.equal(new CircuitBreaker({ clock: new SystemClock(), windowSize: 1_000_000 }).state, 'closed');
});

test('the options argument must be an object', () => {
  for (const bad of [null, 5, 'x']) {
    assert.throws(() => new CircuitBreaker(bad), (e) => e instanceof TypeError && e.code === 'SEAWALL_INVALID_ARGUMENT');
  }
});

test('a config error carries field, value and reason', () => {
  try {
    new CircuitBreaker({ openDuration: -250 });
    assert.fail('should throw');
  } catch (err) {
    assert.equal(err.field, 'openDuration');
    assert.equal(err.value, '-250ms');
    assert.match(err.reason, /negative/);
    assert.equal(err.message, `invalid configuration: openDuration = -250ms: ${err.reason}`);
  }
});
