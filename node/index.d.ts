// Type definitions for seawall (Node.js). Durations are milliseconds everywhere.

import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';

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
  | 'SEAWALL_CANCELLED'
  | 'SEAWALL_IDEMPOTENCY_IN_PROGRESS'
  | 'SEAWALL_IDEMPOTENCY_MISMATCH'
  | 'SEAWALL_STORE_UNAVAILABLE'
  | 'SEAWALL_LEASE_LOST'
  | 'SEAWALL_INTERNAL'
  | (string & {});

/** A clock every primitive reads time from. */
export interface Clock {
  /** Milliseconds since the clock's origin. */
  now(): number;
}

/**
 * A test clock whose time moves only when `advance(ms)` is called. Starts at 0.
 * Pass it as the `clock` option to make a breaker's, a deadline's or a timeout's timing
 * exact in tests.
 */
export declare class ManualClock implements Clock {
  constructor();
  /**
   * Moves time forward by `ms` and fires, synchronously and in due order, the timers that
   * became due (pending `timeout()` calls on this clock time out, `cancelAt` tokens are
   * cancelled) before it returns. `ms` must be a finite number >= 0: otherwise a
   * `RangeError` (a number) or `TypeError` (not a number), code `SEAWALL_INVALID_ARGUMENT`.
   */
  advance(ms: number): void;
  /** Milliseconds since the clock's origin (0 at construction). */
  now(): number;
  /** Timers scheduled on this clock and not yet fired (by pending `timeout()` calls, `cancelAt`). */
  readonly pendingTimers: number;
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
  /**
   * Time limit (ms, > 0) of each `execute`/`wrap` call, applied inside the breaker: the
   * function receives a {@link TimeoutContext} (`{ signal, deadline }`) as an extra last
   * argument, its `signal` aborts when the limit (or an earlier ambient deadline) passes,
   * and the call then rejects with a {@link TimeoutError} and is recorded as a failure and
   * a timeout. Default unset (no limit, no extra argument).
   */
  timeout?: number;
  /**
   * Whether an open breaker makes the service `down` in a registry's health (true) or only
   * `degraded` (false: the service keeps working with less). Default true.
   */
  critical?: boolean;
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

/**
 * Why the breaker refused a call: `code === 'SEAWALL_BREAKER_OPEN'`. An `Error` built
 * without capturing a stack trace: `stack` is its first line only (see docs/node.md).
 */
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

/**
 * A call's deadline passed: `code === 'SEAWALL_TIMEOUT'`, `name === 'TimeoutError'` (as the
 * reason of `AbortSignal.timeout()`). The message says which limit ran out.
 */
export interface TimeoutError extends Error {
  code: 'SEAWALL_TIMEOUT';
  name: 'TimeoutError';
}

/**
 * A bad argument: `code === 'SEAWALL_INVALID_ARGUMENT'`. A `RangeError` for a number out of
 * range (a negative, NaN or infinite duration), a `TypeError` otherwise (wrong type, a
 * malformed `grpc-timeout` value, deadlines of different clocks). The message names the
 * argument and the value (`invalid argument: ms = -1ms: must not be negative`).
 */
export interface InvalidArgumentError extends Error {
  code: 'SEAWALL_INVALID_ARGUMENT';
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
  /** Rejected calls answered by the `fallback` (degraded service). */
  fallbacks: number;
  /** The `critical` option. */
  critical: boolean;
}

/** A call was rejected: delivered to `'rejected'` listeners. */
export interface RejectedEvent {
  breaker: string;
  /** The state that rejected. */
  state: 'open' | 'half_open' | 'forced_open';
  /** Ms until probes are admitted (`Infinity` when forced open). */
  retryAfter: number;
  /** Clock time in ms. */
  at: number;
}

/** A call timed out (the `timeout` option, or a recorded timeout): `'timeout'` listeners. */
export interface BreakerTimeoutEvent {
  breaker: string;
  /** How long the call ran, in ms (0 when the breaker does not time its calls). */
  took: number;
  /** Clock time in ms. */
  at: number;
}

/** A rejected call was answered by the `fallback` (degraded service): `'fallback'` listeners. */
export interface FallbackEvent {
  breaker: string;
  /** Clock time in ms. */
  at: number;
}

/** The events of a breaker, by name. */
export interface CircuitBreakerEvents {
  stateChange: StateChangeEvent;
  rejected: RejectedEvent;
  timeout: BreakerTimeoutEvent;
  fallback: FallbackEvent;
}

/** What a registry's `'event'` listeners receive: a breaker's or a cache's event with its `type`. */
export type RegistryEvent =
  | {
      [K in keyof CircuitBreakerEvents]: { type: K } & CircuitBreakerEvents[K];
    }[keyof CircuitBreakerEvents]
  | {
      [K in keyof IdempotencyCacheEvents]: { type: K } & IdempotencyCacheEvents[K];
    }[keyof IdempotencyCacheEvents];

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
 * Emits `'stateChange'`, `'rejected'`, `'timeout'` and `'fallback'` synchronously, in
 * order, before the call that caused them returns. A listener that throws is reported as a
 * process warning (`code === 'SEAWALL_LISTENER_ERROR'`) and skipped; the breaker goes on.
 * Rejections, timeouts and fallbacks are queued by the core only while some listener (of
 * the breaker, or of its registry's `'event'`) watches them.
 */
export declare class CircuitBreaker<TFallback = never> extends EventEmitter {
  constructor(options?: CircuitBreakerOptions<any[], TFallback>);

  /** The breaker's name. */
  readonly name: string;
  /** The current state (time-driven changes applied first). */
  readonly state: BreakerState;
  /** The clock the breaker reads. */
  readonly clock: ManualClock | SystemClock;

  /** The `timeout` option (ms), or `null` when calls have no time limit. */
  readonly timeout: number | null;
  /** The `critical` option: an open breaker makes a registry's health `down` (else `degraded`). */
  readonly critical: boolean;

  /**
   * Runs `fn(...args)` (sync or async) under the breaker. Resolves with its result; rejects
   * with its error unchanged; when the breaker refuses, rejects with a `BreakerOpenError`
   * (or resolves with the `fallback`'s result).
   *
   * With the `timeout` option, `fn` is called as `fn(...args, { signal, deadline })` (a
   * {@link TimeoutContext}), in the deadline's ambient scope; when the deadline passes
   * first, `signal` aborts and the promise rejects with a {@link TimeoutError} (recorded as
   * a failure and a timeout). If the ambient deadline has passed already, or an enclosing
   * `timeout()` was cancelled, the call is refused before the breaker is asked (nothing is
   * recorded) with that error.
   */
  execute<TArgs extends unknown[], TResult>(
    fn: (...args: [...TArgs, TimeoutContext]) => TResult | PromiseLike<TResult>,
    ...args: TArgs
  ): Promise<TResult | TFallback>;
  execute<TArgs extends unknown[], TResult>(
    fn: (...args: TArgs) => TResult | PromiseLike<TResult>,
    ...args: TArgs
  ): Promise<TResult | TFallback>;

  /**
   * Returns a function that runs `fn` under the breaker, keeping `this`, and returns a
   * Promise. With the `timeout` option, `fn` receives a {@link TimeoutContext} after the
   * wrapper's arguments (see `execute`).
   */
  wrap<TThis, TArgs extends unknown[], TResult>(
    fn: (this: TThis, ...args: [...TArgs, TimeoutContext]) => TResult | PromiseLike<TResult>,
  ): (this: TThis, ...args: TArgs) => Promise<TResult | TFallback>;
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

  on<K extends keyof CircuitBreakerEvents>(event: K, listener: (event: CircuitBreakerEvents[K]) => void): this;
  once<K extends keyof CircuitBreakerEvents>(event: K, listener: (event: CircuitBreakerEvents[K]) => void): this;
  off<K extends keyof CircuitBreakerEvents>(event: K, listener: (event: CircuitBreakerEvents[K]) => void): this;
  addListener<K extends keyof CircuitBreakerEvents>(event: K, listener: (event: CircuitBreakerEvents[K]) => void): this;
  prependListener<K extends keyof CircuitBreakerEvents>(event: K, listener: (event: CircuitBreakerEvents[K]) => void): this;
  prependOnceListener<K extends keyof CircuitBreakerEvents>(
    event: K,
    listener: (event: CircuitBreakerEvents[K]) => void,
  ): this;
  removeListener<K extends keyof CircuitBreakerEvents>(event: K, listener: (event: CircuitBreakerEvents[K]) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
  off(event: string | symbol, listener: (...args: any[]) => void): this;
  addListener(event: string | symbol, listener: (...args: any[]) => void): this;
  prependListener(event: string | symbol, listener: (...args: any[]) => void): this;
  prependOnceListener(event: string | symbol, listener: (...args: any[]) => void): this;
  removeListener(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** Options naming the clock a deadline is measured on. */
export interface ClockOptions {
  /** A `ManualClock` or a `SystemClock`. Default: the system clock. */
  clock?: ManualClock | SystemClock;
}

/**
 * An absolute point in time on a clock (the core's deadline). Immutable. Nested scopes
 * share one budget: each takes the earliest of its own deadline and the one it was given,
 * and passes what remains on (a `signal`, a socket timeout, a `grpc-timeout` header).
 *
 * Make one with `Deadline.after(ms)` or `Deadline.fromGrpcTimeout(header)`; `new
 * Deadline()` throws.
 */
export declare class Deadline {
  private constructor();
  /**
   * The deadline `ms` from now on `options.clock` (default: the system clock). `ms` must be
   * a finite number >= 0 (0 is a deadline already expired): otherwise an
   * {@link InvalidArgumentError} naming `ms` and the value.
   */
  static after(ms: number, options?: ClockOptions): Deadline;
  /**
   * The deadline a `grpc-timeout` header value gives (`'250m'`, `'3S'`: 1 to 8 digits and
   * one of `H M S m u n`), counted from now. A malformed value is an
   * {@link InvalidArgumentError} (a `TypeError`) quoting it.
   */
  static fromGrpcTimeout(header: string, options?: ClockOptions): Deadline;
  /** The clock the deadline is measured on. */
  readonly clock: ManualClock | SystemClock;
  /** Milliseconds left, a fractional number (nanosecond precision); 0 once expired. */
  remaining(): number;
  /** Whole milliseconds left, rounded down; 0 once expired. */
  remainingMs(): number;
  /** True at or after the deadline (a deadline expires exactly at its time). */
  expired(): boolean;
  /**
   * The earlier of this deadline and `other` (one of the two objects). Deadlines of
   * different clocks cannot be compared: an {@link InvalidArgumentError}.
   */
  earliest(other: Deadline): Deadline;
  /** The earlier of this deadline and `ms` from now on the same clock. */
  within(ms: number): Deadline;
  /**
   * What remains as a `grpc-timeout` header value: the finest unit whose value fits in 8
   * digits, rounded up so that a budget left never becomes 0 (`'250000u'`; `'0n'` once expired).
   */
  toGrpcTimeout(): string;
  /**
   * A share of what remains, in ms (fractional): `fraction` of it, at least `minMs`
   * (default 0), never more than what remains. E.g. `budget(0.4, 5)`: this attempt may use
   * 40 % of the budget, at least 5 ms. `fraction` must be in [0, 1]: anything else (NaN
   * and the infinities included) throws a `RangeError` with code `SEAWALL_INVALID_ARGUMENT`.
   */
  budget(fraction: number, minMs?: number): number;
}

/**
 * The object a function run under a deadline receives (`timeout(ms, fn)`, or a breaker's
 * `timeout` option): hand `signal` to the work (`fetch`, `events.once`, `stream.pipeline`,
 * ...) and the remaining budget (`deadline.remaining()`) to what takes a timeout.
 */
export interface TimeoutContext {
  /**
   * Aborts when the deadline passes (reason: the {@link TimeoutError}) or the caller's
   * signal aborts (reason: that signal's reason). Not aborted when the call ends in time.
   */
  readonly signal: AbortSignal;
  /** The call's deadline: the earlier of its own limit and the ambient deadline. */
  readonly deadline: Deadline;
}

/** Options of `timeout(ms, fn, options)`. */
export interface TimeoutOptions extends ClockOptions {
  /**
   * The caller's cancellation: when it aborts, the call's `signal` aborts and `timeout`
   * rejects with its reason. Already aborted: `timeout` rejects at once, `fn` is not called.
   */
  signal?: AbortSignal;
}

/**
 * Runs `fn({ signal, deadline })` with a time limit of `ms` (a finite number >= 0),
 * counted on `options.clock`, else on the ambient deadline's clock, else on the system
 * clock. The call's deadline is the earlier of `ms` from now and the ambient deadline, and
 * is the ambient deadline inside `fn` (`currentDeadline()`).
 *
 * - Resolves with `fn`'s result, or rejects with its error (unchanged), when `fn` settles
 *   before the deadline.
 * - When the deadline passes first (or `fn` settles after it), `signal` aborts and the
 *   promise rejects with a {@link TimeoutError}. `fn`'s late result is ignored.
 * - When `options.signal` aborts first (or an enclosing `timeout()` is cancelled by its
 *   caller), `signal` aborts and the promise rejects with that signal's reason.
 * - A deadline already passed, or a signal already aborted: rejects at once; `fn` is not called.
 *
 * Bad arguments reject (never throw) with an {@link InvalidArgumentError}. On the system
 * clock a pending call holds one `setTimeout`, cleared when it settles; on a `ManualClock`
 * the deadline fires inside `advance`.
 */
export declare function timeout<T>(
  ms: number,
  fn: (context: TimeoutContext) => T | PromiseLike<T>,
  options?: TimeoutOptions,
): Promise<T>;

/**
 * Runs `fn(deadline)` with `deadline` as the ambient deadline, which `currentDeadline()`
 * returns in `fn` and in everything it calls or awaits (through `AsyncLocalStorage`), and
 * which caps every `timeout()` and breaker `timeout` inside. `deadlineOrMs`: a
 * `Deadline`, or ms from now (on the enclosing deadline's clock, else the system clock).
 * Nested scopes take the earliest. Sets no timer: it is a budget, not a timeout. Returns
 * what `fn` returns; bad arguments throw an {@link InvalidArgumentError}.
 */
export declare function withDeadline<T>(deadlineOrMs: Deadline | number, fn: (deadline: Deadline) => T): T;

/** The ambient deadline (innermost `withDeadline`/`timeout` scope), or `undefined` outside any. */
export declare function currentDeadline(): Deadline | undefined;

/**
 * Parses a `grpc-timeout` header value into milliseconds: `'250m'` is 250, `'3S'` is 3000,
 * `'7u'` is 0.007 (fractional below 1 ms). A malformed value is an {@link InvalidArgumentError}.
 */
export declare function parseGrpcTimeout(header: string): number;

/** Formats `ms` (finite, >= 0) as a `grpc-timeout` header value: `formatGrpcTimeout(250) === '250000u'`. */
export declare function formatGrpcTimeout(ms: number): string;

/** Why a `CancelToken` was cancelled. */
export type CancelReason = 'cancelled' | 'deadline_exceeded';

/**
 * The core's cancellation token, shared with the Rust, C and Python APIs; polled. In Node
 * code, cancel work with an `AbortSignal` (as `timeout` does); use a token where an API of
 * seawall takes one, or to cancel at a deadline without a JS timer.
 */
export declare class CancelToken {
  constructor();
  /** Cancels the token (reason `'cancelled'`); true when this call cancelled it. */
  cancel(): boolean;
  /** True once cancelled. */
  readonly cancelled: boolean;
  /** `null` until cancelled, then why. */
  readonly reason: CancelReason | null;
  /**
   * Cancels the token (reason `'deadline_exceeded'`) when `deadline` passes: at once if it
   * has; inside `advance` on a `ManualClock`; on the core's timer thread on the system clock
   * (no JS timer, nothing keeps the process alive). Dispose of the handle to unschedule.
   */
  cancelAt(deadline: Deadline): CancelTimer;
}

/**
 * The scheduled cancellation of `token.cancelAt(deadline)`. Collected by the garbage
 * collector without `dispose()`, it stays scheduled.
 */
export interface CancelTimer {
  /** Unschedules the cancellation (no effect once it ran). */
  dispose(): void;
  /** The same as `dispose()`, for `using`. */
  [Symbol.dispose](): void;
}

// ---------------------------------------------------------------------------------------
// Idempotency cache
// ---------------------------------------------------------------------------------------

/**
 * How results are turned into bytes and back. The default ({@link jsonSerializer}) stores
 * Buffers and typed arrays as raw bytes (`application/octet-stream`) and everything else
 * as JSON (`application/json`), so Node and Python services sharing a store replay each
 * other's results.
 */
export interface Serializer {
  /** The bytes (a string is stored as its UTF-8 bytes) and content type of a result. */
  serialize(value: unknown): { bytes: Uint8Array | string; contentType: string };
  /** A stored result back to a value (`bytes` is a Buffer). */
  deserialize(bytes: Buffer, contentType: string): unknown;
  /** An error `fn` threw, as stored with `cacheErrors`. Default: `{"type", "message", "code"}` JSON. */
  serializeError?(error: unknown): { bytes: Uint8Array | string; contentType: string };
  /** A stored error back to the `Error` that duplicates are rejected with. */
  deserializeError?(bytes: Buffer, contentType: string): Error;
}

/** The default serializer: JSON, Buffers and typed arrays as raw bytes. */
export declare const jsonSerializer: Readonly<Required<Serializer>>;

/**
 * Options of `new IdempotencyCache(options)`: the SPEC's names in camelCase, durations in
 * ms, checked by the core (an invalid one throws `SEAWALL_CONFIG` naming the field and the
 * value; a `TypeError` for a wrong type; unknown names refused). `undefined` counts as not given.
 */
export interface IdempotencyCacheOptions {
  /** Label in metrics and events. Default `''`. */
  name?: string;
  /** How long a completed result is kept and replayed (ms, > 0). Default 24 h. */
  ttl?: number;
  /** How long a claim holds its key without `renew` (ms, > 0): a crashed owner blocks its key no longer. Default 30000. */
  lease?: number;
  /** What a duplicate gets while the key is in progress: wait for the result, or `SEAWALL_IDEMPOTENCY_IN_PROGRESS` at once. Default `'wait'`. */
  onDuplicate?: 'wait' | 'reject';
  /** Longest wait for the owner's result (ms, >= 0; 0 rejects). Default: the lease. */
  waitTimeout?: number;
  /** Store the errors `fn` throws as results, replayed to duplicates (default false: release the key so a retry runs). */
  cacheErrors?: boolean;
  /** Largest serialised result accepted (bytes). Default 1 MiB. */
  maxResultBytes?: number;
  /** When the store fails: `'fail'` with `SEAWALL_STORE_UNAVAILABLE` (default), or `'run'` the operation unprotected. */
  onStoreError?: 'fail' | 'run';
  /** In a registry: whether an unavailable store makes health `down` (true) or `degraded` (false). Default: true with `onStoreError: 'fail'`, false with `'run'`. */
  critical?: boolean;
  /** Memory store: most entries. Default 10000. (Not with `store`.) */
  maxEntries?: number;
  /** Memory store: most payload bytes (>= `maxResultBytes`). Default 64 MiB. (Not with `store`.) */
  maxBytes?: number;
  /** Where time comes from (leases, TTLs, waits). Default a `SystemClock`. */
  clock?: ManualClock | SystemClock;
  /**
   * A store shared with other caches: a `MemoryStore`, or a `RedisStore` (shared by
   * processes and hosts; its calls run off the event loop). Default: a new memory store
   * with `maxEntries` / `maxBytes`.
   */
  store?: MemoryStore | RedisStore;
  /** How results are stored. Default {@link jsonSerializer}. */
  serializer?: Serializer;
}

/**
 * A request payload: a string (hashed as its UTF-8 bytes), bytes (a Buffer, typed array or
 * ArrayBuffer), or any JSON-able value (hashed as its canonical JSON, see
 * {@link canonicalJson}). `null`/`undefined`: no fingerprint.
 */
export type FingerprintPayload = string | Uint8Array | ArrayBuffer | ArrayBufferView | object | number | boolean | bigint | null | undefined;

/** Options of `cache.run(key, fn, options)` and `cache.begin(key, options)`. */
export interface RunOptions {
  /** The request payload: the same key with another payload is a mismatch (`SEAWALL_IDEMPOTENCY_MISMATCH`). */
  fingerprint?: FingerprintPayload;
}

/** What `fn` receives in `cache.run(key, fn)`. */
export declare class RunContext {
  private constructor();
  /** The key being run. */
  readonly key: string;
  /** True when this run took the key over from an owner whose lease expired (or that released it). */
  readonly tookOver: boolean;
  /**
   * Extends the claim to a full lease from now; returns ms until it expires (a Promise of it
   * with a `RedisStore`: `await ctx.renew()` works with both). Fails with
   * `SEAWALL_LEASE_LOST` when already lost.
   */
  renew(): number | Promise<number>;
  /**
   * The outcome is unknown (a failure after side effects): if `fn` then throws, the claim
   * is kept until its lease expires instead of being released.
   */
  abandon(): void;
}

/** A claim on a key (low-level API). */
export declare class Lease {
  private constructor();
  readonly key: string;
  /** The fencing token: greater than every earlier lease's on this key (0 when unprotected). */
  readonly token: number;
  /** When it expires, in ms on the cache's clock. */
  readonly expiresAt: number;
  readonly tookOver: boolean;
  /** False when `onStoreError: 'run'` let the operation run without the store. */
  readonly protected: boolean;
  /** The request fingerprint (64 hex digits), or null for none. */
  readonly fingerprint: string | null;
}

/** A stored result, in seawall's record format (version 2, shared by every language). */
export declare class IdempotencyRecord {
  private constructor();
  /** Reads an encoded record; refuses another format with `SEAWALL_INVALID_ARGUMENT`. */
  static decode(bytes: Uint8Array | ArrayBuffer, options?: { serializer?: Serializer }): IdempotencyRecord;
  /** The record's bytes (version 2). */
  encode(): Buffer;
  /** The stored result bytes (a copy). */
  readonly result: Buffer;
  readonly contentType: string;
  /** `[name, value]` pairs, in order. */
  readonly metadata: Array<[string, string]>;
  /** True when the result is an error `fn` threw (`cacheErrors`). */
  readonly error: boolean;
  /** The fencing token of the lease that stored it. */
  readonly token: number;
  /** When it was stored / when it expires, in ms on the store's clock. */
  readonly createdMs: number;
  readonly expiresMs: number;
  /** The request fingerprint (64 hex digits), or null for none. */
  readonly fingerprint: string | null;
  /** The deserialised result; for an error record, throws the stored error rebuilt. */
  value(): unknown;
}

/** A result to store (low-level `complete` / `fail`). */
export interface IdempotencyOutput {
  result: string | Uint8Array;
  /** Default `''`. */
  contentType?: string;
  /** Ordered name/value pairs (duplicates allowed), e.g. an HTTP status and headers. */
  metadata?: Array<[string, string]>;
}

/** A waiter's outcome: run the operation (the key is yours now), or the stored result. */
export type WaiterOutcome = { kind: 'execute'; lease: Lease } | { kind: 'replay'; record: IdempotencyRecord };

/** What `waiter.poll()` says. */
export type WaitPoll =
  | { state: 'pending'; leaseExpiresIn: number; timeoutIn: number }
  | { state: 'execute'; lease: Lease }
  | { state: 'replay'; record: IdempotencyRecord }
  | { state: 'taken' };

/** A duplicate waiting for the owner of its key (low-level API). */
export declare class Waiter {
  private constructor();
  readonly key: string;
  readonly done: boolean;
  /** Applies what is due and reports without waiting; an outcome that is an error is thrown. */
  poll(): WaitPoll;
  /** The outcome, without blocking the event loop (rejects with the outcome's error). */
  result(): Promise<WaiterOutcome>;
  /** Stops waiting: the outcome becomes `SEAWALL_CANCELLED`. */
  cancel(): void;
}

/** What `cache.begin()` found. */
export type BeginOutcome =
  | { kind: 'execute'; lease: Lease }
  | { kind: 'replay'; record: IdempotencyRecord }
  | { kind: 'in_progress'; retryAfter: number; waiter: Waiter | null; error: IdempotencyInProgressError }
  | { kind: 'mismatch'; completed: boolean; error: IdempotencyMismatchError };

/** What a key holds (`cache.peek(key)`). */
export type PeekResult =
  | { state: 'absent' }
  | { state: 'in_progress'; token: number; fingerprint: string | null; expiresIn: number }
  | { state: 'completed'; record: IdempotencyRecord };

/** Cumulative counts of a cache (`seawall_idempotency_requests_total{result}`). */
export interface IdempotencyStats {
  executed: number;
  replayed: number;
  inProgress: number;
  mismatched: number;
  waited: number;
  takenOver: number;
  completed: number;
  released: number;
  abandoned: number;
  leaseLost: number;
  storeErrors: number;
  unprotected: number;
}

/** A duplicate found the key in progress (rejecting, or after `waitTimeout`). */
export interface IdempotencyInProgressError extends Error {
  code: 'SEAWALL_IDEMPOTENCY_IN_PROGRESS';
  key: string;
  /** Ms until the owner's lease expires (HTTP `Retry-After`). */
  retryAfter: number;
  /** Ms this caller waited (0 when refused at once). */
  waited: number;
}

/** The key was used with another payload (HTTP 422). */
export interface IdempotencyMismatchError extends Error {
  code: 'SEAWALL_IDEMPOTENCY_MISMATCH';
  key: string;
}

/** The store cannot be reached or cannot take the entry (full of live leases). */
export interface StoreUnavailableError extends Error {
  code: 'SEAWALL_STORE_UNAVAILABLE';
}

/** A `complete`, `release` or `renew` with a lease that no longer holds the key. */
export interface LeaseLostError extends Error {
  code: 'SEAWALL_LEASE_LOST';
  key: string;
  token: number;
  /** What happened to the lease (expired, taken over, completed...). */
  reason: string;
}

/** Options of `new MemoryStore(options)`. */
export interface MemoryStoreOptions {
  /** Most entries. Default 10000. */
  maxEntries?: number;
  /** Most payload bytes. Default 64 MiB. */
  maxBytes?: number;
  clock?: ManualClock | SystemClock;
}

/** A bounded in-memory store several caches can share (evicts expired, then least recently used results; never a live lease). */
export declare class MemoryStore {
  constructor(options?: MemoryStoreOptions);
  readonly kind: 'memory';
  stats(): { entries: number; bytes: number; evictions: number; maxEntries: number; maxBytes: number };
}

/** An idempotency cache event (of `run` calls). */
export interface IdempotencyEvent {
  /** The cache's name. */
  cache: string;
  key: string;
  /** Clock time in ms. */
  at: number;
}

/** The events of an idempotency cache, by name. */
export interface IdempotencyCacheEvents {
  /** A duplicate got the stored result. */
  replay: IdempotencyEvent;
  /** The key was used with another payload. */
  mismatch: IdempotencyEvent;
  /** A duplicate was refused while the key was in progress (at once, or after waiting). */
  inProgress: IdempotencyEvent & { retryAfter: number; waited: number };
  /** A duplicate took over the key of an owner that failed or whose lease expired. */
  takeover: IdempotencyEvent;
  /** A run's result was refused: its lease expired and another owner took over. */
  leaseLost: IdempotencyEvent & { token: number };
}

/** Options of `new RedisStore(options)` (durations in ms; checked by the core). */
export interface RedisStoreOptions {
  /** `redis://[user:password@]host[:port][/db]` or `redis+unix:///path?db=N`. Default `redis://127.0.0.1:6379/0`. */
  url?: string;
  /** Prefix of every key and channel (no braces, at most 128 bytes). Default `seawall:idem:`. */
  prefix?: string;
  /** Longest wait for a connection. Default 1000. */
  connectTimeout?: number;
  /** Longest wait for one command. Default 1000. */
  commandTimeout?: number;
  /** First wait before reconnecting (doubles per failure). Default 50. */
  reconnectDelay?: number;
  /** Longest wait between reconnection attempts. Default 2000. */
  reconnectMaxDelay?: number;
  /** How long a completion that could not be written is retried in the background (0: not at all). Default 30000. */
  completionRetryWindow?: number;
  /** Tests only: the store's scripts read "now" from this clock instead of the server's time. */
  clock?: ManualClock;
}

/** Counts of a Redis store. */
export interface RedisStoreStats {
  roundTrips: number;
  scriptLoads: number;
  connects: number;
  connectFailures: number;
  unavailable: number;
  completionRetries: number;
  completionsRecovered: number;
  completionsLost: number;
  completionsPending: number;
  notifications: number;
  watchedKeys: number;
  connected: boolean;
  notificationsConnected: boolean;
}

/**
 * A Redis store: one idempotency cache shared by processes, hosts and languages (each of
 * claim, complete, release and renew one atomic script on the server's clock; duplicates in
 * other processes woken by pub/sub). Connects on first use. A cache over it runs every store
 * call of `run` off the event loop (the libuv thread pool); its low-level calls and `peek`
 * block for one round trip.
 */
export declare class RedisStore {
  constructor(options?: RedisStoreOptions);
  readonly kind: 'redis';
  /** The URL, without its password. */
  readonly url: string;
  readonly prefix: string;
  /** Connects (if needed) and resolves with one round trip's time in ms; rejects with `SEAWALL_STORE_UNAVAILABLE`. */
  ping(): Promise<number>;
  stats(): RedisStoreStats;
}

/**
 * Makes an operation run once per key, however often it is retried or raced: the first
 * caller runs `fn` and stores its result; duplicates get that result (waiting for it,
 * without blocking the event loop, while it is in progress).
 */
export declare class IdempotencyCache extends EventEmitter {
  constructor(options?: IdempotencyCacheOptions);
  readonly name: string;
  readonly clock: ManualClock | SystemClock;
  /** The custom serializer, or null for the default. */
  readonly serializer: Serializer | null;
  /** The configuration in force, defaults filled in. */
  readonly options: Required<Pick<IdempotencyCacheOptions, 'name' | 'ttl' | 'lease' | 'onDuplicate' | 'waitTimeout' | 'cacheErrors' | 'maxResultBytes' | 'onStoreError' | 'critical'>> &
    Pick<IdempotencyCacheOptions, 'maxEntries' | 'maxBytes'>;
  /** Duplicates waiting now. */
  readonly waiting: number;

  /**
   * Runs `fn(ctx)` once for `key` (1 to 255 bytes of UTF-8). Resolves with the result as
   * stored (what every duplicate gets: JSON round-tripped, Buffers as Buffers); rejects with
   * `fn`'s error unchanged (the key is released, unless `cacheErrors` or `ctx.abandon()`),
   * with a replayed error (`cacheErrors`), or with `SEAWALL_IDEMPOTENCY_MISMATCH`,
   * `SEAWALL_IDEMPOTENCY_IN_PROGRESS`, `SEAWALL_STORE_UNAVAILABLE`, `SEAWALL_LEASE_LOST`
   * (this run's lease expired and another owner took over), `SEAWALL_INVALID_ARGUMENT`
   * (bad key, a result that cannot be serialised or is over `maxResultBytes`).
   */
  run<T>(key: string, fn: (ctx: RunContext) => T | PromiseLike<T>, options?: RunOptions): Promise<T | any>;

  /** A function that runs `fn` through `run`, the key (and fingerprint) computed from its arguments. */
  wrap<TThis, TArgs extends unknown[], TResult>(
    fn: (this: TThis, ...args: TArgs) => TResult | PromiseLike<TResult>,
    options: { key: (...args: TArgs) => string; fingerprint?: (...args: TArgs) => FingerprintPayload },
  ): (this: TThis, ...args: TArgs) => Promise<TResult | any>;

  /** Claims `key` in one atomic step and says what to do (low-level API). */
  begin(key: string, options?: RunOptions): BeginOutcome;
  /** `value` as `run` stores it: `{ result, contentType }`, ready for `complete`. */
  serialize(value: unknown): { result: string | Uint8Array; contentType: string };
  /** Stores the lease's result; returns the record duplicates get. */
  complete(lease: Lease, output: IdempotencyOutput): IdempotencyRecord;
  /** The operation failed: stores the error output with `cacheErrors` (returns the record), else releases (returns null). */
  fail(lease: Lease, output?: IdempotencyOutput): IdempotencyRecord | null;
  /** Deletes the claim so a retry may run. */
  release(lease: Lease): void;
  /** Extends the claim to a full lease from now; returns ms until it expires. */
  renew(lease: Lease): number;
  /** Outcome unknown: keeps the claim until it expires. */
  abandon(lease: Lease): void;
  /** Ms until the lease expires (0 once it has). */
  remaining(lease: Lease): number;
  /** What the key holds, changing nothing. */
  peek(key: string): PeekResult;
  /** Cumulative counts. */
  stats(): IdempotencyStats;

  on<K extends keyof IdempotencyCacheEvents>(event: K, listener: (event: IdempotencyCacheEvents[K]) => void): this;
  once<K extends keyof IdempotencyCacheEvents>(event: K, listener: (event: IdempotencyCacheEvents[K]) => void): this;
  off<K extends keyof IdempotencyCacheEvents>(event: K, listener: (event: IdempotencyCacheEvents[K]) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
  off(event: string | symbol, listener: (...args: any[]) => void): this;
}

/**
 * The canonical JSON text of a payload: byte for byte Python's
 * `json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` for the
 * same data (keys sorted by code point; safe integers and BigInts as integers, other
 * numbers as Python's float `repr`). NaN and the infinities are refused.
 */
export declare function canonicalJson(value: unknown): string;

/** The core's fingerprint (SHA-256, 64 hex digits) of a payload, as `run` computes it. */
export declare function fingerprint(payload: FingerprintPayload): string;

// ---------------------------------------------------------------------------------------
// Registry, health, metrics
// ---------------------------------------------------------------------------------------

/** Options of `new Registry(options)`. */
export interface RegistryOptions {
  /** The clock of check times, and the default clock of the breakers and caches it creates. */
  clock?: ManualClock | SystemClock;
  /** Most breakers kept (whole number >= 1; past it the least recently used is forgotten). Default 10000. */
  maxBreakers?: number;
}

/** Options of `registry.addCheck(name, fn, options)`. */
export interface CheckOptions {
  /** A run that takes longer fails (ms, > 0). Default 5000. */
  timeout?: number;
  /** Results are reused this long (ms, >= 0; 0 runs on every `health()`). Default 5000. */
  interval?: number;
  /** A failure makes the service `down` (true, default) or `degraded`. */
  critical?: boolean;
}

export type HealthStatus = 'ok' | 'degraded' | 'down';

/** One part of a health report (the core's JSON, the same in every language). */
export interface HealthCheckReport {
  kind: 'check' | 'breaker';
  ok: boolean;
  critical: boolean;
  status: HealthStatus;
  /** The last error (a check's message, a timeout, a breaker's state), or null. */
  error: string | null;
  /** Clock time (ms) of the last run's end; null for breakers and checks never run. */
  checked_at_ms: number | null;
  /** Clock time (ms) it last passed. */
  last_ok_at_ms: number | null;
  /** How long the last run took (ms). */
  duration_ms: number | null;
}

/** `registry.health()`: the status and every check and breaker that decided it. */
export interface HealthReport {
  status: HealthStatus;
  checks: Record<string, HealthCheckReport>;
}

/** `registry.snapshot()`: the core's JSON (snake_case fields, durations in ms). */
export interface RegistrySnapshot {
  breakers: Record<
    string,
    {
      name: string;
      state: BreakerState;
      critical: boolean;
      successes: number;
      failures: number;
      slow: number;
      ignored: number;
      rejected: number;
      timeouts: number;
      fallbacks: number;
      failure_rate: number;
      slow_call_rate: number;
      window_calls: number;
      consecutive_failures: number;
      /** null when forced open. */
      retry_after_ms: number | null;
      half_open_in_flight: number;
      transitions: Array<{ from: BreakerState; to: BreakerState; count: number }>;
    }
  >;
  /** Each cache's counts (the core's stats, snake_case). */
  idempotency: Record<
    string,
    {
      executed: number;
      replayed: number;
      in_progress: number;
      mismatched: number;
      waited: number;
      taken_over: number;
      completed: number;
      released: number;
      abandoned: number;
      lease_lost: number;
      store_errors: number;
      unprotected: number;
    }
  >;
  health: HealthReport;
}

/**
 * Named breakers, idempotency caches and health checks, with one snapshot, one Prometheus
 * exposition and one health report. Emits `'event'` ({@link RegistryEvent}) for every
 * event of its breakers and idempotency caches.
 */
export declare class Registry extends EventEmitter {
  constructor(options?: RegistryOptions);
  readonly clock: ManualClock | SystemClock;
  /** The breaker `name`, created with `options` if there is none (an existing one keeps its options). */
  breaker<TFallback = never>(name: string, options?: CircuitBreakerOptions<any[], TFallback>): CircuitBreaker<TFallback>;
  /** Forgets a breaker (holders keep using it); false when there was none. */
  removeBreaker(name: string): boolean;
  /** Names of the breakers held, sorted. */
  breakerNames(): string[];
  /** The idempotency cache `name`, created with `options` if there is none. */
  idempotencyCache(name: string, options?: IdempotencyCacheOptions): IdempotencyCache;
  /** The caches, by name. */
  idempotencyCaches(): Map<string, IdempotencyCache>;
  /**
   * Registers a health check: `fn()` (sync or async) passes unless it throws, rejects or
   * returns `false`. Replaces a check of the same name.
   */
  addCheck(name: string, fn: () => unknown, options?: CheckOptions): this;
  removeCheck(name: string): boolean;
  /** Runs the due checks (bounded by their timeouts; never rejects for a check), then reports. */
  health(): Promise<HealthReport>;
  /** The report from the results at hand, running nothing. */
  report(): HealthReport;
  snapshot(): RegistrySnapshot;
  /** Every metric in the Prometheus text exposition format (version 0.0.4). */
  prometheus(): string;

  on(event: 'event', listener: (event: RegistryEvent) => void): this;
  once(event: 'event', listener: (event: RegistryEvent) => void): this;
  off(event: 'event', listener: (event: RegistryEvent) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
  off(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** Options of `observability.handler(registry, options)`. */
export interface ObservabilityHandlerOptions {
  /** Default `'/health'`. */
  healthPath?: string;
  /** Default `'/metrics'`. */
  metricsPath?: string;
}

/** Ready-made endpoints. */
export declare const observability: {
  /**
   * A request handler for `http.createServer(handler)` or Express/Connect (`app.use(handler)`):
   * `GET /health` (200 for ok/degraded, 503 for down, the report as JSON) and
   * `GET /metrics` (`text/plain; version=0.0.4`). Other paths go to `next()` (404 without it).
   */
  handler(
    registry: Registry,
    options?: ObservabilityHandlerOptions,
  ): (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void;
};
