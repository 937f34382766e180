//! Model checking of the breaker's lock-free parts with `loom` (issue 9, docs/hardening.md).
//!
//! Run (the only way these models are compiled):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p seawall --no-default-features --release --test loom_breaker
//! ```
//!
//! The core uses `std` atomics directly and keeps these parts `pub(crate)`, so loom cannot
//! swap its types into them without edits through the core. Instead, each algorithm is
//! *mirrored* here with loom's types: the function bodies between `MIRROR` markers are the
//! core's own text (only the atomic types come from loom), and
//! `mirrors_are_the_core_code` (an ordinary test, run by `cargo test`) fails as soon as the
//! core's text changes, so a mirror cannot silently drift from what it checks.
//!
//! Models (2 or 3 threads, every interleaving loom's exploration reaches; see each):
//!
//! 1. the count window (`window.rs`): swap a slot, adjust the sums by the difference, with
//!    racing records, wrap-around onto one slot, and a racing reset of the slots (model only:
//!    the core installs a new window on close): at quiescence the sums equal what the slots
//!    hold;
//! 2. the per-thread counters (`counters.rs`): stripes written with a plain load and
//!    store by their slot's holder, installed on first use, a slot handed from an exiting
//!    thread to a new one through the pool's mutex, the shared stripe for threads without a
//!    slot: sums exact at quiescence, and a concurrent reader never sees a sum go down;
//! 3. the epoch word (`mod.rs`): a failure recorded on a permit of an older epoch, racing a
//!    transition, never changes the state of the newer epoch.
//!
//! Findings are kept as ignored tests (docs/hardening.md, open findings).

// ---------------------------------------------------------------------------------------
// The drift guard (ordinary test)
// ---------------------------------------------------------------------------------------

mod prop_support;

#[cfg(not(loom))]
#[test]
fn mirrors_are_the_core_code() {
    let core = [
        ("window", "core/src/breaker/window.rs", include_str!("../src/breaker/window.rs")),
        ("counters", "core/src/breaker/counters.rs", include_str!("../src/breaker/counters.rs")),
        ("breaker", "core/src/breaker/mod.rs", include_str!("../src/breaker/mod.rs")),
    ];
    let checked = prop_support::check_mirrors(include_str!("loom_breaker.rs"), "loom_breaker.rs", &core);
    assert_eq!(checked.len(), 10, "mirrored pieces: {checked:?}");
}

// ---------------------------------------------------------------------------------------
// The models
// ---------------------------------------------------------------------------------------

/// loom's bound on preemptions per execution: `short` in the short (CI) variant, one more
/// with `SEAWALL_HARDENING_LONG=1`; `LOOM_MAX_PREEMPTIONS` overrides both.
#[cfg(loom)]
fn builder(short: usize) -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    let long = std::env::var("SEAWALL_HARDENING_LONG").is_ok_and(|v| !v.is_empty() && v != "0");
    if std::env::var("LOOM_MAX_PREEMPTIONS").is_err() {
        b.preemption_bound = Some(if long { short + 1 } else { short });
    }
    b
}

#[cfg(loom)]
mod count_window {
    use loom::sync::atomic::{AtomicU64, AtomicU8, Ordering::*};
    use loom::sync::Arc;
    use loom::thread;

    const RECORDED: u8 = 1;
    const FAILED: u8 = 2;
    const SLOW: u8 = 4;

    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Totals {
        pub calls: u64,
        pub failures: u64,
        pub slow: u64,
    }

    fn flags(failed: bool, slow: bool) -> u8 {
        RECORDED | if failed { FAILED } else { 0 } | if slow { SLOW } else { 0 }
    }

    struct Padded<T>(T);

    pub struct CountWindow {
        slots: Box<[AtomicU8]>,
        len: u64,
        cursor: Padded<AtomicU64>,
        calls: AtomicU64,
        failures: AtomicU64,
        slow: AtomicU64,
    }

    impl CountWindow {
        pub fn new(size: u32) -> Self {
            Self {
                slots: (0..size).map(|_| AtomicU8::new(0)).collect(),
                len: u64::from(size),
                cursor: Padded(AtomicU64::new(0)),
                calls: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                slow: AtomicU64::new(0),
            }
        }

        // MIRROR window CountWindow::record
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
        // END window CountWindow::record

        /// Model only: empties the window in place while records race it. The core no longer
        /// clears a window (a close installs a new one, `EpochWindow` in breaker/mod.rs); the
        /// model keeps checking that the sums' arithmetic survives a racing reset of slots.
        pub(crate) fn clear(&self) {
            for slot in self.slots.iter() {
                let old = slot.swap(0, AcqRel);
                if old != 0 {
                    self.apply(old, 0);
                }
            }
        }

