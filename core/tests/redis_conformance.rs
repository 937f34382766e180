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
//! This runner is a copy of `conformance_idempotency.rs` with the store swapped in (the
//! lead may fold both into one runner with a store factory).
#![cfg(feature = "redis")]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use seawall::idempotency::{fingerprint, Acquired, Begin, Failed, Fingerprint, Output, WaitPoll};
use seawall::store::redis::{RedisStore, RedisStoreConfig};
use seawall::{
    ConfigError, ConfigValue, Error, IdempotencyCache, IdempotencyConfig, Lease, ManualClock, Record, SharedClock,
    Style, Waiter,
};

mod redis_support;
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
use serde_json::{Map, Value};

struct Failure {
    step: Option<usize>,
    message: String,
}

type Checked = Result<(), Failure>;

fn fail<T>(step: Option<usize>, message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure { step, message: message.into() })
}

/// `tests/conformance/idempotency/`, or `SEAWALL_IDEMPOTENCY_CONFORMANCE_DIR` when set.
fn scenario_dir() -> PathBuf {
    match std::env::var_os("SEAWALL_IDEMPOTENCY_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/idempotency"),
    }
}

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

fn run_all() {
    let dir = scenario_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read scenario directory {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenario files (*.json) found in {}", dir.display());

    let server = RedisServer::start();
    let mut failures = Vec::new();
    let mut passed = 0usize;
    let mut excluded = 0usize;
    for (i, path) in files.iter().enumerate() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some((_, why)) = MEMORY_ONLY.iter().find(|(f, _)| *f == file) {
            assert!(uses_memory_bounds(path), "{file} is listed as memory-only ({why}) but sets no memory bound");
            excluded += 1;
            continue;
        }
        let is_config_error = std::fs::read_to_string(path).unwrap().contains("expect_config_error");
        assert!(
            is_config_error || !uses_memory_bounds(path),
            "{file} sets max_entries / max_bytes: list it in MEMORY_ONLY with a reason, or make it store-neutral"
        );
        match run_file(path, &server, i) {
            Ok(()) => passed += 1,
            Err(f) => failures.push((file, f)),
        }
    }
    assert_eq!(excluded, MEMORY_ONLY.len(), "a MEMORY_ONLY file is missing from {}", dir.display());
    println!(
        "conformance (Rust, RedisStore): {passed} of {} idempotency scenarios passed ({excluded} memory-store only)",
        files.len() - excluded
    );
    if !failures.is_empty() {
        let mut report =
            format!("{} of {} idempotency scenarios failed on redis:\n", failures.len(), files.len() - excluded);
        for (file, f) in &failures {
            let at = f.step.map_or_else(|| "config".to_owned(), |i| format!("step {i}"));
            let _ = writeln!(report, "  {file} [{at}]: {}", f.message);
        }
        panic!("{report}");
    }
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

fn run_file(path: &Path, server: &RedisServer, index: usize) -> Checked {
    let text = std::fs::read_to_string(path).or_else(|e| fail(None, format!("cannot read: {e}")))?;
    let doc: Value = serde_json::from_str(&text).or_else(|e| fail(None, format!("invalid JSON: {e}")))?;
    let doc = doc.as_object().map_or_else(|| fail(None, "the file is not a JSON object"), Ok)?;
    check_keys(None, doc, &["name", "config", "steps", "expect_config_error"])?;
    if !doc.get("name").is_some_and(Value::is_string) {
        return fail(None, "missing \"name\" (a string)");
    }
    let config = match doc.get("config") {
        Some(Value::Object(c)) => c,
        _ => return fail(None, "missing \"config\" (an object)"),
    };
    let clock = ManualClock::shared();
    // A prefix of its own per scenario: scenarios share the server, never a key.
    let mut sc = RedisStoreConfig::new(server.url()).with_clock(clock.clone());
    sc.prefix = format!("conformance:{index}:");
    let store = RedisStore::new(sc).map_err(|e| Failure { step: None, message: format!("redis store: {e}") })?;
    let store = Arc::new(store);
    let built = build(config, clock.clone(), Arc::clone(&store));
    if let Some(expected) = doc.get("expect_config_error") {
        if doc.contains_key("steps") {
            return fail(None, "a scenario with \"expect_config_error\" must not have \"steps\"");
        }
        return check_config_error(expected, built);
    }
    let steps = match doc.get("steps") {
        Some(Value::Array(s)) if !s.is_empty() => s,
        _ => return fail(None, "missing \"steps\" (a non-empty array)"),
    };
    let cache = built.or_else(|e| fail(None, format!("expected the cache to build, got config error: {e}")))?;
    let mut run = Run { cache, clock, store, leases: HashMap::new(), waiters: HashMap::new() };
    for (i, step) in steps.iter().enumerate() {
        run.step(i, step)?;
    }
    Ok(())
}

/// Builds a cache the way a binding does: every option through `set`.
fn build(
    config: &Map<String, Value>,
    clock: Arc<ManualClock>,
    store: Arc<RedisStore>,
) -> Result<IdempotencyCache, ConfigError> {
    let mut c = IdempotencyConfig::with_style(Style::default());
    for (key, value) in config {
        let key = key.strip_suffix("_ms").unwrap_or(key);
        c.set(key, config_value(value))?;
    }
    let clock: SharedClock = clock;
    IdempotencyCache::new(c.with_clock(clock).with_store(store))
}

fn config_value(v: &Value) -> ConfigValue {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => ConfigValue::Int(i),
            None => ConfigValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => match s.as_str() {
            "NaN" => ConfigValue::Float(f64::NAN),
            "Infinity" => ConfigValue::Float(f64::INFINITY),
            "-Infinity" => ConfigValue::Float(f64::NEG_INFINITY),
            _ => ConfigValue::Str(s.clone()),
        },
        Value::Bool(b) => ConfigValue::Bool(*b),
        Value::Null => ConfigValue::Other("null".into()),
        Value::Array(_) => ConfigValue::Other("array".into()),
        Value::Object(_) => ConfigValue::Other("object".into()),
    }
}

