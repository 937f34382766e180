//! Cancel tokens: how work running under a deadline learns that it should stop, and the
//! timers that cancel a token when a deadline passes.
//!
//! The token, its once-only callbacks and the timer are the core's. What this layer adds is
//! what C needs to manage `user_data` by hand: removing a callback (or freeing the token)
//! waits for a run of that callback in progress on another thread, so once it returns the
//! callback is neither running nor will run, and `user_data` may be freed.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, ThreadId};

use seawall::{CallbackId, CancelReason, CancelToken, Error, TimerGuard};

use crate::deadline::seawall_deadline;
use crate::events::UserData;
use crate::status::{arg, cstr, free_boxed, guard, null, put, put_box, put_opt, seawall_status};

/// Whether and why a token was cancelled. The numbers are stable;
/// `seawall_cancel_reason_name` spells them as every language does.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum seawall_cancel_reason {
    /// Not cancelled.
    SEAWALL_CANCEL_NONE = 0,
    /// `seawall_cancel_token_cancel` was called.
    SEAWALL_CANCEL_CANCELLED = 1,
    /// A deadline passed (`seawall_cancel_token_cancel_at`).
    SEAWALL_CANCEL_DEADLINE_EXCEEDED = 2,
}

use seawall_cancel_reason::*;

impl From<Option<CancelReason>> for seawall_cancel_reason {
    fn from(r: Option<CancelReason>) -> Self {
        match r {
            None => SEAWALL_CANCEL_NONE,
            Some(CancelReason::Cancelled) => SEAWALL_CANCEL_CANCELLED,
            Some(CancelReason::DeadlineExceeded) => SEAWALL_CANCEL_DEADLINE_EXCEEDED,
        }
    }
}

/// A `seawall_cancel_reason` received from C as a plain integer, so that an out-of-range
/// value is answered instead of being undefined behaviour. The header spells it
/// `seawall_cancel_reason`.
pub type CancelReasonArg = c_int;

/// The reason's name: `"cancelled"` or `"deadline_exceeded"` (the same strings in every
/// language), `"none"` for `SEAWALL_CANCEL_NONE`, `"unknown"` for a number that is no
/// reason. The string is static.
#[no_mangle]
pub extern "C" fn seawall_cancel_reason_name(reason: CancelReasonArg) -> *const c_char {
    // The spellings are the core's `CancelReason::as_str` (checked by a unit test), kept as
    // literals so that the answer is static.
    match reason {
        0 => cstr!("none"),
        1 => cstr!("cancelled"),
        2 => cstr!("deadline_exceeded"),
        _ => cstr!("unknown"),
    }
}

/// A cancel callback: called once with the reason and the `user_data` given at
/// registration, on the thread that cancels the token (see
/// `seawall_cancel_token_on_cancel`), outside seawall's locks. It must not unwind (no C++
/// exception or longjmp out of it).
#[allow(non_camel_case_types)]
pub type seawall_cancel_fn =
    Option<unsafe extern "C" fn(reason: seawall_cancel_reason, user_data: *mut c_void)>;

/// Where one registered callback is: waiting, running (on which thread), done or withdrawn.
enum Run {
    Pending,
    Running(ThreadId),
    Finished,
    Withdrawn,
}

