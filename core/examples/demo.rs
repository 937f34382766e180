//! The demo scenario of `examples/demo/README.md`, from Rust, on a `ManualClock`.
//!
//! Run: `cargo run -p seawall --example demo`

use std::time::Duration;

use seawall::{BreakerConfig, CircuitBreaker, ManualClock};

fn dependency_fails(t_ms: u64) -> bool {
    (2000..5000).contains(&t_ms) || (9000..15000).contains(&t_ms)
}

fn main() {
    let clock = ManualClock::shared();
    let config = BreakerConfig {
        consecutive_failures: Some(3),
        open_duration: Duration::from_millis(2000),
        open_duration_max: Some(Duration::from_millis(8000)),
        backoff_multiplier: 2.0,
        half_open_max_calls: 2,
        half_open_success_threshold: 2,
        ..BreakerConfig::named("inventory")
    }
    .with_clock(clock.clone());
    let breaker = CircuitBreaker::new(config).expect("valid config");
    breaker.on_state_change(|e| {
        println!("{:6} ms  {}: {} -> {} ({})", e.at.as_millis(), e.breaker, e.from, e.to, e.reason);
    });
    eprintln!("rust: flaky dependency behind a breaker, 40 ticks of 500 ms");
    for i in 0..40u64 {
        let t = i * 500;
        if let Ok(permit) = breaker.try_acquire() {
            if dependency_fails(t) {
                permit.failure(Duration::from_millis(10));
            } else {
                permit.success(Duration::from_millis(10));
            }
        }
        clock.advance(Duration::from_millis(500));
    }
    let s = breaker.snapshot();
    println!("summary: state={} successes={} failures={} rejected={}", s.state, s.successes, s.failures, s.rejected);
}
