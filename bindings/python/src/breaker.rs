//! `CircuitBreaker`, `Guarded`, `Permit` and `StateChange`.
//!
//! The hot path is [`PyBreaker::_call`]: `@breaker` on a sync function returns a native
//! [`PyGuarded`] whose `__call__` goes straight to it, so a guarded call is one FFI call
//! that acquires, calls, classifies the exception (if any) and records. The clock is read
//! only when the breaker needs durations.
//!
//! With the `timeout` option, every guarded call runs in a time-limit scope opened *inside*
//! the breaker (after the permit is acquired): a call that runs out raises
//! `seawall.Timeout`, and the permit records it as a timeout (a failure also counted in
//! `timeouts`), whatever `failure_on` says.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pyo3::exceptions::{PyException, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::pyclass::{PyTraverseError, PyVisit};
use pyo3::sync::PyOnceLock;
use pyo3::exceptions::PyBaseException;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use pyo3::{ffi, intern, PyTypeInfo};
use seawall::{
    BreakerConfig, CircuitBreaker, ConfigError, DurationUnit, Error, ListenerId, Naming, Outcome, Rejected,
    SharedClock, SharedPermit, State, StateChange, Style,
};

use crate::clock::{duration_any, seconds, shared_clock, system_clock, PySystemClock};
use crate::errors::to_py;
use crate::scope::{self, PyTimeLimit, Scope};
use crate::values::config_value;

/// How Python spells options: snake case, durations in seconds.
const STYLE: Style = Style { naming: Naming::Snake, unit: DurationUnit::Seconds };

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while one of these is held; recover the data if it ever did.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One registered callback. The core's listener holds the slot; the breaker holds it too
/// so the garbage collector can see (and clear) the callback.
type Slot = Arc<Mutex<Option<Py<PyAny>>>>;

fn state_str<'py>(py: Python<'py>, s: State) -> &'py Bound<'py, PyString> {
    match s {
        State::Closed => intern!(py, "closed"),
        State::Open => intern!(py, "open"),
        State::HalfOpen => intern!(py, "half_open"),
        State::ForcedOpen => intern!(py, "forced_open"),
        State::Disabled => intern!(py, "disabled"),
    }
}

/// A binding-level option (not a core one) refused with the same error shape as the core's.
fn config_error(py: Python<'_>, field: &str, value: &Bound<'_, PyAny>, reason: &str) -> PyErr {
    let value = value.repr().map(|r| r.to_string()).unwrap_or_else(|_| "<?>".to_owned());
    let e = ConfigError { field: field.to_owned(), value, reason: reason.to_owned(), type_mismatch: true };
    to_py(py, Error::Config(e), None)
}

/// An exception type, or a tuple/list of them, as something `PyErr_GivenExceptionMatches`
/// takes (a type or a tuple).
fn exception_types(py: Python<'_>, field: &str, obj: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let is_exc_type = |o: &Bound<'_, PyAny>| {
        o.cast::<PyType>()
            .is_ok_and(|t| t.is_subclass(&pyo3::exceptions::PyBaseException::type_object(py)).unwrap_or(false))
    };
    let reason = "expected an exception type or a tuple of exception types";
    if is_exc_type(obj) {
        return Ok(obj.clone().unbind());
    }
    if obj.cast::<PyTuple>().is_ok() || obj.cast::<pyo3::types::PyList>().is_ok() {
        let items: Vec<Bound<'_, PyAny>> = obj.try_iter()?.collect::<PyResult<_>>()?;
        if items.iter().all(is_exc_type) {
            return Ok(PyTuple::new(py, items)?.into_any().unbind());
        }
    }
    Err(config_error(py, field, obj, reason))
}

fn matches(ty: &Bound<'_, PyAny>, target: &Bound<'_, PyAny>) -> bool {
    // SAFETY: both are valid objects; the call accepts a type or an instance, and a type or
    // a tuple of types.
    unsafe { ffi::PyErr_GivenExceptionMatches(ty.as_ptr(), target.as_ptr()) != 0 }
}