/// One callback registered through the C API.
struct Registration {
    run: Mutex<Run>,
    finished: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registration {
    fn new() -> Self {
        Self {
            run: Mutex::new(Run::Pending),
            finished: Condvar::new(),
        }
    }

    /// Runs `f` unless the callback was withdrawn; marks it running meanwhile.
    fn run(&self, f: impl FnOnce()) {
        {
            let mut r = lock(&self.run);
            if !matches!(*r, Run::Pending) {
                return;
            }
            *r = Run::Running(thread::current().id());
        }
        f();
        *lock(&self.run) = Run::Finished;
        self.finished.notify_all();
    }

    fn finished(&self) -> bool {
        matches!(*lock(&self.run), Run::Finished)
    }

    /// Makes sure the callback will not run and is not running (unless on this very thread,
    /// i.e. it withdraws itself): waits for a run in progress on another thread. True when
    /// it never ran.
    fn withdraw(&self) -> bool {
        let me = thread::current().id();
        let mut r = lock(&self.run);
        loop {
            match *r {
                Run::Pending | Run::Withdrawn => {
                    *r = Run::Withdrawn;
                    return true;
                }
                Run::Finished => return false,
                Run::Running(t) if t == me => return false,
                Run::Running(_) => r = self.finished.wait(r).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}

#[derive(Default)]
struct Callbacks {
    /// The next id handed to C (ids start at 1).
    next: u64,
    /// Callbacks that may still run (or are running), by id.
    live: HashMap<u64, (CallbackId, Arc<Registration>)>,
}

/// A cancel token: a flag set once (by `seawall_cancel_token_cancel`, or by a deadline
/// through `seawall_cancel_token_cancel_at`) that work polls, plus callbacks run once when
/// it is set (e.g. to wake a `poll()` through a pipe, or to close a socket).
///
/// Thread safety: a token may be shared by any number of threads: cancelling, reading it
/// and adding or removing callbacks are safe concurrently (the usual pattern: the worker
/// polls `seawall_cancel_token_is_cancelled` while another thread, or the timer thread,
/// cancels it). Free it once, when no other thread uses it (a callback running on another
/// thread at that moment is waited for).
#[allow(non_camel_case_types)]
pub struct seawall_cancel_token {
    inner: CancelToken,
    callbacks: Mutex<Callbacks>,
}

impl Drop for seawall_cancel_token {
    fn drop(&mut self) {
        // A timer set with `cancel_at` may still hold the core token: make sure it can no
        // longer call back into C with user data the caller is about to free.
        let live = std::mem::take(
            &mut self
                .callbacks
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .live,
        );
        for (_, (id, reg)) in live {
            self.inner.remove(id);
            reg.withdraw();
        }
    }
}

/// A timer that cancels a token when a deadline passes (`seawall_cancel_token_cancel_at`).
/// Freeing it unschedules it. Thread safety: it may be freed from any thread (once).
#[allow(non_camel_case_types)]
pub struct seawall_timer {
    _guard: TimerGuard,
}

/// Creates a token, not cancelled. Free it with `seawall_cancel_token_free`.
///
/// # Safety
/// `out_token` must be NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_cancel_token_new(
    out_token: *mut *mut seawall_cancel_token,
) -> seawall_status {
    guard(|| {
        put_box(
            out_token,
            "out_token",
            seawall_cancel_token {
                inner: CancelToken::new(),
                callbacks: Mutex::new(Callbacks {
                    next: 1,
                    live: HashMap::new(),
                }),
            },
        )
    })
}

/// Cancels the token (reason `SEAWALL_CANCEL_CANCELLED`) and runs its callbacks, once, on
/// the calling thread, before returning. Cancelling a token already cancelled does nothing
/// and keeps the first reason.
///
/// # Safety
/// `token` must be NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn seawall_cancel_token_cancel(
    token: *mut seawall_cancel_token,
) -> seawall_status {
    guard(|| {
        // A clone, so that a callback may free the handle while it runs.
        let t = arg(token, "token")?.inner.clone();
        t.cancel();
        Ok(())
    })
}

/// Whether the token was cancelled (for any reason).
///
/// # Safety
/// `token` must be NULL or a live token; `out_cancelled` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_cancel_token_is_cancelled(
    token: *const seawall_cancel_token,
    out_cancelled: *mut bool,
) -> seawall_status {
    guard(|| {
        let t = arg(token, "token")?;
        put(out_cancelled, "out_cancelled", t.inner.is_cancelled())
    })
}

/// Why the token was cancelled: `SEAWALL_CANCEL_NONE` (not cancelled),
/// `SEAWALL_CANCEL_CANCELLED` or `SEAWALL_CANCEL_DEADLINE_EXCEEDED`.
///
/// # Safety
/// `token` must be NULL or a live token; `out_reason` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_cancel_token_reason(
    token: *const seawall_cancel_token,
    out_reason: *mut seawall_cancel_reason,
) -> seawall_status {
    guard(|| {
        let t = arg(token, "token")?;
        put(out_reason, "out_reason", t.inner.reason().into())
    })
}

/// Adds a callback run once, with the reason and `user_data`, when the token is cancelled;
/// at once, on the calling thread, if it already is. `*out_id` (when `out_id` is not NULL)
/// receives an id for `seawall_cancel_token_remove_callback`.
///
/// Which thread runs it: the thread that cancels. That is the caller of
/// `seawall_cancel_token_cancel`; for a deadline on the system clock, seawall's one timer
/// thread (shared by the whole process: keep the callback short and never block in it);
/// for a deadline on a manual clock, the thread calling `seawall_clock_advance_ms` (or
/// `seawall_cancel_token_cancel_at`, if the deadline has already passed). Callbacks run
/// outside seawall's locks, so they may call any seawall function, including on this
/// token.
///
/// `user_data` must stay valid until the callback has run, or until
/// `seawall_cancel_token_remove_callback` or `seawall_cancel_token_free` returns (both wait
/// for a run in progress on another thread, so do not call them while holding a lock the
/// callback takes).
///
/// # Safety
/// `token` must be NULL or a live token; `callback` safe to call from any thread with
/// `user_data`; `out_id` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_cancel_token_on_cancel(
    token: *mut seawall_cancel_token,
    callback: seawall_cancel_fn,
    user_data: *mut c_void,
    out_id: *mut u64,
) -> seawall_status {
    guard(|| {
        let t = arg(token, "token")?;
        let cb = callback.ok_or_else(|| null("callback"))?;
        let id = {
            let mut c = lock(&t.callbacks);
            let id = c.next;
            c.next += 1;
            id
        };
        let reg = Arc::new(Registration::new());
        let r = Arc::clone(&reg);
        let data = UserData(user_data);
        // Not under `callbacks`' lock: the callback runs here if the token is cancelled.
        // Through a clone of the core token, so that the callback may free the handle.
        let core_id = t.inner.clone().on_cancel(move |reason| {
            // SAFETY: the caller vouched for `callback` and `user_data` at registration.
            r.run(|| unsafe { cb(Some(reason).into(), data.get()) });
        });
        if !reg.finished() {
            lock(&t.callbacks).live.insert(id, (core_id, reg));
        }
        put_opt(out_id, id);
        Ok(())
    })
}

