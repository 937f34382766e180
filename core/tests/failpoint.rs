//! Panic containment at the core's fault sites (`seawall::failpoint`): each armed site
//! panics once, and the object is usable afterwards, as docs/hardening.md says. One test
//! in its own binary: the sites are process-wide.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use seawall::idempotency::{Begin, Fingerprint, Output};
use seawall::{failpoint, BreakerConfig, CircuitBreaker, IdempotencyCache, IdempotencyConfig, ManualClock, Outcome};
use seawall::{Registry, State};

#[test]
fn every_site_panics_once_and_leaves_its_object_usable() {
    std::panic::set_hook(Box::new(|_| {})); // the panics are expected: keep the output clean
    assert!(failpoint::arm("nowhere").unwrap_err().to_string().contains("site = \"nowhere\""));

    // breaker.trip: the failure that would open the breaker panics with the lock held.
    let clock = ManualClock::shared();
    let mut c = BreakerConfig::default().with_clock(clock.clone());
    c.consecutive_failures = Some(2);
    let b = CircuitBreaker::new(c).unwrap();
    b.try_acquire_shared().unwrap().record(Outcome::Failure, Duration::ZERO).unwrap();
    failpoint::arm("breaker.trip").unwrap();
    let p = b.try_acquire_shared().unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| p.record(Outcome::Failure, Duration::ZERO))).is_err());
    assert_eq!(b.state(), State::Closed, "the panic left the breaker closed");
    assert_eq!(b.snapshot().failures, 2, "the failure was counted");
    b.try_acquire_shared().unwrap().record(Outcome::Failure, Duration::ZERO).unwrap();
    assert_eq!(b.state(), State::Open, "the next failure trips it: the lock was released");

    // idempotency.begin: nothing is claimed.
    let cache = IdempotencyCache::new(IdempotencyConfig::default().with_clock(clock.clone())).unwrap();
    failpoint::arm("idempotency.begin").unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| cache.begin("k", &Fingerprint::NONE))).is_err());
    let Begin::Execute(lease) = cache.begin("k", &Fingerprint::NONE).unwrap() else { panic!("k was not claimed") };
    cache.complete(&lease, Output::new(&b"1"[..], "")).unwrap();
    assert!(matches!(cache.begin("k", &Fingerprint::NONE).unwrap(), Begin::Replay(_)));

    // registry.render.
    let r = Registry::with(clock, 10);
    r.breaker("db", BreakerConfig::default()).unwrap();
    failpoint::arm("registry.render").unwrap();
    assert!(catch_unwind(AssertUnwindSafe(|| r.prometheus())).is_err());
    assert!(r.prometheus().contains("seawall_breaker_state{breaker=\"db\""));

    // Armed, then disarmed: nothing fires.
    failpoint::arm("registry.render").unwrap();
    failpoint::disarm();
    r.prometheus();
}