static COROUTINE_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static GUARD_AWAITABLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `with breaker:` keeps the permit of each open block in a context variable (so threads
/// and asyncio tasks each see their own), as a linked list of [`ActiveCall`] cells,
/// innermost first. The variable's bound `get` and `set` are cached.
static ACTIVE_GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static ACTIVE_SET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn active_methods(py: Python<'_>) -> PyResult<(&Bound<'_, PyAny>, &Bound<'_, PyAny>)> {
    let make = |name: &str| -> PyResult<Py<PyAny>> {
        static VAR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let var = VAR.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            let kw = PyDict::new(py);
            kw.set_item("default", py.None())?;
            Ok(py.import("contextvars")?.getattr("ContextVar")?.call(("seawall_active_permits",), Some(&kw))?.unbind())
        })?;
        Ok(var.bind(py).getattr(name)?.unbind())
    };
    let get = ACTIVE_GET.get_or_try_init(py, || make("get"))?;
    let set = ACTIVE_SET.get_or_try_init(py, || make("set"))?;
    Ok((get.bind(py), set.bind(py)))
}

/// One open `with breaker:` block: its breaker, permit and start, its time-limit scope
/// (with the `timeout` option; `asynchronous` when the asyncio layer armed it) and the
/// enclosing block.
#[pyclass(name = "_ActiveCall", module = "seawall._native", frozen)]
pub struct ActiveCall {
    breaker: Py<PyAny>,
    permit: Py<PyPermit>,
    start: Option<Duration>,
    scope: Option<Py<Scope>>,
    asynchronous: bool,
    parent: Option<Py<ActiveCall>>,
}

/// A circuit breaker (native part). `seawall.CircuitBreaker` subclasses it with the
/// decorator and context-manager protocols.
#[pyclass(name = "CircuitBreaker", module = "seawall._native", subclass, frozen, weakref)]
pub struct PyBreaker {
    pub(crate) inner: CircuitBreaker,
    clock: SharedClock,
    clock_obj: Py<PyAny>,
    failure_on: Py<PyAny>,
    ignore: Option<Py<PyAny>>,
    fallback: Mutex<Option<Py<PyAny>>>,
    listeners: Mutex<HashMap<u64, Slot>>,
    needs_duration: bool,
    /// The `timeout` option as a time limit on the breaker's clock.
    limit: Option<Py<PyTimeLimit>>,
}

impl PyBreaker {
    pub(crate) fn start(&self) -> Option<Duration> {
        if self.needs_duration {
            Some(self.clock.now())
        } else {
            None
        }
    }

    pub(crate) fn elapsed(&self, start: Option<Duration>) -> Duration {
        match start {
            Some(s) => self.clock.now().saturating_sub(s),
            None => Duration::ZERO,
        }
    }

    /// What an exception of type `ty` counts as; `None` is a cancellation.
    ///
    /// `ignore` first (counted only in `ignored`), then `failure_on` (a failure, or a
    /// timeout when it is a `TimeoutError`), then any other `Exception` is a success (it says
    /// nothing about the dependency's health), and a bare `BaseException`
    /// (`KeyboardInterrupt`, `asyncio.CancelledError`, `SystemExit`...) cancels the permit.
    fn classify(&self, py: Python<'_>, ty: &Bound<'_, PyAny>) -> Option<Outcome> {
        if let Some(ignore) = &self.ignore {
            if matches(ty, ignore.bind(py)) {
                return Some(Outcome::Ignore);
            }
        }
        if matches(ty, self.failure_on.bind(py)) {
            return Some(if matches(ty, &PyTimeoutError::type_object(py)) {
                Outcome::Timeout
            } else {
                Outcome::Failure
            });
        }
        if matches(ty, &PyException::type_object(py)) {
            Some(Outcome::Success)
        } else {
            None
        }
    }

    /// Records the outcome of a call that raised `exc_type` (None: returned); a timeout
    /// when `timed_out` (the breaker's own time limit ran out), whatever the exception.
    pub(crate) fn settle_timed(
        &self,
        py: Python<'_>,
        permit: &SharedPermit,
        exc_type: Option<&Bound<'_, PyAny>>,
        took: Duration,
        timed_out: bool,
    ) {
        // A fresh permit cannot be consumed yet, so the results are always Ok here.
        let _ = match exc_type {
            _ if timed_out => permit.record(Outcome::Timeout, took),
            None => permit.record(Outcome::Success, took),
            Some(ty) => match self.classify(py, ty) {
                Some(o) => permit.record(o, took),
                None => permit.cancel(),
            },
        };
    }

