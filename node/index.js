'use strict';
// seawall for Node.js: a thin layer over the native addon (the Rust core).
//
// Every decision (state machine, option validation, error messages and codes) is made by
// the core. This file turns a permit + outcome protocol into `execute`/`wrap`, applies the
// JS-only options (`clock`, `isFailure`, `fallback`) and emits the core's state-change
// events through an EventEmitter.

const { EventEmitter } = require('node:events');
const path = require('node:path');

const native = loadNative();
const { NativeBreaker, NativePermit, ManualClock, SystemClock } = native;

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
    this.#isFailure = isFailure;
    this.#fallback = fallback;
  }

  /** The breaker's name. */
  get name() {
    return this.#native.name;
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
  version,
};
