//! The idempotency cache: the core's `IdempotencyCache`, `MemoryStore`, leases, records and
//! waiters, for the Python layer (`seawall/_idempotency.py`).
//!
//! Two surfaces:
//!
//! - **`run`**: native for a plain function with the default serializer and a memory store
//!   (`idem_fast.rs`: the claim, the call, serialising, completing and decoding in one call);
//!   otherwise the Python layer's `_run_general`, over the calls below.
//! - **`run`'s path**: `_claim(key, fingerprint, block)` makes the one atomic claim and
//!   returns what the caller goes on with: a `Lease` (run the function), a `Record` (the
//!   stored result), or, for a duplicate that waits, either blocks for the outcome
//!   (`block=True`: in slices of 50 ms with the GIL released, checking signals between
//!   them, so Ctrl-C works) or returns the `Waiter` (`block=False`: asyncio registers a
//!   callback with `_on_done`). Mismatches, refusals and store failures are raised.
//!   `_finish(lease, bytes, content_type)` completes a run without building a `Record`.
//! - **the low-level surface** (`begin`, `complete`, `fail`, `release`, `renew`, `abandon`,
//!   `peek`, `stats`, `Waiter.poll/wait/cancel`): the core's protocol as it is, for the
//!   conformance runner, HTTP middlewares and tests.
//!
//! # The GIL
//!
//! With the memory store every call runs to completion without waiting for anything a
//! Python thread could hold (a shard mutex around a hash lookup), so it keeps the GIL.
//! With a remote store (Redis) every store call blocks for one round trip: those calls
//! release the GIL (`remote`). Waiting duplicates never hold it: `Waiter::wait` runs in
//! `py.detach`. Outcomes delivered through `Waiter::on_done` arrive on whatever thread
//! resolved the waiter (the completing owner, the clock's timer thread, a Redis store's
//! notifier thread) and take the GIL there to hand the outcome to Python.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::intern;
use seawall::idempotency::{Failed, Fingerprint, Output, WaitPoll};
use seawall::store::{MemoryStore, MemoryStoreConfig, Peek, SharedStore};
use seawall::{
    Acquired, Begin, ConfigError, DurationUnit, Error, IdempotencyCache, IdempotencyConfig, Lease, Naming, Record,
    Style, Waiter,
};

use crate::clock::{clock_arg, clock_object, seconds};
use crate::errors::to_py;
use crate::values::config_value;

/// How Python spells options: snake case, durations in seconds.
pub(crate) const STYLE: Style = Style { naming: Naming::Snake, unit: DurationUnit::Seconds };

/// How long a blocked duplicate waits before it checks for signals (Ctrl-C).
const WAIT_SLICE: Duration = Duration::from_millis(50);

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".to_owned())
}

fn invalid(py: Python<'_>, message: String) -> PyErr {
    to_py(py, Error::InvalidArgument(message), None)
}

/// A binding-level option refused with the same error shape as the core's.
pub(crate) fn option_error(py: Python<'_>, field: &str, value: &Bound<'_, PyAny>, reason: &str) -> PyErr {
    let shown = value.repr().map(|r| r.to_string()).unwrap_or_else(|_| "<?>".to_owned());
    let e = ConfigError { field: field.to_owned(), value: shown, reason: reason.to_owned(), type_mismatch: true };
    to_py(py, Error::Config(e), None)
}

/// A key argument: a `str` (its UTF-8 bytes are checked by the core).
pub(crate) fn with_key<R>(py: Python<'_>, key: &Bound<'_, PyAny>, f: impl FnOnce(&str) -> PyResult<R>) -> PyResult<R> {
    let Ok(s) = key.cast::<PyString>() else {
        return Err(invalid(py, format!("key = <{}>: an idempotency key is a str", type_name(key))));
    };
    let k = s.to_cow().map_err(|_| invalid(py, "key: an idempotency key must be valid UTF-8 (no lone surrogates)".into()))?;
    f(&k)
}

pub(crate) fn fingerprint_of(bytes: Option<&[u8]>) -> Fingerprint {
    match bytes {
        Some(b) => Fingerprint::of(b),
        None => Fingerprint::NONE,
    }
}

/// A result argument: `bytes` (as is) or `str` (its UTF-8 bytes).
fn result_bytes(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(s.to_cow()?.as_bytes().to_vec());
    }
    Err(invalid(py, format!("result = <{}>: expected bytes or str", type_name(v))))
}

fn metadata_arg(py: Python<'_>, v: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, String)>> {
    let Some(v) = v.filter(|v| !v.is_none()) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for item in v.try_iter()? {
        let item = item?;
        let pair: (String, String) = item.extract().map_err(|_| {
            invalid(py, format!("metadata: expected (name, value) pairs of str, got <{}>", type_name(&item)))
        })?;
        out.push(pair);
    }
    Ok(out)
}

