//! The reference model of the circuit breaker and the harness that drives the core and the
//! model side by side (docs/hardening.md). Used by `model_breaker.rs` (property tests) and
//! by the `breaker_model` target in `fuzz/`; it depends on nothing but `seawall`.
//!
//! `Model` is a reference implementation of SPEC.md "Circuit breaker" and docs/breaker.md
//! written for clarity, not speed: plain fields, no atomics, the window kept as the list of
//! recorded calls and summed on demand.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall::timer::{TimerFn, TimerId};
use seawall::{
    BreakerConfig, CallError, CircuitBreaker, Clock, Error, Event, ManualClock, Outcome, Reason, SharedPermit, Snapshot,
    State, StateChange, WindowKind,
};

/// A `ManualClock` read through a coarse reading that trails it by a varying amount (a
/// function of the time, at most `lag`), as `SystemClock::now_coarse` may.
#[derive(Debug)]
pub struct LaggingClock {
    pub inner: Arc<ManualClock>,
    pub lag: u64,
}

impl Clock for LaggingClock {
    fn now(&self) -> Duration {
        self.inner.now()
    }

    fn now_coarse(&self) -> Duration {
        let now = self.inner.now();
        let n = now.as_nanos() as u64;
        let behind = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) % (self.lag + 1);
        now - Duration::from_nanos(behind.min(n))
    }

    fn coarse_lag(&self) -> Duration {
        Duration::from_nanos(self.lag)
    }

    fn schedule(&self, at: Duration, f: TimerFn) -> TimerId {
        self.inner.schedule(at, f)
    }

    fn cancel_timer(&self, id: TimerId) -> bool {
        self.inner.cancel_timer(id)
    }
}

pub const NAME: &str = "m";
pub const MS: u64 = 1_000_000;

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// A valid configuration, as generated (durations in ns).
#[derive(Debug, Clone)]
pub struct Cfg {
    pub consecutive_failures: Option<u32>,
    pub failure_rate_threshold: Option<f64>,
    pub slow_call_rate_threshold: Option<f64>,
    pub slow_call_duration: Option<u64>,
    /// `None`: count window of this size; `Some((bucket, buckets))`: time window.
    pub window_size: u32,
    pub time_window: Option<(u64, u32)>,
    pub minimum_calls: u32,
    pub open_duration: u64,
    pub open_duration_max: Option<u64>,
    pub backoff_multiplier: f64,
    pub half_open_max_calls: u32,
    pub half_open_success_threshold: u32,
    pub probe_timeout: Option<u64>,
    /// Listen to every event (rejections, timeouts, fallbacks) or to state changes only.
    pub all_events: bool,
    /// 0: a `ManualClock`. Otherwise the breaker reads a clock whose coarse reading trails
    /// the precise one by up to this many ns (docs/breaker.md "Coarse clock, exact
    /// decisions"): every decision must be the same; an open breaker's `retry_after` may
    /// overstate the exact wait by up to the lag, never understate it, never exceed the
    /// open duration.
    pub coarse_lag: u64,
}

impl Cfg {
    pub fn breaker_config(&self) -> BreakerConfig {
        let ns = Duration::from_nanos;
        let mut c = BreakerConfig {
            consecutive_failures: self.consecutive_failures,
            failure_rate_threshold: self.failure_rate_threshold,
            slow_call_rate_threshold: self.slow_call_rate_threshold,
            slow_call_duration: self.slow_call_duration.map(ns),
            window_size: self.window_size,
            minimum_calls: self.minimum_calls,
            open_duration: ns(self.open_duration),
            open_duration_max: self.open_duration_max.map(ns),
            backoff_multiplier: self.backoff_multiplier,
            half_open_max_calls: self.half_open_max_calls,
            half_open_success_threshold: self.half_open_success_threshold,
            probe_timeout: self.probe_timeout.map(ns),
            ..BreakerConfig::named(NAME)
        };
        if let Some((bucket, buckets)) = self.time_window {
            c.window = WindowKind::Time;
            c.window_duration = ns(bucket * u64::from(buckets));
            c.window_buckets = buckets;
        }
        c
    }
}