        /// What the slots hold (at quiescence).
        fn recount(&self) -> Totals {
            let mut t = Totals::default();
            for s in self.slots.iter() {
                let v = s.load(SeqCst);
                t.calls += u64::from(v & RECORDED != 0);
                t.failures += u64::from(v & FAILED != 0);
                t.slow += u64::from(v & SLOW != 0);
            }
            t
        }
    }

    type Calls = &'static [(bool, bool)];

    /// Threads record `calls` each (and one may `clear`); at quiescence the sums are what
    /// the slots hold. Returns every `Totals` a `record` returned, for further checks.
    fn run(size: u32, threads: &'static [Calls], clear: bool, check_returned: bool) {
        let bound = if threads.len() > 2 || clear { 2 } else { 3 };
        super::builder(bound).check(move || {
            let w = Arc::new(CountWindow::new(size));
            // Start from a full window of successes (the all-successes fast path is live).
            for _ in 0..size {
                w.record(false, false);
            }
            let handles: Vec<_> = threads
                .iter()
                .map(|calls| {
                    let w = w.clone();
                    thread::spawn(move || {
                        let mut seen = Vec::new();
                        for &(failed, slow) in calls.iter() {
                            seen.push(w.record(failed, slow));
                        }
                        seen
                    })
                })
                .collect();
            if clear {
                w.clear();
            }
            for h in handles {
                for t in h.join().unwrap() {
                    if check_returned {
                        assert!(
                            t.calls <= u64::from(size) && t.failures <= t.calls && t.slow <= t.calls,
                            "a record returned totals out of range: {t:?} (window of {size})"
                        );
                    }
                }
            }
            assert_eq!(w.totals(), w.recount(), "sums differ from the slots at quiescence");
        });
    }

    #[test]
    fn two_threads_on_one_slot() {
        run(1, &[&[(true, false)], &[(false, true)]], false, false);
    }

    #[test]
    fn two_threads_wrapping_around_two_slots() {
        run(2, &[&[(true, false), (false, false)], &[(false, true), (true, true)]], false, false);
    }

    #[test]
    fn three_threads_on_two_slots() {
        run(2, &[&[(true, false)], &[(false, false)], &[(true, true)]], false, false);
    }

    #[test]
    fn records_racing_a_clear() {
        run(2, &[&[(true, false), (false, true)], &[(true, true)]], true, false);
    }

    /// Finding (docs/hardening.md): `apply` computes `fetch_sub(1) - 1`; when a racing
    /// writer's decrement of a sum lands before the increment it undoes (two records on one
    /// slot, or a `clear` racing a record), the previous value is 0 and the subtraction
    /// overflows: a panic in debug builds ("attempt to subtract with overflow"), and in
    /// release a `Totals` with `failures` (or `calls`, `slow`) near `u64::MAX`, which
    /// `rate_reason` reads as a failure rate above every threshold: a spurious trip. The
    /// sums themselves are right again once both writers are done (the tests above).
    #[test]
    fn every_returned_total_is_in_range() {
        // A failure and a slow success on a one-slot window: the second swaps the first's
        // outcome out before the first has counted its failure.
        run(1, &[&[(true, false)], &[(false, true)]], false, true);
    }
}

#[cfg(loom)]
mod counters {
    use loom::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    pub(crate) const SUCCESSES: usize = 0;
    pub(crate) const FAILURES: usize = 1;
    pub(crate) const TIMEOUTS: usize = 5;
    const KINDS: usize = 6;

    #[derive(Default)]
    struct Stripe {
        c: [AtomicU64; KINDS],
    }

    const NO_SLOT: usize = usize::MAX;

    /// The process-wide pool of `counters.rs` (`POOL`), per model run.
    struct Pool(Mutex<Vec<bool>>);

    impl Pool {
        /// `claim()` without the thread-local plumbing: the lowest free slot, or none.
        fn claim(&self) -> usize {
            let mut taken = self.0.lock().unwrap();
            match taken.iter().position(|t| !t) {
                Some(k) => {
                    taken[k] = true;
                    k
                }
                None => NO_SLOT,
            }
        }

        /// `GiveBack::drop` at thread exit.
        fn give_back(&self, k: usize) {
            if k != NO_SLOT {
                self.0.lock().unwrap()[k] = false;
            }
        }
    }

    struct Counters {
        stripes: Box<[AtomicPtr<Stripe>]>,
        shared: Stripe,
    }

    impl Counters {
        fn new(slots: usize) -> Self {
            Self { stripes: (0..slots).map(|_| AtomicPtr::new(std::ptr::null_mut())).collect(), shared: Stripe::default() }
        }

