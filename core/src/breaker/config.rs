//! Breaker configuration: every field of SPEC "Circuit breaker / Configuration".
//!
//! Rust callers fill the struct; bindings call [`BreakerConfig::set`] once per option so the
//! core, not the binding, decides what is valid. [`BreakerConfig::validate`] runs when a
//! breaker is built and checks what a single field cannot (buckets dividing the window,
//! success threshold within max calls).
//!
//! ```
//! use std::time::Duration;
//! use seawall::{BreakerConfig, CircuitBreaker};
//! let config = BreakerConfig {
//!     failure_rate_threshold: Some(0.5),
//!     open_duration: Duration::from_secs(5),
//!     ..BreakerConfig::named("payments")
//! };
//! let breaker = CircuitBreaker::new(config).unwrap();
//! assert_eq!(breaker.name(), "payments");
//! ```

use std::fmt;
use std::time::Duration;

use crate::clock::{SharedClock, SystemClock};
use crate::error::ConfigError;
use crate::options::{check_multiplier, check_rate, snake_case, ConfigValue, Style};

/// Largest accepted `window_size` (the count window keeps one byte per call).
pub const MAX_WINDOW_SIZE: u32 = 1_000_000;
/// Largest accepted `window_buckets`.
pub const MAX_WINDOW_BUCKETS: u32 = 10_000;
/// Largest accepted `half_open_max_calls`.
pub const MAX_HALF_OPEN_CALLS: u32 = 10_000;

/// Which calls the failure and slow-call rates are computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowKind {
    /// The last `window_size` recorded calls.
    #[default]
    Count,
    /// The calls of the last `window_duration`, kept in `window_buckets` buckets.
    Time,
}

impl WindowKind {
    /// `"count"` or `"time"`.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Count => "count",
            WindowKind::Time => "time",
        }
    }
}

/// How a circuit breaker decides. Defaults follow SPEC.md.
#[derive(Clone)]
pub struct BreakerConfig {
    /// Label used in events, metrics and health.
    pub name: String,
    /// Open after this many failures in a row. `None`: 5 when no rate threshold is set, else off.
    pub consecutive_failures: Option<u32>,
    /// Open when failures / recorded calls in the window >= this.
    pub failure_rate_threshold: Option<f64>,
    /// Open when slow calls / recorded calls in the window >= this.
    pub slow_call_rate_threshold: Option<f64>,
    /// A call at least this long is slow.
    pub slow_call_duration: Option<Duration>,
    /// Count or time window.
    pub window: WindowKind,
    /// N for a count window.
    pub window_size: u32,
    /// T for a time window.
    pub window_duration: Duration,
    /// Buckets of a time window; must divide `window_duration`.
    pub window_buckets: u32,
    /// Rates are not evaluated before this many recorded calls are in the window.
    pub minimum_calls: u32,
    /// Time open before probes are let through.
    pub open_duration: Duration,
    /// Cap of the backed-off open duration. `None`: `open_duration`.
    pub open_duration_max: Option<Duration>,
    /// Each consecutive re-open multiplies the open duration by this.
    pub backoff_multiplier: f64,
    /// Probes admitted at once in half-open.
    pub half_open_max_calls: u32,
    /// Successful probes needed to close.
    pub half_open_success_threshold: u32,
    /// A probe whose outcome is not recorded within this counts as a failure. `None`: `open_duration`.
    pub probe_timeout: Option<Duration>,
    /// Time limit the language wrappers (decorator, `execute`, ...) put on each guarded
    /// call, inside the breaker: a call that runs out counts as a failure and a timeout.
    /// The core's own `call` does not enforce it (it cannot pre-empt a closure).
    pub timeout: Option<Duration>,
    /// Whether an open breaker makes the service's health `down` (true, the default) or
    /// only `degraded` (false: the service keeps working with less).
    pub critical: bool,
    /// Where time comes from.
    pub clock: SharedClock,
    /// How the caller spells names and durations, for error messages.
    pub style: Style,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            consecutive_failures: None,
            failure_rate_threshold: None,
            slow_call_rate_threshold: None,
            slow_call_duration: None,
            window: WindowKind::Count,
            window_size: 100,
            window_duration: Duration::from_secs(10),
            window_buckets: 10,
            minimum_calls: 10,
            open_duration: Duration::from_secs(30),
            open_duration_max: None,
            backoff_multiplier: 1.0,
            half_open_max_calls: 1,
            half_open_success_threshold: 1,
            probe_timeout: None,
            timeout: None,
            critical: true,
            clock: SystemClock::shared(),
            style: Style::default(),
        }
    }
}

