//! The native breaker and permits.
//!
//! `NativeBreaker` is built from a JS options object: every key goes through the core's
//! `BreakerConfig::set` in Node's style (camelCase names, milliseconds), so validation and
//! error messages are the core's. Two ways to get a permit:
//!
//! - `acquire()` / `settle(slot, outcome)` (`hot.rs`): the hot path used by `execute`. The permit is
//!   kept in a slot table on the native side and JS only sees a small integer, so no JS
//!   object is created per call and, after warm-up, nothing is allocated. The clock is read
//!   (start and end) only when the breaker needs durations.
//! - `acquirePermit()`: a `NativePermit` object for manual use (`tryAcquire`), which refuses
//!   a second outcome with `SEAWALL_PERMIT_CONSUMED`.
//!
//! Events are queued by a core listener (which runs synchronously on this thread) and taken
//! by JS with `takeEvents()`; `acquire`, `settle` and the permit methods report whether any
//! are pending so the hot path needs no extra call.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use seawall::{
    BreakerConfig, CircuitBreaker, DurationUnit, Event, ListenerId, Naming, Outcome, SharedPermit, State, StateChange,
    Style,
};

use crate::clock::ManualClock;
use crate::errors::{config_value, duration_ms, guard, js_error, opt_duration_arg, throw};
use crate::hot;

/// Events queued by the core listeners until JS takes them: state changes always; the
/// other kinds (rejections, timeouts, fallbacks) while JS watches them (`watchAll`).
#[derive(Default)]
struct EventQueue {
    pending: AtomicBool,
    queue: Mutex<Vec<Event>>,
}

impl EventQueue {
    fn push(&self, e: &Event) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.push(e.clone());
        self.pending.store(true, Ordering::Release);
    }

    #[inline]
    fn pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    fn take(&self) -> Vec<Event> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        self.pending.store(false, Ordering::Release);
        std::mem::take(&mut *q)
    }
}

/// An event as JS takes it (the JS layer builds the objects it emits from these):
/// `kind` is `state_change` (`from`, `to`, `reason`), `rejected` (`state`, `retryAfter`),
/// `timeout` (`took`) or `fallback`; `at` is ms on the breaker's clock.
#[napi(object)]
pub struct BreakerEvent {
    pub kind: String,
    pub breaker: String,
    pub at: f64,
    pub from: Option<String>,
    pub to: Option<String>,
    pub reason: Option<String>,
    pub state: Option<String>,
    pub retry_after: Option<f64>,
    pub took: Option<f64>,
}

impl BreakerEvent {
    fn of(e: Event) -> Self {
        let mut out = BreakerEvent {
            kind: e.kind().to_owned(),
            breaker: String::new(),
            at: 0.0,
            from: None,
            to: None,
            reason: None,
            state: None,
            retry_after: None,
            took: None,
        };
        match e {
            Event::StateChange(StateChange { breaker, from, to, at, reason }) => {
                out.breaker = breaker.to_string();
                out.at = duration_ms(at);
                out.from = Some(from.as_str().to_owned());
                out.to = Some(to.as_str().to_owned());
                out.reason = Some(reason.as_str().to_owned());
            }
            Event::Rejected { breaker, state, retry_after, at } => {
                out.breaker = breaker.to_string();
                out.at = duration_ms(at);
                out.state = Some(state.as_str().to_owned());
                out.retry_after = Some(duration_ms(retry_after));
            }
            Event::Timeout { breaker, took, at } => {
                out.breaker = breaker.to_string();
                out.at = duration_ms(at);
                out.took = Some(duration_ms(took));
            }
            Event::Fallback { breaker, at } => {
                out.breaker = breaker.to_string();
                out.at = duration_ms(at);
            }
        }
        out
    }
}

/// A breaker snapshot as JS sees it (durations in ms; `retryAfter` is `Infinity` when forced open).
#[napi(object)]
pub struct BreakerSnapshot {
    pub name: String,
    pub state: String,
    pub successes: f64,
    pub failures: f64,
    pub slow: f64,
    pub ignored: f64,
    pub rejected: f64,
    pub timeouts: f64,
    pub failure_rate: f64,
    pub slow_call_rate: f64,
    pub window_calls: f64,
    pub consecutive_failures: u32,
    pub retry_after: f64,
    pub half_open_in_flight: u32,
    /// Rejected calls answered by a fallback (degraded service).
    pub fallbacks: f64,
    /// Whether an open breaker makes the service `down` (true) or `degraded` (false).
    pub critical: bool,
}

