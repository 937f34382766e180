//! Status codes, the thread-local last error, and [`guard`], the one wrapper every entry
//! point runs its body in (panics caught, errors turned into a status and a message).

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use seawall::{Error, ErrorCode};

/// The result of every seawall C function that can fail.
///
/// The numbers are the core's stable error codes and are never renumbered. On anything but
/// `SEAWALL_OK`, `seawall_last_error()` returns a message for the calling thread, and
/// `seawall_status_name()` spells the code as every language does.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum seawall_status {
    /// Success.
    SEAWALL_OK = 0,
    /// A NULL handle or out-parameter, a string that is not UTF-8, a value out of range
    /// (a negative, NaN or infinite duration, a malformed `grpc-timeout` value, a buffer
    /// too small), or handles that do not fit together (e.g. advancing a system clock,
    /// comparing deadlines of different clocks).
    SEAWALL_E_INVALID_ARGUMENT = 1,
    /// A configuration value was refused; the message names the field and the value.
    SEAWALL_E_CONFIG = 2,
    /// The breaker refused the call (open, saturated half-open or forced open).
    SEAWALL_E_BREAKER_OPEN = 3,
    /// An outcome was already recorded on this permit (or it was cancelled).
    SEAWALL_E_PERMIT_CONSUMED = 4,
    /// A deadline passed before the work finished.
    SEAWALL_E_TIMEOUT = 5,
    /// Another owner holds the idempotency key's lease (refused at once, or still held
    /// when the wait ended).
    SEAWALL_E_IDEMPOTENCY_IN_PROGRESS = 6,
    /// The idempotency key was already used with a different request payload (fingerprint).
    SEAWALL_E_IDEMPOTENCY_MISMATCH = 7,
    /// The idempotency store could not be reached or could not take the entry.
    SEAWALL_E_STORE_UNAVAILABLE = 8,
    /// A complete, release or renew with a lease the caller no longer holds.
    SEAWALL_E_LEASE_LOST = 9,
    /// The work was cancelled through a cancel token.
    SEAWALL_E_CANCELLED = 10,
    /// A bug in seawall: a panic was caught at the C boundary. The message says what panicked.
    SEAWALL_E_INTERNAL = 99,
}

use seawall_status::*;

/// The one table between `seawall_status` and the core's `ErrorCode`: one row per error
/// status. Everything else derives from it: `From<ErrorCode>`, [`seawall_status::code`],
/// the list of statuses and, through `ErrorCode::as_str`, the names of
/// `seawall_status_name`. Both conversions are exhaustive `match`es generated from the
/// rows, so the build fails when the core gains an `ErrorCode` without a row here (or the
/// enum above a variant without one), and a compile-time assertion checks that every row's
/// two numbers agree. To add a code: a variant in `seawall_status` (with its doc, which
/// goes into the header) and a row here.
macro_rules! status_table {
    ($($status:ident = $code:ident,)+) => {
        impl From<ErrorCode> for seawall_status {
            #[inline]
            fn from(code: ErrorCode) -> Self {
                match code {
                    $(ErrorCode::$code => $status,)+
                }
            }
        }

        impl seawall_status {
            /// The core's code for an error status (`None` for `SEAWALL_OK`).
            pub(crate) fn code(self) -> Option<ErrorCode> {
                match self {
                    SEAWALL_OK => None,
                    $($status => Some(ErrorCode::$code),)+
                }
            }
        }

        /// Every status, `SEAWALL_OK` first, then the rows in order.
        pub(crate) const ALL_STATUSES: &[seawall_status] = &[SEAWALL_OK, $($status,)+];

        const _: () = {
            $(assert!($status as u32 == ErrorCode::$code as u32, concat!(
                stringify!($status), " and ErrorCode::", stringify!($code), " differ"));)+
        };
    };
}

status_table! {
    SEAWALL_E_INVALID_ARGUMENT = InvalidArgument,
    SEAWALL_E_CONFIG = Config,
    SEAWALL_E_BREAKER_OPEN = BreakerOpen,
    SEAWALL_E_PERMIT_CONSUMED = PermitConsumed,
    SEAWALL_E_TIMEOUT = Timeout,
    SEAWALL_E_IDEMPOTENCY_IN_PROGRESS = IdempotencyInProgress,
    SEAWALL_E_IDEMPOTENCY_MISMATCH = IdempotencyMismatch,
    SEAWALL_E_STORE_UNAVAILABLE = StoreUnavailable,
    SEAWALL_E_LEASE_LOST = LeaseLost,
    SEAWALL_E_CANCELLED = Cancelled,
    SEAWALL_E_INTERNAL = Internal,
}

impl seawall_status {
    /// The stable code string: `"SEAWALL_OK"`, or the core's `ErrorCode::as_str`.
    fn name(self) -> &'static str {
        self.code().map_or("SEAWALL_OK", ErrorCode::as_str)
    }
}

/// A `seawall_status` received from C as a plain integer, so that an out-of-range value is
/// answered instead of being undefined behaviour. The header spells it `seawall_status`.
pub type StatusArg = c_int;

