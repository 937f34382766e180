//! Sliding windows of recorded outcomes, updated with atomics only.
//!
//! The closed state records every outcome here, so these are on the hot path: no lock,
//! no allocation. Both windows keep "counter = sum of what the window holds" exact once
//! concurrent writers finish: the count window swaps one slot and adjusts the sums by the
//! difference; the time window stamps each bucket with its absolute index and resets a
//! stale bucket before reuse.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::*};
use std::time::Duration;

use crate::clock::{nanos, Clock};

const RECORDED: u8 = 1;
const FAILED: u8 = 2;
const SLOW: u8 = 4;

/// Totals of a window: recorded calls, failures among them, slow calls among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Calls recorded (successes and failures; ignored calls are not recorded).
    pub calls: u64,
    /// Failed calls.
    pub failures: u64,
    /// Slow calls (successful or not).
    pub slow: u64,
}

impl Totals {
    /// failures / calls, 0 when empty.
    pub fn failure_rate(&self) -> f64 {
        ratio(self.failures, self.calls)
    }
    /// slow / calls, 0 when empty.
    pub fn slow_rate(&self) -> f64 {
        ratio(self.slow, self.calls)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn flags(failed: bool, slow: bool) -> u8 {
    RECORDED | if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 }
}

/// Keeps a value alone on its cache lines.
#[repr(align(128))]
struct Padded<T>(T);

/// The last N recorded outcomes, one byte each in a ring.
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    len: u64,
    /// Written by every call: kept off the line the sums are read from.
    cursor: Padded<AtomicU64>,
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

impl CountWindow {
    pub(crate) fn new(size: u32) -> Self {
        Self {
            slots: (0..size).map(|_| AtomicU8::new(0)).collect(),
            len: u64::from(size),
            cursor: Padded(AtomicU64::new(0)),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            slow: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(crate) fn record(&self, failed: bool, slow: bool) -> Totals {
        let new = flags(failed, slow);
        if new == RECORDED {
            let t = self.totals();
            if t.calls == self.len && t.failures == 0 && t.slow == 0 {
                // Every slot holds a plain success: one more changes nothing (when all the
                // slots hold the same outcome, which one is oldest does not matter), so
                // nothing is written and threads recording successes share no written line.
                return t;
            }
        }
        let i = self.cursor.0.fetch_add(1, Relaxed) % self.len;
        let slot = &self.slots[i as usize];
        // A slot that already holds this outcome needs no write: the result is the same as
        // swapping it in (a concurrent writer's swap, before or after, keeps the sums
        // equal to what the slots hold either way).
        if slot.load(Acquire) == new {
            return self.totals();
        }
        let old = slot.swap(new, AcqRel);
        self.apply(old, new)
    }

    /// Adjusts the sums by the change of one slot from `old` to `new`; returns the new totals.
    fn apply(&self, old: u8, new: u8) -> Totals {
        // A racing writer may swap out an outcome whose increment has not landed yet, so a
        // sum can be transiently one below zero: wrap instead of panicking, and report a
        // reading that is not a possible window content as empty (no rate is judged on it;
        // the sums are exact again once both writers finish).
        let adjust = |c: &AtomicU64, bit: u8| {
            let (o, n) = (old & bit != 0, new & bit != 0);
            match (o, n) {
                (false, true) => c.fetch_add(1, AcqRel).wrapping_add(1),
                (true, false) => c.fetch_sub(1, AcqRel).wrapping_sub(1),
                _ => c.load(Acquire),
            }
        };
        let t = Totals { calls: adjust(&self.calls, RECORDED), failures: adjust(&self.failures, FAILED), slow: adjust(&self.slow, SLOW) };
        self.plausible(t)
    }

    /// `t` if it can be what the window holds, else an empty reading.
    fn plausible(&self, t: Totals) -> Totals {
        let len = self.slots.len() as u64;
        if t.calls <= len && t.failures <= t.calls && t.slow <= t.calls {
            t
        } else {
            Totals::default()
        }
    }

    #[inline]
    pub(crate) fn totals(&self) -> Totals {
        self.plausible(Totals {
            calls: self.calls.load(Acquire),
            failures: self.failures.load(Acquire),
            slow: self.slow.load(Acquire),
        })
    }
}

const RESETTING: u64 = u64::MAX;

struct Bucket {
    /// Absolute bucket index (time / bucket length) this bucket currently holds, or RESETTING.
    stamp: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

/// The outcomes of the last `window_duration`, in `buckets` equal buckets.
pub(crate) struct TimeWindow {
    buckets: Box<[Bucket]>,
    bucket_nanos: u64,
    /// The bucket index last read from the clock and its position in `buckets`, packed as
    /// `index << 16 | position` (changes once per bucket length): lets most calls place
    /// themselves without a division. Indexes from 2^48 on are not cached.
    hint: AtomicU64,
    /// 1 + the highest bucket index a failed or slow call was recorded in (0: none since
    /// the last clear). While it is out of the window, no rate can be above 0, so a
    /// successful call skips summing the buckets.
    last_bad: AtomicU64,
}

const HINT_SHIFT: u32 = 16; // positions < MAX_WINDOW_BUCKETS = 10,000 < 2^16
const HINT_MAX_INDEX: u64 = (1 << (64 - HINT_SHIFT)) - 1;

impl TimeWindow {
    pub(crate) fn new(duration: Duration, buckets: u32) -> Self {
        let bucket_nanos = (nanos(duration) / u64::from(buckets)).max(1);
        Self {
            buckets: (0..buckets)
                .map(|_| Bucket {
                    // No bucket holds index u64::MAX - 1 in practice: "empty".
                    stamp: AtomicU64::new(RESETTING - 1),
                    calls: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    slow: AtomicU64::new(0),
                })
                .collect(),
            bucket_nanos,
            hint: AtomicU64::new(0),
            last_bad: AtomicU64::new(0),
        }
    }

    /// The bucket index of clock time `now`.
    #[inline]
    pub(crate) fn index(&self, now: Duration) -> u64 {
        nanos(now) / self.bucket_nanos
    }

    /// Bucket index `idx` and its position in `buckets`.
    #[inline]
    pub(crate) fn place(&self, idx: u64) -> (u64, usize) {
        (idx, (idx % self.buckets.len() as u64) as usize)
    }

    /// The bucket index (and position) of the clock's current time, exactly as
    /// `place(index(clock.now()))` would give it: from a coarse reading `c` when the
    /// precise time, somewhere in `[c, c + lag]`, cannot be in another bucket; from a
    /// precise reading otherwise (in the last `lag` of each bucket).
    #[inline]
    pub(crate) fn place_now(&self, clock: &dyn Clock, lag: u64) -> (u64, usize) {
        let c = nanos(clock.now_coarse());
        let b = self.bucket_nanos;
        let h = self.hint.load(Relaxed);
        let idx = h >> HINT_SHIFT;
        let start = idx.saturating_mul(b);
        if c >= start && (c - start).saturating_add(lag) < b {
            return (idx, (h & ((1 << HINT_SHIFT) - 1)) as usize);
        }
        self.place_slow(clock, c, lag)
    }

    #[inline(never)]
    fn place_slow(&self, clock: &dyn Clock, c: u64, lag: u64) -> (u64, usize) {
        let b = self.bucket_nanos;
        let idx = c / b;
        if (c - idx * b).saturating_add(lag) < b {
            let placed = self.place(idx);
            if idx <= HINT_MAX_INDEX {
                self.hint.store(idx << HINT_SHIFT | placed.1 as u64, Relaxed);
            }
            placed
        } else {
            self.place(self.index(clock.now()))
        }
    }

    /// The bucket for absolute index `idx` (at position `pos`), reset first if it holds an
    /// older index.
    #[inline]
    fn bucket(&self, idx: u64, pos: usize) -> &Bucket {
        let b = &self.buckets[pos];
        loop {
            let stamp = b.stamp.load(Acquire);
            if stamp == idx {
                return b;
            }
            if stamp == RESETTING {
                std::hint::spin_loop();
                continue;
            }
            if b.stamp.compare_exchange(stamp, RESETTING, AcqRel, Acquire).is_ok() {
                b.calls.store(0, Release);
                b.failures.store(0, Release);
                b.slow.store(0, Release);
                b.stamp.store(idx, Release);
                return b;
            }
        }
    }

    /// Records one outcome in the bucket of the current time, placed by `place` or
    /// `place_now`, and returns the window's totals after it; `None` when the window holds
    /// no failed and no slow call (every rate is 0, none can trip) and so was not summed.
    ///
    /// Memory order: a failed or slow call bumps its bucket, then raises `last_bad`, then
    /// sums; a good call bumps its bucket, then reads `last_bad`. All of these are SeqCst,
    /// so when a good call does not see a concurrent bad call's mark, that bad call's sum
    /// sees the good call: some call always judges a window holding both.
    #[inline]
    pub(crate) fn record(&self, (idx, pos): (u64, usize), failed: bool, slow: bool) -> Option<Totals> {
        let b = self.bucket(idx, pos);
        b.calls.fetch_add(1, SeqCst);
        if failed {
            b.failures.fetch_add(1, SeqCst);
        }
        if slow {
            b.slow.fetch_add(1, SeqCst);
        }
        if failed || slow {
            self.last_bad.fetch_max(idx.saturating_add(1), SeqCst);
        } else {
            let last = self.last_bad.load(SeqCst);
            if last == 0 || (last - 1 <= idx && idx - (last - 1) >= self.buckets.len() as u64) {
                return None;
            }
        }
        Some(self.totals(idx))
    }

    /// Totals of the window whose newest bucket has index `cur`.
    pub(crate) fn totals(&self, cur: u64) -> Totals {
        let n = self.buckets.len() as u64;
        let mut t = Totals::default();
        for b in self.buckets.iter() {
            let stamp = b.stamp.load(SeqCst);
            if stamp != RESETTING && stamp <= cur && cur - stamp < n {
                t.calls += b.calls.load(SeqCst);
                t.failures += b.failures.load(SeqCst);
                t.slow += b.slow.load(SeqCst);
            }
        }
        t
    }
}

/// The window a breaker records into, if any rate threshold needs one.
// One per closed epoch (a close starts a new one, so a late outcome cannot land in it); the
// count window is large only because its cursor has cache lines of its own.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Window {
    None,
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    /// Totals of a count window (a time window's need a time: `TimeWindow::totals`).
    pub(crate) fn totals(&self) -> Totals {
        match self {
            Window::Count(w) => w.totals(),
            Window::None | Window::Time(_) => Totals::default(),
        }
    }

    pub(crate) fn is_time(&self) -> bool {
        matches!(self, Window::Time(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_forgets_oldest() {
        let w = CountWindow::new(3);
        w.record(true, false);
        w.record(false, true);
        let t = w.record(false, false);
        assert_eq!(t, Totals { calls: 3, failures: 1, slow: 1 });
        let t = w.record(false, false);
        assert_eq!(t, Totals { calls: 3, failures: 0, slow: 1 });
    }

    #[test]
    fn count_window_full_of_successes_is_unchanged_by_another() {
        // The window's observable future is the same whether or not a success advanced the
        // cursor: a failure recorded later leaves after exactly `size` more calls.
        let w = CountWindow::new(3);
        for _ in 0..5 {
            w.record(false, false);
        }
        let cursor = w.cursor.0.load(Relaxed);
        assert_eq!(w.record(false, false), Totals { calls: 3, failures: 0, slow: 0 });
        assert_eq!(w.cursor.0.load(Relaxed), cursor, "no write");
        assert_eq!(w.record(true, false), Totals { calls: 3, failures: 1, slow: 0 });
        assert_eq!(w.record(false, false).failures, 1);
        assert_eq!(w.record(false, false).failures, 1);
        assert_eq!(w.record(false, false).failures, 0, "the failure left after 3 more calls");
        // Not yet full: successes are written.
        let w = CountWindow::new(3);
        assert_eq!(w.record(false, false).calls, 1);
        assert_eq!(w.record(false, false).calls, 2);
    }

    #[test]
    fn time_window_drops_old_buckets() {
        let w = TimeWindow::new(Duration::from_secs(10), 10);
        let at = |ms| w.index(Duration::from_millis(ms));
        assert_eq!(w.record(w.place(at(500)), true, false), Some(Totals { calls: 1, failures: 1, slow: 0 }));
        // The failure is still in the window: the success sums it.
        assert_eq!(w.record(w.place(at(1500)), false, false), Some(Totals { calls: 2, failures: 1, slow: 0 }));
        assert_eq!(w.totals(at(9_999)).calls, 2);
        assert_eq!(w.totals(at(10_000)).calls, 1);
        assert_eq!(w.totals(at(11_000)).calls, 0);
        // Once the failure has left the window, successes skip the sum (all rates are 0)...
        assert_eq!(w.record(w.place(at(10_500)), false, false), None);
        // ...but a slow call, or a failure, sums again.
        assert_eq!(w.record(w.place(at(10_600)), false, true), Some(Totals { calls: 3, failures: 0, slow: 1 }));
        assert_eq!(w.record(w.place(at(10_700)), false, false), Some(Totals { calls: 4, failures: 0, slow: 1 }));
    }

    /// A clock whose coarse reading lags its precise one by a set amount.
    #[derive(Debug)]
    struct Lagging {
        now: u64,
        behind: u64,
    }

    impl Clock for Lagging {
        fn now(&self) -> Duration {
            Duration::from_nanos(self.now)
        }
        fn now_coarse(&self) -> Duration {
            Duration::from_nanos(self.now - self.behind)
        }
    }

    #[test]
    fn place_now_matches_the_precise_place() {
        let w = TimeWindow::new(Duration::from_secs(1), 10); // 100 ms buckets
        let lag = 4_000_000; // 4 ms
        for now in (10_000_000u64..2_000_000_000).step_by(499_999) {
            for behind in [0, 1, 1_000_000, 3_999_999, lag] {
                let c = Lagging { now, behind };
                assert_eq!(w.place_now(&c, lag), w.place(w.index(c.now())), "now {now} behind {behind}");
            }
        }
        // With the hint pointing at a later bucket than the coarse reading (a slower thread).
        w.hint.store(19 << HINT_SHIFT | 9, Relaxed);
        let c = Lagging { now: 1_850_000_000, behind: 2_000_000 };
        assert_eq!(w.place_now(&c, lag), (18, 8));
        // Indexes too large to cache are placed by division every time.
        let tiny = TimeWindow::new(Duration::from_nanos(7), 7); // 1 ns buckets
        let c = Lagging { now: u64::MAX - 5, behind: 0 };
        assert_eq!(tiny.place_now(&c, 0), tiny.place(u64::MAX - 5));
        assert_eq!(tiny.hint.load(Relaxed), 0);
    }
}
