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
use std::sync::Arc;
#[cfg(not(target_os = "linux"))]
use std::sync::OnceLock;
use std::time::Duration;
#[cfg(not(target_os = "linux"))]
use std::time::Instant;

use parking_lot::Mutex;

use crate::timer::{self, TimerFn, TimerId, TimerQueue};

/// A monotonic source of time.
///
/// Implementations must never go backwards. The time is read only where a policy needs it
/// (an open breaker, a time window, a slow-call threshold), never on the plain closed path;
/// an open breaker's rejections and a time window's bucket use
/// [`now_coarse`](Clock::now_coarse) when it is sure to give the same answer.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Time elapsed since this clock's origin.
    fn now(&self) -> Duration;

    /// A cheaper reading of the same clock: never ahead of [`now`](Clock::now), and at
    /// most [`coarse_lag`](Clock::coarse_lag) behind it. Primitives use it only to decide
    /// what a precise reading would decide the same way (e.g. "an open breaker's time is
    /// certainly not up yet"), and read `now()` whenever the answer is within the lag, so
    /// their behaviour stays exact. The default is `now()` itself, with no lag.
    #[inline]
    fn now_coarse(&self) -> Duration {
        self.now()
    }

    /// How far [`now_coarse`](Clock::now_coarse) may lag behind [`now`](Clock::now).
    /// Read once, when a primitive is built. Zero (the default) means `now_coarse()` is
    /// exact; `Duration::MAX` makes every decision read `now()`.
    fn coarse_lag(&self) -> Duration {
        Duration::ZERO
    }

    /// A plain function giving [`now_coarse`](Clock::now_coarse) in nanoseconds, for clocks
    /// that need no `self` (the system clock): a breaker calls it directly on its open-state
    /// rejection path instead of going through the trait object. `None` (the default):
    /// primitives call `now_coarse()`.
    fn coarse_nanos_fn(&self) -> Option<fn() -> u64> {
        None
    }

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

/// The real monotonic clock (`CLOCK_MONOTONIC`, as `Instant`), measured from the first
/// time any `SystemClock` is read in this process.
///
/// On Linux, [`now_coarse`](Clock::now_coarse) reads `CLOCK_MONOTONIC_COARSE`: the same
/// clock as of the kernel's last tick, several times cheaper than a precise reading (about
/// 5 ns against 25 ns on a virtual machine), lagging it by at most one tick; `coarse_lag()`
/// reports two ticks (`2 × clock_getres(CLOCK_MONOTONIC_COARSE)`) to be safe. Elsewhere
/// `now_coarse()` is `now()`.
///
/// ```
/// use seawall::{Clock, SystemClock};
/// let a = SystemClock.now();
/// assert!(SystemClock.now() >= a);
/// assert!(SystemClock.now_coarse() <= SystemClock.now());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[cfg(not(target_os = "linux"))]
fn process_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

#[cfg(not(target_os = "linux"))]
impl Clock for SystemClock {
    fn now(&self) -> Duration {
        process_origin().elapsed()
    }
}

/// `clock_gettime` on Linux: both readings share one origin, so the coarse one is never
/// ahead of the precise one.
#[cfg(target_os = "linux")]
mod linux {
    use std::sync::OnceLock;
    use std::time::Duration;

    #[inline]
    fn read(id: libc::clockid_t) -> Duration {
        let mut ts = std::mem::MaybeUninit::<libc::timespec>::uninit();
        // SAFETY: `ts` is a valid out-pointer; both clock ids exist on every Linux we run on
        // (COARSE since 2.6.32).
        if unsafe { libc::clock_gettime(id, ts.as_mut_ptr()) } != 0 {
            return Duration::ZERO; // never ahead of anything; coarse_lag() is then MAX
        }
        // SAFETY: clock_gettime returned 0, so it filled `ts`.
        let ts = unsafe { ts.assume_init() };
        // The kernel keeps tv_nsec below 10^9 and tv_sec non-negative for monotonic clocks.
        Duration::new(ts.tv_sec.max(0) as u64, (ts.tv_nsec as u32).min(999_999_999))
    }

    #[inline]
    fn origin() -> Duration {
        static ORIGIN: OnceLock<Duration> = OnceLock::new();
        *ORIGIN.get_or_init(|| read(libc::CLOCK_MONOTONIC))
    }

    #[inline]
    pub(super) fn now() -> Duration {
        let o = origin();
        read(libc::CLOCK_MONOTONIC).saturating_sub(o)
    }

    #[inline]
    pub(super) fn now_coarse() -> Duration {
        let o = origin();
        read(libc::CLOCK_MONOTONIC_COARSE).saturating_sub(o)
    }

    /// [`now_coarse`] in nanoseconds, with the fewest steps: the open-state rejection path.
    pub(super) fn coarse_nanos() -> u64 {
        let origin = origin();
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: valid out-pointer; the clock exists (see `read`). On failure `ts` stays 0,
        // which is never ahead of anything.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        let raw = (ts.tv_sec.max(0) as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec.max(0) as u64);
        raw.saturating_sub(origin.as_nanos() as u64)
    }