    /// The rejection as `BreakerOpen`, or the fallback's result when there is a fallback.
    pub(crate) fn rejected<'py>(&self, slf: &Bound<'py, Self>, r: Rejected) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let err = to_py(py, Error::BreakerOpen(r), Some(slf.as_any()));
        let fallback = lock(&self.fallback).as_ref().map(|f| f.clone_ref(py));
        match fallback {
            Some(f) => {
                // Served degraded: counted in `fallbacks` (and a "fallback" event).
                self.inner.record_fallback();
                f.bind(py).call1((err.into_value(py),))
            }
            None => Err(err),
        }
    }

    fn finish<'py>(
        &self,
        slf: &Bound<'py, Self>,
        permit: SharedPermit,
        start: Option<Duration>,
        result: PyResult<Bound<'py, PyAny>>,
        timed_out: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let took = self.elapsed(start);
        match result {
            Ok(value) => {
                let coro = COROUTINE_TYPE.import(py, "types", "CoroutineType")?;
                if value.get_type_ptr() == coro.as_type_ptr() {
                    // The function was a coroutine function: the call happens when it is
                    // awaited, so the permit goes with the coroutine.
                    let guard = GUARD_AWAITABLE.import(py, "seawall._breaker", "_guard_awaitable")?;
                    let permit = Py::new(py, PyPermit { inner: permit })?;
                    let start = start.map(nanos);
                    return guard.call1((slf, permit, value, start));
                }
                let _ = permit.record(Outcome::Success, took);
                Ok(value)
            }
            Err(e) => {
                let ty = e.get_type(py);
                self.settle_timed(py, &permit, Some(ty.as_any()), took, timed_out);
                Err(e)
            }
        }
    }
}