// ---------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub enum Op {
    Acquire,
    /// Record on the `pick`-th outstanding permit (modulo their number).
    Record { pick: usize, outcome: Outcome, took: u64 },
    /// `SharedPermit::cancel` on an outstanding permit.
    Cancel { pick: usize },
    /// Drop an outstanding permit without an outcome.
    Drop { pick: usize },
    /// A second outcome on the last used permit: refused, changes nothing.
    RecordAgain { outcome: Outcome },
    /// `call_classified` with a closure ending in `outcome` (the clock does not move in it).
    Call { outcome: Outcome },
    Advance { ns: u64 },
    /// Advance to the `which`-th upcoming deadline the model knows of, `delta` ns off.
    ToDeadline { which: usize, delta: i8 },
    ForceOpen,
    Disable,
    Reset,
    State,
    Snapshot,
    Fallback,
}

// ---------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub epoch: u64,
    /// 0: not a probe.
    pub probe: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub at: u64,
    pub failed: bool,
    pub slow: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub calls: u64,
    pub failures: u64,
    pub slow: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Admit {
    Permit(Ticket),
    Rejected { state: State, retry_after: Duration },
}

pub struct Model {
    pub cfg: Cfg,
    pub consecutive_threshold: Option<u32>,
    pub probe_timeout: u64,
    pub now: u64,
    pub state: State,
    pub epoch: u64,
    pub consecutive: u32,
    /// Every call recorded into the window since it was last cleared (trimmed to the last
    /// `window_size` for a count window).
    pub window: VecDeque<Call>,
    pub open_until: u64,
    pub current_open: Duration,
    /// Outstanding probes: (id, issued at).
    pub probes: Vec<(u64, u64)>,
    pub next_probe: u64,
    pub probe_successes: u32,
    pub successes: u64,
    pub failures: u64,
    pub slow: u64,
    pub ignored: u64,
    pub rejected: u64,
    pub timeouts: u64,
    pub fallbacks: u64,
    pub transitions: [[u64; 5]; 5],
    pub events: Vec<Event>,
}

pub fn index(s: State) -> usize {
    State::ALL.iter().position(|x| *x == s).unwrap()
}

impl Model {
    pub fn new(cfg: &Cfg) -> Self {
        let rates = cfg.failure_rate_threshold.is_some() || cfg.slow_call_rate_threshold.is_some();
        Model {
            // SPEC: 5 in a row by default, when no rate threshold is set.
            consecutive_threshold: cfg.consecutive_failures.or(if rates { None } else { Some(5) }),
            // docs/breaker.md: probe_timeout, else open_duration, else (zero) 30 s.
            probe_timeout: cfg.probe_timeout.unwrap_or(if cfg.open_duration == 0 { 30_000 * MS } else { cfg.open_duration }),
            cfg: cfg.clone(),
            now: 0,
            state: State::Closed,
            epoch: 0,
            consecutive: 0,
            window: VecDeque::new(),
            open_until: 0,
            current_open: Duration::from_nanos(cfg.open_duration),
            probes: Vec::new(),
            next_probe: 1,
            probe_successes: 0,
            successes: 0,
            failures: 0,
            slow: 0,
            ignored: 0,
            rejected: 0,
            timeouts: 0,
            fallbacks: 0,
            transitions: [[0; 5]; 5],
            events: Vec::new(),
        }
    }

    pub fn uses_window(&self) -> bool {
        self.cfg.failure_rate_threshold.is_some() || self.cfg.slow_call_rate_threshold.is_some()
    }

    pub fn at(&self) -> Duration {
        Duration::from_nanos(self.now)
    }

    /// Every state change bumps the epoch; a change to another state emits an event.
    pub fn set(&mut self, to: State, reason: Reason) {
        let from = self.state;
        self.epoch += 1;
        self.state = to;
        if from != to {
            self.transitions[index(from)][index(to)] += 1;
            let change = StateChange { breaker: Arc::from(NAME), from, to, at: self.at(), reason };
            self.events.push(Event::StateChange(change));
        }
    }

    pub fn open_for(&mut self, d: Duration, reason: Reason) {
        self.current_open = d;
        self.probes.clear();
        self.open_until = self.now.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.consecutive = 0;
        self.set(State::Open, reason);
    }

    /// From closed: the configured open duration.
    pub fn trip(&mut self, reason: Reason) {
        self.open_for(Duration::from_nanos(self.cfg.open_duration), reason);
    }

