//! Health: deep checks with timeouts and an interval cache, plus what breakers contribute.
//!
//! A check is a user function that verifies the service can do work (query the database,
//! reach a dependency). Each has a `timeout` (a hanging check counts as failed then, and
//! never hangs `health()`), an `interval` (a flood of `/health` requests runs it at most
//! once per interval; the cached result answers the rest) and a `critical` flag: a failed
//! critical check makes the service `down`, a failed non-critical one `degraded`.
//!
//! This module keeps the state and the rules; *running* a check is the caller's: the
//! [`Registry`](crate::Registry) runs Rust (and C, and Python sync) checks on short-lived
//! threads; the Node binding runs JavaScript checks on its event loop. Both go through
//! [`Checks::due`] and [`Checks::finish`], so the semantics are the same.
//!
//! ```
//! use std::time::Duration;
//! use seawall::health::{CheckConfig, Checks, HealthStatus};
//!
//! let checks = Checks::default();
//! checks.add("db", CheckConfig { critical: false, ..CheckConfig::default() }, None);
//! let now = Duration::ZERO;
//! for run in checks.due(now) {
//!     checks.finish(&run.name, run.run, Err("connection refused".into()), now);
//! }
//! let (status, reports) = checks.report(now);
//! assert_eq!(status, HealthStatus::Degraded);
//! assert_eq!(reports[0].error.as_deref(), Some("connection refused"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::ConfigError;
use crate::options::{ConfigValue, Style};

/// The service's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HealthStatus {
    /// Everything works.
    Ok,
    /// Something non-critical failed: the service works with less.
    Degraded,
    /// Something critical failed.
    Down,
}

impl HealthStatus {
    /// `"ok"`, `"degraded"`, `"down"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Down => "down",
        }
    }

    /// What one failing part does to the whole.
    pub fn of_failure(critical: bool) -> HealthStatus {
        if critical {
            HealthStatus::Down
        } else {
            HealthStatus::Degraded
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a check registered by the user.
pub const KIND_CHECK: &str = "check";
/// The kind of the check a registry adds for each idempotency cache's store.
pub const KIND_STORE: &str = "store";

/// How a check runs.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckConfig {
    /// A run that takes longer has failed (default 5 s).
    pub timeout: Duration,
    /// Results are reused for this long (default 5 s; zero runs the check on every call).
    pub interval: Duration,
    /// A failure makes the service `down` (true, default) or `degraded` (false).
    pub critical: bool,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(5), interval: Duration::from_secs(5), critical: true }
    }
}

impl CheckConfig {
    /// Sets `timeout`, `interval` or `critical` by name, checked as for every option.
    pub fn set(&mut self, style: Style, key: &str, v: ConfigValue) -> Result<(), ConfigError> {
        match crate::options::snake_case(key).as_str() {
            "timeout" => self.timeout = style.duration("timeout", &v, false)?,
            "interval" => self.interval = style.duration("interval", &v, true)?,
            "critical" => self.critical = style.flag("critical", &v)?,
            _ => return Err(ConfigError::new(key, style.show(&v), "unknown option")),
        }
        Ok(())
    }
}

/// A check function run by the core: `Err` carries the reason it failed.
pub type CheckFn = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// One part of a health report.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// The check's (or breaker's) name.
    pub name: String,
    /// `"check"` (a registered check), `"store"` (an idempotency cache's store, checked
    /// automatically) or `"breaker"`.
    pub kind: &'static str,
    /// Whether it passes now.
    pub ok: bool,
    /// Whether its failure makes the service down.
    pub critical: bool,
    /// What it contributes: ok, or the status its failure causes.
    pub status: HealthStatus,
    /// The last error (a check's message, a timeout, a breaker's state).
    pub error: Option<String>,
    /// Clock time of the last run's end (checks).
    pub checked_at: Option<Duration>,
    /// Clock time it last passed.
    pub last_ok_at: Option<Duration>,
    /// How long the last run took.
    pub duration: Option<Duration>,
}

/// A check that is due: run it, then call [`Checks::finish`] with `run`.
pub struct DueCheck {
    /// The check's name.
    pub name: String,
    /// Identifies this run (a late result of an older run is ignored).
    pub run: u64,
    /// The function, for checks the core runs (None: the binding runs it).
    pub f: Option<CheckFn>,
    /// Its timeout.
    pub timeout: Duration,
}

struct Entry {
    kind: &'static str,
    config: CheckConfig,
    f: Option<CheckFn>,
    run: u64,
    running_since: Option<Duration>,
    ok: Option<bool>,
    error: Option<String>,
    checked_at: Option<Duration>,
    last_ok_at: Option<Duration>,
    duration: Option<Duration>,
}

/// The registered checks and their last results.
#[derive(Default)]
pub struct Checks {
    map: Mutex<BTreeMap<String, Entry>>,
}

impl Checks {
    /// Adds (or replaces) a check. `f` is `None` when the binding runs it.
    pub fn add(&self, name: &str, config: CheckConfig, f: Option<CheckFn>) {
        self.add_kind(name, KIND_CHECK, config, f);
    }

