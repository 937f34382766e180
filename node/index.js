'use strict';
// seawall for Node.js: a thin layer over the native addon (the Rust core).
//
// Every decision (state machine, option validation, deadline arithmetic, error messages and
// codes) is made by the core. This file turns a permit + outcome protocol into
// `execute`/`wrap`, applies the JS-only options (`clock`, `isFailure`, `fallback`), emits
// the core's state-change events through an EventEmitter, and runs calls under deadlines
// (`timeout`, the ambient deadline, the breaker's `timeout` option) with AbortSignals and
// timers.

const { AsyncLocalStorage } = require('node:async_hooks');
const { EventEmitter } = require('node:events');
const path = require('node:path');

const native = loadNative();
const {
  NativeBreaker,
  NativePermit,
  ManualClock: NativeManualClock,
  SystemClock,
  CancelToken: NativeCancelToken,
  CancelTimer,
} = native;

/** The version of seawall (the core's, which is this package's). */
const version = native.version();

function loadNative() {
  const libc = process.platform === 'linux' ? '-gnu' : '';
  const file = `seawall.${process.platform}-${process.arch}${libc}.node`;
  const candidates = [];
  if (process.env.SEAWALL_NATIVE) candidates.push(path.resolve(process.env.SEAWALL_NATIVE));
  candidates.push(path.join(__dirname, file));
  for (const p of candidates) {
    try {
      return require(p);
    } catch (err) {
      if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(p)) continue;
      throw err;
    }
  }
  const err = new Error(
    `seawall: the native addon for ${process.platform}-${process.arch} was not found ` +
      `(looked for ${candidates.join(', ')}). Build it with scripts/build-node.sh in the seawall ` +
      'repository (cargo build --release -p seawall-node), or set SEAWALL_NATIVE to its path.',
  );
  err.code = 'SEAWALL_NATIVE_NOT_FOUND';
  throw err;
}

// Outcome codes of NativeBreaker#settle.
const STATES = ['closed', 'open', 'half_open', 'forced_open', 'disabled'];
const SUCCESS = 0;
const FAILURE = 1;
const TIMEOUT = 2;
const IGNORE = 3;
const CANCEL = 4;

// CircuitBreaker's method that records a timed call's outcome (see TimeoutContext).
const kRecord = Symbol('seawall.record');

/** An option of the JS layer itself was refused; worded like the core's errors. */
function optionError(field, value, reason) {
  let shown;
  if (typeof value === 'string') shown = JSON.stringify(value);
  else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') shown = String(value);
  else shown = value === null ? '<null>' : `<${typeof value}>`;
  const err = new TypeError(`invalid configuration: ${field} = ${shown}: ${reason}`);
  err.code = 'SEAWALL_CONFIG';
  err.field = field;
  err.value = shown;
  err.reason = reason;
  return err;
}

function argumentError(message) {
  const err = new TypeError(`invalid argument: ${message}`);
  err.code = 'SEAWALL_INVALID_ARGUMENT';
  return err;
}

function reportListenerError(name, err) {
  const detail = err && err.stack ? err.stack : String(err);
  process.emitWarning(`a 'stateChange' listener of circuit breaker '${name}' threw; ignored`, {
    type: 'SeawallWarning',
    code: 'SEAWALL_LISTENER_ERROR',
    detail,
  });
}

function isThenable(v) {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof v.then === 'function';
}

// ---------------------------------------------------------------------------------------
// Clocks, deadlines, timeouts
//
// A `Deadline` is the core's deadline: a clock and an instant on it. The JS object keeps the
// instant (ns, as the core returns it) and the clock (`undefined` for the system clock, or
// a `ManualClock`); every question (what remains, expired, which is earlier, the header
// value) is asked of the core through plain native functions (`deadlineOps`), so a deadline
// costs no native object.
//
// Timers: on the system clock a pending `timeout()` call has one `setTimeout`, cleared when
// the call settles. On a `ManualClock` it has a core timer; the core decides what is due and
// in which order, `advance` returns the ids that fired and `ManualClock#advance` below runs
// their callbacks, synchronously, before it returns.
// ---------------------------------------------------------------------------------------

