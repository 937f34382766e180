//! The registry: named breakers and health checks, with one snapshot, one Prometheus
//! exposition and one health report for all of them.
//!
//! `breaker(name, config)` gets or creates, so per-tenant or per-host breakers are one
//! call; the registry is bounded (`max_breakers`): past the bound it forgets the breaker
//! used least recently (a caller holding it keeps using it; the registry just stops
//! reporting it), so a high-cardinality name cannot grow memory without bound.
//!
//! ```
//! use seawall::{BreakerConfig, Registry};
//! let registry = Registry::new();
//! let db = registry.breaker("db", BreakerConfig::default()).unwrap();
//! let same = registry.breaker("db", BreakerConfig::default()).unwrap();
//! db.force_open();
//! assert_eq!(same.state().as_str(), "forced_open");
//! assert_eq!(registry.health().status.as_str(), "down");
//! assert!(registry.prometheus().contains("seawall_breaker_state{breaker=\"db\",state=\"forced_open\"} 1"));
//! ```

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};

use crate::breaker::{BreakerConfig, CircuitBreaker, Snapshot, State};
use crate::clock::{SharedClock, SystemClock};
use crate::error::{ConfigError, Error};
use crate::health::{CheckConfig, CheckFn, CheckReport, Checks, HealthStatus, KIND_STORE};
use crate::idempotency::{IdempotencyCache, IdempotencyConfig, IdempotencyStats};

/// Default bound on the number of breakers a registry keeps.
pub const DEFAULT_MAX_BREAKERS: usize = 10_000;

struct Named {
    breaker: CircuitBreaker,
    last_used: AtomicU64,
}

struct Inner {
    clock: SharedClock,
    max_breakers: usize,
    breakers: RwLock<HashMap<String, Named>>,
    caches: RwLock<HashMap<String, IdempotencyCache>>,
    tick: AtomicU64,
    checks: Checks,
    hanging: Mutex<HashSet<String>>,
}

/// Named breakers and health checks. Cheap to clone: clones share one registry.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// The service's health: the status and every part that decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// `ok`, `degraded` or `down`.
    pub status: HealthStatus,
    /// One report per check and per breaker, checks first, each sorted by name.
    pub checks: Vec<CheckReport>,
}

impl Registry {
    /// An empty registry on the system clock, bounded to [`DEFAULT_MAX_BREAKERS`].
    pub fn new() -> Self {
        Self::with(SystemClock::shared(), DEFAULT_MAX_BREAKERS)
    }

