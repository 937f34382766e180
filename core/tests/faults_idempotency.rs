//! Fault injection for the idempotency cache (issue 9, docs/hardening.md).
//!
//! `FaultyStore` wraps a `MemoryStore` and, at random, fails a store call before it
//! reaches the store (`StoreUnavailable`), loses the reply *after* the store carried the
//! call out (the caller gets `StoreUnavailable` although the claim, completion, release or
//! renewal happened), delays calls before and after the store step, and loses completion
//! and release notifications (as a remote store's pub/sub may). Several threads run
//! operations on overlapping keys through two caches sharing the store (one waiting for
//! duplicates, one refusing them) while another thread moves the clock.
//!
//! The wrapper keeps an exact shadow of what the store holds per key: it serialises the
//! calls of one key and freezes the test clock (a read lock the clock's `advance` must
//! wait for) during each store step, so it knows the time the store decided at. Checked:
//!
//! - no key is executed twice while its lease is valid: the store never grants a key
//!   whose lease is live, every token is executed by one caller at most, and only tokens
//!   whose grant reached the cache are executed;
//! - no completed result is lost: a key that holds a result is never granted again, every
//!   replay is that result, and at the end every result the store took replays exactly;
//! - stale owners are fenced: `complete` / `release` / `renew` succeed only for the live
//!   holder;
//! - every caller gets a result or a clear error (`StoreUnavailable`, `LeaseLost`,
//!   `IdempotencyInProgress`), within a bounded time (a watchdog fails a hung run).
//!
//! With `on_store_error = "run"` (fail open), an unprotected run happens only for an
//! injected store failure.
//!
//! Short variant: 10 runs × 4 threads × 300 operations (about a second). Long:
//! `SEAWALL_HARDENING_LONG=1` (200 runs × 6 threads × 600), or set `SEAWALL_HARDENING_SEED`.

mod prop_support;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use prop_support::Rng;
use seawall::idempotency::{Acquired, Begin, Fingerprint, Output, Record};
use seawall::store::{Claim, MemoryStore, MemoryStoreConfig, Peek, Store, StoreEvent, StoreListener, SubscriptionId};
use seawall::timer::{TimerFn, TimerId};
use seawall::{Clock, Error, ErrorCode, IdempotencyCache, IdempotencyConfig, ManualClock, OnDuplicate, OnStoreError};

const LEASE: Duration = Duration::from_millis(20);
const STEP: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------------------
// A clock whose time cannot move during a store step
// ---------------------------------------------------------------------------------------

/// Virtual time that a driver thread moves; store steps hold `gate` for reading, so the
/// time cannot change while the store decides. Timers are served by a `ManualClock` kept
/// at the same time (fired outside the gate, on the driver thread).
#[derive(Default)]
struct GatedClock {
    nanos: AtomicU64,
    gate: RwLock<()>,
    timers: ManualClock,
}

impl fmt::Debug for GatedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatedClock").field("now", &self.now()).finish()
    }
}

impl Clock for GatedClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(SeqCst))
    }

    fn schedule(&self, at: Duration, f: TimerFn) -> TimerId {
        self.timers.schedule(at, f)
    }

    fn cancel_timer(&self, id: TimerId) -> bool {
        self.timers.cancel_timer(id)
    }
}

impl GatedClock {
    fn advance(&self, by: Duration) {
        {
            let _frozen = self.gate.write().unwrap();
            self.nanos.fetch_add(by.as_nanos() as u64, SeqCst);
        }
        self.timers.advance(by); // fires due timers, outside the gate
    }
}

// ---------------------------------------------------------------------------------------
// The fault-injecting store
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Faults {
    /// A call fails before it reaches the store.
    fail_before: f64,
    /// The store carries the call out, then the reply is lost.
    lose_reply: f64,
    /// A call is delayed (real time, up to 200 µs) before and/or after the store step.
    delay: f64,
    /// A completion or release notification is lost.
    lose_notification: f64,
    /// Not a fault but a bug, to show the checks work: a claim is sent to the store under
    /// another key, so the store grants a key it holds a live lease on.
    amnesia: f64,
}

