//! The breaker handle: construction, state, snapshot and the manual states.

use std::ffi::{c_char, c_int, CStr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seawall::{CircuitBreaker, ListenerId, State};

use crate::config::seawall_breaker_config;
use crate::status::{arg, cstr, free_boxed, guard, put, put_box, seawall_status, to_cstring};

/// A breaker state. The numbers are stable; `seawall_state_name` spells them as every
/// language does (`"closed"`, `"open"`, `"half_open"`, `"forced_open"`, `"disabled"`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum seawall_state {
    /// Calls flow; outcomes are counted.
    SEAWALL_STATE_CLOSED = 0,
    /// Calls are rejected until the open duration passes.
    SEAWALL_STATE_OPEN = 1,
    /// A few probes are admitted to test recovery.
    SEAWALL_STATE_HALF_OPEN = 2,
    /// Rejects every call until `seawall_breaker_reset`.
    SEAWALL_STATE_FORCED_OPEN = 3,
    /// Admits every call and records only metrics, until `seawall_breaker_reset`.
    SEAWALL_STATE_DISABLED = 4,
}

use seawall_state::*;

impl From<State> for seawall_state {
    #[inline]
    fn from(s: State) -> Self {
        match s {
            State::Closed => SEAWALL_STATE_CLOSED,
            State::Open => SEAWALL_STATE_OPEN,
            State::HalfOpen => SEAWALL_STATE_HALF_OPEN,
            State::ForcedOpen => SEAWALL_STATE_FORCED_OPEN,
            State::Disabled => SEAWALL_STATE_DISABLED,
        }
    }
}

/// A `seawall_state` received from C as a plain integer, so that an out-of-range value is
/// answered instead of being undefined behaviour. The header spells it `seawall_state`.
pub type StateArg = c_int;

/// The state's name: `"closed"`, `"open"`, `"half_open"`, `"forced_open"`, `"disabled"`
/// (the same strings in every language), or `"unknown"` for a number that is no state.
/// The string is static.
#[no_mangle]
pub extern "C" fn seawall_state_name(state: StateArg) -> *const c_char {
    // The spellings are the core's `State::as_str` (checked by a unit test), kept as literals
    // so that the answer is static.
    match state {
        0 => cstr!("closed"),
        1 => cstr!("open"),
        2 => cstr!("half_open"),
        3 => cstr!("forced_open"),
        4 => cstr!("disabled"),
        _ => cstr!("unknown"),
    }
}

/// A circuit breaker. Every function on it may be called from any thread at the same time.
/// Free it with `seawall_breaker_free`.
#[allow(non_camel_case_types)]
pub struct seawall_breaker {
    pub(crate) inner: CircuitBreaker,
    /// The name as a C string, for snapshots and events.
    pub(crate) name: Arc<CStr>,
    /// Listeners added through this handle, removed when it is freed.
    pub(crate) listeners: Mutex<Vec<ListenerId>>,
}

impl Drop for seawall_breaker {
    fn drop(&mut self) {
        // Permits still out keep the core breaker alive; make sure they can no longer call
        // back into C with user data the caller is about to free.
        let ids = std::mem::take(self.listeners.get_mut().unwrap_or_else(|e| e.into_inner()));
        for id in ids {
            self.inner.remove_listener(id);
        }
    }
}

impl seawall_breaker {
    /// A new C handle to a core breaker (shared with every other handle to it).
    pub(crate) fn from_core(inner: CircuitBreaker) -> Self {
        let name = Arc::from(to_cstring(inner.name()).into_boxed_c_str());
        Self {
            inner,
            name,
            listeners: Mutex::new(Vec::new()),
        }
    }
}

/// A point-in-time view of a breaker (`seawall_breaker_snapshot`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct seawall_snapshot {
    /// The breaker's name; valid as long as the breaker handle.
    pub name: *const c_char,
    /// Current state (time-driven changes applied).
    pub state: seawall_state,
    /// Successful calls, ever.
    pub successes: u64,
    /// Failed calls (timeouts included), ever.
    pub failures: u64,
    /// Slow calls (successful or failed), ever.
    pub slow: u64,
    /// Calls recorded as ignored, ever.
    pub ignored: u64,
    /// Calls rejected, ever.
    pub rejected: u64,
    /// Calls recorded as timeouts (also counted in `failures`), ever.
    pub timeouts: u64,
    /// Failures / recorded calls in the current window (0 when empty or no rate threshold is set).
    pub failure_rate: f64,
    /// Slow calls / recorded calls in the current window (0 when empty or no rate threshold is set).
    pub slow_call_rate: f64,
    /// Recorded calls in the current window.
    pub window_calls: u64,
    /// Failures in a row (closed state only, else 0).
    pub consecutive_failures: u32,
    /// Probes out now (half-open).
    pub half_open_in_flight: u32,
    /// Milliseconds until probes are admitted (rounded up) when open; 0 otherwise;
    /// `UINT64_MAX` when forced open.
    pub retry_after_ms: u64,
}

