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

/// A state-change listener.
pub type Listener = Arc<dyn Fn(&StateChange) + Send + Sync>;

/// Identifies a registered listener, for removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(pub u64);

#[derive(Default)]
pub(crate) struct Events {
    queue: Mutex<VecDeque<StateChange>>,
    delivering: AtomicBool,
    listeners: Mutex<Arc<Vec<(ListenerId, Listener)>>>,
    next_id: AtomicU64,
}

impl Events {
    /// Queues an event. Called with the transition lock held, so queue order = change order.
    pub(crate) fn push(&self, e: StateChange) {
        self.queue.lock().push_back(e);
    }

    pub(crate) fn add(&self, f: Listener) -> ListenerId {
        let id = ListenerId(self.next_id.fetch_add(1, SeqCst));
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
                        eprintln!("seawall: a state-change listener of breaker '{}' panicked; ignored", e.breaker);
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
