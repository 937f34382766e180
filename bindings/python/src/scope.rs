//! Ambient deadlines: `seawall.timeout`, `seawall.deadline`, `current_deadline()`,
//! `current_token()`, `check_deadline()`.
//!
//! Every open `with seawall.timeout(...)` / `seawall.deadline(...)` block (and every call of
//! a function decorated with one) is a [`Scope`] in one `contextvars.ContextVar`, linked to
//! the scope it was opened in, so threads and asyncio tasks each see their own and tasks
//! created inside a scope inherit it. A scope's deadline is the earliest of its own and
//! its parent's.
//!
//! A scope costs one clock read at entry and one at exit, and no timer: its `CancelToken`
//! is made (and scheduled on the clock's timer) only when someone asks for it, and
//! unscheduled when the scope closes. Coroutines get their cancellation from the asyncio
//! layer (`seawall/_timeout.py`), which arms the event loop's timer (system clock) or a
//! [`PyTimer`] on the `ManualClock`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::{PyBaseException, PyException};
use pyo3::prelude::*;
use pyo3::pyclass::{PyTraverseError, PyVisit};
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use seawall::{CallbackId, CancelReason, CancelToken, Deadline, SharedClock, TimerGuard};

use crate::cancel::{lock, PyCancelToken, PyTimer};
use crate::clock::{clock_arg, clock_object, duration_arg, is_system};
use crate::deadline::PyDeadline;
use crate::errors::{self, to_py};

static VAR_GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static VAR_SET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static VAR_RESET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static COROUTINE_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CANCELLED_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMED_AWAITABLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The bound `get`, `set` and `reset` of the scopes' context variable (made once).
fn var(py: Python<'_>) -> PyResult<(&Bound<'_, PyAny>, &Bound<'_, PyAny>, &Bound<'_, PyAny>)> {
    let make = |name: &str| -> PyResult<Py<PyAny>> {
        static VAR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let var = VAR.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            let kw = PyDict::new(py);
            kw.set_item("default", py.None())?;
            Ok(py.import("contextvars")?.getattr("ContextVar")?.call(("seawall_deadline",), Some(&kw))?.unbind())
        })?;
        Ok(var.bind(py).getattr(name)?.unbind())
    };
    let get = VAR_GET.get_or_try_init(py, || make("get"))?;
    let set = VAR_SET.get_or_try_init(py, || make("set"))?;
    let reset = VAR_RESET.get_or_try_init(py, || make("reset"))?;
    Ok((get.bind(py), set.bind(py), reset.bind(py)))
}

