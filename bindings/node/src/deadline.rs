//! Deadlines, cancel tokens, the `grpc-timeout` header functions, and the timer hooks of
//! the JS layer's `timeout()` (durations in milliseconds).
//!
//! A deadline is the core's `seawall::Deadline`: a clock and an instant on it. The JS
//! `Deadline` object keeps those two as they are (the instant, in nanoseconds since the
//! clock's origin, as a number; the clock as `undefined` for the system clock or the
//! `ManualClock` object), and every operation rebuilds the core value with
//! `Deadline::at(clock, instant)` and asks the core. So every decision (what remains, what
//! is expired, which is earlier, what a header means) is the core's, and a deadline costs
//! no native object (a wrapped native object costs over a microsecond to create, more than
//! everything else `timeout()` does). Instants are exact below 2^53 ns (104 days of clock
//! time); beyond, they round to a few nanoseconds.
//!
//! The per-call operations (`after`, `remaining`, `expired`, `within`, `earliest`) are
//! plain Node-API functions (see `hot.rs` for why), handed to JS once by `deadlineOps()`.
//! Duration arguments go through the core's `duration_arg` (see `errors.rs`).

use std::cell::RefCell;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use seawall::{CancelReason, SharedClock, TimerGuard};

use crate::breaker::RawValue;
use crate::clock::{system_clock, ManualClock, ManualShared};
use crate::errors::{duration_arg, duration_arg_f64, duration_ms, guard, js_error, throw, throw_as, type_name, Kind};
use crate::hot::{boolean, guarded};

fn invalid(env: sys::napi_env, message: String) -> Error {
    throw(env, seawall::Error::InvalidArgument(message))
}

/// A core instant as the number JS keeps (nanoseconds).
fn ns_of(d: Duration) -> f64 {
    d.as_nanos() as f64
}

/// The number JS keeps back to a core instant.
fn instant_of(ns: f64) -> Duration {
    if ns.is_nan() || ns <= 0.0 {
        Duration::ZERO
    } else if ns < 1.8e19 {
        Duration::from_nanos(ns as u64)
    } else {
        Duration::try_from_secs_f64(ns / 1e9).unwrap_or(Duration::MAX)
    }
}

/// A clock as JS passes it: `undefined` (system) or a `ManualClock`.
struct ClockRef {
    clock: SharedClock,
    manual: Option<Arc<ManualShared>>,
}

impl ClockRef {
    fn system() -> Self {
        Self { clock: system_clock().clone(), manual: None }
    }

    fn manual(m: &Arc<ManualShared>) -> Self {
        Self { clock: m.clock.clone(), manual: Some(Arc::clone(m)) }
    }

    fn deadline(&self, at: f64) -> seawall::Deadline {
        seawall::Deadline::at(self.clock.clone(), instant_of(at))
    }
}

/// Reads a clock argument (raw). The JS layer passes only `undefined` or a `ManualClock`;
/// anything else is refused (`ClassInstance` checks the class before using the pointer).
unsafe fn clock_raw(env: sys::napi_env, v: sys::napi_value) -> Result<ClockRef> {
    let mut t = 0;
    unsafe { sys::napi_typeof(env, v, &mut t) };
    if t == sys::ValueType::napi_undefined {
        return Ok(ClockRef::system());
    }
    let manual = unsafe { ClassInstance::<ManualClock>::from_napi_value(env, v)? };
    Ok(ClockRef::manual(&manual.shared))
}

/// A clock argument of a napi-derive function (`undefined`/absent, `ManualClock`,
/// `SystemClock`).
fn clock_arg(env: &Env, v: Option<&Unknown<'_>>) -> Result<ClockRef> {
    let Some(v) = v else { return Ok(ClockRef::system()) };
    let t = v.get_type()?;
    if t == ValueType::Undefined {
        return Ok(ClockRef::system());
    }
    if t == ValueType::Object {
        if ManualClock::instance_of(env, v)? {
            let manual = unsafe { ClassInstance::<ManualClock>::from_napi_value(env.raw(), v.raw())? };
            return Ok(ClockRef::manual(&manual.shared));
        }
        if crate::clock::SystemClock::instance_of(env, v)? {
            return Ok(ClockRef::system());
        }
    }
    Err(invalid(env.raw(), format!("clock = <{}>: expected a ManualClock or a SystemClock", type_name(t))))
}

// ---- the per-call operations, as plain Node-API functions ----

type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

