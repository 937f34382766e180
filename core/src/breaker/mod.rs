//! The circuit breaker.
//!
//! A call asks for a [`Permit`]; the caller records exactly one outcome on it. The state
//! lives in one atomic word, `(epoch << 3) | state`, so the closed path is a load to admit;
//! recording a success bumps this thread's own counter (no locked instruction, no shared
//! cache line: see `counters.rs`) and reads the state word and the consecutive count, with
//! no lock, no allocation and no clock read unless the policy needs time (a time window).
//! A `parking_lot` mutex is taken only for transitions and for the half-open probe slots.
//! Each transition bumps the epoch; a permit remembers the epoch that issued it, so a late
//! outcome updates metrics but never changes the state that followed.
//!
//! Time-driven changes (open -> half-open, probe timeout) happen lazily, when the breaker is
//! touched, so they are exact under [`ManualClock`](crate::ManualClock). The hot paths that
//! need the time (an open breaker's rejection, a time window's bucket) read the clock's
//! cheap [`now_coarse`](crate::Clock::now_coarse) and fall back to `now()` whenever the
//! coarse reading's lag could change the answer, so they decide as a precise reading would.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use seawall::{BreakerConfig, CircuitBreaker, ManualClock, State};
//!
//! let clock = ManualClock::shared();
//! let breaker = CircuitBreaker::new(BreakerConfig {
//!     consecutive_failures: Some(2),
//!     open_duration: Duration::from_secs(1),
//!     ..BreakerConfig::named("db")
//! }.with_clock(clock.clone())).unwrap();
//!
//! for _ in 0..2 {
//!     breaker.try_acquire().unwrap().failure(Duration::ZERO);
//! }
//! assert_eq!(breaker.state(), State::Open);
//! assert!(breaker.try_acquire().is_err());
//! clock.advance(Duration::from_secs(1));
//! breaker.try_acquire().unwrap().success(Duration::ZERO); // the probe
//! assert_eq!(breaker.state(), State::Closed);
//! ```

mod config;
mod counters;
mod events;
mod permit;
mod window;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

pub use config::{BreakerConfig, WindowKind, MAX_HALF_OPEN_CALLS, MAX_WINDOW_BUCKETS, MAX_WINDOW_SIZE, OPTION_NAMES};
pub use events::{Event, Listener, ListenerId, Reason, StateChange};
pub use permit::{Permit, SharedPermit};
pub use window::Totals;

use crate::clock::{nanos, SharedClock};
use crate::error::{ConfigError, Rejected};
use counters::{FAILURES, IGNORED, REJECTED, SLOW, SUCCESSES, TIMEOUTS};
use events::Events;
use window::{CountWindow, TimeWindow, Window};

/// A breaker state. Spelled the same in every language ([`State::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// Calls flow; outcomes are counted.
    Closed = 0,
    /// Calls are rejected until `open_duration` passes.
    Open = 1,
    /// A few probes are admitted to test recovery.
    HalfOpen = 2,
    /// Rejects everything until `reset()`.
    ForcedOpen = 3,
    /// Admits everything and records only metrics.
    Disabled = 4,
}

impl State {
    /// `"closed"`, `"open"`, `"half_open"`, `"forced_open"`, `"disabled"`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
        }
    }

    /// Parses [`State::as_str`] back.
    pub fn parse(s: &str) -> Option<State> {
        [State::Closed, State::Open, State::HalfOpen, State::ForcedOpen, State::Disabled]
            .into_iter()
            .find(|st| st.as_str() == s)
    }

    fn from_word(w: u64) -> State {
        match w & 7 {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            _ => State::Disabled,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn epoch_of(w: u64) -> u64 {
    w >> 3
}

fn word(epoch: u64, s: State) -> u64 {
    (epoch << 3) | s as u64
}

/// The low half of the consecutive-failure word: the length of the run.
const RUN_MASK: u64 = 0xffff_ffff;

/// The high half of the consecutive-failure word: the epoch the run counts for (its low 32
/// bits; an outcome would have to be late by 2^32 transitions to be mistaken for current).
fn run_tag(epoch: u64) -> u64 {
    (epoch & RUN_MASK) << 32
}

/// What a call ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded.
    Success,
    /// The call failed.
    Failure,
    /// The call timed out: a failure, also counted in `timeouts`.
    Timeout,
    /// An error the user excluded: counted nowhere but in metrics (`ignored`).
    Ignore,
}

impl Outcome {
    /// `"success"`, `"failure"`, `"timeout"`, `"ignore"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Timeout => "timeout",
            Outcome::Ignore => "ignore",
        }
    }

    /// Parses [`Outcome::as_str`] back.
    pub fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Success, Outcome::Failure, Outcome::Timeout, Outcome::Ignore]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// Cumulative counts, since the breaker was built (not cleared by `reset`). The per-call
/// ones are striped per thread (see `counters.rs`); the rare ones are plain atomics.
#[derive(Default)]
struct Counters {
    calls: counters::Counters,
    fallbacks: AtomicU64,
    /// State changes, `[from][to]`.
    transitions: [[AtomicU64; STATES]; STATES],
}

