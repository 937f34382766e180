//! Eight threads racing on the same keys.
//!
//! 1. Plain races (system clock): every key's operation runs exactly once and every caller
//!    gets the same record (same bytes, same fencing token).
//! 2. With injected owner crashes and overruns (`ManualClock` moved by a ninth thread): the
//!    first owner of some keys crashes (its lease is left to expire), of others overruns its
//!    lease and then tries to complete. Still exactly one completed result per key, never
//!    two; the overrunning owner's completion is refused with `LeaseLost`; every caller that
//!    got a result got that one.
//!
//! Each round runs under a watchdog, so a deadlock fails the test instead of hanging it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use seawall::idempotency::{Acquired, Fingerprint, Output};
use seawall::{ErrorCode, IdempotencyCache, IdempotencyConfig, ManualClock, SharedClock};

const THREADS: usize = 8;

/// Per key: every (result bytes, token) a caller got.
type Seen = Arc<Mutex<HashMap<usize, Vec<(Vec<u8>, u64)>>>>;
const KEYS: usize = 64;
const ROUNDS: usize = 3;

fn key(i: usize) -> String {
    format!("key-{i}")
}

/// Runs `f` on a thread and fails if it does not finish within `limit`.
fn with_watchdog(limit: Duration, name: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => h.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name}: did not finish within {limit:?} (deadlock?)"),
    }
}

