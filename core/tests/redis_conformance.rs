//! The idempotency conformance scenarios of `tests/conformance/idempotency/`, replayed
//! against the Redis store: every step runs the real Lua scripts on a real `redis-server`.
//!
//! Time: a scenario's clock is a `ManualClock`, and the store is built with
//! `RedisStoreConfig::with_clock` so its scripts read "now" from that clock instead of the
//! server's `TIME`. Everything else is the production path (EVALSHA, the key layout, the
//! token counter, the record format, pub/sub subscriptions and re-checks), so the exact
//! boundaries of the scenarios (a lease holds at 999 ms and is lost at 1000 ms) are checked
//! against the scripts to the millisecond. `redis_store.rs` runs the same behaviours on the
//! server's own clock, with short real leases.
//!
//! Not replayed here (each is checked to use the memory store's bounds, so nothing else can
//! hide in this list): the scenarios about `max_entries` / `max_bytes` eviction and a full
//! memory store, which the Redis store does not have (Redis bounds memory itself; see
//! docs/redis.md); and the invalid configuration that combines `max_bytes` with the
//! result bound (with a Redis store `max_bytes` itself is refused, naming `max_bytes`).
//! A Redis failure (the counterpart of 024/025) is tested in `redis_store.rs` by killing
//! the server.
//!
//! The runner is the one of `conformance_idempotency.rs` (`conformance_support/idempotency.rs`),
//! given a store per scenario: a `RedisStore` on one server shared by all the files, each
//! scenario under a key prefix of its own, its store dropped (its subscriptions ended)
//! before the next file starts.
#![cfg(feature = "redis")]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use seawall::store::redis::{RedisStore, RedisStoreConfig};
use seawall::store::SharedStore;
use seawall::{ConfigValue, IdempotencyCache, IdempotencyConfig, ManualClock, Style};
use serde_json::Value;

mod conformance_support;
mod redis_support;
use conformance_support::idempotency::{run_file, scenario_dir, Backend};
use conformance_support::{replay_files, scenario_files, Failure};
use redis_support::{bounded, eventually, RedisServer};

/// Scenarios that exercise the memory store's own bounds, with why they do not apply.
const MEMORY_ONLY: &[(&str, &str)] = &[
    ("021-eviction-lru-max-entries.json", "max_entries eviction belongs to the memory store"),
    ("022-eviction-expired-first.json", "max_entries eviction belongs to the memory store"),
    ("023-eviction-max-bytes.json", "max_bytes eviction belongs to the memory store"),
    ("024-live-lease-never-evicted.json", "a full memory store; Redis outages are tested in redis_store.rs"),
    (
        "025-full-store-fails-open-with-on-store-error-run.json",
        "a full memory store; redis_store.rs fails open on a killed server",
    ),
    (
        "invalid-045-max-result-bytes-over-max-bytes.json",
        "with a Redis store max_bytes itself is refused (checked below)",
    ),
];

#[test]
fn idempotency_conformance_scenarios_on_redis() {
    bounded(Duration::from_secs(120), run_all);
}

fn uses_memory_bounds(path: &Path) -> bool {
    let text = std::fs::read_to_string(path).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc.get("config")
        .and_then(Value::as_object)
        .is_some_and(|c| c.contains_key("max_entries") || c.contains_key("max_bytes"))
}

/// A `RedisStore` per scenario on the one server, on the scenario's manual clock.
struct OnRedis<'a> {
    server: &'a RedisServer,
    /// The store of the scenario being replayed.
    current: Option<Arc<RedisStore>>,
}

impl Backend for OnRedis<'_> {
    fn store(&mut self, index: usize, clock: &Arc<ManualClock>) -> Result<Option<SharedStore>, Failure> {
        // A prefix of its own per scenario: scenarios share the server, never a key.
        let mut sc = RedisStoreConfig::new(self.server.url()).with_clock(clock.clone());
        sc.prefix = format!("conformance:{index}:");
        let store = RedisStore::new(sc).map_err(|e| Failure { step: None, message: format!("redis store: {e}") })?;
        let store = Arc::new(store);
        self.current = Some(Arc::clone(&store));
        Ok(Some(store))
    }

    fn waiting(&self, key: &str) -> Result<(), String> {
        // The store subscribes to the key and re-checks it in the background; let that
        // settle so the steps that follow meet a quiet store.
        let store = self.current.as_ref().ok_or("no store for this scenario")?;
        if !eventually(Duration::from_secs(5), || store.is_subscribed(key)) {
            return Err(format!("the store did not subscribe to {key:?} within 5 s"));
        }
        Ok(())
    }
}

fn run_all() {
    let dir = scenario_dir();
    let files = scenario_files(&dir);
    let server = RedisServer::start();
    let mut backend = OnRedis { server: &server, current: None };
    let replayed = replay_files(&files, |i, path, file| {
        if let Some((_, why)) = MEMORY_ONLY.iter().find(|(f, _)| *f == file) {
            assert!(uses_memory_bounds(path), "{file} is listed as memory-only ({why}) but sets no memory bound");
            return None;
        }
        let is_config_error = std::fs::read_to_string(path).unwrap().contains("expect_config_error");
        assert!(
            is_config_error || !uses_memory_bounds(path),
            "{file} sets max_entries / max_bytes: list it in MEMORY_ONLY with a reason, or make it store-neutral"
        );
        let result = run_file(path, i, &mut backend);
        backend.current = None; // the scenario's cache is gone: its store goes too
        Some(result)
    });
    let excluded = replayed.excluded;
    assert_eq!(excluded, MEMORY_ONLY.len(), "a MEMORY_ONLY file is missing from {}", dir.display());
    println!(
        "conformance (Rust, RedisStore): {} of {} idempotency scenarios passed ({excluded} memory-store only)",
        replayed.passed,
        files.len() - excluded
    );
    replayed.panic_on_failures("idempotency scenarios failed on redis");
}

#[test]
fn memory_bounds_are_refused_with_a_redis_store() {
    let mut c = IdempotencyConfig::with_style(Style::default());
    c.set("max_bytes", ConfigValue::Int(20)).unwrap();
    let store = RedisStore::new(RedisStoreConfig::default()).unwrap();
    let e = IdempotencyCache::new(c.with_store(Arc::new(store))).unwrap_err();
    assert_eq!(e.field, "max_bytes");
    assert!(e.reason.contains("a redis store was passed in"), "{}", e.reason);
}