/// The last failure on this thread. Rendered to text only when `seawall_last_error()` asks,
/// so a rejected call (a hot path when a breaker is open) formats nothing.
enum Last {
    None,
    Pending(Error),
    Rendered(CString),
}

thread_local! {
    static LAST: RefCell<Last> = const { RefCell::new(Last::None) };
}

/// A static, NUL-terminated C string.
macro_rules! cstr {
    ($s:expr) => {
        concat!($s, "\0").as_ptr() as *const ::std::ffi::c_char
    };
}
pub(crate) use cstr;

/// Text to a C string, with any interior NUL shown as `\0` rather than cutting it short.
pub(crate) fn to_cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

fn set_last(err: Error) {
    let _ = LAST.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            *l = Last::Pending(err);
        }
    });
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    let msg = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    };
    // Dropping a payload runs foreign code that could panic again: contain that too.
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
    msg
}

/// Runs the body of a C entry point: `Ok` is `SEAWALL_OK`; an error becomes its status and
/// the thread's last error; a panic becomes `SEAWALL_E_INTERNAL` with its message. Nothing
/// unwinds into C.
#[inline]
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Error>) -> seawall_status {
    let err = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return SEAWALL_OK,
        Ok(Err(e)) => e,
        Err(payload) => Error::Internal(format!(
            "panic caught at the C boundary: {}",
            panic_message(payload)
        )),
    };
    let status = seawall_status::from(err.code());
    set_last(err);
    status
}

/// Frees a handle made by `Box::into_raw` (every `seawall_*_free`): NULL does nothing, and
/// a panic in a destructor is contained (reported by `seawall_last_error`), never unwound
/// into C.
///
/// # Safety
/// `p` is NULL or came from `Box::into_raw` and is not used afterwards.
pub(crate) unsafe fn free_boxed<T>(p: *mut T) {
    if !p.is_null() {
        let _ = guard(|| {
            drop(Box::from_raw(p));
            Ok(())
        });
    }
}

/// Like [`guard`], for the few functions that return a pointer instead of a status: a panic
/// returns `fallback`.
pub(crate) fn guard_ptr(
    body: impl FnOnce() -> *const c_char,
    fallback: *const c_char,
) -> *const c_char {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|p| {
        set_last(Error::Internal(format!(
            "panic caught at the C boundary: {}",
            panic_message(p)
        )));
        fallback
    })
}

/// `InvalidArgument` for a NULL `what`.
#[cold]
pub(crate) fn null(what: &str) -> Error {
    Error::InvalidArgument(format!("{what} is NULL"))
}

/// The handle behind a pointer, or `InvalidArgument` naming it when NULL.
///
/// # Safety
/// A non-NULL `p` must point to a live `T` for `'a`.
#[inline]
pub(crate) unsafe fn arg<'a, T>(p: *const T, what: &str) -> Result<&'a T, Error> {
    p.as_ref().ok_or_else(|| null(what))
}

/// Writes `v` through an out-parameter, or `InvalidArgument` naming it when NULL.
///
/// # Safety
/// A non-NULL `p` must be valid for writing a `T`.
#[inline]
pub(crate) unsafe fn put<T>(p: *mut T, what: &str, v: T) -> Result<(), Error> {
    if p.is_null() {
        return Err(null(what));
    }
    p.write(v);
    Ok(())
}

/// Moves `v` to the heap and hands C the pointer through `out` (checked before allocating,
/// so a NULL `out` leaks nothing).
///
/// # Safety
/// A non-NULL `out` must be valid for writing a pointer.
#[inline]
pub(crate) unsafe fn put_box<T>(out: *mut *mut T, what: &str, v: T) -> Result<(), Error> {
    if out.is_null() {
        return Err(null(what));
    }
    out.write(Box::into_raw(Box::new(v)));
    Ok(())
}

/// Writes `v` through an optional out-parameter (NULL: not wanted).
///
/// # Safety
/// A non-NULL `p` must be valid for writing a `T`.
#[inline]
pub(crate) unsafe fn put_opt<T>(p: *mut T, v: T) {
    if !p.is_null() {
        p.write(v);
    }
}

