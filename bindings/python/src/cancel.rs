//! `CancelToken`, the guard `cancel_at` returns, and one-shot timers on a clock.
//!
//! # Callbacks, the GIL and locks
//!
//! A Python callback is held in a [`Slot`] that the core's closure owns. The closure runs
//! on the thread that cancels: a Python thread (`cancel()`, `ManualClock.advance`), which
//! holds the GIL already, or the core's timer thread, which attaches to the interpreter
//! first (and does nothing when the interpreter is shutting down). The core runs every
//! callback after releasing its own locks, and this module holds none of its own while
//! calling Python.
//!
//! Python objects are never dropped under a core lock either (a drop can run arbitrary
//! Python code, which could come back to the same token or clock): removing a callback
//! first takes the callable out of its slot, then unregisters the (now empty) closure,
//! then drops the callable; a guard keeps its own clone of the token so that unscheduling
//! never drops the token's last reference under the clock's lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use pyo3::prelude::*;
use pyo3::pyclass::{PyTraverseError, PyVisit};
use seawall::{CallbackId, CancelReason, CancelToken, SharedClock, TimerGuard, TimerId};

use crate::deadline::PyDeadline;
use crate::errors::to_py;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while one of these is held; recover the data if it ever did.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A Python callable owned by a core closure, taken out exactly once.
pub(crate) type Slot = Arc<Mutex<Option<Py<PyAny>>>>;

/// Calls the callable in `slot` (once) with `args`; an exception goes to
/// `sys.unraisablehook`. Safe from any thread.
fn deliver<A>(slot: &Slot, args: A)
where
    A: for<'py> pyo3::call::PyCallArgs<'py>,
{
    // `try_attach`: no call (and no panic) while the interpreter is shutting down.
    let _ = Python::try_attach(|py| {
        let cb = lock(slot).take();
        if let Some(cb) = cb {
            if let Err(e) = cb.call1(py, args) {
                e.write_unraisable(py, Some(cb.bind(py)));
            }
        }
    });
}

pub(crate) fn check_callable(py: Python<'_>, callback: &Bound<'_, PyAny>) -> PyResult<()> {
    if callback.is_callable() {
        return Ok(());
    }
    let what = callback.get_type().name().map(|n| n.to_string()).unwrap_or_default();
    Err(to_py(py, seawall::Error::InvalidArgument(format!("callback = <{what}>: must be callable")), None))
}

fn reason_str(r: CancelReason) -> &'static str {
    r.as_str()
}

#[derive(Default)]
struct Callbacks {
    next: u64,
    /// Our ids (numbers Python can hold) to the core's ids and the callables' slots. A
    /// slot's only strong reference is the core's closure, so a dead `Weak` means the
    /// callback ran or was dropped.
    map: HashMap<u64, (CallbackId, Weak<Mutex<Option<Py<PyAny>>>>)>,
}

/// A cancellation signal shared by the caller and the work.
///
/// `cancel()` cancels it (once; later calls return False); `cancelled` and `reason`
/// (`"cancelled"`, `"deadline_exceeded"` or None) read it; `on_cancel(callback)` registers
/// a callback run once with the reason when it is cancelled (at once if it already is).
#[pyclass(name = "CancelToken", module = "seawall._native", frozen)]
pub struct PyCancelToken {
    pub(crate) inner: CancelToken,
    callbacks: Mutex<Callbacks>,
}

impl PyCancelToken {
    pub(crate) fn wrap(inner: CancelToken) -> Self {
        Self { inner, callbacks: Mutex::new(Callbacks::default()) }
    }
}

#[pymethods]
impl PyCancelToken {
    #[new]
    fn new() -> Self {
        Self::wrap(CancelToken::new())
    }

    /// Cancels the token (reason `"cancelled"`) and runs its callbacks, on this thread.
    /// True when this call cancelled it, False when it already was.
    fn cancel(&self) -> bool {
        self.inner.cancel()
    }

