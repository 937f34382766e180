//! The registry: named breakers and health checks, with one health report, one JSON
//! snapshot and one Prometheus exposition for all of them, rendered by the core into a
//! caller-supplied buffer.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use seawall::health::CheckFn;
use seawall::registry::{health_value, DEFAULT_MAX_BREAKERS};
use seawall::{BreakerConfig, CheckConfig, ConfigValue, Error, HealthStatus, Registry};

use crate::breaker::seawall_breaker;
use crate::clock::{seawall_clock, system_clock};
use crate::config::{seawall_breaker_config, C_STYLE};
use crate::events::UserData;
use crate::idempotency::{seawall_idem_cache, seawall_idem_config};
use crate::status::{arg, cstr, free_boxed, guard, null, put, put_box, put_opt, seawall_status, text};

/// Named breakers and health checks, reported together. Every function on it may be
/// called from any thread at the same time. Free it with `seawall_registry_free`.
#[allow(non_camel_case_types)]
pub struct seawall_registry {
    inner: Registry,
}

/// Creates a registry that reads `clock` (check times and intervals; NULL: the system
/// clock) and keeps at most `max_breakers` breakers (0: the default, 10 000). Past the
/// bound, the breakers used least recently are forgotten by the registry (handles to them
/// keep working; the registry stops reporting them), so per-tenant or per-host names
/// cannot grow memory without bound.
///
/// # Safety
/// `clock` must be NULL or a live clock; `out_registry` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_registry_new(
    clock: *const seawall_clock,
    max_breakers: usize,
    out_registry: *mut *mut seawall_registry,
) -> seawall_status {
    guard(|| {
        let clock = match clock.as_ref() {
            Some(c) => c.clock.clone(),
            None => system_clock(),
        };
        let max = if max_breakers == 0 {
            DEFAULT_MAX_BREAKERS
        } else {
            max_breakers
        };
        put_box(
            out_registry,
            "out_registry",
            seawall_registry {
                inner: Registry::with(clock, max),
            },
        )
    })
}

/// Frees a registry. Breaker handles from it keep working. Checks are no longer run; a
/// check running at this moment (or hanging) finishes on its own thread, and the checks'
/// `free_user_data` are called after it returns (at once when none is running). Does not
/// wait for a hanging check. `seawall_registry_free(NULL)` does nothing.
///
/// # Safety
/// `registry` must be NULL or a live registry that no other thread is using, not used
/// afterwards.
#[no_mangle]
pub unsafe extern "C" fn seawall_registry_free(registry: *mut seawall_registry) {
    free_boxed(registry);
}

/// Gets the breaker named `name`, or creates it from `config` (copied; NULL: every
/// default, on the registry's clock). An existing breaker keeps its own configuration
/// (`config` is then ignored). `*out_breaker` receives a new handle to the shared breaker:
/// every handle for one name (from any thread) is the same breaker; each handle is the
/// caller's to free with `seawall_breaker_free` (which leaves the breaker in the
/// registry). With a `config`, the breaker reads the configuration's clock
/// (`seawall_breaker_config_set_clock`). Mark a breaker whose failure should only degrade
/// the service with `seawall_breaker_config_set_bool(config, "critical", false)`.
///
/// `SEAWALL_E_CONFIG` for an empty name or a configuration the core refuses;
/// `SEAWALL_E_INVALID_ARGUMENT` for a NULL or non-UTF-8 name.
///
/// # Safety
/// `registry` must be NULL or live; `name` NULL or NUL-terminated; `config` NULL or a live
/// configuration; `out_breaker` NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_registry_breaker(
    registry: *const seawall_registry,
    name: *const c_char,
    config: *const seawall_breaker_config,
    out_breaker: *mut *mut seawall_breaker,
) -> seawall_status {
    guard(|| {
        let r = arg(registry, "registry")?;
        let name = text(name, "name")?;
        if out_breaker.is_null() {
            return Err(null("out_breaker"));
        }
        let config = match config.as_ref() {
            Some(c) => c.inner.clone(),
            None => BreakerConfig::with_style(C_STYLE).with_clock(r.inner.clock().clone()),
        };
        let b = r.inner.breaker(name, config)?;
        put_box(out_breaker, "out_breaker", seawall_breaker::from_core(b))
    })
}

