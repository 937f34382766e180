//! Deadlines: an absolute point on a clock, with what remains of it in milliseconds and as
//! a `grpc-timeout` header value. Durations pass through the core's `duration_arg`, so a
//! negative, NaN or infinite value is refused with the same error as in every language.

use std::ffi::c_char;
use std::time::Duration;

use seawall::deadline::{duration_arg_styled, format_grpc_timeout, parse_grpc_timeout};
use seawall::{ConfigValue, Deadline, DurationUnit, Error, Naming, Style};

use crate::clock::{millis_floor, seawall_clock};
use crate::status::{arg, free_boxed, guard, null, put, put_box, seawall_status, text};

/// The size of a buffer that always holds a `grpc-timeout` value: at most 8 digits, one
/// unit letter and the terminating NUL.
pub const SEAWALL_GRPC_TIMEOUT_BUFSIZE: usize = 10;

/// A deadline: an absolute point in time on one clock. It never changes once made, so it
/// can be handed down to callees, which read what remains of it.
///
/// Thread safety: a deadline handle may be read by any number of threads at once (every
/// function on it only reads); free it once, when no other thread uses it. It keeps its
/// own reference to the clock, so the clock handle may be freed first.
#[allow(non_camel_case_types)]
pub struct seawall_deadline {
    pub(crate) inner: Deadline,
}

/// A duration as fractional milliseconds (exact to the nanosecond for any realistic value).
pub(crate) fn ms_f64(d: Duration) -> f64 {
    d.as_secs() as f64 * 1e3 + f64::from(d.subsec_nanos()) / 1e6
}

/// A duration argument in (fractional) milliseconds, through the core's checks: the error
/// names the argument and the value.
pub(crate) fn millis_arg(name: &str, ms: f64) -> Result<Duration, Error> {
    duration_arg_styled(
        name,
        &ConfigValue::Float(ms),
        Style {
            naming: Naming::Snake,
            unit: DurationUnit::Millis,
        },
    )
}

/// Copies `s` and a NUL into `buf` of `len` bytes; `InvalidArgument` naming `buf` when it is
/// NULL or too small (then an empty string is written when `len` > 0).
///
/// # Safety
/// A non-NULL `buf` must be valid for writing `len` bytes.
unsafe fn write_text(buf: *mut c_char, len: usize, s: &str) -> Result<(), Error> {
    if buf.is_null() {
        return Err(null("buf"));
    }
    let need = s.len() + 1;
    if len < need {
        if len > 0 {
            buf.write(0);
        }
        return Err(Error::InvalidArgument(format!(
            "buf is too small: len = {len}, {s:?} needs {need} bytes \
             (SEAWALL_GRPC_TIMEOUT_BUFSIZE = {SEAWALL_GRPC_TIMEOUT_BUFSIZE} is always enough)"
        )));
    }
    std::ptr::copy_nonoverlapping(s.as_ptr().cast::<c_char>(), buf, s.len());
    buf.add(s.len()).write(0);
    Ok(())
}

/// Creates the deadline `ms` milliseconds from now on `clock` (a manual clock in tests).
/// `ms` may be fractional (`0.25` is 250 µs) and 0 (already expired). A negative, NaN or
/// infinite `ms` is `SEAWALL_E_INVALID_ARGUMENT`, with a message naming the argument and
/// the value (e.g. `invalid argument: ms = -1.0ms: must not be negative`): a bad value never
/// becomes an infinite deadline. Free the deadline with `seawall_deadline_free`.
///
/// # Safety
/// `clock` must be NULL or a live clock; `out_deadline` NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_deadline_after_ms(
    clock: *const seawall_clock,
    ms: f64,
    out_deadline: *mut *mut seawall_deadline,
) -> seawall_status {
    guard(|| {
        let c = arg(clock, "clock")?;
        let d = millis_arg("ms", ms)?;
        put_box(
            out_deadline,
            "out_deadline",
            seawall_deadline {
                inner: Deadline::after(c.clock.clone(), d),
            },
        )
    })
}

/// Creates a deadline from a `grpc-timeout` header value (`"250m"`, `"3S"`: 1 to 8 digits
/// and one unit of `H M S m u n`), counted from now on `clock`. A malformed value is
/// `SEAWALL_E_INVALID_ARGUMENT`, with a message quoting it. Free the deadline with
/// `seawall_deadline_free`.
///
/// # Safety
/// `clock` must be NULL or a live clock; `header` NULL or a NUL-terminated string;
/// `out_deadline` NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_deadline_from_grpc_timeout(
    clock: *const seawall_clock,
    header: *const c_char,
    out_deadline: *mut *mut seawall_deadline,
) -> seawall_status {
    guard(|| {
        let c = arg(clock, "clock")?;
        let h = text(header, "header")?;
        let d = Deadline::from_grpc_timeout(c.clock.clone(), h)?;
        put_box(out_deadline, "out_deadline", seawall_deadline { inner: d })
    })
}

/// The time left before the deadline, in whole milliseconds rounded down (0 once expired;
/// it can also be 0 with less than 1 ms left: use `seawall_deadline_expired` to tell).
///
/// # Safety
/// `deadline` must be NULL or a live deadline; `out_ms` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_deadline_remaining_ms(
    deadline: *const seawall_deadline,
    out_ms: *mut u64,
) -> seawall_status {
    guard(|| {
        let d = arg(deadline, "deadline")?;
        put(out_ms, "out_ms", millis_floor(d.inner.remaining()))
    })
}

