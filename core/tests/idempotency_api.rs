//! The idempotency cache through its public API: single-flight waiting, takeover on
//! release and on lease expiry (fired by the clock's timer, no polling), fencing, bad
//! input, error policy, fail-open, and the waiter's two ways of handing over an outcome.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use seawall::idempotency::{Acquired, Begin, Failed, Fingerprint, Output, RunError, WaitPoll};
use seawall::store::{MemoryStore, MemoryStoreConfig, Peek, SharedStore};
use seawall::{ConfigValue, ErrorCode, IdempotencyCache, IdempotencyConfig, ManualClock, SharedClock, Style};

const LEASE: Duration = Duration::from_secs(30);

fn manual(f: impl FnOnce(&mut IdempotencyConfig)) -> (IdempotencyCache, Arc<ManualClock>) {
    let clock = ManualClock::shared();
    let c: SharedClock = clock.clone();
    let mut config = IdempotencyConfig::named("t").with_clock(c);
    f(&mut config);
    (IdempotencyCache::new(config).unwrap(), clock)
}

fn fp(s: &str) -> Fingerprint {
    Fingerprint::of(s.as_bytes())
}

fn out(s: &str) -> Output {
    Output::new(s.as_bytes(), "text/plain")
}

fn execute(cache: &IdempotencyCache, key: &str, f: &str) -> seawall::Lease {
    match cache.begin(key, &fp(f)).unwrap() {
        Begin::Execute(l) => l,
        other => panic!("begin {key}: expected execute, got {}", other.as_str()),
    }
}

fn waiter(cache: &IdempotencyCache, key: &str, f: &str) -> seawall::Waiter {
    match cache.begin(key, &fp(f)).unwrap() {
        Begin::InProgress(ip) => ip.waiter.expect("on_duplicate = wait gives a waiter"),
        other => panic!("begin {key}: expected in_progress, got {}", other.as_str()),
    }
}

fn pending(w: &seawall::Waiter) -> bool {
    matches!(w.poll(), WaitPoll::Pending { .. })
}

fn ready(w: &seawall::Waiter) -> Result<Acquired, seawall::Error> {
    match w.poll() {
        WaitPoll::Ready(r) => r,
        other => panic!("waiter on {}: expected ready, got {other:?}", w.key()),
    }
}

#[test]
fn handles_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<IdempotencyCache>();
    send_sync::<seawall::Lease>();
    send_sync::<seawall::Waiter>();
    send_sync::<seawall::Record>();
    send_sync::<Begin>();
    send_sync::<MemoryStore>();
}

#[test]
fn a_blocked_waiter_is_woken_by_the_completion_not_by_polling() {
    let cache = IdempotencyCache::new(IdempotencyConfig::named("sys")).unwrap();
    let lease = execute(&cache, "k", "a");
    let c2 = cache.clone();
    let started = Instant::now();
    let t = thread::spawn(move || {
        let w = waiter(&c2, "k", "a");
        w.wait(None).unwrap().unwrap()
    });
    thread::sleep(Duration::from_millis(50));
    assert_eq!(cache.waiting(), 1);
    cache.complete(&lease, out("done")).unwrap();
    match t.join().unwrap() {
        Acquired::Replay(r) => assert_eq!(r.result(), b"done"),
        Acquired::Execute(_) => panic!("expected the owner's result"),
    }
    // Woken at the completion (50 ms), far before the 30 s lease or wait timeout.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(cache.waiting(), 0);
    assert_eq!(cache.stats().replayed, 1);
}

#[test]
fn on_done_runs_once_outside_locks_on_the_completing_thread() {
    let (cache, _clock) = manual(|_| {});
    let lease = execute(&cache, "k", "a");
    let w = waiter(&cache, "k", "a");
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (s, c) = (seen.clone(), cache.clone());
    let me = thread::current().id();
    w.on_done(move |r| {
        // Calling back into the cache from the callback must not deadlock.
        let state = c.peek("k").unwrap().state();
        let got = match r.unwrap() {
            Acquired::Replay(rec) => String::from_utf8(rec.result().to_vec()).unwrap(),
            Acquired::Execute(_) => "execute".into(),
        };
        assert_eq!(thread::current().id(), me);
        s.lock().unwrap().push(format!("{got}/{state}"));
    });
    assert!(seen.lock().unwrap().is_empty());
    cache.complete(&lease, out("v")).unwrap();
    assert_eq!(*seen.lock().unwrap(), ["v/completed"]);
    assert!(matches!(w.poll(), WaitPoll::Taken));
    drop(w);
    assert_eq!(seen.lock().unwrap().len(), 1, "dropping a resolved waiter calls nothing");
}

