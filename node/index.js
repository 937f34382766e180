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

const native = containPanics(loadNative());
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

// A panic inside the addon is a bug, and never unwinds into Node: the hot paths and the
// methods under `errors::guard` throw it as `SEAWALL_INTERNAL`; the other methods are
// contained by napi-rs's own `catch_unwind`, whose Error carries napi's status
// ('GenericFailure') as its code. This gives those the same code, so a caller sees
// `SEAWALL_INTERNAL` whichever entry point hit the bug (docs/hardening.md). The addon's
// other errors are thrown with seawall's codes already; only classes' methods, getters and
// static methods are wrapped (the hot paths are plain functions and are not touched).
function containPanics(addon) {
  const wrap = (fn) =>
    function seawallNative(...args) {
      try {
        return fn.apply(this, args);
      } catch (err) {
        if (err instanceof Error && err.code === 'GenericFailure') err.code = 'SEAWALL_INTERNAL';
        throw err;
      }
    };
  const patch = (target) => {
    for (const name of Object.getOwnPropertyNames(target)) {
      if (name === 'constructor' || name === 'prototype') continue;
      const d = Object.getOwnPropertyDescriptor(target, name);
      if (!d.configurable) continue;
      if (typeof d.value === 'function') {
        Object.defineProperty(target, name, { ...d, value: wrap(d.value) });
      } else if (typeof d.get === 'function') {
        Object.defineProperty(target, name, { ...d, get: wrap(d.get), set: d.set && wrap(d.set) });
      }
    }
  };
  for (const value of Object.values(addon)) {
    if (typeof value === 'function' && value.prototype && Object.getOwnPropertyNames(value.prototype).length > 1) {
      patch(value.prototype);
      patch(value);
    }
  }
  return addon;
}

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
// Makes objects that only seawall itself creates (a registry's breakers).
const kInternal = Symbol('seawall.internal');
let breakerWatch; // (breaker, on) => watches every kind of event (on), or re-reads whether it must

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

/**
 * Refuses an option name `what` does not know (a misspelt `fingerprint` would otherwise be
 * ignored silently), worded like the middlewares' and the core's unknown-option errors.
 * `options` is an object already.
 */
function checkOptionNames(options, known, what) {
  for (const name in options) {
    if (Object.prototype.hasOwnProperty.call(options, name) && !known.includes(name)) {
      throw optionError(name, options[name], `unknown option of ${what} (known: ${known.join(', ')})`);
    }
  }
}

function reportListenerError(name, err, event = 'stateChange', what = 'circuit breaker') {
  const detail = err && err.stack ? err.stack : String(err);
  process.emitWarning(`a '${event}' listener of ${what} '${name}' threw; ignored`, {
    type: 'SeawallWarning',
    code: 'SEAWALL_LISTENER_ERROR',
    detail,
  });
}

function isThenable(v) {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof v.then === 'function';
}

const RESOLVED = Promise.resolve();
const NO_ARGS = Object.freeze([]);

/**
 * A promise that rejects with `err` one microtask later: by then the caller's `await` (or
 * `.then`) has attached its handler, so V8 does not report a rejection without a handler to
 * Node (whose unhandled-rejection bookkeeping costs more than the rest of a rejected call).
 * A rejection nobody handles is still reported as unhandled, as `Promise.reject`'s is.
 */
function rejectSoon(err) {
  let reject;
  const p = new Promise((_, r) => {
    reject = r;
  });
  RESOLVED.then(() => reject(err));
  return p;
}

/**
 * The `SEAWALL_BREAKER_OPEN` error of a rejection (`message` is the core's): an `Error`
 * built without capturing a stack trace, since a rejection is routine and the frames would
 * cost more than the rest of the rejected call (`err.stack` is the first line only; see
 * docs/node.md). The properties are those of every seawall error, in the same order.
 */
function rejectionError(message, retryAfter, stateIndex, breaker) {
  let limit;
  let err;
  try {
    limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
  } catch {
    // a frozen Error constructor: the stack is captured, nothing else changes
  }
  try {
    err = new Error(message);
  } finally {
    try {
      Error.stackTraceLimit = limit;
    } catch {
      // see above
    }
  }
  err.code = 'SEAWALL_BREAKER_OPEN';
  err.retryAfter = retryAfter;
  err.state = STATES[stateIndex];
  err.breaker = breaker;
  return err;
}

// Successes of calls admitted in JS (see CircuitBreaker#run) are recorded in batches: the
// halves of the core's state word in a Uint32Array, in native byte order.
const WORD_LO = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;
const WORD_HI = 1 - WORD_LO;
// A batch is recorded once it holds this many successes (and always before the event loop
// goes on, see flushAll).
const MAX_BATCH = 1024;
let batched = []; // breakers holding a batch, each listed once
let flushTick = false; // flushAll is scheduled (process.nextTick)
let flushListed; // (breaker) => records its batch and unlists it

/**
 * Records every breaker's batch of successes. Runs after the current run of microtasks
 * (process.nextTick), and before anything reads the core for several breakers at once
 * (`ManualClock#advance`, a registry's snapshot, metrics and health).
 */
function flushAll() {
  while (batched.length !== 0) {
    const list = batched;
    batched = [];
    for (let i = 0; i < list.length; i++) flushListed(list[i]);
  }
}

