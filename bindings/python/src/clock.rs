//! `ManualClock` and `SystemClock`: durations cross as float seconds.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use seawall::{Clock, ManualClock, SharedClock, SystemClock};

use crate::errors;

/// Seconds (float) to a `Duration`; negative, NaN and too-large values are refused with an
/// `InvalidArgument` naming the argument and the value.
pub fn duration_arg(py: Python<'_>, what: &str, seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        errors::to_py(
            py,
            seawall::Error::InvalidArgument(format!("{what} must be a non-negative number of seconds, got {seconds}")),
            None,
        )
    })
}

/// A `Duration` as float seconds; `Duration::MAX` (forced open) is `math.inf`.
pub fn seconds(d: Duration) -> f64 {
    if d == Duration::MAX {
        f64::INFINITY
    } else {
        d.as_secs_f64()
    }
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

    /// Moves time forward by `seconds` (a non-negative number).
    fn advance(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        let d = duration_arg(py, "seconds", seconds)?;
        self.inner.advance(d);
        Ok(())
    }

    /// Seconds since the clock's origin.
    fn now(&self) -> f64 {
        self.inner.now().as_secs_f64()
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
        return Some(SystemClock::shared());
    }
    None
}
