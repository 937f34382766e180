//! [`RedisStoreConfig`]: the Redis store's options, parsed and checked in the core so that
//! every binding refuses a bad value with the same error (field, value, reason).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::ManualClock;
use crate::error::ConfigError;
use crate::options::{snake_case, ConfigValue, Style};

/// Every option [`RedisStoreConfig::set`] accepts, in canonical (snake) spelling.
pub const REDIS_OPTION_NAMES: &[&str] = &[
    "url",
    "prefix",
    "connect_timeout",
    "command_timeout",
    "reconnect_delay",
    "reconnect_max_delay",
    "completion_retry_window",
];

/// Default `url`: a Redis on this host, database 0.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379/0";
/// Default `prefix` of every key and channel the store uses.
pub const DEFAULT_PREFIX: &str = "seawall:idem:";
/// Longest `prefix`, in bytes.
pub const MAX_PREFIX_BYTES: usize = 128;

/// How a [`RedisStore`](super::RedisStore) reaches Redis and names its keys.
///
/// Rust callers may fill the struct; bindings call [`set`](Self::set) once per option so
/// the core words every refusal.
///
/// ```
/// use seawall::{ConfigValue, Style, DurationUnit, Naming};
/// use seawall::store::redis::RedisStoreConfig;
/// let py = Style { naming: Naming::Snake, unit: DurationUnit::Seconds };
/// let mut c = RedisStoreConfig::with_style(py);
/// c.set("url", "redis://127.0.0.1:6390/2".into()).unwrap();
/// c.set("command_timeout", ConfigValue::Float(0.25)).unwrap();
/// let e = c.set("prefix", "app:{x}:".into()).unwrap_err();
/// assert_eq!(e.field, "prefix");
/// ```
#[derive(Clone)]
pub struct RedisStoreConfig {
    /// `redis://[user:password@]host[:port][/db]` or `redis+unix:///path/to/socket[?db=N]`.
    /// Default `redis://127.0.0.1:6379/0`.
    pub url: String,
    /// Prefix of every key and channel (default `seawall:idem:`); stores that share a
    /// prefix (and database) share their keys. No `{` or `}` (the store puts each key's
    /// Redis Cluster hash tag after it), at most 128 bytes.
    pub prefix: String,
    /// Longest wait for a new connection (TCP connect and handshake). Default 1 s.
    pub connect_timeout: Duration,
    /// Longest wait for the answer to one command (one script). Default 1 s. A command
    /// that times out marks the connection broken: calls fail fast until it is rebuilt.
    pub command_timeout: Duration,
    /// Wait before the first reconnection attempt after a failed one; doubles per failure.
    /// Default 50 ms.
    pub reconnect_delay: Duration,
    /// Longest wait between reconnection attempts. Default 2 s: a Redis that comes back is
    /// in use again within that time, without restarting anything.
    pub reconnect_max_delay: Duration,
    /// How long a completion that could not be written (Redis unreachable or too slow) is
    /// retried in the background before it is reported lost. Default 30 s (the default
    /// lease); zero turns background retries off. A retry never outlives the lease: the
    /// script refuses it once the lease expired.
    pub completion_retry_window: Duration,
    /// Tests only: read every script's "now" from this clock instead of the server's
    /// `TIME`, so that leases and TTLs move with `ManualClock::advance`. Never in
    /// production: every process must use the server's clock.
    pub clock: Option<Arc<ManualClock>>,
    /// How the caller spells names and durations, for error messages.
    pub style: Style,
}

impl Default for RedisStoreConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_URL.to_owned(),
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            reconnect_delay: Duration::from_millis(50),
            reconnect_max_delay: Duration::from_secs(2),
            completion_retry_window: Duration::from_secs(30),
            clock: None,
            style: Style::default(),
        }
    }
}

impl fmt::Debug for RedisStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreConfig")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("reconnect_delay", &self.reconnect_delay)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .field("completion_retry_window", &self.completion_retry_window)
            .field("test_clock", &self.clock.is_some())
            .finish()
    }
}

