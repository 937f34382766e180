//! The one mapping from core errors to the `seawall` exception classes.
//!
//! The classes live in `seawall/_errors.py` (plain Python, so they can inherit from both
//! `SeawallError` and a builtin such as `ValueError`); they are imported once, lazily.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::exceptions::PyBaseException;
use pyo3::types::{PyDict, PyType};
use seawall::{Error, ErrorCode};

use crate::clock::seconds;

static SEAWALL_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CONFIG_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static BREAKER_OPEN: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static PERMIT_CONSUMED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMEOUT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static INVALID_ARGUMENT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static IDEMPOTENCY_IN_PROGRESS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static IDEMPOTENCY_MISMATCH: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static STORE_UNAVAILABLE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static LEASE_LOST: PyOnceLock<Py<PyType>> = PyOnceLock::new();

const MODULE: &str = "seawall._errors";

/// The Python class of a core error code.
fn class(py: Python<'_>, code: ErrorCode) -> PyResult<&Bound<'_, PyType>> {
    let (cell, name) = match code {
        ErrorCode::Config => (&CONFIG_ERROR, "ConfigError"),
        ErrorCode::BreakerOpen => (&BREAKER_OPEN, "BreakerOpen"),
        ErrorCode::PermitConsumed => (&PERMIT_CONSUMED, "PermitConsumed"),
        ErrorCode::Timeout => (&TIMEOUT, "Timeout"),
        ErrorCode::InvalidArgument => (&INVALID_ARGUMENT, "InvalidArgument"),
        ErrorCode::IdempotencyInProgress => (&IDEMPOTENCY_IN_PROGRESS, "IdempotencyInProgress"),
        ErrorCode::IdempotencyMismatch => (&IDEMPOTENCY_MISMATCH, "IdempotencyMismatch"),
        ErrorCode::StoreUnavailable => (&STORE_UNAVAILABLE, "StoreUnavailable"),
        ErrorCode::LeaseLost => (&LEASE_LOST, "LeaseLost"),
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
    if let Error::BreakerOpen(r) = &err {
        // Every rejection builds one: the cheap way (see `breaker_open`).
        // The message in a buffer of its usual size: no reallocation while it is written.
        let mut message = String::with_capacity(128);
        let _ = std::fmt::Write::write_fmt(&mut message, format_args!("{err}"));
        return breaker_open(py, &message, r, breaker).unwrap_or_else(|e| e);
    }
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
            Error::IdempotencyInProgress(e) => {
                kw.set_item(pyo3::intern!(py, "key"), &e.key)?;
                kw.set_item(pyo3::intern!(py, "retry_after"), seconds(e.retry_after))?;
                kw.set_item(pyo3::intern!(py, "waited"), seconds(e.waited))?;
            }
            Error::IdempotencyMismatch { key } => kw.set_item(pyo3::intern!(py, "key"), key)?,
            Error::LeaseLost { key, token, reason } => {
                kw.set_item(pyo3::intern!(py, "key"), key)?;
                kw.set_item(pyo3::intern!(py, "token"), token)?;
                kw.set_item(pyo3::intern!(py, "reason"), reason)?;
            }
            _ => {}
        }
        let exc = cls.call((err.to_string(),), Some(&kw))?;
        Ok(PyErr::from_value(exc))
    };
    // If the exception classes themselves cannot be loaded, that error is the one to see.
    build().unwrap_or_else(|e| e)
}

/// `BreakerOpen(message, code=..., breaker=..., breaker_name=..., state=..., retry_after=...)`
/// without the Python `__init__` chain, which is most of the cost of a rejection: the
/// instance is made by the class's `__new__` (`BaseException.__new__`, which sets `args` to
/// `(message,)`, as `__init__` would) and gets the attributes `SeawallError.__init__` and
/// `BreakerOpen.__init__` set, in the same order (so `__dict__` and pickling are the same).
/// `python/tests/test_breaker_async.py` compares it with one built by the constructor.
fn breaker_open(
    py: Python<'_>,
    message: &str,
    r: &seawall::Rejected,
    breaker: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyErr> {
    let cls = class(py, ErrorCode::BreakerOpen)?;
    let args = pyo3::types::PyTuple::new(py, [message])?;
    // SAFETY: `cls` is a heap type (a Python class), so PyType_GetSlot works on every
    // supported version; its tp_new is BaseException's (inherited), called with a tuple.
    let obj = unsafe {
        let new = ffi::PyType_GetSlot(cls.as_type_ptr(), ffi::Py_tp_new);
        if new.is_null() {
            return Err(pyo3::exceptions::PyTypeError::new_err("BreakerOpen has no __new__"));
        }
        let new: ffi::newfunc = std::mem::transmute(new);
        Bound::from_owned_ptr_or_err(py, new(cls.as_type_ptr(), args.as_ptr(), std::ptr::null_mut()))?
    };
    debug_assert_eq!(ErrorCode::BreakerOpen.as_str(), "SEAWALL_BREAKER_OPEN");
    obj.setattr(pyo3::intern!(py, "code"), pyo3::intern!(py, "SEAWALL_BREAKER_OPEN"))?;
    match breaker {
        Some(b) => obj.setattr(pyo3::intern!(py, "breaker"), b)?,
        None => obj.setattr(pyo3::intern!(py, "breaker"), &*r.breaker)?,
    }
    obj.setattr(pyo3::intern!(py, "breaker_name"), &*r.breaker)?;
    let state = match r.state {
        seawall::State::Open => pyo3::intern!(py, "open"),
        seawall::State::HalfOpen => pyo3::intern!(py, "half_open"),
        seawall::State::ForcedOpen => pyo3::intern!(py, "forced_open"),
        seawall::State::Closed => pyo3::intern!(py, "closed"),
        seawall::State::Disabled => pyo3::intern!(py, "disabled"),
    };
    obj.setattr(pyo3::intern!(py, "state"), state)?;
    obj.setattr(pyo3::intern!(py, "retry_after"), seconds(r.retry_after))?;
    Ok(PyErr::from_value(obj))
}

/// `seawall.Timeout` with `message` (shown after the core's "timed out: "), caused by
/// `cause` (the exception the late block raised), if any.
pub fn timeout(py: Python<'_>, message: String, cause: Option<&Bound<'_, PyBaseException>>) -> PyErr {
    let err = to_py(py, Error::Timeout(message), None);
    if let Some(c) = cause {
        err.set_cause(py, Some(PyErr::from_value(c.clone().into_any())));
    }
    err
}

/// True when `exc` is a `seawall.Timeout`.
pub fn is_timeout(py: Python<'_>, exc: &Bound<'_, PyAny>) -> bool {
    class(py, ErrorCode::Timeout).is_ok_and(|cls| exc.is_instance(cls).unwrap_or(false))
}