    /// From half-open: the previous open duration times the multiplier, capped.
    pub fn reopen(&mut self, reason: Reason) {
        let max = Duration::from_nanos(self.cfg.open_duration_max.unwrap_or(self.cfg.open_duration));
        let grown = self.current_open.as_secs_f64() * self.cfg.backoff_multiplier;
        let next = Duration::try_from_secs_f64(grown).unwrap_or(Duration::MAX).min(max);
        self.open_for(next, reason);
    }

    pub fn close(&mut self, reason: Reason) {
        self.probes.clear();
        self.probe_successes = 0;
        self.current_open = Duration::from_nanos(self.cfg.open_duration);
        self.window.clear();
        self.consecutive = 0;
        self.set(State::Closed, reason);
    }

    /// Applies every time-driven change due now.
    pub fn touch(&mut self) {
        loop {
            match self.state {
                State::Open if self.now >= self.open_until => {
                    self.probes.clear();
                    self.probe_successes = 0;
                    self.set(State::HalfOpen, Reason::OpenDurationElapsed);
                }
                State::HalfOpen if self.probes.iter().any(|&(_, issued)| self.now - issued >= self.probe_timeout) => {
                    self.reopen(Reason::ProbeTimeout);
                }
                _ => return,
            }
        }
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        if !self.uses_window() {
            return t;
        }
        let in_window = |c: &Call| match self.cfg.time_window {
            None => true, // trimmed on insert
            Some((bucket, buckets)) => self.now / bucket - c.at / bucket < u64::from(buckets),
        };
        for c in self.window.iter().filter(|c| in_window(c)) {
            t.calls += 1;
            t.failures += u64::from(c.failed);
            t.slow += u64::from(c.slow);
        }
        t
    }

    pub fn min_calls(&self) -> u64 {
        u64::from(match self.cfg.time_window {
            None => self.cfg.minimum_calls.min(self.cfg.window_size),
            Some(_) => self.cfg.minimum_calls,
        })
    }

    pub fn rate_reason(&self) -> Option<Reason> {
        let t = self.totals();
        if t.calls == 0 || t.calls < self.min_calls() {
            return None;
        }
        let (calls, failures, slow) = (t.calls as f64, t.failures as f64, t.slow as f64);
        if self.cfg.failure_rate_threshold.is_some_and(|x| failures / calls >= x) {
            Some(Reason::FailureRate)
        } else if self.cfg.slow_call_rate_threshold.is_some_and(|x| slow / calls >= x) {
            Some(Reason::SlowCallRate)
        } else {
            None
        }
    }

    pub fn reject(&mut self, state: State, retry_after: Duration) -> Admit {
        self.rejected += 1;
        if self.cfg.all_events {
            self.events.push(Event::Rejected { breaker: Arc::from(NAME), state, retry_after, at: self.at() });
        }
        Admit::Rejected { state, retry_after }
    }

    pub fn acquire(&mut self) -> Admit {
        self.touch();
        match self.state {
            State::Closed | State::Disabled => Admit::Permit(Ticket { epoch: self.epoch, probe: 0 }),
            State::ForcedOpen => self.reject(State::ForcedOpen, Duration::MAX),
            State::Open => self.reject(State::Open, Duration::from_nanos(self.open_until - self.now)),
            State::HalfOpen if self.probes.len() < self.cfg.half_open_max_calls as usize => {
                let id = self.next_probe;
                self.next_probe += 1;
                self.probes.push((id, self.now));
                Admit::Permit(Ticket { epoch: self.epoch, probe: id })
            }
            State::HalfOpen => self.reject(State::HalfOpen, Duration::ZERO),
        }
    }

