//! Small Node-API helpers for the plain (non napi-derive) functions of `hot.rs` and
//! `idempotency.rs`: creating and reading values without the glue of napi-derive.

use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;

use crate::errors::throw;

pub(crate) type Value = sys::napi_value;

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::GenericFailure, format!("cannot {what}")))
    }
}

pub(crate) fn int(env: sys::napi_env, v: i32) -> Result<Value> {
    let mut out = ptr::null_mut();
    check(unsafe { sys::napi_create_int32(env, v, &mut out) }, "create a number")?;
    Ok(out)
}

pub(crate) fn double(env: sys::napi_env, v: f64) -> Result<Value> {
    let mut out = ptr::null_mut();
    check(unsafe { sys::napi_create_double(env, v, &mut out) }, "create a number")?;
    Ok(out)
}

pub(crate) fn boolean(env: sys::napi_env, v: bool) -> Result<Value> {
    let mut out = ptr::null_mut();
    check(unsafe { sys::napi_get_boolean(env, v, &mut out) }, "create a boolean")?;
    Ok(out)
}

pub(crate) fn null(env: sys::napi_env) -> Result<Value> {
    let mut out = ptr::null_mut();
    check(unsafe { sys::napi_get_null(env, &mut out) }, "get null")?;
    Ok(out)
}

/// A JS string from UTF-8 (invalid sequences become U+FFFD).
pub(crate) fn string(env: sys::napi_env, s: &[u8]) -> Result<Value> {
    let mut out = ptr::null_mut();
    check(unsafe { sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut out) }, "create a string")?;
    Ok(out)
}

/// A new `Buffer` holding a copy of `bytes`.
pub(crate) fn buffer_copy(env: sys::napi_env, bytes: &[u8]) -> Result<Value> {
    let mut out = ptr::null_mut();
    let mut data = ptr::null_mut();
    check(
        unsafe { sys::napi_create_buffer_copy(env, bytes.len(), bytes.as_ptr().cast(), &mut data, &mut out) },
        "create a Buffer",
    )?;
    Ok(out)
}

pub(crate) fn array(env: sys::napi_env, len: usize) -> Result<Value> {
    let mut out = ptr::null_mut();
    check(unsafe { sys::napi_create_array_with_length(env, len, &mut out) }, "create an array")?;
    Ok(out)
}

pub(crate) fn set_element(env: sys::napi_env, array: Value, i: u32, v: Value) -> Result<()> {
    check(unsafe { sys::napi_set_element(env, array, i, v) }, "set an array element")
}

/// `typeof v`, as Node-API spells it.
pub(crate) fn type_of(env: sys::napi_env, v: Value) -> sys::napi_valuetype {
    let mut t: sys::napi_valuetype = sys::ValueType::napi_undefined;
    unsafe { sys::napi_typeof(env, v, &mut t) };
    t
}

pub(crate) fn type_name(t: sys::napi_valuetype) -> &'static str {
    match t {
        sys::ValueType::napi_undefined => "undefined",
        sys::ValueType::napi_null => "null",
        sys::ValueType::napi_boolean => "boolean",
        sys::ValueType::napi_number => "number",
        sys::ValueType::napi_string => "string",
        sys::ValueType::napi_symbol => "symbol",
        sys::ValueType::napi_object => "object",
        sys::ValueType::napi_function => "function",
        sys::ValueType::napi_bigint => "bigint",
        _ => "unknown",
    }
}

pub(crate) fn is_true(env: sys::napi_env, v: Value) -> bool {
    let mut b = false;
    let status = unsafe { sys::napi_get_value_bool(env, v, &mut b) };
    status == sys::Status::napi_ok && b
}

const STACK: usize = 512;

/// Reads a JS string as UTF-8 into `buf`: `None` when `v` is not a string, `Some(Some(len))`
/// when it fit, `Some(None)` when it is longer (read it with `read_string`).
#[inline]
fn read_short(env: sys::napi_env, v: Value, buf: &mut [u8; STACK]) -> Result<Option<Option<usize>>> {
    let mut len = 0usize;
    let status = unsafe { sys::napi_get_value_string_utf8(env, v, buf.as_mut_ptr().cast(), STACK, &mut len) };
    if status == sys::Status::napi_string_expected {
        return Ok(None);
    }
    check(status, "read a string")?;
    // V8 writes whole characters only: a string that fits leaves at least 4 bytes free.
    Ok(Some((len + 4 < STACK).then_some(len)))
}