/// The innermost open scope of this thread / task, if any.
fn head(py: Python<'_>) -> PyResult<Option<Bound<'_, Scope>>> {
    let (get, _, _) = var(py)?;
    let h = get.call0()?;
    if h.is_none() {
        Ok(None)
    } else {
        Ok(Some(h.cast_into::<Scope>()?))
    }
}

/// The lazily made token of a scope and what keeps it on time.
#[derive(Default)]
struct TokenCell {
    token: Option<Py<PyCancelToken>>,
    /// Cancels the token at the deadline; dropped (unscheduled) when the scope closes.
    guard: Option<TimerGuard>,
    /// The callback on the parent scope's token that cancels this one with it.
    link: Option<(CancelToken, CallbackId)>,
}

/// One open timeout or deadline scope: `with seawall.timeout(1.0) as scope:`.
///
/// `deadline` is the scope's deadline (the earliest of its own and the enclosing one),
/// `token` a `CancelToken` cancelled when it passes (made on first use), `expired` whether
/// it has passed, `timeout` the scope's own timeout in seconds (None for
/// `seawall.deadline`), `check()` raises `seawall.Timeout` once it has passed.
#[pyclass(name = "Scope", module = "seawall._native", frozen)]
pub struct Scope {
    deadline: Deadline,
    clock_obj: Option<Py<PyAny>>,
    timeout: Option<Duration>,
    /// True when the enclosing scope's deadline is earlier than this scope's own.
    inherited: bool,
    raises: bool,
    system: bool,
    parent: Option<Py<Scope>>,
    owner: Py<PyAny>,
    reset: Mutex<Option<Py<PyAny>>>,
    token: Mutex<TokenCell>,
    closed: AtomicBool,
    /// The asyncio layer's state of an `async with` scope (its timer and task).
    armed: Mutex<Option<Py<PyAny>>>,
}

impl Scope {
    /// The scope's token, made (and scheduled to be cancelled at the deadline, linked to
    /// the parent scope's token) on first use.
    fn token_of(slf: &Bound<'_, Scope>) -> PyResult<Py<PyCancelToken>> {
        let py = slf.py();
        let this = slf.get();
        if let Some(t) = lock(&this.token).token.as_ref() {
            return Ok(t.clone_ref(py));
        }
        // Built outside the cell's lock: making Python objects can run arbitrary code.
        let core = CancelToken::new();
        let link = match &this.parent {
            Some(p) => {
                let parent = Scope::token_of(p.bind(py))?;
                let parent = parent.get().inner.clone();
                let child = core.clone();
                // Runs at once when the parent is already cancelled.
                let id = parent.on_cancel(move |reason| {
                    child.cancel_with(reason);
                });
                Some((parent, id))
            }
            None => None,
        };
        let mut guard = None;
        if this.deadline.expired() {
            core.cancel_with(CancelReason::DeadlineExceeded);
        } else {
            let g = core.cancel_at(&this.deadline);
            if this.closed.load(Ordering::Acquire) {
                g.detach(); // asked for after the scope ended (by a task it started): keep it on time
            } else {
                guard = Some(g);
            }
        }
        let token = Py::new(py, PyCancelToken::wrap(core.clone()))?;
        let mut cell = lock(&this.token);
        if let Some(t) = cell.token.as_ref() {
            // Another thread made it meanwhile: use that one, undo ours.
            let t = t.clone_ref(py);
            drop(cell);
            drop(guard);
            if let Some((parent, id)) = link {
                parent.remove(id);
            }
            drop(core);
            return Ok(t);
        }
        cell.token = Some(token.clone_ref(py));
        if !this.closed.load(Ordering::Acquire) {
            cell.guard = guard;
            cell.link = link;
        }
        Ok(token)
    }

    /// Unschedules the token's timer and unlinks it from the parent; idempotent. The
    /// token itself stays (a callback registered on it just will not fire at the deadline).
    fn close_token(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (guard, link) = {
            let mut cell = lock(&self.token);
            (cell.guard.take(), cell.link.take())
        };
        // The closures dropped here hold core token clones; the cell keeps the token
        // alive, so no Python object is dropped under a core lock.
        drop(guard);
        if let Some((parent, id)) = link {
            parent.remove(id);
        }
    }

    /// The message of the `Timeout` this scope raises.
    fn message(&self) -> String {
        match self.timeout {
            Some(d) if !self.inherited => format!("{} s timeout exceeded", d.as_secs_f64()),
            _ => "deadline exceeded".to_owned(),
        }
    }
}

#[pymethods]
impl Scope {
    /// The scope's deadline: the earliest of its own and the enclosing scope's.
    #[getter]
    fn deadline(&self, py: Python<'_>) -> PyDeadline {
        PyDeadline::new(py, self.deadline.clone(), &self.clock_obj)
    }

    /// A `CancelToken` cancelled (reason `"deadline_exceeded"`) when the deadline passes
    /// while the scope is open, and with the enclosing scope's token.
    #[getter]
    fn token(slf: &Bound<'_, Self>) -> PyResult<Py<PyCancelToken>> {
        Scope::token_of(slf)
    }

    /// True once the deadline has passed.
    #[getter]
    fn expired(&self) -> bool {
        self.deadline.expired()
    }

    /// The scope's own timeout in seconds; None for a `seawall.deadline` scope.
    #[getter]
    fn timeout(&self) -> Option<f64> {
        self.timeout.map(|d| d.as_secs_f64())
    }

    /// Raises `seawall.Timeout` once the deadline has passed.
    fn check(&self, py: Python<'_>) -> PyResult<()> {
        if self.deadline.expired() {
            return Err(errors::timeout(py, self.message(), None));
        }
        Ok(())
    }

    /// Seconds left (for the asyncio layer).
    fn _remaining(&self) -> f64 {
        self.deadline.remaining().as_secs_f64()
    }

    /// True when the deadline is on the system clock (the asyncio layer then uses the
    /// event loop's timer).
    #[getter]
    fn _system(&self) -> bool {
        self.system
    }

    /// True for `seawall.timeout` scopes (they raise `Timeout`), False for
    /// `seawall.deadline` ones.
    #[getter]
    fn _raises(&self) -> bool {
        self.raises
    }

    /// Calls `callback()` when the deadline passes, through the clock's timer (inside
    /// `advance` for a `ManualClock`); returns a timer with `cancel()`.
    fn _schedule(&self, callback: &Bound<'_, PyAny>) -> PyTimer {
        PyTimer::schedule(self.deadline.clock(), self.deadline.instant(), callback.clone().unbind())
    }

    #[getter]
    fn _armed(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        lock(&self.armed).as_ref().map(|a| a.clone_ref(py))
    }

    #[setter(_armed)]
    fn set_armed(&self, value: Option<Py<PyAny>>) {
        let old = std::mem::replace(&mut *lock(&self.armed), value);
        drop(old);
    }

    fn __repr__(&self) -> String {
        let what = match self.timeout {
            Some(d) => format!("timeout={}", d.as_secs_f64()),
            None => "deadline".to_owned(),
        };
        format!("<seawall.Scope {what} remaining={}>", self.deadline.remaining().as_secs_f64())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.clock_obj)?;
        visit.call(&self.parent)?;
        visit.call(&self.owner)?;
        if let Ok(r) = self.reset.try_lock() {
            visit.call(&*r)?;
        }
        if let Ok(cell) = self.token.try_lock() {
            visit.call(&cell.token)?;
        }
        if let Ok(a) = self.armed.try_lock() {
            visit.call(&*a)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let reset = lock(&self.reset).take();
        let armed = lock(&self.armed).take();
        drop(reset);
        drop(armed);
    }
}

/// When the deadline comes from.
enum Kind {
    /// `seconds` from the moment the scope opens.
    After(Duration),
    /// A fixed deadline.
    At(Deadline),
}

/// `seawall.timeout(seconds)` / `seawall.deadline(seconds)` (native part): a reusable
/// decorator and context manager. `seawall.TimeLimit` subclasses it with the decorator and
/// `async with`.
#[pyclass(name = "TimeLimit", module = "seawall._native", subclass, frozen, weakref)]
pub struct PyTimeLimit {
    kind: Kind,
    raises: bool,
    clock: SharedClock,
    clock_obj: Option<Py<PyAny>>,
}

impl PyTimeLimit {
    /// A limit of `d` on `clock` (for a breaker's `timeout` option).
    pub(crate) fn after(d: Duration, clock: SharedClock, clock_obj: Option<Py<PyAny>>) -> Self {
        Self { kind: Kind::After(d), raises: true, clock, clock_obj }
    }

    /// Opens a scope: computes its deadline and makes it the current one.
    pub(crate) fn open<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Scope>> {
        let py = slf.py();
        let this = slf.get();
        let parent = head(py)?;
        let (own, timeout) = match &this.kind {
            Kind::After(d) => (Deadline::after(this.clock.clone(), *d), Some(*d).filter(|_| this.raises)),
            Kind::At(d) => (d.clone(), None),
        };
        let own_at = own.instant();
        let (deadline, clock_obj) = match &parent {
            Some(p) => {
                let p = p.get();
                let d = p.deadline.earliest(&own).map_err(|e| match e {
                    seawall::Error::InvalidArgument(why) => {
                        let why = format!("{why} (this scope's clock is not the clock of the enclosing scope)");
                        to_py(py, seawall::Error::InvalidArgument(why), None)
                    }
                    other => to_py(py, other, None),
                })?;
                (d, this.clock_obj.as_ref().or(p.clock_obj.as_ref()).map(|c| c.clone_ref(py)))
            }
            None => (own, this.clock_obj.as_ref().map(|c| c.clone_ref(py))),
        };
        let inherited = deadline.instant() < own_at;
        let scope = Bound::new(
            py,
            Scope {
                inherited,
                system: is_system(deadline.clock()),
                deadline,
                clock_obj,
                timeout,
                raises: this.raises,
                parent: parent.map(Bound::unbind),
                owner: slf.clone().into_any().unbind(),
                reset: Mutex::new(None),
                token: Mutex::new(TokenCell::default()),
                closed: AtomicBool::new(false),
                armed: Mutex::new(None),
            },
        )?;
        let (_, set, _) = var(py)?;
        let reset = set.call1((&scope,))?;
        *lock(&scope.get().reset) = Some(reset.unbind());
        Ok(scope)
    }
}

/// Makes `scope` no longer current and unschedules its token. Out-of-order exits (a
/// scope closed while a scope opened inside it is still open) leave the variable to the
/// inner scope, which skips closed scopes when it closes.
fn close(py: Python<'_>, scope: &Bound<'_, Scope>) -> PyResult<()> {
    let this = scope.get();
    this.close_token();
    let reset_token = lock(&this.reset).take();
    let (get, set, reset) = var(py)?;
    let current = get.call0()?;
    if current.is(scope) {
        let restored = match &reset_token {
            Some(t) => reset.call1((t,)).is_ok(),
            None => false,
        };
        // The scope to make current: the nearest enclosing one that is still open.
        let mut parent = this.parent.as_ref().map(|p| p.bind(py).clone());
        let mut skipped = false;
        while let Some(p) = parent.as_ref().filter(|p| p.get().closed.load(Ordering::Acquire)) {
            parent = p.get().parent.as_ref().map(|q| q.bind(py).clone());
            skipped = true;
        }
        if !restored || skipped {
            set.call1((parent,))?;
        }
    }
    Ok(())
}

/// What a closed scope raises instead of the block's own outcome, if anything: a
/// `Timeout` when the scope raises and its deadline has passed (or its timer `fired`)
/// and the block returned, or raised an `Exception` (which becomes the `__cause__`) other
/// than a `Timeout`, or was cancelled by the scope's own timer (`fired`). Never when an
/// `outside` cancellation of the task is pending too: that one propagates untouched.
fn late(
    py: Python<'_>,
    scope: &Scope,
    exc: Option<&Bound<'_, PyBaseException>>,
    fired: bool,
    outside: bool,
) -> PyResult<Option<PyErr>> {
    if !scope.raises || outside || !(fired || scope.deadline.expired()) {
        return Ok(None);
    }
    let Some(e) = exc else {
        return Ok(Some(errors::timeout(py, scope.message(), None)));
    };
    if errors::is_timeout(py, e.as_any()) {
        return Ok(None);
    }
    let convert = e.is_instance_of::<PyException>()
        || (fired && e.is_instance(CANCELLED_ERROR.import(py, "asyncio", "CancelledError")?)?);
    Ok(convert.then(|| errors::timeout(py, scope.message(), Some(e))))
}

/// Closes `scope` after its block ended with `exc` and returns the `Timeout` to raise, if
/// any. The asyncio layer says whether the scope's timer `fired` (it cancelled the task)
/// and whether an `outside` cancellation is pending too.
pub(crate) fn finish(
    py: Python<'_>,
    scope: &Bound<'_, Scope>,
    exc: Option<&Bound<'_, PyBaseException>>,
    fired: bool,
    outside: bool,
) -> PyResult<Option<PyErr>> {
    close(py, scope)?;
    late(py, scope.get(), exc, fired, outside)
}

/// The result of a sync call under a limit, and whether the limit's own `Timeout` replaced it.
pub(crate) struct Timed<'py> {
    pub result: PyResult<Bound<'py, PyAny>>,
    pub timed_out: bool,
}