    pub fn record(&mut self, t: Ticket, outcome: Outcome, took: u64) {
        let slow = outcome != Outcome::Ignore && self.cfg.slow_call_duration.is_some_and(|s| took >= s);
        match outcome {
            Outcome::Success => self.successes += 1,
            Outcome::Failure => self.failures += 1,
            Outcome::Timeout => {
                self.failures += 1;
                self.timeouts += 1;
            }
            Outcome::Ignore => self.ignored += 1,
        }
        if slow {
            self.slow += 1;
        }
        if outcome == Outcome::Timeout && self.cfg.all_events {
            self.events.push(Event::Timeout { breaker: Arc::from(NAME), took: Duration::from_nanos(took), at: self.at() });
        }
        let failed = matches!(outcome, Outcome::Failure | Outcome::Timeout);
        if self.state == State::Closed && self.epoch == t.epoch {
            if outcome == Outcome::Ignore {
                return;
            }
            self.consecutive = if failed { self.consecutive + 1 } else { 0 };
            if self.uses_window() {
                self.window.push_back(Call { at: self.now, failed, slow });
                if self.cfg.time_window.is_none() && self.window.len() > self.cfg.window_size as usize {
                    self.window.pop_front();
                }
            }
            if failed && self.consecutive_threshold.is_some_and(|n| self.consecutive >= n) {
                self.trip(Reason::ConsecutiveFailures);
            } else if let Some(reason) = self.rate_reason() {
                self.trip(reason);
            }
        } else if self.state == State::HalfOpen && self.epoch == t.epoch && t.probe != 0 {
            // A probe recorded after its timeout has already failed: apply what is due first.
            self.touch();
            if self.epoch != t.epoch {
                return;
            }
            let Some(i) = self.probes.iter().position(|&(id, _)| id == t.probe) else { return };
            self.probes.remove(i);
            match outcome {
                Outcome::Failure | Outcome::Timeout => self.reopen(Reason::ProbeFailure),
                Outcome::Success => {
                    self.probe_successes += 1;
                    if self.probe_successes >= self.cfg.half_open_success_threshold {
                        self.close(Reason::ProbeSuccesses);
                    }
                }
                Outcome::Ignore => {}
            }
        }
        // Otherwise late (older epoch) or disabled: metrics only.
    }

    pub fn cancel(&mut self, t: Ticket) {
        if t.probe == 0 {
            return;
        }
        self.touch();
        if self.epoch == t.epoch {
            self.probes.retain(|&(id, _)| id != t.probe);
        }
    }

    pub fn manual(&mut self, to: State, reason: Reason) {
        if to == State::Closed {
            self.close(reason);
        } else {
            self.probes.clear();
            self.probe_successes = 0;
            self.set(to, reason);
        }
    }

    pub fn state(&mut self) -> State {
        self.touch();
        self.state
    }

    pub fn fallback(&mut self) {
        self.fallbacks += 1;
        if self.cfg.all_events {
            self.events.push(Event::Fallback { breaker: Arc::from(NAME), at: self.at() });
        }
    }

    pub fn snapshot(&mut self) -> Snapshot {
        self.touch();
        let t = self.totals();
        let rate = |a: u64| if t.calls == 0 { 0.0 } else { a as f64 / t.calls as f64 };
        let mut transitions = Vec::new();
        for from in State::ALL {
            for to in State::ALL {
                let n = self.transitions[index(from)][index(to)];
                if n > 0 {
                    transitions.push((from, to, n));
                }
            }
        }
        Snapshot {
            name: NAME.into(),
            state: self.state,
            successes: self.successes,
            failures: self.failures,
            slow: self.slow,
            ignored: self.ignored,
            rejected: self.rejected,
            timeouts: self.timeouts,
            failure_rate: rate(t.failures),
            slow_call_rate: rate(t.slow),
            window_calls: t.calls,
            consecutive_failures: if self.state == State::Closed { self.consecutive } else { 0 },
            retry_after: match self.state {
                State::Open => Duration::from_nanos(self.open_until - self.now),
                State::ForcedOpen => Duration::MAX,
                _ => Duration::ZERO,
            },
            half_open_in_flight: if self.state == State::HalfOpen { self.probes.len() as u32 } else { 0 },
            fallbacks: self.fallbacks,
            transitions,
            critical: true,
        }
    }

    /// Upcoming instants where something changes: the end of the open time, probe
    /// expiries, the next bucket edge and the window's oldest call leaving it.
    pub fn deadlines(&self) -> Vec<u64> {
        let mut d = Vec::new();
        if self.state == State::Open {
            d.push(self.open_until);
        }
        if self.state == State::HalfOpen {
            d.extend(self.probes.iter().map(|&(_, issued)| issued.saturating_add(self.probe_timeout)));
        }
        if let Some((bucket, buckets)) = self.cfg.time_window {
            d.push((self.now / bucket + 1) * bucket);
            if let Some(c) = self.window.front() {
                d.push((c.at / bucket + u64::from(buckets)) * bucket);
            }
        }
        d.retain(|&t| t > self.now.saturating_sub(1));
        d.sort_unstable();
        d
    }
}

// ---------------------------------------------------------------------------------------
// Driving both
// ---------------------------------------------------------------------------------------