    /// Two ticks of the coarse clock (its resolution is the tick length).
    pub(super) fn coarse_lag() -> Duration {
        static LAG: OnceLock<Duration> = OnceLock::new();
        *LAG.get_or_init(|| {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: valid out-pointer.
            let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
            let res = Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32);
            if rc != 0 || res.is_zero() {
                // No coarse clock (readings of it stay 0): an unbounded lag sends every
                // decision to the precise clock.
                Duration::MAX
            } else {
                res.saturating_mul(2)
            }
        })
    }
}

#[cfg(target_os = "linux")]
impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Duration {
        linux::now()
    }

    #[inline]
    fn now_coarse(&self) -> Duration {
        linux::now_coarse()
    }

    fn coarse_lag(&self) -> Duration {
        linux::coarse_lag()
    }

    fn coarse_nanos_fn(&self) -> Option<fn() -> u64> {
        Some(linux::coarse_nanos)
    }
}

impl SystemClock {
    /// The process's one shared handle to the system clock (the same `Arc` every time, so
    /// deadlines made from different calls can be compared).
    pub fn shared() -> SharedClock {
        static SHARED: std::sync::OnceLock<SharedClock> = std::sync::OnceLock::new();
        Arc::clone(SHARED.get_or_init(|| Arc::new(SystemClock)))
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
        let removed = self.timers.lock().cancel(id);
        removed.is_some() // dropped here, outside the lock: dropping may run user code
    }
}

/// Converts a clock reading to whole nanoseconds, the unit stored in atomics (saturating
/// at `u64::MAX`, about 584 years).
#[inline]
pub(crate) fn nanos(d: Duration) -> u64 {
    d.as_secs().checked_mul(1_000_000_000).and_then(|n| n.checked_add(u64::from(d.subsec_nanos()))).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BreakerConfig, CircuitBreaker, State};

    #[test]
    fn nanos_saturates() {
        assert_eq!(nanos(Duration::from_nanos(1_234_567_890_123)), 1_234_567_890_123);
        assert_eq!(nanos(Duration::MAX), u64::MAX);
        assert_eq!(nanos(Duration::from_secs(u64::MAX / 1_000_000_000 + 1)), u64::MAX);
    }

    #[test]
    fn system_clock_coarse_reading_is_never_ahead() {
        let lag = SystemClock.coarse_lag();
        assert!(lag > Duration::ZERO, "a coarse clock that is not now() must lag");
        if cfg!(target_os = "linux") {
            assert!(lag < Duration::from_millis(100), "two kernel ticks, got {lag:?}");
        }
        for _ in 0..10_000 {
            let c = SystemClock.now_coarse();
            let p = SystemClock.now();
            assert!(c <= p, "coarse {c:?} ahead of precise {p:?}");
        }
        if let Some(read) = SystemClock.coarse_nanos_fn() {
            // The breaker's direct reading is the same clock: between two trait readings,
            // never ahead of the precise one.
            for _ in 0..10_000 {
                let before = nanos(SystemClock.now_coarse());
                let direct = read();
                let p = nanos(SystemClock.now());
                assert!(before <= direct && direct <= p, "{before} <= {direct} <= {p}");
            }
        }
    }

    #[test]
    fn manual_clock_coarse_reading_is_exact() {
        let c = ManualClock::new();
        c.advance(Duration::from_nanos(12_345));
        assert_eq!(c.now_coarse(), c.now());
        assert_eq!(c.coarse_lag(), Duration::ZERO);
    }

    /// On the system clock, an open breaker rejects on the coarse clock, yet never admits
    /// early, never reports a wait shorter than the real one, and admits once the time is up.
    #[test]
    fn open_breaker_on_the_system_clock_decides_as_the_precise_clock() {
        let open = Duration::from_millis(30);
        let b = CircuitBreaker::new(BreakerConfig { consecutive_failures: Some(1), open_duration: open, ..BreakerConfig::named("sys") })
            .unwrap();
        let before_failure = SystemClock.now();
        b.try_acquire().unwrap().failure(Duration::ZERO);
        assert_eq!(b.state(), State::Open);
        let earliest = before_failure + open;
        let mut rejections = 0u32;
        loop {
            match b.try_acquire() {
                Ok(p) => {
                    let after = SystemClock.now();
                    assert!(after >= earliest, "admitted at {after:?}, before {earliest:?}");
                    assert!(p.is_probe());
                    p.success(Duration::ZERO);
                    break;
                }
                Err(r) => {
                    let after = SystemClock.now();
                    assert!(after + r.retry_after >= earliest, "retry_after {:?} at {after:?} understates", r.retry_after);
                    assert!(r.retry_after <= open, "retry_after {:?} longer than the open duration", r.retry_after);
                    rejections += 1;
                    assert!(after < earliest + Duration::from_secs(5), "still open 5 s after the open duration");
                }
            }
        }
        assert!(rejections > 0);
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.snapshot().rejected, u64::from(rejections));
    }
}
