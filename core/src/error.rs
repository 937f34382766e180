//! The one error type of seawall, with a stable code for each variant.
//!
//! Bindings map [`ErrorCode`] one to one: C to `seawall_status`, Python to a subclass of
//! `seawall.SeawallError`, Node to an `Error` whose `code` is [`ErrorCode::as_str`].
//! Codes are never renumbered; new variants take new numbers.
//!
//! ```
//! use seawall::{BreakerConfig, CircuitBreaker, ErrorCode, Error};
//! let mut config = BreakerConfig::default();
//! let err = config.set("window_size", 0i64.into()).unwrap_err();
//! assert_eq!(Error::from(err).code(), ErrorCode::Config);
//! ```

use std::sync::Arc;
use std::time::Duration;

use crate::breaker::State;

/// A configuration value was refused. Names the field (as the caller spelled it) and the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid configuration: {field} = {value}: {reason}")]
pub struct ConfigError {
    /// The option name as the caller spelled it (`open_duration`, `openDuration`).
    pub field: String,
    /// The refused value, rendered in the caller's units.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
    /// True when the value had the wrong type (Node raises a `TypeError` then).
    pub type_mismatch: bool,
}

impl ConfigError {
    pub(crate) fn new(field: &str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.to_owned(), value: value.into(), reason: reason.into(), type_mismatch: false }
    }
}

/// A breaker refused a call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("circuit breaker '{breaker}' is {state}; {}", retry_text(*.retry_after))]
pub struct Rejected {
    /// Name of the breaker that refused (shared, so a rejection allocates nothing).
    pub breaker: Arc<str>,
    /// The state that refused: `open`, `half_open` (saturated) or `forced_open`.
    pub state: State,
    /// Time until probes are admitted: zero in saturated half-open, `Duration::MAX` when
    /// forced open (it lasts until `reset()`).
    pub retry_after: Duration,
}

fn retry_text(d: Duration) -> String {
    if d == Duration::MAX {
        "calls are rejected until reset()".to_owned()
    } else {
        format!("retry after {} ms", d.as_secs_f64() * 1000.0)
    }
}

/// An idempotency key is in progress: another owner holds its lease.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", in_progress_text(self))]
pub struct InProgressError {
    /// The key.
    pub key: String,
    /// Time until the owner's lease expires (when a duplicate could take over); zero if unknown.
    pub retry_after: Duration,
    /// How long this caller waited for the owner's result: zero when refused at once
    /// (`on_duplicate = "reject"`).
    pub waited: Duration,
}

fn in_progress_text(e: &InProgressError) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if e.waited.is_zero() {
        format!("idempotency key {:?} is in progress (its lease expires in {} ms)", e.key, ms(e.retry_after))
    } else {
        format!(
            "idempotency key {:?} is still in progress after waiting {} ms (its lease expires in {} ms)",
            e.key,
            ms(e.waited),
            ms(e.retry_after)
        )
    }
}

/// Every error seawall returns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument was malformed (NULL, not UTF-8, out of range).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A configuration value was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A breaker refused the call.
    #[error(transparent)]
    BreakerOpen(#[from] Rejected),
    /// An outcome was already recorded on this permit.
    #[error("an outcome was already recorded on this permit")]
    PermitConsumed,
    /// A deadline passed before the work finished.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The work was cancelled through a [`CancelToken`](crate::CancelToken).
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// Another owner holds the idempotency key's lease (refused at once, or still held
    /// when the wait ended).
    #[error(transparent)]
    IdempotencyInProgress(#[from] InProgressError),
    /// The idempotency key was used with another request payload (fingerprint).
    #[error("idempotency key {key:?} was already used with a different request payload (fingerprint mismatch)")]
    IdempotencyMismatch {
        /// The key.
        key: String,
    },
    /// The idempotency store could not be reached or could not take the entry (full).
    #[error("idempotency store unavailable: {0}")]
    StoreUnavailable(String),
    /// A `complete`, `release` or `renew` with a lease the caller no longer holds.
    #[error("lease on idempotency key {key:?} (token {token}) is no longer held: {reason}")]
    LeaseLost {
        /// The key.
        key: String,
        /// The stale lease's fencing token.
        token: u64,
        /// What happened to it (expired, completed, taken over...).
        reason: String,
    },
    /// A bug: a panic was caught at the FFI boundary.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Stable codes, shared by every language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorCode {
    /// See [`Error::InvalidArgument`].
    InvalidArgument = 1,
    /// See [`Error::Config`].
    Config = 2,
    /// See [`Error::BreakerOpen`].
    BreakerOpen = 3,
    /// See [`Error::PermitConsumed`].
    PermitConsumed = 4,
    /// See [`Error::Timeout`].
    Timeout = 5,
    /// See [`Error::IdempotencyInProgress`].
    IdempotencyInProgress = 6,
    /// See [`Error::IdempotencyMismatch`].
    IdempotencyMismatch = 7,
    /// See [`Error::StoreUnavailable`].
    StoreUnavailable = 8,
    /// See [`Error::LeaseLost`].
    LeaseLost = 9,
    /// See [`Error::Cancelled`].
    Cancelled = 10,
    /// See [`Error::Internal`].
    Internal = 99,
}

impl ErrorCode {
    /// The code as Node's `err.code` and the conformance files spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "SEAWALL_INVALID_ARGUMENT",
            ErrorCode::Config => "SEAWALL_CONFIG",
            ErrorCode::BreakerOpen => "SEAWALL_BREAKER_OPEN",
            ErrorCode::PermitConsumed => "SEAWALL_PERMIT_CONSUMED",
            ErrorCode::Timeout => "SEAWALL_TIMEOUT",
            ErrorCode::Cancelled => "SEAWALL_CANCELLED",
            ErrorCode::IdempotencyInProgress => "SEAWALL_IDEMPOTENCY_IN_PROGRESS",
            ErrorCode::IdempotencyMismatch => "SEAWALL_IDEMPOTENCY_MISMATCH",
            ErrorCode::StoreUnavailable => "SEAWALL_STORE_UNAVAILABLE",
            ErrorCode::LeaseLost => "SEAWALL_LEASE_LOST",
            ErrorCode::Internal => "SEAWALL_INTERNAL",
        }
    }
}

impl Error {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::Config(_) => ErrorCode::Config,
            Error::BreakerOpen(_) => ErrorCode::BreakerOpen,
            Error::PermitConsumed => ErrorCode::PermitConsumed,
            Error::Timeout(_) => ErrorCode::Timeout,
            Error::Cancelled(_) => ErrorCode::Cancelled,
            Error::IdempotencyInProgress(_) => ErrorCode::IdempotencyInProgress,
            Error::IdempotencyMismatch { .. } => ErrorCode::IdempotencyMismatch,
            Error::StoreUnavailable(_) => ErrorCode::StoreUnavailable,
            Error::LeaseLost { .. } => ErrorCode::LeaseLost,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// Result with seawall's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