/// Reads a JS string as UTF-8 and hands it to `f` (a stack buffer for short strings, so
/// keys cost no allocation). `None` when `v` is not a string.
pub(crate) fn with_str<R>(env: sys::napi_env, v: Value, f: impl FnOnce(&str) -> R) -> Result<Option<R>> {
    let mut buf = [0u8; STACK];
    let utf8 = |e: std::str::Utf8Error| Error::new(Status::GenericFailure, e.to_string());
    match read_short(env, v, &mut buf)? {
        None => Ok(None),
        Some(Some(len)) => Ok(Some(f(std::str::from_utf8(&buf[..len]).map_err(utf8)?))),
        Some(None) => {
            let bytes = read_string(env, v)?.unwrap_or_default();
            let s = String::from_utf8(bytes).map_err(|e| utf8(e.utf8_error()))?;
            Ok(Some(f(&s)))
        }
    }
}

/// A JS string's UTF-8 bytes in a `Vec` of exactly their length (so a boxed slice made
/// of it needs no reallocation); `None` when `v` is not a string. A short string is read
/// in one pass (through a stack buffer), a longer one in two.
pub(crate) fn string_bytes(env: sys::napi_env, v: Value) -> Result<Option<Vec<u8>>> {
    let mut buf = [0u8; STACK];
    match read_short(env, v, &mut buf)? {
        None => Ok(None),
        Some(Some(len)) => Ok(Some(buf[..len].to_vec())),
        Some(None) => read_string(env, v),
    }
}

/// A JS string's UTF-8 bytes; `None` when `v` is not a string.
pub(crate) fn read_string(env: sys::napi_env, v: Value) -> Result<Option<Vec<u8>>> {
    let mut len = 0usize;
    let status = unsafe { sys::napi_get_value_string_utf8(env, v, ptr::null_mut(), 0, &mut len) };
    if status == sys::Status::napi_string_expected {
        return Ok(None);
    }
    check(status, "read a string")?;
    let mut bytes = vec![0u8; len + 1];
    let mut written = 0usize;
    check(
        unsafe { sys::napi_get_value_string_utf8(env, v, bytes.as_mut_ptr().cast(), len + 1, &mut written) },
        "read a string",
    )?;
    bytes.truncate(written);
    Ok(Some(bytes))
}

/// The bytes of a `Uint8Array` (a `Buffer` included); `None` for anything else. The slice
/// is valid while `v` is alive (the caller holds it as an argument).
pub(crate) fn uint8_bytes<'a>(env: sys::napi_env, v: Value) -> Result<Option<&'a [u8]>> {
    let mut is = false;
    unsafe { sys::napi_is_typedarray(env, v, &mut is) };
    if !is {
        return Ok(None);
    }
    let mut kind = 0;
    let mut len = 0usize;
    let mut data = ptr::null_mut();
    let mut ab = ptr::null_mut();
    let mut offset = 0usize;
    check(
        unsafe { sys::napi_get_typedarray_info(env, v, &mut kind, &mut len, &mut data, &mut ab, &mut offset) },
        "read a typed array",
    )?;
    if kind != sys::TypedarrayType::uint8_array {
        return Ok(None);
    }
    if len == 0 || data.is_null() {
        return Ok(Some(&[]));
    }
    Ok(Some(unsafe { std::slice::from_raw_parts(data as *const u8, len) }))
}

/// Throws `SEAWALL_INVALID_ARGUMENT` (a `TypeError`): "`what` = <type>: expected `expected`".
pub(crate) fn type_error(env: sys::napi_env, what: &str, v: Value, expected: &str) -> Error {
    let t = type_name(type_of(env, v));
    throw(env, seawall::Error::InvalidArgument(format!("{what} = <{t}>: expected {expected}")))
}