function flushAllTick() {
  flushTick = false;
  flushAll();
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
    flushAll(); // successes of calls that ended before this instant are recorded at it
    const fired = super.advance(ms);
    try {
      if (fired !== null) runTimers(this.#timers, fired);
    } finally {
      // Idempotency waiters resolved by the advance (lease expiries, wait timeouts).
      if (waitingCaches.size !== 0) drainWaiters();
    }
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

const CLOCK_OPTIONS = ['clock'];

/** The clock of an `{ clock }` options argument of `what`. */
function clockOption(options, what) {
  if (options === undefined) return undefined;
  if (options === null || typeof options !== 'object') {
    throw argumentError(`options must be an object, got ${typeOf(options)}`);
  }
  checkOptionNames(options, CLOCK_OPTIONS, what);
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
    const clock = clockOption(options, 'Deadline.after()');
    return new Deadline(kCreate, opAfter(ms, clock), clock);
  }

  /** The deadline a `grpc-timeout` header value (`'250m'`, `'3S'`) gives, counted from now. */
  static fromGrpcTimeout(header, options) {
    const clock = clockOption(options, 'Deadline.fromGrpcTimeout()');
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
const TIMEOUT_OPTIONS = ['signal', 'clock'];

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
      checkOptionNames(options, TIMEOUT_OPTIONS, 'timeout()');
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
  #flush;

  constructor(nativePermit, drain, flush) {
    if (!(nativePermit instanceof NativePermit)) {
      throw new TypeError('Permit objects come from breaker.tryAcquire()');
    }
    this.#native = nativePermit;
    this.#drain = drain;
    this.#flush = flush;
  }

  /** The call succeeded after `ms` (default: measured on the breaker's clock). */
  success(ms) {
    this.#flush();
    if (this.#native.success(ms)) this.#drain();
  }

  /** The call failed after `ms`. */
  failure(ms) {
    this.#flush();
    if (this.#native.failure(ms)) this.#drain();
  }

  /** The call timed out after `ms`: a failure, also counted in `timeouts`. */
  timeout(ms) {
    this.#flush();
    if (this.#native.timeout(ms)) this.#drain();
  }

  /** The call ended with an error you exclude: counted only in `ignored`. */
  ignore() {
    this.#flush();
    if (this.#native.ignore()) this.#drain();
  }

  /** Gives the permit back without an outcome: frees a half-open slot, counts nowhere. */
  cancel() {
    this.#flush();
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
  #fallbackFn;
  #registry; // the Registry that made it, or null
  #watching = false; // the native side queues rejections, timeouts and fallbacks too
  #isFailure;
  #fallback;
  #clock;
  #clockArg; // the ManualClock, or undefined for the system clock
  #name;
  #timeoutMs; // the `timeout` option (ms), or null
  #draining = false;
  #drainFn = () => this.#drain();
  // Calls admitted in JS: while the core's state word (`#word`, shared memory) reads
  // closed, admitting a call has no side effect in the core, so `execute` admits it without
  // calling in, with the word's epoch. Its success joins a batch (`#batchN` successes of
  // the epoch `#batchHi:#batchLo`), recorded in the core in one call before anything else
  // reaches the core for this breaker (a failure, a state read, a snapshot, a manual
  // transition, a permit, a listener), when the epoch changes, at MAX_BATCH, and after the
  // current microtasks (flushAll). Where a success can change the state (a rate
  // threshold: `#flushFirst`), also before the next call is admitted, so no admission
  // reads a word that a recorded success would have changed, and, with a 'stateChange'
  // listener, in a microtask, so the events a success causes are delivered before the
  // caller's `await` resumes. The core thus records every outcome in the order the calls
  // ended and decides exactly as with one permit per call (node/tests/batching.test.js).
  // null: every call goes through the native `acquire` (calls are timed, or this Node
  // refuses external buffers).
  #word = null;
  #flushFirst = false;
  #scratch = null; // Float64Array [retryAfter, stateIndex] of the last rejection, or null
  #message = ''; // the message of the last rejection
  #successesFn;
  #recordFn;
  #batchN = 0;
  #batchLo = 0;
  #batchHi = 0;
  #listed = false; // in `batched`
  #eager = false; // #flushFirst and a 'stateChange' listener (or a registry 'event' one)
  #flushFn = () => this.#flushSafely();
  #flushNow = () => this.#flush();
  #thenLo = -1; // the epoch of #onValue and #onError (see #handlersFor)
  #thenHi = -1;
  #onValue;
  #onError;

  constructor(options = {}, token = undefined, nativeBreaker = undefined, registry = null) {
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
    // A registry's breaker (`registry.breaker()`) comes with its native handle.
    const fromRegistry = token === kInternal;
    this.#native = fromRegistry ? nativeBreaker : new NativeBreaker(rest, manual);
    this.#registry = fromRegistry ? registry : null;
    // Plain functions bound to this breaker: the per-call path skips class-method glue.
    const hot = this.#native.hotPath();
    this.#acquire = hot.acquire;
    this.#settleFn = hot.settle;
    this.#stateFn = hot.state;
    this.#pending = hot.pending;
    this.#fallbackFn = hot.fallback;
    this.#successesFn = hot.successes;
    this.#recordFn = hot.record;
    this.#clock = clock === undefined ? new SystemClock() : clock;
    this.#clockArg = manual;
    this.#name = this.#native.name;
    this.#timeoutMs = this.#native.timeout;
    this.#isFailure = isFailure;
    this.#fallback = fallback;
    const shared = this.#native.sharedMemory();
    if (shared !== null) {
      this.#scratch = new Float64Array(shared.scratch);
      // Timed calls (a slow-call threshold, the `timeout` option) take the native path.
      if (!this.#native.needsDuration && this.#timeoutMs === null) this.#word = new Uint32Array(shared.word);
      this.#flushFirst = this.#native.successCanTransition;
    }
    // Rejections, timeouts and fallbacks are queued by the core only while watched.
    this.on('newListener', (event) => {
      this.#flush(); // what happened before the listener is not delivered to it
      if (!this.#watching && WATCHED_EVENTS.has(event)) this.#watch(true);
      if (event === 'stateChange') this.#eager = this.#flushFirst;
    });
    this.on('removeListener', (event) => {
      if (this.#watching && WATCHED_EVENTS.has(event)) this.#watch(this.#wantsAll());
      if (event === 'stateChange') this.#eager = this.#flushFirst && this.#wantsEvents();
    });
    if (this.#registry !== null && this.#registry.listenerCount('event') > 0) {
      this.#watch(true);
      this.#eager = this.#flushFirst;
    }
  }

  static {
    breakerWatch = (b, on) => {
      b.#flush();
      b.#watch(on || b.#wantsAll());
      b.#eager = b.#flushFirst && (on || b.#wantsEvents());
    };
    flushListed = (b) => {
      b.#listed = false;
      b.#flushSafely();
    };
  }

  // Someone listens to state changes (on the breaker, or 'event' on its registry).
  #wantsEvents() {
    return this.listenerCount('stateChange') > 0 || (this.#registry !== null && this.#registry.listenerCount('event') > 0);
  }

  #wantsAll() {
    return (
      this.listenerCount('rejected') + this.listenerCount('timeout') + this.listenerCount('fallback') > 0 ||
      (this.#registry !== null && this.#registry.listenerCount('event') > 0)
    );
  }

  #watch(on) {
    if (on === this.#watching) return;
    this.#watching = on;
    this.#native.watchAll(on);
  }

  /** Whether an open breaker makes the service `down` (true) or `degraded` (the `critical` option). */
  get critical() {
    return this.#native.critical;
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
    this.#flush();
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
  execute(fn) {
    // `arguments` rather than a rest parameter: no array is made for a call without arguments.
    const n = arguments.length;
    if (n <= 1) return this.#run(fn, undefined, NO_ARGS);
    const args = new Array(n - 1);
    for (let i = 1; i < n; i++) args[i - 1] = arguments[i];
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
    this.#flush();
    const r = this.#native.acquirePermit();
    if (r instanceof NativePermit) {
      this.#drain();
      return new Permit(r, this.#drainFn, this.#flushNow);
    }
    const err = this.#rejection(r); // before a listener can be rejected in turn
    this.#drain();
    throw err;
  }

  /** Counts, rates and state (time-driven changes applied first). */
  snapshot() {
    this.#flush();
    const s = this.#native.snapshot();
    this.#drain();
    return s;
  }

  /** Rejects every call until `reset()`. */
  forceOpen() {
    this.#flush();
    this.#native.forceOpen();
    this.#drain();
  }

  /** Admits every call and records only metrics, until `reset()`. */
  disable() {
    this.#flush();
    this.#native.disable();
    this.#drain();
  }

  /** Closed, with an empty window, no backoff and no consecutive failures. */
  reset() {
    this.#flush();
    this.#native.reset();
    this.#drain();
  }

  #run(fn, thisArg, args) {
    if (typeof fn !== 'function') {
      return Promise.reject(argumentError(`execute(fn) needs a function, got ${typeof fn}`));
    }
    const word = this.#word;
    if (word !== null) {
      if (this.#batchN !== 0 && this.#flushFirst) {
        try {
          this.#flush();
        } catch (err) {
          return Promise.reject(err); // an internal error: execute never throws synchronously
        }
      }
      const lo = word[WORD_LO];
      if ((lo & 7) === 0) return this.#runClosed(fn, thisArg, args, lo, word[WORD_HI]);
    }
    if (this.#timeoutMs !== null) return this.#runTimed(fn, thisArg, args === NO_ARGS ? [] : args); // it appends to args
    let r;
    try {
      if (this.#batchN !== 0) this.#flush();
      r = this.#acquire();
      if (typeof r === 'number' && (r & 1) !== 0) this.#drain();
    } catch (err) {
      return Promise.reject(err); // an internal error: execute never throws synchronously
    }
    if (typeof r !== 'number') {
      const err = this.#rejection(r); // before a listener can be rejected in turn
      this.#drain();
      return this.#rejected(err, args);
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

  // A call admitted in JS: the state word read closed in the epoch `hi:lo` (see `#word`).
  #runClosed(fn, thisArg, args, lo, hi) {
    let result;
    try {
      result = args.length === 0 && thisArg === undefined ? fn() : Reflect.apply(fn, thisArg, args);
    } catch (err) {
      try {
        this.#failedIn(lo, hi, err);
      } catch (classifyErr) {
        return Promise.reject(classifyErr);
      }
      return Promise.reject(err);
    }
    if (isThenable(result)) {
      if (lo !== this.#thenLo || hi !== this.#thenHi) this.#handlersFor(lo, hi);
      return (result instanceof Promise ? result : Promise.resolve(result)).then(this.#onValue, this.#onError);
    }
    try {
      this.#succeeded(lo, hi);
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve(result);
  }

  // The settle handlers of calls admitted in the epoch `hi:lo`, made once per epoch (so a
  // call allocates no closure of its own).
  #handlersFor(lo, hi) {
    this.#thenLo = lo;
    this.#thenHi = hi;
    this.#onValue = (value) => {
      this.#succeeded(lo, hi);
      return value;
    };
    this.#onError = (err) => {
      this.#failedIn(lo, hi, err);
      throw err;
    };
  }

  // A success of a call admitted in JS in the epoch `hi:lo`: joins the batch.
  #succeeded(lo, hi) {
    let n = this.#batchN;
    if (n !== 0 && (lo !== this.#batchLo || hi !== this.#batchHi)) {
      this.#flush(); // a batch holds one epoch
      n = 0;
    }
    if (n === 0) {
      this.#batchLo = lo;
      this.#batchHi = hi;
      if (this.#eager) RESOLVED.then(this.#flushFn);
      if (!this.#listed) {
        this.#listed = true;
        batched.push(this);
        if (!flushTick) {
          flushTick = true;
          process.nextTick(flushAllTick);
        }
      }
    }
    this.#batchN = ++n;
    if (n >= MAX_BATCH) this.#flush();
  }

  // Records the batch of successes, if any (before anything else reaches the core).
  #flush() {
    const n = this.#batchN;
    if (n === 0) return;
    this.#batchN = 0;
    if (this.#successesFn(this.#batchLo, this.#batchHi, n)) this.#drain();
  }

  // #flush, from a microtask or a tick: what it throws (an internal error) is reported.
  #flushSafely() {
    try {
      this.#flush();
    } catch (err) {
      process.emitWarning(`seawall: recording the successes of circuit breaker '${this.#name}' failed: ${err && err.stack ? err.stack : err}`, {
        type: 'SeawallWarning',
        code: 'SEAWALL_INTERNAL',
      });
    }
  }

  // What a call that threw `err` counts as: FAILURE, IGNORE (`isFailure` said no) or
  // TIMEOUT; `{ threw }` when `isFailure` itself threw (the call then counts as a failure
  // and the caller rethrows that error).
  #outcomeOf(err) {
    let outcome = FAILURE;
    if (this.#isFailure !== undefined) {
      let failure;
      try {
        failure = this.#isFailure(err);
      } catch (threw) {
        return { threw };
      }
      if (!failure) outcome = IGNORE;
    }
    if (outcome === FAILURE && err !== null && typeof err === 'object' && err.code === 'SEAWALL_TIMEOUT') {
      outcome = TIMEOUT;
    }
    return outcome;
  }

  // A call admitted in JS in the epoch `hi:lo` threw `err`: as #failed.
  #failedIn(lo, hi, err) {
    const outcome = this.#outcomeOf(err);
    if (typeof outcome === 'number') return this.#recordIn(lo, hi, outcome);
    this.#recordIn(lo, hi, FAILURE);
    throw outcome.threw;
  }

  #recordIn(lo, hi, outcome) {
    if (this.#batchN !== 0) this.#flush();
    if (this.#recordFn(lo, hi, outcome)) this.#drain();
  }

  // The rejection `acquire` returned: its message, or `true` for the last message (the
  // error is built here, see rejectionError), or the native error (no shared memory).
  #rejection(r) {
    if (r === true) r = this.#message;
    else if (typeof r === 'string') this.#message = r;
    else return r;
    const scratch = this.#scratch;
    return rejectionError(r, scratch[0], scratch[1], this.#name);
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
      if (typeof r === 'number' && (r & 1) !== 0) this.#drain();
    } catch (err) {
      return Promise.reject(err);
    }
    if (typeof r !== 'number') {
      const err = this.#rejection(r); // before a listener can be rejected in turn
      this.#drain();
      return this.#rejected(err, args);
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
    if (this.#batchN !== 0) this.#flush();
    if (this.#settleFn(slot, outcome)) this.#drain();
  }

  // Records the outcome of a call that threw `err`; throws what `isFailure` threw, after
  // counting the call as a failure.
  #failed(slot, err) {
    const outcome = this.#outcomeOf(err);
    if (typeof outcome === 'number') return this.#settle(slot, outcome);
    this.#settle(slot, FAILURE);
    throw outcome.threw;
  }

  #rejected(err, args) {
    const fallback = this.#fallback;
    if (fallback === undefined) return rejectSoon(err);
    // Served degraded: counted in `fallbacks` (and a 'fallback' event).
    if (this.#fallbackFn()) this.#drain();
    try {
      return Promise.resolve(fallback(err, ...args));
    } catch (fallbackErr) {
      return Promise.reject(fallbackErr);
    }
  }

  // Emits the queued events, in order. Re-entrant calls (a listener calling the breaker)
  // leave their events to the outer loop, so order is kept.
  #drain() {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#pending()) {
        const events = this.#native.takeEvents();
        if (events === null) break;
        for (let i = 0; i < events.length; i++) this.#emitEvent(events[i]);
      }
    } finally {
      this.#draining = false;
    }
  }

  #emitEvent(e) {
    let name;
    let event;
    switch (e.kind) {
      case 'state_change':
        name = 'stateChange';
        event = { breaker: e.breaker, from: e.from, to: e.to, at: e.at, reason: e.reason };
        break;
      case 'rejected':
        name = 'rejected';
        event = { breaker: e.breaker, state: e.state, retryAfter: e.retryAfter, at: e.at };
        break;
      case 'timeout':
        name = 'timeout';
        event = { breaker: e.breaker, took: e.took, at: e.at };
        break;
      case 'fallback':
        name = 'fallback';
        event = { breaker: e.breaker, at: e.at };
        break;
      default:
        return;
    }
    emitSafely(this, name, event, e.breaker, 'circuit breaker');
    const registry = this.#registry;
    if (registry !== null && registry.listenerCount('event') > 0) {
      emitSafely(registry, 'event', { type: name, ...event }, e.breaker, 'the registry of circuit breaker');
    }
  }
}

// Breaker events whose listeners make the core queue rejections, timeouts and fallbacks.
const WATCHED_EVENTS = new Set(['rejected', 'timeout', 'fallback']);

/**
 * Calls every `event` listener of `emitter` with `payload`, synchronously, in order; a
 * listener that throws (or returns a rejected promise) is reported as a process warning
 * (`SEAWALL_LISTENER_ERROR`) and skipped, never breaking the primitive or the others.
 */
function emitSafely(emitter, event, payload, name, what) {
  const listeners = emitter.rawListeners(event);
  for (let i = 0; i < listeners.length; i++) {
    const l = listeners[i];
    // rawListeners keeps `once` wrappers: calling one removes it, as emit would.
    try {
      const r = Reflect.apply(l, emitter, [payload]);
      if (isThenable(r)) r.then(undefined, (err) => reportListenerError(name, err, event, what));
    } catch (err) {
      reportListenerError(name, err, event, what);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Idempotency cache
//
// The cache, its store, leases, records and waiters are the core's. This layer serialises
// results (JSON by default; Buffers as raw bytes), canonicalises fingerprints, and turns the
// core's outcomes into promises: `run` claims the key (one native call), runs `fn` when it
// owns it, completes (one more call) and resolves with what every duplicate will get.
//
// Duplicates that wait: the native `begin` returns a waiter id; the outcome arrives through
// the core's `Waiter::on_done` (see bindings/node/src/idempotency.rs), queued natively and
// drained here, either right after a call of ours that can resolve waiters (complete,
// release, fail, `ManualClock#advance`) or when the native side wakes the event loop through
// a thread-safe function (a lease expiry or wait timeout on the system clock's timer
// thread). Nothing polls and nothing blocks.
// ---------------------------------------------------------------------------------------

const JSON_TYPE = 'application/json';
const OCTETS_TYPE = 'application/octet-stream';
const CT_JSON = 0; // content type codes of the native `complete`/`fail`
const CT_OCTETS = 1;

let wakeup = null; // the NativeWakeup of this environment, made with the first cache
const waitingCaches = new Set(); // caches with pending waiters
let held = 0; // pending waiters on the system clock (they keep the event loop alive)
let cacheDrain; // (cache) => takes its resolved waiters

function getWakeup() {
  if (wakeup === null) wakeup = new native.NativeWakeup(drainWaiters);
  return wakeup;
}

/** Delivers every resolved waiter of every cache (called on the JS thread). */
function drainWaiters() {
  if (wakeup === null) return;
  wakeup.clear();
  for (const cache of waitingCaches) {
    try {
      cacheDrain(cache);
    } catch (err) {
      // Never reached by design (outcomes are settled into promises); keep the loop alive.
      process.emitWarning(`seawall: delivering idempotency waiters failed: ${err && err.stack ? err.stack : err}`, {
        type: 'SeawallWarning',
        code: 'SEAWALL_INTERNAL',
      });
    }
  }
}

function hold(delta) {
  const before = held;
  held += delta;
  if (before === 0 && held > 0) wakeup.hold(true);
  else if (before > 0 && held === 0) wakeup.hold(false);
}

// --- canonical JSON (fingerprints) ---

// Orders two strings by Unicode code points (as Python sorts str), not UTF-16 code units.
function compareCodePoints(a, b) {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      // Surrogates (code points above U+FFFF) sort after U+E000..U+FFFF.
      if (x >= 0xd800 && y >= 0xd800) {
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x - y;
    }
  }
  return a.length - b.length;
}

// A float as Python's repr writes it: the shortest round-trip digits (the same digits as
// JavaScript's), in positional notation unless the exponent is below -4 or at least 16.
function pythonFloat(x) {
  const [mantissa, exp] = x.toExponential().split('e');
  const negative = mantissa[0] === '-';
  const digits = mantissa.replace('-', '').replace('.', '');
  const decpt = Number(exp) + 1; // x = 0.DIGITS * 10^decpt
  let out;
  if (decpt <= -4 || decpt > 16) {
    const e = decpt - 1;
    const abs = Math.abs(e);
    out = `${digits[0]}${digits.length > 1 ? `.${digits.slice(1)}` : ''}e${e < 0 ? '-' : '+'}${abs < 10 ? `0${abs}` : abs}`;
  } else if (decpt <= 0) {
    out = `0.${'0'.repeat(-decpt)}${digits}`;
  } else if (decpt >= digits.length) {
    out = `${digits}${'0'.repeat(decpt - digits.length)}.0`;
  } else {
    out = `${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
  }
  return negative ? `-${out}` : out;
}

function canonicalValue(value, key, seen) {
  if (value !== null && typeof value === 'object' && typeof value.toJSON === 'function') value = value.toJSON(key);
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return value.toString();
    case 'number':
      if (!Number.isFinite(value)) {
        throw argumentError(`fingerprint: ${value} has no JSON form (at ${JSON.stringify(key)})`);
      }
      // A safe integer is a Python int; any other number a Python float (integers beyond
      // 2^53 are exact only as BigInt, which is written as an int).
      return Number.isSafeInteger(value) ? String(value) : pythonFloat(value);
    case 'object':
      break;
    default:
      return undefined; // undefined, functions, symbols: left out (null in arrays), as JSON.stringify
  }
  if (value === null) return 'null';
  if (seen.has(value)) throw argumentError('fingerprint: the payload is circular');
  seen.add(value);
  let out;
  if (Array.isArray(value)) {
    const parts = new Array(value.length);
    for (let i = 0; i < value.length; i++) {
      const v = canonicalValue(value[i], String(i), seen);
      parts[i] = v === undefined ? 'null' : v;
    }
    out = `[${parts.join(',')}]`;
  } else {
    const keys = Object.keys(value).sort(compareCodePoints);
    const parts = [];
    for (const k of keys) {
      const v = canonicalValue(value[k], k, seen);
      if (v !== undefined) parts.push(`${JSON.stringify(k)}:${v}`);
    }
    out = `{${parts.join(',')}}`;
  }
  seen.delete(value);
  return out;
}

/**
 * The canonical JSON text of a payload, byte for byte what Python's
 * `json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` writes
 * for the same data: keys sorted by code point, no spaces, non-ASCII characters as they
 * are; safe integers and BigInts as integers, other numbers as Python's `repr` of a float.
 * See docs/node.md.
 */
function canonicalJson(value) {
  const out = canonicalValue(value, '', new Set());
  if (out === undefined) throw argumentError(`fingerprint: a ${typeof value} has no JSON form`);
  return out;
}

// A `fingerprint` option as the native `begin` takes it: undefined (none), a string (its
// UTF-8 bytes) or a Uint8Array (its bytes).
function fingerprintPayload(fp) {
  if (fp === undefined || fp === null || typeof fp === 'string' || fp instanceof Uint8Array) return fp;
  if (fp instanceof ArrayBuffer) return new Uint8Array(fp);
  if (ArrayBuffer.isView(fp)) return new Uint8Array(fp.buffer, fp.byteOffset, fp.byteLength);
  return canonicalJson(fp);
}

/**
 * The core's fingerprint (SHA-256, 64 hex digits) of a request payload, as `run` and
 * `begin` compute it from their `fingerprint` option: a string is hashed as its UTF-8
 * bytes, a Buffer / typed array / ArrayBuffer as its bytes, anything else as its canonical
 * JSON (`canonicalJson`).
 */
function fingerprint(payload) {
  const p = fingerprintPayload(payload);
  if (p === undefined || p === null) throw argumentError(`fingerprint: expected a payload, got ${typeOf(payload)}`);
  return native.fingerprintHexOf(p);
}

// --- serialisation ---

const BUILTIN_ERRORS = { TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError };

/**
 * The default serializer: Buffers and typed arrays as raw bytes
 * (`application/octet-stream`), everything else as JSON (`application/json`;
 * `undefined` is stored as `null`). Errors (with `cacheErrors`) as
 * `{"type": name, "message": message, "code": code}`.
 */
const jsonSerializer = Object.freeze({
  serialize(value) {
    if (value instanceof Uint8Array) return { bytes: value, contentType: OCTETS_TYPE };
    const text = JSON.stringify(value);
    return { bytes: text === undefined ? 'null' : text, contentType: JSON_TYPE };
  },
  deserialize(bytes, contentType) {
    if (contentType === JSON_TYPE) return JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
    return typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes);
  },
  serializeError(err) {
    const e = err !== null && typeof err === 'object' ? err : { message: String(err) };
    const out = { type: typeof e.name === 'string' ? e.name : 'Error', message: String(e.message ?? err) };
    if (typeof e.code === 'string' || typeof e.code === 'number') out.code = e.code;
    return { bytes: JSON.stringify(out), contentType: JSON_TYPE };
  },
  deserializeError(bytes, contentType) {
    let data;
    try {
      data = contentType === JSON_TYPE ? JSON.parse(Buffer.from(bytes).toString('utf8')) : undefined;
    } catch {
      data = undefined;
    }
    if (data === null || typeof data !== 'object') {
      return new Error(`the operation failed (a stored error of content type ${JSON.stringify(contentType)})`);
    }
    const type = typeof data.type === 'string' ? data.type : 'Error';
    const Ctor = Object.hasOwn(BUILTIN_ERRORS, type) ? BUILTIN_ERRORS[type] : Error;
    const err = new Ctor(typeof data.message === 'string' ? data.message : '');
    if (Ctor === Error && type !== 'Error') err.name = type;
    if (data.code !== undefined) err.code = data.code;
    return err;
  },
});

function serializerOption(s) {
  if (s === undefined) return null;
  if (s === null || typeof s !== 'object' || typeof s.serialize !== 'function' || typeof s.deserialize !== 'function') {
    throw optionError('serializer', s, 'expected an object with serialize(value) and deserialize(bytes, contentType)');
  }
  for (const m of ['serializeError', 'deserializeError']) {
    if (s[m] !== undefined && typeof s[m] !== 'function') throw optionError(`serializer.${m}`, s[m], 'expected a function');
  }
  return s;
}

// Checks what a serializer returned: `{ bytes, contentType }`.
function checkSerialized(out, what) {
  if (
    out === null ||
    typeof out !== 'object' ||
    !(typeof out.bytes === 'string' || out.bytes instanceof Uint8Array) ||
    typeof out.contentType !== 'string'
  ) {
    throw new TypeError(
      `${what} must return { bytes: string | Uint8Array, contentType: string }, got ${out === null ? 'null' : typeof out}`,
    );
  }
  return out;
}

function contentTypeCode(ct) {
  if (ct === JSON_TYPE) return CT_JSON;
  if (ct === OCTETS_TYPE) return CT_OCTETS;
  return ct;
}

function resultError(key, why) {
  const err = new TypeError(
    `invalid argument: cannot store the result of idempotency key ${JSON.stringify(key)}: ${why}; ` +
      'nothing was stored and the key was released',
  );
  err.code = 'SEAWALL_INVALID_ARGUMENT';
  return err;
}

function storeOption(store) {
  if (store === undefined) return undefined;
  if (store instanceof native.NativeMemoryStore || store instanceof native.NativeRedisStore) return store;
  throw optionError('store', store, 'expected a MemoryStore or a RedisStore');
}

/**
 * A memory store that several caches can share (`store` option). Bounded by
 * `maxEntries` and `maxBytes`; evicts expired entries first, then the least recently used
 * results; never a live lease.
 */
class MemoryStore extends native.NativeMemoryStore {
  constructor(options = {}) {
    if (options === null || typeof options !== 'object') {
      throw argumentError(`options must be an object, got ${typeOf(options)}`);
    }
    const { clock, ...rest } = options;
    let manual;
    if (clock instanceof ManualClock) manual = clock;
    else if (clock !== undefined && !(clock instanceof SystemClock)) {
      throw optionError('clock', clock, 'expected a ManualClock or a SystemClock');
    }
    super(rest, manual);
  }

  /** `'memory'`. */
  get kind() {
    return 'memory';
  }
}

/**
 * A Redis store (`store` option): one idempotency cache shared by processes, hosts and
 * languages (docs/redis.md). Options: `url` (default `redis://127.0.0.1:6379/0`), `prefix`
 * (`seawall:idem:`), `connectTimeout`, `commandTimeout`, `reconnectDelay`,
 * `reconnectMaxDelay`, `completionRetryWindow` (ms). Connects on first use; every call of
 * `run` goes to Redis off the event loop (the libuv thread pool).
 */
class RedisStore extends native.NativeRedisStore {
  constructor(options = {}) {
    if (options === null || typeof options !== 'object') {
      throw argumentError(`options must be an object, got ${typeOf(options)}`);
    }
    const { clock, ...rest } = options;
    let manual;
    if (clock instanceof ManualClock) manual = clock;
    else if (clock !== undefined) {
      throw optionError('clock', clock, 'expected a ManualClock (tests only: scripts then read time from it)');
    }
    super(rest, manual);
  }

  /** `'redis'`. */
  get kind() {
    return 'redis';
  }

  /** Connects (if needed) and resolves with one round trip's time in ms; rejects with `SEAWALL_STORE_UNAVAILABLE`. */
  ping() {
    return super.ping().then((r) => {
      if (typeof r === 'number') return r;
      throw r;
    });
  }
}

let leaseNative; // (Lease) => its native lease
let makeLease;
let makeRecord;
let makeWaiter;

/** A claim on a key (low-level API): run the operation, then `complete`, `fail` or `release` it. */
class Lease {
  #native;

  constructor(token, nativeLease) {
    if (token !== kInternal) throw new TypeError('Lease objects come from cache.begin()');
    this.#native = nativeLease;
  }

  static {
    leaseNative = (l) => (l instanceof Lease ? l.#native : undefined);
    makeLease = (n) => new Lease(kInternal, n);
  }

  /** The key. */
  get key() {
    return this.#native.key;
  }

  /** The fencing token: greater than every earlier lease's on this key (0 when unprotected). */
  get token() {
    return this.#native.token;
  }

  /** When the lease expires, in ms on the cache's clock (moved by `renew`). */
  get expiresAt() {
    return this.#native.expiresAt;
  }

  /** True when it took the key over from an owner whose lease expired (or that released it while this caller waited). */
  get tookOver() {
    return this.#native.tookOver;
  }

  /** False when the store failed and `onStoreError: 'run'` let the operation run unprotected. */
  get protected() {
    return this.#native.protected;
  }

  /** The request fingerprint (64 hex digits), or null for none. */
  get fingerprint() {
    return this.#native.fingerprint;
  }
}

/** A stored result: bytes, content type, metadata, and when and by whom it was stored. */
class IdempotencyRecord {
  #native;
  #serializer;

  constructor(token, nativeRecord, serializer) {
    if (token !== kInternal) throw new TypeError('IdempotencyRecord objects come from a cache or IdempotencyRecord.decode()');
    this.#native = nativeRecord;
    this.#serializer = serializer;
  }

  static {
    makeRecord = (n, s) => new IdempotencyRecord(kInternal, n, s);
  }

  /**
   * Reads a record in seawall's record format (version 2: every language reads and writes
   * it). `options.serializer` is used by `value()` (default: JSON, Buffers as bytes).
   */
  static decode(bytes, options) {
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw argumentError(`options must be an object, got ${typeOf(options)}`);
    }
    if (options !== undefined) checkOptionNames(options, ['serializer'], 'IdempotencyRecord.decode()');
    const s = options === undefined ? null : serializerOption(options.serializer);
    const view = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes;
    return new IdempotencyRecord(kInternal, native.NativeRecord.decode(view), s);
  }

  /** The record in seawall's record format (version 2). */
  encode() {
    return this.#native.encode();
  }

  /** The stored result bytes (a copy). */
  get result() {
    return this.#native.result;
  }

  get contentType() {
    return this.#native.contentType;
  }

  /** `[name, value]` pairs, in order. */
  get metadata() {
    return this.#native.metadata;
  }

  /** True when the result is an error the operation threw (`cacheErrors`). */
  get error() {
    return this.#native.error;
  }

  /** The fencing token of the lease that stored it. */
  get token() {
    return this.#native.token;
  }

  /** When it was stored, in ms on the store's clock. */
  get createdMs() {
    return this.#native.createdMs;
  }

  /** When it expires (`createdMs + ttl`), in ms on the store's clock. */
  get expiresMs() {
    return this.#native.expiresMs;
  }

  /** The request fingerprint (64 hex digits), or null for none. */
  get fingerprint() {
    return this.#native.fingerprint;
  }

  /**
   * The result, deserialised as `run` returns it to duplicates. For an error record
   * (`error === true`), throws the stored error rebuilt as an `Error`, as `run` does.
   */
  value() {
    const s = this.#serializer ?? jsonSerializer;
    const n = this.#native;
    if (n.error) throw (s.deserializeError ?? jsonSerializer.deserializeError)(n.result, n.contentType);
    return s.deserialize(n.result, n.contentType);
  }
}

/** A duplicate waiting for the owner of its key (low-level API, from `cache.begin()`). */
class Waiter {
  #native;
  #cache;
  #promise = null;

  constructor(token, nativeWaiter, cache) {
    if (token !== kInternal) throw new TypeError('Waiter objects come from cache.begin()');
    this.#native = nativeWaiter;
    this.#cache = cache;
  }

  static {
    makeWaiter = (n, c) => new Waiter(kInternal, n, c);
  }

  /** The key waited for. */
  get key() {
    return this.#native.key;
  }

  /** True once resolved (whether or not the outcome was taken). */
  get done() {
    return this.#native.done;
  }

  /**
   * Applies what is due and says where the waiter stands, without waiting:
   * `{ state: 'pending', leaseExpiresIn, timeoutIn }`, `{ state: 'execute', lease }` (this
   * caller now owns the key), `{ state: 'replay', record }`, or `{ state: 'taken' }` (handed
   * over before). An outcome that is an error is thrown.
   */
  poll() {
    const r = this.#native.poll();
    if (r.lease !== undefined) return { state: r.state, lease: makeLease(r.lease) };
    if (r.record !== undefined) return { state: r.state, record: makeRecord(r.record, this.#cache.serializer) };
    return r;
  }

  /**
   * The outcome, without blocking: resolves with `{ kind: 'execute', lease }` or
   * `{ kind: 'replay', record }`, or rejects (`SEAWALL_IDEMPOTENCY_IN_PROGRESS` after
   * `waitTimeout`, `SEAWALL_IDEMPOTENCY_MISMATCH`, `SEAWALL_CANCELLED`...).
   */
  result() {
    if (this.#promise === null) this.#promise = this.#cache[kSubscribe](this.#native, this);
    return this.#promise;
  }

  /** Stops waiting: the outcome becomes `SEAWALL_CANCELLED`. */
  cancel() {
    this.#native.cancel();
    if (wakeup !== null && wakeup.pending) drainWaiters();
  }
}

const kSubscribe = Symbol('seawall.subscribe');
// Events of an idempotency cache's `run`: a duplicate got the stored result, was refused for
// another payload, was refused (or gave up waiting) while in progress, took over a key from
// a crashed or failed owner; a run's result was refused because its lease was lost.
const CACHE_EVENTS = new Set(['replay', 'mismatch', 'inProgress', 'takeover', 'leaseLost']);
let cacheRewatch; // (cache, on) => re-reads whether its events are watched
let ctxFinish; // (ctx) => marks the run over; returns whether it was abandoned

const RUN_OPTIONS = ['fingerprint'];
const WRAP_OPTIONS = ['key', 'fingerprint'];

/** What `fn` receives in `cache.run(key, fn)`. */
class RunContext {
  #key;
  #slot;
  #renewFn;
  #tookOver;
  #over = false;
  #abandoned = false;

  constructor(key, slot, renewFn, tookOver) {
    this.#key = key;
    this.#slot = slot;
    this.#renewFn = renewFn;
    this.#tookOver = tookOver;
  }

  static {
    ctxFinish = (c) => {
      c.#over = true;
      return c.#abandoned;
    };
  }

  /** The key being run. */
  get key() {
    return this.#key;
  }

  /** True when this run took the key over from an owner whose lease expired or that released it. */
  get tookOver() {
    return this.#tookOver;
  }

  /**
   * Extends the claim to a full lease from now (for operations that may outlive the lease);
   * returns the ms until it expires (a Promise of it with a remote store: `await
   * ctx.renew()` works with both). Fails with `SEAWALL_LEASE_LOST` when the lease already
   * expired or was taken over.
   */
  renew() {
    if (this.#over) {
      const err = new Error(`lease on idempotency key ${JSON.stringify(this.#key)} is no longer held: the run has finished`);
      err.code = 'SEAWALL_LEASE_LOST';
      throw err;
    }
    const r = this.#renewFn(this.#slot);
    if (typeof r === 'number' || r instanceof Promise) return r; // a Promise with a remote store
    throw r;
  }

  /**
   * Says "the outcome is unknown" (the operation failed after side effects that may have
   * happened): if `fn` then throws, the claim is kept until its lease expires instead of
   * being released, so duplicates are held off until then and one of them runs afterwards.
   */
  abandon() {
    this.#abandoned = true;
  }
}

/**
 * An idempotency cache: `run(key, fn)` runs `fn` once per key, however often it is retried
 * or raced, and every duplicate gets the first run's result. See index.d.ts and
 * docs/node.md ("Idempotency").
 */
class IdempotencyCache extends EventEmitter {
  #native;
  #begin;
  #complete;
  #fail;
  #release;
  #abandon;
  #renew;
  #take;
  #serializer; // null: the default (JSON, Buffers as bytes)
  #text; // the native side may hand JSON replays over as text
  #clock;
  #manual;
  #cacheErrors;
  #name;
  #waiting = new Map(); // waiter id -> { resolve, reject, key, fn, raw }
  #registry; // the Registry that made it, or null
  #watched = false; // some listener wants this cache's events
  #remote; // the store does I/O (Redis): store calls go off the event loop
  #renewRemote = (lease) =>
    this.#native.renewAsync(lease).then((r) => {
      if (typeof r === 'number') return r;
      throw r;
    });

  constructor(options = {}, token = undefined, registry = null, make = undefined) {
    super();
    const internal = token === kInternal; // a registry's cache: `make` gets it from the core registry
    this.#registry = internal ? registry : null;
    if (options === null || typeof options !== 'object') {
      throw argumentError(`options must be an object, got ${typeOf(options)}`);
    }
    const { clock, store, serializer, ...rest } = options;
    let manual;
    if (clock instanceof ManualClock) manual = clock;
    else if (clock !== undefined && !(clock instanceof SystemClock)) {
      throw optionError('clock', clock, 'expected a ManualClock or a SystemClock');
    }
    this.#serializer = serializerOption(serializer);
    this.#text = this.#serializer === null;
    this.#native = internal
      ? make(rest, manual, storeOption(store), getWakeup())
      : new native.NativeIdempotencyCache(rest, manual, storeOption(store), getWakeup());
    const hot = this.#native.hotPath();
    this.#begin = hot.begin;
    this.#complete = hot.complete;
    this.#fail = hot.fail;
    this.#release = hot.release;
    this.#abandon = hot.abandon;
    this.#renew = hot.renew;
    this.#take = hot.take;
    this.#clock = clock === undefined ? systemClock : clock;
    this.#manual = manual !== undefined;
    this.#cacheErrors = this.#native.cacheErrors;
    this.#name = this.#native.name;
    this.#remote = this.#native.remote;
    this.on('newListener', (event) => {
      if (CACHE_EVENTS.has(event)) this.#watched = true;
    });
    this.on('removeListener', () => this.#rewatch());
    this.#rewatch();
  }

  static {
    cacheDrain = (c) => c.#drain();
    cacheRewatch = (c, on) => (on ? (c.#watched = true) : c.#rewatch());
  }

  #rewatch() {
    let n = 0;
    for (const e of CACHE_EVENTS) n += this.listenerCount(e);
    this.#watched = n > 0 || (this.#registry !== null && this.#registry.listenerCount('event') > 0);
  }

  // Emits `name` for `key` (only called while watched).
  #emit(name, key, extra) {
    const event = { cache: this.#name, key, at: this.#clock.now(), ...extra };
    emitSafely(this, name, event, this.#name, 'idempotency cache');
    const registry = this.#registry;
    if (registry !== null && registry.listenerCount('event') > 0) {
      emitSafely(registry, 'event', { type: name, ...event }, this.#name, 'the registry of idempotency cache');
    }
  }

  // The event an error outcome is (mismatch, in progress, lease lost), if any.
  #emitError(key, err) {
    switch (err && err.code) {
      case 'SEAWALL_IDEMPOTENCY_MISMATCH':
        this.#emit('mismatch', key);
        break;
      case 'SEAWALL_IDEMPOTENCY_IN_PROGRESS':
        this.#emit('inProgress', key, { retryAfter: err.retryAfter, waited: err.waited });
        break;
      case 'SEAWALL_LEASE_LOST':
        this.#emit('leaseLost', key, { token: err.token });
        break;
      default:
    }
  }

  /** The cache's name (the `name` option). */
  get name() {
    return this.#name;
  }

  /** The clock the cache reads. */
  get clock() {
    return this.#clock;
  }

  /** The custom serializer, or null for the default (JSON, Buffers as bytes). */
  get serializer() {
    return this.#serializer;
  }

  /** The configuration in force (defaults filled in; durations in ms). */
  get options() {
    return this.#native.options();
  }

  /** Duplicates waiting now. */
  get waiting() {
    return this.#native.waiting;
  }

  /**
   * Runs `fn(ctx)` once for `key`: the first caller runs it and stores its result; every
   * duplicate (a retry, or a racing call) gets that result without running `fn`. Resolves
   * with the result as stored (deserialised: every caller gets the same). See index.d.ts.
   */
  run(key, fn, options) {
    if (typeof fn !== 'function') return Promise.reject(argumentError(`run(key, fn) needs a function, got ${typeOf(fn)}`));
    if (typeof key === 'string' && !isWellFormed(key)) return Promise.reject(malformedKey(key));
    let fp;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') {
        return Promise.reject(argumentError(`options must be an object, got ${typeOf(options)}`));
      }
      try {
        checkOptionNames(options, RUN_OPTIONS, 'run()');
        fp = fingerprintPayload(options.fingerprint);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (this.#remote) return this.#runRemote(key, fn, fp);
    let r;
    try {
      r = this.#begin(key, fp, this.#text); // errors come back as values; only a bug throws
    } catch (err) {
      return Promise.reject(err);
    }
    if (typeof r === 'number') {
      if (r >= 0) {
        const tookOver = (r & 1) === 1;
        if (tookOver && this.#watched) this.#emit('takeover', key);
        return this.#execute(r >> 1, key, fn, tookOver);
      }
      return this.#wait(-r - 1, key, fn);
    }
    if (this.#watched) {
      if (typeof r === 'string' || Array.isArray(r)) this.#emit('replay', key);
      else this.#emitError(key, r);
    }
    if (typeof r === 'string') {
      try {
        return Promise.resolve(JSON.parse(r));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (Array.isArray(r)) return this.#replayed(r);
    return Promise.reject(r);
  }

  /**
   * Returns a function that runs `fn` through `run`, with the key (and the fingerprint)
   * computed from its arguments: `options.key(...args)` (required) and
   * `options.fingerprint(...args)` (optional).
   */
  wrap(fn, options) {
    if (typeof fn !== 'function') throw argumentError(`wrap(fn, options) needs a function, got ${typeOf(fn)}`);
    if (options === null || typeof options !== 'object' || typeof options.key !== 'function') {
      throw argumentError('wrap(fn, options) needs options.key, a function of the arguments that returns the key');
    }
    checkOptionNames(options, WRAP_OPTIONS, 'wrap()');
    const { key, fingerprint: fpOf } = options;
    if (fpOf !== undefined && typeof fpOf !== 'function') {
      throw argumentError('options.fingerprint must be a function of the arguments');
    }
    const cache = this;
    const wrapped = function (...args) {
      let k;
      let f;
      try {
        k = key(...args);
        f = fpOf === undefined ? undefined : fpOf(...args);
      } catch (err) {
        return Promise.reject(err);
      }
      return cache.run(k, () => Reflect.apply(fn, this, args), f === undefined ? undefined : { fingerprint: f });
    };
    Object.defineProperty(wrapped, 'name', { value: fn.name, configurable: true });
    return wrapped;
  }

  #execute(slot, key, fn, tookOver) {
    const ctx = new RunContext(key, slot, this.#renew, tookOver);
    let value;
    try {
      value = fn(ctx);
    } catch (err) {
      return Promise.reject(this.#failed(slot, ctx, err));
    }
    if (isThenable(value)) {
      return (value instanceof Promise ? value : Promise.resolve(value)).then(
        (v) => this.#completed(slot, ctx, key, v),
        (err) => {
          throw this.#failed(slot, ctx, err);
        },
      );
    }
    try {
      return Promise.resolve(this.#completed(slot, ctx, key, value));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  // `value` as stored: `{ bytes, type, text }` (`text`: the JSON, for the fast path), or
  // `{ error }` when it cannot be serialised.
  #serialize(key, value) {
    const s = this.#serializer;
    if (s === null && !(value instanceof Uint8Array)) {
      let text;
      try {
        text = JSON.stringify(value);
      } catch (err) {
        return { error: resultError(key, `it cannot be serialised as JSON (${err.message})`) };
      }
      if (text === undefined) text = 'null';
      return { bytes: text, type: CT_JSON, text };
    }
    try {
      const ser = checkSerialized((s ?? jsonSerializer).serialize(value), 'serializer.serialize(value)');
      return { bytes: ser.bytes, type: contentTypeCode(ser.contentType), contentType: ser.contentType, text: undefined };
    } catch (err) {
      return { error: resultError(key, `the serializer failed (${err && err.message})`) };
    }
  }

  // What duplicates get from a serialised value.
  #stored(ser) {
    if (ser.text !== undefined) return JSON.parse(ser.text);
    const b = ser.bytes;
    return (this.#serializer ?? jsonSerializer).deserialize(
      typeof b === 'string' ? Buffer.from(b, 'utf8') : Buffer.from(b),
      ser.contentType,
    );
  }

  // Stores `value` and returns what duplicates will get.
  #completed(slot, ctx, key, value) {
    ctxFinish(ctx);
    const ser = this.#serialize(key, value);
    if (ser.error !== undefined) {
      this.#releaseQuietly(slot);
      throw ser.error;
    }
    const r = this.#complete(slot, ser.bytes, ser.type);
    if (r !== false && r !== true) throw this.#refused(ctx, r);
    if (r) drainWaiters();
    return this.#stored(ser);
  }

  // The serialised error `fn` threw, for `cacheErrors` (undefined when it cannot be).
  #serializeError(err) {
    try {
      const s = this.#serializer;
      const f = s !== null && s.serializeError !== undefined ? s.serializeError : jsonSerializer.serializeError;
      return checkSerialized(f(err), 'serializer.serializeError(err)');
    } catch {
      return undefined; // an error that cannot be stored: the key is released instead
    }
  }

  // --- a remote store (Redis): the same steps, each store call off the event loop ---

  async #runRemote(key, fn, fp) {
    const r = await this.#native.beginAsync(key, fp, this.#text);
    if (r instanceof native.NativeLease) {
      const tookOver = r.tookOver;
      if (tookOver && this.#watched) this.#emit('takeover', key);
      return this.#executeRemote(r, key, fn, tookOver);
    }
    if (typeof r === 'number') return this.#wait(-r - 1, key, fn);
    if (this.#watched) {
      if (typeof r === 'string' || Array.isArray(r)) this.#emit('replay', key);
      else this.#emitError(key, r);
    }
    if (typeof r === 'string') return JSON.parse(r);
    if (Array.isArray(r)) return this.#replayed(r);
    throw r;
  }

  async #executeRemote(lease, key, fn, tookOver) {
    const nat = this.#native;
    const ctx = new RunContext(key, lease, this.#renewRemote, tookOver);
    let value;
    try {
      value = await fn(ctx);
    } catch (err) {
      let r;
      if (ctxFinish(ctx)) {
        nat.abandonRaw(lease);
        r = false;
      } else {
        const ser = this.#cacheErrors ? this.#serializeError(err) : undefined;
        r = await (ser === undefined ? nat.failAsync(lease) : nat.failAsync(lease, ser.bytes, contentTypeCode(ser.contentType)));
      }
      if (r === true) drainWaiters();
      throw err;
    }
    ctxFinish(ctx);
    const ser = this.#serialize(key, value);
    if (ser.error !== undefined) {
      if ((await nat.releaseAsync(lease)) === true) drainWaiters();
      throw ser.error;
    }
    const r = await nat.completeAsync(lease, ser.bytes, ser.type);
    if (r !== false && r !== true) throw this.#refused(ctx, r);
    if (r) drainWaiters();
    return this.#stored(ser);
  }

  // `fn` threw `err`: release the key (or keep it, after `ctx.abandon()`; or store the
  // error, with `cacheErrors`). Returns `err`, which the caller gets unchanged.
  #failed(slot, ctx, err) {
    const abandoned = ctxFinish(ctx);
    let r;
    if (abandoned) {
      r = this.#abandon(slot);
    } else if (this.#cacheErrors) {
      const ser = this.#serializeError(err);
      r = ser === undefined ? this.#fail(slot) : this.#fail(slot, ser.bytes, contentTypeCode(ser.contentType));
    } else {
      r = this.#fail(slot);
    }
    if (r === true) drainWaiters();
    // A refusal here (the lease expired while fn ran) changes nothing for the caller: it
    // gets fn's error; the key is free again or owned by whoever took it over.
    return err;
  }

  // `complete` refused `err` (lease lost, too large, store unavailable): reported, returned.
  #refused(ctx, err) {
    if (this.#watched) this.#emitError(ctx.key, err);
    return err;
  }

  #releaseQuietly(slot) {
    if (this.#release(slot) === true) drainWaiters();
  }

  #replayed(r) {
    const [bytes, contentType, isError] = r;
    const s = this.#serializer ?? jsonSerializer;
    try {
      if (isError) {
        const f = s.deserializeError ?? jsonSerializer.deserializeError;
        return Promise.reject(f(bytes, contentType));
      }
      return Promise.resolve(s.deserialize(bytes, contentType));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #wait(id, key, fn) {
    return new Promise((resolve, reject) => this.#register(id, { resolve, reject, key, fn, raw: false }));
  }

  #register(id, entry) {
    this.#waiting.set(id, entry);
    waitingCaches.add(this);
    if (!this.#manual) hold(1);
  }

  [kSubscribe](nativeWaiter, waiter) {
    const id = nativeWaiter.subscribe();
    const p = new Promise((resolve, reject) => this.#register(id, { resolve, reject, waiter, raw: true }));
    if (wakeup.pending) drainWaiters();
    return p;
  }

  #drain() {
    const items = this.#take(this.#text);
    if (items !== null) {
      for (let i = 0; i < items.length; i += 3) {
        const id = items[i];
        const kind = items[i + 1];
        const value = items[i + 2];
        const w = this.#waiting.get(id);
        if (w === undefined) {
          // Nobody waits for it any more: a key handed over is released at once.
          if (kind === 0 && typeof value === 'number') this.#releaseQuietly(value >> 1);
          else if (kind === 0 && value instanceof native.NativeLease) this.#native.releaseAsync(value).catch(() => {});
          continue;
        }
        this.#waiting.delete(id);
        if (!this.#manual) hold(-1);
        if (this.#watched && !w.raw) {
          if (kind === 0) {
            if (typeof value === 'number' ? (value & 1) === 1 : value.tookOver) this.#emit('takeover', w.key);
          } else if (kind === 1) this.#emit('replay', w.key);
          else this.#emitError(w.key, value);
        }
        if (w.raw) {
          if (kind === 0) w.resolve({ kind: 'execute', lease: makeLease(value) });
          else if (kind === 1) w.resolve({ kind: 'replay', record: makeRecord(value, this.#serializer) });
          else w.reject(value);
        } else if (kind === 0) {
          if (typeof value === 'number') w.resolve(this.#execute(value >> 1, w.key, w.fn, (value & 1) === 1));
          else w.resolve(this.#executeRemote(value, w.key, w.fn, value.tookOver));
        } else if (kind === 1) {
          if (typeof value === 'string') {
            try {
              w.resolve(JSON.parse(value));
            } catch (err) {
              w.reject(err);
            }
          } else {
            w.resolve(this.#replayed(value));
          }
        } else {
          w.reject(value);
        }
      }
    }
    if (this.#waiting.size === 0) waitingCaches.delete(this);
  }

  // --- the low-level API ---

  /**
   * Claims `key` (one atomic step) and says what to do: `{ kind: 'execute', lease }`,
   * `{ kind: 'replay', record }`, `{ kind: 'in_progress', retryAfter, waiter, error }`
   * (`waiter` is null when rejecting) or `{ kind: 'mismatch', completed, error }`.
   * Throws for a bad key (`SEAWALL_INVALID_ARGUMENT`) or a store failure
   * (`SEAWALL_STORE_UNAVAILABLE`).
   */
  begin(key, options) {
    if (typeof key === 'string' && !isWellFormed(key)) throw malformedKey(key);
    let fp;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') {
        throw argumentError(`options must be an object, got ${typeOf(options)}`);
      }
      checkOptionNames(options, RUN_OPTIONS, 'begin()');
      fp = fingerprintPayload(options.fingerprint);
    }
    const r = this.#native.beginRaw(key, fp);
    switch (r.kind) {
      case 'execute':
        return { kind: 'execute', lease: makeLease(r.lease) };
      case 'replay':
        return { kind: 'replay', record: makeRecord(r.record, this.#serializer) };
      case 'in_progress':
        return {
          kind: 'in_progress',
          retryAfter: r.retryAfter,
          waiter: r.waiter === undefined ? null : makeWaiter(r.waiter, this),
          error: r.error,
        };
      default:
        return { kind: 'mismatch', completed: r.completed, error: r.error };
    }
  }

  /**
   * The serialised form of `value` as `run` stores it: `{ result, contentType }` (pass it
   * to `complete`).
   */
  serialize(value) {
    const ser = checkSerialized((this.#serializer ?? jsonSerializer).serialize(value), 'serializer.serialize(value)');
    return { result: ser.bytes, contentType: ser.contentType };
  }

  /**
   * Stores the result of the lease's run: `output` is `{ result, contentType?, metadata? }`
   * (`result` a string or bytes; `metadata` `[name, value]` pairs). Returns the record
   * every duplicate gets. Throws `SEAWALL_LEASE_LOST` when the lease no longer holds the key.
   */
  complete(lease, output) {
    const l = this.#leaseArg(lease);
    const { result, contentType, metadata } = outputArg(output);
    const rec = this.#native.completeRaw(l, result, contentType, metadata);
    if (wakeup.pending) drainWaiters();
    return makeRecord(rec, this.#serializer);
  }

  /**
   * The operation failed: with `cacheErrors` and an `output`, stores it as an error record
   * (returned); otherwise releases the key (returns null).
   */
  fail(lease, output) {
    const l = this.#leaseArg(lease);
    let rec;
    if (output === undefined) {
      rec = this.#native.failRaw(l);
    } else {
      const { result, contentType, metadata } = outputArg(output);
      rec = this.#native.failRaw(l, result, contentType, metadata);
    }
    if (wakeup.pending) drainWaiters();
    return rec === null ? null : makeRecord(rec, this.#serializer);
  }

  /** Deletes the claim so a retry may run. Throws `SEAWALL_LEASE_LOST` when no longer held. */
  release(lease) {
    this.#native.releaseRaw(this.#leaseArg(lease));
    if (wakeup.pending) drainWaiters();
  }

  /** Extends the claim to a full lease from now; returns ms until it expires. */
  renew(lease) {
    return this.#native.renewRaw(this.#leaseArg(lease));
  }

  /** Outcome unknown: keeps the claim until it expires (duplicates held off until then). */
  abandon(lease) {
    this.#native.abandonRaw(this.#leaseArg(lease));
  }

  /** Ms until the lease expires (0 once it has). */
  remaining(lease) {
    return this.#native.remaining(this.#leaseArg(lease));
  }

  /**
   * What the key holds, changing nothing: `{ state: 'absent' }`,
   * `{ state: 'in_progress', token, fingerprint, expiresIn }` or
   * `{ state: 'completed', record }`.
   */
  peek(key) {
    if (typeof key === 'string' && !isWellFormed(key)) throw malformedKey(key);
    const r = this.#native.peek(key);
    if (r.record !== undefined) return { state: r.state, record: makeRecord(r.record, this.#serializer) };
    return r;
  }

  /** Cumulative counts (what `seawall_idempotency_requests_total{result}` reports). */
  stats() {
    return this.#native.stats();
  }

  #leaseArg(lease) {
    const l = leaseNative(lease);
    if (l === undefined) throw argumentError(`lease = <${typeOf(lease)}>: expected a Lease from cache.begin()`);
    return l;
  }
}

// A lone surrogate has no UTF-8 form: Node-API would turn it into U+FFFD, so two different
// keys ('a\uD800', 'a\uD801') would share one entry. Refused, as Python refuses them.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
function isWellFormed(s) {
  return typeof s.isWellFormed === 'function' ? s.isWellFormed() : !LONE_SURROGATE.test(s);
}

function malformedKey(key) {
  return argumentError(`key = ${JSON.stringify(key)}: an idempotency key must be valid UTF-8 (no lone surrogates)`);
}

function outputArg(output) {
  if (output === null || typeof output !== 'object') {
    throw argumentError(`output = <${typeOf(output)}>: expected { result, contentType?, metadata? }`);
  }
  const { result, contentType = '', metadata } = output;
  if (!(typeof result === 'string' || result instanceof Uint8Array)) {
    throw argumentError(`output.result = <${typeOf(result)}>: expected a string or a Uint8Array`);
  }
  if (typeof contentType !== 'string') throw argumentError(`output.contentType = <${typeOf(contentType)}>: expected a string`);
  if (metadata !== undefined) {
    const ok =
      Array.isArray(metadata) &&
      metadata.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'string');
    if (!ok) throw argumentError('output.metadata: expected an array of [name, value] string pairs');
  }
  return { result, contentType, metadata };
}

// ---------------------------------------------------------------------------------------
// Registry, health, metrics
// ---------------------------------------------------------------------------------------

const PREVIOUS_RUN_HANGS = 'the previous run has not returned; no new run was started';

function checkError(err) {
  if (err instanceof Error) return err.message || err.name || 'Error';
  return String(err);
}

/**
 * Named breakers, idempotency caches and health checks, with one snapshot, one Prometheus
 * exposition and one health report for all of them (the core's `Registry`). Emits
 * `'event'` for every event of its breakers (`{ type: 'stateChange' | 'rejected' |
 * 'timeout' | 'fallback', breaker, at, ... }`) and of its idempotency caches (`{ type:
 * 'replay' | 'mismatch' | 'inProgress' | 'takeover' | 'leaseLost', cache, key, at, ... }`).
 */
class Registry extends EventEmitter {
  #native;
  #clock;
  #manual;
  #maxBreakers;
  #breakers = new Map(); // name -> { id, breaker }
  #caches = new Map(); // name -> IdempotencyCache
  #checks = new Map(); // name -> fn
  #running = new Map(); // name -> the promise of its current run (bounded by its timeout)
  #hanging = new Set(); // checks whose function has not returned (or settled) yet

  constructor(options = {}) {
    super();
    if (options === null || typeof options !== 'object') {
      throw argumentError(`options must be an object, got ${typeOf(options)}`);
    }
    const { clock, maxBreakers, ...rest } = options;
    const unknown = Object.keys(rest).find((k) => rest[k] !== undefined);
    if (unknown !== undefined) {
      const err = optionError(unknown, rest[unknown], 'unknown option');
      Object.setPrototypeOf(err, Error.prototype); // as the core's unknown-option errors
      throw err;
    }
    let manual;
    if (clock instanceof ManualClock) manual = clock;
    else if (clock !== undefined && !(clock instanceof SystemClock)) {
      throw optionError('clock', clock, 'expected a ManualClock or a SystemClock');
    }
    this.#native = new native.NativeRegistry(manual, maxBreakers);
    this.#clock = clock === undefined ? systemClock : clock;
    this.#manual = manual;
    this.#maxBreakers = maxBreakers === undefined ? 10_000 : maxBreakers;
    // Breakers queue rejections, timeouts and fallbacks only while someone listens.
    this.on('newListener', (event) => {
      if (event !== 'event') return;
      for (const { breaker } of this.#breakers.values()) breakerWatch(breaker, true);
      for (const cache of this.#caches.values()) cacheRewatch(cache, true);
    });
    this.on('removeListener', (event) => {
      if (event !== 'event') return;
      for (const { breaker } of this.#breakers.values()) breakerWatch(breaker, false);
      for (const cache of this.#caches.values()) cacheRewatch(cache, false);
    });
  }

  /** The clock the registry reads (check times; the default clock of what it creates). */
  get clock() {
    return this.#clock;
  }

  /**
   * The breaker named `name`, created with `options` if the registry has none (the options
   * of an existing breaker are kept). Its clock defaults to the registry's.
   */
  breaker(name, options = {}) {
    if (typeof name !== 'string') throw argumentError(`name = <${typeOf(name)}>: a breaker's name is a string`);
    if (options === null || typeof options !== 'object') {
      throw argumentError(`options must be an object, got ${typeOf(options)}`);
    }
    const known = this.#breakers.get(name);
    if (known !== undefined && this.#native.touch(name) === known.id) return known.breaker;
    const opts = options.clock === undefined ? { ...options, clock: this.#clock } : options;
    const { clock, isFailure, fallback, ...rest } = opts;
    let manual;
    if (clock instanceof ManualClock) manual = clock;
    else if (!(clock instanceof SystemClock)) throw optionError('clock', clock, 'expected a ManualClock or a SystemClock');
    const info = {};
    const nb = this.#native.breaker(name, rest, manual, info);
    const breaker = new CircuitBreaker(opts, kInternal, nb, this);
    this.#breakers.set(name, { id: info.id, breaker });
    if (this.#breakers.size > this.#maxBreakers) {
      // The core forgot the least recently used ones: forget them here too.
      const live = new Set(this.#native.breakerNames());
      for (const n of this.#breakers.keys()) if (!live.has(n)) this.#breakers.delete(n);
    }
    return breaker;
  }

  /** Forgets a breaker (a caller holding it keeps using it); false when there was none. */
  removeBreaker(name) {
    this.#breakers.delete(name);
    return this.#native.removeBreaker(name);
  }

  /** Names of the breakers the registry holds, sorted. */
  breakerNames() {
    return this.#native.breakerNames();
  }

  /**
   * The idempotency cache named `name`, created with `options` if the registry has none
   * (later options are ignored). Its clock defaults to the registry's. Its counts are in the
   * snapshot and the metrics (`seawall_idempotency_requests_total{cache,result}`).
   */
  idempotencyCache(name, options = {}) {
    if (typeof name !== 'string' || name === '') {
      throw argumentError(`name = ${typeof name === 'string' ? '""' : `<${typeOf(name)}>`}: a cache in a registry needs a name`);
    }
    const known = this.#caches.get(name);
    if (known !== undefined) return known;
    if (options === null || typeof options !== 'object') {
      throw argumentError(`options must be an object, got ${typeOf(options)}`);
    }
    const nat = this.#native;
    const make = (rest, manual, store, wake) => nat.idempotencyCache(name, rest, manual, store, wake);
    const cache = new IdempotencyCache({ clock: this.#clock, ...options, name }, kInternal, this, make);
    this.#caches.set(name, cache);
    return cache;
  }

  /** The idempotency caches of the registry, by name. */
  idempotencyCaches() {
    return new Map(this.#caches);
  }

  /**
   * Registers a health check: `fn()` (sync or async) passes unless it throws, rejects or
   * returns `false`. Options: `timeout` (ms, default 5000: a run that takes longer fails
   * and never holds `health()` up), `interval` (ms, default 5000: results are reused for
   * that long), `critical` (default true: a failure makes the service `down`; false:
   * `degraded`). Replaces a check of the same name.
   */
  addCheck(name, fn, options) {
    if (typeof name !== 'string') throw argumentError(`name = <${typeOf(name)}>: a check's name is a string`);
    if (typeof fn !== 'function') throw argumentError(`addCheck(name, fn) needs a function, got ${typeOf(fn)}`);
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw argumentError(`options must be an object, got ${typeOf(options)}`);
    }
    this.#native.addCheck(name, options);
    this.#checks.set(name, fn);
    return this;
  }

  /** Removes a check; false when there was none. */
  removeCheck(name) {
    this.#checks.delete(name);
    return this.#native.removeCheck(name);
  }

  /**
   * Runs the checks that are due (each bounded by its timeout; a check still running from
   * an earlier call is waited for, within its timeout), then reports:
   * `{ status: 'ok' | 'degraded' | 'down', checks: { name: {...} } }` (the core's shape).
   * Never rejects for a check's sake: a failing or hanging check is reported.
   */
  health() {
    flushAll(); // the breakers' batched successes (see CircuitBreaker#run)
    const due = this.#native.checksDue();
    for (let i = 0; i < due.length; i++) this.#start(due[i]);
    const waits = [...this.#running.values()];
    // The stores' checks (one per idempotency cache) are the core's, run on the thread pool.
    if (this.#caches.size > 0) waits.push(this.#native.runStoreChecks());
    if (waits.length === 0) return Promise.resolve(this.report());
    return Promise.all(waits).then(() => this.report());
  }

  /** The health report from the results at hand, running nothing. */
  report() {
    flushAll();
    return JSON.parse(this.#native.report());
  }

  /** Everything as JSON-able data (the core's snapshot: breakers by name, health). */
  snapshot() {
    flushAll();
    return JSON.parse(this.#native.snapshot());
  }

  /** Every metric in the Prometheus text exposition format (version 0.0.4). */
  prometheus() {
    flushAll();
    return this.#native.prometheus();
  }

  // Starts one due run of a check, bounded by its timeout.
  #start(due) {
    const { name, run, timeout } = due;
    const fn = this.#checks.get(name);
    const nat = this.#native;
    if (fn === undefined) {
      nat.finishCheck(name, run, 'no function is registered for this check');
      return;
    }
    if (this.#hanging.has(name)) {
      nat.finishCheck(name, run, PREVIOUS_RUN_HANGS);
      return;
    }
    let finish;
    const p = new Promise((resolve) => {
      let over = false;
      let timer;
      const manual = this.#manual;
      finish = (error, timedOut) => {
        if (over) return;
        over = true;
        if (timer !== undefined) {
          if (manual === undefined) clearTimeout(timer);
          else {
            clockTimers(manual).delete(timer);
            native.cancelTimer(manual, timer);
          }
        }
        if (timedOut) nat.timeOutCheck(name, run);
        else nat.finishCheck(name, run, error);
        if (this.#running.get(name) === p) this.#running.delete(name);
        resolve();
      };
      const onTimeout = () => {
        timer = undefined;
        finish(null, true);
      };
      if (manual === undefined) {
        timer = setTimeout(onTimeout, delayOf(timeout));
      } else {
        const id = native.scheduleTimer(opAfter(timeout, manual), manual);
        if (id !== 0) {
          timer = id;
          clockTimers(manual).set(id, onTimeout);
        }
      }
    });
    this.#running.set(name, p);
    this.#hanging.add(name);
    const settled = (error) => {
      this.#hanging.delete(name);
      finish(error, false);
    };
    let r;
    try {
      r = fn();
    } catch (err) {
      settled(checkError(err));
      return;
    }
    if (isThenable(r)) {
      Promise.resolve(r).then(
        (v) => settled(v === false ? 'the check returned false' : null),
        (err) => settled(checkError(err)),
      );
    } else {
      settled(r === false ? 'the check returned false' : null);
    }
  }
}

// --- ready-made endpoints ---

/**
 * A request handler serving `/health` (200 for `ok` and `degraded`, 503 for `down`, the
 * report as JSON) and `/metrics` (the Prometheus text, `text/plain; version=0.0.4`), for
 * `http.createServer(handler)` or as Express/Connect middleware (`app.use(handler)`: other
 * paths go to `next()`; without `next`, 404). Options: `healthPath`, `metricsPath`.
 */
function observabilityHandler(registry, options = {}) {
  if (!(registry instanceof Registry)) throw argumentError(`registry = <${typeOf(registry)}>: expected a Registry`);
  if (options === null || typeof options !== 'object') {
    throw argumentError(`options must be an object, got ${typeOf(options)}`);
  }
  checkOptionNames(options, ['healthPath', 'metricsPath'], 'observability.handler()');
  const { healthPath = '/health', metricsPath = '/metrics' } = options;
  for (const [k, v] of [
    ['healthPath', healthPath],
    ['metricsPath', metricsPath],
  ]) {
    if (typeof v !== 'string' || !v.startsWith('/')) throw optionError(k, v, 'expected a path starting with "/"');
  }
  const send = (req, res, status, type, body) => {
    res.statusCode = status;
    res.setHeader('Content-Type', type);
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  return function seawallObservability(req, res, next) {
    const url = typeof req.url === 'string' ? req.url : '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path !== healthPath && path !== metricsPath) {
      if (typeof next === 'function') return next();
      return send(req, res, 404, 'text/plain; charset=utf-8', 'not found\n');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(req, res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    }
    if (path === metricsPath) {
      let text;
      try {
        text = registry.prometheus();
      } catch (err) {
        return send(req, res, 500, 'text/plain; charset=utf-8', `${checkError(err)}\n`);
      }
      return send(req, res, 200, 'text/plain; version=0.0.4; charset=utf-8', text);
    }
    registry.health().then(
      (h) => send(req, res, h.status === 'down' ? 503 : 200, 'application/json; charset=utf-8', JSON.stringify(h)),
      (err) => send(req, res, 500, 'application/json; charset=utf-8', JSON.stringify({ status: 'down', error: checkError(err) })),
    );
    return undefined;
  };
}

/** Ready-made endpoints for a `Registry`. */
const observability = Object.freeze({ handler: observabilityHandler });

module.exports = {
  CircuitBreaker,
  Permit,
  IdempotencyCache,
  IdempotencyRecord,
  RedisStore,
  Lease,
  Waiter,
  RunContext,
  MemoryStore,
  Registry,
  observability,
  canonicalJson,
  fingerprint,
  jsonSerializer,
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
// For seawall's own tests (panic containment) and benchmarks (the cost of a call into the
// addon, each way it can be made): not part of the API, not enumerable.
Object.defineProperty(module.exports, '_internal', {
  value: Object.freeze({
    armPanic: native.armPanic,
    disarmPanics: native.disarmPanics,
    floor: Object.freeze({
      noop: native.floorNoop,
      u32: native.floorU32,
      external: native.floorExternal,
      makeExternal: native.floorMakeExternal,
      FloorObject: native.FloorObject,
      rawNoop: native.floorRawNoop,
    }),
  }),
});
