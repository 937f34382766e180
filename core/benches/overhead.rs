//! Per-call overhead of a guarded no-op call next to a bare call, in one run.
//!
//! Run: `cargo bench -p seawall --bench overhead` (bench/run.sh runs it with the others).
//! Prints ns per call for: a bare call, `try_acquire` + `success` (closed, consecutive
//! policy: no clock read), `call(..)`, a count-window rate policy, a time-window policy
//! (one clock read per call), and 2 threads on one breaker.

use std::hint::black_box;
use std::time::{Duration, Instant};

use seawall::{BreakerConfig, CallError, CircuitBreaker, WindowKind};

const N: u64 = 20_000_000;

fn per_call(label: &str, base: Option<f64>, mut f: impl FnMut()) -> f64 {
    for _ in 0..N / 20 {
        f();
    }
    let best = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..N / 5 {
                f();
            }
            t.elapsed().as_nanos() as f64 / (N / 5) as f64
        })
        .fold(f64::INFINITY, f64::min);
    match base {
        Some(b) => println!("{label:<44} {best:>7.2} ns/call  (+{:.2} ns over bare)", best - b),
        None => println!("{label:<44} {best:>7.2} ns/call"),
    }
    best
}

#[inline(never)]
fn noop(x: u64) -> Result<u64, ()> {
    Ok(black_box(x))
}

fn main() {
    let consecutive = CircuitBreaker::new(BreakerConfig::named("bench")).unwrap();
    let count_rate = CircuitBreaker::new(BreakerConfig {
        failure_rate_threshold: Some(0.5),
        ..BreakerConfig::named("bench-count")
    })
    .unwrap();
    let time_rate = CircuitBreaker::new(BreakerConfig {
        failure_rate_threshold: Some(0.5),
        window: WindowKind::Time,
        ..BreakerConfig::named("bench-time")
    })
    .unwrap();

    println!("seawall overhead (best of 5 x {} calls)", N / 5);
    let bare = per_call("bare call", None, || {
        let _ = black_box(noop(1));
    });
    per_call("try_acquire + success (consecutive)", Some(bare), || {
        let _ = black_box(noop(1));
        consecutive.try_acquire().unwrap().success(Duration::ZERO);
    });
    per_call("call(noop) (consecutive)", Some(bare), || {
        let r: Result<u64, CallError<()>> = consecutive.call(|| noop(1));
        let _ = black_box(r);
    });
    per_call("call(noop) (failure rate, count window)", Some(bare), || {
        let r: Result<u64, CallError<()>> = count_rate.call(|| noop(1));
        let _ = black_box(r);
    });
    per_call("call(noop) (failure rate, time window)", Some(bare), || {
        let r: Result<u64, CallError<()>> = time_rate.call(|| noop(1));
        let _ = black_box(r);
    });

    // Two threads on one breaker (this machine has 2 cores): contention on shared counters.
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..N / 10 {
                    let r: Result<u64, CallError<()>> = consecutive.call(|| noop(1));
                    let _ = black_box(r);
                }
            });
        }
    });
    println!("{:<44} {:>7.2} ns/call per thread", "call(noop), 2 threads, one breaker", t.elapsed().as_nanos() as f64 / (N / 10) as f64);
}