/// Keeps a value alone on its cache lines, so writing it does not slow down readers of its
/// neighbours (the state word is read by every call; the consecutive count is written by
/// every failure).
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Number of states (for per-transition counters).
const STATES: usize = 5;

impl State {
    /// Every state, in `as usize` order.
    pub const ALL: [State; STATES] = [State::Closed, State::Open, State::HalfOpen, State::ForcedOpen, State::Disabled];
}

/// A point-in-time view of a breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The breaker's name.
    pub name: String,
    /// Current state (time-driven changes applied).
    pub state: State,
    /// Successful calls, ever.
    pub successes: u64,
    /// Failed calls (timeouts included), ever.
    pub failures: u64,
    /// Slow calls (successful or failed), ever.
    pub slow: u64,
    /// Calls recorded as ignored, ever.
    pub ignored: u64,
    /// Calls rejected, ever.
    pub rejected: u64,
    /// Calls recorded as timeouts (also in `failures`), ever.
    pub timeouts: u64,
    /// Failures / recorded calls in the current window (0 when empty or unused).
    pub failure_rate: f64,
    /// Slow calls / recorded calls in the current window (0 when empty or unused).
    pub slow_call_rate: f64,
    /// Recorded calls in the current window.
    pub window_calls: u64,
    /// Failures in a row, in the closed state.
    pub consecutive_failures: u32,
    /// Time until probes are admitted: zero unless open; `Duration::MAX` when forced open.
    pub retry_after: Duration,
    /// Probes out now (half-open).
    pub half_open_in_flight: u32,
    /// Rejected calls answered by a fallback (degraded service), ever.
    pub fallbacks: u64,
    /// State changes so far, as `(from, to, count)` for every pair that happened.
    pub transitions: Vec<(State, State, u64)>,
    /// Whether an open breaker makes the service `down` (true) or `degraded` (false).
    pub critical: bool,
}

/// A permit's identity: the epoch that issued it and, in half-open, its probe number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    epoch: u64,
    probe: u64,
}

const NO_PROBE: u64 = 0;

/// What the out-of-line acquire paths answer, in two words (returned in registers): a
/// ticket `(epoch, probe)`, or a refusal `(REFUSED - state, retry_after in ns)`. The
/// caller builds the `Rejected` itself, inline, so no large value is copied between frames.
#[derive(Clone, Copy)]
struct Admission(u64, u64);

/// Epochs stay far below this (they are the state word shifted right by 3).
const REFUSED: u64 = u64::MAX;

impl Admission {
    #[inline(always)]
    fn ticket(t: Ticket) -> Self {
        Admission(t.epoch, t.probe)
    }

    #[inline(always)]
    fn refused(state: State, retry_after: Duration) -> Self {
        // Only forced_open says "forever" (Duration::MAX); every other wait fits in u64 ns.
        Admission(REFUSED - state as u64, nanos(retry_after))
    }

    #[inline(always)]
    fn into_result(self, name: &Arc<str>) -> Result<Ticket, Rejected> {
        if self.0 <= REFUSED - STATES as u64 {
            return Ok(Ticket { epoch: self.0, probe: self.1 });
        }
        let state = State::from_word(REFUSED - self.0);
        let retry_after = if state == State::ForcedOpen { Duration::MAX } else { Duration::from_nanos(self.1) };
        Err(Rejected { breaker: Arc::clone(name), state, retry_after })
    }
}

struct Probe {
    id: u64,
    issued_at: Duration,
}

/// What changes only under the transition lock.
struct Locked {
    /// The open duration used by the last opening (grows by backoff, reset by closing).
    current_open: Duration,
    probes: Vec<Probe>,
    next_probe: u64,
    probe_successes: u32,
}

struct Inner {
    name: Arc<str>,
    config: BreakerConfig,
    consecutive_threshold: u32,
    min_calls: u64,
    open_max: Duration,
    probe_timeout: Duration,
    /// `clock.coarse_lag()` in nanoseconds (saturating), read once.
    coarse_lag: u64,
    /// `clock.coarse_nanos_fn()`, read once.
    coarse_nanos: Option<fn() -> u64>,
    word: AtomicU64,
    open_until: AtomicU64,
    /// When the breaker last opened (ns): bounds a coarse rejection's `retry_after`.
    opened_at: AtomicU64,
    /// Failures in a row, tagged with the epoch they count for (see [`run_tag`]).
    consecutive: Padded<AtomicU64>,
    /// The rate window of the current closed epoch (`None` without a rate policy).
    window: Option<ArcSwap<EpochWindow>>,
    counts: Counters,
    locked: Mutex<Locked>,
    events: Events,
}

/// A circuit breaker. Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker").field("name", &self.name()).field("state", &self.state()).finish()
    }
}

/// What `call` returns when it does not return the closure's value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError<E> {
    /// The breaker refused; the closure did not run.
    #[error(transparent)]
    Rejected(Rejected),
    /// The closure ran and failed.
    #[error("{0}")]
    Failed(E),
}