/// Gets the idempotency cache named `name`, or creates it from `config` (copied; NULL:
/// every default with a memory store of its own, on the registry's clock). An existing
/// cache keeps its configuration. `*out_cache` receives a new handle to the shared cache,
/// the caller's to free with `seawall_idem_cache_free` (which leaves the cache in the
/// registry). The cache's counters are in the registry's snapshot and metrics
/// (`seawall_idempotency_requests_total{cache,result}`), and its store becomes the health
/// check `idempotency:<name>` (kind `store`; a Redis store is pinged, bounded by the
/// check timeout): when the store is unavailable the service is `down`, or `degraded`
/// for a cache configured with `seawall_idem_config_set_bool(config, "critical", false)`
/// (the default for `on_store_error = "run"`).
///
/// `SEAWALL_E_CONFIG` for an empty name or a configuration the core refuses;
/// `SEAWALL_E_INVALID_ARGUMENT` for a NULL or non-UTF-8 name.
///
/// # Safety
/// `registry` must be NULL or live; `name` NULL or NUL-terminated; `config` NULL or a live
/// configuration; `out_cache` NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_registry_idem_cache(
    registry: *const seawall_registry,
    name: *const c_char,
    config: *const seawall_idem_config,
    out_cache: *mut *mut seawall_idem_cache,
) -> seawall_status {
    guard(|| {
        let r = arg(registry, "registry")?;
        let name = text(name, "name")?;
        if out_cache.is_null() {
            return Err(null("out_cache"));
        }
        let config = match config.as_ref() {
            Some(c) => c.core(),
            None => seawall_idem_config::defaults_on(r.inner.clock().clone()),
        };
        let cache = r.inner.idempotency_cache(name, config)?;
        put_box(out_cache, "out_cache", seawall_idem_cache::from_core(cache))
    })
}

/// Forgets the breaker named `name` (handles to it keep working). `*out_removed` (when
/// not NULL) says whether there was one.
///
/// # Safety
/// `registry` must be NULL or live; `name` NULL or NUL-terminated; `out_removed` NULL or
/// valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_registry_remove_breaker(
    registry: *const seawall_registry,
    name: *const c_char,
    out_removed: *mut bool,
) -> seawall_status {
    guard(|| {
        let r = arg(registry, "registry")?;
        let removed = r.inner.remove_breaker(text(name, "name")?);
        put_opt(out_removed, removed);
        Ok(())
    })
}

/// The size of the message buffer a check receives.
pub const SEAWALL_CHECK_MESSAGE_SIZE: usize = 512;

/// A deep health check: verifies that the service can do the work it checks (query the
/// database, reach a dependency). Returns 0 when it passes, anything else when it fails;
/// on failure it may write a NUL-terminated reason into `message` (`message_size` bytes,
/// `SEAWALL_CHECK_MESSAGE_SIZE`, zeroed before the call); an empty message reads "check
/// returned N". See `seawall_registry_add_check` for the threads it runs on. It must not
/// unwind.
#[allow(non_camel_case_types)]
pub type seawall_check_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        message: *mut c_char,
        message_size: usize,
    ) -> c_int,
>;

/// Called once with `user_data` when seawall no longer needs it (see
/// `seawall_registry_add_check`).
#[allow(non_camel_case_types)]
pub type seawall_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// The C check and its data; `free_user_data` runs when the last reference goes (the check
/// was removed or replaced, or the registry freed, and no run is in progress).
struct CCheck {
    f: unsafe extern "C" fn(*mut c_void, *mut c_char, usize) -> c_int,
    data: UserData,
    free: seawall_free_fn,
    /// Runs of one check never overlap (the core starts none while one is out), but a
    /// lock makes the promise to C independent of that.
    running: Mutex<()>,
    /// Set once the registry took the check: a refused `seawall_registry_add_check` never
    /// calls `free` (`user_data` stays the caller's, whatever refused it).
    armed: AtomicBool,
}

