//! For seawall's own tests: arm a panic inside the core (`seawall::failpoint`), to prove
//! that a panic reaching Python is an exception, never a crashed interpreter. pyo3 turns
//! every panic in a binding call into `pyo3_runtime.PanicException` (exported as
//! `seawall.PanicException`): a `BaseException`, so a bug is not swallowed by
//! `except Exception`. Not part of the public API.

use pyo3::prelude::*;

use crate::errors::to_py;

/// Arms a panic at `site` (`"breaker.trip"`, `"idempotency.begin"`, `"registry.render"`).
#[pyfunction]
fn _arm_panic(py: Python<'_>, site: &str) -> PyResult<()> {
    seawall::failpoint::arm(site).map_err(|e| to_py(py, e, None))
}

/// Disarms every site.
#[pyfunction]
fn _disarm_panics() {
    seawall::failpoint::disarm();
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_arm_panic, m)?)?;
    m.add_function(wrap_pyfunction!(_disarm_panics, m)?)?;
    m.add("PanicException", m.py().get_type::<pyo3::panic::PanicException>())?;
    Ok(())
}
