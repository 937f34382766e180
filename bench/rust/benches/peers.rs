//! seawall beside its Rust peers, in one process run, interleaved.
//!
//! Run: `cargo bench -p seawall-bench --bench peers` (bench/run.sh runs it).
//! Smoke (every benchmark for a fraction of a second, no thresholds, results written to
//! `target/bench/rust-smoke.{md,json}`): `SEAWALL_BENCH_SMOKE=1 cargo bench -p seawall-bench --bench peers`
//! (or pass `-- --smoke`).
//!
//! Each scenario runs its variants round after round; in every round each variant times
//! one batch of calls, starting from a different variant each round, so drift and noise
//! from other processes hit every variant alike. Reported per variant: the median ns per
//! call over the rounds, min–max, the overhead (median over rounds of guarded − bare in
//! the same round) and that overhead as a multiple of the hand-written atomic breaker's
//! (the floor). The thread scenario reports throughput with 2 threads on one breaker
//! divided by 1 thread's.
//!
//! Writes `target/bench/rust.md` and `target/bench/rust.json` and prints the table.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::*};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use failsafe::{backoff, failure_policy, CircuitBreaker as _};
use seawall::{BreakerConfig, CallError, CircuitBreaker, WindowKind};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// The floor: a hand-written minimal atomic breaker (consecutive failures, one state byte).
// It counts nothing but failures in a row, carries no name in its rejection and reads a
// clock only when open: the least a correct breaker does per call.

mod floor {
    use super::*;

    const CLOSED: u8 = 0;
    const OPEN: u8 = 1;

    pub struct AtomicBreaker {
        state: AtomicU8,
        failures: AtomicU32,
        threshold: u32,
        open_until: AtomicU64, // coarse-clock nanoseconds
        open_for: u64,
    }

    /// CLOCK_MONOTONIC_COARSE: the cheapest time a breaker can ask the kernel for.
    pub fn coarse_nanos() -> u64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: ts is a valid out-pointer; the clock id is valid on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    impl AtomicBreaker {
        pub fn new(threshold: u32, open_for: Duration) -> Self {
            Self { state: AtomicU8::new(CLOSED), failures: AtomicU32::new(0), threshold, open_until: AtomicU64::new(0), open_for: open_for.as_nanos() as u64 }
        }

        #[inline]
        pub fn call<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, Option<E>> {
            if self.state.load(Acquire) != CLOSED && coarse_nanos() < self.open_until.load(Acquire) {
                return Err(None); // open: rejected (after open_until it admits calls again)
            }
            match f() {
                Ok(v) => {
                    if self.failures.load(Relaxed) != 0 {
                        self.failures.store(0, Relaxed);
                    }
                    Ok(v)
                }
                Err(e) => {
                    if self.failures.fetch_add(1, AcqRel) + 1 >= self.threshold {
                        self.open_until.store(coarse_nanos() + self.open_for, Release);
                        self.state.store(OPEN, Release);
                        self.failures.store(0, Relaxed);
                    }
                    Err(Some(e))
                }
            }
        }
    }

    /// The floor plus what exact metrics cost done the usual way: one shared atomic
    /// counter of successes.
    pub struct CountingBreaker {
        pub inner: AtomicBreaker,
        pub successes: AtomicU64,
    }

    impl CountingBreaker {
        #[inline]
        pub fn call<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, Option<E>> {
            let r = self.inner.call(f);
            if r.is_ok() {
                self.successes.fetch_add(1, Relaxed);
            }
            r
        }
    }