/// A C string argument as UTF-8 text, or `InvalidArgument` naming it (NULL or not UTF-8).
///
/// # Safety
/// A non-NULL `p` must point to a NUL-terminated string.
pub(crate) unsafe fn text<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(null(what));
    }
    CStr::from_ptr(p).to_str().map_err(|e| {
        Error::InvalidArgument(format!(
            "{what} is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })
}

/// The message of the last failure on the calling thread.
///
/// Never NULL: an empty string when no seawall call has failed on this thread. The text is
/// the core error's message and names the field and value for configuration errors, e.g.
/// `invalid configuration: window_size = 0: must be at least 1`. The pointer stays valid
/// until the next failing seawall call on the same thread; successful calls leave it alone.
#[no_mangle]
pub extern "C" fn seawall_last_error() -> *const c_char {
    guard_ptr(
        || {
            LAST.try_with(|l| {
                let Ok(mut l) = l.try_borrow_mut() else {
                    return cstr!("");
                };
                if let Last::Pending(e) = &*l {
                    *l = Last::Rendered(to_cstring(&e.to_string()));
                }
                match &*l {
                    Last::Rendered(s) => s.as_ptr(),
                    _ => cstr!(""),
                }
            })
            .unwrap_or(cstr!(""))
        },
        cstr!(""),
    )
}

/// The status as a stable code string, the one Node's `err.code` and the conformance files
/// use: `"SEAWALL_OK"`, `"SEAWALL_INVALID_ARGUMENT"`, `"SEAWALL_CONFIG"`,
/// `"SEAWALL_BREAKER_OPEN"`, `"SEAWALL_PERMIT_CONSUMED"`, `"SEAWALL_TIMEOUT"`,
/// `"SEAWALL_IDEMPOTENCY_IN_PROGRESS"`, `"SEAWALL_IDEMPOTENCY_MISMATCH"`,
/// `"SEAWALL_STORE_UNAVAILABLE"`, `"SEAWALL_LEASE_LOST"`, `"SEAWALL_CANCELLED"`,
/// `"SEAWALL_INTERNAL"`; `"SEAWALL_UNKNOWN"` for a number that is no status.
/// The string is static.
#[no_mangle]
pub extern "C" fn seawall_status_name(status: StatusArg) -> *const c_char {
    // The spellings are the core's `ErrorCode::as_str`, made NUL-terminated once.
    // `NAMES[i]` is the name of `ALL_STATUSES[i]`.
    static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
    guard_ptr(
        || {
            let names =
                NAMES.get_or_init(|| ALL_STATUSES.iter().map(|s| to_cstring(s.name())).collect());
            match ALL_STATUSES.iter().position(|s| *s as c_int == status) {
                Some(i) => names[i].as_ptr(),
                None => cstr!("SEAWALL_UNKNOWN"),
            }
        },
        cstr!("SEAWALL_UNKNOWN"),
    )
}

/// The library version (`"0.1.0"`), the same as the Rust crate's and every binding's.
/// The string is static.
#[no_mangle]
pub extern "C" fn seawall_version() -> *const c_char {
    static VERSION: OnceLock<CString> = OnceLock::new();
    guard_ptr(
        || {
            VERSION
                .get_or_init(|| to_cstring(seawall::VERSION))
                .as_ptr()
        },
        cstr!(""),
    )
}

/// For seawall's own tests only: panics inside the C boundary, to prove that a panic comes
/// back as `SEAWALL_E_INTERNAL` with a message in `seawall_last_error()` and never unwinds
/// into C. Always returns `SEAWALL_E_INTERNAL`. (The Rust runtime may also print the panic
/// to stderr.)
#[no_mangle]
pub extern "C" fn seawall_internal_test_panic() -> seawall_status {
    guard(|| panic!("seawall_internal_test_panic: deliberate panic for tests"))
}

/// For seawall's own tests only: arms a panic inside the core at `site`
/// (`"breaker.trip"`, `"idempotency.begin"` or `"registry.render"`): the next operation
/// that reaches it, in any thread, panics once, and that call returns `SEAWALL_E_INTERNAL`.
/// What each object is like afterwards: docs/hardening.md, "Panic containment".
/// `SEAWALL_E_INVALID_ARGUMENT` for an unknown site.
///
/// # Safety
/// `site` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn seawall_internal_test_arm_panic(site: *const c_char) -> seawall_status {
    guard(|| seawall::failpoint::arm(text(site, "site")?))
}

/// For seawall's own tests only: disarms every site armed by
/// `seawall_internal_test_arm_panic`.
#[no_mangle]
pub extern "C" fn seawall_internal_test_disarm_panics() {
    seawall::failpoint::disarm();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_the_core_codes() {
        // Completeness is checked by the compiler (the table's matches are exhaustive);
        // this checks what the table derives, status by status.
        // TODO(core): with an `ErrorCode::ALL` in the core this could also iterate the
        // core's codes at run time instead of relying on the exhaustive match alone.
        assert_eq!(
            ALL_STATUSES.len(),
            12,
            "a status was added: extend the C tests too"
        );
        let mut seen = std::collections::HashSet::new();
        for &s in ALL_STATUSES {
            assert!(seen.insert(s as c_int), "{s:?} appears twice");
            let name = unsafe { CStr::from_ptr(seawall_status_name(s as c_int)) };
            match s.code() {
                None => {
                    assert_eq!(s, SEAWALL_OK);
                    assert_eq!(name.to_str().unwrap(), "SEAWALL_OK");
                }
                Some(code) => {
                    assert_eq!(s as u32, code as u32, "{code:?}");
                    assert_eq!(seawall_status::from(code), s);
                    assert_eq!(name.to_str().unwrap(), code.as_str());
                }
            }
        }
        for n in [-1, 11, 42, 98, 100, c_int::MAX, c_int::MIN] {
            let name = unsafe { CStr::from_ptr(seawall_status_name(n)) };
            assert_eq!(name.to_str().unwrap(), "SEAWALL_UNKNOWN");
        }
    }
}