#[test]
fn on_release_exactly_one_waiter_takes_over_and_the_others_get_its_result() {
    let (cache, clock) = manual(|_| {});
    let first = execute(&cache, "k", "a");
    let ws: Vec<_> = (0..3).map(|_| waiter(&cache, "k", "a")).collect();
    cache.release(&first).unwrap();
    let lease = match ready(&ws[0]).unwrap() {
        Acquired::Execute(l) => l,
        Acquired::Replay(_) => panic!("nothing was completed"),
    };
    assert!(lease.token() > first.token());
    assert!(lease.took_over());
    assert!(pending(&ws[1]) && pending(&ws[2]), "the others wait for the new owner");
    clock.advance(Duration::from_secs(10));
    cache.complete(&lease, out("second")).unwrap();
    for w in &ws[1..] {
        match ready(w).unwrap() {
            Acquired::Replay(r) => {
                assert_eq!(r.result(), b"second");
                assert_eq!(r.token(), lease.token());
            }
            Acquired::Execute(_) => panic!("only one may take over"),
        }
    }
    assert_eq!(clock.pending_timers(), 0, "resolved waiters leave no timer behind");
    assert_eq!(cache.stats().taken_over, 1);
}

#[test]
fn lease_expiry_hands_the_key_to_one_waiter_inside_advance() {
    let (cache, clock) = manual(|c| c.wait_timeout = Some(Duration::from_secs(300)));
    let crashed = execute(&cache, "k", "a");
    let got: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let ws: Vec<_> = (0..3)
        .map(|_| {
            let w = waiter(&cache, "k", "a");
            let g = got.clone();
            w.on_done(move |r| g.lock().unwrap().push(match r.unwrap() {
                Acquired::Execute(_) => "execute",
                Acquired::Replay(_) => "replay",
            }));
            w
        })
        .collect();
    clock.advance(LEASE - Duration::from_millis(1));
    assert!(got.lock().unwrap().is_empty());
    clock.advance(Duration::from_millis(1)); // the timer fires in here
    assert_eq!(*got.lock().unwrap(), ["execute"], "exactly one waiter takes over, no poll needed");
    // The stale owner is fenced off.
    let e = cache.complete(&crashed, out("stale")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::LeaseLost);
    assert!(e.to_string().contains("another owner holds the key now"), "{e}");
    assert_eq!(cache.release(&crashed).unwrap_err().code(), ErrorCode::LeaseLost);
    // The new owner's lease expires too (another crash): the next waiter takes over.
    clock.advance(LEASE);
    assert_eq!(*got.lock().unwrap(), ["execute", "execute"]);
    drop(ws);
    assert_eq!(cache.waiting(), 0);
}

#[test]
fn wait_timeout_gives_in_progress_with_how_long_it_waited() {
    let (cache, clock) = manual(|c| c.wait_timeout = Some(Duration::from_secs(5)));
    let _owner = execute(&cache, "k", "a");
    let w = waiter(&cache, "k", "a");
    clock.advance(Duration::from_millis(4999));
    assert!(pending(&w));
    clock.advance(Duration::from_millis(1));
    let e = w.wait(Some(Duration::ZERO)).expect("resolved by the timer").unwrap_err();
    assert_eq!(e.code(), ErrorCode::IdempotencyInProgress);
    match &e {
        seawall::Error::IdempotencyInProgress(ip) => {
            assert_eq!(ip.waited, Duration::from_secs(5));
            assert_eq!(ip.retry_after, Duration::from_secs(25));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("after waiting 5000 ms"), "{e}");
    assert_eq!(cache.stats().in_progress, 1);
}

#[test]
fn a_blocking_wait_sees_a_manual_clock_moved_by_another_thread() {
    let (cache, clock) = manual(|_| {});
    let _crashed = execute(&cache, "k", "a");
    let w = waiter(&cache, "k", "a");
    let c = clock.clone();
    let mover = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        c.advance(LEASE);
    });
    match w.wait(Some(Duration::from_secs(10))).expect("resolved before the real-time bound") {
        Ok(Acquired::Execute(l)) => assert!(l.took_over()),
        other => panic!("{other:?}"),
    }
    mover.join().unwrap();
}