impl PyBreaker {
    /// Acquires a permit, opens the time-limit scope (with the `timeout` option) and
    /// pushes the block on the context's list of open blocks.
    fn enter_block<'py>(
        slf: &Bound<'py, Self>,
        asynchronous: bool,
    ) -> PyResult<(Py<PyPermit>, Option<Bound<'py, Scope>>)> {
        let py = slf.py();
        let this = slf.get();
        let permit =
            this.inner.try_acquire_shared().map_err(|r| to_py(py, Error::BreakerOpen(r), Some(slf.as_any())))?;
        let start = this.start();
        let scope = match &this.limit {
            Some(limit) => match PyTimeLimit::open(limit.bind(py)) {
                Ok(s) => Some(s),
                Err(e) => {
                    let _ = permit.cancel();
                    return Err(e);
                }
            },
            None => None,
        };
        let permit = Py::new(py, PyPermit { inner: permit })?;
        let (get, set) = active_methods(py)?;
        let parent = get.call0()?;
        let parent = if parent.is_none() { None } else { Some(parent.cast_into::<ActiveCall>()?.unbind()) };
        let cell = ActiveCall {
            breaker: slf.clone().into_any().unbind(),
            permit: permit.clone_ref(py),
            start,
            scope: scope.as_ref().map(|s| s.clone().unbind()),
            asynchronous,
            parent,
        };
        set.call1((Py::new(py, cell)?,))?;
        Ok((permit, scope))
    }

    /// Pops the innermost open block of this breaker, closes its scope and records the
    /// outcome; raises the scope's `Timeout` when it ran out.
    fn exit_block(
        slf: &Bound<'_, Self>,
        exc: Option<&Bound<'_, PyBaseException>>,
        fired: bool,
        outside: bool,
    ) -> PyResult<bool> {
        let py = slf.py();
        let (get, set) = active_methods(py)?;
        let head = get.call0()?;
        // The innermost block of this breaker (normally the head of the list).
        let mut above: Vec<Bound<'_, ActiveCall>> = Vec::new();
        let mut cur = if head.is_none() { None } else { Some(head.cast_into::<ActiveCall>()?) };
        let found = loop {
            match cur {
                None => return Ok(false), // no open block of this breaker here: nothing to record
                Some(c) if c.get().breaker.is(slf) => break c,
                Some(c) => {
                    let next = c.get().parent.as_ref().map(|p| p.bind(py).clone());
                    above.push(c);
                    cur = next;
                }
            }
        };
        let cell = found.get();
        // Unlink it (re-linking any blocks entered after it, when exits came out of order).
        let mut new_head = cell.parent.as_ref().map(|p| p.clone_ref(py));
        for c in above.iter().rev() {
            let c = c.get();
            let copy = ActiveCall {
                breaker: c.breaker.clone_ref(py),
                permit: c.permit.clone_ref(py),
                start: c.start,
                scope: c.scope.as_ref().map(|s| s.clone_ref(py)),
                asynchronous: c.asynchronous,
                parent: new_head,
            };
            new_head = Some(Py::new(py, copy)?);
        }
        set.call1((new_head,))?;
        let timeout = match &cell.scope {
            Some(s) => scope::finish(py, s.bind(py), exc, fired, outside)?,
            None => None,
        };
        let permit = &cell.permit.get().inner;
        if !permit.is_done() {
            let took = slf.get().elapsed(cell.start);
            let exc_type = exc.map(|e| e.get_type().into_any());
            slf.get().settle_timed(py, permit, exc_type.as_ref(), took, timeout.is_some());
        }
        match timeout {
            Some(t) => Err(t),
            None => Ok(false),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[pymethods]
impl PyBreaker {
    #[new]
    #[pyo3(signature = (*, clock=None, failure_on=None, ignore=None, fallback=None, _core=None, **options))]
    fn new(
        py: Python<'_>,
        clock: Option<&Bound<'_, PyAny>>,
        failure_on: Option<&Bound<'_, PyAny>>,
        ignore: Option<&Bound<'_, PyAny>>,
        fallback: Option<&Bound<'_, PyAny>>,
        _core: Option<&Bound<'_, crate::registry::CoreBreaker>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let mut config = BreakerConfig::with_style(STYLE);
        if let Some(options) = options {
            for (key, value) in options.iter() {
                let key: String = key.extract()?;
                config.set(&key, config_value(&value)).map_err(|e| to_py(py, Error::Config(e), None))?;
            }
        }
        let (clock, clock_obj) = match clock {
            None => (system_clock(), Py::new(py, PySystemClock)?.into_any()),
            Some(c) => match shared_clock(c) {
                Some(shared) => (shared, c.clone().unbind()),
                None => {
                    return Err(config_error(py, "clock", c, "expected seawall.ManualClock or seawall.SystemClock"))
                }
            },
        };
        let failure_on = match failure_on {
            None => PyException::type_object(py).into_any().unbind(),
            Some(f) => exception_types(py, "failure_on", f)?,
        };
        let ignore = match ignore {
            None => None,
            Some(i) => Some(exception_types(py, "ignore", i)?),
        };
        if let Some(f) = fallback {
            if !f.is_callable() {
                return Err(config_error(py, "fallback", f, "expected a callable"));
            }
        }
        // `_core`: a breaker a `Registry` made (its options were applied there).
        let inner = match _core {
            Some(core) => core.get().inner.clone(),
            None => CircuitBreaker::new(config.with_clock(clock.clone())).map_err(|e| to_py(py, Error::Config(e), None))?,
        };
        let limit = match inner.config().timeout {
            Some(d) => {
                let manual = clock_obj.bind(py).cast::<crate::clock::PyManualClock>().is_ok();
                let kept = manual.then(|| clock_obj.clone_ref(py));
                Some(Py::new(py, PyTimeLimit::after(d, clock.clone(), kept))?)
            }
            None => None,
        };
        Ok(Self {
            limit,
            needs_duration: inner.needs_duration(),
            inner,
            clock,
            clock_obj,
            failure_on,
            ignore,
            fallback: Mutex::new(fallback.map(|f| f.clone().unbind())),
            listeners: Mutex::new(HashMap::new()),
        })
    }

    /// The breaker's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The current state (`"closed"`, `"open"`, `"half_open"`, `"forced_open"`,
    /// `"disabled"`), after applying any change that time has made due.
    #[getter]
    fn state<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        state_str(py, self.inner.state()).clone()
    }

    /// The clock the breaker reads.
    #[getter]
    fn clock<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.clock_obj.bind(py).clone()
    }

    /// The exception type(s) that count as failures.
    #[getter]
    fn failure_on<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.failure_on.bind(py).clone()
    }

    /// The exception type(s) counted only as ignored, or None.
    #[getter]
    fn ignore<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        self.ignore.as_ref().map(|i| i.bind(py).clone())
    }

    /// The callable used instead of raising `BreakerOpen`, or None.
    #[getter]
    fn fallback<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        lock(&self.fallback).as_ref().map(|f| f.bind(py).clone())
    }

    /// True when call durations are measured (a slow-call threshold is set).
    #[getter]
    fn needs_duration(&self) -> bool {
        self.needs_duration
    }

    /// The `timeout` option in seconds (each guarded call's time limit), or None.
    #[getter]
    fn timeout(&self) -> Option<f64> {
        self.inner.config().timeout.map(|d| d.as_secs_f64())
    }

    /// The `timeout` option as a `seawall.timeout` limit on the breaker's clock, or None.
    #[getter]
    fn _time_limit<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyTimeLimit>> {
        self.limit.as_ref().map(|l| l.bind(py).clone())
    }

    /// Counts, rates and state as a dict; durations in seconds (`retry_after` is
    /// `math.inf` when forced open).
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.snapshot();
        let d = PyDict::new(py);
        d.set_item(intern!(py, "name"), s.name)?;
        d.set_item(intern!(py, "state"), state_str(py, s.state))?;
        d.set_item(intern!(py, "successes"), s.successes)?;
        d.set_item(intern!(py, "failures"), s.failures)?;
        d.set_item(intern!(py, "slow"), s.slow)?;
        d.set_item(intern!(py, "ignored"), s.ignored)?;
        d.set_item(intern!(py, "rejected"), s.rejected)?;
        d.set_item(intern!(py, "timeouts"), s.timeouts)?;
        d.set_item(intern!(py, "failure_rate"), s.failure_rate)?;
        d.set_item(intern!(py, "slow_call_rate"), s.slow_call_rate)?;
        d.set_item(intern!(py, "window_calls"), s.window_calls)?;
        d.set_item(intern!(py, "consecutive_failures"), s.consecutive_failures)?;
        d.set_item(intern!(py, "retry_after"), seconds(s.retry_after))?;
        d.set_item(intern!(py, "half_open_in_flight"), s.half_open_in_flight)?;
        Ok(d)
    }

    /// Rejects every call until `reset()`.
    fn force_open(&self) {
        self.inner.force_open();
    }

    /// Admits every call and records only metrics, until `reset()`.
    fn disable(&self) {
        self.inner.disable();
    }

    /// Back to closed with an empty window, no backoff and no consecutive failures.
    fn reset(&self) {
        self.inner.reset();
    }

    /// A permit for one call, or `BreakerOpen`. Record exactly one outcome on it.
    fn try_acquire(slf: &Bound<'_, Self>) -> PyResult<PyPermit> {
        match slf.get().inner.try_acquire_shared() {
            Ok(p) => Ok(PyPermit { inner: p }),
            Err(r) => Err(to_py(slf.py(), Error::BreakerOpen(r), Some(slf.as_any()))),
        }
    }

    /// Calls `f(*args, **kwargs)` under the breaker. When `f` returns a coroutine, the
    /// result is an awaitable that records the outcome when it finishes.
    #[pyo3(signature = (f, /, *args, **kwargs))]
    fn call<'py>(
        slf: &Bound<'py, Self>,
        f: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if !f.is_callable() {
            // Checked before a permit is taken: a programming error is not the dependency's failure.
            let what = f.get_type().name().map(|n| n.to_string()).unwrap_or_default();
            return Err(to_py(slf.py(), Error::InvalidArgument(format!("fn = <{what}>: expected a callable")), None));
        }
        Self::_call(slf, f, args, kwargs)
    }

    /// `call` with the arguments already packed (the decorator's hot path).
    #[pyo3(signature = (f, args, kwargs=None))]
    fn _call<'py>(
        slf: &Bound<'py, Self>,
        f: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let permit = match this.inner.try_acquire_shared() {
            Ok(p) => p,
            Err(r) => return this.rejected(slf, r),
        };
        let start = this.start();
        let Some(limit) = &this.limit else {
            let result = f.call(args, kwargs.filter(|k| !k.is_empty()));
            return this.finish(slf, permit, start, result, false);
        };
        // The time limit inside the breaker; a coroutine comes back as it is and
        // `_guard_awaitable` puts the limit on awaiting it.
        match scope::call_sync(limit.bind(slf.py()), f, args, kwargs, true) {
            Ok(timed) => this.finish(slf, permit, start, timed.result, timed.timed_out),
            Err(e) => {
                let _ = permit.cancel(); // the scope could not be opened; the call did not run
                Err(e)
            }
        }
    }

    /// Clock reading (integer nanoseconds) at the start of a call, or None when the
    /// breaker does not need durations.
    fn _start(&self) -> Option<u64> {
        self.start().map(nanos)
    }

    /// Records the outcome of a call that ended with `exc` (None: success), started at
    /// `start` (from `_start`); a timeout when `timed_out` (the breaker's own time limit
    /// ran out).
    #[pyo3(signature = (permit, exc, start, timed_out=false))]
    fn _settle(
        &self,
        py: Python<'_>,
        permit: &Bound<'_, PyPermit>,
        exc: Option<&Bound<'_, PyAny>>,
        start: Option<u64>,
        timed_out: bool,
    ) {
        let took = self.elapsed(start.map(Duration::from_nanos));
        let permit = &permit.get().inner;
        if permit.is_done() {
            return;
        }
        match exc {
            None => self.settle_timed(py, permit, None, took, timed_out),
            Some(e) => self.settle_timed(py, permit, Some(e.get_type().as_any()), took, timed_out),
        }
    }

    /// `with breaker:` acquires a permit (or raises `BreakerOpen`; the fallback is not
    /// used) and returns it; recording an outcome on it yourself overrides the automatic one.
    /// With the `timeout` option the block runs in a time-limit scope (cooperative: see
    /// `seawall.timeout`); `async with` cancels the task at the deadline.
    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<Py<PyPermit>> {
        Ok(Self::enter_block(slf, false)?.0)
    }

    /// `__enter__` for the asyncio layer: the permit and the block's scope (None without
    /// the `timeout` option), which the caller arms.
    fn _enter_async<'py>(slf: &Bound<'py, Self>) -> PyResult<(Py<PyPermit>, Option<Bound<'py, Scope>>)> {
        Self::enter_block(slf, true)
    }

    /// Records the block's outcome from the exception, as for a call; never suppresses it
    /// (but raises `seawall.Timeout` when the `timeout` ran out).
    #[pyo3(signature = (_exc_type=None, exc=None, _tb=None))]
    fn __exit__(
        slf: &Bound<'_, Self>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let exc = exc.and_then(|e| e.cast::<PyBaseException>().ok());
        Self::exit_block(slf, exc, false, false)
    }

    /// `__exit__` for the asyncio layer, which says whether the scope's timer `fired` and
    /// whether an `outside` cancellation is pending (see `seawall.TimeLimit._exit`).
    #[pyo3(signature = (exc, fired, outside))]
    fn _exit_async(
        slf: &Bound<'_, Self>,
        exc: Option<&Bound<'_, PyBaseException>>,
        fired: bool,
        outside: bool,
    ) -> PyResult<bool> {
        Self::exit_block(slf, exc, fired, outside)
    }

    /// The scope of the innermost open `async with` block of this breaker, or None.
    fn _block_scope<'py>(slf: &Bound<'py, Self>) -> PyResult<Option<Bound<'py, Scope>>> {
        let py = slf.py();
        let (get, _) = active_methods(py)?;
        let mut cur = get.call0()?;
        while !cur.is_none() {
            let c = cur.cast_into::<ActiveCall>()?;
            if c.get().breaker.is(slf) {
                return Ok(c.get().scope.as_ref().map(|s| s.bind(py).clone()));
            }
            cur = match &c.get().parent {
                Some(p) => p.bind(py).clone().into_any(),
                None => py.None().into_bound(py),
            };
        }
        Ok(None)
    }

    /// Calls `callback(event)` on every state change; returns an id for `remove_listener`.
    /// A callback that raises is reported through `sys.unraisablehook`; the breaker goes on.
    fn on_state_change(&self, py: Python<'_>, callback: &Bound<'_, PyAny>) -> PyResult<u64> {
        if !callback.is_callable() {
            let what = callback.get_type().name().map(|n| n.to_string()).unwrap_or_default();
            return Err(to_py(py, Error::InvalidArgument(format!("callback must be callable, got {what}")), None));
        }
        let slot: Slot = Arc::new(Mutex::new(Some(callback.clone().unbind())));
        let held = Arc::clone(&slot);
        let id = self.inner.on_state_change(move |e: &StateChange| deliver(&held, e));
        lock(&self.listeners).insert(id.0, slot);
        Ok(id.0)
    }

    /// Calls `callback(event)` for every event: state changes, rejections, timeouts and
    /// fallbacks, as dicts (`{"type", "breaker", "at", ...}`, see `seawall.CircuitBreaker`);
    /// returns an id for `remove_listener`. A callback that raises is reported through
    /// `sys.unraisablehook`; the breaker goes on.
    fn on_event(&self, py: Python<'_>, callback: &Bound<'_, PyAny>) -> PyResult<u64> {
        let (id, slot) = crate::events::on_breaker_event(py, &self.inner, callback)?;
        lock(&self.listeners).insert(id, slot);
        Ok(id)
    }

    /// Counts a rejected call answered by a fallback (degraded service): `call_async` does.
    fn _record_fallback(&self) {
        self.inner.record_fallback();
    }

    /// Removes a listener by the id `on_state_change` returned; False when unknown.
    fn remove_listener(&self, py: Python<'_>, listener_id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Some(id) = crate::values::listener_id(py, listener_id)? else { return Ok(false) };
        let removed = self.inner.remove_listener(ListenerId(id));
        let slot = lock(&self.listeners).remove(&id);
        // Dropped after the lock is released: dropping a callback may run Python code.
        let _callback = slot.and_then(|slot| lock(&slot).take());
        Ok(removed)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.get();
        let cls = slf.get_type().name()?;
        Ok(format!("<{} name={:?} state={:?}>", cls, this.inner.name(), this.inner.state().as_str()))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.clock_obj)?;
        visit.call(&self.failure_on)?;
        visit.call(&self.ignore)?;
        visit.call(&self.limit)?;
        if let Ok(f) = self.fallback.try_lock() {
            visit.call(&*f)?;
        }
        if let Ok(listeners) = self.listeners.try_lock() {
            for slot in listeners.values() {
                if let Ok(cb) = slot.try_lock() {
                    visit.call(&*cb)?;
                }
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        // Take everything out first and drop it after the locks are released: dropping a
        // callback may run Python code (a __del__) that comes back to this breaker.
        let fallback = lock(&self.fallback).take();
        let callbacks: Vec<Py<PyAny>> = lock(&self.listeners).values().filter_map(|slot| lock(slot).take()).collect();
        drop(fallback);
        drop(callbacks);
    }
}

