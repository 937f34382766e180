//! The one mapping from core errors to the `seawall` exception classes.
//!
//! The classes live in `seawall/_errors.py` (plain Python, so they can inherit from both
//! `SeawallError` and a builtin such as `ValueError`); they are imported once, lazily.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};
use seawall::{Error, ErrorCode};

use crate::clock::seconds;

static SEAWALL_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CONFIG_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static BREAKER_OPEN: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static PERMIT_CONSUMED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMEOUT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static INVALID_ARGUMENT: PyOnceLock<Py<PyType>> = PyOnceLock::new();

const MODULE: &str = "seawall._errors";

/// The Python class of a core error code.
fn class(py: Python<'_>, code: ErrorCode) -> PyResult<&Bound<'_, PyType>> {
    let (cell, name) = match code {
        ErrorCode::Config => (&CONFIG_ERROR, "ConfigError"),
        ErrorCode::BreakerOpen => (&BREAKER_OPEN, "BreakerOpen"),
        ErrorCode::PermitConsumed => (&PERMIT_CONSUMED, "PermitConsumed"),
        ErrorCode::Timeout => (&TIMEOUT, "Timeout"),
        ErrorCode::InvalidArgument => (&INVALID_ARGUMENT, "InvalidArgument"),
        // Internal, and any code added to the core later: the base class, with its code.
        _ => (&SEAWALL_ERROR, "SeawallError"),
    };
    cell.import(py, MODULE, name)
}

/// Converts a core error to the matching `seawall` exception, with its attributes:
/// every class gets `code`; `ConfigError` gets `field`, `value`, `reason`, `type_mismatch`;
/// `BreakerOpen` gets `breaker` (the breaker object when given, else its name),
/// `breaker_name`, `state` and `retry_after` (float seconds, `math.inf` when forced open).
pub fn to_py(py: Python<'_>, err: Error, breaker: Option<&Bound<'_, PyAny>>) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let code = err.code();
        let cls = class(py, code)?;
        let kw = PyDict::new(py);
        kw.set_item(pyo3::intern!(py, "code"), code.as_str())?;
        match &err {
            Error::Config(c) => {
                kw.set_item(pyo3::intern!(py, "field"), &c.field)?;
                kw.set_item(pyo3::intern!(py, "value"), &c.value)?;
                kw.set_item(pyo3::intern!(py, "reason"), &c.reason)?;
                kw.set_item(pyo3::intern!(py, "type_mismatch"), c.type_mismatch)?;
            }
            Error::BreakerOpen(r) => {
                match breaker {
                    Some(b) => kw.set_item(pyo3::intern!(py, "breaker"), b)?,
                    None => kw.set_item(pyo3::intern!(py, "breaker"), &*r.breaker)?,
                }
                kw.set_item(pyo3::intern!(py, "breaker_name"), &*r.breaker)?;
                kw.set_item(pyo3::intern!(py, "state"), r.state.as_str())?;
                kw.set_item(pyo3::intern!(py, "retry_after"), seconds(r.retry_after))?;
            }
            _ => {}
        }
        let exc = cls.call((err.to_string(),), Some(&kw))?;
        Ok(PyErr::from_value(exc))
    };
    // If the exception classes themselves cannot be loaded, that error is the one to see.
    build().unwrap_or_else(|e| e)
}
