//! The registry: named breakers, idempotency caches and health checks, with one snapshot,
//! one Prometheus exposition and one health report (the core's `Registry`).
//!
//! Breakers and caches are the core's: `_breaker(name, clock, options)` gets or creates one
//! in the core registry and hands back a handle that `seawall.CircuitBreaker(_core=...)`
//! wraps (the Python layer keeps one Python object per core breaker, by identity).
//!
//! Health checks are Python callables registered as core checks (`Registry::add_check`):
//! the closure takes the GIL and calls `seawall._registry._run_check(fn)`, which calls the
//! function and, when it returns an awaitable (an async check), runs it to completion on a
//! private event loop in that thread. `health()` is the core's: it runs the due checks on
//! the core's short-lived check threads, each bounded by its timeout, and waits for them
//! with the GIL released (the checks need it). `health_async()` (Python) takes the due runs
//! from the core (`_due`), runs them on the caller's event loop (`asyncio.wait_for`; sync
//! checks in a worker thread) and reports each back (`_finish`, `_time_out`): the interval
//! cache, the timeout bookkeeping and the report stay the core's `Checks`.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};
use seawall::health::{CheckConfig, CheckFn};
use seawall::registry::{health_value, DEFAULT_MAX_BREAKERS};
use seawall::{BreakerConfig, CircuitBreaker, Error, Registry};

use crate::clock::{clock_arg, clock_object};
use crate::errors::to_py;
use crate::idempotency::{build_config, CoreCache, STYLE};
use crate::values::config_value;

/// Hands a core breaker from a `Registry` to the `CircuitBreaker` constructor (`_core=`).
#[pyclass(name = "_CoreBreaker", module = "seawall._native", frozen)]
pub struct CoreBreaker {
    pub(crate) inner: CircuitBreaker,
}

fn identity(b: &CircuitBreaker) -> usize {
    // The config lives inside the breaker's shared state: one address per core breaker.
    b.config() as *const BreakerConfig as usize
}

fn config_err(py: Python<'_>) -> impl Fn(seawall::ConfigError) -> PyErr + '_ {
    move |e| to_py(py, Error::Config(e), None)
}

static JSON_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static RUN_CHECK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn json_to_py<'py>(py: Python<'py>, v: &impl std::fmt::Display) -> PyResult<Bound<'py, PyAny>> {
    let loads = JSON_LOADS.import(py, "json", "loads")?;
    loads.call1((v.to_string(),))
}

/// Runs one check function: Ok unless it raised, returned False, or its awaitable failed.
fn run_check(py: Python<'_>, f: &Py<PyAny>) -> Result<(), String> {
    let runner = RUN_CHECK.import(py, "seawall._registry", "_run_check").map_err(|e| e.to_string())?;
    match runner.call1((f,)) {
        Ok(v) if v.is_none() => Ok(()),
        Ok(v) => Err(v.str().map(|s| s.to_string()).unwrap_or_else(|_| "the check failed".into())),
        Err(e) => Err(e.to_string()),
    }
}

/// The native registry behind `seawall.Registry`.
#[pyclass(name = "Registry", module = "seawall._native", subclass, frozen, weakref)]
pub struct PyRegistry {
    inner: Registry,
    clock_obj: Py<PyAny>,
}

#[pymethods]
impl PyRegistry {
    /// `max_breakers` is read by the core's count rule (a whole number >= 1; default 10 000).
    #[new]
    #[pyo3(signature = (*, clock=None, max_breakers=None))]
    fn new(py: Python<'_>, clock: Option<&Bound<'_, PyAny>>, max_breakers: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let (shared, kept) = clock_arg(py, clock)?;
        let max = match max_breakers.filter(|v| !v.is_none()) {
            Some(v) => STYLE.count("max_breakers", &config_value(v), u32::MAX).map_err(config_err(py))? as usize,
            None => DEFAULT_MAX_BREAKERS,
        };
        Ok(Self { inner: Registry::with(shared, max), clock_obj: clock_object(py, &kept)? })
    }

    /// The clock the registry reads (check times; the default clock of what it creates).
    #[getter]
    fn clock(&self, py: Python<'_>) -> Py<PyAny> {
        self.clock_obj.clone_ref(py)
    }