const OPS: &[(&str, Callback)] = &[
    ("after", op_after),
    ("remaining", op_remaining),
    ("expired", op_expired),
    ("within", op_within),
    ("earliest", op_earliest),
];

unsafe fn argv<const N: usize>(env: sys::napi_env, info: sys::napi_callback_info) -> Result<[sys::napi_value; N]> {
    let mut argv = [ptr::null_mut(); N];
    let mut argc = N;
    let status =
        unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) };
    if status != sys::Status::napi_ok {
        return Err(Error::new(Status::GenericFailure, "bad callback info"));
    }
    // Missing arguments read as `undefined`.
    if argc < N {
        let mut undefined = ptr::null_mut();
        unsafe { sys::napi_get_undefined(env, &mut undefined) };
        for a in argv.iter_mut().skip(argc) {
            *a = undefined;
        }
    }
    Ok(argv)
}

fn double(env: sys::napi_env, v: f64) -> Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    match unsafe { sys::napi_create_double(env, v, &mut out) } {
        sys::Status::napi_ok => Ok(out),
        _ => Err(Error::new(Status::GenericFailure, "cannot create a number")),
    }
}

/// An instant argument (JS passes back what it got; a non-number is a bug in the JS layer).
unsafe fn at_raw(env: sys::napi_env, v: sys::napi_value) -> Result<f64> {
    let mut out = 0.0;
    match unsafe { sys::napi_get_value_double(env, v, &mut out) } {
        sys::Status::napi_ok => Ok(out),
        _ => Err(invalid(env, "deadline instant must be a number".into())),
    }
}

/// A duration argument `name` in ms, through the core's `duration_arg`.
unsafe fn ms_raw(env: sys::napi_env, name: &str, v: sys::napi_value) -> Result<Duration> {
    let mut ms = 0.0;
    if unsafe { sys::napi_get_value_double(env, v, &mut ms) } == sys::Status::napi_ok {
        return duration_arg_f64(env, name, ms);
    }
    let u = unsafe { Unknown::from_napi_value(env, v)? };
    duration_arg(env, name, Some(&u))
}

/// `after(ms, clock)`: the instant `ms` from now on `clock`.
unsafe extern "C" fn op_after(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let [ms, clock] = unsafe { argv::<2>(env, info)? };
        let d = unsafe { ms_raw(env, "ms", ms)? };
        let clock = unsafe { clock_raw(env, clock)? };
        double(env, ns_of(seawall::Deadline::after(clock.clock, d).instant()))
    })
}

/// `remaining(at, clock)`: ms left (fractional), 0 once expired.
unsafe extern "C" fn op_remaining(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let [at, clock] = unsafe { argv::<2>(env, info)? };
        let at = unsafe { at_raw(env, at)? };
        let clock = unsafe { clock_raw(env, clock)? };
        double(env, duration_ms(clock.deadline(at).remaining()))
    })
}

/// `expired(at, clock)`.
unsafe extern "C" fn op_expired(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let [at, clock] = unsafe { argv::<2>(env, info)? };
        let at = unsafe { at_raw(env, at)? };
        let clock = unsafe { clock_raw(env, clock)? };
        boolean(env, clock.deadline(at).expired())
    })
}

/// `within(at, clock, ms)`: the earlier of the deadline and `ms` from now on its clock.
unsafe extern "C" fn op_within(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let [at, clock, ms] = unsafe { argv::<3>(env, info)? };
        let at = unsafe { at_raw(env, at)? };
        let d = unsafe { ms_raw(env, "ms", ms)? };
        let clock = unsafe { clock_raw(env, clock)? };
        let outer = clock.deadline(at);
        let own = seawall::Deadline::after(clock.clock.clone(), d);
        let e = outer.earliest(&own).map_err(|e| throw(env, e))?;
        double(env, ns_of(e.instant()))
    })
}

/// `earliest(at1, clock1, at2, clock2)`: the earlier instant; refused for different clocks.
unsafe extern "C" fn op_earliest(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let [a, ca, b, cb] = unsafe { argv::<4>(env, info)? };
        let a = unsafe { at_raw(env, a)? };
        let b = unsafe { at_raw(env, b)? };
        let ca = unsafe { clock_raw(env, ca)? };
        let cb = unsafe { clock_raw(env, cb)? };
        let e = ca.deadline(a).earliest(&cb.deadline(b)).map_err(|e| throw(env, e))?;
        double(env, ns_of(e.instant()))
    })
}

