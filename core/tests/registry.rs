//! The registry: get-or-create, bounds, health semantics, metrics under concurrency.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use seawall::{BreakerConfig, CheckConfig, Clock, HealthStatus, ManualClock, Registry, State};

fn non_critical() -> BreakerConfig {
    BreakerConfig { critical: false, ..BreakerConfig::default() }
}

#[test]
fn breaker_gets_or_creates_and_requires_a_name() {
    let r = Registry::new();
    let a = r.breaker("payments", BreakerConfig::default()).unwrap();
    let b = r.breaker("payments", BreakerConfig { consecutive_failures: Some(1), ..Default::default() }).unwrap();
    a.force_open();
    assert_eq!(b.state(), State::ForcedOpen, "the same breaker, the first config kept");
    let e = r.breaker("", BreakerConfig::default()).unwrap_err();
    assert_eq!(e.field, "name");
    assert!(r.breaker("bad", BreakerConfig { window_size: 0, ..Default::default() }).is_err());
    assert!(r.get_breaker("bad").is_none(), "an invalid config registers nothing");
}

#[test]
fn the_registry_is_bounded_and_forgets_the_least_recently_used() {
    let r = Registry::with(ManualClock::shared(), 100);
    for i in 0..100 {
        r.breaker(&format!("tenant-{i}"), BreakerConfig::default()).unwrap();
    }
    r.breaker("tenant-0", BreakerConfig::default()).unwrap(); // used again: recent
    for i in 100..1000 {
        r.breaker(&format!("tenant-{i}"), BreakerConfig::default()).unwrap();
    }
    assert!(r.breakers().len() <= 100);
    assert!(r.get_breaker("tenant-999").is_some());
    assert!(r.get_breaker("tenant-1").is_none());
}

#[test]
fn open_breakers_make_the_service_down_or_degraded() {
    let r = Registry::new();
    let core = r.breaker("db", BreakerConfig::default()).unwrap();
    let extra = r.breaker("recommendations", non_critical()).unwrap();
    assert_eq!(r.health().status, HealthStatus::Ok);
    extra.force_open();
    let h = r.health();
    assert_eq!(h.status, HealthStatus::Degraded);
    let part = h.checks.iter().find(|c| c.name == "recommendations").unwrap();
    assert_eq!((part.kind, part.ok, part.status), ("breaker", false, HealthStatus::Degraded));
    core.force_open();
    assert_eq!(r.health().status, HealthStatus::Down);
    core.reset();
    extra.reset();
    assert_eq!(r.health().status, HealthStatus::Ok);
}

#[test]
fn checks_fail_pass_and_are_cached_for_their_interval() {
    let clock = ManualClock::shared();
    let r = Registry::with(clock.clone(), 10);
    let runs = Arc::new(AtomicUsize::new(0));
    let (n, up) = (runs.clone(), Arc::new(AtomicUsize::new(0)));
    let u = up.clone();
    let config = CheckConfig { interval: Duration::from_secs(10), critical: false, ..CheckConfig::default() };
    r.add_check(
        "cache",
        config,
        Arc::new(move || {
            n.fetch_add(1, SeqCst);
            if u.load(SeqCst) == 1 {
                Ok(())
            } else {
                Err("connection refused".into())
            }
        }),
    )
    .unwrap();
    for _ in 0..100 {
        assert_eq!(r.health().status, HealthStatus::Degraded);
    }
    assert_eq!(runs.load(SeqCst), 1, "a flood of health() runs the check once per interval");
    let h = r.health();
    let c = &h.checks[0];
    assert_eq!((c.ok, c.error.as_deref(), c.last_ok_at), (false, Some("connection refused"), None));
    up.store(1, SeqCst);
    clock.advance(Duration::from_secs(10));
    let h = r.health();
    assert_eq!(h.status, HealthStatus::Ok);
    assert_eq!(runs.load(SeqCst), 2);
    assert_eq!(h.checks[0].last_ok_at, Some(Duration::from_secs(10)));
}

