//! The Rust runner of the language-neutral breaker scenarios in `tests/conformance/breaker/`.
//!
//! The file format is described in `tests/conformance/README.md`; the C, Python and Node
//! runners replay the same files. Every file is replayed on a `ManualClock`. A scenario stops
//! at its first failing step (later steps would only report the consequences), but a failing
//! scenario does not stop the others: all failures are collected and reported together, each
//! with its file, step index, and expected vs actual value. Unknown keys in a file are
//! reported too, so a typo cannot silently skip an expectation.
//!
//! Config values reach the core exactly as a binding would pass them: through
//! `BreakerConfig::with_style(Style::default())` (snake names, milliseconds) and `set`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall::{
    BreakerConfig, CircuitBreaker, ConfigError, ManualClock, Outcome, SharedClock, SharedPermit, StateChange, Style,
};
use serde_json::{Map, Value};

mod conformance_support;
use conformance_support::{
    check_keys, fail, millis, open_scenario, replay_files, scenario_dir, scenario_files, set_options, Checked, Failure,
};

/// Tolerance for rates in `expect_snapshot`.
const RATE_EPSILON: f64 = 1e-9;

/// Replays `tests/conformance/breaker/`, or `$SEAWALL_CONFORMANCE_DIR` when set (to replay
/// other files, e.g. deliberately broken copies that check this runner reports failures).
#[test]
fn breaker_conformance_scenarios() {
    let files = scenario_files(&scenario_dir("SEAWALL_CONFORMANCE_DIR", "breaker"));
    let replayed = replay_files(&files, |_, path, _| Some(run_file(path)));
    println!("conformance (Rust): {} of {} breaker scenarios passed", replayed.passed, files.len());
    replayed.panic_on_failures("breaker scenarios failed");
}

fn run_file(path: &Path) -> Checked {
    let clock = ManualClock::shared();
    let opened = open_scenario(path, "breaker", |config| Ok(build(config, clock.clone())))?;
    let Some((breaker, config, steps)) = opened else { return Ok(()) };
    let events: Arc<Mutex<Vec<StateChange>>> = Arc::default();
    let sink = Arc::clone(&events);
    breaker.on_state_change(move |e| sink.lock().unwrap().push(e.clone()));

    let mut run = Run {
        name: config.get("name").and_then(Value::as_str).unwrap_or("").to_owned(),
        breaker,
        clock,
        events,
        permits: HashMap::new(),
    };
    for (i, step) in steps.iter().enumerate() {
        run.step(i, step)?;
    }
    Ok(())
}

/// Builds a breaker the way a binding does: every option through `set`.
fn build(config: &Map<String, Value>, clock: Arc<ManualClock>) -> Result<CircuitBreaker, ConfigError> {
    let mut c = BreakerConfig::with_style(Style::default());
    set_options(config, |key, value| c.set(key, value))?;
    let clock: SharedClock = clock;
    CircuitBreaker::new(c.with_clock(clock))
}

/// An expected `retry_after_ms`: a number of ms or `"inf"`.
fn expected_retry(step: usize, v: &Value) -> Result<Duration, Failure> {
    if v.as_str() == Some("inf") {
        return Ok(Duration::MAX);
    }
    millis(step, v, "retry_after_ms")
}

/// A duration shown the way the files write it.
fn show(d: Duration) -> String {
    if d == Duration::MAX {
        "\"inf\"".to_owned()
    } else {
        format!("{}", d.as_nanos() as f64 / 1e6)
    }
}

fn show_event(e: &StateChange) -> String {
    format!("{{from: {}, to: {}, at_ms: {}, reason: {}}}", e.from, e.to, show(e.at), e.reason)
}

struct Run {
    name: String,
    breaker: CircuitBreaker,
    clock: Arc<ManualClock>,
    events: Arc<Mutex<Vec<StateChange>>>,
    permits: HashMap<String, SharedPermit>,
}

impl Run {
    fn step(&mut self, i: usize, step: &Value) -> Checked {
        let s = step.as_object().map_or_else(|| fail(Some(i), "a step must be an object"), Ok)?;
        let at = Some(i);
        if let Some(name) = s.get("acquire") {
            check_keys(at, s, &["acquire", "expect", "retry_after_ms", "rejected_state"])?;
            self.acquire(i, name, s)
        } else if let Some(name) = s.get("record") {
            check_keys(at, s, &["record", "outcome", "duration_ms", "expect_error"])?;
            self.record(i, name, s)
        } else if let Some(outcome) = s.get("call") {
            check_keys(at, s, &["call", "duration_ms", "times"])?;
            self.call(i, outcome, s)
        } else if let Some(ms) = s.get("advance_ms") {
            check_keys(at, s, &["advance_ms"])?;
            self.clock.advance(millis(i, ms, "advance_ms")?);
            Ok(())
        } else if let Some(state) = s.get("expect_state") {
            check_keys(at, s, &["expect_state"])?;
            let expected = state.as_str().map_or_else(|| fail(at, "expect_state must be a string"), Ok)?;
            let actual = self.breaker.state();
            if actual.as_str() != expected {
                return fail(at, format!("expect_state: expected {expected}, got {actual}"));
            }
            Ok(())
        } else if let Some(action) = s.get("action") {
            check_keys(at, s, &["action"])?;
            match action.as_str() {
                Some("force_open") => self.breaker.force_open(),
                Some("disable") => self.breaker.disable(),
                Some("reset") => self.breaker.reset(),
                _ => return fail(at, format!("unknown action {action}")),
            }
            Ok(())
        } else if let Some(expected) = s.get("expect_snapshot") {
            check_keys(at, s, &["expect_snapshot"])?;
            self.expect_snapshot(i, expected)
        } else if let Some(expected) = s.get("expect_events") {
            check_keys(at, s, &["expect_events"])?;
            self.expect_events(i, expected)
        } else {
            fail(at, format!("unknown step kind: {step}"))
        }
    }