        /// `add` with the thread's slot `k` passed in (the core reads it from a thread-local).
        fn add(&self, k: usize, kind: usize, also: usize) {
            // MIRROR counters Counters::add
            match self.stripes.get(k) {
                Some(p) => {
                    let s = p.load(Acquire);
                    let s = if s.is_null() { self.install(p) } else { unsafe { &*s } };
                    bump(&s.c[kind]);
                    if also != usize::MAX {
                        bump(&s.c[also]);
                    }
                }
                // END counters Counters::add
                None => {
                    // MIRROR counters Counters::add_elsewhere
                    self.shared.c[kind].fetch_add(1, Relaxed);
                    if also != usize::MAX {
                        self.shared.c[also].fetch_add(1, Relaxed);
                    }
                    // END counters Counters::add_elsewhere
                }
            }
        }

        // MIRROR counters Counters::install
        #[cold]
        #[inline(never)]
        fn install(&self, p: &AtomicPtr<Stripe>) -> &Stripe {
            let s = Box::into_raw(Box::<Stripe>::default());
            p.store(s, Release);
            unsafe { &*s }
        }

        /// The sum over every stripe.
        pub(crate) fn get(&self, kind: usize) -> u64 {
            let mut n = self.shared.c[kind].load(Acquire);
            for p in self.stripes.iter() {
                let s = p.load(Acquire);
                if !s.is_null() {
                    n += unsafe { &*s }.c[kind].load(Acquire);
                }
            }
            n
        }
        // END counters Counters::install
    }

    // MIRROR counters bump
    #[inline]
    fn bump(c: &AtomicU64) {
        c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
    }
    // END counters bump

    impl Drop for Counters {
        fn drop(&mut self) {
            for p in self.stripes.iter_mut() {
                let s = p.with_mut(|s| *s);
                if !s.is_null() {
                    drop(unsafe { Box::from_raw(s) });
                }
            }
        }
    }

    /// `threads` threads, each claiming a slot from a pool of `slots` (some may find none
    /// and count on the shared stripe, some take a slot another gave back), adding `adds`
    /// successes and one failure + timeout, then giving the slot back; the main thread
    /// reads meanwhile if `read_while_running`. Exact sums at quiescence, monotonic reads
    /// during.
    fn run(slots: usize, threads: usize, adds: u64, read_while_running: bool) {
        super::builder(if threads > 2 { 2 } else { 3 }).check(move || {
            let c = Arc::new(Counters::new(slots));
            let pool = Arc::new(Pool(Mutex::new(vec![false; slots])));
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (c, pool) = (c.clone(), pool.clone());
                    thread::spawn(move || {
                        let k = pool.claim();
                        for _ in 0..adds {
                            c.add(k, SUCCESSES, usize::MAX);
                        }
                        c.add(k, FAILURES, TIMEOUTS);
                        pool.give_back(k);
                    })
                })
                .collect();
            if read_while_running {
                let first = c.get(SUCCESSES);
                let second = c.get(SUCCESSES);
                assert!(second >= first, "a sum went down while writers ran: {first} then {second}");
            }
            for h in handles {
                h.join().unwrap();
            }
            let n = threads as u64;
            assert_eq!(c.get(SUCCESSES), n * adds, "successes at quiescence");
            assert_eq!(c.get(FAILURES), n, "failures at quiescence");
            assert_eq!(c.get(TIMEOUTS), n, "timeouts at quiescence");
        });
    }

    #[test]
    fn two_threads_two_slots() {
        run(2, 2, 2, true);
    }

    #[test]
    fn a_slot_changes_hands_or_a_thread_counts_on_the_shared_stripe() {
        // One slot for two threads: the second either waits for none (shared stripe) or
        // takes the slot the first gave back and must see its counts.
        run(1, 2, 2, true);
    }

    #[test]
    fn three_threads_two_slots() {
        // One of the three finds no free slot (or a slot given back): every path at once.
        run(2, 3, 1, false);
    }
}

#[cfg(loom)]
mod epoch {
    use loom::sync::atomic::{AtomicU64, Ordering::*};
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[repr(u8)]
    enum State {
        Closed = 0,
        Open = 1,
    }

    fn epoch_of(w: u64) -> u64 {
        w >> 3
    }

    fn word(epoch: u64, s: State) -> u64 {
        (epoch << 3) | s as u64
    }

    const RUN_MASK: u64 = 0xffff_ffff;

    fn run_tag(epoch: u64) -> u64 {
        (epoch & RUN_MASK) << 32
    }

    #[derive(Clone, Copy)]
    struct Ticket {
        epoch: u64,
    }

    /// The parts of `Inner` the closed path touches: the state word, the consecutive count,
    /// the transition lock. `threshold` is `consecutive_failures`.
    struct Inner {
        word: AtomicU64,
        consecutive: AtomicU64,
        locked: Mutex<()>,
        consecutive_threshold: u32,
    }