/// A wait in whole milliseconds, rounded up (so that retrying after it is not too early);
/// `Duration::MAX` (forced open) and anything too large for 64 bits is `UINT64_MAX`.
#[inline]
pub(crate) fn retry_ms(d: Duration) -> u64 {
    if d == Duration::MAX {
        return u64::MAX;
    }
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Builds a breaker from a configuration. The configuration is copied (it may be freed or
/// reused afterwards). `SEAWALL_E_CONFIG` when the options do not fit together (e.g.
/// `half_open_success_threshold` above `half_open_max_calls`); the message names the field
/// and the value.
///
/// # Safety
/// `config` must be NULL or a live configuration; `out_breaker` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_new(
    config: *const seawall_breaker_config,
    out_breaker: *mut *mut seawall_breaker,
) -> seawall_status {
    guard(|| {
        let c = arg(config, "config")?;
        if out_breaker.is_null() {
            return Err(crate::status::null("out_breaker"));
        }
        let inner = CircuitBreaker::new(c.inner.clone())?;
        put_box(
            out_breaker,
            "out_breaker",
            seawall_breaker::from_core(inner),
        )
    })
}

/// Frees a breaker and removes the listeners added through it. Permits still out stay
/// valid (record on them and free them as usual). `seawall_breaker_free(NULL)` does nothing.
///
/// # Safety
/// `breaker` must be NULL or a live breaker that no other thread is using, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_free(breaker: *mut seawall_breaker) {
    free_boxed(breaker);
}

/// The breaker's name (empty when none was set); valid as long as the breaker handle.
///
/// # Safety
/// `breaker` must be NULL or a live breaker; `out_name` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_name(
    breaker: *const seawall_breaker,
    out_name: *mut *const c_char,
) -> seawall_status {
    guard(|| {
        let b = arg(breaker, "breaker")?;
        put(out_name, "out_name", b.name.as_ptr())
    })
}

/// The current state, after applying any change that time has made due (a state query
/// counts as touching the breaker: an open breaker whose open duration has passed turns
/// half-open here).
///
/// # Safety
/// `breaker` must be NULL or a live breaker; `out_state` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_state(
    breaker: *mut seawall_breaker,
    out_state: *mut seawall_state,
) -> seawall_status {
    guard(|| {
        let b = arg(breaker, "breaker")?;
        put(out_state, "out_state", b.inner.state().into())
    })
}

/// Fills `out_snapshot` with the breaker's counts, rates and state (time-driven changes
/// applied first).
///
/// # Safety
/// `breaker` must be NULL or a live breaker; `out_snapshot` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_snapshot(
    breaker: *mut seawall_breaker,
    out_snapshot: *mut seawall_snapshot,
) -> seawall_status {
    guard(|| {
        let b = arg(breaker, "breaker")?;
        if out_snapshot.is_null() {
            return Err(crate::status::null("out_snapshot"));
        }
        let s = b.inner.snapshot();
        put(
            out_snapshot,
            "out_snapshot",
            seawall_snapshot {
                name: b.name.as_ptr(),
                state: s.state.into(),
                successes: s.successes,
                failures: s.failures,
                slow: s.slow,
                ignored: s.ignored,
                rejected: s.rejected,
                timeouts: s.timeouts,
                failure_rate: s.failure_rate,
                slow_call_rate: s.slow_call_rate,
                window_calls: s.window_calls,
                consecutive_failures: s.consecutive_failures,
                half_open_in_flight: s.half_open_in_flight,
                retry_after_ms: retry_ms(s.retry_after),
            },
        )
    })
}

/// True when outcomes need a measured duration (a slow-call threshold is set). When false,
/// callers may pass 0 as the duration and skip reading the clock around each call.
///
/// # Safety
/// `breaker` must be NULL or a live breaker; `out_needs` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_needs_duration(
    breaker: *const seawall_breaker,
    out_needs: *mut bool,
) -> seawall_status {
    guard(|| {
        let b = arg(breaker, "breaker")?;
        put(out_needs, "out_needs", b.inner.needs_duration())
    })
}

/// Runs one manual operation on a breaker.
///
/// # Safety
/// `breaker` must be NULL or a live breaker.
unsafe fn manual(breaker: *mut seawall_breaker, op: fn(&CircuitBreaker)) -> seawall_status {
    guard(|| {
        op(&arg(breaker, "breaker")?.inner);
        Ok(())
    })
}

/// Forces the breaker open: every call is rejected (`retry_after` `UINT64_MAX`) until
/// `seawall_breaker_reset`. Permits issued before become late (metrics only).
///
/// # Safety
/// `breaker` must be NULL or a live breaker.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_force_open(
    breaker: *mut seawall_breaker,
) -> seawall_status {
    manual(breaker, CircuitBreaker::force_open)
}

/// Disables the breaker: every call is admitted and only metrics are recorded, until
/// `seawall_breaker_reset`.
///
/// # Safety
/// `breaker` must be NULL or a live breaker.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_disable(breaker: *mut seawall_breaker) -> seawall_status {
    manual(breaker, CircuitBreaker::disable)
}

/// Resets the breaker to closed with an empty window, no consecutive failures and no
/// backoff. Cumulative counts are kept.
///
/// # Safety
/// `breaker` must be NULL or a live breaker.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_reset(breaker: *mut seawall_breaker) -> seawall_status {
    manual(breaker, CircuitBreaker::reset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_the_core_names() {
        for s in [
            State::Closed,
            State::Open,
            State::HalfOpen,
            State::ForcedOpen,
            State::Disabled,
        ] {
            let c: seawall_state = s.into();
            assert_eq!(c as u8, s as u8);
            let name = unsafe { CStr::from_ptr(seawall_state_name(c as c_int)) };
            assert_eq!(name.to_str().unwrap(), s.as_str());
        }
        let name = unsafe { CStr::from_ptr(seawall_state_name(5)) };
        assert_eq!(name.to_str().unwrap(), "unknown");
    }

    #[test]
    fn retry_is_rounded_up() {
        assert_eq!(retry_ms(Duration::ZERO), 0);
        assert_eq!(retry_ms(Duration::from_nanos(1)), 1);
        assert_eq!(retry_ms(Duration::from_millis(250)), 250);
        assert_eq!(retry_ms(Duration::MAX), u64::MAX);
    }
}
