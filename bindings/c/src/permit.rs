//! Permits: `seawall_breaker_try_acquire` hands one out; the caller records exactly one
//! outcome on it and frees it. Freed without an outcome, it is a cancellation.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::time::Duration;

use seawall::{Error, Outcome, SharedPermit};

use crate::breaker::{retry_ms, seawall_breaker, seawall_state};
use crate::status::{arg, guard, put, put_opt, seawall_status};

/// The right to make one call. Record one outcome on it (`seawall_permit_success`,
/// `_failure`, `_timeout`, `_ignore`), then free it with `seawall_permit_free`. It may be
/// moved to and used from another thread.
#[allow(non_camel_case_types)]
pub struct seawall_permit {
    inner: SharedPermit,
}

/// Permit boxes kept for reuse, per thread, so that a steady stream of calls allocates
/// nothing: `seawall_permit_free` returns the box here and the next acquire on the same
/// thread takes it back. Bounded, so a burst of held permits does not pin memory.
const RECYCLED_MAX: usize = 64;

thread_local! {
    static RECYCLED: RefCell<Vec<Box<MaybeUninit<seawall_permit>>>> = const { RefCell::new(Vec::new()) };
}

/// A heap permit holding `inner`, from this thread's recycled boxes when there is one.
fn boxed(inner: SharedPermit) -> *mut seawall_permit {
    let slot = RECYCLED
        .try_with(|r| r.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| Box::new(MaybeUninit::uninit()));
    let p = Box::into_raw(slot).cast::<seawall_permit>();
    // SAFETY: `p` comes from `Box::into_raw` of a `MaybeUninit<seawall_permit>`: valid,
    // aligned and uninitialised.
    unsafe { p.write(seawall_permit { inner }) };
    p
}

/// Drops the permit in `p` (a cancellation if it has no outcome) and keeps its box.
///
/// # Safety
/// `p` comes from [`boxed`] and is not used afterwards.
unsafe fn release(p: *mut seawall_permit) {
    // SAFETY: `p` holds an initialised permit (see `boxed`); after this it is uninitialised.
    unsafe { std::ptr::drop_in_place(p) };
    // SAFETY: the allocation was made as a `Box<MaybeUninit<seawall_permit>>`.
    let slot = unsafe { Box::from_raw(p.cast::<MaybeUninit<seawall_permit>>()) };
    let _ = RECYCLED.try_with(|r| {
        let mut r = r.borrow_mut();
        if r.len() < RECYCLED_MAX {
            r.push(slot);
        }
    });
}

/// Why `seawall_breaker_try_acquire` refused a call.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct seawall_rejection {
    /// The state that refused: `SEAWALL_STATE_OPEN`, `SEAWALL_STATE_HALF_OPEN` (all probe
    /// slots taken) or `SEAWALL_STATE_FORCED_OPEN`.
    pub state: seawall_state,
    /// Milliseconds until probes are admitted, rounded up: the time left when open, 0 in
    /// saturated half-open, `UINT64_MAX` when forced open (until `seawall_breaker_reset`).
    pub retry_after_ms: u64,
}

/// Asks the breaker for a permit.
///
/// `SEAWALL_OK`: `*out_permit` is a permit; record one outcome on it and free it.
/// `SEAWALL_E_BREAKER_OPEN`: the call is refused, `*out_permit` is set to NULL and, when
/// `out_rejection` is not NULL, it is filled with the refusing state and `retry_after_ms`
/// (`out_rejection` is written only on a refusal). Rejections are counted in the snapshot.
///
/// # Safety
/// `breaker` must be NULL or a live breaker; `out_permit` NULL or valid for writing a
/// pointer; `out_rejection` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_try_acquire(
    breaker: *mut seawall_breaker,
    out_permit: *mut *mut seawall_permit,
    out_rejection: *mut seawall_rejection,
) -> seawall_status {
    guard(|| {
        let b = arg(breaker, "breaker")?;
        if out_permit.is_null() {
            return Err(crate::status::null("out_permit"));
        }
        match b.inner.try_acquire_shared() {
            Ok(p) => {
                out_permit.write(boxed(p));
                Ok(())
            }
            Err(r) => {
                out_permit.write(std::ptr::null_mut());
                put_opt(
                    out_rejection,
                    seawall_rejection {
                        state: r.state.into(),
                        retry_after_ms: retry_ms(r.retry_after),
                    },
                );
                Err(Error::BreakerOpen(r))
            }
        }
    })
}

