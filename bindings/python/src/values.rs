//! Python values to core option values, with no judgement of their own: the core decides
//! what is valid and words the error.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};
use seawall::ConfigValue;

/// `bool` before `int` (a Python bool is an int); ints too large for i64 become floats so
/// the core can still say "must be at most ..."; anything else is described by its type name.
pub fn config_value(v: &Bound<'_, PyAny>) -> ConfigValue {
    if v.is_instance_of::<PyBool>() {
        return ConfigValue::Bool(v.is_truthy().unwrap_or(false));
    }
    if v.is_instance_of::<PyInt>() {
        return match v.extract::<i64>() {
            Ok(n) => ConfigValue::Int(n),
            Err(_) => v.extract::<f64>().map(ConfigValue::Float).unwrap_or_else(|_| other(v)),
        };
    }
    if v.is_instance_of::<PyFloat>() {
        return v.extract::<f64>().map(ConfigValue::Float).unwrap_or_else(|_| other(v));
    }
    if v.is_instance_of::<PyString>() {
        return v.extract::<String>().map(ConfigValue::Str).unwrap_or_else(|_| other(v));
    }
    other(v)
}

fn other(v: &Bound<'_, PyAny>) -> ConfigValue {
    let name = v.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".to_owned());
    ConfigValue::Other(name)
}

/// A listener id argument (`remove_listener`): an `int` (not a `bool`); `None` for one no
/// listener can have (negative or too large), so the caller answers False as for an
/// unknown id. Another type is an `InvalidArgument` naming the argument.
pub fn listener_id(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
    if !v.is_instance_of::<PyInt>() || v.is_instance_of::<PyBool>() {
        let name = v.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".to_owned());
        let msg = format!("listener_id = <{name}>: expected the int that on_state_change or on_event returned");
        return Err(crate::errors::to_py(py, seawall::Error::InvalidArgument(msg), None));
    }
    Ok(v.extract::<u64>().ok())
}