/// A JS value already built (an error object), returned as is.
pub struct RawValue(pub(crate) sys::napi_value);

impl ToNapiValue for RawValue {
    unsafe fn to_napi_value(_env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        Ok(val.0)
    }
}

impl TypeName for RawValue {
    fn type_name() -> &'static str {
        "Error"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

struct Slot {
    permit: SharedPermit,
    start: Duration,
}

#[derive(Default)]
struct Slots {
    entries: Vec<Option<Slot>>,
    free: Vec<u32>,
}

impl Slots {
    fn insert(&mut self, slot: Slot) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = Some(slot);
                i
            }
            None => {
                self.entries.push(Some(slot));
                (self.entries.len() - 1) as u32
            }
        }
    }

    fn take(&mut self, i: u32) -> Option<Slot> {
        let s = self.entries.get_mut(i as usize)?.take()?;
        self.free.push(i);
        Some(s)
    }
}

/// Largest slot index that fits `(slot << 1) | flag` in an i32.
const MAX_SLOTS: u32 = (1 << 30) - 1;

pub(crate) fn outcome_of(code: u32) -> Option<Outcome> {
    match code {
        0 => Some(Outcome::Success),
        1 => Some(Outcome::Failure),
        2 => Some(Outcome::Timeout),
        3 => Some(Outcome::Ignore),
        _ => None, // cancel
    }
}

/// What the class and the hot-path functions share (one JS thread, hence `Rc`/`RefCell`).
pub(crate) struct Core {
    pub(crate) breaker: CircuitBreaker,
    events: Arc<EventQueue>,
    slots: RefCell<Slots>,
    needs_duration: bool,
    /// Calls are timed from `acquire`: durations are needed, or the breaker has a
    /// `timeout` (a timed-out call then records how long it ran, for the 'timeout' event).
    timed: bool,
    listener: ListenerId,
    /// The listener of every kind of event, while JS watches them.
    all: Cell<Option<ListenerId>>,
    /// What a rejection returned by the hot `acquire` carries besides its message:
    /// `[retryAfter (ms), state index]`, read by JS through an external `Float64Array`
    /// (`sharedMemory()`), so JS builds the error without another crossing.
    pub(crate) scratch: [Cell<f64>; 2],
    /// JS holds `scratch` (and reads rejections from it); until then `acquire` returns
    /// the rejection as a native `Error`.
    pub(crate) shared: Cell<bool>,
    /// The state and wait of the last rejection whose message `acquire` returned: when the
    /// next one is the same (its message would be too), `acquire` returns `true` and JS
    /// reuses the message it has (open rejections decide on a coarse clock, so this is the
    /// common case).
    pub(crate) last_rejection: Cell<Option<(State, Duration)>>,
}

impl Drop for Core {
    fn drop(&mut self) {
        self.breaker.remove_listener(self.listener);
        if let Some(id) = self.all.take() {
            self.breaker.remove_listener(id);
        }
    }
}

impl Core {
    #[inline]
    pub(crate) fn events_pending(&self) -> bool {
        self.events.pending()
    }

    /// A permit kept in a slot: `Ok((slot << 1) | eventsPending)`, or the rejection.
    #[inline]
    pub(crate) fn acquire(&self) -> std::result::Result<i32, seawall::Error> {
        match self.breaker.try_acquire_shared() {
            Ok(permit) => {
                let start = if self.timed { self.breaker.clock().now() } else { Duration::ZERO };
                let mut slots = self.slots.borrow_mut();
                let slot = slots.insert(Slot { permit, start });
                if slot > MAX_SLOTS {
                    // Over a billion calls in flight: refuse rather than wrap around.
                    let _ = slots.take(slot);
                    return Err(seawall::Error::InvalidArgument("too many calls in flight".into()));
                }
                Ok(((slot << 1) | u32::from(self.events.pending())) as i32)
            }
            Err(rejected) => Err(rejected.into()),
        }
    }

    /// Records `outcome` (0 success, 1 failure, 2 timeout, 3 ignore, 4 cancel) on the permit
    /// in `slot`, timed since `acquire` when the breaker needs durations. Returns whether
    /// events are pending.
    #[inline]
    pub(crate) fn settle(&self, slot: u32, outcome: u32) -> std::result::Result<bool, seawall::Error> {
        let taken = self.slots.borrow_mut().take(slot);
        let Some(Slot { permit, start }) = taken else {
            return Err(seawall::Error::InvalidArgument(format!("no permit in slot {slot}")));
        };
        match outcome_of(outcome) {
            Some(o) => {
                let took = if (self.needs_duration && o != Outcome::Ignore) || (self.timed && o == Outcome::Timeout) {
                    self.breaker.clock().now().saturating_sub(start)
                } else {
                    Duration::ZERO
                };
                permit.record(o, took)?;
            }
            None => permit.cancel()?,
        }
        Ok(self.events.pending())
    }

