//! The Rust example of the README.
//!
//! Run: `cargo run -p seawall --example breaker`

use std::time::Duration;

use seawall::{BreakerConfig, CallError, CircuitBreaker, ManualClock, State};

fn fetch_price(up: bool) -> Result<u32, String> {
    if up {
        Ok(42)
    } else {
        Err("connection refused".into())
    }
}

fn main() {
    let clock = ManualClock::shared();
    let breaker = CircuitBreaker::new(
        BreakerConfig {
            consecutive_failures: Some(2),
            open_duration: Duration::from_secs(10),
            ..BreakerConfig::named("prices")
        }
        .with_clock(clock.clone()),
    )
    .expect("valid config");
    breaker.on_state_change(|e| println!("event: {} -> {} ({})", e.from, e.to, e.reason));

    for _ in 0..2 {
        let r = breaker.call(|| fetch_price(false));
        assert!(matches!(r, Err(CallError::Failed(_))));
    }
    match breaker.call(|| fetch_price(true)) {
        Err(CallError::Rejected(r)) => println!("rejected; retry after {:?}", r.retry_after),
        other => panic!("expected a rejection, got {other:?}"),
    }
    clock.advance(Duration::from_secs(10));
    let price = breaker.call(|| fetch_price(true)).expect("the probe succeeds");
    assert_eq!(breaker.state(), State::Closed);
    println!("price = {price}, state = {}", breaker.state());
}