/// What the store holds for one key, as the wrapper saw it happen.
#[derive(Default)]
struct Shadow {
    /// The last lease granted and not completed or released: (token, expires at, ns).
    holder: Option<(u64, u64)>,
    /// The stored result (TTLs are long and the bounds large: never expires nor evicted).
    record: Option<Record>,
    /// Every token the store granted for the key.
    granted: HashSet<u64>,
    /// The fingerprint the holder claimed with.
    holder_fp: Option<Fingerprint>,
}

#[derive(Default)]
struct Counts {
    injected_claim_failures: AtomicU64,
    injected: AtomicU64,
    lost_replies: AtomicU64,
    lost_notifications: AtomicU64,
    store_calls: AtomicU64,
}

/// An owned store event, kept until the wrapper has released its locks.
enum Note {
    Completed(String, Option<Record>),
    Released(String),
}

thread_local! {
    /// Events the inner store published on this thread during the current call.
    static NOTES: RefCell<Vec<Note>> = const { RefCell::new(Vec::new()) };
}

struct FaultyStore {
    inner: MemoryStore,
    clock: Arc<GatedClock>,
    faults: Faults,
    rng: Mutex<Rng>,
    keys: Mutex<HashMap<String, Arc<Mutex<Shadow>>>>,
    listeners: Mutex<Vec<(SubscriptionId, StoreListener)>>,
    next_id: AtomicU64,
    violations: Mutex<Vec<String>>,
    counts: Counts,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore").field("faults", &self.faults).finish()
    }
}

fn injected(what: &str) -> Error {
    Error::StoreUnavailable(format!("injected fault: {what}"))
}

impl FaultyStore {
    fn new(clock: Arc<GatedClock>, faults: Faults, seed: u64) -> Arc<Self> {
        let config = MemoryStoreConfig { max_entries: 1 << 20, max_bytes: 1 << 30, ..MemoryStoreConfig::default() }
            .with_clock(clock.clone());
        let inner = MemoryStore::new(config).unwrap();
        inner.subscribe(Arc::new(|e: &StoreEvent<'_>| {
            let note = match e {
                StoreEvent::Completed { key, record } => Note::Completed(key.to_string(), record.cloned()),
                StoreEvent::Released { key } => Note::Released(key.to_string()),
            };
            NOTES.with(|n| n.borrow_mut().push(note));
        }));
        Arc::new(FaultyStore {
            inner,
            clock,
            faults,
            rng: Mutex::new(Rng(seed)),
            keys: Mutex::default(),
            listeners: Mutex::default(),
            next_id: AtomicU64::new(1),
            violations: Mutex::default(),
            counts: Counts::default(),
        })
    }

    fn chance(&self, p: f64) -> bool {
        self.rng.lock().unwrap().chance(p)
    }

    fn maybe_delay(&self) {
        if self.chance(self.faults.delay) {
            let us = self.rng.lock().unwrap().below(200);
            thread::sleep(Duration::from_micros(us));
        }
    }

    fn violation(&self, what: String) {
        self.violations.lock().unwrap().push(what);
    }

    fn shadow(&self, key: &str) -> Arc<Mutex<Shadow>> {
        self.keys.lock().unwrap().entry(key.to_owned()).or_default().clone()
    }

    fn now_ns(&self) -> u64 {
        self.clock.nanos.load(SeqCst)
    }

    /// Runs one store step: maybe fails it before, runs it with the key serialised and the
    /// clock frozen (`check` updates the shadow from what the store answered, at the time
    /// it decided), maybe loses the reply, then delivers the store's notifications.
    fn step<T>(
        &self,
        key: &str,
        is_claim: bool,
        op: impl FnOnce(&MemoryStore) -> Result<T, Error>,
        check: impl FnOnce(&mut Shadow, u64, &Result<T, Error>) -> Option<String>,
    ) -> Result<T, Error> {
        self.counts.store_calls.fetch_add(1, Relaxed);
        self.maybe_delay();
        if self.chance(self.faults.fail_before) {
            self.counts.injected.fetch_add(1, Relaxed);
            if is_claim {
                self.counts.injected_claim_failures.fetch_add(1, Relaxed);
            }
            return Err(injected("the store was not reached"));
        }
        let result = {
            let shadow = self.shadow(key);
            let mut shadow = shadow.lock().unwrap();
            let _frozen = self.clock.gate.read().unwrap();
            let now = self.now_ns();
            let result = op(&self.inner);
            if let Some(v) = check(&mut shadow, now, &result) {
                self.violation(format!("key {key:?} at {now} ns: {v}"));
            }
            result
        };
        self.deliver_notes();
        self.maybe_delay();
        if self.chance(self.faults.lose_reply) {
            self.counts.injected.fetch_add(1, Relaxed);
            self.counts.lost_replies.fetch_add(1, Relaxed);
            if is_claim {
                self.counts.injected_claim_failures.fetch_add(1, Relaxed);
            }
            return Err(injected("the reply was lost after the store carried the call out"));
        }
        result
    }

    fn deliver_notes(&self) {
        let notes = NOTES.with(|n| std::mem::take(&mut *n.borrow_mut()));
        for note in notes {
            if self.chance(self.faults.lose_notification) {
                self.counts.lost_notifications.fetch_add(1, Relaxed);
                continue;
            }
            let listeners: Vec<StoreListener> = self.listeners.lock().unwrap().iter().map(|(_, l)| l.clone()).collect();
            for l in listeners {
                match &note {
                    Note::Completed(key, record) => l(&StoreEvent::Completed { key, record: record.as_ref() }),
                    Note::Released(key) => l(&StoreEvent::Released { key }),
                }
            }
        }
    }

    fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }
}