impl CCheck {
    fn run(&self) -> Result<(), String> {
        let _one = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut msg = vec![0u8; SEAWALL_CHECK_MESSAGE_SIZE];
        // SAFETY: the caller vouched for the function and `user_data` at registration; the
        // buffer is `SEAWALL_CHECK_MESSAGE_SIZE` bytes.
        let rc = unsafe { (self.f)(self.data.get(), msg.as_mut_ptr().cast(), msg.len()) };
        if rc == 0 {
            return Ok(());
        }
        let end = msg.iter().position(|&b| b == 0).unwrap_or(msg.len());
        let text = String::from_utf8_lossy(&msg[..end]).into_owned();
        Err(if text.is_empty() {
            format!("check returned {rc}")
        } else {
            text
        })
    }
}

impl Drop for CCheck {
    fn drop(&mut self) {
        if !self.armed.load(Ordering::Acquire) {
            return;
        }
        if let Some(free) = self.free {
            // SAFETY: as for the check function.
            unsafe { free(self.data.get()) };
        }
    }
}

/// Registers (or replaces) the health check `name`: `check(user_data, message,
/// message_size)` is run by `seawall_registry_health` (and `_health_json`) when it has not
/// run within `interval_ms` (0: on every call), bounded by `timeout_ms`. A check that fails
/// or runs out of time makes the service `down` when `critical`, else `degraded`.
/// `timeout_ms` and `interval_ms` are checked by the core (`SEAWALL_E_CONFIG` naming
/// `timeout` or `interval` for a negative, NaN or infinite value, or a zero timeout).
///
/// Threads: each run happens on a short-lived thread seawall starts for it (named
/// `seawall-check-NAME`), never on the caller's, so that a hanging check cannot hang
/// `seawall_registry_health`: the caller waits for the due checks, in parallel, for at
/// most the longest of their timeouts, and a run still going then counts as failed
/// ("timed out after N ms"). Its thread keeps running until the function returns; no new
/// run of that check starts meanwhile (the check fails with "the previous run has not
/// returned"). Different checks may run at the same time; one check never runs twice at
/// once. A check may call any seawall function.
///
/// `user_data` must stay valid until `free_user_data(user_data)` is called (when
/// `free_user_data` is not NULL): exactly once, from the thread that lets go of the check
/// last, after the check was replaced or removed and its last run returned, or after
/// `seawall_registry_free` and the return of every run still in progress in the registry
/// (a run holds the registry's checks): with a hanging check, that may be long after
/// `seawall_registry_free`. Without `free_user_data`, keep `user_data` valid for as long
/// as the process may run the check. A refused call (any status but `SEAWALL_OK`) never
/// calls `free_user_data`: `user_data` stays the caller's.
///
/// # Safety
/// `registry` must be NULL or live; `name` NULL or NUL-terminated; `check` and
/// `free_user_data` safe to call from any thread with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn seawall_registry_add_check(
    registry: *const seawall_registry,
    name: *const c_char,
    check: seawall_check_fn,
    user_data: *mut c_void,
    timeout_ms: f64,
    interval_ms: f64,
    critical: bool,
    free_user_data: seawall_free_fn,
) -> seawall_status {
    guard(|| {
        let r = arg(registry, "registry")?;
        let name = text(name, "name")?;
        let f = check.ok_or_else(|| null("check"))?;
        let mut config = CheckConfig::default();
        config.set(C_STYLE, "timeout", ConfigValue::Float(timeout_ms))?;
        config.set(C_STYLE, "interval", ConfigValue::Float(interval_ms))?;
        config.critical = critical;
        let c = Arc::new(CCheck {
            f,
            data: UserData(user_data),
            free: free_user_data,
            running: Mutex::new(()),
            armed: AtomicBool::new(false),
        });
        // Held until armed, so that a check the core refused (and dropped) is freed here,
        // unarmed, and an accepted one is armed before anyone can let go of it.
        let keep = Arc::clone(&c);
        let run: CheckFn = Arc::new(move || c.run());
        r.inner.add_check(name, config, run)?;
        keep.armed.store(true, Ordering::Release);
        Ok(())
    })
}