fn output_arg(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    content_type: &str,
    metadata: Option<&Bound<'_, PyAny>>,
) -> PyResult<Output> {
    let mut out = Output::new(result_bytes(py, result)?, content_type);
    out.metadata = metadata_arg(py, metadata)?;
    Ok(out)
}

fn hex_or_none(f: &Fingerprint) -> Option<String> {
    (!f.is_none()).then(|| f.to_hex())
}

// ---------------------------------------------------------------------------------------
// MemoryStore
// ---------------------------------------------------------------------------------------

/// A bounded in-memory store that several caches can share (`store=`). Evicts expired
/// entries first, then the least recently used results; never a run in progress.
#[pyclass(name = "MemoryStore", module = "seawall._native", frozen)]
pub struct PyMemoryStore {
    pub(crate) inner: Arc<MemoryStore>,
    clock_obj: Option<Py<PyAny>>,
}

#[pymethods]
impl PyMemoryStore {
    #[new]
    #[pyo3(signature = (*, clock=None, **options))]
    fn new(py: Python<'_>, clock: Option<&Bound<'_, PyAny>>, options: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut config = MemoryStoreConfig::with_style(STYLE);
        if let Some(options) = options {
            for (k, v) in options.iter() {
                let k: String = k.extract()?;
                if v.is_none() && seawall::store::MEMORY_OPTION_NAMES.contains(&k.as_str()) {
                    continue; // None: the default (an unknown name is still refused)
                }
                config.set(&k, config_value(&v)).map_err(|e| to_py(py, Error::Config(e), None))?;
            }
        }
        let (clock, kept) = clock_arg(py, clock)?;
        let store = MemoryStore::new(config.with_clock(clock)).map_err(|e| to_py(py, Error::Config(e), None))?;
        Ok(Self { inner: Arc::new(store), clock_obj: kept })
    }

    /// `"memory"`.
    #[getter]
    fn kind(&self) -> &'static str {
        "memory"
    }

    /// The clock the store reads.
    #[getter]
    fn clock(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        clock_object(py, &self.clock_obj)
    }

    /// `{"entries", "bytes", "evictions", "max_entries", "max_bytes"}`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("entries", s.entries)?;
        d.set_item("bytes", s.bytes)?;
        d.set_item("evictions", s.evictions)?;
        d.set_item("max_entries", s.max_entries)?;
        d.set_item("max_bytes", s.max_bytes)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let s = self.inner.stats();
        format!("MemoryStore(entries={}, bytes={}, max_entries={}, max_bytes={})", s.entries, s.bytes, s.max_entries, s.max_bytes)
    }
}