fn check_config_error(expected: &Value, built: Result<IdempotencyCache, ConfigError>) -> Checked {
    let expected = expected.as_object().map_or_else(|| fail(None, "\"expect_config_error\" must be an object"), Ok)?;
    check_keys(None, expected, &["field", "type_error"])?;
    let field = expected
        .get("field")
        .and_then(Value::as_str)
        .map_or_else(|| fail(None, "\"expect_config_error\" needs \"field\" (a string)"), Ok)?;
    let type_error = match expected.get("type_error") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return fail(None, "\"type_error\" must be a boolean"),
    };
    let err = match built {
        Ok(_) => return fail(None, format!("expected a config error naming {field:?}, but the cache was built")),
        Err(e) => e,
    };
    let message = err.to_string();
    if !message.contains(field) {
        return fail(None, format!("expected a config error naming {field:?}, got: {message}"));
    }
    if Error::from(err.clone()).code().as_str() != "SEAWALL_CONFIG" {
        return fail(None, "the config error does not map to SEAWALL_CONFIG");
    }
    if err.type_mismatch != type_error {
        return fail(
            None,
            format!("expected type_mismatch = {type_error}, got {} (error: {message})", err.type_mismatch),
        );
    }
    Ok(())
}

fn check_keys(step: Option<usize>, obj: &Map<String, Value>, allowed: &[&str]) -> Checked {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return fail(step, format!("unknown key {k:?} (allowed here: {allowed:?})"));
        }
    }
    Ok(())
}

fn millis(step: usize, v: &Value, what: &str) -> Result<Duration, Failure> {
    match v.as_u64() {
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => fail(Some(step), format!("{what} must be a whole non-negative number of ms, got {v}")),
    }
}

fn show_ms(d: Duration) -> String {
    format!("{}", d.as_nanos() as f64 / 1e6)
}

struct Run {
    cache: IdempotencyCache,
    clock: Arc<ManualClock>,
    store: Arc<RedisStore>,
    leases: HashMap<String, Lease>,
    waiters: HashMap<String, Waiter>,
}

/// The fields every action step may carry to expect an error instead of success.
const ERROR_KEYS: [&str; 2] = ["expect_error", "message_contains"];

fn keys<'a>(own: &[&'a str]) -> Vec<&'a str> {
    own.iter().copied().chain(ERROR_KEYS).collect()
}

