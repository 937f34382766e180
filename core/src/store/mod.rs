//! Where an idempotency cache keeps its claims and results.
//!
//! The [`Store`] trait is shaped for a remote store as much as for memory: each method is
//! one atomic step that a server can run as one script in one round trip (claim, complete,
//! release, renew), the store reads *its own* clock for every expiry (a Redis server's
//! time, not the caller's), and durations cross the trait as relative values ("expires in
//! 2.5 s") so no two clocks are ever compared. A store also tells subscribers when a key
//! was completed or released (a Redis store would relay its pub/sub channel), which is
//! how waiting duplicates are woken without polling.
//!
//! Fencing tokens come from the store and must strictly increase per key for as long as
//! the store lives, even across deletion, expiry and eviction: a store can keep one
//! counter for all keys (what [`MemoryStore`] does, and a single `INCR` in Redis), or a
//! per-key counter that outlives the entry.
//!
//! A store never calls a subscriber while holding its own locks.
//!
//! ```
//! use std::time::Duration;
//! use seawall::idempotency::{Fingerprint, Output};
//! use seawall::store::{Claim, MemoryStore, Store};
//!
//! let store = MemoryStore::default(); // 10 000 entries, 64 MiB, the system clock
//! let fp = Fingerprint::of(b"req");
//! let Claim::Acquired { token, .. } = store.claim("k", &fp, Duration::from_secs(30)).unwrap() else { panic!() };
//! store.complete("k", token, Output::new(&b"done"[..], "text/plain"), Duration::from_secs(60)).unwrap();
//! let Claim::Completed(record) = store.claim("k", &fp, Duration::from_secs(30)).unwrap() else { panic!() };
//! assert_eq!(record.result(), b"done");
//! ```

mod memory;
#[cfg(feature = "redis")] pub mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use memory::{MemoryStore, MemoryStoreConfig, MemoryStoreStats, MEMORY_OPTION_NAMES};

use crate::error::Error;
use crate::idempotency::{Fingerprint, Output, Record};

/// What an atomic claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The key was free (absent, expired, or its lease had expired): the caller now holds
    /// a lease with this fencing token for `expires_in`.
    Acquired {
        /// The new lease's fencing token (greater than every earlier token of the key).
        token: u64,
        /// Time until the lease expires (the lease duration asked for).
        expires_in: Duration,
        /// True when the key was held by a lease that had expired (an owner crashed or
        /// overran): the caller takes over.
        took_over: bool,
    },
    /// Another owner holds an unexpired lease, with the same fingerprint.
    InProgress {
        /// The holder's token.
        token: u64,
        /// Time until the holder's lease expires.
        expires_in: Duration,
    },
    /// The key holds a completed, unexpired result for the same fingerprint.
    Completed(Record),
    /// The key is in progress or completed with another fingerprint.
    Mismatch {
        /// True when the key holds a completed result, false when a lease.
        completed: bool,
    },
}

/// What a key holds, read without changing anything (no LRU touch, no claim).
#[derive(Debug, Clone, PartialEq)]
pub enum Peek {
    /// Nothing (never used, expired, released or evicted).
    Absent,
    /// A live lease.
    InProgress {
        /// The holder's token.
        token: u64,
        /// The holder's request fingerprint.
        fingerprint: Fingerprint,
        /// Time until the lease expires.
        expires_in: Duration,
    },
    /// A completed result.
    Completed(Record),
}

impl Peek {
    /// `"absent"`, `"in_progress"` or `"completed"`.
    pub fn state(&self) -> &'static str {
        match self {
            Peek::Absent => "absent",
            Peek::InProgress { .. } => "in_progress",
            Peek::Completed(_) => "completed",
        }
    }
}

/// A change a store reports to its subscribers.
#[derive(Debug, Clone, Copy)]
pub enum StoreEvent<'a> {
    /// A lease on `key` completed. `record` is the stored result when the store has it at
    /// hand (a remote store relaying a notification may not: subscribers then claim again).
    Completed {
        /// The key.
        key: &'a str,
        /// The stored record, if known.
        record: Option<&'a Record>,
    },
    /// A lease on `key` was released: the key is free.
    Released {
        /// The key.
        key: &'a str,
    },
}

impl StoreEvent<'_> {
    /// The key the event is about.
    pub fn key(&self) -> &str {
        match self {
            StoreEvent::Completed { key, .. } | StoreEvent::Released { key } => key,
        }
    }
}

/// A subscriber to store events. Called outside the store's locks, on the thread that made
/// the change (or, for a remote store, its notification thread).
pub type StoreListener = Arc<dyn Fn(&StoreEvent<'_>) + Send + Sync>;

/// Identifies a subscription, for [`Store::unsubscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionId(pub u64);

/// A shareable store handle.
pub type SharedStore = Arc<dyn Store>;

/// The operations an idempotency cache needs from a store. Each is atomic per key.
///
/// Errors: [`Error::LeaseLost`] when the token no longer holds a live lease on the key
/// (complete, release, renew); [`Error::StoreUnavailable`] when the store cannot be
/// reached or cannot take the entry. A lease counts as lost from the moment it expires,
/// even if nobody has claimed the key since (a remote store may already have deleted it).
/// Times are read from the store's own clock; records carry them in ms on that clock.
pub trait Store: Send + Sync + fmt::Debug {
    /// A short name for messages and metrics (`"memory"`, `"redis"`).
    fn kind(&self) -> &'static str;

    /// Atomically: if `key` is free, claim it for `lease` with a new token; otherwise
    /// report what holds it (comparing `fingerprint`). A completed record returned here
    /// counts as a use (LRU).
    fn claim(&self, key: &str, fingerprint: &Fingerprint, lease: Duration) -> Result<Claim, Error>;

    /// Atomically: if `token` holds a live lease on `key`, store `output` as the key's
    /// result for `ttl` and return the record; notify [`StoreEvent::Completed`].
    fn complete(&self, key: &str, token: u64, output: Output, ttl: Duration) -> Result<Record, Error>;

    /// Atomically: if `token` holds a live lease on `key`, delete the claim; notify
    /// [`StoreEvent::Released`].
    fn release(&self, key: &str, token: u64) -> Result<(), Error>;

    /// Atomically: if `token` holds a live lease on `key`, make it expire `lease` from now;
    /// returns the time until it expires.
    fn renew(&self, key: &str, token: u64, lease: Duration) -> Result<Duration, Error>;

    /// What `key` holds, changing nothing.
    fn peek(&self, key: &str) -> Result<Peek, Error>;

    /// Registers `listener` for completions and releases (of every key).
    fn subscribe(&self, listener: StoreListener) -> SubscriptionId;

    /// Removes a subscription; false when it was not registered.
    fn unsubscribe(&self, id: SubscriptionId) -> bool;

    /// Whether the store can do work now, for health reports: a remote store makes a round
    /// trip (Redis: `PING`); `Err` says why it cannot. A registry runs it as the health
    /// check of each idempotency cache it holds. The default (a store in this process's
    /// memory) always can.
    fn check(&self) -> Result<(), Error> {
        Ok(())
    }
}
