//! The observability scenario of `node/tests/observability.test.js`, run on the Rust
//! registry: the Node test replays the same calls through the Node package and expects the
//! same Prometheus text and the same snapshot, byte for byte and field for field.
//!
//! Prints the Prometheus text, a line `---`, then the snapshot JSON.
//!
//! Run: `cargo run -q --release -p seawall-node --example observability_scenario`

use std::sync::Arc;
use std::time::Duration;

use seawall::health::CheckConfig;
use seawall::idempotency::{Begin, Fingerprint, Output};
use seawall::{BreakerConfig, ConfigValue, IdempotencyConfig, ManualClock, Outcome, Registry, SharedClock};

fn config(clock: &SharedClock, options: &[(&str, ConfigValue)]) -> BreakerConfig {
    let mut c = BreakerConfig::default().with_clock(clock.clone());
    for (k, v) in options {
        c.set(k, v.clone()).expect("valid option");
    }
    c
}

fn main() {
    let manual = ManualClock::shared();
    let clock: SharedClock = manual.clone();
    let registry = Registry::with(clock.clone(), 100);

    let db = registry.breaker("db", config(&clock, &[("consecutive_failures", ConfigValue::Int(2))])).unwrap();
    let cache = registry
        .breaker(
            "cache",
            config(&clock, &[("consecutive_failures", ConfigValue::Int(1)), ("critical", ConfigValue::Bool(false))]),
        )
        .unwrap();
    let api = registry
        .breaker(
            "api \"v2\"",
            config(
                &clock,
                &[("slow_call_duration", ConfigValue::Int(100)), ("failure_rate_threshold", ConfigValue::Float(0.9))],
            ),
        )
        .unwrap();

    // db: three successes and a failure (still closed).
    for _ in 0..3 {
        db.try_acquire().unwrap().success(Duration::ZERO);
    }
    db.try_acquire().unwrap().failure(Duration::ZERO);

    // cache: one failure opens it; two calls are rejected, one of them answered by a fallback.
    cache.try_acquire().unwrap().failure(Duration::ZERO);
    assert!(cache.try_acquire().is_err());
    cache.record_fallback();
    assert!(cache.try_acquire().is_err());

    manual.advance(Duration::from_millis(500));

    // api: a slow success, a timeout, an ignored call.
    api.try_acquire().unwrap().success(Duration::from_millis(150));
    api.try_acquire().unwrap().record(Outcome::Timeout, Duration::from_millis(40));
    api.try_acquire().unwrap().ignore();

    // payments: a fresh run, its replay, a mismatch, a run that failed (released).
    let payments = registry.idempotency_cache("payments", IdempotencyConfig::default().with_clock(clock.clone())).unwrap();
    // The canonical JSON of { amount: 100 } (what Node's `fingerprint` option hashes).
    let fp = Fingerprint::of(br#"{"amount":100}"#);
    let Begin::Execute(lease) = payments.begin("charge-1", &fp).unwrap() else { panic!("fresh key") };
    payments.complete(&lease, Output::new(&br#"{"id":1}"#[..], "application/json")).unwrap();
    assert!(matches!(payments.begin("charge-1", &fp).unwrap(), Begin::Replay(_)));
    let other = Fingerprint::of(br#"{"amount":200}"#);
    assert!(matches!(payments.begin("charge-1", &other).unwrap(), Begin::Mismatch(_)));
    let Begin::Execute(failed) = payments.begin("charge-2", &Fingerprint::NONE).unwrap() else { panic!("fresh key") };
    payments.fail(&failed, None).unwrap();

    registry.add_check("disk", CheckConfig::default(), Arc::new(|| Ok(()))).unwrap();
    let lenient = CheckConfig { critical: false, ..CheckConfig::default() };
    registry.add_check("queue", lenient, Arc::new(|| Err("queue is full".to_owned()))).unwrap();
    let health = registry.health();
    assert_eq!(health.status.as_str(), "degraded");

    print!("{}", registry.prometheus());
    println!("---");
    println!("{}", registry.snapshot_json());
}