/// The per-call deadline operations as plain functions: `{ after, remaining, expired,
/// within, earliest }`. The JS layer calls this once.
#[napi(catch_unwind)]
pub fn deadline_ops(env: &Env) -> Result<Object<'_>> {
    let mut obj = Object::new(env)?;
    for (name, cb) in OPS {
        let mut f = ptr::null_mut();
        let status = unsafe {
            sys::napi_create_function(
                env.raw(),
                name.as_ptr().cast(),
                name.len() as isize,
                Some(*cb),
                ptr::null_mut(),
                &mut f,
            )
        };
        if status != sys::Status::napi_ok {
            return Err(Error::new(Status::GenericFailure, format!("cannot create function {name}")));
        }
        obj.set(name, RawValue(f))?;
    }
    Ok(obj)
}

// ---- the other deadline operations (not per call) ----

/// Whole ms left, rounded down.
#[napi(catch_unwind)]
pub fn deadline_remaining_ms(env: Env, at: f64, clock: Option<Unknown<'_>>) -> Result<f64> {
    let clock = clock_arg(&env, clock.as_ref())?;
    Ok(clock.deadline(at).remaining_ms() as f64)
}

/// What remains as a `grpc-timeout` value.
#[napi(catch_unwind)]
pub fn deadline_to_grpc_timeout(env: Env, at: f64, clock: Option<Unknown<'_>>) -> Result<String> {
    let clock = clock_arg(&env, clock.as_ref())?;
    Ok(clock.deadline(at).to_grpc_timeout())
}

/// `fraction` of what remains, at least `minMs`, at most what remains (ms, fractional).
/// `fraction` must be in [0, 1] (the core's `try_budget` refuses anything else, NaN included).
#[napi(catch_unwind)]
pub fn deadline_budget(
    env: Env,
    at: f64,
    clock: Option<Unknown<'_>>,
    fraction: Option<Unknown<'_>>,
    min_ms: Option<Unknown<'_>>,
) -> Result<f64> {
    guard(env.raw(), || {
        let clock = clock_arg(&env, clock.as_ref())?;
        let fraction = match &fraction {
            Some(f) if f.get_type()? == ValueType::Number => unsafe { f.cast::<f64>()? },
            other => {
                let t = match other {
                    Some(f) => type_name(f.get_type()?),
                    None => "undefined",
                };
                return Err(invalid(env.raw(), format!("fraction = <{t}>: expected a number")));
            }
        };
        let min = match &min_ms {
            Some(m) if m.get_type()? != ValueType::Undefined => duration_arg(env.raw(), "minMs", Some(m))?,
            _ => Duration::ZERO,
        };
        // The core refuses a fraction outside [0, 1] (or NaN): a number out of range, so a
        // `RangeError` with code SEAWALL_INVALID_ARGUMENT.
        let share = clock.deadline(at).try_budget(fraction, min).map_err(|e| throw_as(env.raw(), e, Kind::Range))?;
        Ok(duration_ms(share))
    })
}

/// A `grpc-timeout` header argument as a string (a `TypeError` otherwise).
fn header_arg(env: &Env, header: Option<&Unknown<'_>>) -> Result<String> {
    match header {
        Some(h) if h.get_type()? == ValueType::String => unsafe { h.cast::<String>() },
        other => {
            let t = match other {
                Some(h) => type_name(h.get_type()?),
                None => "undefined",
            };
            Err(invalid(env.raw(), format!("grpc-timeout = <{t}>: expected a string")))
        }
    }
}

/// The instant a `grpc-timeout` header value gives, counted from now on `clock`.
#[napi(catch_unwind)]
pub fn deadline_from_grpc_timeout(env: Env, header: Option<Unknown<'_>>, clock: Option<Unknown<'_>>) -> Result<f64> {
    guard(env.raw(), || {
        let s = header_arg(&env, header.as_ref())?;
        let clock = clock_arg(&env, clock.as_ref())?;
        let d = seawall::Deadline::from_grpc_timeout(clock.clock, &s).map_err(|e| throw(env.raw(), e))?;
        Ok(ns_of(d.instant()))
    })
}

/// Parses a `grpc-timeout` header value (1 to 8 digits and a unit of `H M S m u n`) into
/// milliseconds (fractional below 1 ms: `"7u"` is 0.007).
#[napi(catch_unwind)]
pub fn parse_grpc_timeout(env: Env, header: Option<Unknown<'_>>) -> Result<f64> {
    guard(env.raw(), || {
        let s = header_arg(&env, header.as_ref())?;
        seawall::deadline::parse_grpc_timeout(&s).map(duration_ms).map_err(|e| throw(env.raw(), e))
    })
}