/// A `store=` argument: a `MemoryStore` or a `RedisStore`.
pub(crate) fn store_arg(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<SharedStore> {
    if let Ok(m) = obj.cast::<PyMemoryStore>() {
        let s: SharedStore = m.get().inner.clone();
        return Ok(s);
    }
    if let Ok(r) = obj.cast::<crate::store::PyRedisStore>() {
        let s: SharedStore = r.get().inner.clone();
        return Ok(s);
    }
    Err(option_error(py, "store", obj, "expected a seawall.MemoryStore or a seawall.RedisStore"))
}

/// Builds a configuration from Python keywords, through the core's `set` (every refusal is
/// the core's `ConfigError`), with the clock and the store.
pub(crate) fn build_config(
    py: Python<'_>,
    clock: Option<&Bound<'_, PyAny>>,
    store: Option<&Bound<'_, PyAny>>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<IdempotencyConfig> {
    let mut config = IdempotencyConfig::with_style(STYLE);
    if let Some(options) = options {
        for (k, v) in options.iter() {
            let k: String = k.extract()?;
            if v.is_none() && IdempotencyConfig::knows(&k) {
                continue; // None: the default (an unknown name is still refused)
            }
            config.set(&k, config_value(&v)).map_err(|e| to_py(py, Error::Config(e), None))?;
        }
    }
    let (clock, _) = clock_arg(py, clock)?;
    config = config.with_clock(clock);
    if let Some(s) = store.filter(|s| !s.is_none()) {
        config = config.with_store(store_arg(py, s)?);
    }
    Ok(config)
}

// ---------------------------------------------------------------------------------------
// Leases, records, waiters
// ---------------------------------------------------------------------------------------

/// The right (and duty) to run the operation for a key: complete, fail, release or abandon it.
#[pyclass(name = "Lease", module = "seawall._native", frozen)]
pub struct PyLease {
    pub(crate) inner: Lease,
}

#[pymethods]
impl PyLease {
    /// The key.
    #[getter]
    fn key(&self) -> &str {
        self.inner.key()
    }

    /// The fencing token: greater than every earlier lease's on this key (0: unprotected).
    #[getter]
    fn token(&self) -> u64 {
        self.inner.token()
    }

    /// When the lease expires, in seconds on the cache's clock (moved by `renew`).
    #[getter]
    fn expires_at(&self) -> f64 {
        self.inner.expires_at().as_secs_f64()
    }

    /// True when this run took the key over from an owner that released it or whose lease
    /// expired.
    #[getter]
    fn took_over(&self) -> bool {
        self.inner.took_over()
    }

    /// False when the store failed and `on_store_error="run"` let the run go unprotected.
    #[getter]
    fn protected(&self) -> bool {
        self.inner.is_protected()
    }

    /// The request fingerprint (64 hex digits), or None for none.
    #[getter]
    fn fingerprint(&self) -> Option<String> {
        hex_or_none(self.inner.fingerprint())
    }

    fn __repr__(&self) -> String {
        format!(
            "Lease(key={:?}, token={}, took_over={}, protected={})",
            self.inner.key(),
            self.inner.token(),
            if self.inner.took_over() { "True" } else { "False" },
            if self.inner.is_protected() { "True" } else { "False" }
        )
    }
}

/// A completed result as stored: bytes, content type, metadata, the error flag, and the
/// fingerprint, token and times (ms on the store's clock) of the run that produced it.
#[pyclass(name = "Record", module = "seawall._native", frozen, eq)]
#[derive(PartialEq)]
pub struct PyRecord {
    pub(crate) inner: Record,
}

fn fingerprint_value(py: Python<'_>, v: Option<&Bound<'_, PyAny>>) -> PyResult<Fingerprint> {
    let Some(v) = v.filter(|v| !v.is_none()) else { return Ok(Fingerprint::NONE) };
    if let Ok(s) = v.cast::<PyString>() {
        return Fingerprint::from_hex(&s.to_cow()?).map_err(|e| to_py(py, e, None));
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        let bytes: [u8; 32] = b
            .as_bytes()
            .try_into()
            .map_err(|_| invalid(py, format!("fingerprint: expected 32 bytes, got {}", b.as_bytes().len())))?;
        return Ok(Fingerprint::from_bytes(bytes));
    }
    Err(invalid(py, format!("fingerprint = <{}>: expected 64 hex digits or 32 bytes", type_name(v))))
}

#[pymethods]
impl PyRecord {
    /// A record with these fields (what a store builds when a lease completes), e.g. to
    /// encode it. `fingerprint` is 64 hex digits, 32 bytes or None.
    #[new]
    #[pyo3(signature = (result, content_type="", *, metadata=None, error=false, fingerprint=None, token=0, created_ms=0, expires_ms=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        result: &Bound<'_, PyAny>,
        content_type: &str,
        metadata: Option<&Bound<'_, PyAny>>,
        error: bool,
        fingerprint: Option<&Bound<'_, PyAny>>,
        token: u64,
        created_ms: u64,
        expires_ms: u64,
    ) -> PyResult<Self> {
        let mut out = output_arg(py, result, content_type, metadata)?;
        out.check().map_err(|e| to_py(py, e, None))?;
        if error {
            out = out.into_error();
        }
        let fp = fingerprint_value(py, fingerprint)?;
        Ok(Self { inner: Record::new(out, fp, token, created_ms, expires_ms) })
    }

    /// Reads a record in seawall's record format (version 2), as written by any language.
    #[staticmethod]
    fn decode(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        Record::decode(data).map(|inner| Self { inner }).map_err(|e| to_py(py, e, None))
    }

    /// The record in seawall's record format (version 2; docs/idempotency.md).
    fn encode<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.encode())
    }

    /// The serialised result.
    #[getter]
    fn result<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.result())
    }

    /// How `result` is encoded (`"application/json"`, `"application/octet-stream"`, ...).
    #[getter]
    fn content_type(&self) -> &str {
        self.inner.content_type()
    }

    /// Ordered `(name, value)` pairs.
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.inner.metadata().iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// True when the result is an error the operation raised (`cache_errors`).
    #[getter]
    fn is_error(&self) -> bool {
        self.inner.is_error()
    }

    /// The fencing token of the lease that completed it.
    #[getter]
    fn token(&self) -> u64 {
        self.inner.token()
    }

    /// When it was stored, in ms on the store's clock.
    #[getter]
    fn created_ms(&self) -> u64 {
        self.inner.created_ms()
    }

    /// When it expires, in ms on the store's clock.
    #[getter]
    fn expires_ms(&self) -> u64 {
        self.inner.expires_ms()
    }

    /// The request fingerprint (64 hex digits), or None for none.
    #[getter]
    fn fingerprint(&self) -> Option<String> {
        hex_or_none(self.inner.fingerprint())
    }

    /// `(result, content_type, is_error)` in one call (the replay path).
    fn _parts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let r = &self.inner;
        PyTuple::new(
            py,
            [
                PyBytes::new(py, r.result()).into_any(),
                PyString::new(py, r.content_type()).into_any(),
                pyo3::types::PyBool::new(py, r.is_error()).to_owned().into_any(),
            ],
        )
    }

    fn __repr__(&self) -> String {
        let r = &self.inner;
        format!(
            "Record(content_type={:?}, result_bytes={}, is_error={}, token={}, created_ms={}, expires_ms={})",
            r.content_type(),
            r.result().len(),
            if r.is_error() { "True" } else { "False" },
            r.token(),
            r.created_ms(),
            r.expires_ms()
        )
    }
}