pub struct Harness {
    pub clock: Arc<ManualClock>,
    pub breaker: CircuitBreaker,
    pub events: Arc<Mutex<Vec<Event>>>,
    pub model: Model,
    pub permits: Vec<(SharedPermit, Ticket)>,
    pub used: Option<SharedPermit>,
    /// Events compared so far.
    pub events_checked: usize,
}

impl Harness {
    pub fn new(cfg: &Cfg) -> Self {
        let clock = ManualClock::shared();
        let shared: seawall::SharedClock = if cfg.coarse_lag == 0 {
            clock.clone()
        } else {
            Arc::new(LaggingClock { inner: clock.clone(), lag: cfg.coarse_lag })
        };
        let breaker = CircuitBreaker::new(cfg.breaker_config().with_clock(shared)).expect("generated configs are valid");
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let sink = events.clone();
        if cfg.all_events {
            breaker.on_event(move |e| sink.lock().unwrap().push(e.clone()));
        } else {
            breaker.on_state_change(move |c| sink.lock().unwrap().push(Event::StateChange(c.clone())));
        }
        Harness { clock, breaker, events, model: Model::new(cfg), permits: Vec::new(), used: None, events_checked: 0 }
    }

    pub fn advance(&mut self, ns: u64) {
        self.clock.advance(Duration::from_nanos(ns));
        self.model.now += ns;
    }

    pub fn take(&mut self, pick: usize) -> Option<(SharedPermit, Ticket)> {
        if self.permits.is_empty() {
            None
        } else {
            let i = pick % self.permits.len();
            Some(self.permits.swap_remove(i))
        }
    }

    pub fn check_admit(&self, core: &Result<SharedPermit, seawall::Rejected>, model: &Admit) -> Result<(), String> {
        match (core, model) {
            (Ok(p), Admit::Permit(t)) => {
                if p.is_probe() != (t.probe != 0) || p.generation() != t.epoch {
                    return Err(format!(
                        "permit: core probe={} generation={}, model {t:?}",
                        p.is_probe(),
                        p.generation()
                    ));
                }
                Ok(())
            }
            (Err(r), Admit::Rejected { state, retry_after }) => {
                if r.state != *state || !self.retry_after_ok(*state, r.retry_after, *retry_after) || &*r.breaker != NAME {
                    return Err(format!("rejection: core {r:?}, model {state:?} retry_after {retry_after:?}"));
                }
                Ok(())
            }
            (c, m) => Err(format!("admission: core {:?}, model {m:?}", c.as_ref().map(|p| (p.is_probe(), p.generation())))),
        }
    }

    /// The core's `retry_after` against the model's exact one: equal, except that an open
    /// breaker deciding on a lagging coarse clock may overstate it by up to the lag (never
    /// understate it, never beyond the open duration).
    pub fn retry_after_ok(&self, state: State, core: Duration, model: Duration) -> bool {
        if core == model {
            return true;
        }
        let lag = Duration::from_nanos(self.model.cfg.coarse_lag);
        state == State::Open && core > model && core - model <= lag && core <= self.model.current_open
    }

    /// Events equal, up to `retry_after_ok` in rejections. Only the events of the current
    /// step are compared (earlier ones were, when they happened, against the open duration
    /// then in force).
    pub fn events_ok(&mut self, core: &[Event]) -> bool {
        let from = self.events_checked;
        self.events_checked = core.len();
        core.len() == self.model.events.len()
            && core[from..].iter().zip(&self.model.events[from..]).all(|(c, m)| match (c, m) {
                (
                    Event::Rejected { breaker: b1, state: s1, retry_after: r1, at: a1 },
                    Event::Rejected { breaker: b2, state: s2, retry_after: r2, at: a2 },
                ) => b1 == b2 && s1 == s2 && a1 == a2 && self.retry_after_ok(*s1, *r1, *r2),
                _ => c == m,
            })
    }

