//! Idempotency cache configuration: every option of SPEC "Idempotency cache".
//!
//! Rust callers fill the struct; bindings call [`IdempotencyConfig::set`] once per option
//! so the core decides what is valid and every language gets the same error (field, value,
//! reason). [`IdempotencyConfig::validate`] runs when a cache is built and checks what one
//! field cannot (the result bound within the store's byte bound, memory-store bounds given
//! with a store of another kind).
//!
//! ```
//! use std::time::Duration;
//! use seawall::{ConfigValue, IdempotencyCache, IdempotencyConfig, Style};
//! let mut config = IdempotencyConfig::with_style(Style::default()); // snake names, ms
//! config.set("name", "orders".into()).unwrap();
//! config.set("lease", ConfigValue::Int(5_000)).unwrap();
//! config.set("on_duplicate", "reject".into()).unwrap();
//! let err = config.set("ttl", ConfigValue::Int(-1)).unwrap_err();
//! assert_eq!((err.field.as_str(), err.value.as_str()), ("ttl", "-1ms"));
//! let cache = IdempotencyCache::new(config).unwrap();
//! assert_eq!(cache.config().lease, Duration::from_secs(5));
//! ```

use std::fmt;
use std::time::Duration;

use crate::clock::{SharedClock, SystemClock};
use crate::error::ConfigError;
use crate::options::{snake_case, ConfigValue, Style};
use crate::store::{MemoryStoreConfig, SharedStore};

/// What a duplicate gets while another owner runs the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDuplicate {
    /// Wait (up to `wait_timeout`) for the owner's result, or take over if the owner
    /// releases or its lease expires.
    #[default]
    Wait,
    /// `InProgress` at once (HTTP 409).
    Reject,
}

impl OnDuplicate {
    /// `"wait"` or `"reject"`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnDuplicate::Wait => "wait",
            OnDuplicate::Reject => "reject",
        }
    }
}

/// What `begin` does when the store fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStoreError {
    /// Fail with `StoreUnavailable` (never run without protection).
    #[default]
    Fail,
    /// Fail open: run the operation unprotected (the lease says so) and store nothing.
    Run,
}

impl OnStoreError {
    /// `"fail"` or `"run"`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnStoreError::Fail => "fail",
            OnStoreError::Run => "run",
        }
    }
}

/// Every option name [`IdempotencyConfig::set`] accepts, in canonical (snake) spelling.
/// `lease_duration` is accepted as another name for `lease`.
pub const OPTION_NAMES: &[&str] = &[
    "name",
    "ttl",
    "lease",
    "on_duplicate",
    "wait_timeout",
    "cache_errors",
    "max_result_bytes",
    "on_store_error",
    "max_entries",
    "max_bytes",
    "critical",
];

/// Other names [`IdempotencyConfig::set`] accepts for an option: `lease_duration` is `lease`.
pub const OPTION_ALIASES: &[&str] = &["lease_duration"];

/// Default `ttl`: 24 hours.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default `lease`: 30 seconds.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Default `max_result_bytes`: 1 MiB.
pub const DEFAULT_MAX_RESULT_BYTES: u32 = 1 << 20;

/// How an idempotency cache behaves. Defaults follow SPEC.md.
#[derive(Clone)]
pub struct IdempotencyConfig {
    /// Label used in events, metrics and health.
    pub name: String,
    /// How long a completed result is kept (and replayed).
    pub ttl: Duration,
    /// How long a claim holds its key without `complete`, `release` or `renew`: a crashed
    /// owner blocks its key no longer than this.
    pub lease: Duration,
    /// Wait for the owner's result, or refuse at once.
    pub on_duplicate: OnDuplicate,
    /// Longest wait for the owner's result. `None`: the lease duration.
    pub wait_timeout: Option<Duration>,
    /// Store errors the operation raised as results (replayed as errors) instead of
    /// releasing the key so a retry runs again.
    pub cache_errors: bool,
    /// Largest result (serialised bytes) accepted by `complete`.
    pub max_result_bytes: u32,
    /// Fail or run unprotected when the store fails.
    pub on_store_error: OnStoreError,
    /// Whether an unavailable store makes a registry's health `down` (true) or `degraded`
    /// (false). `None`: [`IdempotencyConfig::critical`] derives it from `on_store_error`.
    pub critical: Option<bool>,
    /// Bounds of the default memory store (ignored when `store` is set).
    pub memory: MemoryStoreConfig,
    /// A store of the caller's (shared between caches, or remote). `None`: a new
    /// [`MemoryStore`](crate::store::MemoryStore) with the `memory` bounds and this clock.
    pub store: Option<SharedStore>,
    /// Where time comes from (lease and wait deadlines; the default store's expiry).
    pub clock: SharedClock,
    /// How the caller spells names and durations, for error messages.
    pub style: Style,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            ttl: DEFAULT_TTL,
            lease: DEFAULT_LEASE,
            on_duplicate: OnDuplicate::Wait,
            wait_timeout: None,
            cache_errors: false,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            on_store_error: OnStoreError::Fail,
            critical: None,
            memory: MemoryStoreConfig::default(),
            store: None,
            clock: SystemClock::shared(),
            style: Style::default(),
        }
    }
}

