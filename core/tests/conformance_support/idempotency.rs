//! The idempotency scenarios of `tests/conformance/idempotency/` (format in
//! `tests/conformance/README.md`, "Idempotency scenarios"), replayed through the Rust API,
//! by `conformance_idempotency.rs` (the memory store) and `redis_conformance.rs` (a
//! `RedisStore` on a real `redis-server`): one runner, told by a `Backend` which store a
//! scenario's cache is built with.
//!
//! Every file runs on a `ManualClock`. A scenario stops at its first failing step, but
//! every file is replayed and all failures are reported together, each with its file, step
//! index, and expected vs actual value. Unknown keys are reported too, so a typo cannot
//! silently skip an expectation. Config values reach the core exactly as a binding passes
//! them: through `IdempotencyConfig::with_style(Style::default())` (snake names,
//! milliseconds) and `set`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use seawall::idempotency::{fingerprint, Acquired, Begin, Failed, Fingerprint, Output, WaitPoll};
use seawall::store::SharedStore;
use seawall::{
    ConfigError, Error, IdempotencyCache, IdempotencyConfig, Lease, ManualClock, Record, SharedClock, Style, Waiter,
};
use serde_json::{Map, Value};

use super::{check_keys, fail, open_scenario, set_options, whole_millis, Checked, Failure};

/// `tests/conformance/idempotency/`, or `$SEAWALL_IDEMPOTENCY_CONFORMANCE_DIR` when set.
pub fn scenario_dir() -> std::path::PathBuf {
    super::scenario_dir("SEAWALL_IDEMPOTENCY_CONFORMANCE_DIR", "idempotency")
}

/// Where a scenario's cache keeps its entries.
pub trait Backend {
    /// The store of the scenario at `index` (its position in the list of files), reading
    /// time from the scenario's clock; `None` for the cache's default memory store.
    fn store(&mut self, index: usize, clock: &Arc<ManualClock>) -> Result<Option<SharedStore>, Failure>;

    /// Called after a `begin` left a waiter on `key`, before the next step; an error
    /// fails the step with that message.
    fn waiting(&self, _key: &str) -> Result<(), String> {
        Ok(())
    }
}

/// The default memory store, on the scenario's clock (the cache passes it on).
pub struct MemoryStore;

impl Backend for MemoryStore {
    fn store(&mut self, _index: usize, _clock: &Arc<ManualClock>) -> Result<Option<SharedStore>, Failure> {
        Ok(None)
    }
}

/// Replays one file (at position `index` in the list) with a store from `backend`.
pub fn run_file(path: &Path, index: usize, backend: &mut dyn Backend) -> Checked {
    let clock = ManualClock::shared();
    let opened = open_scenario(path, "cache", |config| {
        let store = backend.store(index, &clock)?;
        Ok(build(config, clock.clone(), store))
    })?;
    let Some((cache, _config, steps)) = opened else { return Ok(()) };
    let mut run = Run { cache, clock, backend, leases: HashMap::new(), waiters: HashMap::new() };
    for (i, step) in steps.iter().enumerate() {
        run.step(i, step)?;
    }
    Ok(())
}

/// Builds a cache the way a binding does: every option through `set`, then the clock and
/// the store (when not the default one).
fn build(
    config: &Map<String, Value>,
    clock: Arc<ManualClock>,
    store: Option<SharedStore>,
) -> Result<IdempotencyCache, ConfigError> {
    let mut c = IdempotencyConfig::with_style(Style::default());
    set_options(config, |key, value| c.set(key, value))?;
    let clock: SharedClock = clock;
    let c = c.with_clock(clock);
    IdempotencyCache::new(match store {
        Some(store) => c.with_store(store),
        None => c,
    })
}

fn show_ms(d: Duration) -> String {
    format!("{}", d.as_nanos() as f64 / 1e6)
}

struct Run<'b> {
    cache: IdempotencyCache,
    clock: Arc<ManualClock>,
    backend: &'b dyn Backend,
    leases: HashMap<String, Lease>,
    waiters: HashMap<String, Waiter>,
}

/// The fields every action step may carry to expect an error instead of success.
const ERROR_KEYS: [&str; 2] = ["expect_error", "message_contains"];

fn keys<'a>(own: &[&'a str]) -> Vec<&'a str> {
    own.iter().copied().chain(ERROR_KEYS).collect()
}

impl Run<'_> {
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
                let want = whole_millis(i, want, "remaining_ms")?;
                if *left != want {
                    return fail(at, format!("renew: expected remaining_ms {}, got {}", show_ms(want), show_ms(*left)));
                }
            }
            expect_outcome(i, s, "renew", r.map(|_| ()))
        } else if s.contains_key("poll") {
            check_keys(
                at,
                s,
                &keys(&["poll", "expect", "as", "token_above", "took_over", "protected", "record", "lease_expires_in_ms", "timeout_in_ms"]),
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
            self.clock.advance(whole_millis(i, ms, "advance_ms")?);
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
                    format!("expected a token above {}'s ({}), got {token}", text(i, &s["token_above"], "")?, other.token()),
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
                    let want = whole_millis(i, want, "retry_after_ms")?;
                    if ip.retry_after != want {
                        return fail(
                            at,
                            format!("in_progress: expected retry_after_ms {}, got {}", show_ms(want), show_ms(ip.retry_after)),
                        );
                    }
                }
                if let Some(w) = ip.waiter.take() {
                    let name = s.get("as").map_or_else(|| fail(at, "a \"wait\" begin needs \"as\""), Ok)?;
                    self.waiters.insert(text(i, name, "as")?.to_owned(), w);
                    self.backend.waiting(&key).or_else(|message| fail(at, message))?;
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
                        let v = whole_millis(i, v, field)?;
                        if v != actual {
                            return fail(at, format!("poll {name}: expected {field} {}, got {}", show_ms(v), show_ms(actual)));
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
        check_keys(at, want, &["result", "result_bytes", "content_type", "metadata", "error", "created_ms", "expires_ms", "token_of"])?;
        let mut wrong = Vec::new();
        for (field, v) in want {
            let problem = match field.as_str() {
                "result" => {
                    let w = text(i, v, "result")?;
                    (w.as_bytes() != r.result()).then(|| format!("result: expected {w:?}, got {:?}", String::from_utf8_lossy(r.result())))
                }
                "result_bytes" => {
                    let w = v.as_u64().map_or_else(|| fail(at, "result_bytes must be a whole number"), Ok)?;
                    (w != r.result().len() as u64).then(|| format!("result_bytes: expected {w}, got {}", r.result().len()))
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
                    (l.token() != r.token()).then(|| format!("token_of: expected {name}'s token {}, got {}", l.token(), r.token()))
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
            let want = want.as_u64().map_or_else(|| fail(at, format!("stats field {field} must be a whole number")), Ok)?;
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