    /// Adds (or replaces) a check of `kind` ([`KIND_CHECK`] or [`KIND_STORE`]).
    pub fn add_kind(&self, name: &str, kind: &'static str, config: CheckConfig, f: Option<CheckFn>) {
        let e = Entry {
            kind,
            config,
            f,
            run: 0,
            running_since: None,
            ok: None,
            error: None,
            checked_at: None,
            last_ok_at: None,
            duration: None,
        };
        self.map.lock().insert(name.to_owned(), e);
    }

    /// Removes a check; false when there was none.
    pub fn remove(&self, name: &str) -> bool {
        self.map.lock().remove(name).is_some()
    }

    /// Names of the registered checks.
    pub fn names(&self) -> Vec<String> {
        self.map.lock().keys().cloned().collect()
    }

    /// The checks to run now: not run within their interval and not already running.
    /// Marks them running.
    pub fn due(&self, now: Duration) -> Vec<DueCheck> {
        self.due_where(now, |_| true)
    }

    /// [`due`](Self::due), only for the checks the core runs (`external = false`) or only
    /// for those the binding runs (`external = true`): one runner never marks the other's
    /// checks running.
    pub fn due_of(&self, now: Duration, external: bool) -> Vec<DueCheck> {
        self.due_where(now, |e| e.f.is_none() == external)
    }

    /// [`due`](Self::due), only for the checks of `kind`: bindings that run the user's
    /// checks themselves take [`KIND_CHECK`] here and leave the stores' checks to
    /// [`crate::Registry::run_store_checks`].
    pub fn due_of_kind(&self, now: Duration, kind: &str) -> Vec<DueCheck> {
        self.due_where(now, |e| e.kind == kind)
    }

    /// [`due`](Self::due), only for the checks `pick(kind, external)` takes (`external`:
    /// the binding runs it). The others are left as they are (not marked running).
    pub fn due_if(&self, now: Duration, pick: impl Fn(&str, bool) -> bool) -> Vec<DueCheck> {
        self.due_where(now, |e| pick(e.kind, e.f.is_none()))
    }

    fn due_where(&self, now: Duration, pick: impl Fn(&Entry) -> bool) -> Vec<DueCheck> {
        let mut map = self.map.lock();
        let mut out = Vec::new();
        for (name, e) in map.iter_mut().filter(|(_, e)| pick(e)) {
            let fresh = e.checked_at.is_some_and(|at| now.saturating_sub(at) < e.config.interval);
            if fresh || e.running_since.is_some() {
                continue;
            }
            e.run += 1;
            e.running_since = Some(now);
            out.push(DueCheck { name: name.clone(), run: e.run, f: e.f.clone(), timeout: e.config.timeout });
        }
        out
    }

    /// Records the result of run `run` of `name`, finished at `now`.
    pub fn finish(&self, name: &str, run: u64, result: Result<(), String>, now: Duration) {
        let mut map = self.map.lock();
        let Some(e) = map.get_mut(name) else { return };
        if e.run != run || e.running_since.is_none() {
            return; // a late result of a run already failed by its timeout
        }
        let started = e.running_since.take().unwrap_or(now);
        e.duration = Some(now.saturating_sub(started));
        e.checked_at = Some(now);
        match result {
            Ok(()) => {
                e.ok = Some(true);
                e.error = None;
                e.last_ok_at = Some(now);
            }
            Err(msg) => {
                e.ok = Some(false);
                e.error = Some(msg);
            }
        }
    }

    /// Fails run `run` of `name` for taking longer than its timeout. The run's late result
    /// is ignored; the check is due again after its interval.
    pub fn time_out(&self, name: &str, run: u64, now: Duration) {
        let timeout = self.map.lock().get(name).map(|e| e.config.timeout);
        if let Some(t) = timeout {
            self.finish(name, run, Err(format!("timed out after {} ms", t.as_secs_f64() * 1000.0)), now);
        }
    }

    /// The overall status of the checks and a report per check.
    pub fn report(&self, now: Duration) -> (HealthStatus, Vec<CheckReport>) {
        let map = self.map.lock();
        let mut status = HealthStatus::Ok;
        let mut out = Vec::with_capacity(map.len());
        for (name, e) in map.iter() {
            let overdue = e.running_since.is_some_and(|s| now.saturating_sub(s) >= e.config.timeout);
            let (ok, error) = match (e.ok, overdue) {
                (_, true) => (false, Some(format!("timed out after {} ms", e.config.timeout.as_secs_f64() * 1000.0))),
                (Some(ok), _) => (ok, e.error.clone()),
                (None, _) => (false, Some("not run yet".to_owned())),
            };
            let part = if ok { HealthStatus::Ok } else { HealthStatus::of_failure(e.config.critical) };
            status = status.max(part);
            out.push(CheckReport {
                name: name.clone(),
                kind: e.kind,
                ok,
                critical: e.config.critical,
                status: part,
                error,
                checked_at: e.checked_at,
                last_ok_at: e.last_ok_at,
                duration: e.duration,
            });
        }
        (status, out)
    }
}