    /// True once cancelled.
    #[getter]
    fn cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    /// `"cancelled"`, `"deadline_exceeded"`, or None while not cancelled.
    #[getter]
    fn reason(&self) -> Option<&'static str> {
        self.inner.reason().map(reason_str)
    }

    /// Runs `callback(reason)` once when the token is cancelled (now, if it already is),
    /// on the thread that cancels it: yours for `cancel()` and `ManualClock.advance`, the
    /// seawall timer thread for a deadline on the system clock. An exception it raises is
    /// reported through `sys.unraisablehook`. Returns an id for `remove`.
    fn on_cancel(&self, py: Python<'_>, callback: &Bound<'_, PyAny>) -> PyResult<u64> {
        check_callable(py, callback)?;
        let slot: Slot = Arc::new(Mutex::new(Some(callback.clone().unbind())));
        let weak = Arc::downgrade(&slot);
        let id = {
            let mut c = lock(&self.callbacks);
            c.next += 1;
            c.next
        };
        let held = slot;
        // Runs at once (on this thread, with the GIL) when already cancelled.
        let cid = self.inner.on_cancel(move |reason| deliver(&held, (reason_str(reason),)));
        let mut c = lock(&self.callbacks);
        if c.map.len() >= 64 && c.map.len().is_power_of_two() {
            c.map.retain(|_, (_, w)| w.strong_count() > 0);
        }
        if weak.strong_count() > 0 {
            c.map.insert(id, (cid, weak));
        }
        Ok(id)
    }

    /// Removes a callback by the id `on_cancel` returned. True when it was removed before
    /// running; False when it ran, runs now, or the id is unknown.
    fn remove(&self, id: u64) -> bool {
        let entry = lock(&self.callbacks).map.remove(&id);
        let Some((cid, weak)) = entry else { return false };
        // Take the callable out first: the core drops the (now empty) closure under the
        // token's lock, and the callable is dropped below, outside every lock.
        let callable = weak.upgrade().and_then(|slot| lock(&slot).take());
        self.inner.remove(cid);
        callable.is_some()
    }

    /// A token cancelled when this one is (with the same reason), and cancellable on its
    /// own without affecting this one.
    fn child(&self) -> Self {
        Self::wrap(self.inner.child())
    }

    /// Cancels the token (reason `"deadline_exceeded"`) when `deadline` passes, through
    /// the deadline clock's timer: the seawall timer thread for the system clock, inside
    /// `advance` for a `ManualClock`. Returns a guard: `guard.cancel()` (or leaving
    /// `with token.cancel_at(d):`) unschedules it. A guard that is garbage-collected
    /// leaves the timer scheduled.
    fn cancel_at(&self, deadline: &Bound<'_, PyDeadline>) -> PyCancelGuard {
        let guard = self.inner.cancel_at(&deadline.get().inner);
        PyCancelGuard { inner: Mutex::new(Some((guard, self.inner.clone()))) }
    }

    fn __repr__(&self) -> String {
        match self.inner.reason() {
            Some(r) => format!("CancelToken(reason={:?})", r.as_str()),
            None => "CancelToken(reason=None)".to_owned(),
        }
    }
}

/// What `CancelToken.cancel_at` returns: `cancel()` (or the end of a `with` block)
/// unschedules the cancellation.
#[pyclass(name = "CancelGuard", module = "seawall._native", frozen)]
pub struct PyCancelGuard {
    inner: Mutex<Option<(TimerGuard, CancelToken)>>,
}

#[pymethods]
impl PyCancelGuard {
    /// Unschedules the cancellation (nothing happens if it already fired).
    fn cancel(&self) {
        let taken = lock(&self.inner).take();
        if let Some((guard, token)) = taken {
            drop(guard); // unschedules; the closure's token clone is not the last (`token`)
            drop(token);
        }
    }

    /// True until `cancel()` (or the end of the `with` block).
    #[getter]
    fn active(&self) -> bool {
        lock(&self.inner).is_some()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.cancel();
        false
    }
}

impl Drop for PyCancelGuard {
    fn drop(&mut self) {
        // Garbage-collected without cancel(): the timer stays scheduled, as Python timers do.
        if let Some((guard, token)) = lock(&self.inner).take() {
            guard.detach();
            drop(token);
        }
    }
}

/// A one-shot timer on a clock, calling a Python callable (with no argument) at a clock
/// time; what the asyncio layer uses to cancel a task on a `ManualClock`.
#[pyclass(name = "_Timer", module = "seawall._native", frozen)]
pub struct PyTimer {
    clock: SharedClock,
    id: Mutex<Option<TimerId>>,
    slot: Slot,
}

impl PyTimer {
    /// Schedules `callback()` at clock time `at` on `clock` (at once, on this thread, when
    /// `at` has passed on a `ManualClock`).
    pub(crate) fn schedule(clock: &SharedClock, at: std::time::Duration, callback: Py<PyAny>) -> Self {
        let slot: Slot = Arc::new(Mutex::new(Some(callback)));
        let held = Arc::clone(&slot);
        let id = clock.schedule(at, Box::new(move || deliver(&held, ())));
        Self { clock: clock.clone(), id: Mutex::new(Some(id)), slot }
    }
}

#[pymethods]
impl PyTimer {
    /// Unschedules the timer (nothing happens if it already fired).
    fn cancel(&self) {
        let callable = lock(&self.slot).take();
        let id = lock(&self.id).take();
        if let Some(id) = id {
            self.clock.cancel_timer(id);
        }
        drop(callable);
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Ok(cb) = self.slot.try_lock() {
            visit.call(&*cb)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let callable = lock(&self.slot).take();
        drop(callable);
    }
}
