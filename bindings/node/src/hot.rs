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
//! | `acquire()` | `(slot << 1) \| eventsPending` (a number), or the rejection: its message (a string, or `true` for the message returned last; `retryAfter` and the state index are in the scratch memory, see `NativeBreaker#sharedMemory`) once JS holds that memory, else the `Error` (not thrown) |
//! | `settle(slot, outcome)` | `eventsPending` (0 success, 1 failure, 2 timeout, 3 ignore, 4 cancel) |
//! | `successes(lo, hi, n)` | `eventsPending`, after recording `n` successes of calls JS admitted itself in the epoch of the state word `hi:lo` (`CircuitBreaker::record_successes`) |
//! | `record(lo, hi, outcome)` | `eventsPending`, after recording `outcome` (as `settle`'s) of one call JS admitted itself in the epoch of `hi:lo` (`permit_for_epoch`) |
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

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use seawall::CircuitBreaker;

use crate::breaker::{outcome_of, state_index, Core};
use crate::errors::{duration_ms, js_error, panic_message, throw};
use crate::raw;

pub(crate) type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

/// The functions `NativeBreaker#hotPath()` hands out.
pub(crate) const FUNCTIONS: &[(&str, Callback)] = &[
    ("acquire", acquire),
    ("settle", settle),
    ("state", state),
    ("pending", pending),
    ("fallback", fallback),
    ("successes", successes),
    ("record", record),
];

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
            Err(seawall::Error::BreakerOpen(rejected)) if core.shared.get() => rejection(env, core, &rejected),
            Err(e @ seawall::Error::BreakerOpen(_)) => js_error(env, &e),
            Err(e) => Err(throw(env, e)),
        }
    })
}

/// A rejection for JS to build the error of (no stack captured: see docs/node.md):
/// `retryAfter` and the state index go to the scratch memory, and the core's message is
/// returned, or `true` when it is the message returned last (the same state and wait).
pub(crate) fn rejection(env: sys::napi_env, core: &Core, rejected: &seawall::Rejected) -> Result<sys::napi_value> {
    let key = (rejected.state, rejected.retry_after);
    if core.last_rejection.get() == Some(key) {
        return boolean(env, true);
    }
    core.scratch[0].set(duration_ms(rejected.retry_after));
    core.scratch[1].set(f64::from(state_index(rejected.state)));
    let message = rejected.to_string();
    let value = raw::string(env, message.as_bytes())?;
    core.last_rejection.set(Some(key));
    Ok(value)
}

/// The epoch of the state word JS read as two 32-bit halves.
fn epoch_arg(env: sys::napi_env, lo: sys::napi_value, hi: sys::napi_value) -> Result<u64> {
    let lo = u32_arg(env, lo, "lo")?;
    let hi = u32_arg(env, hi, "hi")?;
    Ok(((u64::from(hi) << 32) | u64::from(lo)) >> 3)
}

unsafe extern "C" fn successes(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let (argv, argc, core) = unsafe { args::<3, Core>(env, info)? };
        if argc < 3 {
            return Err(throw(env, seawall::Error::InvalidArgument("successes(lo, hi, n) needs 3 arguments".into())));
        }
        let epoch = epoch_arg(env, argv[0], argv[1])?;
        let n = u32_arg(env, argv[2], "n")?;
        core.breaker.record_successes(epoch, u64::from(n));
        boolean(env, core.events_pending())
    })
}

unsafe extern "C" fn record(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let (argv, argc, core) = unsafe { args::<3, Core>(env, info)? };
        if argc < 3 {
            return Err(throw(env, seawall::Error::InvalidArgument("record(lo, hi, outcome) needs 3 arguments".into())));
        }
        let epoch = epoch_arg(env, argv[0], argv[1])?;
        let outcome = u32_arg(env, argv[2], "outcome")?;
        let permit = core.breaker.permit_for_epoch(epoch);
        match outcome_of(outcome) {
            Some(o) => permit.record(o, Duration::ZERO),
            None => permit.cancel(),
        }
        .map_err(|e| throw(env, e))?;
        boolean(env, core.events_pending())
    })
}

/// An external `ArrayBuffer` over `len` bytes at `data`; `Ok(None)` where external buffers
/// are refused. `hint` is given to `finalize` (also when creation fails).
fn external(
    env: sys::napi_env,
    data: *mut c_void,
    len: usize,
    finalize: unsafe extern "C" fn(sys::napi_env, *mut c_void, *mut c_void),
    hint: *mut c_void,
) -> Result<Option<sys::napi_value>> {
    let mut out = ptr::null_mut();
    let status = unsafe { sys::napi_create_external_arraybuffer(env, data, len, Some(finalize), hint, &mut out) };
    if status == sys::Status::napi_ok {
        return Ok(Some(out));
    }
    if status != sys::Status::napi_no_external_buffers_allowed {
        // Whether Node kept the finalizer is unknown: leak the hint rather than free it twice.
        return Err(Error::new(Status::GenericFailure, "cannot create an external ArrayBuffer"));
    }
    // Refused before anything was kept: nothing else will call the finalizer.
    unsafe { finalize(env, data, hint) };
    let mut pending = false;
    unsafe { sys::napi_is_exception_pending(env, &mut pending) };
    if pending {
        // Node throws when it refuses external buffers: take the fallback instead.
        let mut e = ptr::null_mut();
        unsafe { sys::napi_get_and_clear_last_exception(env, &mut e) };
    }
    Ok(None)
}

/// The breaker's state word as an external `ArrayBuffer` (8 bytes); its finalizer drops a
/// handle to the breaker, which keeps the word alive.
pub(crate) fn word_buffer(env: sys::napi_env, breaker: &CircuitBreaker) -> Result<Option<sys::napi_value>> {
    unsafe extern "C" fn drop_breaker(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
        unsafe { drop(Box::from_raw(hint as *mut CircuitBreaker)) };
    }
    let handle = Box::new(breaker.clone());
    let data = handle.state_word() as *const AtomicU64 as *mut c_void;
    external(env, data, 8, drop_breaker, Box::into_raw(handle).cast())
}

/// `core.scratch` as an external `ArrayBuffer` (2 × f64); its finalizer drops an `Rc` of
/// the core.
pub(crate) fn scratch_buffer(env: sys::napi_env, core: &Rc<Core>) -> Result<Option<sys::napi_value>> {
    unsafe extern "C" fn drop_core(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
        unsafe { drop(Rc::from_raw(hint as *const Core)) };
    }
    let data = core.scratch.as_ptr() as *mut c_void;
    external(env, data, 16, drop_core, Rc::into_raw(Rc::clone(core)) as *mut c_void)
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
