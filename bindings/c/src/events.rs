//! State-change listeners: C callbacks called for every state change, in order, outside
//! the breaker's lock.

use std::ffi::{c_char, c_void};

use seawall::{Error, ListenerId, StateChange};

use crate::breaker::{seawall_breaker, seawall_state};
use crate::clock::millis_floor;
use crate::status::{arg, guard, put_opt, seawall_status, to_cstring};

/// One state change, as a listener receives it. The strings are valid only during the
/// callback (copy them to keep them).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct seawall_state_change {
    /// The breaker's name.
    pub breaker: *const c_char,
    /// State before.
    pub from: seawall_state,
    /// State after.
    pub to: seawall_state,
    /// Clock time of the change, in whole milliseconds since the clock's origin (a manual
    /// clock starts at 0).
    pub at_ms: u64,
    /// Why: `"consecutive_failures"`, `"failure_rate"`, `"slow_call_rate"`,
    /// `"open_duration_elapsed"`, `"probe_failure"`, `"probe_timeout"`, `"probe_successes"`,
    /// `"force_open"`, `"disable"` or `"reset"`.
    pub reason: *const c_char,
}

/// A state-change listener: called with the event and the `user_data` given at
/// registration. It may run on any thread that touches the breaker (never two at once for
/// one breaker), after the breaker's lock is released, so it may call back into the
/// breaker. It must not unwind (no C++ exception or longjmp out of it).
#[allow(non_camel_case_types)]
pub type seawall_state_change_fn =
    Option<unsafe extern "C" fn(event: *const seawall_state_change, user_data: *mut c_void)>;

/// The caller's `user_data`, handed back untouched on whatever thread delivers an event
/// (a state change, a cancellation).
pub(crate) struct UserData(pub(crate) *mut c_void);

// SAFETY: seawall never dereferences it; the caller promises (see
// `seawall_breaker_on_state_change`, `seawall_cancel_token_on_cancel`) that its callback
// may run on any thread.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

impl UserData {
    pub(crate) fn get(&self) -> *mut c_void {
        self.0
    }
}

/// Adds a listener called for every state change of the breaker, in the order the changes
/// happened. `*out_listener_id` (when `out_listener_id` is not NULL) receives an id for
/// `seawall_breaker_remove_listener`. Listeners are removed when the breaker is freed;
/// `user_data` must stay valid until then (or until the listener is removed).
///
/// # Safety
/// `breaker` must be NULL or a live breaker; `callback` safe to call from any thread with
/// `user_data`; `out_listener_id` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_on_state_change(
    breaker: *mut seawall_breaker,
    callback: seawall_state_change_fn,
    user_data: *mut c_void,
    out_listener_id: *mut u64,
) -> seawall_status {
    guard(|| {
        let b = arg(breaker, "breaker")?;
        let cb = callback.ok_or_else(|| crate::status::null("callback"))?;
        let name = b.name.clone();
        let data = UserData(user_data);
        let mut ids = b.listeners.lock().unwrap_or_else(|e| e.into_inner());
        let id = b.inner.on_state_change(move |e: &StateChange| {
            let reason = to_cstring(e.reason.as_str());
            let event = seawall_state_change {
                breaker: name.as_ptr(),
                from: e.from.into(),
                to: e.to.into(),
                at_ms: millis_floor(e.at),
                reason: reason.as_ptr(),
            };
            // SAFETY: the caller vouched for `callback` and `user_data` at registration.
            unsafe { cb(&event, data.get()) };
        });
        ids.push(id);
        put_opt(out_listener_id, id.0);
        Ok(())
    })
}

/// Removes a listener added with `seawall_breaker_on_state_change`.
/// `SEAWALL_E_INVALID_ARGUMENT` when no listener has that id on this breaker. An event
/// being delivered on another thread at that moment may still reach it once.
///
/// # Safety
/// `breaker` must be NULL or a live breaker.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_remove_listener(
    breaker: *mut seawall_breaker,
    listener_id: u64,
) -> seawall_status {
    guard(|| {
        let b = arg(breaker, "breaker")?;
        let mut ids = b.listeners.lock().unwrap_or_else(|e| e.into_inner());
        let id = ListenerId(listener_id);
        match ids.iter().position(|i| *i == id) {
            Some(i) if b.inner.remove_listener(id) => {
                ids.swap_remove(i);
                Ok(())
            }
            _ => Err(Error::InvalidArgument(format!(
                "no listener with id {listener_id} on this breaker"
            ))),
        }
    })
}
