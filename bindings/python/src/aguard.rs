//! `@breaker` on an `async def`: a native awaitable.
//!
//! [`AsyncGuarded`] is what the decorator returns for a plain coroutine function (when the
//! breaker has no `timeout` option and `call_async` is not overridden). Calling it returns
//! a [`GuardedCall`], a coroutine-like object (`__await__`, `send`, `throw`, `close`: an
//! `asyncio` task, `asyncio.run` and `await` all take it). Its first step does what
//! `call_async` does: acquire a permit (or answer the rejection: `BreakerOpen`, or the
//! fallback's result, awaited if it is awaitable), call the function, and drive the
//! coroutine it returned; when that coroutine returns or raises, the outcome is recorded
//! with the breaker's own classification ([`PyBreaker::settle_timed`]): the same decisions,
//! counts and events as the Python path, with no Python frame of its own.
//!
//! The coroutine is driven with `PyIter_Send` where the interpreter has it (3.10+, looked
//! up at run time because the wheel targets the 3.9 stable ABI), so a return costs no
//! `StopIteration`; on 3.9 through its `send` method. The clock is read only when the
//! breaker needs durations.

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::exceptions::{PyGeneratorExit, PyRuntimeError, PyRuntimeWarning, PyStopIteration, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::{PyTraverseError, PyVisit};
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::{ffi, intern, PyTypeInfo};
use seawall::SharedPermit;

use crate::breaker::PyBreaker;

static COROUTINE_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static IS_AWAITABLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static AWAIT_ANY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static RAISE_THROWN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

type IterSend = unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject, *mut *mut ffi::PyObject) -> c_int;

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// The address of a function the interpreter exports (0 when it has none): for public C
/// API functions outside the 3.9 stable ABI the wheel is built for.
pub(crate) fn interpreter_symbol(name: &std::ffi::CStr) -> usize {
    // SAFETY: dlsym with RTLD_DEFAULT (a null handle on glibc) and a NUL-terminated name.
    unsafe { dlsym(std::ptr::null_mut(), name.as_ptr()) as usize }
}

/// `PyIter_Send` (CPython 3.10+), or None on 3.9.
fn iter_send() -> Option<IterSend> {
    static F: OnceLock<usize> = OnceLock::new();
    let p = *F.get_or_init(|| interpreter_symbol(c"PyIter_Send"));
    // SAFETY: the symbol, when the interpreter exports it, has this signature (PySendResult
    // is a C enum: an int).
    (p != 0).then(|| unsafe { std::mem::transmute::<usize, IterSend>(p) })
}

/// What one step of the driven coroutine gave.
enum Step<'py> {
    Yield(Bound<'py, PyAny>),
    Return(Bound<'py, PyAny>),
    Raise(PyErr),
}

fn stop_value<'py>(e: &PyErr, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
    if e.is_instance_of::<PyStopIteration>(py) {
        Some(e.value(py).getattr(intern!(py, "value")).unwrap_or_else(|_| py.None().into_bound(py)))
    } else {
        None
    }
}

fn from_method<'py>(py: Python<'py>, r: PyResult<Bound<'py, PyAny>>) -> Step<'py> {
    match r {
        Ok(v) => Step::Yield(v),
        Err(e) => match stop_value(&e, py) {
            Some(v) => Step::Return(v),
            None => Step::Raise(e),
        },
    }
}

/// Sends `value` into `it` (what `await` does at each step).
fn send<'py>(py: Python<'py>, it: &Bound<'py, PyAny>, value: &Bound<'py, PyAny>) -> Step<'py> {
    if let Some(f) = iter_send() {
        let mut out: *mut ffi::PyObject = std::ptr::null_mut();
        // SAFETY: valid objects, the GIL held; `out` receives a new reference (or NULL with
        // an exception set when the result is PYGEN_ERROR).
        let r = unsafe { f(it.as_ptr(), value.as_ptr(), &mut out) };
        return match r {
            // SAFETY: a new reference on PYGEN_NEXT (1) and PYGEN_RETURN (0).
            1 => Step::Yield(unsafe { Bound::from_owned_ptr(py, out) }),
            0 => Step::Return(unsafe { Bound::from_owned_ptr(py, out) }),
            _ => Step::Raise(PyErr::fetch(py)),
        };
    }
    from_method(py, it.call_method1(intern!(py, "send"), (value,)))
}