/// The URL without its password (for messages and `Debug`).
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &url[scheme + 3..at];
            let user = user_info.split(':').next().unwrap_or("");
            let shown = if user_info.contains(':') { format!("{user}:***") } else { "***".to_owned() };
            format!("{}{shown}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl RedisStoreConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }

    /// Defaults read in a binding's conventions (names and duration unit).
    pub fn with_style(style: Style) -> Self {
        Self { style, ..Self::default() }
    }

    /// Tests only: scripts read "now" from `clock` instead of the server's `TIME`.
    pub fn with_clock(mut self, clock: Arc<ManualClock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Sets one option by name (`command_timeout` or `commandTimeout`), checking its type
    /// and range. Unknown names are refused. Bare numbers for durations are read in
    /// `self.style.unit`.
    pub fn set(&mut self, key: &str, value: ConfigValue) -> Result<(), ConfigError> {
        let s = self.style;
        let v = &value;
        match snake_case(key).as_str() {
            "url" => {
                let url = s.text("url", v)?;
                check_url(&s, &url)?;
                self.url = url;
            }
            "prefix" => {
                let prefix = s.text("prefix", v)?;
                check_prefix(&s, &prefix)?;
                self.prefix = prefix;
            }
            "connect_timeout" => self.connect_timeout = s.duration("connect_timeout", v, false)?,
            "command_timeout" => self.command_timeout = s.duration("command_timeout", v, false)?,
            "reconnect_delay" => self.reconnect_delay = s.duration("reconnect_delay", v, false)?,
            "reconnect_max_delay" => self.reconnect_max_delay = s.duration("reconnect_max_delay", v, false)?,
            "completion_retry_window" => {
                self.completion_retry_window = s.duration("completion_retry_window", v, true)?
            }
            _ => return Err(ConfigError::new(key, s.show(v), "unknown option")),
        }
        Ok(())
    }

    /// Checks every field and the rules between fields (for configs filled in as a struct).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.style;
        check_url(s, &self.url)?;
        check_prefix(s, &self.prefix)?;
        for (f, d) in [
            ("connect_timeout", self.connect_timeout),
            ("command_timeout", self.command_timeout),
            ("reconnect_delay", self.reconnect_delay),
            ("reconnect_max_delay", self.reconnect_max_delay),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(&s.field(f), s.show_duration(d), "must be greater than zero"));
            }
        }
        if self.reconnect_max_delay < self.reconnect_delay {
            return Err(ConfigError::new(
                &s.field("reconnect_max_delay"),
                s.show_duration(self.reconnect_max_delay),
                format!("must not be below {} ({})", s.field("reconnect_delay"), s.show_duration(self.reconnect_delay)),
            ));
        }
        Ok(())
    }
}

fn check_url(s: &Style, url: &str) -> Result<(), ConfigError> {
    let bad = |reason: String| ConfigError::new(&s.field("url"), format!("{:?}", redact(url)), reason);
    if url.starts_with("rediss://") || url.starts_with("valkeys://") {
        return Err(bad("TLS (rediss://) is not built into this seawall; use redis:// (or a TLS proxy)".into()));
    }
    match ::redis::Client::open(url) {
        Ok(_) => Ok(()),
        Err(e) => Err(bad(format!(
            "is not a Redis URL ({e}); expected redis://[user:password@]host[:port][/db] or redis+unix:///path"
        ))),
    }
}

fn check_prefix(s: &Style, prefix: &str) -> Result<(), ConfigError> {
    let bad = |reason: &str| Err(ConfigError::new(&s.field("prefix"), format!("{prefix:?}"), reason));
    if prefix.len() > MAX_PREFIX_BYTES {
        return bad(&format!("is {} bytes; at most {MAX_PREFIX_BYTES}", prefix.len()));
    }
    if prefix.contains(['{', '}']) {
        return bad("must not contain '{' or '}' (the store adds each key's Redis Cluster hash tag itself)");
    }
    Ok(())
}
