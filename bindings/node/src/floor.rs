//! For benchmarks only (bench/node_overhead.js, "napi crossings"): the cost of calling into
//! the addon the ways a binding can, each doing nothing, so the hot paths' design can be
//! judged against them. Not part of the API (reached as `require('seawall')._internal`).

use std::ffi::c_void;
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

/// A `#[napi]` free function without arguments.
#[napi(js_name = "floorNoop")]
pub fn floor_noop() {}

/// A `#[napi]` free function taking and returning a `u32`.
#[napi(js_name = "floorU32")]
pub fn floor_u32(x: u32) -> u32 {
    x
}

/// A `#[napi]` free function taking an `External` (a native handle).
#[napi(js_name = "floorExternal")]
pub fn floor_external(handle: &External<u32>) -> u32 {
    **handle
}

/// Makes the `External` that `floorExternal` takes.
#[napi(js_name = "floorMakeExternal")]
pub fn floor_make_external() -> External<u32> {
    External::new(7)
}

/// A `#[napi]` class whose method does nothing.
#[napi(js_name = "FloorObject")]
pub struct FloorObject {}

#[napi]
impl FloorObject {
    #[napi(constructor)]
    pub fn new() -> Self {
        FloorObject {}
    }

    /// A `#[napi]` method without arguments.
    #[napi]
    pub fn method(&self) {}
}

impl Default for FloorObject {
    fn default() -> Self {
        Self::new()
    }
}

unsafe extern "C" fn raw_noop(_env: sys::napi_env, _info: sys::napi_callback_info) -> sys::napi_value {
    ptr::null_mut()
}

/// A raw Node-API function (`napi_create_function`, no napi-rs wrapper), as the hot paths
/// are made: the least a call into the addon costs.
#[napi(js_name = "floorRawNoop")]
pub fn floor_raw_noop(env: &Env) -> Result<Unknown<'_>> {
    let name = "rawNoop";
    let mut f = ptr::null_mut();
    let status = unsafe {
        sys::napi_create_function(env.raw(), name.as_ptr().cast(), name.len() as isize, Some(raw_noop), ptr::null_mut::<c_void>(), &mut f)
    };
    if status != sys::Status::napi_ok {
        return Err(Error::new(Status::GenericFailure, "cannot create rawNoop"));
    }
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), f) })
}
