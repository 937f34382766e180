//! The idempotency cache: `seawall_idem_begin` claims a key, the caller runs the operation
//! and completes (or releases) the lease, and every duplicate gets the stored record.
//!
//! Everything is the core's `IdempotencyCache`: this layer turns keys and payloads from
//! bytes into the core's types, outcomes into a struct of owned handles, and errors into
//! statuses. Semantics: `docs/idempotency.md`.

use std::ffi::{c_char, c_int, c_void};
use std::time::Duration;

use seawall::idempotency::{check_key_len, key_from_bytes, Acquired, Failed, Fingerprint, Output, WaitPoll};
use seawall::store::Peek;
use seawall::{ConfigValue, Error, IdempotencyCache, IdempotencyConfig, Lease, Record, Waiter};

use crate::breaker::retry_ms;
use crate::clock::{millis_floor, seawall_clock};
use crate::config::C_STYLE;
use crate::events::UserData;
use crate::record::{boxed_record, seawall_idem_record};
use crate::status::{
    arg, cstr, free_boxed, guard, null, put, put_box, put_opt, seawall_status, text, to_cstring,
};

// ---------------------------------------------------------------------------------------
// Configuration and the cache
// ---------------------------------------------------------------------------------------

/// An idempotency cache configuration under construction: defaults (see SPEC.md), then
/// one `seawall_idem_config_set_*` call per option. Reusable: `seawall_idem_cache_new`
/// copies it. A handle must not be changed by two threads at once.
#[allow(non_camel_case_types)]
pub struct seawall_idem_config {
    inner: IdempotencyConfig,
}

impl seawall_idem_config {
    /// Uses `store` for caches built from this configuration.
    pub(crate) fn set_store(&mut self, store: seawall::store::SharedStore) {
        self.inner = std::mem::take(&mut self.inner).with_store(store);
    }

    /// A copy of the configuration.
    pub(crate) fn core(&self) -> IdempotencyConfig {
        self.inner.clone()
    }

    /// Every default, in C's conventions, on `clock`.
    pub(crate) fn defaults_on(clock: seawall::SharedClock) -> IdempotencyConfig {
        IdempotencyConfig::with_style(C_STYLE).with_clock(clock)
    }
}

/// Creates a configuration with every default (memory store, system clock). Free it with
/// `seawall_idem_config_free`.
///
/// # Safety
/// `out_config` must be NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_config_new(
    out_config: *mut *mut seawall_idem_config,
) -> seawall_status {
    guard(|| {
        put_box(
            out_config,
            "out_config",
            seawall_idem_config {
                inner: IdempotencyConfig::with_style(C_STYLE),
            },
        )
    })
}

/// # Safety
/// `config` NULL or live; `key` NULL or NUL-terminated.
unsafe fn set(
    config: *mut seawall_idem_config,
    key: *const c_char,
    value: impl FnOnce() -> Result<ConfigValue, Error>,
) -> seawall_status {
    guard(|| {
        let c = config.as_mut().ok_or_else(|| null("config"))?;
        let key = text(key, "key")?;
        c.inner.set(key, value()?).map_err(Error::from)
    })
}

/// Sets a whole-number option, or a duration in milliseconds: `ttl`, `lease` (also
/// `lease_duration`), `wait_timeout`, `max_result_bytes`, `max_entries`, `max_bytes`.
///
/// `SEAWALL_E_CONFIG` at once for a refused value or an unknown name (the message of
/// `seawall_last_error()` names the field and the value, e.g. `ttl = -1ms: must not be
/// negative`; the configuration is left unchanged), `SEAWALL_E_INVALID_ARGUMENT` for a
/// NULL or non-UTF-8 key.
///
/// # Safety
/// `config` must be NULL or a live configuration; `key` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_config_set_int(
    config: *mut seawall_idem_config,
    key: *const c_char,
    value: i64,
) -> seawall_status {
    set(config, key, || Ok(ConfigValue::Int(value)))
}

/// Sets a duration in (possibly fractional) milliseconds, or a number option. NaN,
/// negative and infinite durations are refused with `SEAWALL_E_CONFIG`; counts must be
/// whole. Errors as for `seawall_idem_config_set_int`.
///
/// # Safety
/// `config` must be NULL or a live configuration; `key` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_config_set_double(
    config: *mut seawall_idem_config,
    key: *const c_char,
    value: f64,
) -> seawall_status {
    set(config, key, || Ok(ConfigValue::Float(value)))
}

/// Sets a text option: `name` (the label in metrics and events), `on_duplicate`
/// (`"wait"`, the default, or `"reject"`), `on_store_error` (`"fail"`, the default, or
/// `"run"`). The string is copied. Errors as for `seawall_idem_config_set_int`.
///
/// # Safety
/// `config` must be NULL or a live configuration; `key` and `value` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_config_set_str(
    config: *mut seawall_idem_config,
    key: *const c_char,
    value: *const c_char,
) -> seawall_status {
    set(config, key, || {
        Ok(ConfigValue::Str(text(value, "value")?.to_owned()))
    })
}

/// Sets a boolean option: `cache_errors` (store the operation's errors as results, see
/// `seawall_idem_fail`), `critical` (in a registry: an unavailable store makes health
/// `down`; false: `degraded`; default true with `on_store_error = "fail"`, false with
/// `"run"`). Errors as for `seawall_idem_config_set_int`.
///
/// # Safety
/// `config` must be NULL or a live configuration; `key` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_config_set_bool(
    config: *mut seawall_idem_config,
    key: *const c_char,
    value: bool,
) -> seawall_status {
    set(config, key, || Ok(ConfigValue::Bool(value)))
}

