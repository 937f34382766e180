//! `IdempotencyCache.run` in one native call, for the common case: a plain (sync) function,
//! the default serializer (`seawall.JsonSerializer`) and the cache's memory store (no I/O).
//!
//! It takes the same steps as the Python layer's `_run` (`seawall/_idempotency.py`), in the
//! same order, calling back into that layer wherever it is not the common case, so the
//! results, errors, events and counts are the same:
//!
//! 1. the claim (a duplicate in progress waits for its outcome with the GIL released, as
//!    `_claim(block=True)`); a refusal is reported as an event when someone listens
//!    (`_emit_refusal`) and raised;
//! 2. a replay: the `"replay"` event when someone listens; a stored error is raised as the
//!    serializer's `loads_error` makes it; a value is decoded from its JSON here
//!    ([`crate::json::loads`], else Python's `json`) or is `bytes` for any other content type;
//! 3. a run: the `"takeover"` event when someone listens, a `RunContext` set in the
//!    `current_run()` context variable while the function runs, `_raised` (abandon, store
//!    the error, or release) when it raises, the refusal of an awaitable result
//!    (`_awaitable_result`), serialising (`None`, bytes and plain JSON values here, anything
//!    else and every failure through `_serialise`), completing (`"lease_lost"` event), and
//!    the stored form returned.
//!
//! Everything else (a coroutine function or any other callable, a custom serializer, a
//! Redis store) goes through the Python layer's `_run_general`, as before.

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple, PyType};
use seawall::idempotency::Output;
use seawall::{Acquired, Begin, Error, Lease, Record};

use crate::errors::to_py;
use crate::idempotency::{block_on, fingerprint_of, with_key, PyCache, PyLease};

const JSON_TYPE: &str = "application/json";
const OCTETS_TYPE: &str = "application/octet-stream";

const MODULE: &str = "seawall._idempotency";

static FUNCTION_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static RUN_CONTEXT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CURRENT_RUN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static CURRENT_RUN_SET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static CURRENT_RUN_RESET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static PAYLOAD_BYTES: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static JSON_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static RESULT_ENCODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static IS_AWAITABLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

type ContextVarSet = unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject) -> *mut ffi::PyObject;
type ContextVarReset = unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject) -> std::ffi::c_int;

/// `PyContextVar_Set` and `PyContextVar_Reset` (public C API since 3.7, outside the stable
/// ABI), or None (then the variable's `set` and `reset` methods are called).
fn context_api() -> Option<(ContextVarSet, ContextVarReset)> {
    static F: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();
    let (s, r) = *F.get_or_init(|| {
        (
            crate::aguard::interpreter_symbol(c"PyContextVar_Set"),
            crate::aguard::interpreter_symbol(c"PyContextVar_Reset"),
        )
    });
    // SAFETY: the interpreter's functions, with these signatures.
    (s != 0 && r != 0).then(|| unsafe { (std::mem::transmute::<usize, ContextVarSet>(s), std::mem::transmute::<usize, ContextVarReset>(r)) })
}

/// `var.set(value)`: the token.
fn context_set<'py>(var: &Bound<'py, PyAny>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = var.py();
    match context_api() {
        // SAFETY: `var` is a ContextVar; a new reference or NULL with an exception set.
        Some((set, _)) => unsafe { Bound::from_owned_ptr_or_err(py, set(var.as_ptr(), value.as_ptr())) },
        None => CURRENT_RUN_SET.get_or_try_init(py, || var.getattr("set").map(Bound::unbind))?.bind(py).call1((value,)),
    }
}

/// `var.reset(token)`.
fn context_reset(var: &Bound<'_, PyAny>, token: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = var.py();
    match context_api() {
        // SAFETY: `var` is a ContextVar and `token` its token; -1 with an exception set.
        Some((_, reset)) => match unsafe { reset(var.as_ptr(), token.as_ptr()) } {
            0 => Ok(()),
            _ => Err(PyErr::fetch(py)),
        },
        None => CURRENT_RUN_RESET
            .get_or_try_init(py, || var.getattr("reset").map(Bound::unbind))?
            .bind(py)
            .call1((token,))
            .map(|_| ()),
    }
}

