//! Cumulative counters, striped per thread so the hot paths never share a written cache line.
//!
//! Every thread that records on a breaker takes a *slot* (a small process-wide number, the
//! lowest free one, given back when the thread exits). A breaker keeps one stripe of
//! counters per slot, allocated the first time that slot counts on it, each on its own
//! cache lines. A stripe is written only by the thread that holds its slot, so an
//! increment is a plain load and store (no locked instruction, no cache-line transfer);
//! threads beyond the last slot, or running their thread-local destructors, share one
//! stripe with atomic adds. A read sums the stripes: each counter is exact once the
//! writers finish, and never goes backwards while they run.
//!
//! A slot changes hands only through the pool's mutex (released at thread exit, taken by
//! a new thread), which orders the old owner's last writes before the new owner's first.
//!
//! The hot path reads the slot from a constant-initialised thread-local `Cell` (one load,
//! no lazy-init check); claiming it and registering the release at thread exit happen once
//! per thread, on the slow path.

use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};
use std::sync::OnceLock;

use parking_lot::Mutex;

/// Successes, ever.
pub(crate) const SUCCESSES: usize = 0;
/// Failures (timeouts included), ever.
pub(crate) const FAILURES: usize = 1;
/// Slow calls, ever.
pub(crate) const SLOW: usize = 2;
/// Ignored calls, ever.
pub(crate) const IGNORED: usize = 3;
/// Rejected calls, ever.
pub(crate) const REJECTED: usize = 4;
/// Timeouts (also in failures), ever.
pub(crate) const TIMEOUTS: usize = 5;
const KINDS: usize = 6;

/// One thread's counters, alone on its cache lines (128 bytes: two lines, as adjacent-line
/// prefetchers pair them).
#[repr(align(128))]
#[derive(Default)]
struct Stripe {
    c: [AtomicU64; KINDS],
}

/// How many slots there are: twice the CPUs, at least 8, at most 64. Threads beyond them
/// still count exactly, on the shared stripe.
fn slot_count() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        (cpus * 2).clamp(8, 64)
    })
}

/// The process-wide slot pool: `taken[k]` while a live thread holds slot k.
static POOL: Mutex<Vec<bool>> = Mutex::new(Vec::new());

/// No slot: all taken when the thread asked, or given back as the thread exits.
const NO_SLOT: usize = usize::MAX;
/// Not asked for yet.
const UNCLAIMED: usize = usize::MAX - 1;

thread_local! {
    /// This thread's slot (or `NO_SLOT` / `UNCLAIMED`).
    static SLOT: Cell<usize> = const { Cell::new(UNCLAIMED) };
    /// Gives the slot back when the thread exits.
    static GIVE_BACK: GiveBack = const { GiveBack };
}

struct GiveBack;

impl Drop for GiveBack {
    fn drop(&mut self) {
        let k = SLOT.with(|s| s.replace(NO_SLOT));
        if k < NO_SLOT - 1 {
            POOL.lock()[k] = false;
        }
    }
}

/// This thread's slot, or a value past every breaker's stripes (`NO_SLOT`, `UNCLAIMED`).
#[inline(always)]
fn my_slot() -> usize {
    SLOT.with(Cell::get)
}

/// Takes the lowest free slot for this thread (once), and arranges its release.
#[cold]
#[inline(never)]
fn claim() -> usize {
    // Registering the release first: if the thread is already exiting this fails, and the
    // thread keeps counting on the shared stripe.
    if GIVE_BACK.try_with(|_| ()).is_err() {
        SLOT.with(|s| s.set(NO_SLOT));
        return NO_SLOT;
    }
    let mut taken = POOL.lock();
    if taken.is_empty() {
        taken.resize(slot_count(), false);
    }
    let k = match taken.iter().position(|t| !t) {
        Some(k) => {
            taken[k] = true;
            k
        }
        None => NO_SLOT,
    };
    drop(taken);
    SLOT.with(|s| s.set(k));
    k
}

/// A breaker's cumulative counters.
pub(crate) struct Counters {
    stripes: Box<[AtomicPtr<Stripe>]>,
    shared: Stripe,
}

impl Default for Counters {
    fn default() -> Self {
        Self { stripes: (0..slot_count()).map(|_| AtomicPtr::new(std::ptr::null_mut())).collect(), shared: Stripe::default() }
    }
}

impl Counters {
    /// Adds one to counter `kind` (and to `also` unless it is `usize::MAX`).
    #[inline(always)]
    pub(crate) fn add(&self, kind: usize, also: usize) {
        let k = my_slot();
        match self.stripes.get(k) {
            Some(p) => {
                let s = p.load(Acquire);
                // SAFETY: a non-null pointer is a stripe installed by `install`, which lives
                // as long as `self`.
                let s = if s.is_null() { self.install(p) } else { unsafe { &*s } };
                // Only this thread writes this stripe: a plain read-and-store is exact.
                bump(&s.c[kind]);
                if also != usize::MAX {
                    bump(&s.c[also]);
                }
            }
            None => self.add_elsewhere(k, kind, also),
        }
    }

    /// This thread has no slot yet (claims one, then counts), or none to have: counts on
    /// the shared stripe.
    #[cold]
    #[inline(never)]
    fn add_elsewhere(&self, k: usize, kind: usize, also: usize) {
        if k == UNCLAIMED && claim() < self.stripes.len() {
            return self.add(kind, also);
        }
        self.shared.c[kind].fetch_add(1, Relaxed);
        if also != usize::MAX {
            self.shared.c[also].fetch_add(1, Relaxed);
        }
    }

    #[cold]
    #[inline(never)]
    fn install(&self, p: &AtomicPtr<Stripe>) -> &Stripe {
        let s = Box::into_raw(Box::<Stripe>::default());
        // Only the slot's holder installs its stripe; readers only load the pointer.
        p.store(s, Release);
        // SAFETY: just allocated; freed only when the counters are dropped.
        unsafe { &*s }
    }

    /// The sum over every stripe.
    pub(crate) fn get(&self, kind: usize) -> u64 {
        let mut n = self.shared.c[kind].load(Acquire);
        for p in self.stripes.iter() {
            let s = p.load(Acquire);
            if !s.is_null() {
                // SAFETY: installed stripes live as long as `self`.
                n += unsafe { &*s }.c[kind].load(Acquire);
            }
        }
        n
    }
}

#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
}

impl Drop for Counters {
    fn drop(&mut self) {
        for p in self.stripes.iter_mut() {
            let s = *p.get_mut();
            if !s.is_null() {
                // SAFETY: allocated by `install` with Box::into_raw, freed once here.
                drop(unsafe { Box::from_raw(s) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sums_are_exact_across_threads_and_slot_reuse() {
        let c = Arc::new(Counters::default());
        // More threads than slots, some alive at once, some one after the other.
        for _ in 0..3 {
            std::thread::scope(|s| {
                for _ in 0..(slot_count() + 4) {
                    let c = &c;
                    s.spawn(move || {
                        for _ in 0..10_000 {
                            c.add(SUCCESSES, usize::MAX);
                            c.add(FAILURES, TIMEOUTS);
                        }
                    });
                }
            });
        }
        let threads = 3 * (slot_count() as u64 + 4);
        assert_eq!(c.get(SUCCESSES), threads * 10_000);
        assert_eq!(c.get(FAILURES), threads * 10_000);
        assert_eq!(c.get(TIMEOUTS), threads * 10_000);
        assert_eq!(c.get(REJECTED), 0);
    }
}