/// Calls `f(*args, **kwargs)` in a new scope of `limit`. A coroutine returned by `f` is
/// handed back as it is when `raw_coroutines` (the breaker wraps it itself), else wrapped
/// so that awaiting it runs under the limit. `Err` when the scope could not be opened
/// (`f` was not called).
pub(crate) fn call_sync<'py>(
    limit: &Bound<'py, PyTimeLimit>,
    f: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
    raw_coroutines: bool,
) -> PyResult<Timed<'py>> {
    let py = limit.py();
    let scope = PyTimeLimit::open(limit)?;
    let result = f.call(args, kwargs.filter(|k| !k.is_empty()));
    if let Ok(value) = &result {
        let coro = match COROUTINE_TYPE.import(py, "types", "CoroutineType") {
            Ok(c) => c,
            Err(e) => return Ok(Timed { result: Err(e), timed_out: false }),
        };
        if value.get_type_ptr() == coro.as_type_ptr() {
            // A coroutine function: the work happens when it is awaited.
            if let Err(e) = close(py, &scope) {
                return Ok(Timed { result: Err(e), timed_out: false });
            }
            if raw_coroutines {
                return Ok(Timed { result, timed_out: false });
            }
            let wrap = match TIMED_AWAITABLE.import(py, "seawall._timeout", "_timed_awaitable") {
                Ok(w) => w,
                Err(e) => return Ok(Timed { result: Err(e), timed_out: false }),
            };
            return Ok(Timed { result: wrap.call1((limit, value)), timed_out: false });
        }
    }
    let exc = result.as_ref().err().map(|e| e.value(py).clone());
    Ok(match finish(py, &scope, exc.as_ref(), false, false) {
        Ok(Some(timeout)) => Timed { result: Err(timeout), timed_out: true },
        Ok(None) => Timed { result, timed_out: false },
        Err(e) => Timed { result: Err(e), timed_out: false },
    })
}

