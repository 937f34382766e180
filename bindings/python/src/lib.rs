//! `seawall._native`: the pyo3 module behind the `seawall` Python package.
//!
//! This crate only translates: Python values to core [`seawall::ConfigValue`]s, core errors
//! to the `seawall` exception classes ([`errors::to_py`], the one mapping), durations to and
//! from float seconds, and core state-change events to Python callbacks. Every decision
//! (state machine, option validation, messages, codes) is the core's.
//!
//! # The GIL
//!
//! No method here releases the GIL, on purpose. Every core call runs to completion without
//! blocking on anything a Python thread could hold: the breaker's locks guard a few
//! field updates (no user code, no I/O), and the core delivers events only after it has
//! released them. Because every core call is made with the GIL held, no two Python threads
//! are ever inside a core critical section at once, so the core's locks are never even
//! contended from Python; releasing and re-taking the GIL around each call would cost more
//! than the whole hot path (acquire: one atomic load; record: a few atomic adds).
//! State-change listeners are called from inside the core's delivery loop, after its locks
//! are released; they `Python::attach`, which is a no-op when the calling thread already
//! holds the GIL (always the case here) and safe if it ever does not.
//!
//! The exceptions are calls that wait for something outside the breaker: an idempotency
//! duplicate waiting for the owner's result and every call to a remote (Redis) store
//! (`idempotency.rs`, `store.rs`), and `Registry.health()` waiting for its check threads
//! (`registry.rs`): those release the GIL.

use pyo3::prelude::*;

mod aguard;
mod breaker;
mod cancel;
mod clock;
mod deadline;
mod errors;
mod events;
mod failpoint;
mod floor;
mod idem_fast;
mod idempotency;
mod json;
mod registry;
mod scope;
mod store;
mod values;
mod wrapped;

/// Native core of seawall. Use the `seawall` package, not this module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", seawall::VERSION)?;
    m.add_class::<clock::PyManualClock>()?;
    m.add_class::<clock::PySystemClock>()?;
    m.add_class::<breaker::PyBreaker>()?;
    m.add_class::<breaker::PyPermit>()?;
    m.add_class::<breaker::PyGuarded>()?;
    m.add_class::<aguard::AsyncGuarded>()?;
    m.add_class::<aguard::GuardedCall>()?;
    m.add_class::<breaker::ActiveCall>()?;
    m.add_class::<breaker::PyStateChange>()?;
    m.add_class::<floor::Floor>()?; // for benchmarks only (bench/python), not exported by `seawall`
    m.add_class::<deadline::PyDeadline>()?;
    m.add_class::<cancel::PyCancelToken>()?;
    m.add_class::<cancel::PyCancelGuard>()?;
    m.add_class::<cancel::PyTimer>()?;
    m.add_function(pyo3::wrap_pyfunction!(deadline::parse_grpc_timeout, m)?)?;
    m.add_function(pyo3::wrap_pyfunction!(deadline::format_grpc_timeout, m)?)?;
    scope::register(m)?;
    idempotency::register(m)?;
    store::register(m)?;
    registry::register(m)?;
    failpoint::register(m)?;
    Ok(())
}
