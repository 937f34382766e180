//! What every function wrapper (`@breaker`, `@breaker` on an `async def`, `@timeout`)
//! shares with the function it replaces: bound as a method when it is a class attribute,
//! pickled by reference, and shown by its qualified name.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use pyo3::intern;

static METHOD_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `__get__`: the wrapper itself on the class, a bound method on an instance (as a plain
/// function would be).
pub(crate) fn bind<'py>(wrapper: &Bound<'py, PyAny>, instance: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if instance.is_none() {
        return Ok(wrapper.clone());
    }
    METHOD_TYPE.import(wrapper.py(), "types", "MethodType")?.call1((wrapper, instance))
}

/// `__reduce__`: by reference (its qualified name), like the function it replaces.
pub(crate) fn reduce<'py>(wrapper: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    wrapper.getattr(intern!(wrapper.py(), "__qualname__"))
}

/// The wrapped function's qualified name, for `__repr__` (`?` when it has none).
pub(crate) fn qualname(wrapper: &Bound<'_, PyAny>) -> String {
    wrapper
        .getattr(intern!(wrapper.py(), "__qualname__"))
        .and_then(|n| n.str().map(|s| s.to_string()))
        .unwrap_or_else(|_| "?".to_owned())
}