/// Records `outcome` on a permit.
///
/// # Safety
/// `permit` must be NULL or a live permit.
#[inline]
unsafe fn record(
    permit: *mut seawall_permit,
    outcome: Outcome,
    duration_ms: u64,
) -> seawall_status {
    guard(|| {
        arg(permit, "permit")?
            .inner
            .record(outcome, Duration::from_millis(duration_ms))
    })
}

/// Records that the call succeeded after `duration_ms` milliseconds (pass 0 when
/// `seawall_breaker_needs_duration` says no duration is needed).
/// `SEAWALL_E_PERMIT_CONSUMED` when an outcome was already recorded or the permit cancelled.
///
/// # Safety
/// `permit` must be NULL or a live permit.
#[no_mangle]
pub unsafe extern "C" fn seawall_permit_success(
    permit: *mut seawall_permit,
    duration_ms: u64,
) -> seawall_status {
    record(permit, Outcome::Success, duration_ms)
}

/// Records that the call failed after `duration_ms` milliseconds.
/// `SEAWALL_E_PERMIT_CONSUMED` when an outcome was already recorded or the permit cancelled.
///
/// # Safety
/// `permit` must be NULL or a live permit.
#[no_mangle]
pub unsafe extern "C" fn seawall_permit_failure(
    permit: *mut seawall_permit,
    duration_ms: u64,
) -> seawall_status {
    record(permit, Outcome::Failure, duration_ms)
}

/// Records that the call timed out after `duration_ms` milliseconds: a failure that is also
/// counted in `timeouts`. `SEAWALL_E_PERMIT_CONSUMED` as for the other outcomes.
///
/// # Safety
/// `permit` must be NULL or a live permit.
#[no_mangle]
pub unsafe extern "C" fn seawall_permit_timeout(
    permit: *mut seawall_permit,
    duration_ms: u64,
) -> seawall_status {
    record(permit, Outcome::Timeout, duration_ms)
}

/// Records that the call ended with an error the caller excludes: counted only in
/// `ignored` (frees a half-open slot, counts toward neither closing nor opening).
/// `SEAWALL_E_PERMIT_CONSUMED` as for the other outcomes.
///
/// # Safety
/// `permit` must be NULL or a live permit.
#[no_mangle]
pub unsafe extern "C" fn seawall_permit_ignore(permit: *mut seawall_permit) -> seawall_status {
    record(permit, Outcome::Ignore, 0)
}

/// Cancels the call without freeing the permit: frees its half-open slot and counts
/// nowhere (what `seawall_permit_free` does to a permit without an outcome).
/// `SEAWALL_E_PERMIT_CONSUMED` when an outcome was already recorded or it was cancelled.
///
/// # Safety
/// `permit` must be NULL or a live permit.
#[no_mangle]
pub unsafe extern "C" fn seawall_permit_cancel(permit: *mut seawall_permit) -> seawall_status {
    guard(|| arg(permit, "permit")?.inner.cancel())
}

/// Whether this permit is a half-open probe.
///
/// # Safety
/// `permit` must be NULL or a live permit; `out_is_probe` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_permit_is_probe(
    permit: *const seawall_permit,
    out_is_probe: *mut bool,
) -> seawall_status {
    guard(|| {
        let p = arg(permit, "permit")?;
        put(out_is_probe, "out_is_probe", p.inner.is_probe())
    })
}

/// Frees a permit. A permit freed without an outcome is a cancellation: it frees its
/// half-open slot and counts nowhere. `seawall_permit_free(NULL)` does nothing.
///
/// # Safety
/// `permit` must be NULL or a live permit, not used afterwards (by any thread).
#[no_mangle]
pub unsafe extern "C" fn seawall_permit_free(permit: *mut seawall_permit) {
    if !permit.is_null() {
        let _ = guard(|| {
            release(permit);
            Ok(())
        });
    }
}