    /// An empty registry reading `clock` (check timestamps) and keeping at most
    /// `max_breakers` breakers.
    pub fn with(clock: SharedClock, max_breakers: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                max_breakers: max_breakers.max(1),
                breakers: RwLock::new(HashMap::new()),
                caches: RwLock::new(HashMap::new()),
                tick: AtomicU64::new(0),
                checks: Checks::default(),
                hanging: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// The breaker named `name`, created from `config` if there is none (the config of an
    /// existing breaker is kept). The name is required.
    pub fn breaker(&self, name: &str, mut config: BreakerConfig) -> Result<CircuitBreaker, ConfigError> {
        if name.is_empty() {
            return Err(ConfigError::new(&config.style.field("name"), "\"\"", "a breaker in a registry needs a name"));
        }
        let tick = self.inner.tick.fetch_add(1, Relaxed);
        if let Some(n) = self.inner.breakers.read().get(name) {
            n.last_used.store(tick, Relaxed);
            return Ok(n.breaker.clone());
        }
        config.name = name.to_owned();
        let created = CircuitBreaker::new(config)?;
        let mut map = self.inner.breakers.write();
        if let Some(n) = map.get(name) {
            return Ok(n.breaker.clone()); // another thread created it first
        }
        if map.len() >= self.inner.max_breakers {
            evict_least_recent(&mut map, self.inner.max_breakers / 10 + 1);
        }
        map.insert(name.to_owned(), Named { breaker: created.clone(), last_used: AtomicU64::new(tick) });
        Ok(created)
    }

    /// The idempotency cache named `name`, created from `config` if there is none (the
    /// config of an existing cache is kept). Caches are few and long-lived: they are not
    /// evicted.
    ///
    /// Creating one also adds the health check `idempotency:<name>` (kind `"store"`): its
    /// store's [`Store::check`](crate::Store::check) (a `PING` for Redis), bounded by the
    /// default check timeout and reused for the default interval; a failure makes the
    /// service `down` or `degraded` as [`IdempotencyConfig::critical`] says.
    pub fn idempotency_cache(&self, name: &str, mut config: IdempotencyConfig) -> Result<IdempotencyCache, ConfigError> {
        if name.is_empty() {
            return Err(ConfigError::new("name", "\"\"", "an idempotency cache in a registry needs a name"));
        }
        if let Some(c) = self.inner.caches.read().get(name) {
            return Ok(c.clone());
        }
        config.set("name", crate::ConfigValue::Str(name.to_owned()))?;
        let created = IdempotencyCache::new(config)?;
        let mut map = self.inner.caches.write();
        if let Some(c) = map.get(name) {
            return Ok(c.clone()); // another thread created it first
        }
        let store = Arc::clone(created.store());
        let check = CheckConfig { critical: created.config().critical(), ..CheckConfig::default() };
        let f: CheckFn = Arc::new(move || {
            store.check().map_err(|e| match e {
                Error::StoreUnavailable(why) => format!("{} store unavailable: {why}", store.kind()),
                e => format!("{} store: {e}", store.kind()),
            })
        });
        self.inner.checks.add_kind(&store_check_name(name), KIND_STORE, check, Some(f));
        map.insert(name.to_owned(), created.clone());
        Ok(created)
    }

    /// The registered idempotency caches, sorted by name.
    pub fn idempotency_caches(&self) -> Vec<IdempotencyCache> {
        let mut v: Vec<_> = self.inner.caches.read().values().cloned().collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// The breaker named `name`, if the registry has it.
    pub fn get_breaker(&self, name: &str) -> Option<CircuitBreaker> {
        self.inner.breakers.read().get(name).map(|n| n.breaker.clone())
    }

    /// Forgets a breaker; false when there was none.
    pub fn remove_breaker(&self, name: &str) -> bool {
        self.inner.breakers.write().remove(name).is_some()
    }

    /// The registered breakers, sorted by name.
    pub fn breakers(&self) -> Vec<CircuitBreaker> {
        let mut v: Vec<_> = self.inner.breakers.read().values().map(|n| n.breaker.clone()).collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }

    /// Registers a health check run by the core (on a short-lived thread, bounded by its
    /// timeout). `f` returns `Err(reason)` when the service cannot do the work it checks.
    pub fn add_check(&self, name: &str, config: CheckConfig, f: CheckFn) -> Result<(), Error> {
        check_name(name)?;
        self.inner.checks.add(name, config, Some(f));
        Ok(())
    }

    /// Registers a check that the binding runs itself (JavaScript on the event loop):
    /// it takes the due runs from [`Registry::checks`] and reports them back.
    pub fn add_external_check(&self, name: &str, config: CheckConfig) -> Result<(), Error> {
        check_name(name)?;
        self.inner.checks.add(name, config, None);
        Ok(())
    }

    /// Removes a check; false when there was none.
    pub fn remove_check(&self, name: &str) -> bool {
        self.inner.checks.remove(name)
    }

    /// The check state, for bindings that run checks themselves.
    pub fn checks(&self) -> &Checks {
        &self.inner.checks
    }

    /// The registry's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// Runs the checks that are due (in parallel, each bounded by its timeout), then
    /// reports. Never waits longer than the longest due check's timeout.
    pub fn health(&self) -> Health {
        self.run_due_checks(|_| true);
        self.report()
    }

    /// Runs the stores' checks that are due (each bounded by its timeout), for bindings
    /// that run the user's checks themselves (on an event loop) and leave these to the core.
    pub fn run_store_checks(&self) {
        self.run_due_checks(|kind| kind == KIND_STORE);
    }

    /// The health report from the results at hand, running nothing.
    pub fn report(&self) -> Health {
        let now = self.inner.clock.now();
        let (mut status, mut checks) = self.inner.checks.report(now);
        for b in self.breakers() {
            let s = b.snapshot();
            let failing = matches!(s.state, State::Open | State::ForcedOpen);
            let part = if failing { HealthStatus::of_failure(s.critical) } else { HealthStatus::Ok };
            status = status.max(part);
            checks.push(CheckReport {
                name: s.name.clone(),
                kind: "breaker",
                ok: !failing,
                critical: s.critical,
                status: part,
                error: failing.then(|| format!("breaker is {}", s.state)),
                checked_at: None,
                last_ok_at: None,
                duration: None,
            });
        }
        Health { status, checks }
    }

    fn run_due_checks(&self, pick: impl Fn(&str) -> bool) {
        let now = self.inner.clock.now();
        let due = self.inner.checks.due_if(now, |kind, external| !external && pick(kind));
        let (tx, rx) = mpsc::channel();
        let mut waiting = Vec::new();
        for d in due {
            let Some(f) = d.f else { continue };
            if !self.inner.hanging.lock().insert(d.name.clone()) {
                let why = "the previous run has not returned; no new run was started".to_owned();
                self.inner.checks.finish(&d.name, d.run, Err(why), self.inner.clock.now());
                continue;
            }
            let (tx, inner, name, run) = (tx.clone(), Arc::clone(&self.inner), d.name.clone(), d.run);
            let spawned = std::thread::Builder::new().name(format!("seawall-check-{name}")).spawn(move || {
                let r = catch_unwind(AssertUnwindSafe(|| f())).unwrap_or_else(|_| Err("the check panicked".into()));
                inner.hanging.lock().remove(&name);
                let _ = tx.send((name, run, r));
            });
            match spawned {
                Ok(_) => waiting.push((d.name, d.run, Instant::now() + d.timeout)),
                Err(e) => {
                    self.inner.hanging.lock().remove(&d.name);
                    self.inner.checks.finish(&d.name, d.run, Err(format!("cannot start: {e}")), self.inner.clock.now());
                }
            }
        }
        while let Some(next) = waiting.iter().map(|w| w.2).min() {
            match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Ok((name, run, r)) => {
                    self.inner.checks.finish(&name, run, r, self.inner.clock.now());
                    waiting.retain(|w| w.1 != run || w.0 != name);
                }
                Err(_) => {
                    let now = Instant::now();
                    for (name, run, _) in waiting.iter().filter(|w| w.2 <= now) {
                        self.inner.checks.time_out(name, *run, self.inner.clock.now());
                    }
                    waiting.retain(|w| w.2 > now);
                }
            }
        }
    }

    /// Everything as JSON (the same shape in every language): breakers by name, checks and
    /// status. Durations in milliseconds.
    pub fn snapshot_json(&self) -> Value {
        let breakers: serde_json::Map<String, Value> =
            self.breakers().iter().map(|b| (b.name().to_owned(), snapshot_value(&b.snapshot()))).collect();
        let caches: serde_json::Map<String, Value> =
            self.idempotency_caches().iter().map(|c| (c.name().to_owned(), stats_value(&c.stats()))).collect();
        let health = self.report();
        json!({ "breakers": breakers, "idempotency": caches, "health": health_value(&health) })
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let snaps: Vec<Snapshot> = self.breakers().iter().map(CircuitBreaker::snapshot).collect();
        let caches: Vec<(String, IdempotencyStats)> =
            self.idempotency_caches().iter().map(|c| (c.name().to_owned(), c.stats())).collect();
        let health = self.report();
        crate::metrics::render(&snaps, &caches, &health)
    }
}

/// The name of the health check a registry adds for the idempotency cache `cache`.
pub fn store_check_name(cache: &str) -> String {
    format!("idempotency:{cache}")
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(ConfigError::new("name", "\"\"", "a health check needs a name").into());
    }
    Ok(())
}

