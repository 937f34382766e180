//! Breaker configuration: options are set by name and checked by the core, so C gets the
//! same errors (naming the field and the value) as every other language.

use std::ffi::c_char;

use seawall::{BreakerConfig, ConfigValue, DurationUnit, Error, Naming, Style};

use crate::clock::seawall_clock;
use crate::status::{arg, free_boxed, guard, put_box, seawall_status, text};

/// A breaker configuration under construction: defaults (see SPEC.md), then one
/// `seawall_breaker_config_set_*` call per option. Reusable: `seawall_breaker_new` copies it.
/// A handle must not be changed by two threads at once.
#[allow(non_camel_case_types)]
pub struct seawall_breaker_config {
    pub(crate) inner: BreakerConfig,
}

/// C spells options in snake case, and a bare number for a duration means milliseconds.
pub(crate) const C_STYLE: Style = Style {
    naming: Naming::Snake,
    unit: DurationUnit::Millis,
};

/// Creates a configuration with every default and the system clock. Free it with
/// `seawall_breaker_config_free`.
///
/// # Safety
/// `out_config` must be NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_config_new(
    out_config: *mut *mut seawall_breaker_config,
) -> seawall_status {
    guard(|| {
        put_box(
            out_config,
            "out_config",
            seawall_breaker_config {
                inner: BreakerConfig::with_style(C_STYLE),
            },
        )
    })
}

/// Sets option `key` to `value`, through the core's checks.
///
/// # Safety
/// `config` NULL or live; `key` NULL or NUL-terminated.
unsafe fn set(
    config: *mut seawall_breaker_config,
    key: *const c_char,
    value: impl FnOnce() -> Result<ConfigValue, Error>,
) -> seawall_status {
    guard(|| {
        let c = config
            .as_mut()
            .ok_or_else(|| crate::status::null("config"))?;
        let key = text(key, "key")?;
        c.inner.set(key, value()?).map_err(Error::from)
    })
}

/// Sets a whole-number option, or a duration in milliseconds: `consecutive_failures`,
/// `window_size`, `window_buckets`, `minimum_calls`, `half_open_max_calls`,
/// `half_open_success_threshold`, `open_duration`, `open_duration_max`,
/// `slow_call_duration`, `window_duration`, `probe_timeout` (a number is also accepted
/// for the rates and `backoff_multiplier`).
///
/// Returns `SEAWALL_E_CONFIG` at once for a refused value or an unknown name (the message
/// of `seawall_last_error()` names the field and the value; the configuration is left
/// unchanged), `SEAWALL_E_INVALID_ARGUMENT` for a NULL or non-UTF-8 key.
///
/// # Safety
/// `config` must be NULL or a live configuration; `key` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_config_set_int(
    config: *mut seawall_breaker_config,
    key: *const c_char,
    value: i64,
) -> seawall_status {
    set(config, key, || Ok(ConfigValue::Int(value)))
}

/// Sets a floating-point option: `failure_rate_threshold`, `slow_call_rate_threshold`,
/// `backoff_multiplier`, or a duration in (possibly fractional) milliseconds. NaN and
/// negative values are refused with `SEAWALL_E_CONFIG`. Errors as for
/// `seawall_breaker_config_set_int`.
///
/// # Safety
/// `config` must be NULL or a live configuration; `key` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_config_set_double(
    config: *mut seawall_breaker_config,
    key: *const c_char,
    value: f64,
) -> seawall_status {
    set(config, key, || Ok(ConfigValue::Float(value)))
}

/// Sets a text option: `name`, or `window` (`"count"` or `"time"`). `value` must be UTF-8
/// (else `SEAWALL_E_INVALID_ARGUMENT`); the string is copied. Errors as for
/// `seawall_breaker_config_set_int`.
///
/// # Safety
/// `config` must be NULL or a live configuration; `key` and `value` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_config_set_str(
    config: *mut seawall_breaker_config,
    key: *const c_char,
    value: *const c_char,
) -> seawall_status {
    set(config, key, || {
        Ok(ConfigValue::Str(text(value, "value")?.to_owned()))
    })
}

/// Sets a boolean option: `critical` (default true: when this breaker is open, a
/// registry's health is `down`; false: only `degraded`). A boolean for any other option is
/// refused with `SEAWALL_E_CONFIG` (wrong type), so that every value a configuration file
/// can hold reaches the core's checks.
///
/// # Safety
/// `config` must be NULL or a live configuration; `key` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_config_set_bool(
    config: *mut seawall_breaker_config,
    key: *const c_char,
    value: bool,
) -> seawall_status {
    set(config, key, || Ok(ConfigValue::Bool(value)))
}

/// Makes breakers built from this configuration read `clock` (e.g. a manual clock in
/// tests) instead of the system clock. The configuration keeps its own reference, so the
/// clock handle may be freed afterwards.
///
/// # Safety
/// `config` and `clock` must each be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_config_set_clock(
    config: *mut seawall_breaker_config,
    clock: *const seawall_clock,
) -> seawall_status {
    guard(|| {
        let c = config
            .as_mut()
            .ok_or_else(|| crate::status::null("config"))?;
        let clock = arg(clock, "clock")?;
        c.inner = std::mem::take(&mut c.inner).with_clock(clock.clock.clone());
        Ok(())
    })
}

/// Frees a configuration. Breakers built from it are unaffected.
/// `seawall_breaker_config_free(NULL)` does nothing.
///
/// # Safety
/// `config` must be NULL or a live configuration, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn seawall_breaker_config_free(config: *mut seawall_breaker_config) {
    free_boxed(config);
}