/// Makes caches built from this configuration (and their memory store) read `clock`
/// instead of the system clock: leases, TTLs and waits then follow a manual clock exactly.
/// The configuration keeps its own reference, so the clock handle may be freed afterwards.
///
/// # Safety
/// `config` and `clock` must each be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_config_set_clock(
    config: *mut seawall_idem_config,
    clock: *const seawall_clock,
) -> seawall_status {
    guard(|| {
        let c = config.as_mut().ok_or_else(|| null("config"))?;
        let clock = arg(clock, "clock")?;
        c.inner = std::mem::take(&mut c.inner).with_clock(clock.clock.clone());
        Ok(())
    })
}

/// Frees a configuration. Caches built from it are unaffected.
/// `seawall_idem_config_free(NULL)` does nothing.
///
/// # Safety
/// `config` must be NULL or a live configuration, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_config_free(config: *mut seawall_idem_config) {
    free_boxed(config);
}

/// An idempotency cache: runs an operation once per key and hands every duplicate the
/// first run's result. Every function on it may be called from any thread at the same
/// time. Free it with `seawall_idem_cache_free`.
#[allow(non_camel_case_types)]
pub struct seawall_idem_cache {
    inner: IdempotencyCache,
}

impl seawall_idem_cache {
    /// A handle to a core cache (shared with the registry that holds it).
    pub(crate) fn from_core(inner: IdempotencyCache) -> Self {
        Self { inner }
    }
}

/// Builds a cache (with a new memory store bounded by `max_entries` / `max_bytes`) from a
/// configuration, which is copied. `SEAWALL_E_CONFIG` when options do not fit together
/// (e.g. `max_result_bytes` over `max_bytes`); the message names the field and the value.
///
/// # Safety
/// `config` must be NULL or a live configuration; `out_cache` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_cache_new(
    config: *const seawall_idem_config,
    out_cache: *mut *mut seawall_idem_cache,
) -> seawall_status {
    guard(|| {
        let c = arg(config, "config")?;
        if out_cache.is_null() {
            return Err(null("out_cache"));
        }
        let inner = IdempotencyCache::new(c.inner.clone())?;
        put_box(out_cache, "out_cache", seawall_idem_cache { inner })
    })
}

/// Frees a cache handle. Leases, waiters and records still out stay valid (they keep
/// what they need alive): finish and free them as usual. `seawall_idem_cache_free(NULL)`
/// does nothing.
///
/// # Safety
/// `cache` must be NULL or a live cache that no other thread is using, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_cache_free(cache: *mut seawall_idem_cache) {
    free_boxed(cache);
}

// ---------------------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------------------

/// What a `seawall_idem_begin` (or a waiter, or `seawall_idem_acquire`) found. The numbers
/// are stable; `seawall_idem_outcome_name` spells them as the conformance files do.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum seawall_idem_outcome {
    /// The call failed (see its status): no handle was handed out. Zero, so that a result
    /// left untouched by a failed call never reads as "execute".
    SEAWALL_IDEM_ERROR = 0,
    /// You own the key: run the operation, then `seawall_idem_complete` (or `_fail`,
    /// `_release`, `_abandon`) the `lease`, and free it.
    SEAWALL_IDEM_EXECUTE = 1,
    /// The key holds a completed result for the same payload: return `record` (raise it
    /// again when its `error` flag is set) without running; free it.
    SEAWALL_IDEM_REPLAY = 2,
    /// Another owner holds the key's lease. With `on_duplicate = "wait"` (the default),
    /// `waiter` is set: wait for the owner's outcome with it. With `"reject"` (or a
    /// `wait_timeout` of 0), `waiter` is NULL: answer "in progress, retry after
    /// `retry_after_ms`" (HTTP 409).
    SEAWALL_IDEM_IN_PROGRESS = 3,
    /// The key was used with another request payload (HTTP 422). `mismatch_completed`
    /// says whether it holds a completed result (else a run is in progress).
    SEAWALL_IDEM_MISMATCH = 4,
    /// A waiter: not resolved yet (`retry_after_ms`: time left on the owner's lease;
    /// `timeout_in_ms`: time until the wait gives up).
    SEAWALL_IDEM_PENDING = 5,
    /// A waiter: its outcome was already handed over (by an earlier poll, wait or callback).
    SEAWALL_IDEM_TAKEN = 6,
}

use seawall_idem_outcome::*;

/// A `seawall_idem_outcome` received from C as a plain integer. The header spells it
/// `seawall_idem_outcome`.
pub type IdemOutcomeArg = c_int;

/// The outcome's name: `"error"`, `"execute"`, `"replay"`, `"in_progress"`, `"mismatch"`,
/// `"pending"`, `"taken"`, or `"unknown"` for a number that is no outcome. Static.
#[no_mangle]
pub extern "C" fn seawall_idem_outcome_name(outcome: IdemOutcomeArg) -> *const c_char {
    match outcome {
        0 => cstr!("error"),
        1 => cstr!("execute"),
        2 => cstr!("replay"),
        3 => cstr!("in_progress"),
        4 => cstr!("mismatch"),
        5 => cstr!("pending"),
        6 => cstr!("taken"),
        _ => cstr!("unknown"),
    }
}

