// Type definitions for seawall (Node.js). Durations are milliseconds everywhere.

import { EventEmitter } from 'node:events';

/** The version of seawall (the Rust core's, which is this package's). */
export declare const version: string;

/** Breaker states, spelled the same in every language. */
export type BreakerState = 'closed' | 'open' | 'half_open' | 'forced_open' | 'disabled';

/** Why a breaker changed state. */
export type StateChangeReason =
  | 'consecutive_failures'
  | 'failure_rate'
  | 'slow_call_rate'
  | 'open_duration_elapsed'
  | 'probe_failure'
  | 'probe_timeout'
  | 'probe_successes'
  | 'force_open'
  | 'disable'
  | 'reset';

/** Error codes (`err.code`) of seawall errors. */
export type SeawallErrorCode =
  | 'SEAWALL_INVALID_ARGUMENT'
  | 'SEAWALL_CONFIG'
  | 'SEAWALL_BREAKER_OPEN'
  | 'SEAWALL_PERMIT_CONSUMED'
  | 'SEAWALL_TIMEOUT'
  | 'SEAWALL_INTERNAL';

/** A clock every primitive reads time from. */
export interface Clock {
  /** Milliseconds since the clock's origin. */
  now(): number;
}

/**
 * A test clock whose time moves only when `advance(ms)` is called. Starts at 0.
 * Pass it as the `clock` option to make a breaker's timing exact in tests.
 */
export declare class ManualClock implements Clock {
  constructor();
  /** Moves time forward by `ms` (a finite number >= 0; otherwise a `TypeError`, code `SEAWALL_INVALID_ARGUMENT`). */
  advance(ms: number): void;
  /** Milliseconds since the clock's origin (0 at construction). */
  now(): number;
}

/** The real monotonic clock (the default). */
export declare class SystemClock implements Clock {
  constructor();
  /** Milliseconds since the process first read the system clock. */
  now(): number;
}

/**
 * Options of `new CircuitBreaker(options)`: the SPEC's breaker configuration in camelCase,
 * durations in milliseconds, plus the JS-only `clock`, `isFailure` and `fallback`.
 *
 * Every value is checked when the breaker is built; an invalid one throws an `Error` with
 * `code === 'SEAWALL_CONFIG'` whose message names the field and the value (a `TypeError`
 * when the value has the wrong type). Unknown option names are refused too. An option
 * whose value is `undefined` counts as not given.
 */
export interface CircuitBreakerOptions<TArgs extends unknown[] = any[], TFallback = any> {
  /** Label used in events, errors, metrics and health. Default `''`. */
  name?: string;
  /**
   * Open after this many failures in a row (closed state). Whole number >= 1.
   * Default 5 when no rate threshold is set; otherwise off unless set.
   */
  consecutiveFailures?: number;
  /** Open when failures / recorded calls in the window >= this, 0 < x <= 1. Default unset. */
  failureRateThreshold?: number;
  /** Open when slow calls / recorded calls in the window >= this, 0 < x <= 1. Needs `slowCallDuration`. Default unset. */
  slowCallRateThreshold?: number;
  /** A call at least this long (ms, > 0) is slow. Setting it makes the breaker time every call on its clock. Default unset. */
  slowCallDuration?: number;
  /** `'count'`: the last `windowSize` recorded calls; `'time'`: the last `windowDuration`, in `windowBuckets` buckets. Default `'count'`. */
  window?: 'count' | 'time';
  /** N for a count window, 1..1,000,000. Default 100. */
  windowSize?: number;
  /** T for a time window (ms, > 0). Default 10000. */
  windowDuration?: number;
  /** Buckets of a time window, 1..10,000; must divide `windowDuration`. Default 10. */
  windowBuckets?: number;
  /** Rate thresholds are not evaluated before this many recorded calls are in the window (>= 1). Default 10. */
  minimumCalls?: number;
  /** How long the breaker stays open before it admits probes (ms, >= 0). Default 30000. */
  openDuration?: number;
  /** Cap of the backed-off open duration (ms, >= `openDuration`). Default `openDuration`. */
  openDurationMax?: number;
  /** Each consecutive re-open multiplies the open duration by this (finite, >= 1). Default 1. */
  backoffMultiplier?: number;
  /** Probes admitted at once in half-open, 1..10,000. Default 1. */
  halfOpenMaxCalls?: number;
  /** Successful probes needed to close, 1..`halfOpenMaxCalls`. Default 1. */
  halfOpenSuccessThreshold?: number;
  /** A half-open probe whose outcome is not recorded within this (ms, > 0) counts as a failure. Default `openDuration` (30000 when that is 0). */
  probeTimeout?: number;
  /** Where time comes from. Default a `SystemClock`. Call durations are measured on it. */
  clock?: ManualClock | SystemClock;
  /**
   * Decides whether an error thrown (or a rejection) by the guarded function counts as a
   * failure. Return false to ignore it: the call is then counted only in `ignored`. The
   * error still propagates to the caller. Default: every error is a failure. If it throws,
   * the call counts as a failure and `execute` rejects with what it threw.
   */
  isFailure?: (error: unknown) => boolean;
  /**
   * Called only when the breaker rejects a call (open, forced open, saturated half-open),
   * with the rejection error and the call's arguments; its result (or awaited promise) is
   * returned by `execute` instead. Errors of the guarded function itself never reach it.
   */
  fallback?: (error: BreakerOpenError, ...args: TArgs) => TFallback | PromiseLike<TFallback>;
}