impl fmt::Debug for IdempotencyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyConfig")
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .field("lease", &self.lease)
            .field("on_duplicate", &self.on_duplicate)
            .field("wait_timeout", &self.wait_timeout)
            .field("cache_errors", &self.cache_errors)
            .field("max_result_bytes", &self.max_result_bytes)
            .field("on_store_error", &self.on_store_error)
            .field("critical", &self.critical)
            .field("memory", &self.memory)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

fn choice<T: Copy>(s: &Style, f: &str, v: &ConfigValue, options: &[(&str, T)]) -> Result<T, ConfigError> {
    let text = s.text(f, v)?;
    options.iter().find(|(name, _)| *name == text).map(|(_, t)| *t).ok_or_else(|| {
        let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
        ConfigError::new(&s.field(f), s.show(v), format!("must be {}", names.join(" or ")))
    })
}

fn boolean(s: &Style, f: &str, v: &ConfigValue) -> Result<bool, ConfigError> {
    match v {
        ConfigValue::Bool(b) => Ok(*b),
        _ => Err(ConfigError {
            field: s.field(f),
            value: s.show(v),
            reason: "expected a boolean".into(),
            type_mismatch: true,
        }),
    }
}

impl IdempotencyConfig {
    /// Defaults with a name.
    pub fn named(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    /// Defaults read in a binding's conventions (names and duration unit).
    pub fn with_style(style: Style) -> Self {
        Self { style, memory: MemoryStoreConfig::with_style(style), ..Self::default() }
    }

    /// Uses `clock` instead of the system clock (for the default store too).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.memory.clock = clock.clone();
        self.clock = clock;
        self
    }

    /// Uses `store` instead of a new memory store.
    pub fn with_store(mut self, store: SharedStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Whether [`set`](Self::set) knows the option `name`, in either spelling. Bindings that
    /// let a user pass "not given" (Python's `None`) skip such a value only for a known
    /// name, so a misspelt one is still refused; tests and fuzzers enumerate the same set.
    ///
    /// ```
    /// use seawall::IdempotencyConfig;
    /// assert!(IdempotencyConfig::knows("waitTimeout") && IdempotencyConfig::knows("lease_duration"));
    /// assert!(!IdempotencyConfig::knows("wait_timout"));
    /// ```
    pub fn knows(name: &str) -> bool {
        let c = snake_case(name);
        OPTION_NAMES.contains(&c.as_str()) || OPTION_ALIASES.contains(&c.as_str())
    }

    /// Sets one option by name (`wait_timeout` or `waitTimeout`), checking its type and
    /// range. Unknown names are refused. Bare numbers for durations are read in
    /// `self.style.unit`.
    pub fn set(&mut self, key: &str, value: ConfigValue) -> Result<(), ConfigError> {
        let s = self.style;
        let canonical = snake_case(key);
        let v = &value;
        match canonical.as_str() {
            "name" => self.name = s.text("name", v)?,
            "ttl" => self.ttl = s.duration("ttl", v, false)?,
            "lease" => self.lease = s.duration("lease", v, false)?,
            "lease_duration" => self.lease = s.duration("lease_duration", v, false)?,
            "on_duplicate" => {
                self.on_duplicate =
                    choice(&s, "on_duplicate", v, &[("wait", OnDuplicate::Wait), ("reject", OnDuplicate::Reject)])?
            }
            "wait_timeout" => self.wait_timeout = Some(s.duration("wait_timeout", v, true)?),
            "cache_errors" => self.cache_errors = boolean(&s, "cache_errors", v)?,
            "max_result_bytes" => self.max_result_bytes = s.count("max_result_bytes", v, u32::MAX)?,
            "on_store_error" => {
                self.on_store_error =
                    choice(&s, "on_store_error", v, &[("fail", OnStoreError::Fail), ("run", OnStoreError::Run)])?
            }
            "critical" => self.critical = Some(boolean(&s, "critical", v)?),
            "max_entries" | "max_bytes" => {
                self.memory.style = s;
                self.memory.set(&canonical, value)?;
            }
            _ => return Err(ConfigError::new(key, s.show(v), "unknown option")),
        }
        Ok(())
    }

    /// Checks every field and the rules between fields. Runs when a cache is built.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.style;
        let bad = |f: &str, v: String, r: &str| Err(ConfigError::new(&s.field(f), v, r));
        for (f, d) in [("ttl", self.ttl), ("lease", self.lease)] {
            if d.is_zero() {
                return bad(f, s.show_duration(d), "must be greater than zero");
            }
        }
        if self.max_result_bytes == 0 {
            return bad("max_result_bytes", "0".into(), "must be at least 1");
        }
        if self.store.is_none() {
            self.memory.validate()?;
            if u64::from(self.max_result_bytes) > self.memory.max_bytes {
                return bad(
                    "max_result_bytes",
                    self.max_result_bytes.to_string(),
                    &format!("must not exceed {} ({})", s.field("max_bytes"), self.memory.max_bytes),
                );
            }
        } else {
            let defaults = MemoryStoreConfig::default();
            let changed = [
                ("max_entries", self.memory.max_entries, defaults.max_entries),
                ("max_bytes", self.memory.max_bytes, defaults.max_bytes),
            ]
            .into_iter()
            .find(|(_, v, d)| v != d);
            let Some((field, value, _)) = changed else { return Ok(()) };
            let kind = self.store.as_ref().map_or("other", |st| st.kind());
            return bad(
                field,
                value.to_string(),
                &format!("bounds only the default memory store, but a {kind} store was passed in (bound that store itself)"),
            );
        }
        Ok(())
    }