fn lease_obj(py: Python<'_>, lease: Lease) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, PyLease { inner: lease })?.into_any())
}

fn record_obj(py: Python<'_>, record: Record) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, PyRecord { inner: record })?.into_any())
}

fn acquired_obj(py: Python<'_>, a: Acquired) -> PyResult<Py<PyAny>> {
    match a {
        Acquired::Execute(l) => lease_obj(py, l),
        Acquired::Replay(r) => record_obj(py, r),
    }
}

/// Blocks for a waiter's outcome without the GIL, in slices, checking signals in between.
/// A signal's exception (KeyboardInterrupt) drops the waiter: the core then cancels it and
/// releases the key if it had been handed over.
pub(crate) fn block_on(py: Python<'_>, waiter: Waiter) -> PyResult<Acquired> {
    loop {
        let r = py.detach(|| waiter.wait(Some(WAIT_SLICE)));
        match r {
            Some(Ok(a)) => return Ok(a),
            Some(Err(e)) => return Err(to_py(py, e, None)),
            None => py.check_signals()?,
        }
    }
}

/// A duplicate waiting for the owner of its key.
#[pyclass(name = "Waiter", module = "seawall._native", frozen)]
pub struct PyWaiter {
    inner: Waiter,
}

/// Where a waiter stands: `state` is `"pending"` (with `lease_expires_in` and `timeout_in`,
/// seconds), `"execute"` (with `lease`), `"replay"` (with `record`) or `"taken"`.
#[pyclass(name = "WaitPoll", module = "seawall._native", frozen, get_all)]
pub struct PyWaitPoll {
    state: &'static str,
    lease: Option<Py<PyAny>>,
    record: Option<Py<PyAny>>,
    lease_expires_in: Option<f64>,
    timeout_in: Option<f64>,
}

#[pymethods]
impl PyWaitPoll {
    fn __repr__(&self) -> String {
        format!("WaitPoll(state={:?})", self.state)
    }
}

fn ready_poll(py: Python<'_>, a: Acquired) -> PyResult<PyWaitPoll> {
    Ok(match a {
        Acquired::Execute(l) => PyWaitPoll {
            state: "execute",
            lease: Some(lease_obj(py, l)?),
            record: None,
            lease_expires_in: None,
            timeout_in: None,
        },
        Acquired::Replay(r) => PyWaitPoll {
            state: "replay",
            lease: None,
            record: Some(record_obj(py, r)?),
            lease_expires_in: None,
            timeout_in: None,
        },
    })
}

#[pymethods]
impl PyWaiter {
    /// The key waited for.
    #[getter]
    fn key(&self) -> &str {
        self.inner.key()
    }

    /// True once resolved (whether or not the outcome was taken).
    #[getter]
    fn done(&self) -> bool {
        self.inner.is_done()
    }

    /// Applies what time made due, then reports without blocking (a `WaitPoll`); an outcome
    /// that is an error (timed out, mismatch, cancelled) is raised.
    fn poll(&self, py: Python<'_>) -> PyResult<PyWaitPoll> {
        match self.inner.poll() {
            WaitPoll::Pending { lease_expires_in, timeout_in } => Ok(PyWaitPoll {
                state: "pending",
                lease: None,
                record: None,
                lease_expires_in: Some(lease_expires_in.as_secs_f64()),
                timeout_in: Some(timeout_in.as_secs_f64()),
            }),
            WaitPoll::Ready(Ok(a)) => ready_poll(py, a),
            WaitPoll::Ready(Err(e)) => Err(to_py(py, e, None)),
            WaitPoll::Taken => Ok(PyWaitPoll { state: "taken", lease: None, record: None, lease_expires_in: None, timeout_in: None }),
        }
    }