    fn acquire(&mut self, i: usize, name: &Value, s: &Map<String, Value>) -> Checked {
        let at = Some(i);
        let name = name.as_str().map_or_else(|| fail(at, "acquire: the permit name must be a string"), Ok)?;
        let expect = s.get("expect").and_then(Value::as_str);
        match (expect, self.breaker.try_acquire_shared()) {
            (Some("permit"), Ok(p)) => {
                if s.contains_key("retry_after_ms") || s.contains_key("rejected_state") {
                    return fail(at, "retry_after_ms / rejected_state only go with \"expect\": \"rejected\"");
                }
                if self.permits.get(name).is_some_and(|old| !old.is_done()) {
                    // Replacing it would drop it, which is a cancellation the file did not ask for.
                    return fail(at, format!("permit {name:?} is still outstanding; use another name"));
                }
                self.permits.insert(name.to_owned(), p);
                Ok(())
            }
            (Some("permit"), Err(r)) => fail(
                at,
                format!(
                    "acquire {name:?}: expected a permit, got rejected (state {}, retry_after_ms {})",
                    r.state,
                    show(r.retry_after)
                ),
            ),
            (Some("rejected"), Ok(p)) => {
                let probe = if p.is_probe() { " (a half-open probe)" } else { "" };
                fail(at, format!("acquire {name:?}: expected a rejection, got a permit{probe}"))
            }
            (Some("rejected"), Err(r)) => {
                if let Some(v) = s.get("retry_after_ms") {
                    let expected = expected_retry(i, v)?;
                    if r.retry_after != expected {
                        return fail(
                            at,
                            format!(
                                "acquire {name:?}: expected retry_after_ms {}, got {}",
                                show(expected),
                                show(r.retry_after)
                            ),
                        );
                    }
                }
                if let Some(v) = s.get("rejected_state") {
                    let expected = v.as_str().map_or_else(|| fail(at, "rejected_state must be a string"), Ok)?;
                    if r.state.as_str() != expected {
                        return fail(
                            at,
                            format!("acquire {name:?}: expected rejected_state {expected}, got {}", r.state),
                        );
                    }
                }
                if *r.breaker != *self.name {
                    return fail(at, format!("rejection names breaker {:?}, expected {:?}", r.breaker, self.name));
                }
                Ok(())
            }
            _ => fail(at, "acquire: \"expect\" must be \"permit\" or \"rejected\""),
        }
    }