/// The holder's lease, if it is live at `now`.
fn live(s: &Shadow, now: u64) -> Option<u64> {
    s.holder.filter(|&(_, exp)| now < exp).map(|(t, _)| t)
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

impl Store for FaultyStore {
    fn kind(&self) -> &'static str {
        "faulty-memory"
    }

    fn claim(&self, key: &str, fingerprint: &Fingerprint, lease: Duration) -> Result<Claim, Error> {
        let forget = self.chance(self.faults.amnesia);
        let n = self.counts.store_calls.load(Relaxed);
        let claim = move |s: &MemoryStore| {
            if forget {
                s.claim(&format!("{key}#forgotten{n}"), fingerprint, lease)
            } else {
                s.claim(key, fingerprint, lease)
            }
        };
        self.step(key, true, claim, |sh, now, r| match r {
            Ok(Claim::Acquired { token, expires_in, .. }) => {
                let mut v = None;
                if let Some(t) = live(sh, now) {
                    v = Some(format!("granted token {token} while token {t}'s lease is live"));
                }
                if sh.record.is_some() {
                    v = Some(format!("granted token {token} over a stored result (the result was lost)"));
                }
                sh.holder = Some((*token, now + ns(*expires_in)));
                sh.holder_fp = Some(*fingerprint);
                sh.granted.insert(*token);
                v
            }
            Ok(Claim::InProgress { token, .. }) => {
                (live(sh, now) != Some(*token)).then(|| format!("in progress with token {token}, holder {:?}", sh.holder))
            }
            Ok(Claim::Completed(rec)) => {
                (sh.record.as_ref() != Some(rec)).then(|| format!("replayed {rec:?}, stored {:?}", sh.record))
            }
            Ok(Claim::Mismatch { completed }) => {
                let other = match (&sh.record, live(sh, now)) {
                    (Some(r), _) => *completed && r.fingerprint() != fingerprint,
                    (None, Some(_)) => !*completed && sh.holder_fp.as_ref() != Some(fingerprint),
                    (None, None) => false,
                };
                (!other).then(|| format!("mismatch (completed: {completed}) but the key holds {:?} / {:?}", sh.record, sh.holder))
            }
            Err(e) => Some(format!("claim failed in the store itself: {e}")),
        })
    }

    fn complete(&self, key: &str, token: u64, output: Output, ttl: Duration) -> Result<Record, Error> {
        self.step(key, false, |s| s.complete(key, token, output, ttl), |sh, now, r| {
            let holds = live(sh, now) == Some(token);
            match r {
                Ok(rec) => {
                    let v = (!holds).then(|| format!("token {token} completed without holding the key ({:?})", sh.holder));
                    sh.record = Some(rec.clone());
                    sh.holder = None;
                    v
                }
                Err(Error::LeaseLost { .. }) => holds.then(|| format!("live holder {token} refused on complete")),
                Err(e) => Some(format!("complete failed in the store itself: {e}")),
            }
        })
    }

    fn release(&self, key: &str, token: u64) -> Result<(), Error> {
        self.step(key, false, |s| s.release(key, token), |sh, now, r| {
            let holds = live(sh, now) == Some(token);
            match r {
                Ok(()) => {
                    sh.holder = None;
                    (!holds).then(|| format!("token {token} released without holding the key"))
                }
                Err(Error::LeaseLost { .. }) => holds.then(|| format!("live holder {token} refused on release")),
                Err(e) => Some(format!("release failed in the store itself: {e}")),
            }
        })
    }

    fn renew(&self, key: &str, token: u64, lease: Duration) -> Result<Duration, Error> {
        self.step(key, false, |s| s.renew(key, token, lease), |sh, now, r| {
            let holds = live(sh, now) == Some(token);
            match r {
                Ok(left) => {
                    sh.holder = Some((token, now + ns(*left)));
                    (!holds).then(|| format!("token {token} renewed without holding the key"))
                }
                Err(Error::LeaseLost { .. }) => holds.then(|| format!("live holder {token} refused on renew")),
                Err(e) => Some(format!("renew failed in the store itself: {e}")),
            }
        })
    }

    fn peek(&self, key: &str) -> Result<Peek, Error> {
        self.step(key, false, |s| s.peek(key), |_, _, _| None)
    }

    fn subscribe(&self, listener: StoreListener) -> SubscriptionId {
        let id = SubscriptionId(self.next_id.fetch_add(1, Relaxed));
        self.listeners.lock().unwrap().push((id, listener));
        id
    }

    fn unsubscribe(&self, id: SubscriptionId) -> bool {
        let mut l = self.listeners.lock().unwrap();
        let before = l.len();
        l.retain(|(i, _)| *i != id);
        l.len() != before
    }
}