    /// Blocks (without the GIL) until the outcome arrives and returns it as a `WaitPoll`
    /// (`"execute"` or `"replay"`), or raises it; returns None when `timeout` seconds (real
    /// time) pass first (the waiter goes on waiting).
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Option<PyWaitPoll>> {
        let limit = match timeout {
            Some(t) => Some(crate::clock::duration_any(py, "timeout", t)?),
            None => None,
        };
        let started = std::time::Instant::now();
        loop {
            let slice = match limit {
                Some(l) => {
                    let left = l.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    left.min(WAIT_SLICE)
                }
                None => WAIT_SLICE,
            };
            let w = &self.inner;
            match py.detach(|| w.wait(Some(slice))) {
                Some(Ok(a)) => return ready_poll(py, a).map(Some),
                Some(Err(e)) => return Err(to_py(py, e, None)),
                None => py.check_signals()?,
            }
        }
    }

    /// Stops waiting: the outcome becomes `SEAWALL_CANCELLED`. No effect once resolved.
    fn cancel(&self) {
        self.inner.cancel();
    }

    /// Calls `callback(kind, value)` once with the outcome, on the thread that resolves
    /// the waiter (or here, if it is resolved already), holding the GIL: `("execute",
    /// Lease)`, `("replay", Record)` or `("error", exception)`. The asyncio layer hops to
    /// its loop from there (`loop.call_soon_threadsafe`).
    fn _on_done(&self, py: Python<'_>, callback: &Bound<'_, PyAny>) -> PyResult<()> {
        if !callback.is_callable() {
            return Err(invalid(py, format!("callback must be callable, got {}", type_name(callback))));
        }
        let cb = callback.clone().unbind();
        // The core holds no lock while it calls this (and takes none that a thread holds
        // while it waits for the GIL), so registering with the GIL held is safe.
        self.inner.on_done(move |outcome| {
            // `try_attach`: on the clock's timer thread or a store's notifier thread the
            // interpreter may be shutting down; then the outcome is dropped (a lease handed
            // over is left to expire).
            Python::try_attach(|py| {
                let arg = match outcome {
                    Ok(Acquired::Execute(l)) => lease_obj(py, l).map(|v| ("execute", v)),
                    Ok(Acquired::Replay(r)) => record_obj(py, r).map(|v| ("replay", v)),
                    Err(e) => Ok(("error", to_py(py, e, None).into_value(py).into_any())),
                };
                let r = arg.and_then(|(kind, v)| cb.call1(py, (kind, v)).map(|_| ()));
                if let Err(e) = r {
                    e.write_unraisable(py, Some(cb.bind(py)));
                }
            });
        });
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("Waiter(key={:?}, done={})", self.inner.key(), if self.inner.is_done() { "True" } else { "False" })
    }
}

/// What `begin` found: `kind` is `"execute"` (`lease`), `"replay"` (`record`),
/// `"in_progress"` (`retry_after` seconds; `waiter`, None when the cache rejects
/// duplicates, then `error` is the `IdempotencyInProgress` to raise) or `"mismatch"`
/// (`completed`: the key holds a result, not a run; `error`: the `IdempotencyMismatch`).
#[pyclass(name = "Begin", module = "seawall._native", frozen, get_all)]
pub struct PyBegin {
    kind: &'static str,
    lease: Option<Py<PyAny>>,
    record: Option<Py<PyAny>>,
    waiter: Option<Py<PyWaiter>>,
    retry_after: Option<f64>,
    completed: Option<bool>,
    error: Option<Py<PyAny>>,
}

#[pymethods]
impl PyBegin {
    fn __repr__(&self) -> String {
        format!("Begin(kind={:?})", self.kind)
    }
}

/// Hands a core cache from a `Registry` to the `IdempotencyCache` constructor.
#[pyclass(name = "_CoreCache", module = "seawall._native", frozen)]
pub struct CoreCache {
    pub(crate) inner: IdempotencyCache,
}

// ---------------------------------------------------------------------------------------
// The cache
// ---------------------------------------------------------------------------------------

/// An idempotency cache (native part, with `run`'s native path: `idem_fast`).
/// `seawall.IdempotencyCache` subclasses it with `run`'s general path, `run_async`, the
/// decorator, serialisation and events.
#[pyclass(name = "IdempotencyCache", module = "seawall._native", subclass, frozen, weakref)]
pub struct PyCache {
    pub(crate) inner: IdempotencyCache,
    clock_obj: Py<PyAny>,
    store_obj: Option<Py<PyAny>>,
    remote: bool,
    /// `run`'s native path (`idem_fast`): bit 0 when it applies (the default serializer and
    /// a memory store), bit 1 when events are watched; set by the Python layer (`_set_fast`).
    fast: std::sync::atomic::AtomicU8,
}

impl PyCache {
    pub(crate) fn wrap(py: Python<'_>, inner: IdempotencyCache, clock: Option<&Bound<'_, PyAny>>, store: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let (_, kept) = clock_arg(py, clock)?;
        let remote = inner.store().kind() != "memory";
        Ok(Self {
            inner,
            clock_obj: clock_object(py, &kept)?,
            store_obj: store.filter(|s| !s.is_none()).map(|s| s.clone().unbind()),
            remote,
            fast: std::sync::atomic::AtomicU8::new(0),
        })
    }

