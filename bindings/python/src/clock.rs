//! `ManualClock` and `SystemClock`: durations cross as float seconds.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pyo3::prelude::*;
use seawall::{Clock, ConfigValue, DurationUnit, ManualClock, SharedClock, SystemClock};

use crate::errors;
use crate::values::config_value;

/// A duration argument in seconds (any Python value), read by the core's `duration_arg`:
/// negative, NaN, infinite and non-numbers are refused with `seawall.InvalidArgument`
/// naming the argument and the value (`seconds = -1s: must not be negative`).
pub fn duration_arg(py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<Duration> {
    seawall::deadline::duration_arg(name, &config_value(value), DurationUnit::Seconds)
        .map_err(|e| errors::to_py(py, e, None))
}

/// [`duration_arg`] for an argument pyo3 already read as a float.
pub fn duration_f64(py: Python<'_>, name: &str, seconds: f64) -> PyResult<Duration> {
    seawall::deadline::duration_arg(name, &ConfigValue::Float(seconds), DurationUnit::Seconds)
        .map_err(|e| errors::to_py(py, e, None))
}

/// [`duration_arg`] with a fast path for a `float` (what callers pass almost always); any
/// other value (an int, a bool, a str, None) is judged by the core, which names the
/// argument and the value (a bool is refused rather than read as 0 or 1 s).
pub fn duration_any(py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<Duration> {
    if value.is_exact_instance_of::<pyo3::types::PyFloat>() {
        return duration_f64(py, name, value.extract::<f64>()?);
    }
    duration_arg(py, name, value)
}

/// A `Duration` as float seconds; `Duration::MAX` (forced open) is `math.inf`.
pub fn seconds(d: Duration) -> f64 {
    if d == Duration::MAX {
        f64::INFINITY
    } else {
        d.as_secs_f64()
    }
}

/// The one shared handle of the system clock in this module. Deadlines can only be
/// compared on the same clock *object* (`Deadline::earliest`), so every system-clock
/// deadline, scope and breaker of the Python package uses this handle.
pub fn system_clock() -> SharedClock {
    SYSTEM.get_or_init(SystemClock::shared).clone()
}

static SYSTEM: OnceLock<SharedClock> = OnceLock::new();

/// True when `clock` is [`system_clock`].
pub fn is_system(clock: &SharedClock) -> bool {
    Arc::ptr_eq(SYSTEM.get_or_init(SystemClock::shared), clock)
}

/// A test clock whose time moves only when `advance(seconds)` is called. Starts at 0.
#[pyclass(name = "ManualClock", module = "seawall._native", frozen)]
pub struct PyManualClock {
    pub(crate) inner: Arc<ManualClock>,
}

#[pymethods]
impl PyManualClock {
    #[new]
    fn new() -> Self {
        Self { inner: ManualClock::shared() }
    }

    /// Moves time forward by `seconds` (a non-negative number), then runs the timers that
    /// became due (token cancellations, timeouts of coroutines), in due order, on this
    /// thread. The GIL stays held: the timers call back into Python.
    fn advance(&self, py: Python<'_>, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        let d = duration_any(py, "seconds", seconds)?;
        // No lock of this module is held here: the core fires each due timer outside the
        // clock's own lock, and the callbacks re-enter Python with the GIL we hold.
        self.inner.advance(d);
        Ok(())
    }

    /// Seconds since the clock's origin.
    fn now(&self) -> f64 {
        self.inner.now().as_secs_f64()
    }

    /// Timers scheduled on this clock and not yet fired (cancel tokens, coroutine timeouts).
    fn pending_timers(&self) -> usize {
        self.inner.pending_timers()
    }

    fn __repr__(&self) -> String {
        format!("ManualClock(now={})", self.inner.now().as_secs_f64())
    }
}

/// The real monotonic clock; `now()` is seconds since the first reading in this process.
#[pyclass(name = "SystemClock", module = "seawall._native", frozen)]
pub struct PySystemClock;

#[pymethods]
impl PySystemClock {
    #[new]
    fn new() -> Self {
        Self
    }

    /// Seconds since this process first read the system clock.
    fn now(&self) -> f64 {
        SystemClock.now().as_secs_f64()
    }

    fn __repr__(&self) -> &'static str {
        "SystemClock()"
    }
}

/// The core clock behind a Python clock object, if it is one of ours.
pub fn shared_clock(obj: &Bound<'_, PyAny>) -> Option<SharedClock> {
    if let Ok(m) = obj.cast::<PyManualClock>() {
        let c: SharedClock = m.get().inner.clone();
        return Some(c);
    }
    if obj.cast::<PySystemClock>().is_ok() {
        return Some(system_clock());
    }
    None
}

/// A `clock=` argument: `None` or a `SystemClock` is the system clock (no Python object
/// kept), a `ManualClock` is kept so that `deadline.clock` gives it back.
pub fn clock_arg(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<(SharedClock, Option<Py<PyAny>>)> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok((system_clock(), None));
    };
    if let Ok(m) = obj.cast::<PyManualClock>() {
        let c: SharedClock = m.get().inner.clone();
        return Ok((c, Some(obj.clone().unbind())));
    }
    if obj.cast::<PySystemClock>().is_ok() {
        return Ok((system_clock(), None));
    }
    let what = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".into());
    Err(errors::to_py(
        py,
        seawall::Error::InvalidArgument(format!("clock = <{what}>: expected seawall.ManualClock or seawall.SystemClock")),
        None,
    ))
}

/// The Python object of a clock given to [`clock_arg`] (a new `SystemClock()` for the
/// system clock).
pub fn clock_object(py: Python<'_>, kept: &Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
    match kept {
        Some(c) => Ok(c.clone_ref(py)),
        None => Ok(Py::new(py, PySystemClock)?.into_any()),
    }
}