    /// Applies one operation to both; an error describes the first disagreement.
    pub fn step(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Acquire => {
                let core = self.breaker.try_acquire_shared();
                let model = self.model.acquire();
                self.check_admit(&core, &model)?;
                if let (Ok(p), Admit::Permit(t)) = (core, model) {
                    self.permits.push((p, t));
                }
            }
            Op::Record { pick, outcome, took } => {
                if let Some((p, t)) = self.take(*pick) {
                    p.record(*outcome, Duration::from_nanos(*took)).map_err(|e| format!("record refused: {e}"))?;
                    self.model.record(t, *outcome, *took);
                    self.used = Some(p);
                }
            }
            Op::Cancel { pick } => {
                if let Some((p, t)) = self.take(*pick) {
                    p.cancel().map_err(|e| format!("cancel refused: {e}"))?;
                    self.model.cancel(t);
                    self.used = Some(p);
                }
            }
            Op::Drop { pick } => {
                if let Some((p, t)) = self.take(*pick) {
                    drop(p);
                    self.model.cancel(t);
                }
            }
            Op::RecordAgain { outcome } => {
                if let Some(p) = &self.used {
                    match p.record(*outcome, Duration::ZERO) {
                        Err(Error::PermitConsumed) => {}
                        other => return Err(format!("second outcome: expected PermitConsumed, got {other:?}")),
                    }
                    match p.cancel() {
                        Err(Error::PermitConsumed) => {}
                        other => return Err(format!("cancel after outcome: expected PermitConsumed, got {other:?}")),
                    }
                }
            }
            Op::Call { outcome } => {
                let o = *outcome;
                let core: Result<u8, CallError<()>> =
                    self.breaker.call_classified(|| if o == Outcome::Success { Ok(7) } else { Err(()) }, |_| o);
                let model = self.model.acquire();
                match (&core, &model) {
                    (Ok(7), Admit::Permit(_)) if o == Outcome::Success => {}
                    (Err(CallError::Failed(())), Admit::Permit(_)) if o != Outcome::Success => {}
                    (Err(CallError::Rejected(r)), Admit::Rejected { state, retry_after })
                        if r.state == *state && self.retry_after_ok(*state, r.retry_after, *retry_after) => {}
                    _ => return Err(format!("call: core {core:?}, model {model:?}")),
                }
                if let Admit::Permit(t) = model {
                    self.model.record(t, o, 0);
                }
            }
            Op::Advance { ns } => self.advance(*ns),
            Op::ToDeadline { which, delta } => {
                let d = self.model.deadlines();
                if !d.is_empty() {
                    let target = (d[which % d.len()] as i128 + i128::from(*delta)).max(self.model.now as i128) as u64;
                    self.advance(target - self.model.now);
                }
            }
            Op::ForceOpen => {
                self.breaker.force_open();
                self.model.manual(State::ForcedOpen, Reason::ForceOpen);
            }
            Op::Disable => {
                self.breaker.disable();
                self.model.manual(State::Disabled, Reason::Disable);
            }
            Op::Reset => {
                self.breaker.reset();
                self.model.manual(State::Closed, Reason::Reset);
            }
            Op::State => {
                let (c, m) = (self.breaker.state(), self.model.state());
                if c != m {
                    return Err(format!("state: core {c:?}, model {m:?}"));
                }
            }
            Op::Snapshot => self.compare_snapshots()?,
            Op::Fallback => {
                self.breaker.record_fallback();
                self.model.fallback();
            }
        }
        let core_events = self.events.lock().unwrap().clone();
        if !self.events_ok(&core_events) {
            return Err(format!("events differ:\n  core  {core_events:?}\n  model {:?}", self.model.events));
        }
        Ok(())
    }

    pub fn compare_snapshots(&mut self) -> Result<(), String> {
        let c = self.breaker.snapshot();
        let m = self.model.snapshot();
        if c != m {
            return Err(format!("snapshot:\n  core  {c:?}\n  model {m:?}"));
        }
        Ok(())
    }
}

/// Runs `ops` on a fresh breaker and model; the first disagreement, with its step.
pub fn run(cfg: &Cfg, ops: &[Op]) -> Result<(), String> {
    let mut h = Harness::new(cfg);
    if h.breaker.needs_duration() != cfg.slow_call_duration.is_some() {
        return Err("needs_duration".into());
    }
    for (i, op) in ops.iter().enumerate() {
        h.step(op).map_err(|e| format!("step {i} ({op:?}) at t={}ns: {e}", h.model.now))?;
    }
    // Cancel what is left (in order), then compare everything once more.
    while let Some((p, t)) = h.permits.pop() {
        drop(p);
        h.model.cancel(t);
    }
    h.step(&Op::Snapshot).map_err(|e| format!("final: {e}"))
}