/// What `seawall_idem_begin`, `seawall_idem_acquire` and the waiter functions hand back.
/// Every handle in it is the caller's, to finish and free; the others are NULL. A failed
/// call leaves every handle NULL and `outcome` `SEAWALL_IDEM_ERROR` (or, for the refusals
/// of `seawall_idem_acquire` and of waiters, `SEAWALL_IDEM_IN_PROGRESS` /
/// `SEAWALL_IDEM_MISMATCH` with their fields).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct seawall_idem_begin_result {
    /// What happened; says which of the fields below are set.
    pub outcome: seawall_idem_outcome,
    /// `SEAWALL_IDEM_EXECUTE`: the lease on the key. Finish it (complete, fail, release or
    /// abandon), then `seawall_idem_lease_free`.
    pub lease: *mut seawall_idem_lease,
    /// `SEAWALL_IDEM_REPLAY`: the stored result. `seawall_idem_record_free` it.
    pub record: *mut seawall_idem_record,
    /// `SEAWALL_IDEM_IN_PROGRESS` from `seawall_idem_begin` with `on_duplicate = "wait"`:
    /// the handle to wait with. `seawall_idem_waiter_free` it.
    pub waiter: *mut seawall_idem_waiter,
    /// `SEAWALL_IDEM_IN_PROGRESS` and `SEAWALL_IDEM_PENDING`: milliseconds left on the
    /// owner's lease (rounded up), when a duplicate may take over.
    pub retry_after_ms: u64,
    /// `SEAWALL_IDEM_PENDING`: milliseconds until the wait gives up (rounded up).
    pub timeout_in_ms: u64,
    /// `SEAWALL_IDEM_MISMATCH` from `seawall_idem_begin`: true when the key holds a
    /// completed result, false when a run is in progress. (`seawall_idem_acquire` and
    /// waiters report a mismatch through their status and leave it false.)
    pub mismatch_completed: bool,
}

const EMPTY: seawall_idem_begin_result = seawall_idem_begin_result {
    outcome: SEAWALL_IDEM_ERROR,
    lease: std::ptr::null_mut(),
    record: std::ptr::null_mut(),
    waiter: std::ptr::null_mut(),
    retry_after_ms: 0,
    timeout_in_ms: 0,
    mismatch_completed: false,
};

fn execute(lease: Lease) -> seawall_idem_begin_result {
    seawall_idem_begin_result {
        outcome: SEAWALL_IDEM_EXECUTE,
        lease: Box::into_raw(Box::new(seawall_idem_lease { inner: lease })),
        ..EMPTY
    }
}

fn replay(record: Record) -> seawall_idem_begin_result {
    seawall_idem_begin_result {
        outcome: SEAWALL_IDEM_REPLAY,
        record: boxed_record(record),
        ..EMPTY
    }
}

/// A waiter's (or acquire's) outcome: `Ok` with the result, or the error with the fields
/// of a refusal filled in.
fn acquired(r: Result<Acquired, Error>) -> (seawall_idem_begin_result, Result<(), Error>) {
    match r {
        Ok(Acquired::Execute(l)) => (execute(l), Ok(())),
        Ok(Acquired::Replay(r)) => (replay(r), Ok(())),
        Err(e) => (refusal(&e), Err(e)),
    }
}

fn refusal(e: &Error) -> seawall_idem_begin_result {
    match e {
        Error::IdempotencyInProgress(ip) => seawall_idem_begin_result {
            outcome: SEAWALL_IDEM_IN_PROGRESS,
            retry_after_ms: retry_ms(ip.retry_after),
            ..EMPTY
        },
        Error::IdempotencyMismatch { .. } => seawall_idem_begin_result {
            outcome: SEAWALL_IDEM_MISMATCH,
            ..EMPTY
        },
        _ => EMPTY,
    }
}

/// `len` bytes at `p` (NULL is accepted for 0 bytes); `InvalidArgument` naming `what` for a
/// NULL pointer with a length.
///
/// # Safety
/// A non-NULL `p` must be valid for reading `len` bytes for `'a`.
#[inline]
pub(crate) unsafe fn bytes_arg<'a>(
    p: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Error> {
    if p.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(Error::InvalidArgument(format!(
            "{what} is NULL but its length is {len}"
        )));
    }
    Ok(std::slice::from_raw_parts(p, len))
}

/// An idempotency key from C: 1 to 255 bytes of UTF-8, checked by the core.
///
/// # Safety
/// A non-NULL `key` must be valid for reading `len` bytes for `'a`.
#[inline]
unsafe fn key_arg<'a>(key: *const u8, len: usize) -> Result<&'a str, Error> {
    if key.is_null() {
        return Err(null("key"));
    }
    // The length before the slice: `key_len = SIZE_MAX` is refused, never read.
    check_key_len(len)?;
    key_from_bytes(std::slice::from_raw_parts(key, len))
}

/// The fingerprint of a request payload: NULL is "no fingerprint"; any non-NULL pointer,
/// even with length 0, is the SHA-256 of those bytes.
///
/// # Safety
/// A non-NULL `p` must be valid for reading `len` bytes.
#[inline]
unsafe fn fingerprint_arg(p: *const u8, len: usize) -> Result<Fingerprint, Error> {
    if p.is_null() {
        if len != 0 {
            return Err(Error::InvalidArgument(format!(
                "fingerprint_payload is NULL but fingerprint_len is {len} (NULL with 0: no fingerprint)"
            )));
        }
        return Ok(Fingerprint::NONE);
    }
    Ok(Fingerprint::of(std::slice::from_raw_parts(p, len)))
}