/// The time left before the deadline, in fractional milliseconds (exact to the
/// nanosecond); 0 once expired. Round it up for `poll()`, and never hand 0 to an API where
/// 0 means "no timeout" (`SO_RCVTIMEO`): check `seawall_deadline_expired` first.
///
/// # Safety
/// `deadline` must be NULL or a live deadline; `out_ms` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_deadline_remaining_ms_double(
    deadline: *const seawall_deadline,
    out_ms: *mut f64,
) -> seawall_status {
    guard(|| {
        let d = arg(deadline, "deadline")?;
        put(out_ms, "out_ms", ms_f64(d.inner.remaining()))
    })
}

/// Whether the deadline has passed (true at its time exactly, not 1 ms later).
///
/// # Safety
/// `deadline` must be NULL or a live deadline; `out_expired` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_deadline_expired(
    deadline: *const seawall_deadline,
    out_expired: *mut bool,
) -> seawall_status {
    guard(|| {
        let d = arg(deadline, "deadline")?;
        put(out_expired, "out_expired", d.inner.expired())
    })
}

/// Creates a new deadline equal to the earlier of `a` and `b` (nested scopes keep the
/// tighter budget). Both must be on the same clock (every system clock handle is the same
/// clock; each manual clock is its own): else `SEAWALL_E_INVALID_ARGUMENT`. Free the result
/// with `seawall_deadline_free`; `a` and `b` are unchanged.
///
/// # Safety
/// `a` and `b` must each be NULL or a live deadline; `out_deadline` NULL or valid for
/// writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_deadline_earliest(
    a: *const seawall_deadline,
    b: *const seawall_deadline,
    out_deadline: *mut *mut seawall_deadline,
) -> seawall_status {
    guard(|| {
        let a = arg(a, "a")?;
        let b = arg(b, "b")?;
        let e = a.inner.earliest(&b.inner)?;
        put_box(out_deadline, "out_deadline", seawall_deadline { inner: e })
    })
}

/// A share of what remains for one attempt, in fractional milliseconds: `fraction` of the
/// remaining time, at least `min_ms`, never more than what remains. E.g. with 100 ms
/// left, `(0.4, 5)` gives 40 and `(0.01, 5)` gives 5; with 3 ms left, `(0.4, 5)` gives 3.
/// A `fraction` outside [0, 1] (or NaN) and a negative, NaN or infinite `min_ms` are
/// `SEAWALL_E_INVALID_ARGUMENT`, naming the argument.
///
/// # Safety
/// `deadline` must be NULL or a live deadline; `out_ms` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_deadline_budget_ms(
    deadline: *const seawall_deadline,
    fraction: f64,
    min_ms: f64,
    out_ms: *mut f64,
) -> seawall_status {
    guard(|| {
        let d = arg(deadline, "deadline")?;
        let min = millis_arg("min_ms", min_ms)?;
        put(out_ms, "out_ms", ms_f64(d.inner.try_budget(fraction, min)?))
    })
}

/// Writes what remains of the deadline as a `grpc-timeout` header value (`"150000u"`:
/// the finest unit that fits in 8 digits, rounded up so that a positive budget never
/// becomes 0; `"0n"` once expired) into `buf`, NUL-terminated. `len` is the size of `buf`;
/// `SEAWALL_GRPC_TIMEOUT_BUFSIZE` (10) is always enough. A NULL or too small `buf` is
/// `SEAWALL_E_INVALID_ARGUMENT` (then `buf` holds an empty string when `len` > 0).
///
/// # Safety
/// `deadline` must be NULL or a live deadline; `buf` NULL or valid for writing `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn seawall_deadline_to_grpc_timeout(
    deadline: *const seawall_deadline,
    buf: *mut c_char,
    len: usize,
) -> seawall_status {
    guard(|| {
        let d = arg(deadline, "deadline")?;
        write_text(buf, len, &d.inner.to_grpc_timeout())
    })
}

/// Parses a `grpc-timeout` header value into fractional milliseconds (`"250m"` is 250,
/// `"7u"` is 0.007, `"1H"` is 3600000). A malformed value (empty, more than 8 digits, no or
/// an unknown unit, a sign, spaces, ...) is `SEAWALL_E_INVALID_ARGUMENT` with a message
/// quoting it and saying what is wrong.
///
/// # Safety
/// `header` must be NULL or a NUL-terminated string; `out_ms` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_grpc_timeout_parse_ms(
    header: *const c_char,
    out_ms: *mut f64,
) -> seawall_status {
    guard(|| {
        let d = parse_grpc_timeout(text(header, "header")?)?;
        put(out_ms, "out_ms", ms_f64(d))
    })
}

/// Formats a duration of `ms` (fractional) milliseconds as a `grpc-timeout` value into
/// `buf` (see `seawall_deadline_to_grpc_timeout`: `250` gives `"250000u"`). A negative, NaN
/// or infinite `ms` is `SEAWALL_E_INVALID_ARGUMENT` naming it; so is a NULL or too small
/// `buf` (`SEAWALL_GRPC_TIMEOUT_BUFSIZE` is always enough).
///
/// # Safety
/// `buf` must be NULL or valid for writing `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn seawall_grpc_timeout_format_ms(
    ms: f64,
    buf: *mut c_char,
    len: usize,
) -> seawall_status {
    guard(|| {
        let d = millis_arg("ms", ms)?;
        write_text(buf, len, &format_grpc_timeout(d))
    })
}

/// Frees a deadline. Deadlines made from it (`seawall_deadline_earliest`) and timers set
/// with it (`seawall_cancel_token_cancel_at`) are unaffected. `seawall_deadline_free(NULL)`
/// does nothing.
///
/// # Safety
/// `deadline` must be NULL or a live deadline, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn seawall_deadline_free(deadline: *mut seawall_deadline) {
    free_boxed(deadline);
}