    /// Records `outcome` (or cancels) on `p`; returns the error code when refused.
    fn apply(i: usize, p: &SharedPermit, outcome: &str, took: Duration) -> Result<Result<(), &'static str>, Failure> {
        let r = if outcome == "cancel" {
            p.cancel()
        } else {
            let o =
                Outcome::parse(outcome).map_or_else(|| fail(Some(i), format!("unknown outcome {outcome:?}")), Ok)?;
            p.record(o, took)
        };
        Ok(r.map_err(|e| e.code().as_str()))
    }

    fn record(&mut self, i: usize, name: &Value, s: &Map<String, Value>) -> Checked {
        let at = Some(i);
        let name = name.as_str().map_or_else(|| fail(at, "record: the permit name must be a string"), Ok)?;
        let outcome = s
            .get("outcome")
            .and_then(Value::as_str)
            .map_or_else(|| fail(at, "record: \"outcome\" (a string) is required"), Ok)?;
        let took = match s.get("duration_ms") {
            Some(v) => millis(i, v, "duration_ms")?,
            None => Duration::ZERO,
        };
        let p = self
            .permits
            .get(name)
            .map_or_else(|| fail(at, format!("record: no permit named {name:?} was acquired")), Ok)?;
        let result = Self::apply(i, p, outcome, took)?;
        match (s.get("expect_error").map(|v| v.as_str()), result) {
            (None, Ok(())) => Ok(()),
            (None, Err(code)) => fail(at, format!("record {name:?} {outcome}: expected success, got error {code}")),
            (Some(Some(expected)), Err(code)) if code == expected => Ok(()),
            (Some(Some(expected)), Err(code)) => {
                fail(at, format!("record {name:?} {outcome}: expected error {expected}, got {code}"))
            }
            (Some(Some(expected)), Ok(())) => {
                fail(at, format!("record {name:?} {outcome}: expected error {expected}, but it was accepted"))
            }
            (Some(None), _) => fail(at, "expect_error must be a string"),
        }
    }

    fn call(&mut self, i: usize, outcome: &Value, s: &Map<String, Value>) -> Checked {
        let at = Some(i);
        let outcome = outcome.as_str().map_or_else(|| fail(at, "call: the outcome must be a string"), Ok)?;
        let took = match s.get("duration_ms") {
            Some(v) => millis(i, v, "duration_ms")?,
            None => Duration::ZERO,
        };
        let times = match s.get("times") {
            None => 1,
            Some(v) => {
                v.as_u64().filter(|&n| n >= 1).map_or_else(|| fail(at, "times must be a whole number >= 1"), Ok)?
            }
        };
        for n in 1..=times {
            let p = match self.breaker.try_acquire_shared() {
                Ok(p) => p,
                Err(r) => return fail(
                    at,
                    format!(
                        "call {outcome} #{n} of {times}: expected a permit, got rejected (state {}, retry_after_ms {})",
                        r.state,
                        show(r.retry_after)
                    ),
                ),
            };
            if let Err(code) = Self::apply(i, &p, outcome, took)? {
                return fail(at, format!("call {outcome} #{n} of {times}: the outcome was refused with {code}"));
            }
        }
        Ok(())
    }

    fn expect_snapshot(&mut self, i: usize, expected: &Value) -> Checked {
        let at = Some(i);
        let expected = expected.as_object().map_or_else(|| fail(at, "expect_snapshot must be an object"), Ok)?;
        let snap = self.breaker.snapshot();
        let mut wrong = Vec::new();
        for (field, want) in expected {
            let count = |actual: u64| match want.as_u64() {
                Some(w) if w == actual => Ok(None),
                Some(_) => Ok(Some(format!("{field}: expected {want}, got {actual}"))),
                None => fail(at, format!("snapshot field {field} must be a whole number, got {want}")),
            };
            let rate = |actual: f64| match want.as_f64() {
                Some(w) if (w - actual).abs() <= RATE_EPSILON => Ok(None),
                Some(_) => Ok(Some(format!("{field}: expected {want}, got {actual}"))),
                None => fail(at, format!("snapshot field {field} must be a number, got {want}")),
            };
            let problem = match field.as_str() {
                "state" => match want.as_str() {
                    Some(w) if w == snap.state.as_str() => None,
                    Some(_) => Some(format!("state: expected {want}, got {}", snap.state)),
                    None => return fail(at, "snapshot field state must be a string"),
                },
                "successes" => count(snap.successes)?,
                "failures" => count(snap.failures)?,
                "slow" => count(snap.slow)?,
                "ignored" => count(snap.ignored)?,
                "rejected" => count(snap.rejected)?,
                "timeouts" => count(snap.timeouts)?,
                "window_calls" => count(snap.window_calls)?,
                "consecutive_failures" => count(u64::from(snap.consecutive_failures))?,
                "half_open_in_flight" => count(u64::from(snap.half_open_in_flight))?,
                "failure_rate" => rate(snap.failure_rate)?,
                "slow_call_rate" => rate(snap.slow_call_rate)?,
                "retry_after_ms" => {
                    let w = expected_retry(i, want)?;
                    (w != snap.retry_after)
                        .then(|| format!("retry_after_ms: expected {}, got {}", show(w), show(snap.retry_after)))
                }
                other => return fail(at, format!("unknown snapshot field {other:?}")),
            };
            wrong.extend(problem);
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            fail(at, format!("expect_snapshot: {}", wrong.join("; ")))
        }
    }

    fn expect_events(&mut self, i: usize, expected: &Value) -> Checked {
        let at = Some(i);
        let expected = expected.as_array().map_or_else(|| fail(at, "expect_events must be an array"), Ok)?;
        let mut want = Vec::with_capacity(expected.len());
        for e in expected {
            let e = e.as_object().map_or_else(|| fail(at, "each expected event must be an object"), Ok)?;
            check_keys(at, e, &["from", "to", "at_ms", "reason"])?;
            let text = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .map_or_else(|| fail(at, format!("an expected event needs {k:?} (a string)")), Ok)
            };
            let at_ms = e.get("at_ms").map_or_else(|| fail(at, "an expected event needs \"at_ms\""), Ok)?;
            want.push(format!(
                "{{from: {}, to: {}, at_ms: {}, reason: {}}}",
                text("from")?,
                text("to")?,
                show(millis(i, at_ms, "at_ms")?),
                text("reason")?
            ));
        }
        let got_events = self.events.lock().unwrap().clone();
        if let Some(e) = got_events.iter().find(|e| *e.breaker != *self.name) {
            return fail(at, format!("an event names breaker {:?}, expected {:?}", e.breaker, self.name));
        }
        let got: Vec<String> = got_events.iter().map(show_event).collect();
        if got != want {
            return fail(
                at,
                format!("expect_events:\n      expected [{}]\n      got      [{}]", want.join(", "), got.join(", ")),
            );
        }
        Ok(())
    }
}