    /// Whether the cache's store being unavailable makes a registry's health `down`: the
    /// `critical` option, else true when a store failure fails the calls
    /// (`on_store_error = "fail"`) and false when they run unprotected (`"run"`: the
    /// service keeps working, with less protection, so it is `degraded`).
    ///
    /// ```
    /// use seawall::{ConfigValue, IdempotencyConfig};
    /// let mut c = IdempotencyConfig::default();
    /// assert!(c.critical());
    /// c.set("on_store_error", ConfigValue::Str("run".into())).unwrap();
    /// assert!(!c.critical());
    /// c.set("critical", ConfigValue::Bool(true)).unwrap();
    /// assert!(c.critical());
    /// ```
    pub fn critical(&self) -> bool {
        self.critical.unwrap_or(self.on_store_error == OnStoreError::Fail)
    }

    /// The wait bound in force: `wait_timeout`, else the lease duration.
    pub fn effective_wait_timeout(&self) -> Duration {
        self.wait_timeout.unwrap_or(self.lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{DurationUnit, Naming};

    #[test]
    fn names_and_units_follow_the_style() {
        let py = Style { naming: Naming::Snake, unit: DurationUnit::Seconds };
        let mut c = IdempotencyConfig::with_style(py);
        c.set("ttl", ConfigValue::Float(1.5)).unwrap();
        assert_eq!(c.ttl, Duration::from_millis(1500));
        c.set("lease_duration", ConfigValue::Int(2)).unwrap();
        assert_eq!(c.lease, Duration::from_secs(2));
        let node = Style { naming: Naming::Camel, unit: DurationUnit::Millis };
        let mut c = IdempotencyConfig::with_style(node);
        let e = c.set("waitTimeout", ConfigValue::Float(f64::NAN)).unwrap_err();
        assert_eq!((e.field.as_str(), e.value.as_str()), ("waitTimeout", "NaNms"));
        let e = c.set("onDuplicate", "later".into()).unwrap_err();
        assert_eq!(e.field, "onDuplicate");
        assert!(e.reason.contains("\"wait\" or \"reject\""), "{}", e.reason);
        let e = c.set("cacheErrors", ConfigValue::Int(1)).unwrap_err();
        assert!(e.type_mismatch);
        let e = c.set("maxEntries", ConfigValue::Int(0)).unwrap_err();
        assert_eq!(e.field, "maxEntries");
        c.set("wait_timeout", ConfigValue::Int(0)).unwrap();
        assert_eq!(c.wait_timeout, Some(Duration::ZERO));
        assert_eq!(c.set("bogus", ConfigValue::Int(1)).unwrap_err().field, "bogus");
    }

    #[test]
    fn validate_checks_across_fields() {
        let mut c = IdempotencyConfig::default();
        c.set("max_bytes", ConfigValue::Int(1000)).unwrap();
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "max_result_bytes");
        assert!(e.reason.contains("max_bytes (1000)"), "{}", e.reason);
        c.set("max_result_bytes", ConfigValue::Int(1000)).unwrap();
        c.validate().unwrap();
        let c = c.with_store(std::sync::Arc::new(crate::store::MemoryStore::default()));
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "max_bytes");
        assert!(e.reason.contains("a memory store was passed in"), "{}", e.reason);
        let zero = IdempotencyConfig { ttl: Duration::ZERO, ..IdempotencyConfig::default() };
        assert_eq!(zero.validate().unwrap_err().field, "ttl");
    }
}