/// A tuple (or an exception) given to `StopIteration` as is would become its arguments.
fn needs_wrapping(value: &Bound<'_, PyAny>) -> bool {
    !value.is_none()
        && (value.is_instance_of::<PyTuple>() || value.is_instance_of::<pyo3::exceptions::PyBaseException>())
}

/// `StopIteration(value)` as a `PyErr`.
fn stop(value: Bound<'_, PyAny>) -> PyErr {
    if needs_wrapping(&value) {
        PyStopIteration::new_err((value.unbind(),))
    } else {
        PyStopIteration::new_err(value.unbind())
    }
}

/// Sets `StopIteration(value)` as the current exception, unnormalized (as a generator's
/// return does), for a `tp_iternext` that returns NULL.
fn raise_stop(py: Python<'_>, value: &Bound<'_, PyAny>) {
    if needs_wrapping(value) {
        let args = PyTuple::new(py, [value]).map(|t| t.into_any());
        match args {
            // SAFETY: valid objects, the GIL held; PyErr_SetObject takes no reference.
            Ok(t) => unsafe { ffi::PyErr_SetObject(ffi::PyExc_StopIteration, t.as_ptr()) },
            Err(e) => e.restore(py),
        }
    } else {
        // SAFETY: as above.
        unsafe { ffi::PyErr_SetObject(ffi::PyExc_StopIteration, value.as_ptr()) }
    }
}

/// What a step of the call gives its caller.
enum Out<'py> {
    Yield(Bound<'py, PyAny>),
    Return(Bound<'py, PyAny>),
}

impl<'py> Out<'py> {
    fn into_result(self) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Out::Yield(v) => Ok(v),
            Out::Return(v) => Err(stop(v)),
        }
    }
}

/// The iterator `await obj` drives, or None when `obj` is not awaitable.
fn awaitable_iter<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let coro = COROUTINE_TYPE.import(py, "types", "CoroutineType")?;
    if obj.get_type_ptr() == coro.as_type_ptr() {
        return Ok(Some(obj.clone()));
    }
    if obj.is_none() {
        return Ok(None);
    }
    let is_awaitable = IS_AWAITABLE.import(py, "seawall._breaker", "_is_awaitable")?;
    if !is_awaitable.call1((obj,))?.is_truthy()? {
        return Ok(None);
    }
    // Any other awaitable: awaited by a one-line coroutine (`return await obj`).
    Ok(Some(AWAIT_ANY.import(py, "seawall._breaker", "_await_any")?.call1((obj,))?))
}