/// Each thread visits every key once, in its own order.
fn order(thread: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..KEYS).collect();
    let mut s = (thread as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for i in (1..v.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
    v
}

#[test]
fn racing_threads_run_each_key_once_and_share_one_result() {
    with_watchdog(Duration::from_secs(60), "plain races", || {
        for _ in 0..ROUNDS {
            let cache = IdempotencyCache::new(IdempotencyConfig::named("race")).unwrap();
            let runs: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
            let seen: Seen = Arc::default();
            let barrier = Arc::new(Barrier::new(THREADS));
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (cache, runs, seen, barrier) = (cache.clone(), runs.clone(), seen.clone(), barrier.clone());
                    thread::spawn(move || {
                        barrier.wait();
                        for i in order(t) {
                            let record = cache
                                .run(&key(i), &Fingerprint::of(b"same payload"), || {
                                    runs[i].fetch_add(1, SeqCst);
                                    thread::yield_now(); // widen the race window
                                    Ok::<_, String>(Output::new(format!("result of {i} by {t}"), "text/plain"))
                                })
                                .unwrap_or_else(|e| panic!("thread {t} key {i}: {e}"));
                            seen.lock().unwrap().entry(i).or_default().push((record.result().to_vec(), record.token()));
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            for (i, r) in runs.iter().enumerate() {
                assert_eq!(r.load(SeqCst), 1, "key {i} ran {} times", r.load(SeqCst));
            }
            let seen = seen.lock().unwrap();
            for i in 0..KEYS {
                let got = &seen[&i];
                assert_eq!(got.len(), THREADS, "every caller of key {i} returned");
                assert!(got.iter().all(|g| *g == got[0]), "key {i}: callers got different results: {got:?}");
            }
            let st = cache.stats();
            eprintln!("plain round: {st:?}");
            assert_eq!(st.executed, KEYS as u64);
            assert_eq!(st.completed, KEYS as u64);
            assert_eq!(st.replayed, (KEYS * (THREADS - 1)) as u64);
            assert_eq!(cache.waiting(), 0);
        }
    });
}

/// What the first owner of a key does.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    None,
    /// Never completes nor releases: the lease is left to expire.
    Crash,
    /// Waits until its lease has expired, then tries to complete.
    Overrun,
}

fn fault(i: usize) -> Fault {
    match i % 3 {
        0 => Fault::Crash,
        1 => Fault::Overrun,
        _ => Fault::None,
    }
}

#[test]
fn with_crashed_and_overrunning_owners_each_key_completes_exactly_once() {
    with_watchdog(Duration::from_secs(60), "crash races", || {
        for _ in 0..ROUNDS {
            crash_round();
        }
    });
}

fn crash_round() {
    const LEASE: Duration = Duration::from_millis(1000);
    let clock = ManualClock::shared();
    let shared: SharedClock = clock.clone();
    let mut config = IdempotencyConfig::named("crashy").with_clock(shared);
    config.lease = LEASE;
    // Waiters outlast any number of crashed leases (virtual time runs fast here).
    config.wait_timeout = Some(Duration::from_secs(24 * 3600));
    let cache = IdempotencyCache::new(config).unwrap();

    // A ninth thread moves virtual time: 50 ms every millisecond.
    let stop = Arc::new(AtomicBool::new(false));
    let mover = {
        let (clock, stop) = (clock.clone(), stop.clone());
        thread::spawn(move || {
            while !stop.load(SeqCst) {
                clock.advance(Duration::from_millis(50));
                thread::sleep(Duration::from_millis(1));
            }
        })
    };

    let first_owner_done: Arc<Vec<AtomicBool>> = Arc::new((0..KEYS).map(|_| AtomicBool::new(false)).collect());
    let completions: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let lease_lost: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let results: Seen = Arc::default();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let cache = cache.clone();
            let (first, completions, lost, results, barrier, clock) = (
                first_owner_done.clone(),
                completions.clone(),
                lease_lost.clone(),
                results.clone(),
                barrier.clone(),
                clock.clone(),
            );
            thread::spawn(move || {
                barrier.wait();
                for i in order(t) {
                    let k = key(i);
                    let lease = match cache.acquire(&k, &Fingerprint::of(b"p")) {
                        Ok(Acquired::Replay(r)) => {
                            results.lock().unwrap().entry(i).or_default().push((r.result().to_vec(), r.token()));
                            continue;
                        }
                        Ok(Acquired::Execute(l)) => l,
                        Err(e) => panic!("thread {t} key {i}: {e}"),
                    };
                    let is_first = !first[i].swap(true, SeqCst);
                    let f = if is_first { fault(i) } else { Fault::None };
                    match f {
                        Fault::Crash => {
                            cache.abandon(&lease);
                            continue;
                        }
                        Fault::Overrun => {
                            while seawall::Clock::now(&*clock) < lease.expires_at() {
                                thread::sleep(Duration::from_micros(200));
                            }
                        }
                        Fault::None => {}
                    }
                    let out = Output::new(format!("key {i} by thread {t} token {}", lease.token()), "text/plain");
                    match cache.complete(&lease, out) {
                        Ok(r) => {
                            assert_ne!(f, Fault::Overrun, "key {i}: an expired lease must not complete");
                            completions[i].fetch_add(1, SeqCst);
                            results.lock().unwrap().entry(i).or_default().push((r.result().to_vec(), r.token()));
                        }
                        Err(e) if e.code() == ErrorCode::LeaseLost => {
                            lost[i].fetch_add(1, SeqCst);
                        }
                        Err(e) => panic!("thread {t} key {i}: complete failed: {e}"),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    stop.store(true, SeqCst);
    mover.join().unwrap();

    let results = results.lock().unwrap();
    for i in 0..KEYS {
        let done = completions[i].load(SeqCst);
        assert_eq!(done, 1, "key {i} ({:?} first owner): {done} completed results", fault(i));
        if fault(i) == Fault::Overrun {
            assert!(lease_lost[i].load(SeqCst) >= 1, "key {i}: the overrunning owner was not refused");
        }
        let got = &results[&i];
        assert!(got.iter().all(|g| *g == got[0]), "key {i}: callers got different results: {got:?}");
        let bytes = String::from_utf8(got[0].0.clone()).unwrap();
        assert!(bytes.ends_with(&format!("token {}", got[0].1)), "the stored result is its completer's: {bytes}");
    }
    assert_eq!(cache.waiting(), 0);
    let st = cache.stats();
    eprintln!("crash round: {st:?}");
    assert_eq!(st.completed, KEYS as u64);
    assert!(st.taken_over >= (2 * KEYS / 3) as u64, "crashed and overrun leases were taken over: {st:?}");
}