// ---------------------------------------------------------------------------------------
// The runs
// ---------------------------------------------------------------------------------------

struct Run {
    threads: usize,
    ops: usize,
    faults: Faults,
    on_store_error: OnStoreError,
}

#[derive(Default)]
struct Tally {
    executed: AtomicU64,
    unprotected: AtomicU64,
    replayed: AtomicU64,
    completed: AtomicU64,
    lease_lost: AtomicU64,
    store_unavailable: AtomicU64,
    in_progress: AtomicU64,
    mismatched: AtomicU64,
    took_over: AtomicU64,
}

impl fmt::Debug for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = |a: &AtomicU64| a.load(Relaxed);
        write!(
            f,
            "executed {} (unprotected {}, took over {}), replayed {}, completed {}, lease lost {}, store unavailable {}, in progress {}, mismatched {}",
            l(&self.executed),
            l(&self.unprotected),
            l(&self.took_over),
            l(&self.replayed),
            l(&self.completed),
            l(&self.lease_lost),
            l(&self.store_unavailable),
            l(&self.in_progress),
            l(&self.mismatched),
        )
    }
}

/// What one worker may legitimately get as an error.
fn clear_error(e: &Error, tally: &Tally) -> Result<(), String> {
    let c = match e.code() {
        ErrorCode::StoreUnavailable => &tally.store_unavailable,
        ErrorCode::LeaseLost => &tally.lease_lost,
        ErrorCode::IdempotencyInProgress => &tally.in_progress,
        ErrorCode::IdempotencyMismatch => &tally.mismatched,
        _ => return Err(format!("unexpected error {:?}: {e}", e.code())),
    };
    if e.to_string().is_empty() {
        return Err("an error without a message".into());
    }
    c.fetch_add(1, Relaxed);
    Ok(())
}

