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
  | 'SEAWALL_CANCELLED'
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

  /** The `timeout` option (ms), or `null` when calls have no time limit. */
  readonly timeout: number | null;

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
   * 40 % of the budget, at least 5 ms.
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