/// Claims `key` for a request, in one atomic step, and says what the caller must do
/// (`out->outcome`): `SEAWALL_IDEM_EXECUTE` (run, then complete the lease),
/// `SEAWALL_IDEM_REPLAY` (return the record), `SEAWALL_IDEM_IN_PROGRESS` (with a waiter, or
/// refused at once in reject mode) or `SEAWALL_IDEM_MISMATCH`. All four are `SEAWALL_OK`:
/// they are answers, not failures. Never blocks on other callers.
///
/// `key` is `key_len` bytes of UTF-8, 1 to 255 of them (not NUL-terminated; a NUL byte is
/// part of the key). `fingerprint_payload` is the canonical request payload
/// (`fingerprint_len` bytes), hashed with SHA-256 by the core: the same key with another
/// payload is a mismatch. NULL (with 0) means no fingerprint, which matches only itself;
/// a non-NULL pointer with length 0 is the fingerprint of an empty payload, a different one.
///
/// Errors: `SEAWALL_E_INVALID_ARGUMENT` for a NULL argument, an empty key, a key over 255
/// bytes or not UTF-8 (the message names the length or the offset of the bad byte);
/// `SEAWALL_E_STORE_UNAVAILABLE` when the store cannot take the claim (full of live
/// leases), unless `on_store_error = "run"`, which returns an unprotected
/// `SEAWALL_IDEM_EXECUTE` instead.
///
/// # Safety
/// `cache` must be NULL or a live cache; `key` NULL or valid for reading `key_len` bytes;
/// `fingerprint_payload` NULL or valid for reading `fingerprint_len` bytes; `out` NULL or
/// valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_begin(
    cache: *const seawall_idem_cache,
    key: *const u8,
    key_len: usize,
    fingerprint_payload: *const u8,
    fingerprint_len: usize,
    out: *mut seawall_idem_begin_result,
) -> seawall_status {
    guard(|| {
        let c = arg(cache, "cache")?;
        put(out, "out", EMPTY)?;
        let key = key_arg(key, key_len)?;
        let fp = fingerprint_arg(fingerprint_payload, fingerprint_len)?;
        let r = match c.inner.begin(key, &fp)? {
            seawall::Begin::Execute(l) => execute(l),
            seawall::Begin::Replay(r) => replay(r),
            seawall::Begin::InProgress(ip) => seawall_idem_begin_result {
                outcome: SEAWALL_IDEM_IN_PROGRESS,
                retry_after_ms: retry_ms(ip.retry_after),
                waiter: ip.waiter.map_or(std::ptr::null_mut(), |w| {
                    Box::into_raw(Box::new(seawall_idem_waiter { inner: w }))
                }),
                ..EMPTY
            },
            seawall::Begin::Mismatch(m) => seawall_idem_begin_result {
                outcome: SEAWALL_IDEM_MISMATCH,
                mismatch_completed: m.completed,
                ..EMPTY
            },
        };
        out.write(r);
        Ok(())
    })
}

/// `seawall_idem_begin`, then, if another owner holds the key, blocks the calling thread
/// until the caller may go on (woken by the owner's completion or release, or by the
/// lease's expiry on the cache's clock; never by polling): `SEAWALL_OK` with
/// `SEAWALL_IDEM_EXECUTE` or `SEAWALL_IDEM_REPLAY`. What a synchronous service calls.
///
/// Refusals are statuses: `SEAWALL_E_IDEMPOTENCY_MISMATCH` (outcome
/// `SEAWALL_IDEM_MISMATCH`), `SEAWALL_E_IDEMPOTENCY_IN_PROGRESS` (outcome
/// `SEAWALL_IDEM_IN_PROGRESS`, with `retry_after_ms`) when rejecting duplicates or when
/// `wait_timeout` passed first, and the errors of `seawall_idem_begin`. The wait has no
/// other bound: with a manual clock, it lasts until another thread advances the clock far
/// enough. To bound it in real time or cancel it, use `seawall_idem_begin` and
/// `seawall_idem_waiter_wait` instead.
///
/// # Safety
/// As for `seawall_idem_begin`.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_acquire(
    cache: *const seawall_idem_cache,
    key: *const u8,
    key_len: usize,
    fingerprint_payload: *const u8,
    fingerprint_len: usize,
    out: *mut seawall_idem_begin_result,
) -> seawall_status {
    guard(|| {
        let c = arg(cache, "cache")?;
        put(out, "out", EMPTY)?;
        let key = key_arg(key, key_len)?;
        let fp = fingerprint_arg(fingerprint_payload, fingerprint_len)?;
        let (r, status) = acquired(c.inner.acquire(key, &fp));
        out.write(r);
        status
    })
}

// ---------------------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------------------

/// The right (and duty) to run the operation for a key, until the lease expires (`lease`
/// option, 30 s by default) without `seawall_idem_renew`. Finish it with
/// `seawall_idem_complete`, `_fail`, `_release` or `_abandon`, then free it. A lease freed
/// unfinished is left to expire: duplicates are held off until then, and one of them runs
/// the operation afterwards. May be used from any thread (one call at a time is not
/// required).
#[allow(non_camel_case_types)]
pub struct seawall_idem_lease {
    inner: Lease,
}

/// Facts about a lease (`seawall_idem_lease_get_info`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct seawall_idem_lease_info {
    /// The key (`key_len` bytes of UTF-8, not NUL-terminated), valid as long as the lease.
    pub key: *const u8,
    /// Its length in bytes.
    pub key_len: usize,
    /// The fencing token: greater than every earlier lease's on this key (0 unprotected).
    pub token: u64,
    /// When the lease expires, in whole ms on the cache's clock (moved by renew).
    pub expires_at_ms: u64,
    /// True when this caller took the key over from an owner whose lease expired or who
    /// released it.
    pub took_over: bool,
    /// False when the store failed and `on_store_error = "run"` let the operation run
    /// unprotected: nothing will be stored, duplicates are not held off.
    pub is_protected: bool,
}

/// Fills `out_info` with the lease's key, token, expiry and flags.
///
/// # Safety
/// `lease` must be NULL or a live lease; `out_info` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_lease_get_info(
    lease: *const seawall_idem_lease,
    out_info: *mut seawall_idem_lease_info,
) -> seawall_status {
    guard(|| {
        let l = &arg(lease, "lease")?.inner;
        put(
            out_info,
            "out_info",
            seawall_idem_lease_info {
                key: l.key().as_ptr(),
                key_len: l.key().len(),
                token: l.token(),
                expires_at_ms: millis_floor(l.expires_at()),
                took_over: l.took_over(),
                is_protected: l.is_protected(),
            },
        )
    })
}