fn fingerprint(key: &str, other: bool) -> Fingerprint {
    Fingerprint::of(format!("{key}{}", if other { "/other" } else { "" }).as_bytes())
}

#[allow(clippy::too_many_arguments)]
fn worker(
    id: usize,
    seed: u64,
    ops: usize,
    wait: IdempotencyCache,
    reject: IdempotencyCache,
    store: Arc<FaultyStore>,
    tally: Arc<Tally>,
    executions: Arc<Mutex<HashSet<(String, u64)>>>,
) -> Result<(), String> {
    let fail_closed = wait.config().on_store_error == OnStoreError::Fail;
    let mut rng = Rng(seed ^ (id as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
    for i in 0..ops {
        let key = format!("k{}", i / 4 + rng.below(6) as usize);
        let other_fp = rng.chance(0.03);
        let fp = fingerprint(&key, other_fp);
        let cache = if rng.chance(0.25) { &reject } else { &wait };
        let got = match cache.begin(&key, &fp) {
            Ok(Begin::Execute(l)) => Ok(Acquired::Execute(l)),
            Ok(Begin::Replay(r)) => Ok(Acquired::Replay(r)),
            Ok(Begin::Mismatch(m)) => Err(m.to_error()),
            Ok(Begin::InProgress(mut ip)) => match ip.waiter.take() {
                Some(w) => w.wait(Some(Duration::from_secs(20))).ok_or_else(|| format!("worker {id}: a waiter hung for 20 s on {key:?}"))?,
                None => Err(ip.to_error()),
            },
            Err(e) => Err(e),
        };
        match got {
            Err(e) => clear_error(&e, &tally).map_err(|m| format!("begin {key:?}: {m}"))?,
            Ok(Acquired::Replay(rec)) => {
                tally.replayed.fetch_add(1, Relaxed);
                if !rec.result().starts_with(format!("{key}:").as_bytes()) {
                    return Err(format!("key {key:?} replayed another key's result {:?}", String::from_utf8_lossy(rec.result())));
                }
                let stored = store.shadow(&key).lock().unwrap().record.clone();
                if stored.as_ref() != Some(&rec) {
                    return Err(format!("key {key:?} replayed {rec:?}, the store holds {stored:?}"));
                }
            }
            Ok(Acquired::Execute(lease)) => {
                tally.executed.fetch_add(1, Relaxed);
                if lease.took_over() {
                    tally.took_over.fetch_add(1, Relaxed);
                }
                if !lease.is_protected() {
                    tally.unprotected.fetch_add(1, Relaxed);
                    if store.faults.fail_before == 0.0 && store.faults.lose_reply == 0.0 {
                        return Err(format!("unprotected run of {key:?} without a store failure"));
                    }
                } else {
                    let granted = store.shadow(&key).lock().unwrap().granted.contains(&lease.token());
                    if !granted {
                        return Err(format!("key {key:?} executed with token {} the store never granted", lease.token()));
                    }
                    if !executions.lock().unwrap().insert((key.clone(), lease.token())) {
                        return Err(format!("key {key:?}: token {} executed twice", lease.token()));
                    }
                }
                // The operation: mostly short, sometimes longer than the lease.
                let us = if rng.chance(0.05) { 3_000 + rng.below(3_000) } else { rng.below(300) };
                thread::sleep(Duration::from_micros(us));
                if rng.chance(0.15) {
                    if let Err(e) = cache.renew(&lease) {
                        clear_error(&e, &tally).map_err(|m| format!("renew {key:?}: {m}"))?;
                    }
                }
                let result = format!("{key}:{}:{id}:{i}", lease.token());
                let r = rng.below(100);
                if r < 75 {
                    match cache.complete(&lease, Output::new(result.as_bytes(), "text/plain")) {
                        Ok(rec) => {
                            tally.completed.fetch_add(1, Relaxed);
                            if rec.result() != result.as_bytes() {
                                return Err(format!("complete of {key:?} returned another result"));
                            }
                            // Failing open, a completion whose store step failed returns the
                            // result unstored; failing closed, what it returns is what is stored.
                            if fail_closed {
                                let stored = store.shadow(&key).lock().unwrap().record.clone();
                                if stored.as_ref() != Some(&rec) {
                                    return Err(format!("complete of {key:?} returned {rec:?}; the store holds {stored:?}"));
                                }
                            }
                        }
                        Err(e) => clear_error(&e, &tally).map_err(|m| format!("complete {key:?}: {m}"))?,
                    }
                } else if r < 95 {
                    if let Err(e) = cache.fail(&lease, None) {
                        clear_error(&e, &tally).map_err(|m| format!("fail {key:?}: {m}"))?;
                    }
                } else {
                    cache.abandon(&lease);
                }
            }
        }
    }
    Ok(())
}

fn run(r: &Run, seed: u64) -> (Arc<FaultyStore>, Arc<Tally>) {
    let clock = Arc::new(GatedClock::default());
    let store = FaultyStore::new(clock.clone(), r.faults, seed);
    let make = |on_duplicate| {
        let mut c = IdempotencyConfig::named("faults").with_clock(clock.clone()).with_store(store.clone());
        c.lease = LEASE;
        c.on_duplicate = on_duplicate;
        c.on_store_error = r.on_store_error;
        IdempotencyCache::new(c).unwrap()
    };
    let (wait, reject) = (make(OnDuplicate::Wait), make(OnDuplicate::Reject));
    let tally = Arc::new(Tally::default());
    let executions: Arc<Mutex<HashSet<(String, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let driver = {
        let (clock, stop) = (clock.clone(), stop.clone());
        thread::spawn(move || {
            while !stop.load(Relaxed) {
                clock.advance(STEP);
                thread::sleep(Duration::from_micros(100));
            }
        })
    };
    let workers: Vec<_> = (0..r.threads)
        .map(|id| {
            let (wait, reject, store, tally, ex) = (wait.clone(), reject.clone(), store.clone(), tally.clone(), executions.clone());
            let ops = r.ops;
            thread::spawn(move || worker(id, seed, ops, wait, reject, store, tally, ex))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut failures = Vec::new();
    for w in workers {
        while !w.is_finished() {
            assert!(Instant::now() < deadline, "a worker did not finish within 60 s (seed {seed}): deadlock or lost wake-up");
            thread::sleep(Duration::from_millis(2));
        }
        match w.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(p) => std::panic::resume_unwind(p),
        }
    }
    stop.store(true, Relaxed);
    driver.join().unwrap();
    assert!(failures.is_empty(), "seed {seed}: {failures:#?}\n{:?}", tally);

    // Every result the store took replays exactly, without faults in the way.
    let keys: Vec<(String, Option<Record>)> =
        store.keys.lock().unwrap().iter().map(|(k, s)| (k.clone(), s.lock().unwrap().record.clone())).collect();
    for (key, rec) in keys {
        if let Some(rec) = rec {
            match store.inner.claim(&key, rec.fingerprint(), LEASE) {
                Ok(Claim::Completed(back)) => assert_eq!(back, rec, "seed {seed}: {key:?}"),
                other => panic!("seed {seed}: the result of {key:?} is lost: {other:?}"),
            }
        }
    }
    let v = store.violations();
    assert!(v.is_empty(), "seed {seed}: store-level violations: {v:#?}");
    (store, tally)
}

const FAULTS: Faults = Faults { fail_before: 0.05, lose_reply: 0.05, delay: 0.3, lose_notification: 0.1, amnesia: 0.0 };

fn scale() -> (usize, usize, u64) {
    if prop_support::long() {
        (6, 600, 200)
    } else {
        (4, 300, 10)
    }
}

#[test]
fn faults_never_cause_a_double_run_or_a_lost_result() {
    let (threads, ops, runs) = scale();
    let base = prop_support::run_seed();
    let started = Instant::now();
    let total = Tally::default();
    let mut injected = 0;
    for n in 0..runs {
        let (store, t) = run(&Run { threads, ops, faults: FAULTS, on_store_error: OnStoreError::Fail }, base.wrapping_add(n));
        assert_eq!(t.unprotected.load(Relaxed), 0, "no unprotected run with on_store_error = fail");
        injected += store.counts.injected.load(Relaxed);
        for (a, b) in [
            (&total.executed, &t.executed),
            (&total.replayed, &t.replayed),
            (&total.completed, &t.completed),
            (&total.lease_lost, &t.lease_lost),
            (&total.store_unavailable, &t.store_unavailable),
            (&total.in_progress, &t.in_progress),
            (&total.took_over, &t.took_over),
            (&total.mismatched, &t.mismatched),
        ] {
            a.fetch_add(b.load(Relaxed), Relaxed);
        }
    }
    eprintln!(
        "fault injection: {runs} runs x {threads} threads x {ops} ops in {:?} (seed {base}), {injected} faults injected; {total:?}",
        started.elapsed()
    );
    // The runs are not vacuous: each kind of outcome happened.
    for (what, n) in [
        ("executed", &total.executed),
        ("replayed", &total.replayed),
        ("completed", &total.completed),
        ("store unavailable", &total.store_unavailable),
        ("in progress", &total.in_progress),
        ("taken over", &total.took_over),
    ] {
        assert!(n.load(Relaxed) > 0, "no {what} in the runs: {total:?}");
    }
}

#[test]
fn failing_open_runs_unprotected_only_on_a_store_failure() {
    let (threads, ops, runs) = scale();
    let base = prop_support::run_seed() ^ 0xF00D;
    for n in 0..runs {
        let (store, t) = run(&Run { threads, ops, faults: FAULTS, on_store_error: OnStoreError::Run }, base.wrapping_add(n));
        let unprotected = t.unprotected.load(Relaxed);
        let claim_failures = store.counts.injected_claim_failures.load(Relaxed);
        assert!(unprotected <= claim_failures, "{unprotected} unprotected runs for {claim_failures} failed claims");
    }
    // Without faults, nothing runs unprotected.
    let none = Faults { fail_before: 0.0, lose_reply: 0.0, delay: 0.2, lose_notification: 0.0, amnesia: 0.0 };
    let (_, t) = run(&Run { threads, ops, faults: none, on_store_error: OnStoreError::Run }, base);
    assert_eq!(t.unprotected.load(Relaxed), 0);
}

#[test]
fn lost_notifications_only_delay_waiters_until_the_lease_expires() {
    // Every notification lost, nothing else: waiters are woken by their timers alone.
    let (threads, ops, _) = scale();
    let only_lost = Faults { fail_before: 0.0, lose_reply: 0.0, delay: 0.1, lose_notification: 1.0, amnesia: 0.0 };
    let (store, t) = run(&Run { threads, ops, faults: only_lost, on_store_error: OnStoreError::Fail }, prop_support::run_seed());
    assert!(store.counts.lost_notifications.load(Relaxed) > 0);
    assert_eq!(t.store_unavailable.load(Relaxed), 0, "{t:?}");
}

/// The checks are not vacuous: a store that sometimes forgets a live lease (claims sent
/// under another key) is caught as a double run.
#[test]
fn the_checks_catch_a_store_that_grants_a_held_key() {
    let amnesia = Faults { fail_before: 0.0, lose_reply: 0.0, delay: 0.3, lose_notification: 0.0, amnesia: 0.3 };
    let caught = std::panic::catch_unwind(|| {
        run(&Run { threads: 4, ops: 300, faults: amnesia, on_store_error: OnStoreError::Fail }, prop_support::run_seed())
    });
    let msg = match caught {
        Ok(_) => panic!("a store granting held keys went unnoticed"),
        Err(p) => p.downcast_ref::<String>().cloned().unwrap_or_default(),
    };
    assert!(msg.contains("while token") || msg.contains("over a stored result") || msg.contains("executed twice"), "{msg}");
}