/// Calls one Python listener with one event. Runs in the core's delivery loop, after the
/// breaker's locks are released.
fn deliver(slot: &Slot, e: &StateChange) {
    Python::attach(|py| {
        let cb = lock(slot).as_ref().map(|c| c.clone_ref(py));
        let Some(cb) = cb else { return };
        let event = PyStateChange {
            breaker: e.breaker.to_string(),
            from: e.from,
            to: e.to,
            at: e.at.as_secs_f64(),
            reason: e.reason.as_str(),
        };
        if let Err(err) = Py::new(py, event).and_then(|ev| cb.call1(py, (ev,))) {
            err.write_unraisable(py, Some(cb.bind(py)));
        }
    });
}

/// A function guarded by a breaker: what `@breaker` returns for a sync function. Calling it
/// is one native call (acquire, call, classify, record). It binds like a function when
/// used as a method, and `functools.update_wrapper` gives it the function's name, doc and
/// `__wrapped__`.
#[pyclass(name = "Guarded", module = "seawall._native", frozen, dict, weakref)]
pub struct PyGuarded {
    breaker: Py<PyBreaker>,
    f: Py<PyAny>,
}

#[pymethods]
impl PyGuarded {
    #[new]
    fn new(breaker: &Bound<'_, PyBreaker>, f: &Bound<'_, PyAny>) -> PyResult<Self> {
        if !f.is_callable() {
            let what = f.get_type().name().map(|n| n.to_string()).unwrap_or_default();
            return Err(pyo3::exceptions::PyTypeError::new_err(format!("a breaker guards a callable, got {what}")));
        }
        Ok(Self { breaker: breaker.clone().unbind(), f: f.clone().unbind() })
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        PyBreaker::_call(self.breaker.bind(py), self.f.bind(py), args, kwargs)
    }