impl Run {
    fn step(&mut self, i: usize, step: &Value) -> Checked {
        let s = step.as_object().map_or_else(|| fail(Some(i), "a step must be an object"), Ok)?;
        let at = Some(i);
        if s.contains_key("begin") {
            check_keys(
                at,
                s,
                &keys(&[
                    "begin",
                    "repeat",
                    "fingerprint",
                    "as",
                    "expect",
                    "token_above",
                    "took_over",
                    "protected",
                    "retry_after_ms",
                    "completed",
                    "record",
                ]),
            )?;
            self.begin(i, s)
        } else if s.contains_key("complete") {
            check_keys(at, s, &keys(&["complete", "result", "repeat", "content_type", "metadata", "record"]))?;
            self.complete(i, s)
        } else if s.contains_key("fail") {
            check_keys(at, s, &keys(&["fail", "result", "content_type", "expect", "record"]))?;
            self.fail(i, s)
        } else if s.contains_key("release") {
            check_keys(at, s, &keys(&["release"]))?;
            let lease = self.lease(i, &s["release"])?;
            let r = self.cache.release(&lease);
            expect_outcome(i, s, "release", r)
        } else if s.contains_key("renew") {
            check_keys(at, s, &keys(&["renew", "remaining_ms"]))?;
            let lease = self.lease(i, &s["renew"])?;
            let r = self.cache.renew(&lease);
            if let (Ok(left), Some(want)) = (&r, s.get("remaining_ms")) {
                let want = millis(i, want, "remaining_ms")?;
                if *left != want {
                    return fail(at, format!("renew: expected remaining_ms {}, got {}", show_ms(want), show_ms(*left)));
                }
            }
            expect_outcome(i, s, "renew", r.map(|_| ()))
        } else if s.contains_key("poll") {
            check_keys(
                at,
                s,
                &keys(&[
                    "poll",
                    "expect",
                    "as",
                    "token_above",
                    "took_over",
                    "protected",
                    "record",
                    "lease_expires_in_ms",
                    "timeout_in_ms",
                ]),
            )?;
            self.poll(i, s)
        } else if s.contains_key("cancel") {
            check_keys(at, s, &["cancel"])?;
            let name = text(i, &s["cancel"], "cancel")?;
            let w = self.waiters.get(name).map_or_else(|| fail(at, format!("no waiter named {name:?}")), Ok)?;
            w.cancel();
            Ok(())
        } else if let Some(ms) = s.get("advance_ms") {
            check_keys(at, s, &["advance_ms"])?;
            self.clock.advance(millis(i, ms, "advance_ms")?);
            Ok(())
        } else if s.contains_key("expect_key") {
            check_keys(at, s, &["expect_key", "repeat", "state"])?;
            let key = key_of(i, s, "expect_key")?;
            let want = text(i, s.get("state").unwrap_or(&Value::Null), "state")?;
            let got = self.cache.peek(&key).map_err(|e| Failure { step: at, message: format!("peek: {e}") })?;
            if got.state() != want {
                return fail(at, format!("expect_key {key:?}: expected {want}, got {}", got.state()));
            }
            Ok(())
        } else if let Some(expected) = s.get("expect_stats") {
            check_keys(at, s, &["expect_stats"])?;
            self.expect_stats(i, expected)
        } else {
            fail(at, format!("unknown step kind: {step}"))
        }
    }

    fn lease(&self, i: usize, name: &Value) -> Result<Lease, Failure> {
        let name = text(i, name, "the lease name")?;
        self.leases.get(name).cloned().map_or_else(|| fail(Some(i), format!("no lease named {name:?}")), Ok)
    }

    fn token_above(&self, i: usize, s: &Map<String, Value>, token: u64) -> Checked {
        if let Some(other) = s.get("token_above") {
            let other = self.lease(i, other)?;
            if token <= other.token() {
                return fail(
                    Some(i),
                    format!(
                        "expected a token above {}'s ({}), got {token}",
                        text(i, &s["token_above"], "")?,
                        other.token()
                    ),
                );
            }
        }
        Ok(())
    }

    fn keep_lease(&mut self, i: usize, s: &Map<String, Value>, lease: Lease) -> Checked {
        self.token_above(i, s, lease.token())?;
        for (field, actual) in [("took_over", lease.took_over()), ("protected", lease.is_protected())] {
            if let Some(want) = s.get(field) {
                let want = want.as_bool().map_or_else(|| fail(Some(i), format!("{field} must be a boolean")), Ok)?;
                if want != actual {
                    return fail(Some(i), format!("expected {field} = {want}, got {actual}"));
                }
            }
        }
        if let Some(name) = s.get("as") {
            self.leases.insert(text(i, name, "as")?.to_owned(), lease);
        }
        Ok(())
    }