/// The exception `throw(*args)` raises into a coroutine that has not started: what a real
/// one raises for the same arguments.
fn thrown(py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyErr {
    match RAISE_THROWN.import(py, "seawall._breaker", "_raise_thrown").and_then(|f| f.call1(args)) {
        Err(e) => e,
        Ok(_) => PyRuntimeError::new_err("throw() did not raise"),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    Suspended,
    Running,
    Done,
}

/// The mutable part of a call.
struct State {
    args: Option<Py<PyTuple>>,
    kwargs: Option<Py<PyDict>>,
    /// The iterator being driven (the function's coroutine, or an awaitable fallback's).
    inner: Option<Py<PyAny>>,
    /// None before the start, after the outcome, and while a fallback is awaited.
    permit: Option<SharedPermit>,
    start: Option<Duration>,
    phase: Phase,
}

/// A cell read and written only while attached to the interpreter (the GIL held: the
/// module is built for the stable ABI, which has no free-threaded build), by closures
/// that never call into Python: values that may run Python code when dropped (objects,
/// the permit, whose outcome may call listeners) are taken out and dropped or used after
/// the closure returns. So no two borrows ever overlap, without a borrow flag to check.
struct GilCell<T>(UnsafeCell<T>);

// SAFETY: see the type's documentation: every access holds the GIL and is not re-entrant.
unsafe impl<T: Send> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    #[inline]
    fn with<R>(&self, _py: Python<'_>, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: the GIL is held (`_py`) and `f` does not call into Python (see above).
        f(unsafe { &mut *self.0.get() })
    }
}

/// One call of a function guarded by `@breaker` on an `async def`: a coroutine-like object
/// that acquires the permit when it is first stepped and records the outcome when the
/// function's coroutine finishes.
#[pyclass(name = "_GuardedCall", module = "seawall._native", frozen)]
pub struct GuardedCall {
    breaker: Py<PyBreaker>,
    f: Py<PyAny>,
    state: GilCell<State>,
}

enum Resume<'a, 'py> {
    Send(&'a Bound<'py, PyAny>),
    Throw(&'a Bound<'py, PyTuple>),
}

fn executing() -> PyErr {
    PyValueError::new_err("coroutine already executing")
}

impl GuardedCall {
    fn new(breaker: Py<PyBreaker>, f: Py<PyAny>, args: Option<Py<PyTuple>>, kwargs: Option<Py<PyDict>>) -> Self {
        let state = State { args, kwargs, inner: None, permit: None, start: None, phase: Phase::Created };
        Self { breaker, f, state: GilCell(UnsafeCell::new(state)) }
    }

    /// Records the outcome of the call (an exception of type `exc_type`, or a return) on
    /// `permit` (taken out of the state; None: nothing left to record).
    fn settle(&self, py: Python<'_>, permit: Option<SharedPermit>, start: Option<Duration>, exc_type: Option<&Bound<'_, PyAny>>) {
        if let Some(permit) = permit {
            let b = self.breaker.get();
            let took = b.elapsed(start);
            b.settle_timed(py, &permit, exc_type, took, false);
        }
    }

    /// Ends the step with what the driven iterator gave: suspended, or done (the outcome
    /// recorded).
    fn conclude<'py>(&self, py: Python<'py>, step: Step<'py>) -> PyResult<Out<'py>> {
        if let Step::Yield(v) = step {
            self.state.with(py, |s| s.phase = Phase::Suspended);
            return Ok(Out::Yield(v));
        }
        let (permit, start, inner) = self.state.with(py, |s| {
            s.phase = Phase::Done;
            (s.permit.take(), s.start, s.inner.take())
        });
        let out = match step {
            Step::Return(v) => {
                self.settle(py, permit, start, None);
                Ok(Out::Return(v))
            }
            Step::Raise(e) => {
                self.settle(py, permit, start, Some(e.get_type(py).as_any()));
                Err(e)
            }
            Step::Yield(_) => unreachable!(),
        };
        drop(inner);
        out
    }

    /// The first step: acquire (or answer the rejection), call the function, drive its
    /// coroutine to its first suspension.
    fn begin<'py>(&self, py: Python<'py>) -> PyResult<Out<'py>> {
        let (args, kwargs) = self.state.with(py, |s| {
            s.phase = Phase::Running;
            (s.args.take(), s.kwargs.take())
        });
        let b = self.breaker.bind(py);
        let core = b.get();
        let permit = match core.inner.try_acquire_shared() {
            Ok(p) => p,
            Err(r) => {
                // BreakerOpen, or the fallback's result (counted as a fallback by `rejected`).
                let it = core.rejected(b, r).and_then(|s| awaitable_iter(py, &s).map(|it| (s, it)));
                return match it {
                    Err(e) => self.conclude(py, Step::Raise(e)),
                    Ok((s, None)) => self.conclude(py, Step::Return(s)),
                    Ok((_, Some(it))) => {
                        let held = it.clone().unbind();
                        self.state.with(py, |s| s.inner = Some(held));
                        let step = send(py, &it, &py.None().into_bound(py));
                        self.conclude(py, step)
                    }
                };
            }
        };
        let start = core.start();
        self.state.with(py, |s| {
            s.permit = Some(permit);
            s.start = start;
        });
        let args = args.map_or_else(|| PyTuple::empty(py), |a| a.into_bound(py));
        let kwargs = kwargs.map(|k| k.into_bound(py));
        let result = self.f.bind(py).call(&args, kwargs.as_ref()).and_then(|r| awaitable_iter(py, &r).map(|it| (r, it)));
        drop((args, kwargs));
        match result {
            Err(e) => self.conclude(py, Step::Raise(e)),
            Ok((r, None)) => self.conclude(py, Step::Return(r)),
            Ok((_, Some(it))) => {
                let held = it.clone().unbind();
                self.state.with(py, |s| s.inner = Some(held));
                let step = send(py, &it, &py.None().into_bound(py));
                self.conclude(py, step)
            }
        }
    }

    fn resume<'py>(&self, py: Python<'py>, how: Resume<'_, 'py>) -> PyResult<Out<'py>> {
        enum Next {
            Begin,
            Drive(Py<PyAny>),
            Fail(&'static str),
            Thrown,
            NotStarted,
        }
        let (next, dropped) = self.state.with(py, |s| match s.phase {
            Phase::Running => (Next::Fail("executing"), None),
            Phase::Done => (Next::Fail("done"), None),
            Phase::Created => match how {
                Resume::Throw(_) => {
                    // Thrown in before it started: nothing was acquired or called.
                    s.phase = Phase::Done;
                    (Next::Thrown, Some((s.args.take(), s.kwargs.take())))
                }
                Resume::Send(v) if !v.is_none() => (Next::NotStarted, None),
                Resume::Send(_) => (Next::Begin, None),
            },
            Phase::Suspended => match &s.inner {
                Some(i) => {
                    s.phase = Phase::Running;
                    (Next::Drive(i.clone_ref(py)), None)
                }
                None => {
                    s.phase = Phase::Done;
                    (Next::Fail("done"), None)
                }
            },
        });
        drop(dropped);
        let inner = match next {
            Next::Begin => return self.begin(py),
            Next::Drive(i) => i.into_bound(py),
            Next::Fail("executing") => return Err(executing()),
            // Finished (or closed): as a coroutine, whatever is sent or thrown in.
            Next::Fail(_) => return Err(PyRuntimeError::new_err("cannot reuse already awaited coroutine")),
            Next::Thrown => {
                return Err(match how {
                    Resume::Throw(args) => thrown(py, args),
                    Resume::Send(_) => unreachable!("only a throw ends a call that has not started"),
                })
            }
            Next::NotStarted => {
                return Err(PyTypeError::new_err("can't send non-None value to a just-started coroutine"))
            }
        };
        let step = match how {
            Resume::Send(v) => send(py, &inner, v),
            Resume::Throw(args) => from_method(py, inner.call_method1(intern!(py, "throw"), args.clone())),
        };
        self.conclude(py, step)
    }
}