/** A seawall error: a plain `Error` (or `TypeError`) with a stable `code`. */
export interface SeawallError extends Error {
  code: SeawallErrorCode;
}

/** Why the breaker refused a call: `code === 'SEAWALL_BREAKER_OPEN'`. */
export interface BreakerOpenError extends Error {
  code: 'SEAWALL_BREAKER_OPEN';
  /** Ms until probes are admitted: 0 in saturated half-open, `Infinity` when forced open. */
  retryAfter: number;
  /** The state that refused. */
  state: 'open' | 'half_open' | 'forced_open';
  /** The breaker's name. */
  breaker: string;
}

/** An invalid option: `code === 'SEAWALL_CONFIG'`. A `TypeError` when the value had the wrong type. */
export interface ConfigError extends Error {
  code: 'SEAWALL_CONFIG';
  /** The option as you spelled it (`openDuration`). */
  field: string;
  /** The refused value as rendered in the message (durations with `ms`). */
  value: string;
  /** Why it was refused. */
  reason: string;
}

/** A second outcome on one permit: `code === 'SEAWALL_PERMIT_CONSUMED'`. */
export interface PermitConsumedError extends Error {
  code: 'SEAWALL_PERMIT_CONSUMED';
}

/** A state change, delivered to `'stateChange'` listeners. */
export interface StateChangeEvent {
  /** The breaker's name. */
  breaker: string;
  from: BreakerState;
  to: BreakerState;
  /** Clock time of the change in ms since the clock's origin (a `ManualClock` starts at 0). */
  at: number;
  reason: StateChangeReason;
}

/** Counts, rates and state of a breaker. Counts are cumulative since it was built. */
export interface BreakerSnapshot {
  name: string;
  state: BreakerState;
  successes: number;
  /** Failed calls, timeouts included. */
  failures: number;
  /** Slow calls (successful or failed). */
  slow: number;
  ignored: number;
  rejected: number;
  timeouts: number;
  /** Failures / recorded calls in the current window (0 when empty or no rate threshold). */
  failureRate: number;
  /** Slow calls / recorded calls in the current window (0 when empty or no rate threshold). */
  slowCallRate: number;
  /** Recorded calls in the current window. */
  windowCalls: number;
  /** Failures in a row (closed state only, else 0). */
  consecutiveFailures: number;
  /** Ms until probes are admitted when open; 0 otherwise; `Infinity` when forced open. */
  retryAfter: number;
  /** Half-open probes out now. */
  halfOpenInFlight: number;
}

