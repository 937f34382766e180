//! Many threads hammering one breaker: the invariants hold and nothing deadlocks.
//!
//! Each round runs 8 worker threads plus one thread moving a `ManualClock`, through
//! configurations that cycle closed -> open -> half-open many times. Checked:
//! - half-open never has more than `half_open_max_calls` probes out;
//! - the snapshot's counts add up to the calls made;
//! - every round finishes (a watchdog fails the test instead of hanging).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use seawall::{BreakerConfig, CircuitBreaker, ManualClock, Outcome, WindowKind};

const THREADS: usize = 8;
const CALLS_PER_THREAD: u64 = 20_000;
const MAX_PROBES: u32 = 3;

struct Tally {
    successes: AtomicU64,
    failures: AtomicU64,
    ignored: AtomicU64,
    rejected: AtomicU64,
    /// Probes held, per generation (modulo the array length).
    probes_out: [AtomicUsize; 4096],
    max_probes_out: AtomicUsize,
}

fn config(kind: WindowKind) -> BreakerConfig {
    let mut c = BreakerConfig {
        consecutive_failures: Some(3),
        open_duration: Duration::from_millis(5),
        half_open_max_calls: MAX_PROBES,
        half_open_success_threshold: 2,
        probe_timeout: Some(Duration::from_millis(50)),
        ..BreakerConfig::named("hammer")
    };
    if kind == WindowKind::Time {
        c.failure_rate_threshold = Some(0.4);
        c.window = WindowKind::Time;
        c.window_duration = Duration::from_millis(100);
        c.window_buckets = 10;
        c.minimum_calls = 20;
    }
    c
}

fn slot<'a>(t: &'a Tally, p: &seawall::SharedPermit) -> &'a AtomicUsize {
    &t.probes_out[(p.generation() % 4096) as usize]
}

/// A cheap deterministic per-thread pseudo-random sequence (xorshift).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn round(kind: WindowKind, seed: u64) {
    let clock = ManualClock::shared();
    let breaker = CircuitBreaker::new(config(kind).with_clock(clock.clone())).unwrap();
    let transitions = Arc::new(AtomicU64::new(0));
    {
        let t = transitions.clone();
        breaker.on_state_change(move |_| {
            t.fetch_add(1, Relaxed);
        });
    }
    let tally = Arc::new(Tally {
        successes: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        ignored: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        probes_out: std::array::from_fn(|_| AtomicUsize::new(0)),
        max_probes_out: AtomicUsize::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));

    let ticker = {
        let (clock, stop) = (clock.clone(), stop.clone());
        thread::spawn(move || {
            while !stop.load(Relaxed) {
                clock.advance(Duration::from_millis(1));
                thread::yield_now();
            }
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|i| {
            let (b, tally, clock) = (breaker.clone(), tally.clone(), clock.clone());
            thread::spawn(move || {
                let mut rng = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for _ in 0..CALLS_PER_THREAD {
                    let permit = match b.try_acquire_shared() {
                        Ok(p) => p,
                        Err(_) => {
                            tally.rejected.fetch_add(1, Relaxed);
                            // Rejections are fast; move time so the round cycles states.
                            clock.advance(Duration::from_micros(200));
                            continue;
                        }
                    };
                    if permit.is_probe() {
                        let out = slot(&tally, &permit).fetch_add(1, AcqRel) + 1;
                        tally.max_probes_out.fetch_max(out, AcqRel);
                        assert!(b.snapshot().half_open_in_flight <= MAX_PROBES);
                    }
                    let r = next(&mut rng) % 100;
                    let outcome = match r {
                        0..=39 => Outcome::Failure,
                        40..=44 => Outcome::Ignore,
                        _ => Outcome::Success,
                    };
                    match outcome {
                        Outcome::Success => tally.successes.fetch_add(1, Relaxed),
                        Outcome::Ignore => tally.ignored.fetch_add(1, Relaxed),
                        _ => tally.failures.fetch_add(1, Relaxed),
                    };
                    // Release our count before the core frees the slot, so the count never
                    // over-reports what the core holds.
                    if permit.is_probe() {
                        slot(&tally, &permit).fetch_sub(1, AcqRel);
                    }
                    permit.record(outcome, Duration::from_micros(r)).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker panicked");
    }
    stop.store(true, Relaxed);
    ticker.join().unwrap();

    let s = breaker.snapshot();
    let made = THREADS as u64 * CALLS_PER_THREAD;
    assert_eq!(s.successes, tally.successes.load(Relaxed));
    assert_eq!(s.failures, tally.failures.load(Relaxed));
    assert_eq!(s.ignored, tally.ignored.load(Relaxed));
    assert_eq!(s.rejected, tally.rejected.load(Relaxed));
    assert_eq!(s.successes + s.failures + s.ignored + s.rejected, made, "counts add up to calls made");
    assert!(tally.max_probes_out.load(Relaxed) <= MAX_PROBES as usize, "too many probes out");
    assert!(transitions.load(Relaxed) > 3, "the round should cycle through states: {} transitions, {s:?}", transitions.load(Relaxed));
}

/// Runs `f` on a thread and fails if it does not finish in `limit` (a deadlock).
fn with_watchdog(limit: Duration, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => h.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(e) = h.join() {
                std::panic::resume_unwind(e)
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("round did not finish in {limit:?}: deadlock?"),
    }
}

#[test]
fn consecutive_policy_ten_rounds() {
    for seed in 1..=10 {
        with_watchdog(Duration::from_secs(60), move || round(WindowKind::Count, seed));
    }
}

#[test]
fn time_window_policy_ten_rounds() {
    for seed in 11..=20 {
        with_watchdog(Duration::from_secs(60), move || round(WindowKind::Time, seed));
    }
}