#[pymethods]
impl GuardedCall {
    fn __await__<'py>(slf: &Bound<'py, Self>) -> Bound<'py, Self> {
        slf.clone()
    }

    /// One step (what `await` calls): the value yielded, or the end.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.resume(py, Resume::Send(&py.None().into_bound(py)))? {
            Out::Yield(v) => Ok(Some(v)),
            Out::Return(v) => {
                // `StopIteration(v)` set as the interpreter reads it (no exception object is
                // made for a plain value); `None` makes pyo3 return NULL with it in place.
                raise_stop(py, &v);
                Ok(None)
            }
        }
    }

    /// Sends a value into the coroutine, as `coroutine.send`.
    fn send<'py>(&self, py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.resume(py, Resume::Send(value))?.into_result()
    }

    /// Raises an exception inside the coroutine, as `coroutine.throw`.
    #[pyo3(signature = (*args))]
    fn throw<'py>(&self, py: Python<'py>, args: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
        self.resume(py, Resume::Throw(args))?.into_result()
    }

    /// Closes the coroutine, as `coroutine.close`: the function's coroutine is closed, and
    /// the call's outcome is what `GeneratorExit` counts as (a cancellation by default).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let (phase, inner, dropped) = self.state.with(py, |s| {
            let phase = s.phase;
            match phase {
                Phase::Running | Phase::Done => (phase, None, None),
                Phase::Created => {
                    s.phase = Phase::Done;
                    (phase, None, Some((s.args.take(), s.kwargs.take())))
                }
                Phase::Suspended => {
                    s.phase = Phase::Running;
                    (phase, s.inner.as_ref().map(|i| i.clone_ref(py)), None)
                }
            }
        });
        drop(dropped);
        match phase {
            Phase::Running => return Err(executing()),
            Phase::Done | Phase::Created => return Ok(()),
            Phase::Suspended => {}
        }
        let r = match &inner {
            Some(i) => i.bind(py).call_method0(intern!(py, "close")).map(|_| ()),
            None => Ok(()),
        };
        let (permit, start, held) = self.state.with(py, |s| {
            s.phase = Phase::Done;
            (s.permit.take(), s.start, s.inner.take())
        });
        drop((inner, held));
        match r {
            Ok(()) => {
                self.settle(py, permit, start, Some(PyGeneratorExit::type_object(py).as_any()));
                Ok(())
            }
            Err(e) => {
                self.settle(py, permit, start, Some(e.get_type(py).as_any()));
                Err(e)
            }
        }
    }

    /// The guarded function's name.
    #[getter]
    fn __name__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.f.bind(py).getattr(intern!(py, "__name__"))
    }

    /// The guarded function's qualified name.
    #[getter]
    fn __qualname__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.f.bind(py).getattr(intern!(py, "__qualname__"))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("<coroutine {} guarded by breaker {:?}>", qualname(py, &self.f), self.breaker.get().inner.name())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.breaker)?;
        visit.call(&self.f)?;
        // SAFETY: the collector runs with the GIL held, never inside a `GilCell::with`
        // closure (they allocate nothing); read only.
        let s = unsafe { &*self.state.0.get() };
        visit.call(&s.args)?;
        visit.call(&s.kwargs)?;
        visit.call(&s.inner)?;
        Ok(())
    }

    fn __clear__(&self) {
        // SAFETY: called by the collector with the GIL held.
        let py = unsafe { Python::assume_attached() };
        let taken = self.state.with(py, |s| (s.args.take(), s.kwargs.take(), s.inner.take()));
        drop(taken);
    }
}

