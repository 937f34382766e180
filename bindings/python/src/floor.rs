//! `seawall._native._Floor`: for benchmarks only, not part of the API.
//!
//! The least a native wrapper can cost: a pyo3 object that holds a function and calls it,
//! with the same calling convention as `Guarded` (what `@breaker` returns), and a `call`
//! method shaped like `CircuitBreaker.call`. It decides nothing, counts nothing and is not
//! exported by the `seawall` package. `bench/python/` measures the breaker's decorator
//! against it: the floor's overhead over a bare Python call is the price of crossing into
//! native code and back, which no native decorator can avoid.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

#[pyclass(name = "_Floor", module = "seawall._native", frozen)]
pub struct Floor {
    f: Py<PyAny>,
}

#[pymethods]
impl Floor {
    #[new]
    #[pyo3(signature = (f=None))]
    fn new(py: Python<'_>, f: Option<&Bound<'_, PyAny>>) -> Self {
        Self { f: f.map_or_else(|| py.None(), |f| f.clone().unbind()) }
    }

    /// Calls the held function with the arguments, as `Guarded.__call__` does.
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.f.bind(py).call(args, kwargs.filter(|k| !k.is_empty()))
    }

    /// Calls `f(*args, **kwargs)`, as `CircuitBreaker.call` does.
    #[pyo3(signature = (f, /, *args, **kwargs))]
    fn call<'py>(
        &self,
        f: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        f.call(args, kwargs.filter(|k| !k.is_empty()))
    }
}