    /// Thread CPU time: a thread that was not running on a core for its whole batch made
    /// that round's scaling figure meaningless.
    pub fn thread_cpu() -> Duration {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: valid out-pointer, valid clock id.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

use floor::{AtomicBreaker, CountingBreaker};

#[inline(never)]
fn ok(x: u64) -> Result<u64, ()> {
    Ok(black_box(x))
}

#[inline(never)]
fn fail(x: u64) -> Result<u64, ()> {
    black_box(x);
    Err(())
}

// ---------------------------------------------------------------------------------------
// Harness.

struct Settings {
    smoke: bool,
    rounds: usize,
    /// Target wall time of one batch.
    batch: Duration,
    /// Rounds and batch time of the thread-scaling runs.
    thread_rounds: usize,
    thread_batch: Duration,
}

type Body<'a> = Box<dyn FnMut(u64) + 'a>;

struct Variant<'a> {
    name: &'static str,
    note: &'static str,
    body: Body<'a>,
}

fn variant<'a>(name: &'static str, note: &'static str, body: impl FnMut(u64) + 'a) -> Variant<'a> {
    Variant { name, note, body: Box::new(body) }
}

#[derive(Clone)]
struct Row {
    name: &'static str,
    note: &'static str,
    samples: Vec<f64>,
    overheads: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// Iterations of `body` that take about `target`.
fn calibrate(body: &mut Body<'_>, target: Duration) -> u64 {
    let mut n = 1_000u64;
    loop {
        let t = Instant::now();
        body(n);
        let took = t.elapsed();
        if took >= target / 8 || n >= 1 << 32 {
            let per = took.as_nanos() as f64 / n as f64;
            return ((target.as_nanos() as f64 / per.max(0.05)) as u64).clamp(1_000, 1 << 32);
        }
        n *= 4;
    }
}

/// Runs the variants interleaved; variant 0 must be the bare call.
fn measure(s: &Settings, mut variants: Vec<Variant<'_>>) -> Vec<Row> {
    let iters: Vec<u64> = variants.iter_mut().map(|v| calibrate(&mut v.body, s.batch)).collect();
    let k = variants.len();
    let mut samples = vec![Vec::with_capacity(s.rounds); k];
    for round in 0..s.rounds {
        for j in 0..k {
            let i = (round + j) % k;
            let t = Instant::now();
            (variants[i].body)(iters[i]);
            samples[i].push(t.elapsed().as_nanos() as f64 / iters[i] as f64);
        }
    }
    let bare = samples[0].clone();
    variants
        .iter()
        .zip(samples)
        .map(|(v, smp)| Row {
            name: v.name,
            note: v.note,
            overheads: smp.iter().zip(&bare).map(|(a, b)| a - b).collect(),
            samples: smp,
        })
        .collect()
}

struct Scenario {
    key: &'static str,
    title: &'static str,
    rows: Vec<Row>,
}

fn overhead_of(rows: &[Row], name: &str) -> Option<f64> {
    rows.iter().find(|r| r.name == name).map(|r| median(&r.overheads))
}

// ---------------------------------------------------------------------------------------
// Peers, configured to do the same work as seawall in each scenario.

fn failsafe_consecutive(n: u32, open: Duration) -> impl failsafe::CircuitBreaker + Sync + Send {
    failsafe::Config::new().failure_policy(failure_policy::consecutive_failures(n, backoff::constant(open))).build()
}

fn seawall(cfg: BreakerConfig) -> CircuitBreaker {
    CircuitBreaker::new(cfg).expect("valid bench config")
}

const HOUR: Duration = Duration::from_secs(3600);

fn scenarios(s: &Settings) -> Vec<Scenario> {
    let mut out = Vec::new();

    // Closed, every call succeeds. seawall's default policy is 5 consecutive failures;
    // the floor and failsafe use the same; recloser has only its count window (100 calls).
    {
        let fl = AtomicBreaker::new(5, HOUR);
        let flc = CountingBreaker { inner: AtomicBreaker::new(5, HOUR), successes: AtomicU64::new(0) };
        let sw = seawall(BreakerConfig::named("bench"));
        let fs = failsafe_consecutive(5, HOUR);
        let rc = recloser::Recloser::custom().build();
        let rows = measure(
            s,
            vec![
                variant("bare", "the no-op call alone", |n| {
                    for i in 0..n {
                        black_box(ok(i).is_ok());
                    }
                }),
                variant("floor", "hand-written atomic breaker", |n| {
                    for i in 0..n {
                        black_box(fl.call(|| ok(i)).is_ok());
                    }
                }),
                variant("floor + metrics", "the same, counting successes in one shared atomic", |n| {
                    for i in 0..n {
                        black_box(flc.call(|| ok(i)).is_ok());
                    }
                }),
                variant("seawall", "`call(f)`", |n| {
                    for i in 0..n {
                        let r: Result<u64, CallError<()>> = sw.call(|| ok(i));
                        black_box(r.is_ok());
                    }
                }),
                variant("seawall permit", "`try_acquire()` + `success`", |n| {
                    for i in 0..n {
                        let p = sw.try_acquire().unwrap();
                        black_box(ok(i).is_ok());
                        p.success(Duration::ZERO);
                    }
                }),
                variant("failsafe", "consecutive_failures(5)", |n| {
                    for i in 0..n {
                        black_box(fs.call(|| ok(i)).is_ok());
                    }
                }),
                variant("recloser", "count window of 100 (its only policy)", |n| {
                    for i in 0..n {
                        black_box(rc.call(|| ok(i)).is_ok());
                    }
                }),
            ],
        );
        assert_eq!(sw.snapshot().failures, 0);
        out.push(Scenario { key: "closed_success", title: "closed, success", rows });
    }

    // Closed, every call fails; thresholds out of reach so nothing opens.
    {
        let fl = AtomicBreaker::new(u32::MAX, HOUR);
        let sw = seawall(BreakerConfig { consecutive_failures: Some(u32::MAX), ..BreakerConfig::named("bench") });
        let fs = failsafe_consecutive(u32::MAX, HOUR);
        let rc = recloser::Recloser::custom().error_rate(1.5).build();
        let rows = measure(
            s,
            vec![
                variant("bare", "the failing call alone", |n| {
                    for i in 0..n {
                        black_box(fail(i).is_ok());
                    }
                }),
                variant("floor", "hand-written atomic breaker", |n| {
                    for i in 0..n {
                        black_box(fl.call(|| fail(i)).is_ok());
                    }
                }),
                variant("seawall", "`call(f)`, consecutive_failures out of reach", |n| {
                    for i in 0..n {
                        let r: Result<u64, CallError<()>> = sw.call(|| fail(i));
                        black_box(r.is_ok());
                    }
                }),
                variant("failsafe", "consecutive_failures(u32::MAX)", |n| {
                    for i in 0..n {
                        black_box(fs.call(|| fail(i)).is_ok());
                    }
                }),
                variant("recloser", "count window of 100, error rate 1.5 (never trips)", |n| {
                    for i in 0..n {
                        black_box(rc.call(|| fail(i)).is_ok());
                    }
                }),
            ],
        );
        assert_eq!(sw.state(), seawall::State::Closed);
        out.push(Scenario { key: "failure", title: "closed, failure", rows });
    }

    // Open (an hour to go), every call rejected.
    {
        let fl = AtomicBreaker::new(1, HOUR);
        let _ = fl.call(|| fail(0));
        assert!(fl.call(|| ok(0)).is_err());
        let sw = seawall(BreakerConfig { consecutive_failures: Some(1), open_duration: HOUR, ..BreakerConfig::named("bench") });
        let _: Result<u64, CallError<()>> = sw.call(|| fail(0));
        assert_eq!(sw.state(), seawall::State::Open);
        let forced = seawall(BreakerConfig::named("bench-forced"));
        forced.force_open();
        let fs = failsafe_consecutive(1, HOUR);
        let _ = fs.call(|| fail(0));
        assert!(matches!(fs.call(|| ok(0)), Err(failsafe::Error::Rejected)));
        let rc = recloser::Recloser::custom().closed_len(1).open_wait(HOUR).build();
        for _ in 0..2 {
            let _ = rc.call(|| fail(0));
        }
        assert!(matches!(rc.call(|| ok(0)), Err(recloser::Error::Rejected)));
        let rows = measure(
            s,
            vec![
                variant("bare", "the no-op call alone (a rejected call skips it)", |n| {
                    for i in 0..n {
                        black_box(ok(i).is_ok());
                    }
                }),
                variant("floor", "hand-written: one load, a coarse clock read, no name, no count", |n| {
                    for i in 0..n {
                        black_box(fl.call(|| ok(i)).is_ok());
                    }
                }),
                variant("seawall", "`call(f)` -> `CallError::Rejected` (open)", |n| {
                    for i in 0..n {
                        let r: Result<u64, CallError<()>> = sw.call(|| ok(i));
                        black_box(r.is_ok());
                    }
                }),
                variant("seawall forced_open", "`call(f)` on a forced-open breaker (no clock read)", |n| {
                    for i in 0..n {
                        let r: Result<u64, CallError<()>> = forced.call(|| ok(i));
                        black_box(r.is_ok());
                    }
                }),
                variant("failsafe", "consecutive_failures(1), open an hour", |n| {
                    for i in 0..n {
                        black_box(fs.call(|| ok(i)).is_ok());
                    }
                }),
                variant("recloser", "open an hour", |n| {
                    for i in 0..n {
                        black_box(rc.call(|| ok(i)).is_ok());
                    }
                }),
            ],
        );
        assert_eq!(sw.state(), seawall::State::Open);
        out.push(Scenario { key: "open_rejection", title: "open, rejection", rows });
    }

    // Count-window failure-rate policy (100 calls), every call succeeds.
    {
        let sw = seawall(BreakerConfig { failure_rate_threshold: Some(0.5), ..BreakerConfig::named("bench") });
        let rc = recloser::Recloser::custom().closed_len(100).build();
        let rows = measure(
            s,
            vec![
                variant("bare", "", |n| {
                    for i in 0..n {
                        black_box(ok(i).is_ok());
                    }
                }),
                variant("seawall", "failure_rate_threshold 0.5, count window of 100", |n| {
                    for i in 0..n {
                        let r: Result<u64, CallError<()>> = sw.call(|| ok(i));
                        black_box(r.is_ok());
                    }
                }),
                variant("recloser", "error rate 0.5, count window of 100", |n| {
                    for i in 0..n {
                        black_box(rc.call(|| ok(i)).is_ok());
                    }
                }),
            ],
        );
        out.push(Scenario { key: "count_window", title: "count-window policy, success", rows });
    }

    // Time-window failure-rate policy (10 s in 10 buckets), every call succeeds.
    {
        let sw = seawall(BreakerConfig {
            failure_rate_threshold: Some(0.5),
            window: WindowKind::Time,
            ..BreakerConfig::named("bench")
        });
        let fs = failsafe::Config::new()
            .failure_policy(failure_policy::success_rate_over_time_window(0.5, 10, Duration::from_secs(10), backoff::constant(HOUR)))
            .build();
        let rows = measure(
            s,
            vec![
                variant("bare", "", |n| {
                    for i in 0..n {
                        black_box(ok(i).is_ok());
                    }
                }),
                variant("seawall", "failure_rate_threshold 0.5, time window 10 s / 10 buckets", |n| {
                    for i in 0..n {
                        let r: Result<u64, CallError<()>> = sw.call(|| ok(i));
                        black_box(r.is_ok());
                    }
                }),
                variant("failsafe", "success_rate_over_time_window(0.5, 10 calls, 10 s)", |n| {
                    for i in 0..n {
                        black_box(fs.call(|| ok(i)).is_ok());
                    }
                }),
            ],
        );
        out.push(Scenario { key: "time_window", title: "time-window policy, success", rows });
    }

    // What a breaker is made of: the primitives that set the floor.
    {
        let arc: Arc<str> = Arc::from("bench");
        let counter = AtomicU64::new(0);
        let rows = measure(
            s,
            vec![
                variant("bare", "", |n| {
                    for i in 0..n {
                        black_box(ok(i).is_ok());
                    }
                }),
                variant("Instant::now()", "the precise monotonic clock", |n| {
                    for i in 0..n {
                        black_box(ok(i).is_ok());
                        black_box(Instant::now());
                    }
                }),
                variant("CLOCK_MONOTONIC_COARSE", "the coarse clock (libc::clock_gettime)", |n| {
                    for i in 0..n {
                        black_box(ok(i).is_ok());
                        black_box(floor::coarse_nanos());
                    }
                }),
                variant("Arc<str> clone + drop", "what a `Rejected` carrying the name costs", |n| {
                    for i in 0..n {
                        black_box(ok(i).is_ok());
                        black_box(Arc::clone(&arc));
                    }
                }),
                variant("AtomicU64::fetch_add", "one uncontended atomic read-modify-write", |n| {
                    for i in 0..n {
                        black_box(ok(i).is_ok());
                        counter.fetch_add(1, Relaxed);
                    }
                }),
            ],
        );
        out.push(Scenario { key: "primitives", title: "primitives (the floor's parts)", rows });
    }
    out
}

// ---------------------------------------------------------------------------------------
// Two threads on one breaker: throughput of 2 threads / throughput of 1.

struct Scaling {
    name: &'static str,
    note: &'static str,
    one: Vec<f64>, // calls per µs
    two: Vec<f64>,
    /// Rounds where every thread had a core to itself for its whole batch (thread CPU
    /// time ≥ 90% of wall time, in both the 1- and the 2-thread run).
    clean: Vec<bool>,
}

/// Throughput in calls/µs, and whether every thread ran on a core for its whole batch.
fn run_threads(threads: usize, n: u64, body: &(dyn Fn(u64) + Sync)) -> (f64, bool) {
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant, Duration)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                sc.spawn(|| {
                    // One call before the clock starts: a thread's first call may set up
                    // per-thread state once (seawall claims the thread's counter slot, under
                    // a mutex the other new thread may hold), which is not a per-call cost.
                    body(1);
                    barrier.wait();
                    let (t, cpu) = (Instant::now(), floor::thread_cpu());
                    body(n);
                    let cpu = floor::thread_cpu() - cpu;
                    (t, Instant::now(), cpu)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let start = spans.iter().map(|s| s.0).min().unwrap();
    let end = spans.iter().map(|s| s.1).max().unwrap();
    let wall = (end - start).as_nanos() as f64;
    let clean = spans.iter().all(|s| s.2.as_nanos() as f64 >= 0.9 * wall);
    ((threads as u64 * n) as f64 / wall * 1000.0, clean)
}

fn threads(s: &Settings) -> Vec<Scaling> {
    let fl = AtomicBreaker::new(5, HOUR);
    let flc = CountingBreaker { inner: AtomicBreaker::new(5, HOUR), successes: AtomicU64::new(0) };
    let sw = seawall(BreakerConfig::named("bench"));
    let swc = seawall(BreakerConfig { failure_rate_threshold: Some(0.5), ..BreakerConfig::named("bench-count") });
    let fs = failsafe_consecutive(5, HOUR);
    let rc = recloser::Recloser::custom().build();
    type Shared<'a> = Box<dyn Fn(u64) + Sync + 'a>;
    let bodies: Vec<(&'static str, &'static str, Shared<'_>)> = vec![
        ("bare", "no breaker", Box::new(|n| {
            for i in 0..n {
                black_box(ok(i).is_ok());
            }
        })),
        ("floor", "hand-written atomic breaker", Box::new(|n| {
            for i in 0..n {
                black_box(fl.call(|| ok(i)).is_ok());
            }
        })),
        ("floor + metrics", "counting successes in one shared atomic", Box::new(|n| {
            for i in 0..n {
                black_box(flc.call(|| ok(i)).is_ok());
            }
        })),
        ("seawall", "`call(f)`, default policy", Box::new(|n| {
            for i in 0..n {
                let r: Result<u64, CallError<()>> = sw.call(|| ok(i));
                black_box(r.is_ok());
            }
        })),
        ("seawall count window", "`call(f)`, count window of 100 full of successes (nothing written)", Box::new(|n| {
            for i in 0..n {
                let r: Result<u64, CallError<()>> = swc.call(|| ok(i));
                black_box(r.is_ok());
            }
        })),
        ("failsafe", "consecutive_failures(5)", Box::new(|n| {
            for i in 0..n {
                black_box(fs.call(|| ok(i)).is_ok());
            }
        })),
        ("recloser", "count window of 100", Box::new(|n| {
            for i in 0..n {
                black_box(rc.call(|| ok(i)).is_ok());
            }
        })),
    ];
    // Calibrate on one thread.
    let iters: Vec<u64> = bodies
        .iter()
        .map(|(_, _, b)| {
            let mut bx: Body<'_> = Box::new(b);
            // Short batches: on a shared machine a 1 ms batch often gets two cores to itself.
            calibrate(&mut bx, s.thread_batch)
        })
        .collect();
    let k = bodies.len();
    let mut out: Vec<Scaling> =
        bodies.iter().map(|(name, note, _)| Scaling { name, note, one: vec![], two: vec![], clean: vec![] }).collect();
    for round in 0..s.thread_rounds {
        for j in 0..k {
            let i = (round + j) % k;
            let b = &*bodies[i].2;
            // 1 and 2 threads back to back, alternating which goes first.
            let (one, two) = if round % 2 == 0 {
                let one = run_threads(1, iters[i], b);
                (one, run_threads(2, iters[i], b))
            } else {
                let two = run_threads(2, iters[i], b);
                (run_threads(1, iters[i], b), two)
            };
            out[i].one.push(one.0);
            out[i].two.push(two.0);
            out[i].clean.push(one.1 && two.1);
        }
    }
    assert_eq!(sw.snapshot().failures, 0);
    out
}

// ---------------------------------------------------------------------------------------
// Report.

/// The clean rounds' throughputs (1 thread, 2 threads), or every round's if none was clean.
fn scaling_rounds(v: &Scaling) -> (Vec<f64>, Vec<f64>) {
    let any = v.clean.iter().any(|c| *c);
    let pick = |xs: &[f64]| xs.iter().zip(&v.clean).filter(|(_, c)| **c || !any).map(|(x, _)| *x).collect::<Vec<_>>();
    (pick(&v.one), pick(&v.two))
}

struct Target {
    what: String,
    value: f64,
    shown: String,
    limit: String,
    met: bool,
}

impl Target {
    fn new(what: &str, value: f64, limit: &str, met: bool) -> Self {
        Target { what: what.into(), value, shown: format!("{value:.2}"), limit: limit.into(), met }
    }
}

/// Below this an overhead is inside the timing noise: ratios to it mean nothing.
const NOISE_NS: f64 = 0.25;

fn report(s: &Settings, scen: &[Scenario], scal: &[Scaling]) -> (String, Value) {
    let mut md = String::new();
    let mut js_scen = Vec::new();
    let when = std::process::Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC").output().ok();
    let when = when.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let _ = writeln!(md, "## Rust: seawall beside its peers ({when}, {cpus} CPUs{})\n", if s.smoke { ", SMOKE RUN: figures meaningless" } else { "" });
    let _ = writeln!(
        md,
        "One process run, variants interleaved round by round ({} rounds, ~{} ms batches). ns per call: median (min–max) over the rounds; overhead = guarded − bare, median over rounds of the same-round difference; × floor = overhead / the hand-written atomic breaker's overhead (left out when that is under {NOISE_NS} ns, inside the noise). Every result is consumed as `black_box(result.is_ok())`.\n",
        s.rounds,
        s.batch.as_millis()
    );
    let _ = writeln!(md, "| scenario | variant | ns/call median | min–max | overhead ns | × floor | notes |");
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---|");
    for sc in scen {
        let floor = overhead_of(&sc.rows, "floor");
        let mut js_rows = Vec::new();
        for r in &sc.rows {
            let (med, lo, hi) = (median(&r.samples), min(&r.samples), max(&r.samples));
            let ov = median(&r.overheads);
            let is_bare = r.name == "bare";
            let ratio = match floor {
                Some(f) if !is_bare && f >= NOISE_NS => Some(ov / f),
                _ => None,
            };
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} | {:.2}–{:.2} | {} | {} | {} |",
                sc.title,
                r.name,
                med,
                lo,
                hi,
                if is_bare { "—".into() } else { format!("{ov:+.2}") },
                ratio.map_or("—".into(), |x| format!("{x:.1}×")),
                r.note
            );
            js_rows.push(json!({
                "variant": r.name, "note": r.note,
                "median_ns": med, "min_ns": lo, "max_ns": hi,
                "overhead_ns": if is_bare { Value::Null } else { json!(ov) },
                "overhead_vs_floor": ratio,
                "samples_ns": r.samples,
            }));
        }
        js_scen.push(json!({ "scenario": sc.key, "title": sc.title, "variants": js_rows }));
    }
    let _ = writeln!(md, "\n### 2 threads on one breaker (closed, success)\n");
    let _ = writeln!(
        md,
        "Throughput of 2 threads calling one breaker ÷ throughput of 1 thread, per round. Only *clean* rounds count (every thread had a core to itself for its whole batch: thread CPU time ≥ 90% of wall time), since other processes share this machine's cores; when a variant has none, all rounds count and the row says so.\n"
    );
    let _ = writeln!(md, "| variant | 1 thread, calls/µs | 2 threads, calls/µs | 2 threads ÷ 1, median (min–max) | clean rounds | notes |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---|");
    let mut js_thr = Vec::new();
    for v in scal {
        let (one, two) = scaling_rounds(v);
        let ratios: Vec<f64> = two.iter().zip(&one).map(|(a, b)| a / b).collect();
        let clean = v.clean.iter().filter(|c| **c).count();
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} | {:.2}× ({:.2}–{:.2}) | {}/{}{} | {} |",
            v.name,
            median(&one),
            median(&two),
            median(&ratios),
            min(&ratios),
            max(&ratios),
            clean,
            v.clean.len(),
            if clean == 0 { " (all rounds used)" } else { "" },
            v.note
        );
        js_thr.push(json!({
            "variant": v.name, "note": v.note,
            "one_thread_calls_per_us": median(&one), "two_threads_calls_per_us": median(&two),
            "scaling_median": median(&ratios), "scaling_min": min(&ratios), "scaling_max": max(&ratios),
            "clean_rounds": clean, "rounds": v.clean.len(),
        }));
    }

    // Targets (issue 8).
    let get = |key: &str, name: &str| scen.iter().find(|s| s.key == key).and_then(|s| overhead_of(&s.rows, name)).unwrap_or(f64::NAN);
    let sw_closed = get("closed_success", "seawall");
    let sw_permit = get("closed_success", "seawall permit");
    let fl_closed = get("closed_success", "floor");
    let flm_closed = get("closed_success", "floor + metrics");
    let fs_closed = get("closed_success", "failsafe");
    let rc_closed = get("closed_success", "recloser");
    let open = get("open_rejection", "seawall");
    let count = get("count_window", "seawall");
    let time = get("time_window", "seawall");
    let scaling = scal
        .iter()
        .find(|v| v.name == "seawall")
        .map(|v| {
            let (one, two) = scaling_rounds(v);
            median(&two.iter().zip(&one).map(|(a, b)| a / b).collect::<Vec<_>>())
        })
        .unwrap_or(f64::NAN);
    let targets = [
        Target {
            shown: format!(
                "seawall {sw_closed:+.2} ns (permit {sw_permit:+.2}); floor {fl_closed:+.2} ns{}; floor + metrics {flm_closed:+.2} ns",
                if fl_closed < NOISE_NS { " (within noise: no ratio)" } else { "" }
            ),
            ..Target::new("closed success overhead ÷ floor's", sw_closed / fl_closed, "≤ 2", fl_closed >= NOISE_NS && sw_closed <= 2.0 * fl_closed)
        },
        Target::new("failsafe's closed success overhead ÷ seawall's", fs_closed / sw_closed, "≥ 5", fs_closed >= 5.0 * sw_closed),
        Target::new("recloser's closed success overhead ÷ seawall's", rc_closed / sw_closed, "≥ 5", rc_closed >= 5.0 * sw_closed),
        Target::new("open rejection overhead, ns", open, "≤ 5", open <= 5.0),
        Target::new("count-window policy overhead, ns", count, "≤ 15", count <= 15.0),
        Target::new("time-window policy overhead, ns", time, "≤ 25", time <= 25.0),
        Target::new("2 threads ÷ 1 thread throughput", scaling, "≥ 1.5", scaling >= 1.5),
    ];
    let _ = writeln!(md, "\n### Targets (issue 8){}\n", if s.smoke { " — smoke run, not judged" } else { "" });
    let _ = writeln!(md, "| target | this run | limit | met |");
    let _ = writeln!(md, "|---|---:|---:|---|");
    for t in &targets {
        let _ = writeln!(md, "| {} | {} | {} | {} |", t.what, t.shown, t.limit, if s.smoke { "—" } else if t.met { "yes" } else { "no" });
    }
    let js = json!({
        "suite": "rust",
        "when": when,
        "cpus": cpus,
        "smoke": s.smoke,
        "rounds": s.rounds,
        "batch_ms": s.batch.as_millis() as u64,
        "scenarios": js_scen,
        "two_threads": js_thr,
        "targets": targets.iter().map(|t| json!({"target": t.what, "value": t.value, "shown": t.shown, "limit": t.limit, "met": t.met})).collect::<Vec<_>>(),
    });
    (md, js)
}

