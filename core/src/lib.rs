//! # seawall
//!
//! Reliability primitives with one implementation for Rust, C, Python and Node: a circuit
//! breaker today; deadlines and an idempotency cache build on the same clocks and errors.
//!
//! Everything reads time from a [`Clock`]; [`ManualClock`] makes tests exact.
//!
//! ```
//! use seawall::{BreakerConfig, CircuitBreaker, CallError};
//! let breaker = CircuitBreaker::new(BreakerConfig::named("inventory")).unwrap();
//! let stock: Result<u32, CallError<std::io::Error>> = breaker.call(|| Ok(3));
//! assert_eq!(stock.unwrap(), 3);
//! ```
#![warn(missing_docs)]

pub mod breaker;
pub mod cancel;
pub mod clock;
pub mod deadline;
pub mod error;
pub mod failpoint;
pub mod idempotency;
pub mod health;
pub mod metrics;
pub mod options;
pub mod store;
pub mod registry;
pub mod timer;

pub use breaker::{
    BreakerConfig, CallError, CircuitBreaker, Event, Listener, ListenerId, Outcome, Permit, Reason, SharedPermit, Snapshot,
    State, StateChange, WindowKind,
};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use cancel::{CallbackId, CancelReason, CancelToken};
pub use deadline::Deadline;
pub use timer::{TimerFn, TimerGuard, TimerId};
pub use error::{ConfigError, Error, ErrorCode, Rejected, Result};
pub use health::{CheckConfig, CheckReport, HealthStatus};
pub use options::{ConfigValue, DurationUnit, Naming, Style};
pub use error::InProgressError;
pub use idempotency::{
    Acquired, Begin, Fingerprint, IdempotencyCache, IdempotencyConfig, IdempotencyStats, Lease, OnDuplicate,
    OnStoreError, Output, Record, Waiter,
};
pub use store::{MemoryStore, Store};
#[cfg(feature = "redis")] pub use store::redis::{RedisStore, RedisStoreConfig};
pub use registry::{Health, Registry};

/// The crate version, which every binding reports as its own.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
