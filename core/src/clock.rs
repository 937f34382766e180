//! Clocks: where every primitive reads time.
//!
//! Every primitive takes its clock at construction, so tests (ours and our users') can
//! run on virtual time. Time is a monotonic [`Duration`] since the clock's own origin;
//! nothing here is wall-clock time.
//!
//! ```
//! use std::time::Duration;
//! use seawall::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! assert_eq!(clock.now(), Duration::ZERO);
//! clock.advance(Duration::from_millis(250));
//! assert_eq!(clock.now(), Duration::from_millis(250));
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::timer::{self, TimerFn, TimerId, TimerQueue};

/// A monotonic source of time.
///
/// Implementations must never go backwards. `now()` is read only where a policy needs it
/// (an open breaker, a time window, a slow-call threshold), never on the plain closed path.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Time elapsed since this clock's origin.
    fn now(&self) -> Duration;

    /// Runs `f` once at clock time `at` (at once if `at` has passed). The default serves
    /// it from the process's one timer thread, converting `at` to real time.
    fn schedule(&self, at: Duration, f: TimerFn) -> TimerId {
        let delay = at.saturating_sub(self.now());
        timer::schedule_system(SystemClock.now().saturating_add(delay), f)
    }

    /// Unschedules a timer; false when it already ran or was cancelled.
    fn cancel_timer(&self, id: TimerId) -> bool {
        timer::cancel_system(id)
    }
}

/// A shareable clock handle, as every primitive stores it.
pub type SharedClock = Arc<dyn Clock>;

/// The real monotonic clock (`Instant`), measured from the first time any
/// `SystemClock` is read in this process.
///
/// ```
/// use seawall::{Clock, SystemClock};
/// let a = SystemClock.now();
/// assert!(SystemClock.now() >= a);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

fn process_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        process_origin().elapsed()
    }
}

impl SystemClock {
    /// A shared handle to the system clock.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

/// A test clock whose time moves only when [`ManualClock::advance`] is called.
///
/// It starts at zero, so event timestamps are the same in every language and run.
/// Timers scheduled on it fire inside `advance`, in due order, on the advancing thread.
#[derive(Default)]
pub struct ManualClock {
    nanos: AtomicU64,
    timers: Mutex<TimerQueue>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock").field("now", &self.now()).field("timers", &self.timers.lock().len()).finish()
    }
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A shared handle at time zero; keep a clone to advance it.
    pub fn shared() -> Arc<ManualClock> {
        Arc::new(Self::new())
    }

    /// Moves time forward by `by` (saturating at `u64::MAX` nanoseconds), then runs the
    /// timers that became due, earliest first, outside the clock's lock.
    pub fn advance(&self, by: Duration) {
        let add = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_add(add)));
        loop {
            let due = self.timers.lock().pop_due(self.now());
            match due {
                Some(f) => timer::fire(f),
                None => break,
            }
        }
    }

    /// Timers scheduled and not yet fired.
    pub fn pending_timers(&self) -> usize {
        self.timers.lock().len()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }

    /// Queues `f` for the `advance` that reaches `at`; runs it at once if `at` has passed.
    fn schedule(&self, at: Duration, f: TimerFn) -> TimerId {
        if at <= self.now() {
            timer::fire(f);
            return timer::next_id();
        }
        self.timers.lock().push(at, f)
    }

    fn cancel_timer(&self, id: TimerId) -> bool {
        self.timers.lock().cancel(id)
    }
}

/// Converts a clock reading to whole nanoseconds, the unit stored in atomics.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