    /// The state as an index into `STATES` (JS keeps the same table).
    #[inline]
    pub(crate) fn state_index(&self) -> u32 {
        state_index(self.breaker.state())
    }
}

/// A state as an index into `STATES` (JS keeps the same table).
pub(crate) fn state_index(s: State) -> u32 {
    match s {
        State::Closed => 0,
        State::Open => 1,
        State::HalfOpen => 2,
        State::ForcedOpen => 3,
        State::Disabled => 4,
    }
}

/// The native circuit breaker behind the JS `CircuitBreaker` (cold paths; the hot path is
/// in `hot.rs`).
#[napi]
pub struct NativeBreaker {
    core: Rc<Core>,
}

#[napi]
impl NativeBreaker {
    /// Builds a breaker from `options` (camelCase names, ms). `undefined` values are
    /// treated as absent; the `clock` key is skipped (pass the clock as the 2nd argument).
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, options: Option<Object<'_>>, clock: Option<&ManualClock>) -> Result<Self> {
        guard(env.raw(), || Self::build(env, options, clock))
    }

    /// The hot-path functions bound to this breaker: `{ acquire, settle, state, pending }`
    /// (see `hot.rs`). JS keeps them and calls them without a receiver.
    #[napi(catch_unwind)]
    pub fn hot_path(&self, env: Env) -> Result<Object<'_>> {
        let mut obj = Object::new(&env)?;
        for (name, f) in hot::FUNCTIONS {
            let value = hot::bound_function(env.raw(), name, *f, &self.core)?;
            obj.set(name, RawValue(value))?;
        }
        Ok(obj)
    }

    /// The memory JS reads without calling in: `[word, scratch]`, two external
    /// `ArrayBuffer`s, or `null` where this Node refuses external buffers (JS then takes
    /// the native path for every call).
    ///
    /// - `word` (8 bytes) is the core's state word (`CircuitBreaker::state_word`:
    ///   `state | epoch << 3`, native endianness). JS admits a call itself when it reads
    ///   closed (`word & 7 == 0`), which has no side effect in the core, and records it
    ///   with `successes(lo, hi, n)` / `record(lo, hi, outcome)` (`hot.rs`). Its finalizer
    ///   drops a handle to the breaker, which keeps the word alive.
    /// - `scratch` (2 × f64): `[retryAfter, stateIndex]` of the last rejection `acquire`
    ///   returned as a message string. Its finalizer drops an `Rc` of the core.
    #[napi(catch_unwind)]
    pub fn shared_memory(&self, env: Env) -> Result<Option<Object<'_>>> {
        guard(env.raw(), || {
            let core = &self.core;
            let Some(word) = hot::word_buffer(env.raw(), &core.breaker)? else { return Ok(None) };
            let Some(scratch) = hot::scratch_buffer(env.raw(), core)? else { return Ok(None) };
            core.shared.set(true);
            let mut obj = Object::new(&env)?;
            obj.set("word", RawValue(word))?;
            obj.set("scratch", RawValue(scratch))?;
            Ok(Some(obj))
        })
    }

    /// A permit object for manual use, or the rejection (as the hot `acquire` returns it).
    #[napi(catch_unwind)]
    pub fn acquire_permit(&self, env: Env) -> Result<Either<NativePermit, RawValue>> {
        let core = &self.core;
        guard(env.raw(), || match core.breaker.try_acquire_shared() {
            Ok(permit) => {
                let start = if core.needs_duration { core.breaker.clock().now() } else { Duration::ZERO };
                Ok(Either::A(NativePermit {
                    permit,
                    start,
                    needs_duration: core.needs_duration,
                    events: Arc::clone(&core.events),
                }))
            }
            // As the hot `acquire`: the message (or `true`: the last one) once JS holds
            // the scratch memory, else the native error.
            Err(rejected) if core.shared.get() => Ok(Either::B(RawValue(hot::rejection(env.raw(), core, &rejected)?))),
            Err(rejected) => Ok(Either::B(RawValue(js_error(env.raw(), &rejected.into())?))),
        })
    }

    /// Events queued since the last call, in order, or `null`.
    #[napi(catch_unwind)]
    pub fn take_events(&self) -> Option<Vec<BreakerEvent>> {
        if !self.core.events.pending() {
            return None;
        }
        let events = self.core.events.take();
        if events.is_empty() {
            return None;
        }
        Some(events.into_iter().map(BreakerEvent::of).collect())
    }

    /// Queue rejections, timeouts and fallbacks too (`true`), or state changes only. The
    /// core reads the clock and queues an event per rejection and timeout only while some
    /// listener watches them, so JS turns this on only while it has such listeners.
    #[napi(catch_unwind)]
    pub fn watch_all(&self, env: Env, on: bool) -> Result<()> {
        guard(env.raw(), || {
            let core = &self.core;
            match (on, core.all.get()) {
                (true, None) => {
                    let queue = Arc::clone(&core.events);
                    let id = core.breaker.on_event(move |e| {
                        if !matches!(e, Event::StateChange(_)) {
                            queue.push(e);
                        }
                    });
                    core.all.set(Some(id));
                }
                (false, Some(id)) => {
                    core.breaker.remove_listener(id);
                    core.all.set(None);
                }
                _ => {}
            }
            Ok(())
        })
    }

    /// Counts a rejected call answered by a fallback (cold path of `hotPath().fallback`).
    #[napi(catch_unwind)]
    pub fn record_fallback(&self, env: Env) -> Result<bool> {
        guard(env.raw(), || {
            self.core.breaker.record_fallback();
            Ok(self.core.events.pending())
        })
    }

    /// Whether an open breaker makes the service `down` (the `critical` option).
    #[napi(getter, catch_unwind)]
    pub fn critical(&self) -> bool {
        self.core.breaker.config().critical
    }

    #[napi(getter, catch_unwind)]
    pub fn name(&self) -> String {
        self.core.breaker.name().to_owned()
    }

    /// The per-call time limit (`timeout` option) in ms, or `null` when not set.
    #[napi(getter, catch_unwind)]
    pub fn timeout(&self) -> Option<f64> {
        self.core.breaker.config().timeout.map(duration_ms)
    }

    /// True when a success can change the state: with a failure-rate (or slow-call-rate)
    /// threshold, a success can complete the window's minimum calls and open the breaker.
    /// Without one, a success in the closed state only counts and resets the consecutive
    /// failures. JS records its batch of successes before admitting another call when true.
    /// The core decides (`CircuitBreaker::success_can_trip`).
    #[napi(getter, catch_unwind)]
    pub fn success_can_transition(&self) -> bool {
        self.core.breaker.success_can_trip()
    }

    /// True when calls are timed (a slow-call threshold is set).
    #[napi(getter, catch_unwind)]
    pub fn needs_duration(&self) -> bool {
        self.core.needs_duration
    }

    /// Milliseconds on the breaker's clock.
    #[napi(catch_unwind)]
    pub fn now(&self) -> f64 {
        duration_ms(self.core.breaker.clock().now())
    }

    #[napi(catch_unwind)]
    pub fn snapshot(&self, env: Env) -> Result<BreakerSnapshot> {
        let s = guard(env.raw(), || Ok(self.core.breaker.snapshot()))?;
        Ok(BreakerSnapshot {
            name: s.name,
            state: s.state.as_str().to_owned(),
            successes: s.successes as f64,
            failures: s.failures as f64,
            slow: s.slow as f64,
            ignored: s.ignored as f64,
            rejected: s.rejected as f64,
            timeouts: s.timeouts as f64,
            failure_rate: s.failure_rate,
            slow_call_rate: s.slow_call_rate,
            window_calls: s.window_calls as f64,
            consecutive_failures: s.consecutive_failures,
            retry_after: duration_ms(s.retry_after),
            half_open_in_flight: s.half_open_in_flight,
            fallbacks: s.fallbacks as f64,
            critical: s.critical,
        })
    }

    #[napi(catch_unwind)]
    pub fn force_open(&self, env: Env) -> Result<()> {
        guard(env.raw(), || {
            self.core.breaker.force_open();
            Ok(())
        })
    }

    #[napi(catch_unwind)]
    pub fn disable(&self, env: Env) -> Result<()> {
        guard(env.raw(), || {
            self.core.breaker.disable();
            Ok(())
        })
    }

    #[napi(catch_unwind)]
    pub fn reset(&self, env: Env) -> Result<()> {
        guard(env.raw(), || {
            self.core.breaker.reset();
            Ok(())
        })
    }
}

