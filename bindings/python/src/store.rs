//! `RedisStore`: the core's Redis store (`seawall::store::redis`), for idempotency caches
//! shared by processes and hosts.
//!
//! Options go through the core's `RedisStoreConfig::set` in Python's conventions (snake
//! case, seconds), so a bad value gets the core's `ConfigError`. Every call that talks to
//! Redis (`ping`, and the cache's claim / complete / release / renew / peek) blocks the
//! calling thread for one round trip; it runs with the GIL released.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use seawall::store::redis::{RedisStore, RedisStoreConfig};
use seawall::Error;

use crate::clock::PyManualClock;
use crate::errors::to_py;
use crate::idempotency::{option_error, STYLE};
use crate::values::config_value;

/// An idempotency store on Redis (see docs/redis.md). Connects lazily: creating it never
/// fails because Redis is down; calls do, with `seawall.StoreUnavailable`, until it is up.
#[pyclass(name = "RedisStore", module = "seawall._native", frozen)]
pub struct PyRedisStore {
    pub(crate) inner: Arc<RedisStore>,
}

#[pymethods]
impl PyRedisStore {
    /// `RedisStore(url="redis://127.0.0.1:6379/0", *, prefix=..., connect_timeout=...,
    /// command_timeout=..., reconnect_delay=..., reconnect_max_delay=...,
    /// completion_retry_window=...)`, durations in seconds. `_test_clock` (a
    /// `ManualClock`) makes the scripts read "now" from it instead of the server's `TIME`:
    /// tests only.
    #[new]
    #[pyo3(signature = (url=None, *, _test_clock=None, **options))]
    fn new(
        py: Python<'_>,
        url: Option<&Bound<'_, PyAny>>,
        _test_clock: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let mut config = RedisStoreConfig::with_style(STYLE);
        let err = |e| to_py(py, Error::Config(e), None);
        if let Some(u) = url.filter(|u| !u.is_none()) {
            config.set("url", config_value(u)).map_err(err)?;
        }
        if let Some(options) = options {
            for (k, v) in options.iter() {
                let k: String = k.extract()?;
                if v.is_none() && seawall::store::redis::REDIS_OPTION_NAMES.contains(&k.as_str()) {
                    continue; // None: the default (an unknown name is still refused)
                }
                config.set(&k, config_value(&v)).map_err(err)?;
            }
        }
        if let Some(c) = _test_clock.filter(|c| !c.is_none()) {
            let Ok(m) = c.cast::<PyManualClock>() else {
                return Err(option_error(py, "_test_clock", c, "expected a seawall.ManualClock"));
            };
            config = config.with_clock(Arc::clone(&m.get().inner));
        }
        let store = RedisStore::new(config).map_err(err)?;
        Ok(Self { inner: Arc::new(store) })
    }

    /// `"redis"`.
    #[getter]
    fn kind(&self) -> &'static str {
        "redis"
    }

    /// The URL (without its password).
    #[getter]
    fn url(&self) -> &str {
        self.inner.url()
    }

    /// The prefix of every key and channel.
    #[getter]
    fn prefix(&self) -> &str {
        self.inner.prefix()
    }

    /// Connects if needed and sends `PING`; returns the round trip in seconds, or raises
    /// `StoreUnavailable`. For health checks and for checking the configuration at startup.
    fn ping(&self, py: Python<'_>) -> PyResult<f64> {
        let store = &self.inner;
        py.detach(|| store.ping()).map(|d| d.as_secs_f64()).map_err(|e| to_py(py, e, None))
    }

    /// The Redis names of `key`'s entry, token counter and pub/sub channel.
    fn key_names<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyDict>> {
        let n = self.inner.key_names(key);
        let d = PyDict::new(py);
        d.set_item("entry", n.entry)?;
        d.set_item("counter", n.counter)?;
        d.set_item("channel", n.channel)?;
        Ok(d)
    }

    /// Counts: round trips, script loads, connections, failures, background completions,
    /// notifications, and whether the connections are up.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        for (k, v) in [
            ("round_trips", s.round_trips),
            ("script_loads", s.script_loads),
            ("connects", s.connects),
            ("connect_failures", s.connect_failures),
            ("unavailable", s.unavailable),
            ("completion_retries", s.completion_retries),
            ("completions_recovered", s.completions_recovered),
            ("completions_lost", s.completions_lost),
            ("completions_pending", s.completions_pending),
            ("notifications", s.notifications),
            ("watched_keys", s.watched_keys),
        ] {
            d.set_item(k, v)?;
        }
        d.set_item("connected", s.connected)?;
        d.set_item("notifications_connected", s.notifications_connected)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!("RedisStore(url={:?}, prefix={:?})", self.inner.url(), self.inner.prefix())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRedisStore>()
}