    fn __get__<'py>(
        slf: &Bound<'py, Self>,
        instance: &Bound<'py, PyAny>,
        _owner: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::wrapped::bind(slf.as_any(), instance)
    }

    /// The breaker guarding the function.
    #[getter]
    fn breaker<'py>(&self, py: Python<'py>) -> Bound<'py, PyBreaker> {
        self.breaker.bind(py).clone()
    }

    /// Pickled by reference, like the function it replaces.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        crate::wrapped::reduce(slf.as_any())
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let name = crate::wrapped::qualname(slf.as_any());
        format!("<function {} guarded by breaker {:?}>", name, slf.get().breaker.get().inner.name())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.breaker)?;
        visit.call(&self.f)?;
        Ok(())
    }
}

/// The right to make one call. Record exactly one outcome: `success(duration)`,
/// `failure(duration)`, `timeout(duration)`, `ignore()`, or `cancel()`. A permit that is
/// garbage-collected without an outcome is cancelled.
#[pyclass(name = "Permit", module = "seawall._native", frozen)]
pub struct PyPermit {
    inner: SharedPermit,
}

impl PyPermit {
    fn record(&self, py: Python<'_>, outcome: Outcome, duration: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        // None (or nothing) is 0 s; anything else is judged by the core (a bool or a str
        // is refused naming `duration` and the value).
        let took = match duration {
            Some(d) => duration_any(py, "duration", d)?,
            None => Duration::ZERO,
        };
        self.inner.record(outcome, took).map_err(|e| to_py(py, e, None))
    }
}