#[test]
fn a_hanging_check_fails_at_its_timeout_and_never_hangs_health() {
    let r = Registry::new();
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let config = CheckConfig { timeout: Duration::from_millis(100), interval: Duration::ZERO, critical: true };
    r.add_check(
        "hangs",
        config,
        Arc::new(move || {
            s.fetch_add(1, SeqCst);
            std::thread::sleep(Duration::from_secs(3));
            Ok(())
        }),
    )
    .unwrap();
    r.add_check("panics", CheckConfig { critical: false, ..CheckConfig::default() }, Arc::new(|| panic!("check bug")))
        .unwrap();
    let t = Instant::now();
    let h = r.health();
    assert!(t.elapsed() < Duration::from_secs(2), "health() took {:?}", t.elapsed());
    assert_eq!(h.status, HealthStatus::Down);
    let hang = h.checks.iter().find(|c| c.name == "hangs").unwrap();
    assert!(hang.error.as_deref().unwrap().contains("timed out after 100 ms"), "{hang:?}");
    let panics = h.checks.iter().find(|c| c.name == "panics").unwrap();
    assert_eq!(panics.error.as_deref(), Some("the check panicked"));
    // Asked again while the first run still hangs: no second thread is started.
    let h = r.health();
    assert_eq!(started.load(SeqCst), 1);
    let hang = h.checks.iter().find(|c| c.name == "hangs").unwrap();
    assert!(hang.error.as_deref().unwrap().contains("has not returned"), "{hang:?}");
}

