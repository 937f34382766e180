//! The Rust runner of the deadline scenarios in `tests/conformance/deadline/` (format in
//! `tests/conformance/README.md`). Every file runs; failures are collected and reported
//! with file, step, expected and actual; no files at all is a failure (the file list is
//! `conformance_support`'s, shared with the other Rust runners).

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use seawall::deadline::{duration_arg, format_grpc_timeout, parse_grpc_timeout};
use seawall::{CancelToken, ConfigValue, Deadline, DurationUnit, Error, ManualClock, SharedClock, TimerGuard};

mod conformance_support;
use conformance_support::scenario_files;

struct Run {
    clocks: HashMap<String, Arc<ManualClock>>,
    deadlines: HashMap<String, Deadline>,
    tokens: HashMap<String, CancelToken>,
    guards: Vec<TimerGuard>,
}

fn number(v: &Value) -> ConfigValue {
    match v {
        Value::String(s) if s == "NaN" => ConfigValue::Float(f64::NAN),
        Value::String(s) if s == "Infinity" => ConfigValue::Float(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => ConfigValue::Float(f64::NEG_INFINITY),
        Value::Number(n) if n.is_i64() => ConfigValue::Int(n.as_i64().unwrap()),
        Value::Number(n) => ConfigValue::Float(n.as_f64().unwrap()),
        other => ConfigValue::Other(other.to_string()),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Run {
    fn new() -> Self {
        let mut clocks = HashMap::new();
        clocks.insert("main".to_string(), ManualClock::shared());
        Run { clocks, deadlines: HashMap::new(), tokens: HashMap::new(), guards: Vec::new() }
    }

    fn clock(&self, step: &Value) -> Result<Arc<ManualClock>, String> {
        let name = step.get("clock").and_then(Value::as_str).unwrap_or("main");
        self.clocks.get(name).cloned().ok_or_else(|| format!("no clock {name}"))
    }

    fn deadline(&self, name: &Value) -> Result<&Deadline, String> {
        let n = name.as_str().ok_or("deadline name must be a string")?;
        self.deadlines.get(n).ok_or_else(|| format!("no deadline {n}"))
    }

    /// Runs one step; `Ok(Err(e))` is an error of the API (for `expect_error`).
    fn step(&mut self, s: &Value) -> Result<Result<(), Error>, String> {
        let o = s.as_object().ok_or("a step must be an object")?;
        if let Some(name) = o.get("clock").filter(|_| o.len() == 1) {
            let name = name.as_str().ok_or("clock name")?;
            self.clocks.insert(name.into(), ManualClock::shared());
        } else if let Some(n) = o.get("advance_ms") {
            self.clock(s)?.advance(Duration::from_secs_f64(n.as_f64().ok_or("advance_ms")? / 1000.0));
        } else if let Some(name) = o.get("deadline") {
            let clock: SharedClock = self.clock(s)?;
            let d = if let Some(v) = o.get("after_ms") {
                match duration_arg("ms", &number(v), DurationUnit::Millis) {
                    Ok(dur) => Deadline::after(clock, dur),
                    Err(e) => return Ok(Err(e)),
                }
            } else {
                let h = o.get("grpc").and_then(Value::as_str).ok_or("deadline needs after_ms or grpc")?;
                match Deadline::from_grpc_timeout(clock, h) {
                    Ok(d) => d,
                    Err(e) => return Ok(Err(e)),
                }
            };
            self.deadlines.insert(name.as_str().ok_or("deadline name")?.into(), d);
        } else if let Some(exp) = o.get("expect") {
            if o.contains_key("grpc_format_ms") {
                let d = Duration::from_secs_f64(o["grpc_format_ms"].as_f64().ok_or("grpc_format_ms")? / 1000.0);
                let got = format_grpc_timeout(d);
                if Some(got.as_str()) != exp.as_str() {
                    return Err(format!("grpc_format: expected {exp}, got {got:?}"));
                }
                return Ok(Ok(()));
            }
            for (name, fields) in exp.as_object().ok_or("expect must map deadlines to fields")? {
                let d = self.deadline(&Value::String(name.clone()))?;
                for (field, want) in fields.as_object().ok_or("fields")? {
                    let got = match field.as_str() {
                        "remaining_ms" => Value::from(d.remaining_ms()),
                        "expired" => Value::from(d.expired()),
                        "grpc" => Value::from(d.to_grpc_timeout()),
                        other => return Err(format!("unknown deadline field {other}")),
                    };
                    if &got != want {
                        return Err(format!("{name}.{field}: expected {want}, got {got}"));
                    }
                }
            }
        } else if let Some(pair) = o.get("earliest") {
            let p = pair.as_array().ok_or("earliest takes two names")?;
            let (a, b) = (self.deadline(&p[0])?, self.deadline(&p[1])?);
            match a.earliest(b) {
                Ok(d) => {
                    let as_ = o.get("as").and_then(Value::as_str).ok_or("earliest needs as")?;
                    self.deadlines.insert(as_.into(), d);
                }
                Err(e) => return Ok(Err(e)),
            }
        } else if let Some(name) = o.get("budget") {
            let d = self.deadline(name)?;
            let frac = o["fraction"].as_f64().ok_or("fraction")?;
            let min = Duration::from_secs_f64(o["min_ms"].as_f64().ok_or("min_ms")? / 1000.0);
            let got = d.budget(frac, min).as_millis() as u64;
            let want = o["expect_ms"].as_u64().ok_or("expect_ms")?;
            if got != want {
                return Err(format!("budget: expected {want} ms, got {got} ms"));
            }
        } else if let Some(h) = o.get("grpc_parse") {
            match parse_grpc_timeout(h.as_str().ok_or("grpc_parse")?) {
                Ok(d) => {
                    let want = o.get("expect_ms").and_then(Value::as_f64).ok_or("grpc_parse needs expect_ms")?;
                    if (ms(d) - want).abs() > 1e-9 {
                        return Err(format!("grpc_parse {h}: expected {want} ms, got {} ms", ms(d)));
                    }
                }
                Err(e) => return Ok(Err(e)),
            }
        } else if let Some(name) = o.get("token") .filter(|_| !o.contains_key("cancel_at")) {
            self.tokens.insert(name.as_str().ok_or("token name")?.into(), CancelToken::new());
        } else if let Some(d) = o.get("cancel_at") {
            let t = o.get("token").and_then(Value::as_str).ok_or("cancel_at needs token")?;
            let token = self.tokens.get(t).ok_or_else(|| format!("no token {t}"))?.clone();
            let guard = token.cancel_at(self.deadline(d)?);
            self.guards.push(guard);
        } else if let Some(t) = o.get("cancel") {
            let t = t.as_str().ok_or("cancel")?;
            self.tokens.get(t).ok_or_else(|| format!("no token {t}"))?.cancel();
        } else if let Some(exp) = o.get("expect_token") {
            for (name, want) in exp.as_object().ok_or("expect_token")? {
                let t = self.tokens.get(name).ok_or_else(|| format!("no token {name}"))?;
                let got = t.reason().map_or(Value::Null, |r| Value::from(r.as_str()));
                if &got != want {
                    return Err(format!("token {name}: expected {want}, got {got}"));
                }
            }
        } else {
            return Err(format!("unknown step {s}"));
        }
        Ok(Ok(()))
    }
}

fn replay(v: &Value) -> Result<(), String> {
    let mut run = Run::new();
    for (i, s) in v["steps"].as_array().ok_or("no steps")?.iter().enumerate() {
        let result = run.step(s).map_err(|e| format!("step {i}: {e}"))?;
        match (result, s.get("expect_error").and_then(Value::as_str)) {
            (Ok(()), None) => {}
            (Ok(()), Some(code)) => return Err(format!("step {i}: expected error {code}, got success")),
            (Err(e), Some(code)) if e.code().as_str() == code => {}
            (Err(e), want) => return Err(format!("step {i}: expected {want:?}, got error {} ({e})", e.code().as_str())),
        }
    }
    Ok(())
}

#[test]
fn deadline_scenarios() {
    let files = scenario_files(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/deadline"));
    let mut failures = Vec::new();
    for f in &files {
        let v: Value = serde_json::from_str(&fs::read_to_string(f).unwrap()).unwrap();
        if let Err(e) = replay(&v) {
            failures.push(format!("{}: {e}", f.file_name().unwrap().to_string_lossy()));
        }
    }
    println!("conformance (Rust): {} of {} deadline scenarios passed", files.len() - failures.len(), files.len());
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}