#[pymethods]
impl PyPermit {
    /// The call succeeded after `duration` seconds.
    #[pyo3(signature = (duration=None))]
    fn success(&self, py: Python<'_>, duration: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.record(py, Outcome::Success, duration)
    }

    /// The call failed after `duration` seconds.
    #[pyo3(signature = (duration=None))]
    fn failure(&self, py: Python<'_>, duration: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.record(py, Outcome::Failure, duration)
    }

    /// The call timed out after `duration` seconds (a failure, also counted in `timeouts`).
    #[pyo3(signature = (duration=None))]
    fn timeout(&self, py: Python<'_>, duration: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.record(py, Outcome::Timeout, duration)
    }

    /// The call ended with an error the user excluded: counted only in `ignored`.
    fn ignore(&self, py: Python<'_>) -> PyResult<()> {
        self.inner.record(Outcome::Ignore, Duration::ZERO).map_err(|e| to_py(py, e, None))
    }

    /// No outcome: frees a half-open slot, counted nowhere.
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        self.inner.cancel().map_err(|e| to_py(py, e, None))
    }

    /// True once an outcome was recorded or the permit was cancelled.
    #[getter]
    fn done(&self) -> bool {
        self.inner.is_done()
    }

    /// True when this permit is a half-open probe.
    #[getter]
    fn is_probe(&self) -> bool {
        self.inner.is_probe()
    }

    /// The generation (epoch) of the state that issued this permit. Every state change
    /// starts a new generation; an outcome recorded on a permit of an older generation
    /// updates the counts but never the state.
    #[getter]
    fn generation(&self) -> u64 {
        self.inner.generation()
    }

    fn __repr__(&self) -> String {
        format!(
            "<Permit breaker={:?} probe={} done={}>",
            self.inner.breaker().name(),
            self.inner.is_probe(),
            self.inner.is_done()
        )
    }
}