/// Frees a lease handle. An unfinished lease is not released: it is left to expire
/// (outcome unknown). `seawall_idem_lease_free(NULL)` does nothing.
///
/// # Safety
/// `lease` must be NULL or a live lease, not used afterwards (by any thread).
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_lease_free(lease: *mut seawall_idem_lease) {
    free_boxed(lease);
}

/// One metadata pair of an output (e.g. an HTTP status or header). Both NUL-terminated UTF-8.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct seawall_idem_metadata {
    /// The name.
    pub name: *const c_char,
    /// The value.
    pub value: *const c_char,
}

/// What an operation produced, serialised, for `seawall_idem_complete_output` and
/// `seawall_idem_fail`. Everything is copied by the call.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct seawall_idem_output {
    /// The result bytes (NULL only with `result_len` 0).
    pub result: *const u8,
    /// Their length.
    pub result_len: usize,
    /// How they are encoded (`"application/json"`, ...), NUL-terminated UTF-8; NULL: `""`.
    pub content_type: *const c_char,
    /// `metadata_count` pairs, kept in order, duplicates allowed (NULL with 0: none).
    pub metadata: *const seawall_idem_metadata,
    /// How many pairs.
    pub metadata_count: usize,
}

/// # Safety
/// `content_type` NULL or NUL-terminated.
unsafe fn content_type_arg(content_type: *const c_char) -> Result<String, Error> {
    if content_type.is_null() {
        Ok(String::new())
    } else {
        Ok(text(content_type, "content_type")?.to_owned())
    }
}

/// # Safety
/// The pointers in `o` must be valid as documented on `seawall_idem_output`.
unsafe fn output_arg(o: &seawall_idem_output) -> Result<Output, Error> {
    let result = bytes_arg(o.result, o.result_len, "output.result")?;
    let mut out = Output::new(result.to_vec(), content_type_arg(o.content_type)?);
    if o.metadata.is_null() && o.metadata_count != 0 {
        return Err(Error::InvalidArgument(format!(
            "output.metadata is NULL but output.metadata_count is {}",
            o.metadata_count
        )));
    }
    if o.metadata_count > 0 {
        let pairs = std::slice::from_raw_parts(o.metadata, o.metadata_count);
        out.metadata.reserve(pairs.len());
        for (i, p) in pairs.iter().enumerate() {
            let name = text(p.name, &format!("output.metadata[{i}].name"))?;
            let value = text(p.value, &format!("output.metadata[{i}].value"))?;
            out.metadata.push((name.to_owned(), value.to_owned()));
        }
    }
    Ok(out)
}

/// # Safety
/// `out_record` NULL or valid for writing a pointer.
unsafe fn hand_record(out_record: *mut *mut seawall_idem_record, r: Record) {
    if !out_record.is_null() {
        out_record.write(boxed_record(r));
    }
}

/// Stores the operation's result for `ttl` (default 24 h): `result_len` bytes (copied;
/// NULL only with 0) with `content_type` (NUL-terminated UTF-8; NULL: `""`). Every
/// duplicate from now on gets this record; so does the caller, through `*out_record` when
/// `out_record` is not NULL (free it), so that it returns exactly what they will get.
///
/// Errors: `SEAWALL_E_LEASE_LOST` when the lease no longer holds the key (it expired,
/// another owner took over, or it was already completed or released; the message says
/// which); `SEAWALL_E_INVALID_ARGUMENT` for a result over `max_result_bytes` (nothing is
/// stored and the key is released, so a retry runs at once); `SEAWALL_E_STORE_UNAVAILABLE`
/// when the store cannot take it (the key is released). `*out_record` is NULL on failure.
/// The lease handle still needs `seawall_idem_lease_free` either way.
///
/// # Safety
/// `cache` and `lease` must be NULL or live; `result` NULL or valid for reading
/// `result_len` bytes; `content_type` NULL or NUL-terminated; `out_record` NULL or valid
/// for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_complete(
    cache: *const seawall_idem_cache,
    lease: *const seawall_idem_lease,
    result: *const u8,
    result_len: usize,
    content_type: *const c_char,
    out_record: *mut *mut seawall_idem_record,
) -> seawall_status {
    guard(|| {
        put_opt(out_record, std::ptr::null_mut());
        let c = arg(cache, "cache")?;
        let l = arg(lease, "lease")?;
        let bytes = bytes_arg(result, result_len, "result")?;
        let out = Output::new(bytes.to_vec(), content_type_arg(content_type)?);
        let r = c.inner.complete(&l.inner, out)?;
        hand_record(out_record, r);
        Ok(())
    })
}

/// `seawall_idem_complete` with a full output: result, content type and metadata pairs
/// (e.g. the HTTP status and headers a replay must send again).
///
/// # Safety
/// `cache` and `lease` must be NULL or live; `output` NULL or valid, with its pointers
/// valid as documented on `seawall_idem_output`; `out_record` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_complete_output(
    cache: *const seawall_idem_cache,
    lease: *const seawall_idem_lease,
    output: *const seawall_idem_output,
    out_record: *mut *mut seawall_idem_record,
) -> seawall_status {
    guard(|| {
        put_opt(out_record, std::ptr::null_mut());
        let c = arg(cache, "cache")?;
        let l = arg(lease, "lease")?;
        let out = output_arg(arg(output, "output")?)?;
        let r = c.inner.complete(&l.inner, out)?;
        hand_record(out_record, r);
        Ok(())
    })
}

