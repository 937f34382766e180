//! Fault injection against a real `redis-server` that is killed (SIGKILL) and restarted
//! while two stores (two "processes") run randomized load on overlapping keys.
//!
//! The server keeps an append-only file fsynced on every write, so a restart has every
//! write it acknowledged (the production setup for an idempotency store that must not
//! forget). Leases (60 s) outlive the run, so no lease expires and the checks are exact:
//!
//! - no key is executed twice (a key's lease is valid for the whole run);
//! - every successful `run` of a key returns the one result that key's execution produced
//!   (no result changes, no result from another key, no replay of nothing);
//! - every call ends, with a result or `StoreUnavailable` / `IdempotencyInProgress` (a
//!   duplicate that waited out `wait_timeout` while the owner's completion was retried),
//!   never another error;
//! - at the end, with the server up, every key whose `run` returned a result still replays
//!   that result (no completed result is lost).
//!
//! `SEAWALL_REDIS_FAULT_SECS` sets the length of the run (default 8 s); the seed is
//! printed (`SEAWALL_HARDENING_SEED` replays one).
#![cfg(feature = "redis")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use seawall::idempotency::{Begin, Fingerprint, Output, RunError};
use seawall::store::redis::{RedisStore, RedisStoreConfig};
use seawall::{ErrorCode, IdempotencyCache, IdempotencyConfig};

mod redis_support;
use redis_support::{bounded, RedisServer};

const KEYS: u64 = 3000;

/// xorshift64*: enough randomness for a schedule, replayable from a seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn cache(url: &str) -> IdempotencyCache {
    let mut c = RedisStoreConfig::new(url);
    c.command_timeout = Duration::from_millis(300);
    c.connect_timeout = Duration::from_millis(300);
    c.reconnect_max_delay = Duration::from_millis(100);
    let store = Arc::new(RedisStore::new(c).unwrap());
    let mut config = IdempotencyConfig::default().with_store(store);
    config.lease = Duration::from_secs(60);
    config.wait_timeout = Some(Duration::from_millis(1500));
    IdempotencyCache::new(config).unwrap()
}

#[derive(Default)]
struct Ledger {
    executions: HashMap<String, Vec<String>>, // key -> outputs produced by executions
    results: HashMap<String, Vec<String>>,    // key -> results `run` returned
    errors: HashMap<&'static str, u64>,
}