    fn begin(&mut self, i: usize, s: &Map<String, Value>) -> Checked {
        let at = Some(i);
        let key = key_of(i, s, "begin")?;
        let fp = match s.get("fingerprint") {
            None => Fingerprint::NONE,
            Some(v) => fingerprint(text(i, v, "fingerprint")?.as_bytes()),
        };
        let r = self.cache.begin(&key, &fp);
        let outcome = match r {
            Err(e) => return expect_outcome(i, s, "begin", Err(e)),
            Ok(b) => {
                expect_outcome(i, s, "begin", Ok(()))?;
                b
            }
        };
        let want = text(i, s.get("expect").unwrap_or(&Value::Null), "expect")?;
        let got = match &outcome {
            Begin::InProgress(ip) if ip.waiter.is_some() => "wait",
            other => other.as_str(),
        };
        if got != want {
            let detail = match &outcome {
                Begin::Execute(l) => format!(" (token {})", l.token()),
                Begin::InProgress(ip) => format!(" (retry_after_ms {})", show_ms(ip.retry_after)),
                Begin::Mismatch(m) => format!(" (completed: {})", m.completed),
                Begin::Replay(r) => format!(" (result {:?})", String::from_utf8_lossy(r.result())),
            };
            return fail(at, format!("begin {key:?}: expected {want}, got {got}{detail}"));
        }
        match outcome {
            Begin::Execute(lease) => self.keep_lease(i, s, lease),
            Begin::Replay(record) => self.check_record(i, s.get("record"), &record),
            Begin::Mismatch(m) => {
                if let Some(want) = s.get("completed") {
                    if want.as_bool() != Some(m.completed) {
                        return fail(at, format!("mismatch: expected completed = {want}, got {}", m.completed));
                    }
                }
                Ok(())
            }
            Begin::InProgress(mut ip) => {
                if let Some(want) = s.get("retry_after_ms") {
                    let want = millis(i, want, "retry_after_ms")?;
                    if ip.retry_after != want {
                        return fail(
                            at,
                            format!(
                                "in_progress: expected retry_after_ms {}, got {}",
                                show_ms(want),
                                show_ms(ip.retry_after)
                            ),
                        );
                    }
                }
                if let Some(w) = ip.waiter.take() {
                    let name = s.get("as").map_or_else(|| fail(at, "a \"wait\" begin needs \"as\""), Ok)?;
                    self.waiters.insert(text(i, name, "as")?.to_owned(), w);
                    // The store subscribes to the key and re-checks it in the background;
                    // let that settle so the steps that follow meet a quiet store.
                    if !eventually(Duration::from_secs(5), || self.store.is_subscribed(&key)) {
                        return fail(at, format!("the store did not subscribe to {key:?} within 5 s"));
                    }
                }
                Ok(())
            }
        }
    }

    fn output(&self, i: usize, s: &Map<String, Value>) -> Result<Output, Failure> {
        let mut result = text(i, s.get("result").unwrap_or(&Value::String(String::new())), "result")?.to_owned();
        if let Some(n) = s.get("repeat") {
            let n = n.as_u64().map_or_else(|| fail(Some(i), "repeat must be a whole number"), Ok)?;
            result = result.repeat(n as usize);
        }
        let content_type = match s.get("content_type") {
            Some(v) => text(i, v, "content_type")?.to_owned(),
            None => String::new(),
        };
        let mut out = Output::new(result.into_bytes(), content_type);
        out.metadata = metadata(i, s.get("metadata"))?;
        Ok(out)
    }

    fn complete(&mut self, i: usize, s: &Map<String, Value>) -> Checked {
        let lease = self.lease(i, &s["complete"])?;
        let out = self.output(i, s)?;
        match self.cache.complete(&lease, out) {
            Ok(r) => {
                expect_outcome(i, s, "complete", Ok(()))?;
                self.check_record(i, s.get("record"), &r)
            }
            Err(e) => expect_outcome(i, s, "complete", Err(e)),
        }
    }