fn evict_least_recent(map: &mut HashMap<String, Named>, n: usize) {
    let mut by_age: Vec<(u64, String)> = map.iter().map(|(k, v)| (v.last_used.load(Relaxed), k.clone())).collect();
    by_age.sort_unstable();
    for (_, k) in by_age.into_iter().take(n) {
        map.remove(&k);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A breaker snapshot as JSON (durations in ms; an infinite `retry_after_ms` is null).
pub fn snapshot_value(s: &Snapshot) -> Value {
    let transitions: Vec<Value> =
        s.transitions.iter().map(|(f, t, n)| json!({"from": f.as_str(), "to": t.as_str(), "count": n})).collect();
    json!({
        "name": s.name,
        "state": s.state.as_str(),
        "critical": s.critical,
        "successes": s.successes,
        "failures": s.failures,
        "slow": s.slow,
        "ignored": s.ignored,
        "rejected": s.rejected,
        "timeouts": s.timeouts,
        "fallbacks": s.fallbacks,
        "failure_rate": s.failure_rate,
        "slow_call_rate": s.slow_call_rate,
        "window_calls": s.window_calls,
        "consecutive_failures": s.consecutive_failures,
        "retry_after_ms": if s.retry_after == Duration::MAX { Value::Null } else { json!(ms(s.retry_after)) },
        "half_open_in_flight": s.half_open_in_flight,
        "transitions": transitions,
    })
}

/// An idempotency cache's counters as JSON.
pub fn stats_value(s: &IdempotencyStats) -> Value {
    json!({
        "executed": s.executed,
        "replayed": s.replayed,
        "in_progress": s.in_progress,
        "mismatched": s.mismatched,
        "waited": s.waited,
        "taken_over": s.taken_over,
        "completed": s.completed,
        "released": s.released,
        "abandoned": s.abandoned,
        "lease_lost": s.lease_lost,
        "store_errors": s.store_errors,
        "unprotected": s.unprotected,
    })
}

/// A health report as JSON: `{"status": ..., "checks": {name: {...}}}`.
pub fn health_value(h: &Health) -> Value {
    let checks: serde_json::Map<String, Value> = h
        .checks
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                json!({
                    "kind": c.kind,
                    "ok": c.ok,
                    "critical": c.critical,
                    "status": c.status.as_str(),
                    "error": c.error,
                    "checked_at_ms": c.checked_at.map(ms),
                    "last_ok_at_ms": c.last_ok_at.map(ms),
                    "duration_ms": c.duration.map(ms),
                }),
            )
        })
        .collect();
    json!({ "status": h.status.as_str(), "checks": checks })
}
