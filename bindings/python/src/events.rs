//! Breaker events to Python callbacks: `CircuitBreaker.on_event(callback)`.
//!
//! The core delivers every event (state changes, rejections, timeouts, fallbacks) in order,
//! outside the breaker's locks, on the thread that caused it; while such a listener is
//! registered the core reads the clock for rejections and timeouts (otherwise they cost
//! nothing extra). Each event reaches Python as a plain dict, so it can go to `logging`'s
//! `extra` or a JSON log as it is:
//!
//! | `type` | other keys |
//! |---|---|
//! | `"state_change"` | `breaker`, `at`, `from`, `to`, `reason` |
//! | `"rejected"` | `breaker`, `at`, `state`, `retry_after` (seconds, `inf` when forced open) |
//! | `"timeout"` | `breaker`, `at`, `took` (seconds) |
//! | `"fallback"` | `breaker`, `at` |
//!
//! `at` is seconds on the breaker's clock. A callback that raises is reported through
//! `sys.unraisablehook`; the breaker goes on.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::intern;
use seawall::{CircuitBreaker, Error, Event};

use crate::clock::seconds;
use crate::errors::to_py;

/// A registered callback; the breaker keeps the slot too (so the GC sees the callback).
pub(crate) type Slot = Arc<Mutex<Option<Py<PyAny>>>>;

/// Registers `callback` for every event of `breaker`; returns the listener id and its slot.
pub(crate) fn on_breaker_event(py: Python<'_>, breaker: &CircuitBreaker, callback: &Bound<'_, PyAny>) -> PyResult<(u64, Slot)> {
    if !callback.is_callable() {
        let what = callback.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        return Err(to_py(py, Error::InvalidArgument(format!("callback must be callable, got {what}")), None));
    }
    let slot: Slot = Arc::new(Mutex::new(Some(callback.clone().unbind())));
    let held = Arc::clone(&slot);
    let id = breaker.on_event(move |e: &Event| deliver(&held, e));
    Ok((id.0, slot))
}

/// The event as a dict (see the module docs).
pub(crate) fn event_dict<'py>(py: Python<'py>, e: &Event) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "type"), e.kind())?;
    match e {
        Event::StateChange(c) => {
            d.set_item(intern!(py, "breaker"), &*c.breaker)?;
            d.set_item(intern!(py, "at"), c.at.as_secs_f64())?;
            d.set_item(intern!(py, "from"), c.from.as_str())?;
            d.set_item(intern!(py, "to"), c.to.as_str())?;
            d.set_item(intern!(py, "reason"), c.reason.as_str())?;
        }
        Event::Rejected { breaker, state, retry_after, at } => {
            d.set_item(intern!(py, "breaker"), &**breaker)?;
            d.set_item(intern!(py, "at"), at.as_secs_f64())?;
            d.set_item(intern!(py, "state"), state.as_str())?;
            d.set_item(intern!(py, "retry_after"), seconds(*retry_after))?;
        }
        Event::Timeout { breaker, took, at } => {
            d.set_item(intern!(py, "breaker"), &**breaker)?;
            d.set_item(intern!(py, "at"), at.as_secs_f64())?;
            d.set_item(intern!(py, "took"), took.as_secs_f64())?;
        }
        Event::Fallback { breaker, at } => {
            d.set_item(intern!(py, "breaker"), &**breaker)?;
            d.set_item(intern!(py, "at"), at.as_secs_f64())?;
        }
    }
    Ok(d)
}

fn deliver(slot: &Slot, e: &Event) {
    Python::attach(|py| {
        let cb = slot.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|c| c.clone_ref(py));
        let Some(cb) = cb else { return };
        if let Err(err) = event_dict(py, e).and_then(|ev| cb.call1(py, (ev,))) {
            err.write_unraisable(py, Some(cb.bind(py)));
        }
    });
}