#[test]
fn metrics_are_exact_after_many_threads() {
    let r = Registry::new();
    let b = r.breaker("hot", BreakerConfig { consecutive_failures: Some(u32::MAX), ..Default::default() }).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let b = b.clone();
            std::thread::spawn(move || {
                for i in 0..10_000u32 {
                    let p = b.try_acquire().unwrap();
                    if (i + t) % 4 == 0 {
                        p.failure(Duration::ZERO);
                    } else {
                        p.success(Duration::ZERO);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let text = r.prometheus();
    assert!(text.contains("seawall_breaker_calls_total{breaker=\"hot\",outcome=\"success\"} 60000"), "{text}");
    assert!(text.contains("seawall_breaker_calls_total{breaker=\"hot\",outcome=\"failure\"} 20000"), "{text}");
    assert!(text.contains("seawall_breaker_state{breaker=\"hot\",state=\"closed\"} 1"));
    assert!(text.contains("seawall_health_status{status=\"ok\"} 1"));
    // Every line is a comment or `name{labels} value`.
    for line in text.lines() {
        assert!(line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line.starts_with("seawall_"), "{line}");
    }
    let snap = r.snapshot_json();
    assert_eq!(snap["breakers"]["hot"]["successes"], 60000);
    assert_eq!(snap["health"]["status"], "ok");
}

#[test]
fn label_values_are_escaped() {
    let r = Registry::new();
    r.breaker("a\"b\\c\nd", BreakerConfig::default()).unwrap();
    assert!(r.prometheus().contains(r#"breaker="a\"b\\c\nd""#));
}

#[test]
fn idempotency_caches_are_registered_and_exported() {
    use seawall::idempotency::{fingerprint, Begin, IdempotencyConfig, Output};
    let r = Registry::with(ManualClock::shared(), 10);
    let cache = r.idempotency_cache("orders", IdempotencyConfig::default()).unwrap();
    let same = r.idempotency_cache("orders", IdempotencyConfig::default()).unwrap();
    let fp = fingerprint(b"{}");
    let Begin::Execute(lease) = cache.begin("k1", &fp).unwrap() else { panic!("a fresh key runs") };
    cache.complete(&lease, Output::new(b"42".to_vec(), "application/json")).unwrap();
    assert!(matches!(same.begin("k1", &fp).unwrap(), Begin::Replay(_)), "the same cache");
    let text = r.prometheus();
    assert!(text.contains("seawall_idempotency_requests_total{cache=\"orders\",result=\"execute\"} 1"), "{text}");
    assert!(text.contains("seawall_idempotency_requests_total{cache=\"orders\",result=\"replay\"} 1"), "{text}");
    assert!(text.contains("seawall_idempotency_events_total{cache=\"orders\",event=\"completed\"} 1"), "{text}");
    assert_eq!(r.snapshot_json()["idempotency"]["orders"]["replayed"], 1);
    assert!(r.idempotency_cache("", IdempotencyConfig::default()).is_err());
}

#[test]
fn health_does_not_strand_checks_the_binding_runs() {
    let clock = ManualClock::shared();
    let r = Registry::with(clock.clone(), 10);
    let config = CheckConfig { timeout: Duration::from_secs(1), interval: Duration::ZERO, critical: true };
    r.add_external_check("js", config).unwrap();
    let _ = r.health(); // runs only the core's checks
    clock.advance(Duration::from_secs(2));
    let due = r.checks().due_of(clock.now(), true);
    assert_eq!(due.len(), 1, "the external check is still due for its runner");
    r.checks().finish("js", due[0].run, Ok(()), clock.now());
    assert_eq!(r.report().status, HealthStatus::Ok);
}

/// A memory store whose health check can be made to fail.
#[derive(Debug)]
struct Flaky {
    inner: seawall::MemoryStore,
    down: std::sync::atomic::AtomicBool,
}

impl seawall::Store for Flaky {
    fn kind(&self) -> &'static str {
        "flaky"
    }
    fn claim(
        &self,
        key: &str,
        fp: &seawall::idempotency::Fingerprint,
        lease: Duration,
    ) -> Result<seawall::store::Claim, seawall::Error> {
        self.inner.claim(key, fp, lease)
    }
    fn complete(
        &self,
        key: &str,
        token: u64,
        output: seawall::idempotency::Output,
        ttl: Duration,
    ) -> Result<seawall::idempotency::Record, seawall::Error> {
        self.inner.complete(key, token, output, ttl)
    }
    fn release(&self, key: &str, token: u64) -> Result<(), seawall::Error> {
        self.inner.release(key, token)
    }
    fn renew(&self, key: &str, token: u64, lease: Duration) -> Result<Duration, seawall::Error> {
        self.inner.renew(key, token, lease)
    }
    fn peek(&self, key: &str) -> Result<seawall::store::Peek, seawall::Error> {
        self.inner.peek(key)
    }
    fn subscribe(&self, l: seawall::store::StoreListener) -> seawall::store::SubscriptionId {
        self.inner.subscribe(l)
    }
    fn unsubscribe(&self, id: seawall::store::SubscriptionId) -> bool {
        self.inner.unsubscribe(id)
    }
    fn check(&self) -> Result<(), seawall::Error> {
        if self.down.load(SeqCst) {
            Err(seawall::Error::StoreUnavailable("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

#[test]
fn stores_contribute_to_health_per_their_criticality() {
    use seawall::idempotency::IdempotencyConfig;
    use seawall::ConfigValue;
    let clock = ManualClock::shared();
    let r = Registry::with(clock.clone(), 10);
    let flaky = Arc::new(Flaky {
        inner: seawall::MemoryStore::new(Default::default()).unwrap(),
        down: false.into(),
    });
    let shared: seawall::store::SharedStore = flaky.clone();
    let config = |critical: Option<bool>, on_store_error: &str| {
        let mut c = IdempotencyConfig::default().with_clock(clock.clone()).with_store(shared.clone());
        c.set("on_store_error", ConfigValue::Str(on_store_error.into())).unwrap();
        if let Some(v) = critical {
            c.set("critical", ConfigValue::Bool(v)).unwrap();
        }
        c
    };
    r.idempotency_cache("payments", config(None, "fail")).unwrap();
    let h = r.health();
    assert_eq!(h.status, HealthStatus::Ok, "{h:?}");
    let part = h.checks.iter().find(|c| c.name == "idempotency:payments").expect("a store check per cache");
    assert_eq!((part.kind, part.ok, part.critical), ("store", true, true));

    // The store goes down: a failing claim fails the calls (on_store_error = "fail"), so
    // the cache is critical by default and the service is down.
    flaky.down.store(true, SeqCst);
    clock.advance(Duration::from_secs(5)); // past the check's interval
    let h = r.health();
    assert_eq!(h.status, HealthStatus::Down, "{h:?}");
    let part = h.checks.iter().find(|c| c.name == "idempotency:payments").unwrap();
    assert_eq!(part.error.as_deref(), Some("flaky store unavailable: connection refused"));
    assert!(part.last_ok_at.is_some(), "it passed once");

    // A cache that runs unprotected when its store fails only degrades the service; an
    // explicit `critical` wins over that default.
    let r2 = Registry::with(clock.clone(), 10);
    r2.idempotency_cache("search", config(None, "run")).unwrap();
    assert_eq!(r2.health().status, HealthStatus::Degraded);
    let r3 = Registry::with(clock.clone(), 10);
    r3.idempotency_cache("emails", config(Some(false), "fail")).unwrap();
    r3.idempotency_cache("audit", config(Some(true), "run")).unwrap();
    let h = r3.health();
    assert_eq!(h.status, HealthStatus::Down);
    let crit: Vec<(String, bool)> = h.checks.iter().map(|c| (c.name.clone(), c.critical)).collect();
    assert_eq!(crit, [("idempotency:audit".to_owned(), true), ("idempotency:emails".to_owned(), false)]);

    // Back up: ok again after the interval; the Prometheus gauge follows.
    flaky.down.store(false, SeqCst);
    clock.advance(Duration::from_secs(5));
    assert_eq!(r.health().status, HealthStatus::Ok);
    assert!(r.prometheus().contains("seawall_health_check_up{check=\"idempotency:payments\",kind=\"store\"} 1"));

    // Bindings that run the user's checks on an event loop leave the stores' to the core.
    flaky.down.store(true, SeqCst);
    clock.advance(Duration::from_secs(5));
    assert!(r.checks().due_of_kind(clock.now(), "check").is_empty());
    r.run_store_checks();
    assert_eq!(r.report().status, HealthStatus::Down);
}
