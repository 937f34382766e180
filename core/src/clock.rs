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

/// A monotonic source of time.
///
/// Implementations must never go backwards. `now()` is read only where a policy needs it
/// (an open breaker, a time window, a slow-call threshold), never on the plain closed path.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Time elapsed since this clock's origin.
    fn now(&self) -> Duration;
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
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
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

    /// Moves time forward by `by` (saturating at `u64::MAX` nanoseconds).
    pub fn advance(&self, by: Duration) {
        let add = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n.saturating_add(add)));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

/// Converts a clock reading to whole nanoseconds, the unit stored in atomics.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