    /// Gets (touching it) or creates the core breaker `name` with `options` (core option
    /// names; used only when creating) on `clock`. Returns `(handle, identity, created)`.
    #[pyo3(signature = (name, clock=None, options=None))]
    fn _breaker(
        &self,
        py: Python<'_>,
        name: &str,
        clock: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<(CoreBreaker, usize, bool)> {
        if self.inner.get_breaker(name).is_some() {
            let b = self.inner.breaker(name, BreakerConfig::with_style(STYLE)).map_err(config_err(py))?;
            let id = identity(&b);
            return Ok((CoreBreaker { inner: b }, id, false));
        }
        let mut config = BreakerConfig::with_style(STYLE);
        if let Some(options) = options {
            for (k, v) in options.iter() {
                let k: String = k.extract()?;
                config.set(&k, config_value(&v)).map_err(config_err(py))?;
            }
        }
        let (clock, _) = clock_arg(py, clock)?;
        let b = self.inner.breaker(name, config.with_clock(clock)).map_err(config_err(py))?;
        let id = identity(&b);
        Ok((CoreBreaker { inner: b }, id, true))
    }

    /// The identity of the breaker `name` (touching it: recency for the bound), or None.
    fn _touch(&self, py: Python<'_>, name: &str) -> PyResult<Option<usize>> {
        if self.inner.get_breaker(name).is_none() {
            return Ok(None);
        }
        let b = self.inner.breaker(name, BreakerConfig::with_style(STYLE)).map_err(config_err(py))?;
        Ok(Some(identity(&b)))
    }

    /// Forgets a breaker (a caller holding it keeps using it); False when there was none.
    fn remove_breaker(&self, name: &str) -> bool {
        self.inner.remove_breaker(name)
    }

    /// Names of the breakers the registry holds, sorted.
    fn breaker_names(&self) -> Vec<String> {
        self.inner.breakers().iter().map(|b| b.name().to_owned()).collect()
    }

    /// Gets or creates the core idempotency cache `name` (options used only when creating).
    #[pyo3(signature = (name, clock=None, store=None, options=None))]
    fn _idempotency_cache(
        &self,
        py: Python<'_>,
        name: &str,
        clock: Option<&Bound<'_, PyAny>>,
        store: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<CoreCache> {
        let config = build_config(py, clock, store, options)?;
        let cache = self.inner.idempotency_cache(name, config).map_err(config_err(py))?;
        Ok(CoreCache { inner: cache })
    }

    /// Registers (or replaces) the check `name`: `fn` with `timeout`, `interval` (seconds)
    /// and `critical`, read by the core's `CheckConfig::set`.
    #[pyo3(signature = (name, f, options=None))]
    fn _add_check(&self, py: Python<'_>, name: &str, f: &Bound<'_, PyAny>, options: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        if !f.is_callable() {
            let what = f.get_type().name().map(|n| n.to_string()).unwrap_or_default();
            return Err(to_py(py, Error::InvalidArgument(format!("add_check(name, fn) needs a callable, got {what}")), None));
        }
        let mut config = CheckConfig::default();
        if let Some(options) = options {
            for (k, v) in options.iter() {
                if v.is_none() {
                    continue;
                }
                let k: String = k.extract()?;
                config.set(STYLE, &k, config_value(&v)).map_err(config_err(py))?;
            }
        }
        let callable = f.clone().unbind();
        let run: CheckFn = Arc::new(move || Python::attach(|py| run_check(py, &callable)));
        self.inner.add_check(name, config, run).map_err(|e| to_py(py, e, None))
    }

    /// Removes a check; False when there was none.
    fn remove_check(&self, name: &str) -> bool {
        self.inner.remove_check(name)
    }

    /// Runs the due checks (on the core's check threads, each bounded by its timeout; the
    /// GIL is released while waiting) and returns the report: `{"status", "checks"}`.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let registry = &self.inner;
        let h = py.detach(|| registry.health());
        json_to_py(py, &health_value(&h))
    }

    /// Runs the due checks of the idempotency caches' stores (a Redis `PING` each, bounded
    /// by its timeout) with the GIL released; `health_async` runs it in a worker thread.
    fn _run_store_checks(&self, py: Python<'_>) {
        let registry = &self.inner;
        py.detach(|| registry.run_store_checks());
    }

    /// The health report from the results at hand, running nothing.
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &health_value(&self.inner.report()))
    }

    /// The runs of the user's checks that are due now, marked running:
    /// `[(name, run, timeout_seconds)]`. (The stores' checks are the core's:
    /// `_run_store_checks`.)
    fn _due(&self) -> Vec<(String, u64, f64)> {
        let now = self.inner.clock().now();
        self.inner.checks().due_of_kind(now, seawall::health::KIND_CHECK).into_iter().map(|d| (d.name, d.run, d.timeout.as_secs_f64())).collect()
    }

    /// Records the result of a run (`error` None: it passed).
    #[pyo3(signature = (name, run, error=None))]
    fn _finish(&self, name: &str, run: u64, error: Option<String>) {
        let now = self.inner.clock().now();
        let result = match error {
            None => Ok(()),
            Some(e) => Err(e),
        };
        self.inner.checks().finish(name, run, result, now);
    }

    /// Fails a run for outliving its timeout.
    fn _time_out(&self, name: &str, run: u64) {
        let now = self.inner.clock().now();
        self.inner.checks().time_out(name, run, now);
    }

    /// Everything as JSON-able data: `{"breakers", "idempotency", "health"}` (the core's
    /// shape, the same in every language; durations in ms).
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.inner.snapshot_json())
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    fn prometheus<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        PyString::new(py, &self.inner.prometheus())
    }

    fn __repr__(&self) -> String {
        format!("<Registry breakers={} caches={}>", self.inner.breakers().len(), self.inner.idempotency_caches().len())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CoreBreaker>()?;
    m.add_class::<PyRegistry>()?;
    Ok(())
}