/// Removes the check `name`. `*out_removed` (when not NULL) says whether there was one. A
/// run in progress finishes on its thread; `free_user_data` is called after it.
///
/// # Safety
/// `registry` must be NULL or live; `name` NULL or NUL-terminated; `out_removed` NULL or
/// valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_registry_remove_check(
    registry: *const seawall_registry,
    name: *const c_char,
    out_removed: *mut bool,
) -> seawall_status {
    guard(|| {
        let r = arg(registry, "registry")?;
        let removed = r.inner.remove_check(text(name, "name")?);
        put_opt(out_removed, removed);
        Ok(())
    })
}

/// The service's health. The numbers are stable and ordered (worse is greater);
/// `seawall_health_status_name` spells them as every language does.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum seawall_health_status {
    /// Everything works.
    SEAWALL_HEALTH_OK = 0,
    /// Something non-critical failed: the service works with less.
    SEAWALL_HEALTH_DEGRADED = 1,
    /// Something critical failed.
    SEAWALL_HEALTH_DOWN = 2,
}

impl From<HealthStatus> for seawall_health_status {
    fn from(s: HealthStatus) -> Self {
        match s {
            HealthStatus::Ok => seawall_health_status::SEAWALL_HEALTH_OK,
            HealthStatus::Degraded => seawall_health_status::SEAWALL_HEALTH_DEGRADED,
            HealthStatus::Down => seawall_health_status::SEAWALL_HEALTH_DOWN,
        }
    }
}

/// A `seawall_health_status` received from C as a plain integer. The header spells it
/// `seawall_health_status`.
pub type HealthStatusArg = c_int;

/// The status's name: `"ok"`, `"degraded"`, `"down"`, or `"unknown"`. Static.
#[no_mangle]
pub extern "C" fn seawall_health_status_name(status: HealthStatusArg) -> *const c_char {
    match status {
        0 => cstr!("ok"),
        1 => cstr!("degraded"),
        2 => cstr!("down"),
        _ => cstr!("unknown"),
    }
}

/// Runs the checks that are due (see `seawall_registry_add_check`; never longer than the
/// longest due check's timeout) and sets `*out_status`: `SEAWALL_HEALTH_DOWN` when a
/// critical check fails or a critical breaker is open (or forced open),
/// `SEAWALL_HEALTH_DEGRADED` when only non-critical ones do, else `SEAWALL_HEALTH_OK`.
/// The detail per check and breaker is in `seawall_registry_health_json`.
///
/// # Safety
/// `registry` must be NULL or live; `out_status` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_registry_health(
    registry: *const seawall_registry,
    out_status: *mut seawall_health_status,
) -> seawall_status {
    guard(|| {
        let r = arg(registry, "registry")?;
        if out_status.is_null() {
            return Err(null("out_status"));
        }
        put(out_status, "out_status", r.inner.health().status.into())
    })
}