/// A rate window and the closed epoch it counts for: each close starts a new one.
struct EpochWindow {
    epoch: u64,
    window: Window,
}

impl EpochWindow {
    fn new(config: &BreakerConfig, epoch: u64) -> Self {
        let window = match config.window {
            WindowKind::Count => Window::Count(CountWindow::new(config.window_size)),
            WindowKind::Time => Window::Time(TimeWindow::new(config.window_duration, config.window_buckets)),
        };
        EpochWindow { epoch, window }
    }
}

impl CircuitBreaker {
    /// Builds a breaker, refusing an invalid configuration with an error that names the
    /// field and the value.
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let window = config.uses_window().then(|| ArcSwap::from_pointee(EpochWindow::new(&config, 0)));
        let min_calls = match config.window {
            // A count window never holds more than window_size calls.
            WindowKind::Count => config.minimum_calls.min(config.window_size),
            WindowKind::Time => config.minimum_calls,
        };
        let inner = Inner {
            name: Arc::from(config.name.as_str()),
            consecutive_threshold: config.effective_consecutive_failures().unwrap_or(0),
            min_calls: u64::from(min_calls),
            open_max: config.effective_open_duration_max(),
            probe_timeout: config.effective_probe_timeout(),
            coarse_lag: nanos(config.clock.coarse_lag()),
            coarse_nanos: config.clock.coarse_nanos_fn(),
            word: AtomicU64::new(word(0, State::Closed)),
            open_until: AtomicU64::new(0),
            opened_at: AtomicU64::new(0),
            consecutive: Padded(AtomicU64::new(run_tag(0))),
            window,
            counts: Counters::default(),
            locked: Mutex::new(Locked {
                current_open: config.open_duration,
                probes: Vec::with_capacity(config.half_open_max_calls as usize),
                next_probe: 1,
                probe_successes: 0,
            }),
            events: Events::default(),
            config,
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The validated configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.inner.config
    }

    /// The clock the breaker reads (wrappers measure call durations on it).
    pub fn clock(&self) -> &SharedClock {
        &self.inner.config.clock
    }

    /// True when outcomes need a measured duration (a slow-call threshold is set).
    /// Wrappers skip the two clock reads per call otherwise.
    #[inline]
    pub fn needs_duration(&self) -> bool {
        self.inner.config.slow_call_duration.is_some()
    }