    impl Inner {
        fn new(threshold: u32) -> Self {
            Inner { word: AtomicU64::new(word(0, State::Closed)), consecutive: AtomicU64::new(run_tag(0)), locked: Mutex::new(()), consecutive_threshold: threshold }
        }

        /// The run of failures of epoch `e` (what `snapshot` reports while closed).
        fn run_in(&self, e: u64) -> u32 {
            let c = self.consecutive.load(SeqCst);
            if c & !RUN_MASK == run_tag(e) {
                (c & RUN_MASK) as u32
            } else {
                0
            }
        }

        fn count_failure(&self, e: u64) -> Option<u32> {
            // MIRROR breaker count_failure
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
            // END breaker count_failure
        }

        /// `set`: the new epoch's run restarts before the word moves.
        fn set(&self, w: u64, to: State) {
            // MIRROR breaker set
            self.consecutive.store(run_tag(epoch_of(w) + 1), Release);
            self.word.store(word(epoch_of(w) + 1, to), Release);
            // END breaker set
        }

        /// `record_any` for a failure: counted, then judged against the word read now.
        fn failure(&self, t: Ticket) {
            self.record_counted(t, self.word.load(Acquire));
        }

        fn record_counted(&self, t: Ticket, w: u64) {
            // MIRROR breaker record_counted
            if w == word(t.epoch, State::Closed) {
                // END breaker record_counted
                self.record_closed_failure(w);
            }
        }

        fn record_closed_failure(&self, w: u64) {
            // MIRROR breaker record_closed_failure
            let Some(in_a_row) = self.count_failure(epoch_of(w)) else {
                return; // late: the breaker left the epoch after this outcome read the state
            };
            // END breaker record_closed_failure
            if self.consecutive_threshold != 0 && in_a_row >= self.consecutive_threshold {
                self.trip(w);
            }
        }

        /// `trip` + `open_for` (the lock, the check of the word, the writes).
        fn trip(&self, w: u64) {
            let l = self.locked.lock().unwrap();
            // MIRROR breaker trip
            if self.word.load(Acquire) == w {
                // END breaker trip
                self.set(w, State::Open);
            }
            drop(l);
        }

        /// `reset()`: `manual` + `close` (window clearing left out).
        fn reset(&self) {
            let l = self.locked.lock().unwrap();
            let w = self.word.load(Acquire);
            self.set(w, State::Closed);
            drop(l);
        }
    }

    /// A failure on a permit of epoch 0 races a `reset()`: whatever the interleaving, the
    /// final state is closed (either the failure tripped first and the reset closed after
    /// it, or the failure was late and could not trip the new epoch).
    #[test]
    fn a_late_failure_never_trips_a_newer_epoch() {
        super::builder(3).check(|| {
            let b = Arc::new(Inner::new(1));
            let t = Ticket { epoch: 0 };
            let b2 = b.clone();
            let h = thread::spawn(move || b2.failure(t));
            b.reset();
            h.join().unwrap();
            let w = b.word.load(SeqCst);
            assert!(w == word(1, State::Closed) || w == word(2, State::Closed), "final word {w:#x}");
        });
    }

    /// The same with a failure of the new epoch racing the late one: the new epoch trips
    /// once, on its own failure; the late one never opens a second time.
    #[test]
    fn a_late_failure_racing_a_current_one_trips_at_most_once() {
        super::builder(3).check(|| {
            let b = Arc::new(Inner::new(1));
            b.reset(); // epoch 1, closed
            let (b1, b2) = (b.clone(), b.clone());
            let late = thread::spawn(move || b1.failure(Ticket { epoch: 0 }));
            let current = thread::spawn(move || b2.failure(Ticket { epoch: 1 }));
            late.join().unwrap();
            current.join().unwrap();
            assert_eq!(b.word.load(SeqCst), word(2, State::Open));
        });
    }

    /// Finding 3 (docs/hardening.md, fixed): a failure of epoch 0 that read the state word
    /// before a `reset()` and counts after it must not add to the new epoch's run of
    /// failures (with `consecutive_failures = 2`, one real failure after the reset would
    /// then open the breaker). The run is tagged with its epoch, restarted by `set` before
    /// the word moves, and `count_failure` refuses another epoch's run.
    #[test]
    fn a_late_failure_never_counts_in_a_newer_epoch() {
        super::builder(3).check(|| {
            let b = Arc::new(Inner::new(2));
            let b2 = b.clone();
            let h = thread::spawn(move || b2.failure(Ticket { epoch: 0 }));
            b.reset();
            h.join().unwrap();
            assert_eq!(b.word.load(SeqCst), word(1, State::Closed));
            assert_eq!(b.run_in(1), 0, "the new epoch starts with no failure in a row");
        });
    }
}