    /// (the native `run` applies, events are watched).
    pub(crate) fn fast_path(&self) -> (bool, bool) {
        let f = self.fast.load(std::sync::atomic::Ordering::Relaxed);
        (f & 1 != 0, f & 2 != 0)
    }

    pub(crate) fn begin_core(&self, py: Python<'_>, key: &str, fp: &Fingerprint) -> Result<Begin, Error> {
        if self.remote {
            py.detach(|| self.inner.begin(key, fp))
        } else {
            self.inner.begin(key, fp)
        }
    }

    /// Runs a store call, without the GIL when the store is remote.
    fn store_call<T: Send>(&self, py: Python<'_>, f: impl FnOnce() -> Result<T, Error> + Send) -> PyResult<T> {
        let r = if self.remote { py.detach(f) } else { f() };
        r.map_err(|e| to_py(py, e, None))
    }
}

fn lease_of<'a>(lease: &'a Bound<'_, PyAny>) -> PyResult<&'a Lease> {
    let l = lease.cast::<PyLease>().map_err(|_| {
        to_py(lease.py(), Error::InvalidArgument(format!("lease = <{}>: expected a seawall Lease", type_name(lease))), None)
    })?;
    Ok(&l.get().inner)
}

#[pymethods]
impl PyCache {
    #[new]
    #[pyo3(signature = (*, clock=None, store=None, serializer=None, _core=None, **options))]
    fn new(
        py: Python<'_>,
        clock: Option<&Bound<'_, PyAny>>,
        store: Option<&Bound<'_, PyAny>>,
        serializer: Option<&Bound<'_, PyAny>>,
        _core: Option<&Bound<'_, CoreCache>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let _ = serializer; // the Python layer's
        if let Some(core) = _core {
            return Self::wrap(py, core.get().inner.clone(), clock, store);
        }
        let config = build_config(py, clock, store, options)?;
        let inner = IdempotencyCache::new(config).map_err(|e| to_py(py, Error::Config(e), None))?;
        Self::wrap(py, inner, clock, store)
    }

    /// The cache's name (the `name` option).
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The clock the cache reads.
    #[getter]
    fn clock(&self, py: Python<'_>) -> Py<PyAny> {
        self.clock_obj.clone_ref(py)
    }

    /// The store passed in, or None for the cache's own memory store.
    #[getter]
    fn store(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.store_obj.as_ref().map(|s| s.clone_ref(py))
    }

    /// True when the store does I/O (Redis): store calls release the GIL, and
    /// `run_async` makes them in a worker thread.
    #[getter]
    fn remote(&self) -> bool {
        self.remote
    }

    /// The `cache_errors` option.
    #[getter]
    fn cache_errors(&self) -> bool {
        self.inner.config().cache_errors
    }