// ---------------------------------------------------------------------------------------
// Raw bytes -> a valid configuration and operations (the fuzz target's input format;
// also used to replay the committed fuzz corpus in `cargo test`). Every byte string decodes.
// ---------------------------------------------------------------------------------------

struct Bytes<'a> {
    d: &'a [u8],
    i: usize,
}

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.d.get(self.i).copied().unwrap_or(0);
        self.i += 1;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }

    fn more(&self) -> bool {
        self.i < self.d.len()
    }

    /// Up to `max_ms` milliseconds, whole or (one time in four) to the nanosecond.
    fn duration(&mut self, max_ms: u64) -> u64 {
        let v = u64::from(self.u16());
        if v % 4 == 3 {
            (v * 7919 + u64::from(self.u16())) % (max_ms * MS) + 1
        } else {
            (v % max_ms + 1) * MS
        }
    }

    fn outcome(&mut self) -> Outcome {
        match self.u8() % 10 {
            0..=3 => Outcome::Success,
            4..=7 => Outcome::Failure,
            8 => Outcome::Timeout,
            _ => Outcome::Ignore,
        }
    }
}

/// Decodes `data` into a valid configuration and up to 400 operations.
pub fn decode(data: &[u8]) -> (Cfg, Vec<Op>) {
    let mut b = Bytes { d: data, i: 0 };
    let flags = b.u8();
    let rate = |x: u8| f64::from(x % 100 + 1) / 100.0;
    let consecutive_failures = match b.u8() % 8 {
        0..=2 => None,
        n => Some(u32::from(n) - 2),
    };
    let failure_rate_threshold = (flags & 1 != 0).then(|| rate(b.u8()));
    let slow_call_duration = (flags & 2 != 0).then(|| b.duration(30));
    let slow_call_rate_threshold = (flags & 4 != 0 && slow_call_duration.is_some()).then(|| rate(b.u8()));
    let window_size = u32::from(b.u8() % 8) + 1;
    let time_window = (flags & 8 != 0).then(|| (u64::from(b.u8() % 20 + 1) * MS, u32::from(b.u8() % 6) + 1));
    let minimum_calls = u32::from(b.u8() % 10) + 1;
    let open_duration = if b.u8() % 8 == 0 { 0 } else { b.duration(100) };
    let open_duration_max = (flags & 16 != 0).then(|| open_duration + u64::from(b.u16() % 301) * MS);
    let backoff_multiplier = [1.0, 1.5, 2.0, 3.0, 1.1][usize::from(b.u8() % 5)];
    let half_open_max_calls = u32::from(b.u8() % 4) + 1;
    let half_open_success_threshold = (u32::from(b.u8() % 4) + 1).min(half_open_max_calls);
    let probe_timeout = (flags & 32 != 0).then(|| b.duration(200));
    let cfg = Cfg {
        consecutive_failures,
        failure_rate_threshold,
        slow_call_rate_threshold,
        slow_call_duration,
        window_size,
        time_window,
        minimum_calls,
        open_duration,
        open_duration_max,
        backoff_multiplier,
        half_open_max_calls,
        half_open_success_threshold,
        probe_timeout,
        all_events: flags & 64 != 0,
        coarse_lag: if flags & 128 != 0 { b.duration(20) } else { 0 },
    };
    let mut ops = Vec::new();
    while b.more() && ops.len() < 400 {
        let op = match b.u8() % 16 {
            0..=2 => Op::Acquire,
            3..=5 => {
                let pick = usize::from(b.u8());
                let outcome = b.outcome();
                let took = if b.u8() % 3 == 0 { 0 } else { b.duration(40) };
                Op::Record { pick, outcome, took }
            }
            6 => Op::Cancel { pick: usize::from(b.u8()) },
            7 => Op::Drop { pick: usize::from(b.u8()) },
            8 => Op::Call { outcome: b.outcome() },
            9 => Op::Advance { ns: if b.u8() % 4 == 0 { 0 } else { b.duration(60) } },
            10 => Op::ToDeadline { which: usize::from(b.u8()), delta: (b.u8() % 3) as i8 - 1 },
            11 => match b.u8() % 4 {
                0 => Op::ForceOpen,
                1 => Op::Disable,
                _ => Op::Reset,
            },
            12 => Op::State,
            13 => Op::Snapshot,
            14 => Op::RecordAgain { outcome: b.outcome() },
            _ => Op::Fallback,
        };
        ops.push(op);
    }
    (cfg, ops)
}