/// The operation failed (before any side effect, or safely retryable). With the
/// `cache_errors` option and an `error` output (the serialised error), the error is
/// stored as the key's result, marked as an error, and `*out_record` (when `out_record`
/// is not NULL) receives it; otherwise the claim is released so a retry runs the
/// operation again, and `*out_record` is NULL. The policy is the core's: call this
/// whenever the operation fails. Errors as for `seawall_idem_release` (or
/// `seawall_idem_complete` when storing).
///
/// For a failure after side effects that may have happened, call `seawall_idem_abandon`
/// instead.
///
/// # Safety
/// `cache` and `lease` must be NULL or live; `error` NULL or valid as documented on
/// `seawall_idem_output`; `out_record` NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_fail(
    cache: *const seawall_idem_cache,
    lease: *const seawall_idem_lease,
    error: *const seawall_idem_output,
    out_record: *mut *mut seawall_idem_record,
) -> seawall_status {
    guard(|| {
        put_opt(out_record, std::ptr::null_mut());
        let c = arg(cache, "cache")?;
        let l = arg(lease, "lease")?;
        let err = match error.as_ref() {
            Some(o) => Some(output_arg(o)?),
            None => None,
        };
        if let Failed::Stored(r) = c.inner.fail(&l.inner, err)? {
            hand_record(out_record, r);
        }
        Ok(())
    })
}

/// Deletes the claim so that a retry may run the operation (a waiting duplicate takes
/// over at once). `SEAWALL_E_LEASE_LOST` when the lease no longer holds the key.
///
/// # Safety
/// `cache` and `lease` must be NULL or live.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_release(
    cache: *const seawall_idem_cache,
    lease: *const seawall_idem_lease,
) -> seawall_status {
    guard(|| {
        let c = arg(cache, "cache")?;
        let l = arg(lease, "lease")?;
        c.inner.release(&l.inner)
    })
}

/// Extends a long-running claim to a full lease duration from now. `*out_remaining_ms`
/// (when not NULL) receives the time until the renewed lease expires, in whole ms
/// (rounded down). `SEAWALL_E_LEASE_LOST` when it already expired or was taken over.
///
/// # Safety
/// `cache` and `lease` must be NULL or live; `out_remaining_ms` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_renew(
    cache: *const seawall_idem_cache,
    lease: *const seawall_idem_lease,
    out_remaining_ms: *mut u64,
) -> seawall_status {
    guard(|| {
        let c = arg(cache, "cache")?;
        let l = arg(lease, "lease")?;
        let left = c.inner.renew(&l.inner)?;
        put_opt(out_remaining_ms, millis_floor(left));
        Ok(())
    })
}

/// "Outcome unknown": the operation failed after side effects that may have happened.
/// Keeps the claim until its lease expires, so duplicates are held off until then and one
/// of them runs afterwards. Changes nothing in the store (counted in the stats).
///
/// # Safety
/// `cache` and `lease` must be NULL or live.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_abandon(
    cache: *const seawall_idem_cache,
    lease: *const seawall_idem_lease,
) -> seawall_status {
    guard(|| {
        let c = arg(cache, "cache")?;
        let l = arg(lease, "lease")?;
        c.inner.abandon(&l.inner);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Waiters
// ---------------------------------------------------------------------------------------

/// A duplicate waiting for the owner of its key (from `seawall_idem_begin` with
/// `on_duplicate = "wait"`). It is resolved once: with the owner's record when it
/// completes (`SEAWALL_IDEM_REPLAY`), with the key when the owner releases or its lease
/// expires (`SEAWALL_IDEM_EXECUTE`: exactly one waiter takes over), or with
/// `SEAWALL_E_IDEMPOTENCY_IN_PROGRESS` at `wait_timeout`. Take the outcome with
/// `seawall_idem_waiter_wait` (blocking), `_poll` (not blocking) or `_on_done` (a
/// callback, for event loops).
///
/// Thread safety: any function on a waiter may run on any thread, concurrently (e.g. one
/// thread waits while another cancels). Free it once, when no other thread uses it.
#[allow(non_camel_case_types)]
pub struct seawall_idem_waiter {
    inner: Waiter,
}

/// Translates a poll into a result and a status.
fn polled(p: WaitPoll) -> (seawall_idem_begin_result, Result<(), Error>) {
    match p {
        WaitPoll::Pending {
            lease_expires_in,
            timeout_in,
        } => (
            seawall_idem_begin_result {
                outcome: SEAWALL_IDEM_PENDING,
                retry_after_ms: retry_ms(lease_expires_in),
                timeout_in_ms: retry_ms(timeout_in),
                ..EMPTY
            },
            Ok(()),
        ),
        WaitPoll::Taken => (
            seawall_idem_begin_result {
                outcome: SEAWALL_IDEM_TAKEN,
                ..EMPTY
            },
            Ok(()),
        ),
        WaitPoll::Ready(r) => acquired(r),
    }
}

/// Looks at a waiter without blocking, after applying what time has made due (the
/// owner's lease expired: try to take over; the wait timed out).
///
/// `SEAWALL_OK` with `SEAWALL_IDEM_PENDING` (still waiting: `retry_after_ms`,
/// `timeout_in_ms`), `SEAWALL_IDEM_EXECUTE` (this caller now owns the key: `lease`),
/// `SEAWALL_IDEM_REPLAY` (`record`) or `SEAWALL_IDEM_TAKEN` (handed over before). A
/// resolution that is an error is returned once as its status:
/// `SEAWALL_E_IDEMPOTENCY_IN_PROGRESS` (still in progress at `wait_timeout`),
/// `SEAWALL_E_IDEMPOTENCY_MISMATCH`, `SEAWALL_E_CANCELLED` (the waiter was cancelled),
/// `SEAWALL_E_STORE_UNAVAILABLE`.
///
/// # Safety
/// `waiter` must be NULL or a live waiter; `out` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_waiter_poll(
    waiter: *const seawall_idem_waiter,
    out: *mut seawall_idem_begin_result,
) -> seawall_status {
    guard(|| {
        let w = arg(waiter, "waiter")?;
        put(out, "out", EMPTY)?;
        let (r, status) = polled(w.inner.poll());
        out.write(r);
        status
    })
}

/// Blocks until the waiter is resolved or `timeout_ms` milliseconds of real time have
/// passed, whichever is first (`INFINITY`: no real-time bound; the wait still ends at
/// `wait_timeout` on the cache's clock). Woken by the resolution itself, not by polling.
/// Returns as `seawall_idem_waiter_poll` does; `SEAWALL_IDEM_PENDING` when `timeout_ms`
/// passed first (the waiter goes on waiting: call again, or cancel it). A negative or NaN
/// `timeout_ms` is `SEAWALL_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `waiter` must be NULL or a live waiter; `out` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_waiter_wait(
    waiter: *const seawall_idem_waiter,
    timeout_ms: f64,
    out: *mut seawall_idem_begin_result,
) -> seawall_status {
    guard(|| {
        let w = arg(waiter, "waiter")?;
        put(out, "out", EMPTY)?;
        let bound = if timeout_ms == f64::INFINITY {
            None
        } else {
            Some(crate::deadline::millis_arg("timeout_ms", timeout_ms)?)
        };
        // What is due and what is already resolved first (so a taken waiter says so).
        let first = w.inner.poll();
        let (r, status) = match first {
            WaitPoll::Pending { .. } if bound != Some(Duration::ZERO) => {
                match w.inner.wait(bound) {
                    Some(r) => acquired(r),
                    None => polled(w.inner.poll()),
                }
            }
            other => polled(other),
        };
        out.write(r);
        status
    })
}

/// Stops waiting: the waiter resolves with `SEAWALL_E_CANCELLED` (a blocked
/// `seawall_idem_waiter_wait` returns it; an `_on_done` callback receives it). No effect
/// once resolved.
///
/// # Safety
/// `waiter` must be NULL or a live waiter.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_waiter_cancel(
    waiter: *const seawall_idem_waiter,
) -> seawall_status {
    guard(|| {
        arg(waiter, "waiter")?.inner.cancel();
        Ok(())
    })
}