#[pymethods]
impl PyTimeLimit {
    #[new]
    #[pyo3(signature = (seconds, *, clock=None, raises=true))]
    fn new(
        py: Python<'_>,
        seconds: &Bound<'_, PyAny>,
        clock: Option<&Bound<'_, PyAny>>,
        raises: bool,
    ) -> PyResult<Self> {
        if let Ok(d) = seconds.cast::<PyDeadline>() {
            let d = d.get();
            if clock.is_some_and(|c| !c.is_none()) {
                return Err(to_py(
                    py,
                    seawall::Error::InvalidArgument("clock: a Deadline brings its own clock; do not pass clock=".into()),
                    None,
                ));
            }
            return Ok(Self {
                kind: Kind::At(d.inner.clone()),
                raises,
                clock: d.inner.clock().clone(),
                clock_obj: d.clock_obj.as_ref().map(|c| c.clone_ref(py)),
            });
        }
        let d = duration_arg(py, "seconds", seconds)?;
        let (clock, clock_obj) = clock_arg(py, clock)?;
        Ok(Self { kind: Kind::After(d), raises, clock, clock_obj })
    }

    /// The limit in seconds; None when it is a fixed `Deadline`.
    #[getter]
    fn seconds(&self) -> Option<f64> {
        match &self.kind {
            Kind::After(d) => Some(d.as_secs_f64()),
            Kind::At(_) => None,
        }
    }