impl fmt::Debug for BreakerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerConfig")
            .field("name", &self.name)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("failure_rate_threshold", &self.failure_rate_threshold)
            .field("slow_call_rate_threshold", &self.slow_call_rate_threshold)
            .field("slow_call_duration", &self.slow_call_duration)
            .field("window", &self.window)
            .field("window_size", &self.window_size)
            .field("window_duration", &self.window_duration)
            .field("window_buckets", &self.window_buckets)
            .field("minimum_calls", &self.minimum_calls)
            .field("open_duration", &self.open_duration)
            .field("open_duration_max", &self.open_duration_max)
            .field("backoff_multiplier", &self.backoff_multiplier)
            .field("half_open_max_calls", &self.half_open_max_calls)
            .field("half_open_success_threshold", &self.half_open_success_threshold)
            .field("probe_timeout", &self.probe_timeout)
            .field("timeout", &self.timeout)
            .field("critical", &self.critical)
            .finish_non_exhaustive()
    }
}

/// Every option name [`BreakerConfig::set`] accepts, in canonical (snake) spelling.
pub const OPTION_NAMES: &[&str] = &[
    "name",
    "consecutive_failures",
    "failure_rate_threshold",
    "slow_call_rate_threshold",
    "slow_call_duration",
    "window",
    "window_size",
    "window_duration",
    "window_buckets",
    "minimum_calls",
    "open_duration",
    "open_duration_max",
    "backoff_multiplier",
    "half_open_max_calls",
    "half_open_success_threshold",
    "probe_timeout",
    "timeout",
    "critical",
];