fn qualname(py: Python<'_>, f: &Py<PyAny>) -> String {
    f.bind(py)
        .getattr(intern!(py, "__qualname__"))
        .and_then(|n| n.str().map(|s| s.to_string()))
        .unwrap_or_else(|_| "?".to_owned())
}

impl Drop for GuardedCall {
    fn drop(&mut self) {
        let state = self.state.0.get_mut();
        if state.phase == Phase::Done {
            return;
        }
        let (phase, inner, permit, start) = (state.phase, state.inner.take(), state.permit.take(), state.start);
        Python::attach(|py| {
            if phase == Phase::Created {
                // What CPython says of a coroutine nobody awaited.
                if let Ok(msg) = CString::new(format!("coroutine '{}' was never awaited", qualname(py, &self.f))) {
                    let category = PyRuntimeWarning::type_object(py);
                    if let Err(e) = PyErr::warn(py, category.as_any(), &msg, 1) {
                        e.write_unraisable(py, Some(self.f.bind(py)));
                    }
                }
                return;
            }
            // Dropped unfinished: the function's coroutine is closed by its own finalizer,
            // then the outcome is what `GeneratorExit` counts as, as when an unfinished
            // coroutine is collected.
            drop(inner);
            self.settle(py, permit, start, Some(PyGeneratorExit::type_object(py).as_any()));
        });
    }
}

/// A coroutine function guarded by a breaker: what `@breaker` returns for a plain `async
/// def` (see the module's documentation). Calling it returns the call's awaitable. It binds
/// like a function when used as a method; `functools.update_wrapper` gives it the
/// function's name, doc and `__wrapped__`.
#[pyclass(name = "AsyncGuarded", module = "seawall._native", frozen, dict, weakref)]
pub struct AsyncGuarded {
    breaker: Py<PyBreaker>,
    f: Py<PyAny>,
}

#[pymethods]
impl AsyncGuarded {
    #[new]
    fn new(breaker: &Bound<'_, PyBreaker>, f: &Bound<'_, PyAny>) -> PyResult<Self> {
        if !f.is_callable() {
            let what = f.get_type().name().map(|n| n.to_string()).unwrap_or_default();
            return Err(PyTypeError::new_err(format!("a breaker guards a callable, got {what}")));
        }
        Ok(Self { breaker: breaker.clone().unbind(), f: f.clone().unbind() })
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> GuardedCall {
        GuardedCall::new(
            self.breaker.clone_ref(py),
            self.f.clone_ref(py),
            Some(args.clone().unbind()),
            kwargs.filter(|k| !k.is_empty()).map(|k| k.clone().unbind()),
        )
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
