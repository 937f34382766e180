//! `Deadline`, `parse_grpc_timeout` and `format_grpc_timeout`: the core's deadline with
//! durations as float seconds.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyType;
use seawall::Deadline;

use crate::clock::{clock_arg, clock_object, duration_arg, is_system};
use crate::errors::{self, to_py};

/// An absolute point in time on a clock (the system clock unless `clock=` is given).
///
/// Make one with `Deadline.after(seconds)` or `Deadline.from_grpc_timeout(header)`; read
/// it with `remaining()`, `expired()`, `to_grpc_timeout()`, `budget(fraction, min)`.
#[pyclass(name = "Deadline", module = "seawall._native", frozen)]
pub struct PyDeadline {
    pub(crate) inner: Deadline,
    /// The `ManualClock` object the deadline was made on; `None` for the system clock.
    pub(crate) clock_obj: Option<Py<PyAny>>,
}

impl PyDeadline {
    pub fn new(py: Python<'_>, inner: Deadline, clock_obj: &Option<Py<PyAny>>) -> Self {
        Self { inner, clock_obj: clock_obj.as_ref().map(|c| c.clone_ref(py)) }
    }
}

#[pymethods]
impl PyDeadline {
    /// The deadline `seconds` from now on `clock` (default: the system clock). Negative,
    /// NaN and infinite values raise `seawall.InvalidArgument`.
    #[classmethod]
    #[pyo3(signature = (seconds, clock=None))]
    fn after(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        seconds: &Bound<'_, PyAny>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let d = duration_arg(py, "seconds", seconds)?;
        let (clock, clock_obj) = clock_arg(py, clock)?;
        Ok(Self { inner: Deadline::after(clock, d), clock_obj })
    }

    /// The deadline a `grpc-timeout` header value (`"250m"`, `"3S"`) gives, counted from
    /// now. A malformed value raises `seawall.InvalidArgument`.
    #[classmethod]
    #[pyo3(signature = (header, clock=None))]
    fn from_grpc_timeout(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        header: &Bound<'_, PyAny>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let header = str_arg(py, "header", header)?;
        let (clock, clock_obj) = clock_arg(py, clock)?;
        let inner = Deadline::from_grpc_timeout(clock, &header).map_err(|e| to_py(py, e, None))?;
        Ok(Self { inner, clock_obj })
    }

    /// Seconds left; `0.0` once expired.
    fn remaining(&self) -> f64 {
        self.inner.remaining().as_secs_f64()
    }

    /// Whole milliseconds left (rounded down).
    fn remaining_ms(&self) -> u64 {
        self.inner.remaining_ms()
    }

    /// True at or after the deadline.
    fn expired(&self) -> bool {
        self.inner.expired()
    }

    /// Raises `seawall.Timeout` when the deadline has passed.
    fn check(&self, py: Python<'_>) -> PyResult<()> {
        if self.inner.expired() {
            return Err(errors::timeout(py, "deadline exceeded".into(), None));
        }
        Ok(())
    }

    /// The earlier of this deadline and `other`. Deadlines of different clocks cannot be
    /// compared: `seawall.InvalidArgument`.
    fn earliest(&self, py: Python<'_>, other: &Bound<'_, PyDeadline>) -> PyResult<Self> {
        let o = other.get();
        let inner = self.inner.earliest(&o.inner).map_err(|e| to_py(py, e, None))?;
        let clock_obj = if inner.instant() == self.inner.instant() { &self.clock_obj } else { &o.clock_obj };
        Ok(Self::new(py, inner, clock_obj))
    }

    /// What remains, as a `grpc-timeout` header value (rounded up, at most 8 digits).
    fn to_grpc_timeout(&self) -> String {
        self.inner.to_grpc_timeout()
    }

    /// Seconds for one attempt: `fraction` (0 to 1) of what remains, at least `min` seconds,
    /// never more than what remains (`budget(0.4, min=0.005)`). A fraction outside [0, 1]
    /// raises `InvalidArgument`.
    #[pyo3(signature = (fraction, min=None))]
    fn budget(&self, py: Python<'_>, fraction: &Bound<'_, PyAny>, min: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        let fraction = match fraction.extract::<f64>() {
            Ok(f) if !fraction.is_instance_of::<pyo3::types::PyBool>() => f,
            _ => {
                let what = fraction.get_type().name().map(|n| n.to_string()).unwrap_or_default();
                let msg = format!("fraction = <{what}>: expected a number in [0, 1]");
                return Err(to_py(py, seawall::Error::InvalidArgument(msg), None));
            }
        };
        let min = match min {
            Some(m) => duration_arg(py, "min", m)?,
            None => std::time::Duration::ZERO,
        };
        self.inner.try_budget(fraction, min).map(|d| d.as_secs_f64()).map_err(|e| to_py(py, e, None))
    }

    /// Clock time of the deadline, in seconds since the clock's origin (as `clock.now()`).
    #[getter]
    fn instant(&self) -> f64 {
        self.inner.instant().as_secs_f64()
    }

    /// The clock the deadline is measured on.
    #[getter]
    fn clock(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        clock_object(py, &self.clock_obj)
    }

    /// Same clock and same instant.
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.cast::<PyDeadline>() {
            Ok(o) => {
                let o = o.get();
                Arc::ptr_eq(self.inner.clock(), o.inner.clock()) && self.inner.instant() == o.inner.instant()
            }
            Err(_) => false,
        }
    }

    fn __hash__(&self) -> u64 {
        let n = self.inner.instant().as_nanos();
        (n as u64) ^ ((n >> 64) as u64)
    }

    fn __repr__(&self) -> String {
        let clock = if is_system(self.inner.clock()) { "SystemClock" } else { "ManualClock" };
        format!(
            "Deadline(instant={}, remaining={}, clock={clock})",
            self.inner.instant().as_secs_f64(),
            self.inner.remaining().as_secs_f64()
        )
    }
}

/// Seconds in a `grpc-timeout` header value: 1 to 8 digits and a unit (`H`, `M`, `S`,
/// `m`, `u`, `n`). A malformed value raises `seawall.InvalidArgument`.
#[pyfunction]
pub fn parse_grpc_timeout(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<f64> {
    let value = str_arg(py, "value", value)?;
    seawall::deadline::parse_grpc_timeout(&value).map(|d| d.as_secs_f64()).map_err(|e| to_py(py, e, None))
}

/// `seconds` as a `grpc-timeout` header value: the finest unit whose value fits in 8
/// digits, rounded up (`format_grpc_timeout(0.25) == "250000u"`).
#[pyfunction]
pub fn format_grpc_timeout(py: Python<'_>, seconds: &Bound<'_, PyAny>) -> PyResult<String> {
    let d = duration_arg(py, "seconds", seconds)?;
    Ok(seawall::deadline::format_grpc_timeout(d))
}

/// A text argument: anything but a `str` is refused with `seawall.InvalidArgument` naming
/// the argument and the type (`header = <bytes>: expected a str`).
fn str_arg(py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<String> {
    if value.is_instance_of::<pyo3::types::PyString>() {
        return value.extract::<String>();
    }
    let what = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
    Err(to_py(py, seawall::Error::InvalidArgument(format!("{name} = <{what}>: expected a str")), None))
}
