//! The one mapping from core errors to JS errors.
//!
//! Every core [`seawall::Error`] becomes a JS `Error` whose `code` is
//! [`seawall::ErrorCode::as_str`]; configuration errors carry `field` and `value`, and are
//! `TypeError`s when the value had the wrong type; rejections carry `retryAfter` (ms,
//! `Infinity` when forced open), `state` and `breaker`; invalid arguments are `TypeError`s
//! (as Node's own `ERR_INVALID_ARG_VALUE`).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::sys;
use seawall::Error as CoreError;

/// Builds the JS error for `err` (not thrown).
pub(crate) fn js_error(env: sys::napi_env, err: &CoreError) -> Result<sys::napi_value> {
    let type_error = match err {
        CoreError::Config(c) => c.type_mismatch,
        CoreError::InvalidArgument(_) => true,
        _ => false,
    };
    let code = err.code().as_str();
    let message = err.to_string();
    let mut out = ptr::null_mut();
    unsafe {
        let code_v = <&str as ToNapiValue>::to_napi_value(env, code)?;
        let msg_v = <&str as ToNapiValue>::to_napi_value(env, message.as_str())?;
        let status = if type_error {
            sys::napi_create_type_error(env, code_v, msg_v, &mut out)
        } else {
            sys::napi_create_error(env, code_v, msg_v, &mut out)
        };
        if status != sys::Status::napi_ok {
            return Err(Error::new(Status::GenericFailure, format!("cannot create error: {message}")));
        }
    }
    let mut obj = Object::from_raw(env, out);
    match err {
        CoreError::Config(c) => {
            obj.set("field", c.field.as_str())?;
            obj.set("value", c.value.as_str())?;
            obj.set("reason", c.reason.as_str())?;
        }
        CoreError::BreakerOpen(r) => {
            obj.set("retryAfter", duration_ms(r.retry_after))?;
            obj.set("state", r.state.as_str())?;
            obj.set("breaker", &*r.breaker)?;
        }
        _ => {}
    }
    Ok(out)
}

/// Throws the JS error for `err`; return the result from the napi function.
pub(crate) fn throw(env: sys::napi_env, err: CoreError) -> Error {
    match js_error(env, &err) {
        Ok(value) => {
            unsafe { sys::napi_throw(env, value) };
            Error::new(Status::PendingException, err.to_string())
        }
        Err(e) => e,
    }
}

/// A duration as JS milliseconds; `Duration::MAX` (forced open) is `Infinity`.
pub(crate) fn duration_ms(d: Duration) -> f64 {
    if d == Duration::MAX {
        f64::INFINITY
    } else {
        d.as_nanos() as f64 / 1e6
    }
}

/// Milliseconds from JS as a duration; refuses NaN, negative and infinite values.
pub(crate) fn ms_duration(env: sys::napi_env, what: &str, ms: f64) -> Result<Duration> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(throw(
            env,
            CoreError::InvalidArgument(format!(
                "{what} must be a finite, non-negative number of milliseconds, got {ms}"
            )),
        ));
    }
    let nanos = (ms * 1e6).round();
    Ok(if nanos >= u64::MAX as f64 { Duration::from_nanos(u64::MAX) } else { Duration::from_nanos(nanos as u64) })
}

/// Reads an optional millisecond argument: `undefined` is `None`; a non-number is refused.
pub(crate) fn opt_ms(env: sys::napi_env, what: &str, v: Option<Unknown<'_>>) -> Result<Option<Duration>> {
    let Some(v) = v else { return Ok(None) };
    match v.get_type()? {
        ValueType::Undefined => Ok(None),
        ValueType::Number => {
            let ms: f64 = unsafe { v.cast()? };
            ms_duration(env, what, ms).map(Some)
        }
        other => Err(throw(
            env,
            CoreError::InvalidArgument(format!("{what} must be a number of milliseconds, got {}", type_name(other))),
        )),
    }
}

/// `typeof`-like name of a value type.
pub(crate) fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "boolean",
        ValueType::Number => "number",
        ValueType::String => "string",
        ValueType::Symbol => "symbol",
        ValueType::Object => "object",
        ValueType::Function => "function",
        ValueType::External => "external",
        ValueType::BigInt => "bigint",
        _ => "unknown",
    }
}

/// Runs `f`; a panic becomes a thrown JS `Error` with code `SEAWALL_INTERNAL` (nothing
/// unwinds into Node).
pub(crate) fn guard<T>(env: sys::napi_env, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => Err(throw(env, CoreError::Internal(panic_message(&*panic)))),
    }
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    format!("panic in the seawall addon: {what}")
}