    /// Asks for a permit. The closed path is one atomic load.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        self.inner.acquire().map(|t| Permit::new(self, t))
    }

    /// Like [`try_acquire`](Self::try_acquire), but the permit owns a handle to the
    /// breaker, can be moved across threads and refuses a second outcome at run time.
    /// Bindings use this one.
    #[inline]
    pub fn try_acquire_shared(&self) -> Result<SharedPermit, Rejected> {
        self.inner.acquire().map(|t| SharedPermit::new(self.clone(), t))
    }

    /// The state word, for bindings that admit calls without calling in: `state | epoch << 3`
    /// with state 0 = closed, 1 = open, 2 = half-open, 3 = forced open, 4 = disabled.
    ///
    /// Why: admitting a call in the closed state has no side effect (it is one load of this
    /// word), so a binding whose calls are expensive to make (a Node-API crossing costs more
    /// than the whole decision) may read the word itself, through memory it shares with its
    /// language, and admit the call exactly as [`try_acquire`](Self::try_acquire) would:
    /// when `word & 7 == 0`, with epoch `word >> 3`. Every other state still goes through
    /// `try_acquire`. Record such calls with [`record_successes`](Self::record_successes)
    /// or an outcome on a permit from [`permit_for_epoch`](Self::permit_for_epoch). The word
    /// lives as long as any handle to the breaker. Read it only (with acquire ordering).
    ///
    /// ```
    /// use seawall::{BreakerConfig, CircuitBreaker};
    /// let b = CircuitBreaker::new(BreakerConfig::default()).unwrap();
    /// let w = b.state_word().load(std::sync::atomic::Ordering::Acquire);
    /// assert_eq!(w & 7, 0); // closed
    /// b.record_successes(w >> 3, 3);
    /// assert_eq!(b.snapshot().successes, 3);
    /// ```
    #[inline]
    pub fn state_word(&self) -> &AtomicU64 {
        &self.inner.word
    }

    /// Whether a success recorded in the closed state can open the breaker: true with a
    /// failure-rate or slow-call-rate threshold (a success can bring the window to
    /// `minimum_calls`, and the rate is then judged), false otherwise (a success only
    /// counts and ends a run of failures). A binding that batches successes
    /// ([`record_successes`](Self::record_successes)) must record its batch before admitting
    /// another call when this is true, or it could admit a call the breaker would refuse.
    ///
    /// ```
    /// use seawall::{BreakerConfig, CircuitBreaker};
    /// assert!(!CircuitBreaker::new(BreakerConfig::default()).unwrap().success_can_trip());
    /// let mut c = BreakerConfig::default();
    /// c.failure_rate_threshold = Some(0.5);
    /// assert!(CircuitBreaker::new(c).unwrap().success_can_trip());
    /// ```
    pub fn success_can_trip(&self) -> bool {
        let c = &self.inner.config;
        c.failure_rate_threshold.is_some() || c.slow_call_rate_threshold.is_some()
    }

    /// Records `n` successes of calls admitted closed in `epoch` (see
    /// [`state_word`](Self::state_word)), as `n` permits of that epoch recording
    /// `Outcome::Success` one after the other would: counted, the consecutive-failure count
    /// reset and the window updated while the breaker is still closed in that epoch; after
    /// a transition they are late outcomes (counted only). Meant for breakers that measure
    /// no durations ([`needs_duration`](Self::needs_duration) is false); with a slow-call
    /// threshold they count as fast calls.
    pub fn record_successes(&self, epoch: u64, n: u64) {
        let t = Ticket { epoch, probe: NO_PROBE };
        for _ in 0..n {
            self.inner.success_fast(t);
        }
    }

    /// A permit for a call admitted closed in `epoch` (see [`state_word`](Self::state_word)),
    /// to record its outcome as if `try_acquire_shared` had issued it then.
    pub fn permit_for_epoch(&self, epoch: u64) -> SharedPermit {
        SharedPermit::new(self.clone(), Ticket { epoch, probe: NO_PROBE })
    }

    /// The current state, after applying any change that time has made due.
    pub fn state(&self) -> State {
        let w = self.inner.word.load(Acquire);
        match State::from_word(w) {
            State::Open | State::HalfOpen => {
                self.inner.touch(w);
                State::from_word(self.inner.word.load(Acquire))
            }
            s => s,
        }
    }

    /// Counts, rates and state, after applying time-driven changes.
    pub fn snapshot(&self) -> Snapshot {
        let _ = self.state();
        self.inner.snapshot()
    }

    /// Rejects every call until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.inner.manual(State::ForcedOpen, Reason::ForceOpen);
    }

    /// Admits every call and records only metrics, until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.inner.manual(State::Disabled, Reason::Disable);
    }

    /// Back to closed with an empty window, no backoff and no consecutive failures.
    pub fn reset(&self) {
        self.inner.manual(State::Closed, Reason::Reset);
    }

    /// Counts a rejected call that a fallback answered: the service ran degraded. Wrappers
    /// with a `fallback` call this, so metrics show reduced-functionality traffic.
    pub fn record_fallback(&self) {
        let inner = &self.inner;
        inner.counts.fallbacks.fetch_add(1, Relaxed);
        if inner.events.wants_all() {
            inner.events.push(Event::Fallback { breaker: Arc::clone(&inner.name), at: inner.now() });
            inner.events.deliver();
        }
    }

    /// Calls `f` for every state change, outside the breaker's lock, in order.
    pub fn on_state_change(&self, f: impl Fn(&StateChange) + Send + Sync + 'static) -> ListenerId {
        let only_changes = move |e: &Event| {
            if let Event::StateChange(c) = e {
                f(c)
            }
        };
        self.inner.events.add(Arc::new(only_changes), false)
    }

    /// Calls `f` for every event: state changes, rejections, timeouts and fallbacks, in
    /// order, outside the breaker's lock. While such a listener is registered, each
    /// rejection and timeout reads the clock and queues an event; without one they cost
    /// nothing extra.
    pub fn on_event(&self, f: impl Fn(&Event) + Send + Sync + 'static) -> ListenerId {
        self.inner.events.add(Arc::new(f), true)
    }

    /// Removes a listener; false when it was not registered.
    pub fn remove_listener(&self, id: ListenerId) -> bool {
        self.inner.events.remove(id)
    }

    /// Runs `f` under the breaker: `Ok` is a success, `Err` a failure.
    ///
    /// ```
    /// use seawall::{BreakerConfig, CircuitBreaker, CallError};
    /// let b = CircuitBreaker::new(BreakerConfig::default()).unwrap();
    /// let r: Result<i32, CallError<&str>> = b.call(|| Ok(7));
    /// assert_eq!(r.unwrap(), 7);
    /// ```
    #[inline]
    pub fn call<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, CallError<E>> {
        self.call_classified(f, |_| Outcome::Failure)
    }

    /// Like [`call`](Self::call), with `classify` deciding what an error counts as
    /// (`Failure`, `Timeout` or `Ignore`).
    #[inline]
    pub fn call_classified<T, E>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
        classify: impl FnOnce(&E) -> Outcome,
    ) -> Result<T, CallError<E>> {
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        if !self.needs_duration() {
            // No slow-call threshold: no clock read, and the success path skips the check.
            let result = f();
            match &result {
                Ok(_) => permit.success_unmeasured(),
                Err(e) => permit.record(classify(e), Duration::ZERO),
            }
            return result.map_err(CallError::Failed);
        }
        let start = self.clock().now();
        let result = f();
        let took = self.clock().now().saturating_sub(start);
        match &result {
            Ok(_) => permit.success(took),
            Err(e) => permit.record(classify(e), took),
        }
        result.map_err(CallError::Failed)
    }

    /// Runs the future made by `f` under the breaker: `Ok` is a success, `Err` a failure.
    /// Dropping the returned future before it finishes cancels the permit.
    pub async fn call_async<T, E, Fut>(&self, f: impl FnOnce() -> Fut) -> Result<T, CallError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire().map_err(CallError::Rejected)?;
        let start = self.start();
        let result = f().await;
        let took = self.elapsed(start);
        match &result {
            Ok(_) => permit.success(took),
            Err(_) => permit.failure(took),
        }
        result.map_err(CallError::Failed)
    }

    #[inline]
    fn start(&self) -> Option<Duration> {
        self.needs_duration().then(|| self.clock().now())
    }

    #[inline]
    fn elapsed(&self, start: Option<Duration>) -> Duration {
        start.map_or(Duration::ZERO, |s| self.clock().now().saturating_sub(s))
    }

    #[inline(always)]
    pub(crate) fn record(&self, t: Ticket, outcome: Outcome, took: Duration) {
        self.inner.record(t, outcome, took);
    }

    /// A success when no slow-call threshold is set (the caller checked).
    #[inline(always)]
    pub(crate) fn record_success_unmeasured(&self, t: Ticket) {
        self.inner.success_fast(t);
    }

    #[inline]
    pub(crate) fn cancel(&self, t: Ticket) {
        self.inner.cancel(t);
    }
}