/// A waiter's callback (`seawall_idem_waiter_on_done`): called once with the waiter's
/// status (`SEAWALL_OK` or the error, see `seawall_idem_waiter_poll`), the result (its
/// lease or record is the callback's to finish and free) and, for an error, its message
/// (NULL on success; valid only during the call), and `user_data`. It must not unwind.
#[allow(non_camel_case_types)]
pub type seawall_idem_done_fn = Option<
    unsafe extern "C" fn(
        status: seawall_status,
        result: *const seawall_idem_begin_result,
        message: *const c_char,
        user_data: *mut c_void,
    ),
>;

/// Registers `callback` to receive the waiter's outcome once, for event loops that must
/// not block: on the thread that resolves the waiter (the owner's thread calling
/// `seawall_idem_complete` or `_release`; seawall's timer thread at a lease expiry or a
/// wait timeout on the system clock; the thread calling `seawall_clock_advance_ms` on a
/// manual clock; the thread cancelling or freeing the waiter), outside seawall's locks, or
/// right here if the waiter is already resolved. Hop back to your loop from it (write to
/// an eventfd or a pipe) and keep it short: it may run on the shared timer thread.
/// Replaces a callback registered before. Freeing the waiter before it resolves cancels
/// it: the callback then runs with `SEAWALL_E_CANCELLED` inside
/// `seawall_idem_waiter_free`. `user_data` must stay valid until the callback has run.
///
/// # Safety
/// `waiter` must be NULL or a live waiter; `callback` safe to call from any thread with
/// `user_data`.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_waiter_on_done(
    waiter: *const seawall_idem_waiter,
    callback: seawall_idem_done_fn,
    user_data: *mut c_void,
) -> seawall_status {
    guard(|| {
        let w = arg(waiter, "waiter")?;
        let cb = callback.ok_or_else(|| null("callback"))?;
        let data = UserData(user_data);
        w.inner.on_done(move |r| {
            let (result, status) = acquired(r);
            let (code, message) = match status {
                Ok(()) => (seawall_status::SEAWALL_OK, None),
                Err(e) => (
                    seawall_status::from(e.code()),
                    Some(to_cstring(&e.to_string())),
                ),
            };
            let msg = message.as_ref().map_or(std::ptr::null(), |m| m.as_ptr());
            // SAFETY: the caller vouched for `callback` and `user_data` at registration.
            unsafe { cb(code, &result, msg, data.get()) };
        });
        Ok(())
    })
}

/// Frees a waiter. One still waiting is cancelled first (its `_on_done` callback, if any,
/// runs with `SEAWALL_E_CANCELLED`); one that had been handed the key but whose lease was
/// never taken out releases the key, so the next duplicate can run.
/// `seawall_idem_waiter_free(NULL)` does nothing.
///
/// # Safety
/// `waiter` must be NULL or a live waiter, not used afterwards (by any thread).
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_waiter_free(waiter: *mut seawall_idem_waiter) {
    free_boxed(waiter);
}

// ---------------------------------------------------------------------------------------
// Peek and stats
// ---------------------------------------------------------------------------------------

/// What a key holds (`seawall_idem_peek`). The numbers are stable.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum seawall_idem_key_state {
    /// Nothing: never used, released, expired or evicted.
    SEAWALL_IDEM_KEY_ABSENT = 0,
    /// A live lease: a run is in progress.
    SEAWALL_IDEM_KEY_IN_PROGRESS = 1,
    /// A completed result.
    SEAWALL_IDEM_KEY_COMPLETED = 2,
}