/// One state change: `breaker` (name), `from_` (also `event["from"]`), `to`, `at` (clock
/// seconds), `reason`.
#[pyclass(name = "StateChange", module = "seawall._native", frozen)]
pub struct PyStateChange {
    breaker: String,
    from: State,
    to: State,
    at: f64,
    reason: &'static str,
}

#[pymethods]
impl PyStateChange {
    /// The breaker's name.
    #[getter]
    fn breaker(&self) -> &str {
        &self.breaker
    }

    /// The state before (`from` is a keyword, hence the underscore; `event["from"]` works too).
    #[getter(from_)]
    fn from_<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        state_str(py, self.from).clone()
    }

    /// The state after.
    #[getter]
    fn to<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        state_str(py, self.to).clone()
    }

    /// Clock time of the change, in seconds since the clock's origin.
    #[getter]
    fn at(&self) -> f64 {
        self.at
    }

    /// Why it changed (`consecutive_failures`, `failure_rate`, ...).
    #[getter]
    fn reason(&self) -> &'static str {
        self.reason
    }

    /// `event["from"]` and the other keys of `as_dict()`.
    fn __getitem__<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        Ok(match key {
            "breaker" => PyString::new(py, &self.breaker).into_any(),
            "from" => self.from_(py).into_any(),
            "to" => self.to(py).into_any(),
            "at" => self.at.into_pyobject(py)?.into_any(),
            "reason" => PyString::new(py, self.reason).into_any(),
            _ => return Err(pyo3::exceptions::PyKeyError::new_err(key.to_owned())),
        })
    }

    /// `{"breaker", "from", "to", "at", "reason"}`.
    fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for k in ["breaker", "from", "to", "at", "reason"] {
            d.set_item(k, self.__getitem__(py, k)?)?;
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "StateChange(breaker={:?}, from_={:?}, to={:?}, at={:?}, reason={:?})",
            self.breaker,
            self.from.as_str(),
            self.to.as_str(),
            self.at,
            self.reason
        )
    }
}