fn out_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d).join("bench"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench"),
    }
}

fn main() {
    let smoke = std::env::var("SEAWALL_BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0")
        || std::env::args().any(|a| a == "--smoke");
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then run as a smoke.
    let smoke = smoke || !std::env::args().any(|a| a == "--bench");
    let s = if smoke {
        Settings { smoke, rounds: 3, batch: Duration::from_millis(2), thread_rounds: 4, thread_batch: Duration::from_millis(1) }
    } else {
        Settings { smoke, rounds: 21, batch: Duration::from_millis(8), thread_rounds: 101, thread_batch: Duration::from_millis(1) }
    };
    let started = Instant::now();
    let scen = scenarios(&s);
    let scal = threads(&s);
    let (md, js) = report(&s, &scen, &scal);
    let dir = out_dir();
    std::fs::create_dir_all(&dir).expect("create target/bench");
    let stem = if smoke { "rust-smoke" } else { "rust" };
    let (md_path, js_path) = (dir.join(format!("{stem}.md")), dir.join(format!("{stem}.json")));
    std::fs::write(&md_path, &md).expect("write the Markdown table");
    std::fs::write(&js_path, serde_json::to_string_pretty(&js).unwrap() + "\n").expect("write the JSON");
    println!("{md}");
    println!("wrote {} and {} ({:.1} s)", md_path.display(), js_path.display(), started.elapsed().as_secs_f64());
}