impl Inner {
    #[inline]
    fn now(&self) -> Duration {
        self.config.clock.now()
    }

    #[inline(always)]
    fn acquire(&self) -> Result<Ticket, Rejected> {
        let w = self.word.load(Acquire);
        match State::from_word(w) {
            State::Closed | State::Disabled => Ok(Ticket { epoch: epoch_of(w), probe: NO_PROBE }),
            _ => self.acquire_other(w).into_result(&self.name),
        }
    }

    #[inline(never)]
    fn acquire_other(&self, w: u64) -> Admission {
        if State::from_word(w) == State::Open {
            self.acquire_open(w)
        } else {
            self.acquire_slow(w)
        }
    }

    /// Open: rejects on a coarse clock reading while the open time is certainly not up
    /// (the reading plus the clock's lag is still before it); near or past it, decides
    /// on the precise clock, so the outcome is what a precise reading would give.
    #[inline]
    fn acquire_open(&self, w: u64) -> Admission {
        let until = self.open_until.load(Acquire);
        let coarse = match self.coarse_nanos {
            Some(read) => read(),
            None => nanos(self.config.clock.now_coarse()),
        };
        if coarse.saturating_add(self.coarse_lag) < until {
            // The precise time is at least the coarse reading and at least the opening
            // time: the wait reported is never shorter than the real one, at most the lag
            // longer, and never longer than the open duration.
            let from = coarse.max(self.opened_at.load(Relaxed));
            return self.reject_open(until.saturating_sub(from));
        }
        self.acquire_slow(w)
    }

    #[cold]
    fn acquire_slow(&self, w: u64) -> Admission {
        if State::from_word(w) == State::ForcedOpen {
            return self.reject(State::ForcedOpen, Duration::MAX);
        }
        let now = self.now();
        if State::from_word(w) == State::Open {
            let until = Duration::from_nanos(self.open_until.load(Acquire));
            if now < until {
                return self.reject(State::Open, until - now);
            }
        }
        let mut l = self.locked.lock();
        self.advance(&mut l, now);
        let w = self.word.load(Acquire);
        // Decide under the lock; count and report a rejection only after releasing it, so
        // an event listener may call back into the breaker (docs/breaker.md, "Events").
        let decision = match State::from_word(w) {
            State::Closed | State::Disabled => Ok(Ticket { epoch: epoch_of(w), probe: NO_PROBE }),
            State::HalfOpen if l.probes.len() < self.config.half_open_max_calls as usize => {
                let id = l.next_probe;
                l.next_probe += 1;
                l.probes.push(Probe { id, issued_at: now });
                Ok(Ticket { epoch: epoch_of(w), probe: id })
            }
            State::HalfOpen => Err((State::HalfOpen, Duration::ZERO)),
            State::Open => {
                let until = Duration::from_nanos(self.open_until.load(Acquire));
                Err((State::Open, until.saturating_sub(now)))
            }
            State::ForcedOpen => Err((State::ForcedOpen, Duration::MAX)),
        };
        drop(l);
        self.events.deliver();
        match decision {
            Ok(ticket) => Admission::ticket(ticket),
            Err((state, retry_after)) => self.reject(state, retry_after),
        }
    }

    /// An open breaker's rejection with `retry` ns to go (the hot rejection: no conversions).
    #[inline]
    fn reject_open(&self, retry: u64) -> Admission {
        self.counts.calls.add(REJECTED, usize::MAX);
        if self.events.wants_all() {
            self.rejected_event(State::Open, Duration::from_nanos(retry));
        }
        Admission(REFUSED - State::Open as u64, retry)
    }

    #[inline]
    fn reject(&self, state: State, retry_after: Duration) -> Admission {
        self.counts.calls.add(REJECTED, usize::MAX);
        if self.events.wants_all() {
            self.rejected_event(state, retry_after);
        }
        Admission::refused(state, retry_after)
    }

