//! Clocks: `seawall_system_clock_new` (monotonic, the default) and
//! `seawall_manual_clock_new` (virtual time for tests), read in milliseconds.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use seawall::{Error, ManualClock, SharedClock, SystemClock};

use crate::status::{arg, free_boxed, guard, put, put_box, seawall_status};

/// A clock handle. Every primitive reads time from a clock given to it at construction
/// (`seawall_breaker_config_set_clock`, `seawall_deadline_after_ms`); breakers and
/// deadlines keep their own reference, so the handle may be freed as soon as it is no
/// longer needed by the caller. Thread safety: a clock handle may be shared by any number
/// of threads (reading and advancing it are safe concurrently); free it once, when no
/// other thread uses it.
#[allow(non_camel_case_types)]
pub struct seawall_clock {
    pub(crate) clock: SharedClock,
    manual: Option<Arc<ManualClock>>,
}

/// Whole milliseconds of `d`, rounded down (saturating).
pub(crate) fn millis_floor(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// # Safety
/// `out` must be NULL or valid for writing a pointer.
unsafe fn new_clock(clock: seawall_clock, out: *mut *mut seawall_clock) -> seawall_status {
    guard(|| unsafe { put_box(out, "out_clock", clock) })
}

/// The process's one system clock: every `seawall_system_clock_new` handle refers to it, so
/// deadlines made from different handles are on the same clock (and can be compared).
pub(crate) fn system_clock() -> SharedClock {
    static SYSTEM: OnceLock<SharedClock> = OnceLock::new();
    SYSTEM.get_or_init(SystemClock::shared).clone()
}

/// Creates a handle to the system clock: monotonic time, in milliseconds since the first
/// time any seawall system clock was read in this process. Every such handle refers to the
/// same clock. Free it with `seawall_clock_free`.
///
/// # Safety
/// `out_clock` must be NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_system_clock_new(
    out_clock: *mut *mut seawall_clock,
) -> seawall_status {
    new_clock(
        seawall_clock {
            clock: system_clock(),
            manual: None,
        },
        out_clock,
    )
}

/// Creates a manual clock at time 0, whose time moves only with `seawall_clock_advance_ms`.
/// Give it to a breaker configuration to test with virtual time. Free it with
/// `seawall_clock_free`.
///
/// # Safety
/// `out_clock` must be NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_manual_clock_new(
    out_clock: *mut *mut seawall_clock,
) -> seawall_status {
    let manual = ManualClock::shared();
    new_clock(
        seawall_clock {
            clock: manual.clone(),
            manual: Some(manual),
        },
        out_clock,
    )
}

/// Moves a manual clock forward by `ms` milliseconds (saturating). Safe to call from any
/// thread. Timers that become due (a cancel token set to cancel at a deadline on this
/// clock) fire inside this call, earliest first, on the calling thread, so their cancel
/// callbacks run before it returns. `SEAWALL_E_INVALID_ARGUMENT` for a system clock.
///
/// # Safety
/// `clock` must be NULL or a live handle from `seawall_*_clock_new`.
#[no_mangle]
pub unsafe extern "C" fn seawall_clock_advance_ms(
    clock: *mut seawall_clock,
    ms: u64,
) -> seawall_status {
    guard(|| {
        let c = arg(clock, "clock")?;
        // A clone, so that a timer callback fired by `advance` may free the handle.
        let m = c.manual.clone().ok_or_else(|| {
            Error::InvalidArgument(
                "clock is not a manual clock; only a manual clock can be advanced".into(),
            )
        })?;
        m.advance(Duration::from_millis(ms));
        Ok(())
    })
}

/// Reads a clock: whole milliseconds since its origin (0 for a new manual clock).
///
/// # Safety
/// `clock` must be NULL or a live clock handle; `out_ms` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_clock_now_ms(
    clock: *const seawall_clock,
    out_ms: *mut u64,
) -> seawall_status {
    guard(|| {
        let c = arg(clock, "clock")?;
        put(out_ms, "out_ms", millis_floor(c.clock.now()))
    })
}

/// Frees a clock handle. Breakers built with it keep working (they hold their own
/// reference). `seawall_clock_free(NULL)` does nothing.
///
/// # Safety
/// `clock` must be NULL or a live handle from `seawall_*_clock_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn seawall_clock_free(clock: *mut seawall_clock) {
    free_boxed(clock);
}