type AsUtf8AndSize = unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::Py_ssize_t) -> *const std::ffi::c_char;

/// A `str` key's UTF-8 as the string caches it (`PyUnicode_AsUTF8AndSize`: no copy), or None
/// (not a str, lone surrogates, or no such function) for `with_key` to convert or refuse.
fn key_utf8<'a>(key: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    static F: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let f = *F.get_or_init(|| crate::aguard::interpreter_symbol(c"PyUnicode_AsUTF8AndSize"));
    if f == 0 || !key.is_instance_of::<PyString>() {
        return None;
    }
    // SAFETY: the interpreter's function with this signature, on a str, the GIL held.
    let f = unsafe { std::mem::transmute::<usize, AsUtf8AndSize>(f) };
    let mut len: ffi::Py_ssize_t = 0;
    let p = unsafe { f(key.as_ptr(), &mut len) };
    if p.is_null() {
        drop(PyErr::take(key.py())); // the refusal is `with_key`'s to make
        return None;
    }
    // SAFETY: valid UTF-8 of `len` bytes owned by the str, which outlives the borrow.
    Some(unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(p.cast::<u8>(), len as usize)) })
}

/// `inspect.CO_COROUTINE`.
const CO_COROUTINE: i64 = 0x80;

/// True for a plain Python function that is not a coroutine function (by its code flags
/// or `inspect.markcoroutinefunction`'s mark), as `_is_coroutine_function` decides.
fn plain_sync_function(py: Python<'_>, f: &Bound<'_, PyAny>) -> PyResult<bool> {
    let ft = FUNCTION_TYPE.import(py, "types", "FunctionType")?;
    if f.get_type_ptr() != ft.as_type_ptr() {
        return Ok(false);
    }
    let flags: i64 = f.getattr(intern!(py, "__code__"))?.getattr(intern!(py, "co_flags"))?.extract()?;
    if flags & CO_COROUTINE != 0 {
        return Ok(false);
    }
    let d = f.getattr(intern!(py, "__dict__"))?;
    let d = d.cast::<PyDict>()?;
    Ok(d.is_empty() || !d.contains(intern!(py, "_is_coroutine_marker"))?)
}

/// The value `JsonSerializer.loads(data, content_type)` gives.
fn loads<'py>(py: Python<'py>, data: &[u8], content_type: &str) -> PyResult<Bound<'py, PyAny>> {
    if content_type != JSON_TYPE {
        return Ok(PyBytes::new(py, data).into_any());
    }
    match crate::json::loads(py, data) {
        Some(v) => Ok(v),
        // Anything unusual (and every error): Python's json, as `_json_loads` does.
        None => JSON_LOADS.import(py, MODULE, "_json_loads")?.call1((PyBytes::new(py, data),)),
    }
}

fn replay<'py>(slf: &Bound<'py, PyCache>, key: &Bound<'py, PyAny>, r: Record, watched: bool) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    if watched {
        slf.call_method1(intern!(py, "_emit"), (intern!(py, "replay"), key))?;
    }
    if r.is_error() {
        let data = PyBytes::new(py, r.result());
        let exc = slf.getattr(intern!(py, "_loads_error"))?.call1((data, r.content_type()))?;
        return Err(PyErr::from_value(exc));
    }
    loads(py, r.result(), r.content_type())
}

/// `RunContext(cache, lease)`: made as `__init__` makes it (its four slots).
fn run_context<'py>(slf: &Bound<'py, PyCache>, lease: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    let cls = RUN_CONTEXT.import(py, MODULE, "RunContext")?;
    // SAFETY: a Python class (heap type, no custom __new__); PyType_GenericNew allocates an
    // instance with its slots empty, as object.__new__ does.
    let ctx = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyType_GenericNew(cls.as_type_ptr(), PyTuple::empty(py).as_ptr(), std::ptr::null_mut()))?
    };
    let f = pyo3::types::PyBool::new(py, false);
    ctx.setattr(intern!(py, "_cache"), slf)?;
    ctx.setattr(intern!(py, "lease"), lease)?;
    ctx.setattr(intern!(py, "_over"), f)?;
    ctx.setattr(intern!(py, "_abandoned"), f)?;
    Ok(ctx)
}