    #[cold]
    fn rejected_event(&self, state: State, retry_after: Duration) {
        let at = self.now();
        self.events.push(Event::Rejected { breaker: Arc::clone(&self.name), state, retry_after, at });
        self.events.deliver();
    }

    /// Applies the time-driven changes that are due at `now` (lock held).
    fn advance(&self, l: &mut Locked, now: Duration) {
        let w = self.word.load(Acquire);
        match State::from_word(w) {
            State::Open if nanos(now) >= self.open_until.load(Acquire) => {
                l.probes.clear();
                l.probe_successes = 0;
                self.set(w, State::HalfOpen, now, Reason::OpenDurationElapsed);
            }
            State::HalfOpen => {
                let timeout = self.probe_timeout;
                if l.probes.iter().any(|p| now.saturating_sub(p.issued_at) >= timeout) {
                    self.reopen(l, w, now, Reason::ProbeTimeout);
                    self.advance(l, now);
                }
            }
            _ => {}
        }
    }

    /// Applies time-driven changes if any may be due (used by state queries).
    fn touch(&self, w: u64) {
        let now = self.now();
        if State::from_word(w) == State::Open && nanos(now) < self.open_until.load(Acquire) {
            return;
        }
        let mut l = self.locked.lock();
        self.advance(&mut l, now);
        drop(l);
        self.events.deliver();
    }

    /// Moves from word `w` to `to` with a new epoch and queues the event (lock held).
    fn set(&self, w: u64, to: State, now: Duration, reason: Reason) {
        let from = State::from_word(w);
        // The new epoch's run of failures starts at zero before the word says it began, so
        // an outcome that read the old word can no longer count in it (`count_failure`).
        self.consecutive.store(run_tag(epoch_of(w) + 1), Release);
        self.word.store(word(epoch_of(w) + 1, to), Release);
        if from != to {
            self.counts.transitions[from as usize][to as usize].fetch_add(1, Relaxed);
            let change = StateChange { breaker: Arc::clone(&self.name), from, to, at: now, reason };
            self.events.push(Event::StateChange(change));
        }
    }

    /// Opens for `duration` from `now` (lock held).
    fn open_for(&self, l: &mut Locked, w: u64, duration: Duration, now: Duration, reason: Reason) {
        l.current_open = duration;
        l.probes.clear();
        self.opened_at.store(nanos(now), Relaxed);
        self.open_until.store(nanos(now.saturating_add(duration)), Release);
        self.set(w, State::Open, now, reason);
    }

    /// Half-open -> open with the next backed-off duration (lock held).
    fn reopen(&self, l: &mut Locked, w: u64, now: Duration, reason: Reason) {
        let grown = l.current_open.as_secs_f64() * self.config.backoff_multiplier;
        let next = Duration::try_from_secs_f64(grown).unwrap_or(Duration::MAX).min(self.open_max);
        self.open_for(l, w, next, now, reason);
    }

    /// Records an outcome. The common case (a success, no slow-call threshold, closed in
    /// the permit's epoch, no window) is inlined into the caller: one thread-local counter
    /// bump, the state word and the consecutive count read.
    #[inline(always)]
    fn record(&self, t: Ticket, outcome: Outcome, took: Duration) {
        if outcome == Outcome::Success && self.config.slow_call_duration.is_none() {
            self.success_fast(t);
        } else {
            self.record_any(t, outcome, took);
        }
    }

    /// A success that cannot be slow (no slow-call threshold).
    #[inline(always)]
    fn success_fast(&self, t: Ticket) {
        self.counts.calls.add(SUCCESSES, usize::MAX);
        let w = self.word.load(Acquire);
        if w == word(t.epoch, State::Closed) {
            self.count_success(t.epoch);
            if self.window.is_some() {
                self.record_window(w, false, false);
            }
        } else {
            self.record_counted(t, w, Outcome::Success, false);
        }
    }

    #[inline(never)]
    fn record_any(&self, t: Ticket, outcome: Outcome, took: Duration) {
        let slow = outcome != Outcome::Ignore && self.config.slow_call_duration.is_some_and(|s| took >= s);
        self.count(outcome, slow);
        if outcome == Outcome::Timeout && self.events.wants_all() {
            self.timeout_event(took);
        }
        self.record_counted(t, self.word.load(Acquire), outcome, slow);
    }

    /// What an outcome already counted in the metrics does to the state; `w` is the state
    /// word read after counting.
    #[inline]
    fn record_counted(&self, t: Ticket, w: u64, outcome: Outcome, slow: bool) {
        if w == word(t.epoch, State::Closed) {
            self.record_closed(w, outcome, slow);
        } else if epoch_of(w) == t.epoch && State::from_word(w) == State::HalfOpen && t.probe != NO_PROBE {
            self.record_probe(t, outcome);
        }
        // Otherwise a late outcome, or disabled: metrics only.
    }

