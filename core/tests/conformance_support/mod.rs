//! What the Rust conformance runners share (`conformance.rs`, `conformance_idempotency.rs`,
//! `redis_conformance.rs`, and the file list of `conformance_deadline.rs`): where the
//! scenario files are, the loop over them and the report of their failures, the checks
//! of a file's top level, config values handed over the way a binding hands them, and the
//! checks of an expected configuration error. `idempotency` is the idempotency runner
//! itself, parameterized by the store a scenario's cache is built with.
//!
//! Included with `mod conformance_support;` by each runner, as `redis_support` is.
#![allow(dead_code)]

pub mod idempotency;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use seawall::{ConfigError, ConfigValue};
use serde_json::{Map, Value};

/// Where a scenario failed: step index (None: the file or its config) and what went wrong.
pub struct Failure {
    pub step: Option<usize>,
    pub message: String,
}

pub type Checked = Result<(), Failure>;

pub fn fail<T>(step: Option<usize>, message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure { step, message: message.into() })
}

/// `tests/conformance/<kind>/`, or the directory in `$env` when set (to replay other
/// files, e.g. deliberately broken copies that check a runner reports failures).
pub fn scenario_dir(env: &str, kind: &str) -> PathBuf {
    match std::env::var_os(env) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance").join(kind),
    }
}

/// The `*.json` files of `dir`, sorted; panics when there are none.
pub fn scenario_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read scenario directory {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenario files (*.json) found in {}", dir.display());
    files
}

/// What replaying a list of files gave.
pub struct Replayed {
    pub passed: usize,
    /// Files left out by the runner (`run` returned None).
    pub excluded: usize,
    pub failures: Vec<(String, Failure)>,
}

impl Replayed {
    /// How many files were replayed (not left out).
    pub fn replayed(&self) -> usize {
        self.passed + self.failures.len()
    }

    /// Panics with every failure, one line each (`  file [step i]: message`), under
    /// "N of M <what>:" (M the replayed files), when there is one.
    pub fn panic_on_failures(&self, what: &str) {
        if self.failures.is_empty() {
            return;
        }
        let mut report = format!("{} of {} {what}:\n", self.failures.len(), self.replayed());
        for (file, f) in &self.failures {
            let at = f.step.map_or_else(|| "config".to_owned(), |i| format!("step {i}"));
            let _ = writeln!(report, "  {file} [{at}]: {}", f.message);
        }
        panic!("{report}");
    }
}

/// Runs every file (in order) through `run`, given the file's position, path and name; a
/// file for which `run` returns None is left out. A failing file does not stop the others.
pub fn replay_files(files: &[PathBuf], mut run: impl FnMut(usize, &Path, &str) -> Option<Checked>) -> Replayed {
    let mut replayed = Replayed { passed: 0, excluded: 0, failures: Vec::new() };
    for (i, path) in files.iter().enumerate() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        match run(i, path, &file) {
            None => replayed.excluded += 1,
            Some(Ok(())) => replayed.passed += 1,
            Some(Err(f)) => replayed.failures.push((file, f)),
        }
    }
    replayed
}

/// A breaker or idempotency scenario file, opened: its top level checked (the keys,
/// "name", "config"), then `build` called on its config; a file that expects a config
/// error is checked against what `build` gave and yields `None` (it has no steps);
/// otherwise the built object, the config and the (non-empty) steps. `noun` names the
/// object in messages ("breaker", "cache").
#[allow(clippy::type_complexity)]
pub fn open_scenario<T>(
    path: &Path,
    noun: &str,
    build: impl FnOnce(&Map<String, Value>) -> Result<Result<T, ConfigError>, Failure>,
) -> Result<Option<(T, Map<String, Value>, Vec<Value>)>, Failure> {
    let text = std::fs::read_to_string(path).or_else(|e| fail(None, format!("cannot read: {e}")))?;
    let doc: Value = serde_json::from_str(&text).or_else(|e| fail(None, format!("invalid JSON: {e}")))?;
    let Value::Object(mut doc) = doc else { return fail(None, "the file is not a JSON object") };
    check_keys(None, &doc, &["name", "config", "steps", "expect_config_error"])?;
    if !doc.get("name").is_some_and(Value::is_string) {
        return fail(None, "missing \"name\" (a string)");
    }
    let config = match doc.remove("config") {
        Some(Value::Object(c)) => c,
        _ => return fail(None, "missing \"config\" (an object)"),
    };
    let built = build(&config)?;
    if let Some(expected) = doc.get("expect_config_error") {
        if doc.contains_key("steps") {
            return fail(None, "a scenario with \"expect_config_error\" must not have \"steps\"");
        }
        return check_config_error(expected, built, noun).map(|()| None);
    }
    let steps = match doc.remove("steps") {
        Some(Value::Array(s)) if !s.is_empty() => s,
        _ => return fail(None, "missing \"steps\" (a non-empty array)"),
    };
    let built = built.or_else(|e| fail(None, format!("expected the {noun} to build, got config error: {e}")))?;
    Ok(Some((built, config, steps)))
}

/// JSON -> the value a binding would hand over.
pub fn config_value(v: &Value) -> ConfigValue {
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

/// Every option of a file's config through `set`, the way a binding passes them: the
/// `_ms` suffix dropped (the style's unit is milliseconds), the value as `config_value`.
pub fn set_options(
    config: &Map<String, Value>,
    mut set: impl FnMut(&str, ConfigValue) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    for (key, value) in config {
        let key = key.strip_suffix("_ms").unwrap_or(key);
        set(key, config_value(value))?;
    }
    Ok(())
}

/// An `expect_config_error` object checked against the build's result.
pub fn check_config_error<T>(expected: &Value, built: Result<T, ConfigError>, noun: &str) -> Checked {
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
        Ok(_) => return fail(None, format!("expected a config error naming {field:?}, but the {noun} was built")),
        Err(e) => e,
    };
    let message = err.to_string();
    if !message.contains(field) {
        return fail(None, format!("expected a config error naming {field:?}, got: {message}"));
    }
    if seawall::Error::from(err.clone()).code().as_str() != "SEAWALL_CONFIG" {
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

/// Only `allowed` keys in `obj` (a typo in a file must not skip an expectation).
pub fn check_keys(step: Option<usize>, obj: &Map<String, Value>, allowed: &[&str]) -> Checked {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            return fail(step, format!("unknown key {k:?} (allowed here: {allowed:?})"));
        }
    }
    Ok(())
}

/// A duration written in ms (a whole or fractional number).
pub fn millis(step: usize, v: &Value, what: &str) -> Result<Duration, Failure> {
    if let Some(ms) = v.as_u64() {
        return Ok(Duration::from_millis(ms));
    }
    match v.as_f64() {
        Some(ms) if ms.is_finite() && ms >= 0.0 => Ok(Duration::from_nanos((ms * 1e6).round() as u64)),
        _ => fail(Some(step), format!("{what} must be a non-negative number of ms, got {v}")),
    }
}

/// A duration written as a whole number of ms.
pub fn whole_millis(step: usize, v: &Value, what: &str) -> Result<Duration, Failure> {
    match v.as_u64() {
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => fail(Some(step), format!("{what} must be a whole non-negative number of ms, got {v}")),
    }
}