impl NativeBreaker {
    fn build(env: Env, options: Option<Object<'_>>, clock: Option<&ManualClock>) -> Result<Self> {
        let config = Self::config(env, options, clock)?;
        let breaker = CircuitBreaker::new(config).map_err(|e| throw(env.raw(), e.into()))?;
        Ok(Self::wrap(breaker))
    }

    /// The breaker config of a JS options object: every key through the core's `set`
    /// (camelCase, ms), `undefined` values and the `clock` key skipped.
    pub(crate) fn config(env: Env, options: Option<Object<'_>>, clock: Option<&ManualClock>) -> Result<BreakerConfig> {
        let mut config = BreakerConfig::with_style(Style { naming: Naming::Camel, unit: DurationUnit::Millis });
        if let Some(c) = clock {
            config = config.with_clock(c.shared());
        }
        if let Some(opts) = options {
            for key in Object::keys(&opts)? {
                if key == "clock" {
                    continue;
                }
                let Some(v) = opts.get::<Unknown<'_>>(&key)? else { continue };
                if v.get_type()? == ValueType::Undefined {
                    continue;
                }
                let value = config_value(&v)?;
                config.set(&key, value).map_err(|e| throw(env.raw(), e.into()))?;
            }
        }
        Ok(config)
    }

    /// A JS-side handle on a core breaker (a new one, or one a registry holds): its own
    /// event queue and listener.
    pub(crate) fn wrap(breaker: CircuitBreaker) -> Self {
        let events = Arc::new(EventQueue::default());
        let queue = Arc::clone(&events);
        let listener = breaker.on_state_change(move |e| queue.push(&Event::StateChange(e.clone())));
        let needs_duration = breaker.needs_duration();
        let timed = needs_duration || breaker.config().timeout.is_some();
        let core = Core {
            breaker,
            events,
            slots: RefCell::new(Slots::default()),
            needs_duration,
            timed,
            listener,
            all: Cell::new(None),
            scratch: [Cell::new(0.0), Cell::new(0.0)],
            shared: Cell::new(false),
            last_rejection: Cell::new(None),
        };
        Self { core: Rc::new(core) }
    }
}

