//! The one mapping from core errors to JS errors.
//!
//! Every core [`seawall::Error`] becomes a JS `Error` whose `code` is
//! [`seawall::ErrorCode::as_str`] (generically: a code added to the core needs nothing
//! here); configuration errors carry `field` and `value`, and are `TypeError`s when the
//! value had the wrong type; rejections carry `retryAfter` (ms, `Infinity` when forced
//! open), `state` and `breaker`; idempotency errors carry `key` (and `retryAfter` and
//! `waited` in ms for in-progress, `token` and `reason` for a lost lease); timeouts are
//! named `TimeoutError` (as `fetch` and
//! `AbortSignal.timeout` name theirs). Invalid arguments are `TypeError`s (as Node's own
//! `ERR_INVALID_ARG_TYPE`/`ERR_INVALID_ARG_VALUE`), except a number out of range for a
//! duration, which is a `RangeError` (as `ERR_OUT_OF_RANGE`).
//!
//! Duration arguments (`ms`) are read by [`duration_arg`], which hands the JS value to the
//! core's [`seawall::deadline::duration_arg`]: the core decides what is valid and words the
//! error (naming the argument and the value).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::sys;
use seawall::{ConfigValue, DurationUnit, Error as CoreError};

/// Which JS error constructor to use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// As the error's variant says (see the module doc).
    Default,
    /// A `RangeError` (a number outside what the argument accepts).
    Range,
}

/// Builds the JS error for `err` (not thrown).
pub(crate) fn js_error(env: sys::napi_env, err: &CoreError) -> Result<sys::napi_value> {
    js_error_as(env, err, Kind::Default)
}

/// Builds the JS error for `err` with the constructor `kind` asks for (not thrown).
pub(crate) fn js_error_as(env: sys::napi_env, err: &CoreError, kind: Kind) -> Result<sys::napi_value> {
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
        let status = if kind == Kind::Range {
            sys::napi_create_range_error(env, code_v, msg_v, &mut out)
        } else if type_error {
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
        CoreError::Timeout(_) => {
            obj.set("name", "TimeoutError")?;
        }
        CoreError::IdempotencyInProgress(e) => {
            obj.set("key", e.key.as_str())?;
            obj.set("retryAfter", duration_ms(e.retry_after))?;
            obj.set("waited", duration_ms(e.waited))?;
        }
        CoreError::IdempotencyMismatch { key } => {
            obj.set("key", key.as_str())?;
        }
        CoreError::LeaseLost { key, token, reason } => {
            obj.set("key", key.as_str())?;
            obj.set("token", *token as f64)?;
            obj.set("reason", reason.as_str())?;
        }
        _ => {}
    }
    Ok(out)
}

/// Throws the JS error for `err`; return the result from the napi function.
pub(crate) fn throw(env: sys::napi_env, err: CoreError) -> Error {
    throw_as(env, err, Kind::Default)
}

/// Throws the JS error for `err`, built with the constructor `kind` asks for.
pub(crate) fn throw_as(env: sys::napi_env, err: CoreError, kind: Kind) -> Error {
    match js_error_as(env, &err, kind) {
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

/// A JS value as the core's option type: whole numbers as `Int`, other numbers as `Float`
/// (NaN and the infinities included, for the core to refuse), strings, booleans, and the
/// type name of anything else.
pub(crate) fn config_value(v: &Unknown<'_>) -> Result<ConfigValue> {
    Ok(match v.get_type()? {
        ValueType::Number => {
            let x: f64 = unsafe { v.cast()? };
            if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e18 {
                ConfigValue::Int(x as i64)
            } else {
                ConfigValue::Float(x)
            }
        }
        ValueType::String => ConfigValue::Str(unsafe { v.cast::<String>()? }),
        ValueType::Boolean => ConfigValue::Bool(unsafe { v.cast::<bool>()? }),
        t => ConfigValue::Other(type_name(t).to_owned()),
    })
}

/// Reads the duration argument `name` (milliseconds) through the core's `duration_arg`:
/// negative, NaN and infinite values (and non-numbers, `undefined` included) are refused
/// with the core's error naming `name` and the value, thrown as a `RangeError` for a number
/// and a `TypeError` otherwise, both with code `SEAWALL_INVALID_ARGUMENT`.
pub(crate) fn duration_arg(env: sys::napi_env, name: &str, v: Option<&Unknown<'_>>) -> Result<Duration> {
    let (value, number) = match v {
        Some(v) => {
            let value = config_value(v)?;
            let number = matches!(value, ConfigValue::Int(_) | ConfigValue::Float(_));
            (value, number)
        }
        None => (ConfigValue::Other("undefined".to_owned()), false),
    };
    seawall::deadline::duration_arg(name, &value, DurationUnit::Millis)
        .map_err(|e| throw_as(env, e, if number { Kind::Range } else { Kind::Default }))
}

/// [`duration_arg`] for a JS number already read as `f64` (a `RangeError` when refused).
pub(crate) fn duration_arg_f64(env: sys::napi_env, name: &str, ms: f64) -> Result<Duration> {
    let value = if ms.is_finite() && ms.fract() == 0.0 && ms.abs() < 9.0e18 {
        ConfigValue::Int(ms as i64)
    } else {
        ConfigValue::Float(ms)
    };
    seawall::deadline::duration_arg(name, &value, DurationUnit::Millis).map_err(|e| throw_as(env, e, Kind::Range))
}

/// Reads an optional duration argument: `undefined` (or absent) is `None`.
pub(crate) fn opt_duration_arg(env: sys::napi_env, name: &str, v: Option<&Unknown<'_>>) -> Result<Option<Duration>> {
    match v {
        None => Ok(None),
        Some(u) if u.get_type()? == ValueType::Undefined => Ok(None),
        Some(u) => duration_arg(env, name, Some(u)).map(Some),
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