#[test]
fn wait_with_a_short_bound_returns_none_and_keeps_waiting() {
    let (cache, _clock) = manual(|_| {});
    let lease = execute(&cache, "k", "a");
    let w = waiter(&cache, "k", "a");
    assert!(w.wait(Some(Duration::from_millis(5))).is_none());
    cache.complete(&lease, out("x")).unwrap();
    assert!(matches!(w.wait(Some(Duration::from_millis(5))), Some(Ok(Acquired::Replay(_)))));
}

#[test]
fn dropping_a_waiter_cancels_it_and_a_handed_over_key_is_released() {
    let (cache, _clock) = manual(|_| {});
    let owner = execute(&cache, "k", "a");
    let w = waiter(&cache, "k", "a");
    let (tx, rx) = mpsc::channel();
    w.on_done(move |r| tx.send(r.map(|_| ()).unwrap_err().code()).unwrap());
    drop(w);
    assert_eq!(rx.recv().unwrap(), ErrorCode::Cancelled);
    assert_eq!(cache.waiting(), 0);

    // A waiter handed the key that nobody takes gives it back when dropped.
    let w = waiter(&cache, "k", "a");
    cache.release(&owner).unwrap();
    assert_eq!(cache.peek("k").unwrap().state(), "in_progress");
    drop(w);
    assert_eq!(cache.peek("k").unwrap(), Peek::Absent);
    execute(&cache, "k", "a");
}

#[test]
fn waiters_with_another_fingerprint_get_mismatch_on_completion() {
    let (cache, _clock) = manual(|_| {});
    let owner = execute(&cache, "k", "a");
    let w = waiter(&cache, "k", "a");
    cache.release(&owner).unwrap();
    let Ok(Acquired::Execute(l)) = ready(&w) else { panic!() };
    cache.release(&l).unwrap();
    // A request with payload "b" now owns the key; a waiter for payload "a" registered
    // before it completes sees a mismatch.
    let lb = execute(&cache, "k", "b");
    assert!(matches!(cache.begin("k", &fp("a")).unwrap(), Begin::Mismatch(_)));
    cache.complete(&lb, out("b")).unwrap();
    assert!(matches!(cache.begin("k", &fp("a")).unwrap(), Begin::Mismatch(m) if m.completed));
}

#[test]
fn a_result_over_max_result_bytes_is_refused_and_the_key_released() {
    let (cache, _clock) = manual(|c| c.set("max_result_bytes", ConfigValue::Int(4)).unwrap());
    let lease = execute(&cache, "k", "a");
    let e = cache.complete(&lease, out("12345")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let msg = e.to_string();
    assert!(msg.contains("5 bytes, over max_result_bytes (4)"), "{msg}");
    assert!(msg.contains("nothing was stored and the key was released"), "{msg}");
    assert_eq!(cache.peek("k").unwrap(), Peek::Absent);
    let again = execute(&cache, "k", "a");
    assert_eq!(cache.complete(&again, out("1234")).unwrap().result(), b"1234");
}

#[test]
fn bad_keys_are_refused_naming_their_length() {
    let (cache, _clock) = manual(|_| {});
    let e = cache.begin(&"x".repeat(256), &Fingerprint::NONE).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("256 bytes"), "{e}");
    assert!(cache.begin("", &Fingerprint::NONE).unwrap_err().to_string().contains("empty"));
    assert!(matches!(cache.begin(&"é".repeat(127), &Fingerprint::NONE).unwrap(), Begin::Execute(_)));
}