    fn fail(&mut self, i: usize, s: &Map<String, Value>) -> Checked {
        let lease = self.lease(i, &s["fail"])?;
        let out = if s.contains_key("result") { Some(self.output(i, s)?) } else { None };
        match self.cache.fail(&lease, out) {
            Err(e) => expect_outcome(i, s, "fail", Err(e)),
            Ok(f) => {
                expect_outcome(i, s, "fail", Ok(()))?;
                let (got, record) = match &f {
                    Failed::Released => ("released", None),
                    Failed::Stored(r) => ("stored", Some(r)),
                };
                if let Some(want) = s.get("expect") {
                    if want.as_str() != Some(got) {
                        return fail(Some(i), format!("fail: expected {want}, got {got}"));
                    }
                }
                match record {
                    Some(r) => self.check_record(i, s.get("record"), r),
                    None => Ok(()),
                }
            }
        }
    }

    fn poll(&mut self, i: usize, s: &Map<String, Value>) -> Checked {
        let at = Some(i);
        let name = text(i, &s["poll"], "poll")?;
        let w = self.waiters.get(name).map_or_else(|| fail(at, format!("no waiter named {name:?}")), Ok)?;
        let polled = w.poll();
        let want = s.get("expect").map(|v| text(i, v, "expect")).transpose()?;
        let (got, result) = match polled {
            WaitPoll::Pending { lease_expires_in, timeout_in } => {
                for (field, actual) in [("lease_expires_in_ms", lease_expires_in), ("timeout_in_ms", timeout_in)] {
                    if let Some(v) = s.get(field) {
                        let v = millis(i, v, field)?;
                        if v != actual {
                            return fail(
                                at,
                                format!("poll {name}: expected {field} {}, got {}", show_ms(v), show_ms(actual)),
                            );
                        }
                    }
                }
                ("pending", None)
            }
            WaitPoll::Taken => ("taken", None),
            WaitPoll::Ready(Err(e)) => return expect_outcome(i, s, &format!("poll {name}"), Err(e)),
            WaitPoll::Ready(Ok(Acquired::Execute(l))) => ("execute", Some(Ok(l))),
            WaitPoll::Ready(Ok(Acquired::Replay(r))) => ("replay", Some(Err(r))),
        };
        expect_outcome(i, s, &format!("poll {name}"), Ok(()))?;
        if want != Some(got) {
            return fail(at, format!("poll {name}: expected {}, got {got}", want.unwrap_or("(nothing)")));
        }
        match result {
            Some(Ok(lease)) => self.keep_lease(i, s, lease),
            Some(Err(record)) => self.check_record(i, s.get("record"), &record),
            None => Ok(()),
        }
    }

    fn check_record(&self, i: usize, want: Option<&Value>, r: &Record) -> Checked {
        let Some(want) = want else { return Ok(()) };
        let at = Some(i);
        let want = want.as_object().map_or_else(|| fail(at, "\"record\" must be an object"), Ok)?;
        check_keys(
            at,
            want,
            &["result", "result_bytes", "content_type", "metadata", "error", "created_ms", "expires_ms", "token_of"],
        )?;
        let mut wrong = Vec::new();
        for (field, v) in want {
            let problem = match field.as_str() {
                "result" => {
                    let w = text(i, v, "result")?;
                    (w.as_bytes() != r.result())
                        .then(|| format!("result: expected {w:?}, got {:?}", String::from_utf8_lossy(r.result())))
                }
                "result_bytes" => {
                    let w = v.as_u64().map_or_else(|| fail(at, "result_bytes must be a whole number"), Ok)?;
                    (w != r.result().len() as u64)
                        .then(|| format!("result_bytes: expected {w}, got {}", r.result().len()))
                }
                "content_type" => {
                    let w = text(i, v, "content_type")?;
                    (w != r.content_type()).then(|| format!("content_type: expected {w:?}, got {:?}", r.content_type()))
                }
                "metadata" => {
                    let w = metadata(i, Some(v))?;
                    (w != r.metadata()).then(|| format!("metadata: expected {w:?}, got {:?}", r.metadata()))
                }
                "error" => {
                    let w = v.as_bool().map_or_else(|| fail(at, "error must be a boolean"), Ok)?;
                    (w != r.is_error()).then(|| format!("error: expected {w}, got {}", r.is_error()))
                }
                "created_ms" | "expires_ms" => {
                    let w = v.as_u64().map_or_else(|| fail(at, format!("{field} must be a whole number")), Ok)?;
                    let actual = if field == "created_ms" { r.created_ms() } else { r.expires_ms() };
                    (w != actual).then(|| format!("{field}: expected {w}, got {actual}"))
                }
                "token_of" => {
                    let (name, l) = (text(i, v, "token_of")?, self.lease(i, v)?);
                    (l.token() != r.token())
                        .then(|| format!("token_of: expected {name}'s token {}, got {}", l.token(), r.token()))
                }
                _ => unreachable!("checked above"),
            };
            wrong.extend(problem);
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            fail(at, format!("record: {}", wrong.join("; ")))
        }
    }