    /// The fixed `Deadline` given instead of seconds, or None.
    #[getter(deadline)]
    fn fixed_deadline(&self, py: Python<'_>) -> Option<PyDeadline> {
        match &self.kind {
            Kind::At(d) => Some(PyDeadline::new(py, d.clone(), &self.clock_obj)),
            Kind::After(_) => None,
        }
    }

    /// The clock the limit is measured on.
    #[getter]
    fn clock(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        clock_object(py, &self.clock_obj)
    }

    /// True for `seawall.timeout` (raises `Timeout`), False for `seawall.deadline`.
    #[getter]
    fn raises(&self) -> bool {
        self.raises
    }

    /// Opens a scope and returns it (`with seawall.timeout(1.0) as scope:`).
    fn __enter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Scope>> {
        PyTimeLimit::open(slf)
    }

    /// Closes the innermost open scope of this limit; raises `seawall.Timeout` when the
    /// deadline passed before the block ended (see `Scope`).
    #[pyo3(signature = (_exc_type=None, exc=None, _tb=None))]
    fn __exit__(
        slf: &Bound<'_, Self>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let py = slf.py();
        let Some(scope) = Self::_find(slf)? else { return Ok(false) };
        let exc = exc.and_then(|e| e.cast::<PyBaseException>().ok());
        match finish(py, &scope, exc, false, false)? {
            Some(timeout) => Err(timeout),
            None => Ok(false),
        }
    }

    /// Opens a scope (the asyncio layer arms it).
    fn _enter<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Scope>> {
        PyTimeLimit::open(slf)
    }

    /// Closes `scope` after its block ended with `exc`; raises `seawall.Timeout` when due.
    #[pyo3(signature = (scope, exc, fired=false, outside=false))]
    fn _exit(
        &self,
        py: Python<'_>,
        scope: &Bound<'_, Scope>,
        exc: Option<&Bound<'_, PyBaseException>>,
        fired: bool,
        outside: bool,
    ) -> PyResult<()> {
        match finish(py, scope, exc, fired, outside)? {
            Some(timeout) => Err(timeout),
            None => Ok(()),
        }
    }

