//! Per-call cost of the idempotency cache on the memory store, beside a bare call, in one
//! run: a replayed `run` (the key is completed: one claim that finds the record) and a
//! fresh `run` (claim + complete on a new key, in a store kept full at 10,000 entries, so
//! each one also evicts the least recently used result), and the same in a store with room
//! (nothing evicted: what eviction costs is the difference).
//!
//! Run: `cargo bench -p seawall --bench idempotency` (`SEAWALL_BENCH_SMOKE=1` for a quick pass).
//! A full run also writes `target/bench/rust-idempotency.{md,json}`, which `bench/report.py`
//! puts in bench/results.md beside the breaker's table.

use std::hint::black_box;
use std::time::Instant;

use seawall::idempotency::{fingerprint, IdempotencyCache, IdempotencyConfig, Output};

fn best_ns(n: usize, mut f: impl FnMut(usize)) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for i in 0..n {
                f(i);
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

#[inline(never)]
fn work(i: usize) -> Result<Output, ()> {
    Ok(Output::new(black_box(format!("{{\"id\":{i}}}")).into_bytes(), "application/json"))
}

fn main() {
    let smoke = std::env::var_os("SEAWALL_BENCH_SMOKE").is_some();
    let n = if smoke { 2_000 } else { 200_000 };
    let mut config = IdempotencyConfig::default();
    // A steady state: the store is full, so each fresh run also evicts the oldest result.
    config.set("max_entries", 10_000i64.into()).expect("valid");
    let cache = IdempotencyCache::new(config).expect("valid config");
    let fp = fingerprint(b"{\"item\":\"book\"}");
    let keys: Vec<String> = (0..6 * n).map(|i| format!("order-{i}")).collect();
    cache.run("replayed", &fp, || work(0)).expect("first run");

    let bare = best_ns(n, |i| {
        let _ = black_box(work(i));
    });
    let replay = best_ns(n, |_| {
        let _ = black_box(cache.run("replayed", &fp, || work(0)));
    });
    let mut next = 0;
    let fresh = best_ns(n, |_| {
        next += 1;
        let _ = black_box(cache.run(&keys[next], &fp, || work(next)));
    });
    let mut roomy_config = IdempotencyConfig::default();
    roomy_config.set("max_entries", 10_000_000i64.into()).expect("valid");
    roomy_config.set("max_bytes", (1i64 << 40).into()).expect("valid");
    let roomy = IdempotencyCache::new(roomy_config).expect("valid config");
    let mut next_roomy = 0;
    let fresh_roomy = best_ns(n, |_| {
        next_roomy += 1;
        let _ = black_box(roomy.run(&keys[next_roomy], &fp, || work(next_roomy)));
    });
    println!("idempotency cache, memory store (best of 5 x {n} calls)");
    println!("{:<40} {bare:>8.0} ns/call", "bare call (builds the result)");
    println!("{:<40} {replay:>8.0} ns/call  (+{:.0} ns)", "replayed run", replay - bare);
    println!("{:<40} {fresh:>8.0} ns/call  (+{:.0} ns)", "fresh run (claim + complete)", fresh - bare);
    println!("{:<40} {fresh_roomy:>8.0} ns/call  (+{:.0} ns)", "fresh run, store with room (no eviction)", fresh_roomy - bare);
    if !smoke {
        write_report(n, &[
            ("bare", "the work alone (builds the result)", bare),
            ("replay", "`run` of a completed key: one claim that finds the record", replay),
            ("fresh", "`run` of a new key: claim + complete, store full at 10,000 entries (each run evicts one)", fresh),
            ("fresh, room", "the same in a store with room (nothing evicted)", fresh_roomy),
        ]);
    }
}

/// `target/bench/rust-idempotency.{md,json}`: ns per call, best of 5 batches, and the
/// overhead over the bare work.
fn write_report(n: usize, rows: &[(&str, &str, f64)]) {
    let bare = rows[0].2;
    let mut md = format!(
        "### Rust: idempotency cache, memory store\n\n`cargo bench -p seawall --bench idempotency`: ns per call, best of 5 batches of {n} calls (no peer: the Rust peers have no idempotency cache).\n\n| variant | ns/call | overhead ns | notes |\n|---|---:|---:|---|\n"
    );
    let mut variants = Vec::new();
    for (i, (name, note, ns)) in rows.iter().enumerate() {
        let overhead = (i > 0).then(|| ns - bare);
        let shown = overhead.map_or("—".to_owned(), |o| format!("+{o:.0}"));
        md.push_str(&format!("| {name} | {ns:.0} | {shown} | {note} |\n"));
        variants.push(serde_json::json!({"variant": name, "note": note, "best_ns": ns, "overhead_ns": overhead}));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    std::fs::write(dir.join("rust-idempotency.md"), md).expect("write the Markdown table");
    let json = serde_json::json!({"scenario": "idempotency", "calls_per_batch": n, "variants": variants});
    std::fs::write(dir.join("rust-idempotency.json"), serde_json::to_string_pretty(&json).unwrap() + "\n")
        .expect("write the JSON");
}