    #[cold]
    fn timeout_event(&self, took: Duration) {
        self.events.push(Event::Timeout { breaker: Arc::clone(&self.name), took, at: self.now() });
        self.events.deliver();
    }

    #[inline]
    fn count(&self, outcome: Outcome, slow: bool) {
        let (kind, also) = match outcome {
            Outcome::Success => (SUCCESSES, usize::MAX),
            Outcome::Failure => (FAILURES, usize::MAX),
            Outcome::Timeout => (FAILURES, TIMEOUTS),
            Outcome::Ignore => (IGNORED, usize::MAX),
        };
        self.counts.calls.add(kind, also);
        if slow {
            self.counts.calls.add(SLOW, usize::MAX);
        }
    }

    #[inline]
    fn record_closed(&self, w: u64, outcome: Outcome, slow: bool) {
        match outcome {
            Outcome::Ignore => {}
            Outcome::Success => {
                self.count_success(epoch_of(w));
                // A success never reaches the consecutive threshold; only a window can trip.
                if self.window.is_some() {
                    self.record_window(w, false, slow);
                }
            }
            Outcome::Failure | Outcome::Timeout => self.record_closed_failure(w, slow),
        }
    }

    /// One more failure in a row in epoch `e`: the new length of the run, or `None` when
    /// the run belongs to another epoch (a late outcome: the breaker moved on after it read
    /// the state word, and `set` restarted the run for the new epoch first).
    #[inline]
    fn count_failure(&self, e: u64) -> Option<u32> {
        let mut c = self.consecutive.load(Acquire);
        loop {
            if c & !RUN_MASK != run_tag(e) {
                return None;
            }
            let next = if c & RUN_MASK == RUN_MASK { c } else { c + 1 };
            match self.consecutive.compare_exchange_weak(c, next, AcqRel, Acquire) {
                Ok(_) => return Some((next & RUN_MASK) as u32),
                Err(now) => c = now,
            }
        }
    }

    /// A success in epoch `e` ends its run of failures (one load when there is none).
    #[inline(always)]
    fn count_success(&self, e: u64) {
        let c = self.consecutive.load(Relaxed);
        if c & RUN_MASK != 0 {
            self.end_run(c, e);
        }
    }

    #[inline(never)]
    fn end_run(&self, mut c: u64, e: u64) {
        while c & !RUN_MASK == run_tag(e) && c & RUN_MASK != 0 {
            match self.consecutive.compare_exchange_weak(c, run_tag(e), AcqRel, Relaxed) {
                Ok(_) => return,
                Err(now) => c = now,
            }
        }
    }

    /// The run of failures of epoch `e` (0 when the run is another epoch's).
    fn run_in(&self, e: u64) -> u32 {
        let c = self.consecutive.load(Acquire);
        if c & !RUN_MASK == run_tag(e) {
            (c & RUN_MASK) as u32
        } else {
            0
        }
    }

    #[inline(never)]
    fn record_closed_failure(&self, w: u64, slow: bool) {
        let Some(in_a_row) = self.count_failure(epoch_of(w)) else {
            return; // late: the breaker left the epoch after this outcome read the state
        };
        let totals = self.window_record(epoch_of(w), true, slow);
        let reason = if self.consecutive_threshold != 0 && in_a_row >= self.consecutive_threshold {
            Some(Reason::ConsecutiveFailures)
        } else {
            totals.and_then(|t| self.rate_reason(&t))
        };
        if let Some(reason) = reason {
            self.trip(w, reason);
        }
    }

    #[inline(never)]
    fn record_window(&self, w: u64, failed: bool, slow: bool) {
        let totals = self.window_record(epoch_of(w), failed, slow);
        if let Some(reason) = totals.and_then(|t| self.rate_reason(&t)) {
            self.trip(w, reason);
        }
    }

    /// Records into the window; a time window reads the clock (coarsely when that is
    /// certain to give the same bucket).
    #[inline]
    /// `None` when no rate can have been reached (a time window holding no failed or slow
    /// call: every rate is 0).
    /// An outcome of epoch `e` finding another epoch's window is late (the breaker closed
    /// again after it read the state word): it is recorded nowhere.
    fn window_record(&self, e: u64, failed: bool, slow: bool) -> Option<Totals> {
        let current = self.window.as_ref()?.load();
        if current.epoch != e {
            return None;
        }
        match &current.window {
            Window::None => None,
            Window::Count(cw) => Some(cw.record(failed, slow)),
            Window::Time(tw) => tw.record(tw.place_now(&*self.config.clock, self.coarse_lag), failed, slow),
        }
    }

    /// Which rate threshold the window reached, if any. A rate with a zero numerator is
    /// 0, below every threshold (they are in (0, 1]): the division is skipped then.
    #[inline]
    fn rate_reason(&self, t: &Totals) -> Option<Reason> {
        if t.calls == 0 || t.calls < self.min_calls || (t.failures == 0 && t.slow == 0) {
            return None;
        }
        let c = &self.config;
        if t.failures != 0 && c.failure_rate_threshold.is_some_and(|x| t.failure_rate() >= x) {
            Some(Reason::FailureRate)
        } else if t.slow != 0 && c.slow_call_rate_threshold.is_some_and(|x| t.slow_rate() >= x) {
            Some(Reason::SlowCallRate)
        } else {
            None
        }
    }