/// Removes a callback added with `seawall_cancel_token_on_cancel`. When it returns, the
/// callback is not running (a run in progress on another thread is waited for; a callback
/// may remove itself) and will not run, so its `user_data` may be freed.
/// `*out_removed` (when `out_removed` is not NULL) says whether it was removed before it
/// ran (true) or had already run (false). `SEAWALL_E_INVALID_ARGUMENT` for an id this
/// token never gave out.
///
/// # Safety
/// `token` must be NULL or a live token; `out_removed` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_cancel_token_remove_callback(
    token: *mut seawall_cancel_token,
    callback_id: u64,
    out_removed: *mut bool,
) -> seawall_status {
    guard(|| {
        let t = arg(token, "token")?;
        let entry = {
            let mut c = lock(&t.callbacks);
            if callback_id == 0 || callback_id >= c.next {
                return Err(Error::InvalidArgument(format!(
                    "no callback with id {callback_id} on this token"
                )));
            }
            c.live.remove(&callback_id)
        };
        // Not in `live`: it ran at registration, or was removed before.
        let removed = match entry {
            Some((core_id, reg)) => {
                t.inner.remove(core_id);
                reg.withdraw()
            }
            None => false,
        };
        put_opt(out_removed, removed);
        Ok(())
    })
}

/// Cancels the token with `SEAWALL_CANCEL_DEADLINE_EXCEEDED` when `deadline` passes,
/// through the deadline clock's timer: seawall's one timer thread for the system clock (no
/// thread per call), `seawall_clock_advance_ms` for a manual clock. A deadline already
/// passed cancels the token at once on a manual clock, and on the timer thread very soon
/// after on the system clock. `*out_timer` receives the timer: free it with
/// `seawall_timer_free` as soon as the work is done (before the deadline, that unschedules
/// it: the token is then not cancelled by it). The token and the deadline may be freed
/// before the timer.
///
/// # Safety
/// `token` and `deadline` must each be NULL or a live handle; `out_timer` NULL or valid for
/// writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_cancel_token_cancel_at(
    token: *mut seawall_cancel_token,
    deadline: *const seawall_deadline,
    out_timer: *mut *mut seawall_timer,
) -> seawall_status {
    guard(|| {
        let t = arg(token, "token")?;
        let d = arg(deadline, "deadline")?;
        if out_timer.is_null() {
            return Err(null("out_timer"));
        }
        // Clones, so that a callback run at once (a manual clock past the deadline) may
        // free the handles.
        let (tok, dl) = (t.inner.clone(), d.inner.clone());
        let g = tok.cancel_at(&dl);
        put_box(out_timer, "out_timer", seawall_timer { _guard: g })
    })
}

/// Frees a timer: unschedules it if it has not fired. A timer that has started firing (its
/// deadline passed) may still complete the token's cancellation on the timer thread. Freeing
/// a timer that fired only releases it. `seawall_timer_free(NULL)` does nothing.
///
/// # Safety
/// `timer` must be NULL or a live timer, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn seawall_timer_free(timer: *mut seawall_timer) {
    free_boxed(timer);
}

/// Frees a token. Its callbacks that have not run are removed (a run in progress on another
/// thread is waited for), so no callback runs after this returns. A timer set on it
/// (`seawall_cancel_token_cancel_at`) stays scheduled until freed, harmlessly.
/// `seawall_cancel_token_free(NULL)` does nothing.
///
/// # Safety
/// `token` must be NULL or a live token, not used afterwards (by any thread).
#[no_mangle]
pub unsafe extern "C" fn seawall_cancel_token_free(token: *mut seawall_cancel_token) {
    free_boxed(token);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn reason_names_are_the_core_spellings() {
        for r in [CancelReason::Cancelled, CancelReason::DeadlineExceeded] {
            let c = seawall_cancel_reason::from(Some(r));
            let name = unsafe { CStr::from_ptr(seawall_cancel_reason_name(c as c_int)) };
            assert_eq!(name.to_str().unwrap(), r.as_str());
        }
        assert_eq!(seawall_cancel_reason::from(None), SEAWALL_CANCEL_NONE);
    }
}