const ops = native.deadlineOps();
const opAfter = ops.after;
const opRemaining = ops.remaining;
const opExpired = ops.expired;
const opWithin = ops.within;
const opEarliest = ops.earliest;

let clockTimers; // (manualClock) => its Map of timer callbacks

function runTimers(timers, ids) {
  let failed = false;
  let error;
  for (let i = 0; i < ids.length; i++) {
    const fire = timers.get(ids[i]);
    if (fire === undefined) continue;
    timers.delete(ids[i]);
    try {
      fire();
    } catch (err) {
      if (!failed) {
        failed = true;
        error = err;
      }
    }
  }
  if (failed) throw error;
}

/**
 * A test clock whose time moves only when `advance(ms)` is called. Starts at 0. Timers on
 * it (deadlines of pending `timeout()` calls, `CancelToken#cancelAt`) fire inside
 * `advance`, in due order, before it returns.
 */
class ManualClock extends NativeManualClock {
  #timers = new Map(); // callbacks of the JS timers on this clock, by id

  static {
    clockTimers = (clock) => clock.#timers;
  }

  /** Moves time forward by `ms` (finite, >= 0) and fires the timers that became due. */
  advance(ms) {
    const fired = super.advance(ms);
    if (fired !== null) runTimers(this.#timers, fired);
  }
}

const systemClock = new SystemClock();

function typeOf(v) {
  return v === null ? 'null' : typeof v;
}

/** A `clock` argument as the native functions take it: `undefined` (system) or a ManualClock. */
function clockArg(clock) {
  if (clock === undefined || clock instanceof SystemClock) return undefined;
  if (clock instanceof ManualClock) return clock;
  throw argumentError(`clock = <${typeOf(clock)}>: expected a ManualClock or a SystemClock`);
}

/** The clock of an `{ clock }` options argument. */
function clockOption(options) {
  if (options === undefined) return undefined;
  if (options === null || typeof options !== 'object') {
    throw argumentError(`options must be an object, got ${typeOf(options)}`);
  }
  return clockArg(options.clock);
}

const kCreate = Symbol('seawall.Deadline');
let deadlineAt; // (deadline) => its instant
let deadlineClock; // (deadline) => its clock argument

/**
 * An absolute point in time on a clock. Immutable. Make one with `Deadline.after(ms)` or
 * `Deadline.fromGrpcTimeout(header)`.
 */
class Deadline {
  #at;
  #clock;

  constructor(token, at, clock) {
    if (token !== kCreate) {
      throw argumentError('use Deadline.after(ms) or Deadline.fromGrpcTimeout(header) to make a Deadline');
    }
    this.#at = at;
    this.#clock = clock;
  }

  static {
    deadlineAt = (d) => d.#at;
    deadlineClock = (d) => d.#clock;
  }

  /** The deadline `ms` milliseconds from now on `options.clock` (default: the system clock). */
  static after(ms, options) {
    const clock = clockOption(options);
    return new Deadline(kCreate, opAfter(ms, clock), clock);
  }

  /** The deadline a `grpc-timeout` header value (`'250m'`, `'3S'`) gives, counted from now. */
  static fromGrpcTimeout(header, options) {
    const clock = clockOption(options);
    return new Deadline(kCreate, native.deadlineFromGrpcTimeout(header, clock), clock);
  }

  /** The clock the deadline is on. */
  get clock() {
    return this.#clock === undefined ? systemClock : this.#clock;
  }