/**
 * A permit for one call (from `breaker.tryAcquire()`). Record exactly one outcome, or
 * `cancel()`; a second one throws `SEAWALL_PERMIT_CONSUMED`. A permit that is garbage
 * collected without an outcome is cancelled.
 */
export declare class Permit {
  private constructor();
  /** The call succeeded after `ms` (default: measured on the breaker's clock since the permit was issued). */
  success(ms?: number): void;
  /** The call failed after `ms`. */
  failure(ms?: number): void;
  /** The call timed out after `ms`: a failure, also counted in `timeouts`. */
  timeout(ms?: number): void;
  /** The call ended with an error you exclude: counted only in `ignored`. */
  ignore(): void;
  /** Gives the permit back without an outcome: frees a half-open slot, counts nowhere. */
  cancel(): void;
  /** True when this permit is a half-open probe. */
  readonly isProbe: boolean;
  /** True once an outcome was recorded or the permit was cancelled. */
  readonly done: boolean;
}

/**
 * A circuit breaker over seawall's Rust core.
 *
 * Emits `'stateChange'` synchronously, in order, before the call that caused the change
 * returns. A listener that throws is reported as a process warning
 * (`code === 'SEAWALL_LISTENER_ERROR'`) and skipped; the breaker goes on.
 */
export declare class CircuitBreaker<TFallback = never> extends EventEmitter {
  constructor(options?: CircuitBreakerOptions<any[], TFallback>);

  /** The breaker's name. */
  readonly name: string;
  /** The current state (time-driven changes applied first). */
  readonly state: BreakerState;
  /** The clock the breaker reads. */
  readonly clock: ManualClock | SystemClock;

  /**
   * Runs `fn(...args)` (sync or async) under the breaker. Resolves with its result; rejects
   * with its error unchanged; when the breaker refuses, rejects with a `BreakerOpenError`
   * (or resolves with the `fallback`'s result).
   */
  execute<TArgs extends unknown[], TResult>(
    fn: (...args: TArgs) => TResult | PromiseLike<TResult>,
    ...args: TArgs
  ): Promise<TResult | TFallback>;

  /** Returns a function that runs `fn` under the breaker, keeping `this`, and returns a Promise. */
  wrap<TThis, TArgs extends unknown[], TResult>(
    fn: (this: TThis, ...args: TArgs) => TResult | PromiseLike<TResult>,
  ): (this: TThis, ...args: TArgs) => Promise<TResult | TFallback>;

  /**
   * Asks for a permit for a call you run and record yourself. Throws a `BreakerOpenError`
   * when the breaker refuses.
   */
  tryAcquire(): Permit;

  /** Counts, rates and state. */
  snapshot(): BreakerSnapshot;
  /** Rejects every call until `reset()`. */
  forceOpen(): void;
  /** Admits every call and records only metrics, until `reset()`. */
  disable(): void;
  /** Closed, with an empty window, no backoff and no consecutive failures (counts are kept). */
  reset(): void;

  on(event: 'stateChange', listener: (event: StateChangeEvent) => void): this;
  once(event: 'stateChange', listener: (event: StateChangeEvent) => void): this;
  off(event: 'stateChange', listener: (event: StateChangeEvent) => void): this;
  addListener(event: 'stateChange', listener: (event: StateChangeEvent) => void): this;
  prependListener(event: 'stateChange', listener: (event: StateChangeEvent) => void): this;
  prependOnceListener(event: 'stateChange', listener: (event: StateChangeEvent) => void): this;
  removeListener(event: 'stateChange', listener: (event: StateChangeEvent) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
  off(event: string | symbol, listener: (...args: any[]) => void): this;
  addListener(event: string | symbol, listener: (...args: any[]) => void): this;
  prependListener(event: string | symbol, listener: (...args: any[]) => void): this;
  prependOnceListener(event: string | symbol, listener: (...args: any[]) => void): this;
  removeListener(event: string | symbol, listener: (...args: any[]) => void): this;
}