    /// Closed -> open, unless another thread changed the state first.
    #[cold]
    fn trip(&self, w: u64, reason: Reason) {
        let now = self.now();
        let mut l = self.locked.lock();
        crate::failpoint::hit(crate::failpoint::Site::BreakerTrip);
        if self.word.load(Acquire) == w {
            let base = self.config.open_duration;
            self.open_for(&mut l, w, base, now, reason);
        }
        drop(l);
        self.events.deliver();
    }

    #[cold]
    fn record_probe(&self, t: Ticket, outcome: Outcome) {
        let now = self.now();
        let mut l = self.locked.lock();
        self.advance(&mut l, now); // a probe recorded after its timeout has already failed
        let w = self.word.load(Acquire);
        if epoch_of(w) == t.epoch {
            if let Some(i) = l.probes.iter().position(|p| p.id == t.probe) {
                l.probes.swap_remove(i);
                match outcome {
                    Outcome::Failure | Outcome::Timeout => self.reopen(&mut l, w, now, Reason::ProbeFailure),
                    Outcome::Success => {
                        l.probe_successes += 1;
                        if l.probe_successes >= self.config.half_open_success_threshold {
                            self.close(&mut l, w, now, Reason::ProbeSuccesses);
                        }
                    }
                    Outcome::Ignore => {}
                }
            }
        }
        drop(l);
        self.events.deliver();
    }

    /// To closed: window, consecutive count and backoff cleared (lock held).
    fn close(&self, l: &mut Locked, w: u64, now: Duration, reason: Reason) {
        l.probes.clear();
        l.probe_successes = 0;
        l.current_open = self.config.open_duration;
        if let Some(slot) = &self.window {
            // A new, empty window for the new epoch, in place before the word says it began:
            // an outcome that read the old word records into the old window, or nowhere.
            slot.store(Arc::new(EpochWindow::new(&self.config, epoch_of(w) + 1)));
        }
        self.set(w, State::Closed, now, reason);
    }

    /// A permit dropped without an outcome: frees its half-open slot, counts nowhere.
    fn cancel(&self, t: Ticket) {
        if t.probe == NO_PROBE {
            return;
        }
        let now = self.now();
        let mut l = self.locked.lock();
        self.advance(&mut l, now); // a probe cancelled after its timeout has already failed
        if epoch_of(self.word.load(Acquire)) == t.epoch {
            l.probes.retain(|p| p.id != t.probe);
        }
        drop(l);
        self.events.deliver();
    }

    fn manual(&self, to: State, reason: Reason) {
        let now = self.now();
        let mut l = self.locked.lock();
        let w = self.word.load(Acquire);
        if to == State::Closed {
            self.close(&mut l, w, now, reason);
        } else {
            l.probes.clear();
            l.probe_successes = 0;
            self.set(w, to, now, reason);
        }
        drop(l);
        self.events.deliver();
    }

    fn snapshot(&self) -> Snapshot {
        let w = self.word.load(Acquire);
        let state = State::from_word(w);
        let current = self.window.as_ref().map(|slot| slot.load_full());
        let window = current.as_ref().map_or(&Window::None, |c| &c.window);
        let needs_now = window.is_time() || state == State::Open;
        let now = if needs_now { self.now() } else { Duration::ZERO };
        let totals = match window {
            Window::Time(tw) => tw.totals(tw.index(now)),
            w => w.totals(),
        };
        let retry_after = match state {
            State::Open => Duration::from_nanos(self.open_until.load(Acquire)).saturating_sub(now),
            State::ForcedOpen => Duration::MAX,
            _ => Duration::ZERO,
        };
        let in_flight = if state == State::HalfOpen { self.locked.lock().probes.len() as u32 } else { 0 };
        let c = &self.counts;
        Snapshot {
            name: self.name.to_string(),
            state,
            successes: c.calls.get(SUCCESSES),
            failures: c.calls.get(FAILURES),
            slow: c.calls.get(SLOW),
            ignored: c.calls.get(IGNORED),
            rejected: c.calls.get(REJECTED),
            timeouts: c.calls.get(TIMEOUTS),
            failure_rate: totals.failure_rate(),
            slow_call_rate: totals.slow_rate(),
            window_calls: totals.calls,
            consecutive_failures: if state == State::Closed { self.run_in(epoch_of(w)) } else { 0 },
            retry_after,
            half_open_in_flight: in_flight,
            fallbacks: c.fallbacks.load(Relaxed),
            transitions: self.transitions(),
            critical: self.config.critical,
        }
    }

    fn transitions(&self) -> Vec<(State, State, u64)> {
        let mut out = Vec::new();
        for from in State::ALL {
            for to in State::ALL {
                let n = self.counts.transitions[from as usize][to as usize].load(Relaxed);
                if n > 0 {
                    out.push((from, to, n));
                }
            }
        }
        out
    }
}