  /** Milliseconds left, fractional (sub-millisecond precision); 0 once expired. */
  remaining() {
    return opRemaining(this.#at, this.#clock);
  }

  /** Whole milliseconds left, rounded down; 0 once expired. */
  remainingMs() {
    return native.deadlineRemainingMs(this.#at, this.#clock);
  }

  /** True at or after the deadline. */
  expired() {
    return opExpired(this.#at, this.#clock);
  }

  /** The earlier of this deadline and `other` (on the same clock). */
  earliest(other) {
    if (!(other instanceof Deadline)) throw argumentError(`other = <${typeOf(other)}>: expected a Deadline`);
    const at = opEarliest(this.#at, this.#clock, other.#at, other.#clock);
    if (at === this.#at) return this;
    if (at === other.#at) return other;
    return new Deadline(kCreate, at, this.#clock);
  }

  /** The earlier of this deadline and `ms` from now on the same clock. */
  within(ms) {
    const at = opWithin(this.#at, this.#clock, ms);
    return at === this.#at ? this : new Deadline(kCreate, at, this.#clock);
  }

  /** What remains as a `grpc-timeout` header value (finest unit that fits in 8 digits, rounded up). */
  toGrpcTimeout() {
    return native.deadlineToGrpcTimeout(this.#at, this.#clock);
  }

  /** A share of what remains, in ms (fractional): `fraction` of it, at least `minMs`, at most all of it. */
  budget(fraction, minMs) {
    return native.deadlineBudget(this.#at, this.#clock, fraction, minMs);
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    const clock = this.#clock === undefined ? 'system' : 'manual';
    return `Deadline { remaining: ${this.remaining()} ms, clock: ${clock} }`;
  }
}

/** Parses a `grpc-timeout` header value into milliseconds (fractional below 1 ms). */
function parseGrpcTimeout(header) {
  return native.parseGrpcTimeout(header);
}

/** Formats `ms` as a `grpc-timeout` header value. */
function formatGrpcTimeout(ms) {
  return native.formatGrpcTimeout(ms);
}

/**
 * A core cancellation token (polled: `cancelled`, `reason`), shared with the other
 * languages. In Node code, cancel with an `AbortSignal`.
 */
class CancelToken extends NativeCancelToken {
  /**
   * Cancels the token (reason `'deadline_exceeded'`) when `deadline` passes (at once if it
   * has). Returns a handle: `dispose()` it (or `using`) to unschedule.
   */
  cancelAt(deadline) {
    if (!(deadline instanceof Deadline)) throw argumentError(`deadline = <${typeOf(deadline)}>: expected a Deadline`);
    return native.cancelTokenAt(this, deadlineAt(deadline), deadlineClock(deadline));
  }
}

if (typeof Symbol.dispose === 'symbol') {
  CancelTimer.prototype[Symbol.dispose] = function dispose() {
    this.dispose();
  };
}

// --- the ambient deadline ---

// Created on first use: in Node < 24 an AsyncLocalStorage in use installs promise hooks,
// which slow down every promise of the process, so nothing installs them before a
// deadline or a timeout is used.
let storage = null;

function scopeStorage() {
  if (storage === null) storage = new AsyncLocalStorage();
  return storage;
}

function currentScope() {
  return storage === null ? undefined : storage.getStore();
}

// The call a scope's work is cancelled with (a timeout() call that has a caller signal, or
// one inside such a call), or null.
const kSource = Symbol('seawall.source');

/** The store of a `withDeadline` scope. */
class DeadlineScope {
  constructor(deadline, source) {
    this.deadline = deadline;
    this[kSource] = source;
  }
}

/** The deadline of the innermost `withDeadline` / `timeout` scope, or `undefined`. */
function currentDeadline() {
  const scope = currentScope();
  return scope === undefined ? undefined : scope.deadline;
}

/**
 * Runs `fn(deadline)` with `deadline` as the ambient deadline (the earlier of it and the
 * enclosing one). `deadlineOrMs`: a `Deadline`, or ms from now (on the enclosing deadline's
 * clock, else the system clock). Returns what `fn` returns.
 */
function withDeadline(deadlineOrMs, fn) {
  if (typeof fn !== 'function') throw argumentError(`withDeadline(deadline, fn) needs a function, got ${typeOf(fn)}`);
  const outer = currentScope();
  let deadline;
  if (deadlineOrMs instanceof Deadline) {
    deadline = outer === undefined ? deadlineOrMs : deadlineOrMs.earliest(outer.deadline);
  } else if (typeof deadlineOrMs === 'number') {
    deadline = outer === undefined ? Deadline.after(deadlineOrMs) : outer.deadline.within(deadlineOrMs);
  } else {
    const shown = typeof deadlineOrMs === 'string' ? JSON.stringify(deadlineOrMs) : `<${typeOf(deadlineOrMs)}>`;
    throw argumentError(`deadline = ${shown}: expected a Deadline or a number of milliseconds`);
  }
  const source = outer === undefined ? null : outer[kSource];
  return scopeStorage().run(new DeadlineScope(deadline, source), fn, deadline);
}

// --- timeout() ---

// How a call ended, beyond its own result.
const TIMED_OUT = 1;
const ABORTED = 2;

const TIMER_MAX = 2 ** 31 - 1; // setTimeout's limit; longer waits re-arm

function delayOf(ms) {
  const d = Math.ceil(ms);
  return d < TIMER_MAX ? d : TIMER_MAX;
}

let callRefusal; // (call) => why it cannot start, or undefined
let callRecordOn; // (call, breaker, slot) => records its outcome on the breaker's permit
let callStart; // (call, fn, thisArg, args) => the caller's promise
let callOnDeadline; // (call) => its deadline's timer fired

function onTimer(call) {
  callOnDeadline(call);
}

/**
 * The deadline of a call: `ms` from now, capped by the ambient one (`outer`). On `clock`
 * when given, else on the ambient deadline's clock, else on the system clock.
 */
function callDeadline(ms, outer, hasClock, clock) {
  if (outer === undefined) return new Deadline(kCreate, opAfter(ms, clock), clock);
  if (!hasClock) return outer.deadline.within(ms);
  return new Deadline(kCreate, opAfter(ms, clock), clock).earliest(outer.deadline);
}

function applyWithContext(fn, thisArg, args, ctx) {
  args.push(ctx);
  return Reflect.apply(fn, thisArg, args);
}

/**
 * One call under a deadline: the `{ signal, deadline }` object the function receives, and
 * the state that settles the caller's promise first of: the function's result, the
 * deadline, the caller's signal.
 */
class TimeoutContext {
  #deadline;
  #clock; // the deadline's clock argument (undefined: system)
  #ms; // the call's own limit, for the message
  #breakerName; // the breaker's name when a breaker's timeout, for the message
  #outer; // the ambient scope when the call started, or undefined
  #controller; // the AbortController of `signal`, made on first use
  #reason; // why the call was aborted, once it was
  #done = false;
  #resolve;
  #reject;
  #timer; // setTimeout handle (system clock) or timer id (manual clock)
  #callerSignal;
  #onCallerAbort;
  #parent; // the call whose cancellation this one follows, or null
  #children; // calls that follow this one's cancellation (Set), or undefined
  #breaker; // the CircuitBreaker recording the call, or undefined
  #slot;

  constructor(deadline, ms, breakerName, outer, callerSignal) {
    this.#deadline = deadline;
    this.#clock = deadlineClock(deadline);
    this.#ms = ms;
    this.#breakerName = breakerName;
    this.#outer = outer;
    this.#callerSignal = callerSignal;
    const parent = outer === undefined ? null : outer[kSource];
    this.#parent = parent;
    this[kSource] = callerSignal !== undefined || parent !== null ? this : null;
  }

  /** An `AbortSignal` that aborts when the call times out or is cancelled (with the reason). */
  get signal() {
    let c = this.#controller;
    if (c === undefined) {
      c = new AbortController();
      this.#controller = c;
      if (this.#reason !== undefined) c.abort(this.#reason);
    }
    return c.signal;
  }

  /** The call's deadline: the earlier of its own and the enclosing one. */
  get deadline() {
    return this.#deadline;
  }

  static {
    callRefusal = (call) => call.#refusal();
    callRecordOn = (call, breaker, slot) => {
      call.#breaker = breaker;
      call.#slot = slot;
    };
    callStart = (call, fn, thisArg, args) => call.#start(fn, thisArg, args);
    callOnDeadline = (call) => call.#onDeadline();
  }

  // Why the call cannot start (an already aborted signal, an expired deadline), or undefined.
  #refusal() {
    const s = this.#callerSignal;
    if (s !== undefined && s.aborted) return s.reason;
    const p = this.#parent;
    if (p !== null && p.#reason !== undefined) return p.#reason;
    if (opExpired(deadlineAt(this.#deadline), this.#clock)) return this.#timeoutError();
    return undefined;
  }

  // Runs `fn` (with `thisArg`, `args` and the context appended; or with the context alone
  // when `args` is undefined) in the call's scope. Returns the caller's promise. With a
  // breaker (`callRecordOn`), the outcome is recorded on its permit before the caller sees it.
  #start(fn, thisArg, args) {
    const promise = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    const clock = this.#clock;
    if (clock !== undefined) {
      // A manual clock may be advanced inside fn: the timer must exist before it runs.
      const id = native.scheduleTimer(deadlineAt(this.#deadline), clock);
      if (id === 0) {
        this.#onDeadline();
        return promise;
      }
      this.#timer = id;
      clockTimers(clock).set(id, () => this.#onDeadline());
    }
    const s = this.#callerSignal;
    if (s !== undefined) {
      this.#onCallerAbort = () => this.#abort(s.reason, ABORTED);
      s.addEventListener('abort', this.#onCallerAbort, { once: true });
    }
    const p = this.#parent;
    if (p !== null) {
      if (p.#children === undefined) p.#children = new Set();
      p.#children.add(this);
    }
    let result;
    let thenable;
    try {
      result =
        args === undefined
          ? scopeStorage().run(this, fn, this)
          : scopeStorage().run(this, applyWithContext, fn, thisArg, args, this);
      thenable = isThenable(result); // reads `then`, which may throw
    } catch (err) {
      this.#settle(false, err);
      return promise;
    }
    if (thenable) {
      // On the system clock nothing can time out while fn runs synchronously, so the timer
      // is armed only for a call that is still pending.
      if (clock === undefined && !this.#done) this.#arm(opRemaining(deadlineAt(this.#deadline), undefined));
      (result instanceof Promise ? result : Promise.resolve(result)).then(
        (value) => this.#settle(true, value),
        (err) => this.#settle(false, err),
      );
    } else {
      this.#settle(true, result);
    }
    return promise;
  }

  #arm(left) {
    this.#timer = setTimeout(onTimer, delayOf(left), this);
  }

  // The deadline's timer fired (it may fire early on the system clock: then re-armed).
  #onDeadline() {
    this.#timer = undefined;
    if (this.#done) return;
    if (this.#clock === undefined) {
      const left = opRemaining(deadlineAt(this.#deadline), undefined);
      if (left > 0) {
        this.#arm(left);
        return;
      }
    }
    this.#abort(this.#timeoutError(), TIMED_OUT);
  }

  #timeoutError() {
    const outer = this.#outer;
    const name = this.#breakerName;
    const limit = `the ${this.#ms} ms timeout${name === undefined ? '' : ` of circuit breaker '${name}'`}`;
    const what =
      outer !== undefined && this.#deadline === outer.deadline
        ? `the enclosing deadline passed before ${limit}`
        : `${limit} elapsed`;
    return native.timeoutError(what);
  }

  // The function's result or error. After the deadline it is too late: a timeout.
  #settle(ok, value) {
    if (this.#done) return;
    if (opExpired(deadlineAt(this.#deadline), this.#clock)) {
      this.#abort(this.#timeoutError(), TIMED_OUT);
      return;
    }
    this.#finish();
    const breaker = this.#breaker;
    if (breaker !== undefined) {
      try {
        breaker[kRecord](this.#slot, ok ? SUCCESS : FAILURE, value);
      } catch (err) {
        this.#reject(err); // what isFailure threw
        return;
      }
    }
    if (ok) this.#resolve(value);
    else this.#reject(value);
  }

  // Ends the call with `reason` (the timeout error, or the caller's signal's reason) and
  // aborts its signal and the calls that follow it.
  #abort(reason, how) {
    if (this.#done) return;
    this.#finish();
    this.#reason = reason;
    const breaker = this.#breaker;
    if (breaker !== undefined) {
      try {
        breaker[kRecord](this.#slot, how === TIMED_OUT ? TIMEOUT : CANCEL, reason);
      } catch {
        // recording never throws for these outcomes; the caller's error is `reason`
      }
    }
    if (this.#controller !== undefined) this.#controller.abort(reason);
    const children = this.#children;
    if (children !== undefined) {
      this.#children = undefined;
      for (const child of children) child.#abort(reason, how);
    }
    this.#reject(reason);
  }

  // Leaves nothing behind: the timer, the caller signal's listener, the parent's link.
  #finish() {
    this.#done = true;
    const timer = this.#timer;
    if (timer !== undefined) {
      this.#timer = undefined;
      if (this.#clock === undefined) {
        clearTimeout(timer);
      } else {
        clockTimers(this.#clock).delete(timer);
        native.cancelTimer(this.#clock, timer);
      }
    }
    if (this.#onCallerAbort !== undefined) {
      this.#callerSignal.removeEventListener('abort', this.#onCallerAbort);
      this.#onCallerAbort = undefined;
    }
    const p = this.#parent;
    if (p !== null && p.#children !== undefined) p.#children.delete(this);
  }
}

function signalOption(signal) {
  if (signal === undefined || signal instanceof AbortSignal) return signal;
  throw argumentError(`signal = <${typeOf(signal)}>: expected an AbortSignal`);
}

/**
 * Runs `fn({ signal, deadline })` with a time limit of `ms`. Resolves with its result;
 * rejects with its error; or, when the deadline (the earlier of `ms` from now and the
 * ambient one) passes first, aborts `signal` and rejects with an `Error` whose code is
 * `'SEAWALL_TIMEOUT'`; or, when `options.signal` aborts first, aborts `signal` and rejects
 * with its reason.
 */
function timeout(ms, fn, options) {
  let signal;
  let clock;
  let hasClock = false;
  let deadline;
  const outer = currentScope();
  try {
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') {
        throw argumentError(`options must be an object, got ${typeOf(options)}`);
      }
      signal = signalOption(options.signal);
      if (options.clock !== undefined) {
        clock = clockArg(options.clock);
        hasClock = true;
      }
    }
    deadline = callDeadline(ms, outer, hasClock, clock);
    if (typeof fn !== 'function') throw argumentError(`timeout(ms, fn) needs a function, got ${typeOf(fn)}`);
  } catch (err) {
    return Promise.reject(err);
  }
  const call = new TimeoutContext(deadline, ms, undefined, outer, signal);
  const refused = callRefusal(call);
  if (refused !== undefined) return Promise.reject(refused);
  return callStart(call, fn, undefined, undefined);
}

/**
 * A permit for one call, from `breaker.tryAcquire()`. Record exactly one outcome
 * (`success`, `failure`, `timeout`, `ignore`) or `cancel()` it.
 */
class Permit {
  #native;
  #drain;

  constructor(nativePermit, drain) {
    if (!(nativePermit instanceof NativePermit)) {
      throw new TypeError('Permit objects come from breaker.tryAcquire()');
    }
    this.#native = nativePermit;
    this.#drain = drain;
  }

  /** The call succeeded after `ms` (default: measured on the breaker's clock). */
  success(ms) {
    if (this.#native.success(ms)) this.#drain();
  }

  /** The call failed after `ms`. */
  failure(ms) {
    if (this.#native.failure(ms)) this.#drain();
  }

  /** The call timed out after `ms`: a failure, also counted in `timeouts`. */
  timeout(ms) {
    if (this.#native.timeout(ms)) this.#drain();
  }

  /** The call ended with an error you exclude: counted only in `ignored`. */
  ignore() {
    if (this.#native.ignore()) this.#drain();
  }

  /** Gives the permit back without an outcome: frees a half-open slot, counts nowhere. */
  cancel() {
    if (this.#native.cancel()) this.#drain();
  }

  /** True when this permit is a half-open probe. */
  get isProbe() {
    return this.#native.isProbe;
  }

  /** True once an outcome was recorded or the permit was cancelled. */
  get done() {
    return this.#native.done;
  }
}

/**
 * A circuit breaker. See index.d.ts and docs/node.md.
 *
 * Emits `'stateChange'` with `{ breaker, from, to, at, reason }` synchronously, in order,
 * before the call that caused the change returns. A listener that throws is reported as a
 * process warning (`SEAWALL_LISTENER_ERROR`) and skipped.
 */
class CircuitBreaker extends EventEmitter {
  #native;
  #acquire;
  #settleFn;
  #stateFn;
  #pending;
  #isFailure;
  #fallback;
  #clock;
  #clockArg; // the ManualClock, or undefined for the system clock
  #name;
  #timeoutMs; // the `timeout` option (ms), or null
  #draining = false;
  #drainFn = () => this.#drain();

  constructor(options = {}) {
    super();
    if (options === null || typeof options !== 'object') {
      throw argumentError(`options must be an object, got ${options === null ? 'null' : typeof options}`);
    }
    const { clock, isFailure, fallback, ...rest } = options;
    if (isFailure !== undefined && typeof isFailure !== 'function') {
      throw optionError('isFailure', isFailure, 'expected a function');
    }
    if (fallback !== undefined && typeof fallback !== 'function') {
      throw optionError('fallback', fallback, 'expected a function');
    }
    let manual;
    if (clock instanceof ManualClock) {
      manual = clock;
    } else if (clock !== undefined && !(clock instanceof SystemClock)) {
      throw optionError('clock', clock, 'expected a ManualClock or a SystemClock');
    }
    this.#native = new NativeBreaker(rest, manual);
    // Plain functions bound to this breaker: the per-call path skips class-method glue.
    const hot = this.#native.hotPath();
    this.#acquire = hot.acquire;
    this.#settleFn = hot.settle;
    this.#stateFn = hot.state;
    this.#pending = hot.pending;
    this.#clock = clock === undefined ? new SystemClock() : clock;
    this.#clockArg = manual;
    this.#name = this.#native.name;
    this.#timeoutMs = this.#native.timeout;
    this.#isFailure = isFailure;
    this.#fallback = fallback;
  }

  /** The breaker's name. */
  get name() {
    return this.#name;
  }

  /** The `timeout` option: the time limit (ms) of each `execute`/`wrap` call, or `null`. */
  get timeout() {
    return this.#timeoutMs;
  }

  /** The current state (`'closed'`, `'open'`, `'half_open'`, `'forced_open'`, `'disabled'`). */
  get state() {
    const r = this.#stateFn();
    if ((r & 1) !== 0) this.#drain();
    return STATES[r >> 1];
  }

  /** The clock the breaker reads (a `ManualClock` or a `SystemClock`). */
  get clock() {
    return this.#clock;
  }

  /**
   * Runs `fn(...args)` under the breaker. Resolves with its result, rejects with its error
   * (unchanged), or, when the breaker refuses the call, with an `Error` whose code is
   * `'SEAWALL_BREAKER_OPEN'` (or resolves with `fallback(err, ...args)` when configured).
   */
  execute(fn, ...args) {
    return this.#run(fn, undefined, args);
  }

  /** Returns a function that runs `fn` under the breaker (keeping `this`); it returns a Promise. */
  wrap(fn) {
    if (typeof fn !== 'function') throw argumentError(`wrap(fn) needs a function, got ${typeof fn}`);
    const breaker = this;
    const wrapped = function (...args) {
      return breaker.#run(fn, this, args);
    };
    Object.defineProperty(wrapped, 'name', { value: fn.name, configurable: true });
    return wrapped;
  }

  /**
   * Asks for a permit for a call you run yourself. Returns a `Permit`; throws the rejection
   * (`code === 'SEAWALL_BREAKER_OPEN'`, with `retryAfter` in ms) when the breaker refuses.
   */
  tryAcquire() {
    const r = this.#native.acquirePermit();
    this.#drain();
    if (r instanceof NativePermit) return new Permit(r, this.#drainFn);
    throw r;
  }

  /** Counts, rates and state (time-driven changes applied first). */
  snapshot() {
    const s = this.#native.snapshot();
    this.#drain();
    return s;
  }

  /** Rejects every call until `reset()`. */
  forceOpen() {
    this.#native.forceOpen();
    this.#drain();
  }

  /** Admits every call and records only metrics, until `reset()`. */
  disable() {
    this.#native.disable();
    this.#drain();
  }

  /** Closed, with an empty window, no backoff and no consecutive failures. */
  reset() {
    this.#native.reset();
    this.#drain();
  }

  #run(fn, thisArg, args) {
    if (typeof fn !== 'function') {
      return Promise.reject(argumentError(`execute(fn) needs a function, got ${typeof fn}`));
    }
    if (this.#timeoutMs !== null) return this.#runTimed(fn, thisArg, args);
    let r;
    try {
      r = this.#acquire();
      if ((r & 1) !== 0) this.#drain();
    } catch (err) {
      return Promise.reject(err); // an internal error: execute never throws synchronously
    }
    if (typeof r !== 'number') {
      this.#drain();
      return this.#rejected(r, args);
    }
    const slot = r >> 1;
    let result;
    try {
      result = args.length === 0 && thisArg === undefined ? fn() : Reflect.apply(fn, thisArg, args);
    } catch (err) {
      try {
        this.#failed(slot, err);
      } catch (classifyErr) {
        return Promise.reject(classifyErr);
      }
      return Promise.reject(err);
    }
    if (isThenable(result)) {
      // A native promise is chained as is; another thenable is adopted first.
      return (result instanceof Promise ? result : Promise.resolve(result)).then(
        (value) => {
          this.#settle(slot, SUCCESS);
          return value;
        },
        (err) => {
          this.#failed(slot, err);
          throw err;
        },
      );
    }
    try {
      this.#settle(slot, SUCCESS);
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve(result);
  }

  // A call under the `timeout` option: the timeout runs inside the breaker, so a call that
  // runs out is recorded as a timeout. fn gets `{ signal, deadline }` after its arguments.
  // A call that cannot start (the ambient deadline has passed, the enclosing call was
  // cancelled) is refused before a permit is taken: the dependency was not called.
  #runTimed(fn, thisArg, args) {
    const outer = currentScope();
    let call;
    try {
      const deadline = callDeadline(this.#timeoutMs, outer, true, this.#clockArg);
      call = new TimeoutContext(deadline, this.#timeoutMs, this.#name, outer, undefined);
    } catch (err) {
      return Promise.reject(err);
    }
    const refused = callRefusal(call);
    if (refused !== undefined) return Promise.reject(refused);
    let r;
    try {
      r = this.#acquire();
      if ((r & 1) !== 0) this.#drain();
    } catch (err) {
      return Promise.reject(err);
    }
    if (typeof r !== 'number') {
      this.#drain();
      return this.#rejected(r, args);
    }
    callRecordOn(call, this, r >> 1);
    return callStart(call, fn, thisArg, args);
  }

  // Records the outcome of a timed call (TimeoutContext): FAILURE goes through isFailure
  // (and may throw what it threw); the others are recorded as they are.
  [kRecord](slot, outcome, err) {
    if (outcome === FAILURE) this.#failed(slot, err);
    else this.#settle(slot, outcome);
  }

  #settle(slot, outcome) {
    if (this.#settleFn(slot, outcome)) this.#drain();
  }

  // Records the outcome of a call that threw `err`; throws what `isFailure` threw, after
  // counting the call as a failure.
  #failed(slot, err) {
    let outcome = FAILURE;
    if (this.#isFailure !== undefined) {
      let failure;
      try {
        failure = this.#isFailure(err);
      } catch (classifyErr) {
        this.#settle(slot, FAILURE);
        throw classifyErr;
      }
      if (!failure) outcome = IGNORE;
    }
    if (outcome === FAILURE && err !== null && typeof err === 'object' && err.code === 'SEAWALL_TIMEOUT') {
      outcome = TIMEOUT;
    }
    this.#settle(slot, outcome);
  }

  #rejected(err, args) {
    const fallback = this.#fallback;
    if (fallback === undefined) return Promise.reject(err);
    try {
      return Promise.resolve(fallback(err, ...args));
    } catch (fallbackErr) {
      return Promise.reject(fallbackErr);
    }
  }

  // Emits the queued state changes, in order. Re-entrant calls (a listener calling the
  // breaker) leave their events to the outer loop, so order is kept.
  #drain() {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#pending()) {
        const events = this.#native.takeEvents();
        if (events === null) break;
        for (let i = 0; i < events.length; i++) this.#emitStateChange(events[i]);
      }
    } finally {
      this.#draining = false;
    }
  }

  #emitStateChange(event) {
    const listeners = this.rawListeners('stateChange');
    for (let i = 0; i < listeners.length; i++) {
      try {
        const r = Reflect.apply(listeners[i], this, [event]);
        if (isThenable(r)) r.then(undefined, (err) => reportListenerError(event.breaker, err));
      } catch (err) {
        reportListenerError(event.breaker, err);
      }
    }
  }
}

module.exports = {
  CircuitBreaker,
  Permit,
  ManualClock,
  SystemClock,
  Deadline,
  CancelToken,
  timeout,
  withDeadline,
  currentDeadline,
  parseGrpcTimeout,
  formatGrpcTimeout,
  version,
};
