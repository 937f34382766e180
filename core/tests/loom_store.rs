//! Model checking of the memory store's lock-free part with `loom` (issue 9,
//! docs/hardening.md): the entry and byte budget (`reserve` / `free` in
//! `core/src/store/memory.rs`), taken with two `fetch_update`s and rolled back when the
//! second fails. Everything else in the store runs under its shard mutexes.
//!
//! Run with the loom models of `loom_breaker.rs`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p seawall --no-default-features --release --test loom_store
//! ```
//!
//! As there, the functions between `MIRROR` markers are the core's text with loom's atomic
//! types, and `mirrors_are_the_core_code` (an ordinary test) fails when the core changes.
//! Checked, for 2 and 3 threads (at most 3 preemptions per execution with 2 threads, 2 with
//! 3; one more in the long variant): the budget is never exceeded (not even transiently), a
//! reservation is all or nothing, and at quiescence the counters equal what is held.

mod prop_support;

#[cfg(not(loom))]
#[test]
fn mirrors_are_the_core_code() {
    let core = [("memory", "core/src/store/memory.rs", include_str!("../src/store/memory.rs"))];
    let checked = prop_support::check_mirrors(include_str!("loom_store.rs"), "loom_store.rs", &core);
    assert_eq!(checked.len(), 1, "mirrored pieces: {checked:?}");
}

#[cfg(loom)]
mod budget {
    use loom::sync::atomic::{AtomicU64, Ordering::*};
    use loom::sync::Arc;
    use loom::thread;

    struct Budget {
        max_entries: u64,
        max_bytes: u64,
        entries: AtomicU64,
        bytes: AtomicU64,
    }

    impl Budget {
        // MIRROR memory reserve
        /// Takes `n` entries and `b` bytes of the budget, or nothing.
        fn reserve(&self, n: u64, b: u64) -> bool {
            let max_e = self.max_entries;
            if n > 0 && self.entries.fetch_update(AcqRel, Acquire, |e| (e + n <= max_e).then_some(e + n)).is_err() {
                return false;
            }
            let max_b = self.max_bytes;
            if b > 0 && self.bytes.fetch_update(AcqRel, Acquire, |x| (x + b <= max_b).then_some(x + b)).is_err() {
                self.entries.fetch_sub(n, AcqRel);
                return false;
            }
            true
        }

        fn free(&self, n: u64, b: u64) {
            self.entries.fetch_sub(n, AcqRel);
            self.bytes.fetch_sub(b, AcqRel);
        }
        // END memory reserve
    }

    /// Each thread reserves its `(entries, bytes)` (a claim is (1, key bytes), a completion
    /// (0, extra bytes)), checks the bounds hold, and frees what it got.
    fn run(max_entries: u64, max_bytes: u64, asks: &'static [(u64, u64)]) {
        let mut b = loom::model::Builder::new();
        if std::env::var("LOOM_MAX_PREEMPTIONS").is_err() {
            let long = std::env::var("SEAWALL_HARDENING_LONG").is_ok_and(|v| !v.is_empty() && v != "0");
            let short = if asks.len() > 2 { 2 } else { 3 };
            b.preemption_bound = if long { Some(short + 1) } else { Some(short) };
        }
        b.check(move || {
            let budget = Arc::new(Budget { max_entries, max_bytes, entries: AtomicU64::new(0), bytes: AtomicU64::new(0) });
            let handles: Vec<_> = asks
                .iter()
                .map(|&(n, bytes)| {
                    let budget = budget.clone();
                    thread::spawn(move || {
                        let got = budget.reserve(n, bytes);
                        let (e, x) = (budget.entries.load(Acquire), budget.bytes.load(Acquire));
                        assert!(e <= max_entries && x <= max_bytes, "over budget: {e} entries, {x} bytes");
                        if got {
                            budget.free(n, bytes);
                        }
                        got
                    })
                })
                .collect();
            let granted: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            assert_eq!(budget.entries.load(SeqCst), 0, "entries at quiescence ({granted:?})");
            assert_eq!(budget.bytes.load(SeqCst), 0, "bytes at quiescence ({granted:?})");
        });
    }

    #[test]
    fn two_claims_for_one_entry() {
        run(1, 100, &[(1, 3), (1, 4)]);
    }

    #[test]
    fn a_claim_that_fails_on_bytes_rolls_back_its_entry() {
        run(2, 5, &[(1, 4), (1, 4)]);
    }

    #[test]
    fn claims_and_a_completion() {
        run(2, 10, &[(1, 3), (0, 6), (1, 3)]);
    }
}