impl BreakerConfig {
    /// Defaults with a name.
    pub fn named(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    /// Defaults read in a binding's conventions (names and duration unit).
    pub fn with_style(style: Style) -> Self {
        Self { style, ..Self::default() }
    }

    /// Uses `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets one option by name (`open_duration` or `openDuration`), checking its type and
    /// range. Unknown names are refused. Bare numbers for durations are read in
    /// `self.style.unit`.
    pub fn set(&mut self, key: &str, value: ConfigValue) -> Result<(), ConfigError> {
        let s = self.style;
        let canonical = snake_case(key);
        let f = canonical.as_str();
        let v = &value;
        match f {
            "name" => self.name = s.text(f, v)?,
            "consecutive_failures" => self.consecutive_failures = Some(s.count(f, v, u32::MAX)?),
            "failure_rate_threshold" => self.failure_rate_threshold = Some(s.rate(f, v)?),
            "slow_call_rate_threshold" => self.slow_call_rate_threshold = Some(s.rate(f, v)?),
            "slow_call_duration" => self.slow_call_duration = Some(s.duration(f, v, false)?),
            "window" => {
                self.window = match s.text(f, v)?.as_str() {
                    "count" => WindowKind::Count,
                    "time" => WindowKind::Time,
                    _ => return Err(ConfigError::new(&s.field(f), s.show(v), "must be \"count\" or \"time\"")),
                }
            }
            "window_size" => self.window_size = s.count(f, v, MAX_WINDOW_SIZE)?,
            "window_duration" => self.window_duration = s.duration(f, v, false)?,
            "window_buckets" => self.window_buckets = s.count(f, v, MAX_WINDOW_BUCKETS)?,
            "minimum_calls" => self.minimum_calls = s.count(f, v, u32::MAX)?,
            "open_duration" => self.open_duration = s.duration(f, v, true)?,
            "open_duration_max" => self.open_duration_max = Some(s.duration(f, v, true)?),
            "backoff_multiplier" => self.backoff_multiplier = s.multiplier(f, v)?,
            "half_open_max_calls" => self.half_open_max_calls = s.count(f, v, MAX_HALF_OPEN_CALLS)?,
            "half_open_success_threshold" => {
                self.half_open_success_threshold = s.count(f, v, MAX_HALF_OPEN_CALLS)?
            }
            "probe_timeout" => self.probe_timeout = Some(s.duration(f, v, false)?),
            "timeout" => self.timeout = Some(s.duration(f, v, false)?),
            "critical" => self.critical = s.flag(f, v)?,
            _ => return Err(ConfigError::new(key, s.show(v), "unknown option")),
        }
        Ok(())
    }

    /// Checks every field and the rules between fields. Runs when a breaker is built.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.style;
        let bad = |f: &str, v: String, r: &str| Err(ConfigError::new(&s.field(f), v, r));
        let count = |f: &str, n: u32, max: u32| {
            if n == 0 {
                bad(f, n.to_string(), "must be at least 1")
            } else if n > max {
                bad(f, n.to_string(), &format!("must be at most {max}"))
            } else {
                Ok(())
            }
        };
        if let Some(n) = self.consecutive_failures {
            count("consecutive_failures", n, u32::MAX)?;
        }
        for (f, r) in [
            ("failure_rate_threshold", self.failure_rate_threshold),
            ("slow_call_rate_threshold", self.slow_call_rate_threshold),
        ] {
            if let Some(x) = r {
                check_rate(x).or_else(|why| bad(f, x.to_string(), why))?;
            }
        }
        check_multiplier(self.backoff_multiplier)
            .or_else(|why| bad("backoff_multiplier", self.backoff_multiplier.to_string(), why))?;
        count("window_size", self.window_size, MAX_WINDOW_SIZE)?;
        count("window_buckets", self.window_buckets, MAX_WINDOW_BUCKETS)?;
        count("minimum_calls", self.minimum_calls, u32::MAX)?;
        count("half_open_max_calls", self.half_open_max_calls, MAX_HALF_OPEN_CALLS)?;
        count("half_open_success_threshold", self.half_open_success_threshold, MAX_HALF_OPEN_CALLS)?;
        let show = |d: Duration| s.show_duration(d);
        for (f, d) in [
            ("slow_call_duration", self.slow_call_duration),
            ("window_duration", Some(self.window_duration)),
            ("probe_timeout", self.probe_timeout),
            ("timeout", self.timeout),
        ] {
            if d == Some(Duration::ZERO) {
                return bad(f, show(Duration::ZERO), "must be greater than zero");
            }
        }
        if self.half_open_success_threshold > self.half_open_max_calls {
            return bad(
                "half_open_success_threshold",
                self.half_open_success_threshold.to_string(),
                &format!("must not exceed {} ({})", s.field("half_open_max_calls"), self.half_open_max_calls),
            );
        }
        if self.window == WindowKind::Time
            && self.window_duration.as_nanos() % u128::from(self.window_buckets) != 0
        {
            return bad(
                "window_buckets",
                self.window_buckets.to_string(),
                &format!("must divide {} ({}) evenly", s.field("window_duration"), show(self.window_duration)),
            );
        }
        if let Some(max) = self.open_duration_max {
            if max < self.open_duration {
                return bad(
                    "open_duration_max",
                    show(max),
                    &format!("must be at least {} ({})", s.field("open_duration"), show(self.open_duration)),
                );
            }
        }
        if self.slow_call_rate_threshold.is_some() && self.slow_call_duration.is_none() {
            return bad(
                "slow_call_duration",
                "unset".into(),
                &format!("is required when {} is set", s.field("slow_call_rate_threshold")),
            );
        }
        Ok(())
    }

    /// The consecutive-failure threshold in force (SPEC: 5 when no rate threshold is set).
    pub fn effective_consecutive_failures(&self) -> Option<u32> {
        match self.consecutive_failures {
            Some(n) => Some(n),
            None if self.failure_rate_threshold.is_none() && self.slow_call_rate_threshold.is_none() => Some(5),
            None => None,
        }
    }

    /// True when a rate threshold is set, so outcomes go into a window.
    pub fn uses_window(&self) -> bool {
        self.failure_rate_threshold.is_some() || self.slow_call_rate_threshold.is_some()
    }

    /// The cap of the backed-off open duration.
    pub fn effective_open_duration_max(&self) -> Duration {
        self.open_duration_max.unwrap_or(self.open_duration)
    }

    /// The probe timeout in force: `probe_timeout`, else `open_duration`, else (when that
    /// is zero, which would expire every probe at once) 30 s.
    pub fn effective_probe_timeout(&self) -> Duration {
        match self.probe_timeout {
            Some(d) => d,
            None if self.open_duration.is_zero() => Duration::from_secs(30),
            None => self.open_duration,
        }
    }
}