    /// The innermost open scope this limit opened in the current context, or None.
    fn _find<'py>(slf: &Bound<'py, Self>) -> PyResult<Option<Bound<'py, Scope>>> {
        let py = slf.py();
        let mut cur = head(py)?;
        while let Some(s) = cur {
            if s.get().owner.is(slf) && !s.get().closed.load(Ordering::Acquire) {
                return Ok(Some(s));
            }
            cur = s.get().parent.as_ref().map(|p| p.bind(py).clone());
        }
        Ok(None)
    }

    /// Calls `f(*args, **kwargs)` under the limit (the sync decorator's path).
    #[pyo3(signature = (f, args, kwargs=None))]
    fn _call<'py>(
        slf: &Bound<'py, Self>,
        f: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        call_sync(slf, f, args, kwargs, false)?.result
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.get();
        let what = match &this.kind {
            Kind::After(d) => format!("{}", d.as_secs_f64()),
            Kind::At(d) => format!("at={}", d.instant().as_secs_f64()),
        };
        let name = if this.raises { "timeout" } else { "deadline" };
        let clock = if is_system(&this.clock) { "" } else { ", clock=ManualClock" };
        Ok(format!("seawall.{name}({what}{clock})"))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.clock_obj)
    }
}

/// A sync function under a time limit: what `@seawall.timeout(...)` returns for one.
/// Calling it is one native call. It binds like a function when used as a method.
#[pyclass(name = "TimedFunction", module = "seawall._native", frozen, dict, weakref)]
pub struct PyTimedFunction {
    limit: Py<PyTimeLimit>,
    f: Py<PyAny>,
}

#[pymethods]
impl PyTimedFunction {
    #[new]
    fn new(limit: &Bound<'_, PyTimeLimit>, f: &Bound<'_, PyAny>) -> PyResult<Self> {
        if !f.is_callable() {
            let what = f.get_type().name().map(|n| n.to_string()).unwrap_or_default();
            return Err(pyo3::exceptions::PyTypeError::new_err(format!("a timeout decorates a callable, got {what}")));
        }
        Ok(Self { limit: limit.clone().unbind(), f: f.clone().unbind() })
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        call_sync(self.limit.bind(py), self.f.bind(py), args, kwargs, false)?.result
    }

    fn __get__<'py>(
        slf: &Bound<'py, Self>,
        instance: &Bound<'py, PyAny>,
        _owner: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::wrapped::bind(slf.as_any(), instance)
    }

    /// The time limit.
    #[getter]
    fn timeout<'py>(&self, py: Python<'py>) -> Bound<'py, PyTimeLimit> {
        self.limit.bind(py).clone()
    }

    /// Pickled by reference, like the function it replaces.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        crate::wrapped::reduce(slf.as_any())
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let name = crate::wrapped::qualname(slf.as_any());
        format!("<function {name} with a time limit>")
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.limit)?;
        visit.call(&self.f)?;
        Ok(())
    }
}

/// The deadline of the innermost open scope (`seawall.timeout` / `seawall.deadline`) of
/// this thread or task, or None.
#[pyfunction]
pub fn current_deadline(py: Python<'_>) -> PyResult<Option<PyDeadline>> {
    Ok(head(py)?.map(|s| {
        let s = s.get();
        PyDeadline::new(py, s.deadline.clone(), &s.clock_obj)
    }))
}

/// The `CancelToken` of the innermost open scope (cancelled when its deadline passes), or
/// None outside any scope.
#[pyfunction]
pub fn current_token(py: Python<'_>) -> PyResult<Option<Py<PyCancelToken>>> {
    match head(py)? {
        Some(s) => Ok(Some(Scope::token_of(&s)?)),
        None => Ok(None),
    }
}

/// The innermost open scope, or None.
#[pyfunction]
pub fn current_scope(py: Python<'_>) -> PyResult<Option<Bound<'_, Scope>>> {
    head(py)
}

/// Raises `seawall.Timeout` when the current deadline has passed; does nothing outside
/// any scope. The cooperative check for synchronous code.
#[pyfunction]
pub fn check_deadline(py: Python<'_>) -> PyResult<()> {
    match head(py)? {
        Some(s) => s.get().check(py),
        None => Ok(()),
    }
}

/// Timers scheduled on the seawall timer thread (system clock) and not yet run.
#[pyfunction]
pub fn pending_system_timers() -> usize {
    seawall::timer::pending_system_timers()
}

/// Registers the classes and functions of this module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Scope>()?;
    m.add_class::<PyTimeLimit>()?;
    m.add_class::<PyTimedFunction>()?;
    m.add_function(pyo3::wrap_pyfunction!(current_deadline, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(current_token, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(current_scope, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(check_deadline, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(pending_system_timers, m)?)?;
    Ok(())
}