/// Never awaitable, without asking `inspect` (as `_is_awaitable`'s first check).
fn plain_result(v: &Bound<'_, PyAny>) -> bool {
    use pyo3::types::{PyBool, PyFloat, PyInt, PyList};
    v.is_none()
        || v.is_exact_instance_of::<PyDict>()
        || v.is_exact_instance_of::<PyString>()
        || v.is_exact_instance_of::<PyInt>()
        || v.is_exact_instance_of::<PyList>()
        || v.is_exact_instance_of::<PyFloat>()
        || v.is_exact_instance_of::<PyBool>()
        || v.is_exact_instance_of::<PyTuple>()
        || v.is_exact_instance_of::<PyBytes>()
}

/// `JsonSerializer.dumps(value)` for a value it surely stores: (bytes, content type), or
/// None when `_serialise` must do it (other types, and every failure, which it reports).
fn serialise_plain(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Option<(Vec<u8>, &'static str)>> {
    if let Ok(b) = value.cast_exact::<PyBytes>() {
        return Ok(Some((b.as_bytes().to_vec(), OCTETS_TYPE)));
    }
    if let Some(data) = crate::json::dumps(value) {
        return Ok(Some((data, JSON_TYPE)));
    }
    // The C encoder `_result_encode` for the rest; a failure is left to `_serialise`.
    let Ok(text) = RESULT_ENCODE.import(py, MODULE, "_result_encode")?.call1((value,)) else { return Ok(None) };
    let Ok(text) = text.cast_into::<PyString>() else { return Ok(None) };
    Ok(text.to_cow().ok().map(|t| (t.as_bytes().to_vec(), JSON_TYPE)))
}

fn execute<'py>(
    slf: &Bound<'py, PyCache>,
    key: &Bound<'py, PyAny>,
    lease: Lease,
    f: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
    watched: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    let (took_over, token) = (lease.took_over(), lease.token());
    let lease_obj = Bound::new(py, PyLease { inner: lease })?.into_any();
    if watched && took_over {
        let extra = PyDict::new(py);
        extra.set_item(intern!(py, "token"), token)?;
        slf.call_method1(intern!(py, "_emit"), (intern!(py, "takeover"), key, extra))?;
    }
    let ctx = run_context(slf, &lease_obj)?;
    let var = CURRENT_RUN.import(py, MODULE, "_current_run")?;
    let token = context_set(var, &ctx)?;
    let called = f.call(args, kwargs.filter(|k| !k.is_empty()));
    let value = match called {
        Ok(v) => {
            context_reset(var, &token)?;
            v
        }
        Err(e) => {
            // As `_run`: the run is over, `_raised` ends the lease, then the context is reset.
            let handled = ctx
                .setattr(intern!(py, "_over"), true)
                .and_then(|_| slf.call_method1(intern!(py, "_raised"), (&ctx, e.value(py))).map(|_| ()));
            let reset_ok = context_reset(var, &token);
            if let Err(e2) = handled.and(reset_ok) {
                // Raised while handling `e`: chained to it, as Python does.
                // SAFETY: valid exception objects; PyException_SetContext steals the context.
                unsafe { ffi::PyException_SetContext(e2.value(py).as_ptr(), e.value(py).clone().into_ptr()) };
                return Err(e2);
            }
            return Err(e);
        }
    };
    ctx.setattr(intern!(py, "_over"), true)?;
    if !plain_result(&value) {
        let is_awaitable = IS_AWAITABLE.import(py, MODULE, "_is_awaitable")?;
        if is_awaitable.call1((&value,))?.is_truthy()? {
            // Refused (closed, the key released, `InvalidArgument` raised) by the Python layer.
            slf.call_method1(intern!(py, "_awaitable_result"), (&lease_obj, &value))?;
            return Err(pyo3::exceptions::PyRuntimeError::new_err("_awaitable_result did not raise"));
        }
    }
    let (data, content_type): (Vec<u8>, String) = match serialise_plain(py, &value)? {
        Some((d, ct)) => (d, ct.to_owned()),
        None => {
            // `_serialise` releases the key and raises `InvalidArgument` when it cannot be
            // stored; otherwise it returns (bytes, content type).
            let out = slf.call_method1(intern!(py, "_serialise"), (&lease_obj, &value))?;
            let (d, ct): (Bound<'py, PyAny>, String) = out.extract()?;
            let d = match d.cast::<PyBytes>() {
                Ok(b) => b.as_bytes().to_vec(),
                Err(_) => d.cast::<PyString>()?.to_cow()?.as_bytes().to_vec(),
            };
            (d, ct)
        }
    };
    let this = slf.get();
    let lease = &lease_obj.cast::<PyLease>()?.get().inner;
    let out = Output::new(data, content_type.as_str());
    let stored = this.inner.complete(lease, out);
    match stored {
        Ok(record) => loads(py, record.result(), record.content_type()),
        Err(e) => {
            if watched && matches!(e, Error::LeaseLost { .. }) {
                let extra = PyDict::new(py);
                extra.set_item(intern!(py, "token"), token)?;
                slf.call_method1(intern!(py, "_emit"), (intern!(py, "lease_lost"), key, extra))?;
            }
            Err(to_py(py, e, None))
        }
    }
}

/// `IdempotencyCache.run(key, fn, *args, fingerprint=None, **kwargs)`.
pub(crate) fn run<'py>(
    slf: &Bound<'py, PyCache>,
    key: &Bound<'py, PyAny>,
    f: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    fingerprint: Option<&Bound<'py, PyAny>>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    let this = slf.get();
    let (fast, watched) = this.fast_path();
    if !fast || !plain_sync_function(py, f)? {
        let fp = fingerprint.map_or_else(|| py.None().into_bound(py), |f| f.clone());
        let kw = kwargs.map_or_else(|| PyDict::new(py), |k| k.clone());
        return slf.call_method1(intern!(py, "_run_general"), (key, f, fp, args, kw));
    }
    // The fingerprint's bytes, as `_payload_bytes` makes them (None: no fingerprint).
    let fp_bytes = match fingerprint.filter(|f| !f.is_none()) {
        None => None,
        Some(p) => {
            let b = PAYLOAD_BYTES.import(py, MODULE, "_payload_bytes")?.call1((p,))?;
            if b.is_none() {
                None
            } else {
                Some(b.cast_into::<PyBytes>()?)
            }
        }
    };
    let fp = fingerprint_of(fp_bytes.as_ref().map(|b| b.as_bytes()));
    let begun = match key_utf8(key) {
        Some(k) => this.begin_core(py, k, &fp),
        // Not a str, or not encodable: `with_key` raises what it raises for `_claim`.
        None => with_key(py, key, |k| Ok(this.begin_core(py, k, &fp)))?,
    };
    let claimed = match begun {
        Ok(Begin::Execute(l)) => Ok(Acquired::Execute(l)),
        Ok(Begin::Replay(r)) => Ok(Acquired::Replay(r)),
        Ok(Begin::Mismatch(m)) => Err(to_py(py, m.to_error(), None)),
        Ok(Begin::InProgress(ip)) => match ip.waiter {
            None => Err(to_py(py, ip.to_error(), None)),
            Some(w) => block_on(py, w),
        },
        Err(e) => Err(to_py(py, e, None)),
    };
    match claimed {
        Err(e) => {
            if watched {
                // A mismatch or an in-progress refusal is reported (others are ignored there).
                slf.call_method1(intern!(py, "_emit_refusal"), (key, e.value(py)))?;
            }
            Err(e)
        }
        Ok(Acquired::Replay(r)) => replay(slf, key, r, watched),
        Ok(Acquired::Execute(lease)) => execute(slf, key, lease, f, args, kwargs, watched),
    }
}