#[test]
fn fail_releases_unless_errors_are_cached() {
    let (cache, _clock) = manual(|_| {});
    let l = execute(&cache, "k", "a");
    assert!(matches!(cache.fail(&l, Some(out("boom"))).unwrap(), Failed::Released));
    let (cache, _clock) = manual(|c| c.cache_errors = true);
    let l = execute(&cache, "k", "a");
    let Failed::Stored(r) = cache.fail(&l, Some(out("boom"))).unwrap() else { panic!() };
    assert!(r.is_error());
    let Begin::Replay(r) = cache.begin("k", &fp("a")).unwrap() else { panic!() };
    assert!(r.is_error());
    assert_eq!(r.result(), b"boom");
    // without a serialised error there is nothing to cache: released
    let l = execute(&cache, "k2", "a");
    assert!(matches!(cache.fail(&l, None).unwrap(), Failed::Released));
}

#[test]
fn run_runs_once_and_releases_on_error() {
    let (cache, _clock) = manual(|_| {});
    let calls = AtomicUsize::new(0);
    let r: Result<_, RunError<&str>> = cache.run("k", &fp("a"), || {
        calls.fetch_add(1, SeqCst);
        Err("nope")
    });
    assert_eq!(r.unwrap_err(), RunError::Failed("nope"));
    for _ in 0..3 {
        let r = cache.run("k", &fp("a"), || {
            calls.fetch_add(1, SeqCst);
            Ok::<_, &str>(out("yes"))
        });
        assert_eq!(r.unwrap().result(), b"yes");
    }
    assert_eq!(calls.load(SeqCst), 2);
    let r = cache.run("k", &fp("b"), || Ok::<_, &str>(out("no")));
    assert_eq!(r.unwrap_err(), RunError::Seawall(seawall::Error::IdempotencyMismatch { key: "k".into() }));
}

#[test]
fn renew_moves_the_lease_and_refuses_a_stale_token() {
    let (cache, clock) = manual(|_| {});
    let l = execute(&cache, "k", "a");
    clock.advance(Duration::from_secs(20));
    assert_eq!(cache.remaining(&l), Duration::from_secs(10));
    assert_eq!(cache.renew(&l).unwrap(), LEASE);
    assert_eq!(cache.remaining(&l), LEASE);
    assert_eq!(l.expires_at(), Duration::from_secs(50));
    clock.advance(LEASE);
    assert_eq!(cache.renew(&l).unwrap_err().code(), ErrorCode::LeaseLost);
}

#[test]
fn store_failure_fails_closed_or_runs_unprotected() {
    let small = |clock: &Arc<ManualClock>| -> SharedStore {
        let c: SharedClock = clock.clone();
        Arc::new(MemoryStore::new(MemoryStoreConfig { max_entries: 1, ..MemoryStoreConfig::default() }.with_clock(c)).unwrap())
    };
    let clock = ManualClock::shared();
    let c: SharedClock = clock.clone();
    let cache = IdempotencyCache::new(IdempotencyConfig::default().with_clock(c.clone()).with_store(small(&clock))).unwrap();
    execute(&cache, "a", "x");
    let e = cache.begin("b", &fp("x")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::StoreUnavailable);
    assert!(e.to_string().contains("full"), "{e}");

    let mut config = IdempotencyConfig::default().with_clock(c).with_store(small(&clock));
    config.set("on_store_error", "run".into()).unwrap();
    let cache = IdempotencyCache::new(config).unwrap();
    execute(&cache, "a", "x");
    let l = execute(&cache, "b", "x");
    assert!(!l.is_protected());
    assert_eq!(l.token(), 0);
    let r = cache.complete(&l, out("unprotected")).unwrap();
    assert_eq!(r.result(), b"unprotected");
    assert_eq!(cache.peek("b").unwrap(), Peek::Absent, "nothing is stored");
    assert_eq!(cache.stats().unprotected, 1);
}

#[test]
fn caches_sharing_a_store_wake_each_others_waiters() {
    let clock = ManualClock::shared();
    let c: SharedClock = clock.clone();
    let store: SharedStore = Arc::new(MemoryStore::new(MemoryStoreConfig::default().with_clock(c.clone())).unwrap());
    let a = IdempotencyCache::new(IdempotencyConfig::named("a").with_clock(c.clone()).with_store(store.clone())).unwrap();
    let b = IdempotencyCache::new(IdempotencyConfig::named("b").with_clock(c).with_store(store)).unwrap();
    let lease = execute(&a, "k", "p");
    let w = waiter(&b, "k", "p");
    a.complete(&lease, out("shared")).unwrap();
    let Ok(Acquired::Replay(r)) = ready(&w) else { panic!() };
    assert_eq!(r.result(), b"shared");
    // A dropped cache unsubscribes from the store.
    drop(b);
    let l2 = execute(&a, "k2", "p");
    a.complete(&l2, out("fine")).unwrap();
}