/// A `seawall_idem_key_state` received from C as a plain integer. The header spells it
/// `seawall_idem_key_state`.
pub type KeyStateArg = c_int;

/// The key state's name: `"absent"`, `"in_progress"`, `"completed"`, or `"unknown"`.
/// Static.
#[no_mangle]
pub extern "C" fn seawall_idem_key_state_name(state: KeyStateArg) -> *const c_char {
    match state {
        0 => cstr!("absent"),
        1 => cstr!("in_progress"),
        2 => cstr!("completed"),
        _ => cstr!("unknown"),
    }
}

/// What `key` holds, changing nothing (no claim, no LRU touch). When `out_record` is not
/// NULL it receives the record of a completed key (free it), NULL otherwise. Key errors as
/// for `seawall_idem_begin`.
///
/// # Safety
/// `cache` must be NULL or a live cache; `key` NULL or valid for reading `key_len` bytes;
/// `out_state` NULL or valid for writing; `out_record` NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_peek(
    cache: *const seawall_idem_cache,
    key: *const u8,
    key_len: usize,
    out_state: *mut seawall_idem_key_state,
    out_record: *mut *mut seawall_idem_record,
) -> seawall_status {
    use seawall_idem_key_state::*;
    guard(|| {
        put_opt(out_record, std::ptr::null_mut());
        let c = arg(cache, "cache")?;
        if out_state.is_null() {
            return Err(null("out_state"));
        }
        let key = key_arg(key, key_len)?;
        let state = match c.inner.peek(key)? {
            Peek::Absent => SEAWALL_IDEM_KEY_ABSENT,
            Peek::InProgress { .. } => SEAWALL_IDEM_KEY_IN_PROGRESS,
            Peek::Completed(r) => {
                hand_record(out_record, r);
                SEAWALL_IDEM_KEY_COMPLETED
            }
        };
        out_state.write(state);
        Ok(())
    })
}

/// Cumulative counts of a cache (`seawall_idempotency_requests_total{result=...}`), and
/// the duplicates waiting now.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct seawall_idem_stats {
    /// Leases handed out (`SEAWALL_IDEM_EXECUTE`), takeovers included.
    pub executed: u64,
    /// Results handed out (`SEAWALL_IDEM_REPLAY`), to begin or to waiters.
    pub replayed: u64,
    /// Duplicates refused as in progress (at once, or after waiting).
    pub in_progress: u64,
    /// Duplicates refused for another payload.
    pub mismatched: u64,
    /// Duplicates that waited.
    pub waited: u64,
    /// Leases that took a key over from an expired or released owner.
    pub taken_over: u64,
    /// Results stored.
    pub completed: u64,
    /// Claims released.
    pub released: u64,
    /// Leases left to expire with `seawall_idem_abandon`.
    pub abandoned: u64,
    /// Calls refused with `SEAWALL_E_LEASE_LOST`.
    pub lease_lost: u64,
    /// Store failures.
    pub store_errors: u64,
    /// Operations run without protection (`on_store_error = "run"`).
    pub unprotected: u64,
    /// Duplicates waiting now.
    pub waiting: u64,
}

/// Fills `out_stats` with the cache's counts.
///
/// # Safety
/// `cache` must be NULL or a live cache; `out_stats` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_cache_stats(
    cache: *const seawall_idem_cache,
    out_stats: *mut seawall_idem_stats,
) -> seawall_status {
    guard(|| {
        let c = &arg(cache, "cache")?.inner;
        let s = c.stats();
        put(
            out_stats,
            "out_stats",
            seawall_idem_stats {
                executed: s.executed,
                replayed: s.replayed,
                in_progress: s.in_progress,
                mismatched: s.mismatched,
                waited: s.waited,
                taken_over: s.taken_over,
                completed: s.completed,
                released: s.released,
                abandoned: s.abandoned,
                lease_lost: s.lease_lost,
                store_errors: s.store_errors,
                unprotected: s.unprotected,
                waiting: c.waiting() as u64,
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use seawall::idempotency::Begin;
    use std::ffi::CStr;

    #[test]
    fn outcome_names_are_the_core_spellings() {
        let name = |o: seawall_idem_outcome| unsafe {
            CStr::from_ptr(seawall_idem_outcome_name(o as c_int))
        };
        let cache = IdempotencyCache::new(IdempotencyConfig::default()).unwrap();
        let b = cache.begin("k", &Fingerprint::NONE).unwrap();
        assert_eq!(name(SEAWALL_IDEM_EXECUTE).to_str().unwrap(), b.as_str());
        assert!(matches!(b, Begin::Execute(_)));
        for (o, s) in [
            (SEAWALL_IDEM_REPLAY, "replay"),
            (SEAWALL_IDEM_IN_PROGRESS, "in_progress"),
            (SEAWALL_IDEM_MISMATCH, "mismatch"),
        ] {
            assert_eq!(name(o).to_str().unwrap(), s);
        }
        for (s, p) in [
            (
                seawall_idem_key_state::SEAWALL_IDEM_KEY_ABSENT,
                Peek::Absent.state(),
            ),
            (
                seawall_idem_key_state::SEAWALL_IDEM_KEY_IN_PROGRESS,
                "in_progress",
            ),
            (
                seawall_idem_key_state::SEAWALL_IDEM_KEY_COMPLETED,
                "completed",
            ),
        ] {
            let n = unsafe { CStr::from_ptr(seawall_idem_key_state_name(s as c_int)) };
            assert_eq!(n.to_str().unwrap(), p);
        }
    }
}
