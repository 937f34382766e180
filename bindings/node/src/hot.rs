//! The hot path as plain Node-API functions.
//!
//! napi-derive's class-method glue (receiver unwrap, class identity check, borrow
//! tracking) costs a few hundred nanoseconds per call, more than the whole breaker. The
//! calls made on every `execute` therefore skip it: each is a raw `napi_callback` created
//! per breaker with `napi_create_function`, carrying an `Rc<Core>` as its callback data (so
//! no receiver is unwrapped and no other object can be passed in its place), released by a
//! finalizer when the function is collected.
//!
//! | function | returns |
//! |---|---|
//! | `acquire()` | `(slot << 1) \| eventsPending` (a number), or the rejection `Error` (not thrown) |
//! | `settle(slot, outcome)` | `eventsPending` (0 success, 1 failure, 2 timeout, 3 ignore, 4 cancel) |
//! | `state()` | `(stateIndex << 1) \| eventsPending` (closed, open, half_open, forced_open, disabled) |
//! | `pending()` | `eventsPending` |
//! | `fallback()` | `eventsPending` (counts a rejected call answered by a fallback: `record_fallback`) |
//!
//! No panic crosses the boundary: each body runs under `catch_unwind`, and a panic becomes a
//! JS `Error` with code `SEAWALL_INTERNAL`.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;

use napi::bindgen_prelude::*;
use napi::sys;

use crate::breaker::Core;
use crate::errors::{js_error, panic_message, throw};

pub(crate) type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

/// The functions `NativeBreaker#hotPath()` hands out.
pub(crate) const FUNCTIONS: &[(&str, Callback)] =
    &[("acquire", acquire), ("settle", settle), ("state", state), ("pending", pending), ("fallback", fallback)];

/// Creates `cb` as a JS function bound to `core` (its callback data is one `Rc` count,
/// given back by the function's finalizer).
pub(crate) fn bound_function<T>(env: sys::napi_env, name: &str, cb: Callback, core: &Rc<T>) -> Result<sys::napi_value> {
    let data = Rc::into_raw(Rc::clone(core)) as *mut c_void;
    let mut f = ptr::null_mut();
    let status =
        unsafe { sys::napi_create_function(env, name.as_ptr().cast(), name.len() as isize, Some(cb), data, &mut f) };
    if status != sys::Status::napi_ok {
        unsafe { drop(Rc::from_raw(data as *const T)) };
        return Err(Error::new(Status::GenericFailure, format!("cannot create function {name}")));
    }
    let status = unsafe { sys::napi_add_finalizer(env, f, data, Some(release::<T>), ptr::null_mut(), ptr::null_mut()) };
    if status != sys::Status::napi_ok {
        // Leak one Rc rather than free what the function may still use.
        return Err(Error::new(Status::GenericFailure, format!("cannot attach finalizer to {name}")));
    }
    Ok(f)
}

unsafe extern "C" fn release<T>(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    unsafe { drop(Rc::from_raw(data as *const T)) };
}

/// Reads up to `N` arguments (missing ones read as `undefined`), their count, and the
/// bound core.
pub(crate) unsafe fn args<const N: usize, T: 'static>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Result<([sys::napi_value; N], usize, &'static T)> {
    let mut argv = [ptr::null_mut(); N];
    let mut argc = N;
    let mut data = ptr::null_mut();
    let status = unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), &mut data) };
    if status != sys::Status::napi_ok || data.is_null() {
        return Err(Error::new(Status::GenericFailure, "bad callback info"));
    }
    if argc < N {
        let mut undefined = ptr::null_mut();
        unsafe { sys::napi_get_undefined(env, &mut undefined) };
        for a in argv.iter_mut().skip(argc) {
            *a = undefined;
        }
    }
    // SAFETY: `data` is the `Rc<T>` leaked by `bound_function`, freed only by the
    // function's finalizer, which cannot run while the function is being called.
    Ok((argv, argc, unsafe { &*(data as *const T) }))
}

/// Runs `body`, turning errors into a thrown JS error and panics into `SEAWALL_INTERNAL`.
pub(crate) fn guarded(env: sys::napi_env, body: impl FnOnce() -> Result<sys::napi_value>) -> sys::napi_value {
    let outcome = catch_unwind(AssertUnwindSafe(body));
    let err = match outcome {
        Ok(Ok(v)) => return v,
        Ok(Err(e)) => e,
        Err(panic) => throw(env, seawall::Error::Internal(panic_message(&*panic))),
    };
    let mut pending = false;
    unsafe { sys::napi_is_exception_pending(env, &mut pending) };
    if !pending {
        let _ = throw(env, seawall::Error::Internal(err.reason.clone()));
    }
    ptr::null_mut()
}

fn int(env: sys::napi_env, v: i32) -> Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    match unsafe { sys::napi_create_int32(env, v, &mut out) } {
        sys::Status::napi_ok => Ok(out),
        _ => Err(Error::new(Status::GenericFailure, "cannot create a number")),
    }
}

pub(crate) fn boolean(env: sys::napi_env, v: bool) -> Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    match unsafe { sys::napi_get_boolean(env, v, &mut out) } {
        sys::Status::napi_ok => Ok(out),
        _ => Err(Error::new(Status::GenericFailure, "cannot create a boolean")),
    }
}

fn u32_arg(env: sys::napi_env, v: sys::napi_value, what: &str) -> Result<u32> {
    let mut out = 0u32;
    match unsafe { sys::napi_get_value_uint32(env, v, &mut out) } {
        sys::Status::napi_ok => Ok(out),
        _ => Err(throw(env, seawall::Error::InvalidArgument(format!("{what} must be a number")))),
    }
}

unsafe extern "C" fn acquire(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let (_, _, core) = unsafe { args::<0, Core>(env, info)? };
        match core.acquire() {
            Ok(r) => int(env, r),
            Err(e @ seawall::Error::BreakerOpen(_)) => js_error(env, &e),
            Err(e) => Err(throw(env, e)),
        }
    })
}

unsafe extern "C" fn settle(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let (argv, argc, core) = unsafe { args::<2, Core>(env, info)? };
        if argc < 2 {
            return Err(throw(env, seawall::Error::InvalidArgument("settle(slot, outcome) needs 2 arguments".into())));
        }
        let slot = u32_arg(env, argv[0], "slot")?;
        let outcome = u32_arg(env, argv[1], "outcome")?;
        let pending = core.settle(slot, outcome).map_err(|e| throw(env, e))?;
        boolean(env, pending)
    })
}

unsafe extern "C" fn state(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let (_, _, core) = unsafe { args::<0, Core>(env, info)? };
        let index = core.state_index();
        int(env, ((index << 1) | u32::from(core.events_pending())) as i32)
    })
}

unsafe extern "C" fn pending(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let (_, _, core) = unsafe { args::<0, Core>(env, info)? };
        boolean(env, core.events_pending())
    })
}

unsafe extern "C" fn fallback(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let (_, _, core) = unsafe { args::<0, Core>(env, info)? };
        core.breaker.record_fallback();
        boolean(env, core.events_pending())
    })
}