/// A permit for one call (manual use). Record exactly one outcome, or cancel it.
#[napi]
pub struct NativePermit {
    permit: SharedPermit,
    start: Duration,
    needs_duration: bool,
    events: Arc<EventQueue>,
}

#[napi]
impl NativePermit {
    fn record(&self, env: Env, outcome: Outcome, ms: Option<Unknown<'_>>) -> Result<bool> {
        let took = match opt_duration_arg(env.raw(), "ms", ms.as_ref())? {
            Some(d) => d,
            None if self.needs_duration => self.permit.breaker().clock().now().saturating_sub(self.start),
            None => Duration::ZERO,
        };
        guard(env.raw(), || self.permit.record(outcome, took).map_err(|e| throw(env.raw(), e)))?;
        Ok(self.events.pending())
    }

    /// The call succeeded after `ms` (default: measured since the permit was issued).
    #[napi(catch_unwind)]
    pub fn success(&self, env: Env, ms: Option<Unknown<'_>>) -> Result<bool> {
        self.record(env, Outcome::Success, ms)
    }

    /// The call failed after `ms`.
    #[napi(catch_unwind)]
    pub fn failure(&self, env: Env, ms: Option<Unknown<'_>>) -> Result<bool> {
        self.record(env, Outcome::Failure, ms)
    }

    /// The call timed out after `ms` (a failure, also counted as a timeout).
    #[napi(catch_unwind)]
    pub fn timeout(&self, env: Env, ms: Option<Unknown<'_>>) -> Result<bool> {
        self.record(env, Outcome::Timeout, ms)
    }

    /// The call ended with an error the user excluded: counted only in `ignored`.
    #[napi(catch_unwind)]
    pub fn ignore(&self, env: Env) -> Result<bool> {
        guard(env.raw(), || self.permit.record(Outcome::Ignore, Duration::ZERO).map_err(|e| throw(env.raw(), e)))?;
        Ok(self.events.pending())
    }

    /// Gives the permit back without an outcome (frees a half-open slot, counts nowhere).
    #[napi(catch_unwind)]
    pub fn cancel(&self, env: Env) -> Result<bool> {
        guard(env.raw(), || self.permit.cancel().map_err(|e| throw(env.raw(), e)))?;
        Ok(self.events.pending())
    }

    /// True when this permit is a half-open probe.
    #[napi(getter, catch_unwind)]
    pub fn is_probe(&self) -> bool {
        self.permit.is_probe()
    }

    /// True once an outcome was recorded or the permit was cancelled.
    #[napi(getter, catch_unwind)]
    pub fn done(&self) -> bool {
        self.permit.is_done()
    }
}