#[test]
fn records_from_the_store_encode_and_decode() {
    let (cache, clock) = manual(|_| {});
    clock.advance(Duration::from_millis(1234));
    let l = execute(&cache, "k", "a");
    let r = cache.complete(&l, out("{}").with_metadata("status", "201")).unwrap();
    assert_eq!((r.created_ms(), r.expires_ms()), (1234, 1234 + 86_400_000));
    assert_eq!(r.token(), l.token());
    assert_eq!(r.fingerprint(), &fp("a"));
    let back = seawall::Record::decode(&r.encode()).unwrap();
    assert_eq!(back, r);
}

#[test]
fn reject_mode_reports_retry_after() {
    let (cache, clock) = manual(|c| c.set("on_duplicate", "reject".into()).unwrap());
    let _l = execute(&cache, "k", "a");
    clock.advance(Duration::from_secs(10));
    let Begin::InProgress(ip) = cache.begin("k", &fp("a")).unwrap() else { panic!() };
    assert!(ip.waiter.is_none());
    assert_eq!(ip.retry_after, Duration::from_secs(20));
    let e = cache.acquire("k", &fp("a")).unwrap_err();
    assert_eq!(e.code().as_str(), "SEAWALL_IDEMPOTENCY_IN_PROGRESS");
    assert!(e.to_string().contains("expires in 20000 ms"), "{e}");
}

#[test]
fn config_errors_name_the_field_in_the_callers_style() {
    let mut c = IdempotencyConfig::with_style(Style { naming: seawall::Naming::Camel, unit: seawall::DurationUnit::Millis });
    let e = c.set("maxResultBytes", ConfigValue::Float(1.5)).unwrap_err();
    assert_eq!(e.field, "maxResultBytes");
    let e = c.set("lease", ConfigValue::Int(0)).unwrap_err();
    assert_eq!((e.field.as_str(), e.reason.as_str()), ("lease", "must be greater than zero"));
    assert_eq!(seawall::Error::from(e).code(), ErrorCode::Config);
}

/// Two memory stores both hand out token 1 for key "k": a lease is finished only on the
/// cache that issued it, and the other cache's key is left alone.
#[test]
fn a_lease_is_finished_only_by_its_own_cache() {
    use seawall::idempotency::{Begin, Fingerprint, Output};
    use seawall::{ErrorCode, IdempotencyCache, IdempotencyConfig};
    let (a, b) = (IdempotencyCache::new(IdempotencyConfig::named("a")).unwrap(), IdempotencyCache::new(IdempotencyConfig::named("b")).unwrap());
    let Begin::Execute(la) = a.begin("k", &Fingerprint::NONE).unwrap() else { panic!() };
    let Begin::Execute(lb) = b.begin("k", &Fingerprint::NONE).unwrap() else { panic!() };
    assert_eq!(la.token(), lb.token(), "the same token: only the cache's identity tells them apart");
    let e = b.complete(&la, Output::new(&b"from a"[..], "")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert!(e.to_string().contains("lease = <idempotency key \"k\", token 1>: issued by another cache"), "{e}");
    assert!(e.to_string().contains("(this is \"b\")"), "{e}");
    assert_eq!(b.release(&la).unwrap_err().code(), ErrorCode::InvalidArgument);
    assert_eq!(b.renew(&la).unwrap_err().code(), ErrorCode::InvalidArgument);
    assert_eq!(b.fail(&la, None).unwrap_err().code(), ErrorCode::InvalidArgument);
    assert_eq!(b.complete(&lb, Output::new(&b"from b"[..], "")).unwrap().result(), b"from b");
    assert_eq!(a.complete(&la, Output::new(&b"from a"[..], "")).unwrap().result(), b"from a");
}
