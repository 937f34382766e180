//! seawall alone: per-call overhead of a guarded no-op call next to a bare call, in one run.
//!
//! Run: `cargo bench -p seawall --bench overhead` (quick, no peers; the comparison with
//! failsafe-rs, recloser and a hand-written breaker is `cargo bench -p seawall-bench`).
//! `cargo bench -p seawall --bench overhead -- open` runs only the rows whose label
//! contains "open" (handy under `perf record`); `SEAWALL_BENCH_SMOKE=1` (or `--smoke`) runs
//! every row for a few milliseconds.
//!
//! Prints ns per call (best of 5 batches) for: a bare call; `call(..)` and `try_acquire` +
//! `success` under the default (consecutive-failures) policy; a failing call; an open and
//! a forced-open breaker's rejection; count- and time-window rate policies; and 2 threads
//! on one breaker.

use std::hint::black_box;
use std::time::{Duration, Instant};

use seawall::{BreakerConfig, CallError, CircuitBreaker, WindowKind};

struct Run {
    n: u64,
    filter: Option<String>,
}

impl Run {
    fn wants(&self, label: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| label.contains(f))
    }

    fn per_call(&self, label: &str, base: Option<f64>, mut f: impl FnMut(u64)) -> f64 {
        if !self.wants(label) && base.is_some() {
            return f64::NAN;
        }
        f(self.n / 20);
        let best = (0..5)
            .map(|_| {
                let t = Instant::now();
                f(self.n / 5);
                t.elapsed().as_nanos() as f64 / (self.n / 5) as f64
            })
            .fold(f64::INFINITY, f64::min);
        match base {
            Some(b) => println!("{label:<44} {best:>7.2} ns/call  (+{:.2} ns over bare)", best - b),
            None => println!("{label:<44} {best:>7.2} ns/call"),
        }
        best
    }
}

#[inline(never)]
fn ok(x: u64) -> Result<u64, ()> {
    Ok(black_box(x))
}

#[inline(never)]
fn fail(x: u64) -> Result<u64, ()> {
    black_box(x);
    Err(())
}

fn guarded<'a>(b: &'a CircuitBreaker, f: impl Fn(u64) -> Result<u64, ()> + Sync + 'a) -> impl Fn(u64) + Sync + 'a {
    move |n| {
        for i in 0..n {
            let r: Result<u64, CallError<()>> = b.call(|| f(i));
            black_box(r.is_ok());
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = std::env::var("SEAWALL_BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0")
        || args.iter().any(|a| a == "--smoke")
        || !args.iter().any(|a| a == "--bench"); // `cargo test --benches`: a smoke run
    let filter = args.iter().find(|a| !a.starts_with("--")).cloned();
    let run = Run { n: if smoke { 50_000 } else { 20_000_000 }, filter };

    let consecutive = CircuitBreaker::new(BreakerConfig::named("bench")).unwrap();
    let never_opens = CircuitBreaker::new(BreakerConfig { consecutive_failures: Some(u32::MAX), ..BreakerConfig::named("bench-fail") }).unwrap();
    let open = CircuitBreaker::new(BreakerConfig {
        consecutive_failures: Some(1),
        open_duration: Duration::from_secs(3600),
        ..BreakerConfig::named("bench-open")
    })
    .unwrap();
    let _ = open.call(|| fail(0));
    assert_eq!(open.state(), seawall::State::Open);
    let forced = CircuitBreaker::new(BreakerConfig::named("bench-forced")).unwrap();
    forced.force_open();
    let count_rate = CircuitBreaker::new(BreakerConfig { failure_rate_threshold: Some(0.5), ..BreakerConfig::named("bench-count") }).unwrap();
    let time_rate = CircuitBreaker::new(BreakerConfig {
        failure_rate_threshold: Some(0.5),
        window: WindowKind::Time,
        ..BreakerConfig::named("bench-time")
    })
    .unwrap();

    println!("seawall overhead (best of 5 x {} calls){}", run.n / 5, if smoke { " SMOKE RUN: figures meaningless" } else { "" });
    let bare = run.per_call("bare call", None, |n| {
        for i in 0..n {
            black_box(ok(i).is_ok());
        }
    });
    run.per_call("call(ok) (consecutive)", Some(bare), guarded(&consecutive, ok));
    run.per_call("try_acquire + success (consecutive)", Some(bare), |n| {
        for i in 0..n {
            let p = consecutive.try_acquire().unwrap();
            black_box(ok(i).is_ok());
            p.success(Duration::ZERO);
        }
    });
    run.per_call("call(fail) (consecutive, never opens)", Some(bare), guarded(&never_opens, fail));
    run.per_call("call(ok) rejected (open)", Some(bare), guarded(&open, ok));
    run.per_call("call(ok) rejected (forced_open)", Some(bare), guarded(&forced, ok));
    run.per_call("call(ok) (failure rate, count window)", Some(bare), guarded(&count_rate, ok));
    run.per_call("call(ok) (failure rate, time window)", Some(bare), guarded(&time_rate, ok));

    // Two threads on one breaker (this machine has 2 cores): per-thread time per call.
    if run.wants("2 threads") {
        let body = guarded(&consecutive, ok);
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| body(run.n / 10));
            }
        });
        let per = t.elapsed().as_nanos() as f64 / (run.n / 10) as f64;
        println!("{:<44} {per:>7.2} ns/call per thread", "call(ok), 2 threads, one breaker");
    }
    assert_eq!(open.state(), seawall::State::Open);
    assert_eq!(consecutive.snapshot().failures, 0);
}