    fn expect_stats(&self, i: usize, expected: &Value) -> Checked {
        let at = Some(i);
        let expected = expected.as_object().map_or_else(|| fail(at, "expect_stats must be an object"), Ok)?;
        let st = self.cache.stats();
        let mut wrong = Vec::new();
        for (field, want) in expected {
            let actual = match field.as_str() {
                "executed" => st.executed,
                "replayed" => st.replayed,
                "in_progress" => st.in_progress,
                "mismatched" => st.mismatched,
                "waited" => st.waited,
                "taken_over" => st.taken_over,
                "completed" => st.completed,
                "released" => st.released,
                "lease_lost" => st.lease_lost,
                "store_errors" => st.store_errors,
                "unprotected" => st.unprotected,
                other => return fail(at, format!("unknown stats field {other:?}")),
            };
            let want =
                want.as_u64().map_or_else(|| fail(at, format!("stats field {field} must be a whole number")), Ok)?;
            if want != actual {
                wrong.push(format!("{field}: expected {want}, got {actual}"));
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            fail(at, format!("expect_stats: {}", wrong.join("; ")))
        }
    }
}

fn text<'a>(i: usize, v: &'a Value, what: &str) -> Result<&'a str, Failure> {
    v.as_str().map_or_else(|| fail(Some(i), format!("{what} must be a string, got {v}")), Ok)
}

/// The key of a step: the string, repeated `repeat` times when given.
fn key_of(i: usize, s: &Map<String, Value>, field: &str) -> Result<String, Failure> {
    let base = text(i, &s[field], field)?;
    match s.get("repeat") {
        None => Ok(base.to_owned()),
        Some(n) => {
            let n = n.as_u64().map_or_else(|| fail(Some(i), "repeat must be a whole number"), Ok)?;
            Ok(base.repeat(n as usize))
        }
    }
}

/// Metadata written as a list of `[name, value]` pairs.
fn metadata(i: usize, v: Option<&Value>) -> Result<Vec<(String, String)>, Failure> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let list = v.as_array().map_or_else(|| fail(Some(i), "metadata must be a list of [name, value] pairs"), Ok)?;
    list.iter()
        .map(|p| match p.as_array().map(Vec::as_slice) {
            Some([Value::String(k), Value::String(v)]) => Ok((k.clone(), v.clone())),
            _ => fail(Some(i), format!("metadata pair must be [name, value] strings, got {p}")),
        })
        .collect()
}

/// Checks a step's result against its `expect_error` / `message_contains`.
fn expect_outcome(i: usize, s: &Map<String, Value>, what: &str, r: Result<(), Error>) -> Checked {
    let at = Some(i);
    let want = s.get("expect_error").map(|v| text(i, v, "expect_error")).transpose()?;
    match (want, r) {
        (None, Ok(())) => Ok(()),
        (None, Err(e)) => fail(at, format!("{what}: expected success, got {} ({e})", e.code().as_str())),
        (Some(code), Ok(())) => fail(at, format!("{what}: expected error {code}, but it succeeded")),
        (Some(code), Err(e)) => {
            if e.code().as_str() != code {
                return fail(at, format!("{what}: expected error {code}, got {} ({e})", e.code().as_str()));
            }
            if let Some(part) = s.get("message_contains") {
                let part = text(i, part, "message_contains")?;
                if !e.to_string().contains(part) {
                    return fail(at, format!("{what}: expected the message to contain {part:?}, got: {e}"));
                }
            }
            Ok(())
        }
    }
}
