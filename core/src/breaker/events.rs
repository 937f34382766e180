//! State-change events, delivered outside the breaker's lock and in the order they happened.
//!
//! A transition appends its event to a queue while it still holds the transition lock, so
//! the queue order is the transition order. After the lock is released, one thread at a
//! time drains the queue and calls the listeners; a thread that finds delivery already
//! under way leaves its event to that thread. A listener may therefore call back into the
//! breaker (even trigger a transition) without deadlock, and a panicking listener is
//! contained: the state machine goes on.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::State;

/// Why a breaker changed state. Spelled the same in every language (`as_str`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `consecutive_failures` failures in a row.
    ConsecutiveFailures,
    /// The failure rate reached `failure_rate_threshold`.
    FailureRate,
    /// The slow-call rate reached `slow_call_rate_threshold`.
    SlowCallRate,
    /// `open_duration` passed: probes are admitted.
    OpenDurationElapsed,
    /// A half-open probe failed.
    ProbeFailure,
    /// A half-open probe outlived `probe_timeout`.
    ProbeTimeout,
    /// `half_open_success_threshold` probes succeeded.
    ProbeSuccesses,
    /// `force_open()` was called.
    ForceOpen,
    /// `disable()` was called.
    Disable,
    /// `reset()` was called.
    Reset,
}

impl Reason {
    /// The reason as events spell it in every language.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ConsecutiveFailures => "consecutive_failures",
            Reason::FailureRate => "failure_rate",
            Reason::SlowCallRate => "slow_call_rate",
            Reason::OpenDurationElapsed => "open_duration_elapsed",
            Reason::ProbeFailure => "probe_failure",
            Reason::ProbeTimeout => "probe_timeout",
            Reason::ProbeSuccesses => "probe_successes",
            Reason::ForceOpen => "force_open",
            Reason::Disable => "disable",
            Reason::Reset => "reset",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One state change: `{breaker, from, to, at, reason}`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    /// The breaker's name.
    pub breaker: Arc<str>,
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// Clock time of the change (since the clock's origin).
    pub at: Duration,
    /// Why it changed.
    pub reason: Reason,
}

/// Something a breaker reports to listeners.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The state changed.
    StateChange(StateChange),
    /// A call was rejected.
    Rejected {
        /// The breaker's name.
        breaker: Arc<str>,
        /// The state that rejected.
        state: State,
        /// Time until probes are admitted (`Duration::MAX` when forced open).
        retry_after: Duration,
        /// Clock time of the rejection.
        at: Duration,
    },
    /// A call was recorded as timed out.
    Timeout {
        /// The breaker's name.
        breaker: Arc<str>,
        /// How long the call ran.
        took: Duration,
        /// Clock time of the record.
        at: Duration,
    },
    /// A rejected call was answered by a fallback (degraded service).
    Fallback {
        /// The breaker's name.
        breaker: Arc<str>,
        /// Clock time of the fallback.
        at: Duration,
    },
}

impl Event {
    /// `"state_change"`, `"rejected"`, `"timeout"` or `"fallback"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::StateChange(_) => "state_change",
            Event::Rejected { .. } => "rejected",
            Event::Timeout { .. } => "timeout",
            Event::Fallback { .. } => "fallback",
        }
    }
}

/// An event listener.
pub type Listener = Arc<dyn Fn(&Event) + Send + Sync>;

/// Identifies a registered listener, for removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(pub u64);

#[derive(Default)]
pub(crate) struct Events {
    queue: Mutex<VecDeque<Event>>,
    delivering: AtomicBool,
    listeners: Mutex<Arc<Vec<(ListenerId, Listener)>>>,
    /// Listeners for more than state changes: rejections, timeouts and fallbacks are
    /// queued only when there is one, so the hot paths pay one relaxed load otherwise.
    all_kinds: AtomicU64,
    next_id: AtomicU64,
}

impl Events {
    /// Queues an event. State changes are queued with the transition lock held, so queue
    /// order = change order.
    pub(crate) fn push(&self, e: Event) {
        self.queue.lock().push_back(e);
    }

    /// True when some listener wants rejections, timeouts and fallbacks.
    #[inline]
    pub(crate) fn wants_all(&self) -> bool {
        self.all_kinds.load(std::sync::atomic::Ordering::Relaxed) != 0
    }

    pub(crate) fn add(&self, f: Listener, all_kinds: bool) -> ListenerId {
        let id = ListenerId(self.next_id.fetch_add(1, SeqCst) * 2 + u64::from(all_kinds));
        if all_kinds {
            self.all_kinds.fetch_add(1, SeqCst);
        }
        let mut l = self.listeners.lock();
        let mut v: Vec<_> = l.as_ref().clone();
        v.push((id, f));
        *l = Arc::new(v);
        id
    }

    pub(crate) fn remove(&self, id: ListenerId) -> bool {
        let mut l = self.listeners.lock();
        let before = l.len();
        let v: Vec<_> = l.iter().filter(|(i, _)| *i != id).cloned().collect();
        let removed = v.len() != before;
        *l = Arc::new(v);
        if removed && id.0 % 2 == 1 {
            self.all_kinds.fetch_sub(1, SeqCst);
        }
        removed
    }

    /// Delivers queued events unless another thread is already doing it. Call with no lock held.
    pub(crate) fn deliver(&self) {
        loop {
            if self.delivering.compare_exchange(false, true, SeqCst, SeqCst).is_err() {
                return;
            }
            loop {
                let next = self.queue.lock().pop_front();
                let Some(e) = next else { break };
                let listeners = Arc::clone(&self.listeners.lock());
                for (_, f) in listeners.iter() {
                    if catch_unwind(AssertUnwindSafe(|| f(&e))).is_err() {
                        eprintln!("seawall: an event listener panicked; ignored");
                    }
                }
            }
            self.delivering.store(false, SeqCst);
            if self.queue.lock().is_empty() {
                return;
            }
        }
    }
}
