//! The Redis store for the idempotency cache: caches in several processes (and in Python
//! and Node services) that share one Redis share their keys, leases and results.
//!
//! Build a `seawall_redis_config` (options by name, durations in ms), then a
//! `seawall_redis_store`, and hand the store to `seawall_idem_config_set_redis_store`.
//! The store connects lazily; every cache call on it costs one round trip to Redis and
//! blocks the calling thread for it (bounded by `command_timeout`).

use std::ffi::c_char;
use std::sync::Arc;

use seawall::store::redis::{RedisStore, RedisStoreConfig};
use seawall::{ConfigValue, Error};

use crate::config::C_STYLE;
use crate::idempotency::seawall_idem_config;
use crate::status::{arg, free_boxed, guard, null, put, put_box, seawall_status, text};

/// Options of a Redis store under construction (see docs/redis.md): `url` (default
/// `redis://127.0.0.1:6379/0`), `prefix` (default `seawall:idem:`), and the durations in
/// milliseconds `connect_timeout`, `command_timeout`, `reconnect_delay`,
/// `reconnect_max_delay`, `completion_retry_window`. Not to be changed by two threads at once.
#[allow(non_camel_case_types)]
pub struct seawall_redis_config {
    inner: RedisStoreConfig,
}

/// A Redis store handle; may be shared by threads and by several caches.
#[allow(non_camel_case_types)]
pub struct seawall_redis_store {
    inner: Arc<RedisStore>,
}

/// Creates a Redis store configuration with every default. Free it with
/// `seawall_redis_config_free`.
///
/// # Safety
/// `out_config` must be NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_redis_config_new(out_config: *mut *mut seawall_redis_config) -> seawall_status {
    guard(|| put_box(out_config, "out_config", seawall_redis_config { inner: RedisStoreConfig::with_style(C_STYLE) }))
}

/// # Safety
/// `config` NULL or live; `key` NULL or NUL-terminated.
unsafe fn set(
    config: *mut seawall_redis_config,
    key: *const c_char,
    value: impl FnOnce() -> Result<ConfigValue, Error>,
) -> seawall_status {
    guard(|| {
        let c = config.as_mut().ok_or_else(|| null("config"))?;
        let key = text(key, "key")?;
        c.inner.set(key, value()?).map_err(Error::from)
    })
}

/// Sets a text option (`url`, `prefix`). `SEAWALL_E_CONFIG` for a refused value (the
/// message names the field and the value), `SEAWALL_E_INVALID_ARGUMENT` for NULL or
/// non-UTF-8 strings.
///
/// # Safety
/// `config` NULL or live; `key` and `value` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn seawall_redis_config_set_str(
    config: *mut seawall_redis_config,
    key: *const c_char,
    value: *const c_char,
) -> seawall_status {
    set(config, key, || Ok(ConfigValue::Str(text(value, "value")?.to_owned())))
}

/// Sets a duration option, in milliseconds (a `double`, so negative and NaN values reach
/// the core's checks and are refused with `SEAWALL_E_CONFIG`).
///
/// # Safety
/// `config` NULL or live; `key` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn seawall_redis_config_set_double(
    config: *mut seawall_redis_config,
    key: *const c_char,
    value: f64,
) -> seawall_status {
    set(config, key, || Ok(ConfigValue::Float(value)))
}

/// Frees a configuration (stores built from it are unaffected). NULL does nothing.
///
/// # Safety
/// `config` must be NULL or a live configuration, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn seawall_redis_config_free(config: *mut seawall_redis_config) {
    free_boxed(config);
}

/// Builds a Redis store from a configuration (copied). It connects on first use, so a
/// Redis that is down makes the cache calls fail fast with `SEAWALL_E_STORE_UNAVAILABLE`,
/// not this call. Free it with `seawall_redis_store_free`.
///
/// # Safety
/// `config` must be NULL or live; `out_store` NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_redis_store_new(
    config: *const seawall_redis_config,
    out_store: *mut *mut seawall_redis_store,
) -> seawall_status {
    guard(|| {
        let c = arg(config, "config")?;
        if out_store.is_null() {
            return Err(null("out_store"));
        }
        let store = RedisStore::new(c.inner.clone())?;
        put_box(out_store, "out_store", seawall_redis_store { inner: Arc::new(store) })
    })
}

/// One round trip to Redis: `*out_ms` is how long it took. `SEAWALL_E_STORE_UNAVAILABLE`
/// when Redis cannot be reached within the timeouts (a health check for the store).
///
/// # Safety
/// `store` must be NULL or live; `out_ms` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_redis_store_ping(store: *const seawall_redis_store, out_ms: *mut f64) -> seawall_status {
    guard(|| {
        let s = arg(store, "store")?;
        if out_ms.is_null() {
            return Err(null("out_ms"));
        }
        let took = s.inner.ping()?;
        put(out_ms, "out_ms", took.as_secs_f64() * 1000.0)
    })
}

/// Frees a store handle. Caches built with it keep the store alive. NULL does nothing.
///
/// # Safety
/// `store` must be NULL or a live store, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn seawall_redis_store_free(store: *mut seawall_redis_store) {
    free_boxed(store);
}

/// Makes caches built from `config` keep their keys in `store` instead of a memory store
/// of their own (`max_entries` / `max_bytes` then do not apply). The configuration keeps a
/// reference: the store handle may be freed afterwards.
///
/// # Safety
/// `config` and `store` must each be NULL or live.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_config_set_redis_store(
    config: *mut seawall_idem_config,
    store: *const seawall_redis_store,
) -> seawall_status {
    guard(|| {
        let c = config.as_mut().ok_or_else(|| null("config"))?;
        let s = arg(store, "store")?;
        c.set_store(s.inner.clone());
        Ok(())
    })
}