#[test]
fn randomized_load_through_kills_and_restarts_runs_each_key_once_and_loses_no_result() {
    bounded(Duration::from_secs(120), || {
        let secs: u64 = std::env::var("SEAWALL_REDIS_FAULT_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
        let seed: u64 = std::env::var("SEAWALL_HARDENING_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
        println!("seed {seed} (SEAWALL_HARDENING_SEED={seed} replays the schedule), {secs} s");
        let server = Arc::new(Mutex::new(RedisServer::start_durable()));
        let url = server.lock().unwrap().url();
        let caches = [cache(&url), cache(&url)];
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(secs);

        let mut workers = Vec::new();
        for w in 0..4u64 {
            let (cache, ledger, stop, calls) = (caches[(w % 2) as usize].clone(), ledger.clone(), stop.clone(), calls.clone());
            workers.push(thread::spawn(move || {
                let mut rng = Rng(seed ^ (w + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let mut n = 0u64;
                while !stop.load(SeqCst) {
                    let key = format!("k{}", rng.below(KEYS));
                    let out = format!("{key}/w{w}/{n}");
                    n += 1;
                    let pause = Duration::from_micros(rng.below(3000));
                    let started = Instant::now();
                    let r = cache.run(&key, &Fingerprint::NONE, || {
                        ledger.lock().unwrap().executions.entry(key.clone()).or_default().push(out.clone());
                        thread::sleep(pause);
                        Ok::<_, std::io::Error>(Output::new(out.clone().into_bytes(), "text/plain"))
                    });
                    assert!(started.elapsed() < Duration::from_secs(10), "a call took {:?}", started.elapsed());
                    calls.fetch_add(1, SeqCst);
                    let mut l = ledger.lock().unwrap();
                    match r {
                        Ok(record) => {
                            let got = String::from_utf8(record.result().to_vec()).unwrap();
                            l.results.entry(key).or_default().push(got);
                        }
                        Err(RunError::Seawall(e)) => {
                            let code = e.code();
                            assert!(
                                matches!(code, ErrorCode::StoreUnavailable | ErrorCode::IdempotencyInProgress),
                                "unexpected error for {key}: {e}"
                            );
                            *l.errors.entry(code.as_str()).or_default() += 1;
                            drop(l);
                            thread::sleep(Duration::from_millis(2)); // Redis is down: do not spin
                        }
                        Err(RunError::Failed(e)) => panic!("the operation never fails: {e}"),
                    }
                }
            }));
        }

        // The chaos: kill the server, keep it down a while, restart it from its AOF.
        let mut rng = Rng(seed);
        let mut kills = 0;
        while Instant::now() + Duration::from_millis(1500) < deadline {
            thread::sleep(Duration::from_millis(300 + rng.below(700)));
            server.lock().unwrap().kill();
            kills += 1;
            thread::sleep(Duration::from_millis(100 + rng.below(400)));
            server.lock().unwrap().restart();
        }
        thread::sleep(deadline.saturating_duration_since(Instant::now()));
        stop.store(true, SeqCst);
        for w in workers {
            w.join().unwrap();
        }

        let l = ledger.lock().unwrap();
        for (key, outs) in &l.executions {
            assert_eq!(outs.len(), 1, "{key} was executed {} times while its lease was valid: {outs:?}", outs.len());
        }
        for (key, results) in &l.results {
            let executed = l.executions.get(key).unwrap_or_else(|| panic!("{key} returned a result nobody produced"));
            for r in results {
                assert_eq!(r, &executed[0], "{key} returned a result that is not its execution's");
            }
        }
        // With the server up and the background completions given time to land, every key
        // that returned a result still replays it.
        thread::sleep(Duration::from_millis(500));
        let check = cache(&url);
        let mut replayed = 0;
        for (key, results) in &l.results {
            let mut begin = check.begin(key, &Fingerprint::NONE);
            for _ in 0..50 {
                if begin.is_ok() {
                    break;
                }
                thread::sleep(Duration::from_millis(50)); // reconnecting after the last restart
                begin = check.begin(key, &Fingerprint::NONE);
            }
            match begin.unwrap_or_else(|e| panic!("{key}: {e}")) {
                Begin::Replay(r) => assert_eq!(r.result(), results[0].as_bytes(), "{key}"),
                other => panic!("{key} returned {:?} but now it is {other:?}: a completed result was lost", results[0]),
            }
            replayed += 1;
        }
        // A key executed whose caller got an error (its completion was lost or is still being
        // retried) is held by its lease or holds that execution's result, nothing else.
        let mut unfinished = 0;
        for (key, outs) in l.executions.iter().filter(|(k, _)| !l.results.contains_key(*k)) {
            match check.peek(key).unwrap_or_else(|e| panic!("{key}: {e}")) {
                seawall::store::Peek::Completed(r) => assert_eq!(r.result(), outs[0].as_bytes(), "{key}"),
                seawall::store::Peek::InProgress { .. } => unfinished += 1,
                other => panic!("{key} was executed, but the store has {other:?}"),
            }
        }
        let executed_keys = l.executions.len();
        println!(
            "{} calls, {kills} kills and restarts, {executed_keys} keys executed once each, {replayed} results replayed after the run, {unfinished} still leased; errors: {:?}",
            calls.load(SeqCst),
            l.errors
        );
        assert!(kills >= 3 && replayed > 0, "the run exercised too little: {kills} kills, {replayed} results");
    });
}