    /// The configuration in force (defaults filled in; durations in seconds).
    #[getter]
    fn options<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.inner.config();
        let d = PyDict::new(py);
        d.set_item("name", &c.name)?;
        d.set_item("ttl", c.ttl.as_secs_f64())?;
        d.set_item("lease", c.lease.as_secs_f64())?;
        d.set_item("on_duplicate", c.on_duplicate.as_str())?;
        d.set_item("wait_timeout", c.effective_wait_timeout().as_secs_f64())?;
        d.set_item("cache_errors", c.cache_errors)?;
        d.set_item("max_result_bytes", c.max_result_bytes)?;
        d.set_item("on_store_error", c.on_store_error.as_str())?;
        d.set_item("critical", c.critical())?;
        d.set_item("max_entries", c.memory.max_entries)?;
        d.set_item("max_bytes", c.memory.max_bytes)?;
        d.set_item("store", self.inner.store().kind())?;
        Ok(d)
    }

    /// Duplicates waiting now.
    #[getter]
    fn waiting(&self) -> usize {
        self.inner.waiting()
    }

    /// Runs ``fn(*args, **kwargs)`` once for ``key`` and returns its result as stored
    /// (deserialised: every caller gets the same). A duplicate while it runs waits for that
    /// result (``on_duplicate="wait"``, up to ``wait_timeout``; the GIL released) or gets
    /// :class:`seawall.IdempotencyInProgress`; a duplicate afterwards gets the stored
    /// result without running ``fn``; the same key with another ``fingerprint`` payload
    /// raises :class:`seawall.IdempotencyMismatch`.
    ///
    /// ``fingerprint`` is the request payload (a str, bytes, or anything JSON-able, hashed
    /// as its canonical JSON). When ``fn`` is a coroutine function, ``run`` returns the
    /// awaitable of :meth:`run_async`. In async code, use ``await cache.run_async(...)``
    /// for sync functions too: a sync ``run`` that waits would block the event loop.
    #[pyo3(signature = (key, func, /, *args, fingerprint=None, **kwargs))]
    #[pyo3(text_signature = "($self, key, fn, /, *args, fingerprint=None, **kwargs)")]
    fn run<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        func: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        fingerprint: Option<&Bound<'py, PyAny>>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::idem_fast::run(slf, key, func, args, fingerprint, kwargs)
    }

    /// Whether `run` may take its native path (the default serializer, a memory store) and
    /// whether its events are watched (listeners, a registry): set by the Python layer.
    fn _set_fast(&self, enabled: bool, watched: bool) {
        let f = u8::from(enabled && !self.remote) | (u8::from(watched) << 1);
        self.fast.store(f, std::sync::atomic::Ordering::Relaxed);
    }

    /// `run`'s claim: a `Lease` (run), a `Record` (replay), or for a duplicate that waits,
    /// the outcome of waiting (`block=True`, the GIL released) or the `Waiter`
    /// (`block=False`). Raises mismatches, refusals, bad keys and store failures.
    #[pyo3(signature = (key, fingerprint, block))]
    fn _claim(&self, py: Python<'_>, key: &Bound<'_, PyAny>, fingerprint: Option<&[u8]>, block: bool) -> PyResult<Py<PyAny>> {
        let fp = fingerprint_of(fingerprint);
        let begun = with_key(py, key, |k| Ok(self.begin_core(py, k, &fp)))?;
        match begun {
            Ok(Begin::Execute(l)) => lease_obj(py, l),
            Ok(Begin::Replay(r)) => record_obj(py, r),
            Ok(Begin::Mismatch(m)) => Err(to_py(py, m.to_error(), None)),
            Ok(Begin::InProgress(ip)) => match ip.waiter {
                None => Err(to_py(py, ip.to_error(), None)),
                Some(w) if block => acquired_obj(py, block_on(py, w)?),
                Some(w) => Ok(Py::new(py, PyWaiter { inner: w })?.into_any()),
            },
            Err(e) => Err(to_py(py, e, None)),
        }
    }

    /// Completes `run`'s lease with the serialised result (no `Record` is built).
    fn _finish(&self, py: Python<'_>, lease: &Bound<'_, PyAny>, result: &Bound<'_, PyAny>, content_type: &str) -> PyResult<()> {
        let lease = lease_of(lease)?;
        let out = Output::new(result_bytes(py, result)?, content_type);
        self.store_call(py, || self.inner.complete(lease, out)).map(|_| ())
    }

    /// Claims `key` and says what was found (a `Begin`), raising only bad keys and store
    /// failures. `fingerprint` is the payload's bytes (None: no fingerprint).
    #[pyo3(signature = (key, fingerprint=None))]
    fn _begin(&self, py: Python<'_>, key: &Bound<'_, PyAny>, fingerprint: Option<&[u8]>) -> PyResult<PyBegin> {
        let fp = fingerprint_of(fingerprint);
        let begun = with_key(py, key, |k| Ok(self.begin_core(py, k, &fp)))?;
        let mut b = PyBegin { kind: "", lease: None, record: None, waiter: None, retry_after: None, completed: None, error: None };
        match begun.map_err(|e| to_py(py, e, None))? {
            Begin::Execute(l) => {
                b.kind = "execute";
                b.lease = Some(lease_obj(py, l)?);
            }
            Begin::Replay(r) => {
                b.kind = "replay";
                b.record = Some(record_obj(py, r)?);
            }
            Begin::InProgress(ip) => {
                b.kind = "in_progress";
                b.retry_after = Some(seconds(ip.retry_after));
                match ip.waiter {
                    Some(w) => b.waiter = Some(Py::new(py, PyWaiter { inner: w })?),
                    None => b.error = Some(to_py(py, ip.to_error(), None).into_value(py).into_any()),
                }
            }
            Begin::Mismatch(m) => {
                b.kind = "mismatch";
                b.completed = Some(m.completed);
                b.error = Some(to_py(py, m.to_error(), None).into_value(py).into_any());
            }
        }
        Ok(b)
    }

    /// Stores `result` (bytes, or str as UTF-8) for the lease's key and returns the record
    /// every duplicate gets. `LeaseLost` when the lease no longer holds the key;
    /// `InvalidArgument` (key released) when it is over `max_result_bytes`.
    #[pyo3(signature = (lease, result, content_type="", metadata=None))]
    fn complete(
        &self,
        py: Python<'_>,
        lease: &Bound<'_, PyAny>,
        result: &Bound<'_, PyAny>,
        content_type: &str,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyRecord> {
        let lease = lease_of(lease)?;
        let out = output_arg(py, result, content_type, metadata)?;
        self.store_call(py, || self.inner.complete(lease, out)).map(|inner| PyRecord { inner })
    }

    /// The operation raised: with `cache_errors` and a serialised error (`result`), stores
    /// it and returns the error record; otherwise releases the key and returns None.
    #[pyo3(signature = (lease, result=None, content_type="", metadata=None))]
    fn fail(
        &self,
        py: Python<'_>,
        lease: &Bound<'_, PyAny>,
        result: Option<&Bound<'_, PyAny>>,
        content_type: &str,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<PyRecord>> {
        let lease = lease_of(lease)?;
        let out = match result.filter(|r| !r.is_none()) {
            Some(r) => Some(output_arg(py, r, content_type, metadata)?),
            None => None,
        };
        match self.store_call(py, || self.inner.fail(lease, out))? {
            Failed::Released => Ok(None),
            Failed::Stored(inner) => Ok(Some(PyRecord { inner })),
        }
    }

    /// Deletes the claim so a retry runs again. `LeaseLost` when it no longer holds the key.
    fn release(&self, py: Python<'_>, lease: &Bound<'_, PyAny>) -> PyResult<()> {
        let lease = lease_of(lease)?;
        self.store_call(py, || self.inner.release(lease))
    }

    /// Outcome unknown: keeps the claim until its lease expires (duplicates wait; one of
    /// them runs afterwards). Touches nothing in the store.
    fn abandon(&self, lease: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.abandon(lease_of(lease)?);
        Ok(())
    }

    /// Extends the claim to a full lease from now; returns the seconds until it expires.
    fn renew(&self, py: Python<'_>, lease: &Bound<'_, PyAny>) -> PyResult<f64> {
        let lease = lease_of(lease)?;
        self.store_call(py, || self.inner.renew(lease)).map(|d| d.as_secs_f64())
    }

    /// Seconds until the lease expires (0 once it has).
    fn remaining(&self, lease: &Bound<'_, PyAny>) -> PyResult<f64> {
        Ok(self.inner.remaining(lease_of(lease)?).as_secs_f64())
    }

    /// What `key` holds, changing nothing: `{"state": "absent"}`, `{"state":
    /// "in_progress", "token", "fingerprint", "expires_in"}` or `{"state": "completed",
    /// "record"}`.
    fn peek<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let peeked = with_key(py, key, |k| self.store_call(py, || self.inner.peek(k)))?;
        let d = PyDict::new(py);
        d.set_item(intern!(py, "state"), peeked.state())?;
        match peeked {
            Peek::Absent => {}
            Peek::InProgress { token, fingerprint, expires_in } => {
                d.set_item("token", token)?;
                d.set_item("fingerprint", hex_or_none(&fingerprint))?;
                d.set_item("expires_in", expires_in.as_secs_f64())?;
            }
            Peek::Completed(r) => d.set_item("record", Py::new(py, PyRecord { inner: r })?)?,
        }
        Ok(d)
    }

    /// Cumulative counts (what `seawall_idempotency_requests_total` and
    /// `seawall_idempotency_events_total` report).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        for (k, v) in [
            ("executed", s.executed),
            ("replayed", s.replayed),
            ("in_progress", s.in_progress),
            ("mismatched", s.mismatched),
            ("waited", s.waited),
            ("taken_over", s.taken_over),
            ("completed", s.completed),
            ("released", s.released),
            ("abandoned", s.abandoned),
            ("lease_lost", s.lease_lost),
            ("store_errors", s.store_errors),
            ("unprotected", s.unprotected),
        ] {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.get();
        let cls = slf.get_type().name()?;
        Ok(format!("<{} name={:?} store={:?}>", cls, this.inner.name(), this.inner.store().kind()))
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.clock_obj)?;
        visit.call(&self.store_obj)?;
        Ok(())
    }
}

/// The SHA-256 of `payload` (bytes) as 64 hex digits: the core's fingerprint.
#[pyfunction]
fn _fingerprint_hex(payload: &[u8]) -> String {
    Fingerprint::of(payload).to_hex()
}

/// Reports `exc` through `sys.unraisablehook` (a listener that raised), naming `obj`.
#[pyfunction]
fn _report_unraisable(py: Python<'_>, exc: &Bound<'_, PyAny>, obj: Option<&Bound<'_, PyAny>>) {
    PyErr::from_value(exc.clone()).write_unraisable(py, obj);
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyMemoryStore>()?;
    m.add_class::<PyLease>()?;
    m.add_class::<PyRecord>()?;
    m.add_class::<PyWaiter>()?;
    m.add_class::<PyWaitPoll>()?;
    m.add_class::<PyBegin>()?;
    m.add_class::<PyCache>()?;
    m.add_class::<CoreCache>()?;
    m.add_function(pyo3::wrap_pyfunction!(_fingerprint_hex, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(_report_unraisable, m)?)?;
    Ok(())
}