/// Formats `ms` as a `grpc-timeout` header value (finest unit that fits, rounded up).
#[napi(catch_unwind)]
pub fn format_grpc_timeout(env: Env, ms: Option<Unknown<'_>>) -> Result<String> {
    guard(env.raw(), || {
        let d = duration_arg(env.raw(), "ms", ms.as_ref())?;
        Ok(seawall::deadline::format_grpc_timeout(d))
    })
}

/// Schedules a JS timer at instant `at` on a manual clock: returns its id (reported by
/// the `advance` that reaches it), or 0 when `at` has passed already (fire it now).
#[napi(catch_unwind)]
pub fn schedule_timer(env: Env, at: f64, clock: Option<Unknown<'_>>) -> Result<f64> {
    let clock = clock_arg(&env, clock.as_ref())?;
    match &clock.manual {
        Some(m) => Ok(m.schedule(instant_of(at)).map_or(0.0, |id| id as f64)),
        None => Err(invalid(env.raw(), "scheduleTimer needs a ManualClock (use setTimeout)".into())),
    }
}

/// Unschedules a JS timer of `scheduleTimer`; false when it fired or was cancelled.
#[napi(catch_unwind)]
pub fn cancel_timer(env: Env, clock: Option<Unknown<'_>>, id: f64) -> Result<bool> {
    let clock = clock_arg(&env, clock.as_ref())?;
    Ok(match &clock.manual {
        Some(m) if id >= 1.0 => m.cancel(id as u64),
        _ => false,
    })
}

/// The `Error` (code `SEAWALL_TIMEOUT`, name `TimeoutError`) of a call whose deadline
/// passed: "timed out: {what}".
#[napi(catch_unwind)]
pub fn timeout_error(env: Env, what: String) -> Result<RawValue> {
    Ok(RawValue(js_error(env.raw(), &seawall::Error::Timeout(what))?))
}

/// A core cancellation token, polled (`cancelled`, `reason`). Node code cancels with
/// `AbortSignal`; this is the token the other languages share.
#[napi]
pub struct CancelToken {
    inner: seawall::CancelToken,
}

#[napi]
impl CancelToken {
    #[napi(constructor, catch_unwind)]
    pub fn new() -> Self {
        Self { inner: seawall::CancelToken::new() }
    }

    /// Cancels the token (reason `'cancelled'`); true when this call cancelled it.
    #[napi(catch_unwind)]
    pub fn cancel(&self) -> bool {
        self.inner.cancel()
    }

    /// True once cancelled.
    #[napi(getter, catch_unwind)]
    pub fn cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    /// `null`, `'cancelled'` or `'deadline_exceeded'`.
    #[napi(getter, catch_unwind)]
    pub fn reason(&self) -> Option<&'static str> {
        self.inner.reason().map(CancelReason::as_str)
    }
}

/// `token.cancelAt(deadline)`: cancels `token` (reason `'deadline_exceeded'`) at instant
/// `at` on `clock`, through the core's timer (inside `advance` on a manual clock, on the
/// core's timer thread on the system clock; at once if `at` has passed).
#[napi(catch_unwind)]
pub fn cancel_token_at(env: Env, token: &CancelToken, at: f64, clock: Option<Unknown<'_>>) -> Result<CancelTimer> {
    guard(env.raw(), || {
        let clock = clock_arg(&env, clock.as_ref())?;
        let guard = token.inner.cancel_at(&clock.deadline(at));
        Ok(CancelTimer { guard: RefCell::new(Some(guard)) })
    })
}

/// The scheduled cancellation of `token.cancelAt(deadline)`. `dispose()` (or `using`)
/// unschedules it; collected by the garbage collector undisposed, it stays scheduled.
#[napi]
pub struct CancelTimer {
    guard: RefCell<Option<TimerGuard>>,
}

#[napi]
impl CancelTimer {
    /// Unschedules the cancellation (nothing happens if it ran already).
    #[napi(catch_unwind)]
    pub fn dispose(&self) {
        drop(self.guard.borrow_mut().take());
    }
}

impl Drop for CancelTimer {
    fn drop(&mut self) {
        if let Some(g) = self.guard.get_mut().take() {
            g.detach();
        }
    }
}