/// Copies `s` and a NUL into `buf` (`len` bytes). `*out_needed` (when not NULL) always
/// receives `strlen(s) + 1`. Too small (or NULL `buf`): `InvalidArgument`, and `buf` holds
/// `""` when it has room for it.
///
/// # Safety
/// A non-NULL `buf` must be valid for writing `len` bytes; `out_needed` NULL or valid.
unsafe fn render(
    buf: *mut c_char,
    len: usize,
    out_needed: *mut usize,
    s: &str,
) -> Result<(), Error> {
    let need = s.len() + 1;
    put_opt(out_needed, need);
    if buf.is_null() || len < need {
        if !buf.is_null() && len > 0 {
            buf.write(0);
        }
        return Err(Error::InvalidArgument(format!(
            "buf is too small: len = {len}, the text needs {need} bytes (call again with a buffer of at least *out_needed bytes)"
        )));
    }
    std::ptr::copy_nonoverlapping(s.as_ptr().cast::<c_char>(), buf, s.len());
    buf.add(s.len()).write(0);
    Ok(())
}

/// Writes every metric of the registry's breakers and health in the Prometheus text
/// exposition format (version 0.0.4, the same names, labels and help text as every
/// language: `seawall_breaker_state`, `seawall_breaker_calls_total{outcome=...}`,
/// `seawall_breaker_transitions_total`, `seawall_health_status`, ...) into `buf`, `len`
/// bytes, NUL-terminated: what a `/metrics` endpoint serves (`Content-Type: text/plain;
/// version=0.0.4`). Runs no check (health lines show the last results).
///
/// `*out_needed` (when not NULL) receives the size the text needs, NUL included. A buffer
/// that is too small (or NULL) is `SEAWALL_E_INVALID_ARGUMENT` with `*out_needed > len`
/// (and `buf` holds `""` when `len` > 0): grow it and call again (the text may have grown
/// in between, so loop).
///
/// # Safety
/// `registry` must be NULL or live; `buf` NULL or valid for writing `len` bytes;
/// `out_needed` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_registry_prometheus(
    registry: *const seawall_registry,
    buf: *mut c_char,
    len: usize,
    out_needed: *mut usize,
) -> seawall_status {
    guard(|| {
        let r = arg(registry, "registry")?;
        render(buf, len, out_needed, &r.inner.prometheus())
    })
}

/// Runs the due checks (as `seawall_registry_health`), then writes the health report as
/// JSON into `buf` (what a `/health` endpoint serves; answer 503 when the status is
/// `down`): `{"status": "ok" | "degraded" | "down", "checks": {NAME: {"kind": "check" |
/// "breaker", "ok", "critical", "status", "error", "checked_at_ms", "last_ok_at_ms",
/// "duration_ms"}}}`, the same shape in every language. Buffer rules as for
/// `seawall_registry_prometheus`; calling again with a larger buffer reuses check results
/// within their interval.
///
/// # Safety
/// As for `seawall_registry_prometheus`.
#[no_mangle]
pub unsafe extern "C" fn seawall_registry_health_json(
    registry: *const seawall_registry,
    buf: *mut c_char,
    len: usize,
    out_needed: *mut usize,
) -> seawall_status {
    guard(|| {
        let r = arg(registry, "registry")?;
        render(
            buf,
            len,
            out_needed,
            &health_value(&r.inner.health()).to_string(),
        )
    })
}

/// Writes everything as JSON into `buf`: `{"breakers": {NAME: snapshot}, "health":
/// report}` (durations in ms; the same shape in every language). Runs no check. Buffer
/// rules as for `seawall_registry_prometheus`.
///
/// # Safety
/// As for `seawall_registry_prometheus`.
#[no_mangle]
pub unsafe extern "C" fn seawall_registry_snapshot_json(
    registry: *const seawall_registry,
    buf: *mut c_char,
    len: usize,
    out_needed: *mut usize,
) -> seawall_status {
    guard(|| {
        let r = arg(registry, "registry")?;
        render(buf, len, out_needed, &r.inner.snapshot_json().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn health_names_are_the_core_spellings() {
        for s in [HealthStatus::Ok, HealthStatus::Degraded, HealthStatus::Down] {
            let c = seawall_health_status::from(s);
            let n = unsafe { CStr::from_ptr(seawall_health_status_name(c as c_int)) };
            assert_eq!(n.to_str().unwrap(), s.as_str());
        }
    }
}
