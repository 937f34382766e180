//! Cancellation tokens: how work running under a timeout learns it should stop.
//!
//! A token is cancelled once; callbacks registered on it run exactly once, outside the
//! token's lock, on the thread that cancels (or at registration, if it is already
//! cancelled). A deadline can cancel a token at its time through the clock's timer
//! ([`CancelToken::cancel_at`]); the returned guard unschedules it when the work settles
//! first, so nothing is left pending.
//!
//! ```
//! use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
//! use std::time::Duration;
//! use seawall::{CancelToken, CancelReason, Deadline, ManualClock};
//!
//! let clock = ManualClock::shared();
//! let token = CancelToken::new();
//! let closed = Arc::new(AtomicBool::new(false));
//! let c = closed.clone();
//! token.on_cancel(move |_| c.store(true, Ordering::SeqCst)); // e.g. close a socket
//! let _guard = token.cancel_at(&Deadline::after(clock.clone(), Duration::from_millis(50)));
//! clock.advance(Duration::from_millis(50));
//! assert!(closed.load(Ordering::SeqCst));
//! assert_eq!(token.reason(), Some(CancelReason::DeadlineExceeded));
//! ```

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::deadline::Deadline;
use crate::timer::TimerGuard;

/// Why a token was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// `cancel()` was called.
    Cancelled,
    /// A deadline passed.
    DeadlineExceeded,
}

impl CancelReason {
    /// `"cancelled"` or `"deadline_exceeded"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::Cancelled => "cancelled",
            CancelReason::DeadlineExceeded => "deadline_exceeded",
        }
    }
}

type Callback = Box<dyn FnOnce(CancelReason) + Send>;

/// Identifies a registered callback, for removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

#[derive(Default)]
struct State {
    reason: Option<CancelReason>,
    callbacks: Vec<(u64, Callback)>,
    next: u64,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
}

/// A cancellation signal shared by the caller and the work. Cheap to clone.
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken").field("reason", &self.reason()).finish()
    }
}

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels with [`CancelReason::Cancelled`]. True when this call cancelled it.
    pub fn cancel(&self) -> bool {
        self.cancel_with(CancelReason::Cancelled)
    }

    /// Cancels with `reason` and runs the callbacks, once. True when this call cancelled it.
    pub fn cancel_with(&self, reason: CancelReason) -> bool {
        let callbacks = {
            let mut s = self.inner.state.lock();
            if s.reason.is_some() {
                return false;
            }
            s.reason = Some(reason);
            std::mem::take(&mut s.callbacks)
        };
        for (_, f) in callbacks {
            run(f, reason);
        }
        true
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.state.lock().reason.is_some()
    }

    /// Why it was cancelled, if it was.
    pub fn reason(&self) -> Option<CancelReason> {
        self.inner.state.lock().reason
    }

    /// Runs `f` when the token is cancelled (now, if it already is).
    pub fn on_cancel(&self, f: impl FnOnce(CancelReason) + Send + 'static) -> CallbackId {
        let mut s = self.inner.state.lock();
        let id = s.next;
        s.next += 1;
        match s.reason {
            Some(reason) => {
                drop(s);
                run(Box::new(f), reason);
            }
            None => s.callbacks.push((id, Box::new(f))),
        }
        CallbackId(id)
    }

    /// Removes a callback that has not run; false when it ran or was removed.
    pub fn remove(&self, id: CallbackId) -> bool {
        let removed = {
            let mut s = self.inner.state.lock();
            let at = s.callbacks.iter().position(|(i, _)| *i == id.0);
            at.map(|i| s.callbacks.remove(i))
        };
        removed.is_some() // the closure is dropped here, outside the lock
    }

    /// A token cancelled when this one is (with the same reason), and cancellable on its
    /// own. The parent keeps only a weak reference to it.
    pub fn child(&self) -> CancelToken {
        let child = CancelToken::new();
        let weak: Weak<Inner> = Arc::downgrade(&child.inner);
        self.on_cancel(move |reason| {
            if let Some(inner) = weak.upgrade() {
                CancelToken { inner }.cancel_with(reason);
            }
        });
        child
    }

    /// Cancels this token with [`CancelReason::DeadlineExceeded`] when `deadline` passes,
    /// through the deadline clock's timer. Drop the guard when the work settles first.
    /// A deadline already past cancels the token before this returns, on every clock.
    pub fn cancel_at(&self, deadline: &Deadline) -> TimerGuard {
        let clock = deadline.clock().clone();
        if deadline.expired() {
            self.cancel_with(CancelReason::DeadlineExceeded);
            return TimerGuard::inert(clock);
        }
        let token = self.clone();
        let id = clock.schedule(
            deadline.instant(),
            Box::new(move || {
                token.cancel_with(CancelReason::DeadlineExceeded);
            }),
        );
        TimerGuard::new(clock, id)
    }
}

fn run(f: Callback, reason: CancelReason) {
    if catch_unwind(AssertUnwindSafe(|| f(reason))).is_err() {
        eprintln!("seawall: a cancellation callback panicked; ignored");
    }
}
