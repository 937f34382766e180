//! The idempotency cache: an operation runs once per key, however often it is retried or
//! raced, and every duplicate gets the first run's result.
//!
//! `begin(key, fingerprint)` claims the key in the [`Store`](crate::store::Store) in one
//! atomic step and says what the caller must do:
//!
//! - [`Begin::Execute`]: the caller holds a [`Lease`] and runs the operation, then calls
//!   [`complete`](IdempotencyCache::complete) with the serialised result, or
//!   [`release`](IdempotencyCache::release) / [`fail`](IdempotencyCache::fail) when it
//!   raised, so a retry may run (or the error is stored, with `cache_errors`);
//! - [`Begin::Replay`]: a completed [`Record`]: return it, do not run;
//! - [`Begin::InProgress`]: another owner holds the lease; with `on_duplicate = "wait"` it
//!   carries a [`Waiter`] that is resolved by the owner's completion (or hands this caller
//!   the key if the owner releases or its lease expires); with `"reject"`, none;
//! - [`Begin::Mismatch`]: the key was used with another payload fingerprint.
//!
//! Every lease carries a fencing token from the store that strictly increases per key, and
//! the store refuses `complete`, `release` and `renew` from a token that no longer holds a
//! live lease ([`Error::LeaseLost`]): an owner whose lease expired can never overwrite or
//! delete the result of the owner that took over. Leases and TTLs are evaluated lazily on
//! the clock, so they are exact under [`ManualClock`](crate::ManualClock).
//!
//! ```
//! use seawall::idempotency::{Begin, Fingerprint, Output};
//! use seawall::{IdempotencyCache, IdempotencyConfig};
//!
//! let cache = IdempotencyCache::new(IdempotencyConfig::named("payments")).unwrap();
//! let fp = Fingerprint::of(br#"{"amount":100}"#);
//! match cache.begin("charge-7", &fp).unwrap() {
//!     Begin::Execute(lease) => {
//!         let receipt = b"{\"id\":\"ch_1\"}".to_vec(); // run the operation
//!         cache.complete(&lease, Output::new(receipt, "application/json")).unwrap();
//!     }
//!     _ => unreachable!("first use of the key"),
//! }
//! let Begin::Replay(record) = cache.begin("charge-7", &fp).unwrap() else { panic!() };
//! assert_eq!(record.result(), b"{\"id\":\"ch_1\"}");
//! assert!(matches!(cache.begin("charge-7", &Fingerprint::of(b"other")).unwrap(), Begin::Mismatch(_)));
//! ```

mod config;
mod fingerprint;
mod key;
mod record;
mod waiter;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::{Arc, Weak};
use std::time::Duration;

pub use config::{
    IdempotencyConfig, OnDuplicate, OnStoreError, DEFAULT_LEASE, DEFAULT_MAX_RESULT_BYTES, DEFAULT_TTL, OPTION_ALIASES, OPTION_NAMES,
};
pub use fingerprint::{fingerprint, Fingerprint};
pub use key::{check_key_len, key_from_bytes, validate_key, MAX_KEY_BYTES};
pub use record::{
    Output, Record, CREATED_OFFSET, EXPIRES_OFFSET, FINGERPRINT_OFFSET, FLAG_ERROR, MAX_METADATA, MAX_SHORT_TEXT,
    RECORD_CHECKSUM_LEN, RECORD_HEADER_LEN, RECORD_MAGIC, RECORD_MIN_LEN, RECORD_VERSION, TOKEN_OFFSET,
};
pub use waiter::{WaitCallback, WaitPoll, Waiter};

use crate::clock::{nanos, SharedClock};
use crate::error::{ConfigError, Error, InProgressError};
use crate::store::{Claim, MemoryStore, Peek, SharedStore, StoreEvent, SubscriptionId};
use waiter::{Slot, Waiters};

/// The right (and duty) to run the operation for a key. Cheap to clone; clones are the same
/// lease. Finish it with `complete`, `release` or `fail` on the cache; a lease dropped
/// without one of them is left to expire (outcome unknown: duplicates wait, then one of
/// them runs again after the lease duration).
#[derive(Clone)]
pub struct Lease {
    data: Arc<LeaseData>,
}

struct LeaseData {
    /// The issuing cache ([`Inner::id`]): a lease is finished only on the cache it came
    /// from (two stores may hand out the same token for the same key).
    cache: u64,
    key: Arc<str>,
    fingerprint: Fingerprint,
    token: u64,
    expires_at: AtomicU64,
    took_over: bool,
    protected: bool,
}

impl Lease {
    /// The key.
    pub fn key(&self) -> &str {
        &self.data.key
    }

    /// The request fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.data.fingerprint
    }

    /// The fencing token: greater than every earlier lease's on this key (0 when unprotected).
    pub fn token(&self) -> u64 {
        self.data.token
    }

    /// When the lease expires, on the cache's clock (moved by `renew`).
    pub fn expires_at(&self) -> Duration {
        Duration::from_nanos(self.data.expires_at.load(Acquire))
    }

    /// True when the key was held by an expired lease (or released while this caller
    /// waited) and this caller took over.
    pub fn took_over(&self) -> bool {
        self.data.took_over
    }

    /// False when the store failed and `on_store_error = "run"` let the operation run
    /// without protection: nothing is stored, duplicates are not held off.
    pub fn is_protected(&self) -> bool {
        self.data.protected
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key())
            .field("token", &self.token())
            .field("expires_at", &self.expires_at())
            .field("took_over", &self.took_over())
            .field("protected", &self.is_protected())
            .finish()
    }
}

/// What a caller may go on with: run the operation, or return the stored result.
#[derive(Debug, Clone)]
pub enum Acquired {
    /// Run the operation and complete (or release) the lease.
    Execute(Lease),
    /// Return this result without running.
    Replay(Record),
}

/// A duplicate found the key in progress.
#[derive(Debug)]
pub struct InProgress {
    /// The key.
    pub key: String,
    /// Time until the owner's lease expires.
    pub retry_after: Duration,
    /// With `on_duplicate = "wait"`: the handle to wait for the outcome. `None` with `"reject"`.
    pub waiter: Option<Waiter>,
}

impl InProgress {
    /// The error a binding raises for it (`SEAWALL_IDEMPOTENCY_IN_PROGRESS`).
    pub fn to_error(&self) -> Error {
        Error::IdempotencyInProgress(InProgressError {
            key: self.key.clone(),
            retry_after: self.retry_after,
            waited: Duration::ZERO,
        })
    }
}

/// The key was used with another request fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The key.
    pub key: String,
    /// True when the key holds a completed result, false when a run is in progress.
    pub completed: bool,
}

impl Mismatch {
    /// The error a binding raises for it (`SEAWALL_IDEMPOTENCY_MISMATCH`).
    pub fn to_error(&self) -> Error {
        Error::IdempotencyMismatch { key: self.key.clone() }
    }
}

/// What `begin` found.
#[derive(Debug)]
pub enum Begin {
    /// The caller owns the key and must run the operation.
    Execute(Lease),
    /// A completed result for the same fingerprint.
    Replay(Record),
    /// Another owner holds an unexpired lease.
    InProgress(InProgress),
    /// The key was used with another fingerprint.
    Mismatch(Mismatch),
}

impl Begin {
    /// `"execute"`, `"replay"`, `"in_progress"` or `"mismatch"` (the spelling of metrics and
    /// conformance files).
    pub fn as_str(&self) -> &'static str {
        match self {
            Begin::Execute(_) => "execute",
            Begin::Replay(_) => "replay",
            Begin::InProgress(_) => "in_progress",
            Begin::Mismatch(_) => "mismatch",
        }
    }
}

/// What [`IdempotencyCache::fail`] did.
#[derive(Debug, Clone)]
pub enum Failed {
    /// The claim was released: a retry runs the operation again.
    Released,
    /// `cache_errors` is set: the error was stored as the key's result (replayed as an error).
    Stored(Record),
}

/// What [`IdempotencyCache::run`] returns when it does not return a record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError<E> {
    /// The cache refused or failed (mismatch, in progress, store unavailable, lease lost...).
    #[error(transparent)]
    Seawall(Error),
    /// The operation ran and failed; the key was released.
    #[error("{0}")]
    Failed(E),
}

/// Cumulative counts of one cache (for metrics: `seawall_idempotency_requests_total{result}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdempotencyStats {
    /// Leases handed out (`Execute`), takeovers included.
    pub executed: u64,
    /// Results handed out (`Replay`), to `begin` or to waiters.
    pub replayed: u64,
    /// Duplicates refused as in progress (at once, or after waiting).
    pub in_progress: u64,
    /// Duplicates refused for another fingerprint.
    pub mismatched: u64,
    /// Duplicates that waited.
    pub waited: u64,
    /// Leases that took over a key from an expired or released owner.
    pub taken_over: u64,
    /// Results stored.
    pub completed: u64,
    /// Claims released.
    pub released: u64,
    /// Leases left to expire with `abandon`.
    pub abandoned: u64,
    /// Calls refused with `LeaseLost`.
    pub lease_lost: u64,
    /// Store failures.
    pub store_errors: u64,
    /// Operations run without protection (`on_store_error = "run"`).
    pub unprotected: u64,
}

#[derive(Default)]
struct Counters {
    executed: AtomicU64,
    replayed: AtomicU64,
    in_progress: AtomicU64,
    mismatched: AtomicU64,
    waited: AtomicU64,
    taken_over: AtomicU64,
    completed: AtomicU64,
    released: AtomicU64,
    abandoned: AtomicU64,
    lease_lost: AtomicU64,
    store_errors: AtomicU64,
    unprotected: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

pub(crate) struct Inner {
    /// Unique in the process: the identity leases carry.
    id: u64,
    name: Arc<str>,
    config: IdempotencyConfig,
    store: SharedStore,
    pub(crate) clock: SharedClock,
    wait_timeout: Duration,
    reject: bool,
    waiters: Waiters,
    counts: Counters,
    subscription: SubscriptionId,
}

/// Identities of caches (see [`Inner::id`]).
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

impl Drop for Inner {
    fn drop(&mut self) {
        self.store.unsubscribe(self.subscription);
    }
}

/// An idempotency cache. Cheap to clone: clones share one cache. See the module docs.
#[derive(Clone)]
pub struct IdempotencyCache {
    inner: Arc<Inner>,
}

impl fmt::Debug for IdempotencyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyCache").field("name", &self.name()).field("store", &self.inner.store).finish()
    }
}

impl IdempotencyCache {
    /// Builds a cache, refusing an invalid configuration with an error that names the
    /// field and the value. Without a store, a new [`MemoryStore`] with the configured
    /// bounds and clock is used.
    pub fn new(config: IdempotencyConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let store: SharedStore = match &config.store {
            Some(s) => Arc::clone(s),
            None => {
                let mut memory = config.memory.clone();
                memory.clock = config.clock.clone();
                Arc::new(MemoryStore::new(memory)?)
            }
        };
        let wait_timeout = config.effective_wait_timeout();
        let reject = config.on_duplicate == OnDuplicate::Reject || wait_timeout.is_zero();
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let weak = weak.clone();
            let subscription = store.subscribe(Arc::new(move |e: &StoreEvent<'_>| {
                if let Some(inner) = weak.upgrade() {
                    inner.on_event(e);
                }
            }));
            Inner {
                id: NEXT_CACHE_ID.fetch_add(1, Relaxed),
                name: Arc::from(config.name.as_str()),
                clock: config.clock.clone(),
                store,
                wait_timeout,
                reject,
                waiters: Waiters::new(),
                counts: Counters::default(),
                subscription,
                config,
            }
        });
        Ok(Self { inner })
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The validated configuration.
    pub fn config(&self) -> &IdempotencyConfig {
        &self.inner.config
    }

    /// The clock the cache reads.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// The store.
    pub fn store(&self) -> &SharedStore {
        &self.inner.store
    }

    /// Claims `key` for a request with `fingerprint`, or says why not. Never blocks on
    /// other callers (a remote store's round trip aside).
    ///
    /// Errors: `InvalidArgument` for a key that is empty or over 255 bytes;
    /// `StoreUnavailable` when the store fails (unless `on_store_error = "run"`: then an
    /// unprotected `Execute`).
    pub fn begin(&self, key: &str, fingerprint: &Fingerprint) -> Result<Begin, Error> {
        validate_key(key)?;
        crate::failpoint::hit(crate::failpoint::Site::IdempotencyBegin);
        let inner = &self.inner;
        let claim = match inner.store.claim(key, fingerprint, inner.config.lease) {
            Ok(c) => c,
            Err(e) => return inner.store_failed(key, fingerprint, e).map(Begin::Execute),
        };
        Ok(match claim {
            Claim::Acquired { token, expires_in, took_over } => {
                Begin::Execute(inner.lease(key, fingerprint, token, expires_in, took_over))
            }
            Claim::Completed(r) => {
                bump(&inner.counts.replayed);
                Begin::Replay(r)
            }
            Claim::Mismatch { completed } => {
                bump(&inner.counts.mismatched);
                Begin::Mismatch(Mismatch { key: key.to_owned(), completed })
            }
            Claim::InProgress { expires_in, .. } if inner.reject => {
                bump(&inner.counts.in_progress);
                Begin::InProgress(InProgress { key: key.to_owned(), retry_after: expires_in, waiter: None })
            }
            Claim::InProgress { expires_in, .. } => inner.wait_for(key, fingerprint, expires_in)?,
        })
    }

    /// `begin`, then block (if waiting) until the caller may go on: `Execute` or `Replay`.
    /// Mismatch and in-progress (rejected, or still in progress at `wait_timeout`) are
    /// errors. This is what synchronous bindings (C, Python) call.
    pub fn acquire(&self, key: &str, fingerprint: &Fingerprint) -> Result<Acquired, Error> {
        match self.begin(key, fingerprint)? {
            Begin::Execute(l) => Ok(Acquired::Execute(l)),
            Begin::Replay(r) => Ok(Acquired::Replay(r)),
            Begin::Mismatch(m) => Err(m.to_error()),
            Begin::InProgress(mut ip) => match ip.waiter.take() {
                Some(w) => w.wait(None).unwrap_or_else(|| Err(ip.to_error())),
                None => Err(ip.to_error()),
            },
        }
    }

    /// Stores the operation's result for `ttl` and returns the record every duplicate will
    /// get. A result over `max_result_bytes` (or one the record format cannot hold) is
    /// refused with `InvalidArgument`, nothing is stored and the key is released so a
    /// retry can run. `LeaseLost` when the lease expired or another owner took over.
    pub fn complete(&self, lease: &Lease, output: Output) -> Result<Record, Error> {
        let inner = &self.inner;
        inner.owns(lease)?;
        let too_big = output.result.len() > inner.config.max_result_bytes as usize;
        if too_big || output.check().is_err() {
            let why = if too_big {
                format!(
                    "result is {} bytes, over {} ({})",
                    output.result.len(),
                    inner.config.style.field("max_result_bytes"),
                    inner.config.max_result_bytes
                )
            } else {
                output.check().unwrap_err().to_string()
            };
            let released = if inner.release_quietly(lease) { "the key was released" } else { "the key was not held" };
            return Err(Error::InvalidArgument(format!(
                "cannot store the result of idempotency key {:?}: {why}; nothing was stored and {released}",
                lease.key()
            )));
        }
        if !lease.is_protected() {
            return Ok(inner.local_record(lease, output));
        }
        let local = (inner.config.on_store_error == OnStoreError::Run).then(|| output.clone());
        match inner.store.complete(lease.key(), lease.token(), output, inner.config.ttl) {
            Ok(r) => {
                bump(&inner.counts.completed);
                Ok(r)
            }
            Err(e) => {
                inner.count_error(&e);
                if matches!(e, Error::StoreUnavailable(_)) {
                    inner.release_quietly(lease);
                    if let Some(out) = local {
                        bump(&inner.counts.unprotected);
                        return Ok(inner.local_record(lease, out));
                    }
                }
                Err(e)
            }
        }
    }

    /// Deletes the claim so a retry may run (the default when the operation raised).
    /// `LeaseLost` when the lease expired or another owner took over.
    pub fn release(&self, lease: &Lease) -> Result<(), Error> {
        let inner = &self.inner;
        inner.owns(lease)?;
        if !lease.is_protected() {
            return Ok(());
        }
        match inner.store.release(lease.key(), lease.token()) {
            Ok(()) => {
                bump(&inner.counts.released);
                Ok(())
            }
            Err(e) => {
                inner.count_error(&e);
                Err(e)
            }
        }
    }

    /// The operation raised: with `cache_errors` and an `error` result, stores it (marked
    /// as an error, replayed to duplicates); otherwise releases the claim. Bindings call
    /// this with the serialised exception, so the policy lives here.
    pub fn fail(&self, lease: &Lease, error: Option<Output>) -> Result<Failed, Error> {
        self.inner.owns(lease)?;
        match (self.inner.config.cache_errors, error) {
            (true, Some(out)) => self.complete(lease, out.into_error()).map(Failed::Stored),
            _ => self.release(lease).map(|()| Failed::Released),
        }
    }

    /// The outcome is unknown (the operation failed after side effects that may have
    /// happened): keep the claim until its lease expires, so duplicates are held off until
    /// then and one of them runs afterwards. Touches nothing in the store.
    pub fn abandon(&self, lease: &Lease) {
        let _ = lease;
        bump(&self.inner.counts.abandoned);
    }

    /// Extends a long-running claim to a full lease duration from now; returns the time
    /// until it expires. `LeaseLost` when it already expired or was taken over.
    pub fn renew(&self, lease: &Lease) -> Result<Duration, Error> {
        let inner = &self.inner;
        inner.owns(lease)?;
        let lease_for = inner.config.lease;
        let left = if lease.is_protected() {
            match inner.store.renew(lease.key(), lease.token(), lease_for) {
                Ok(left) => left,
                Err(e) => {
                    inner.count_error(&e);
                    return Err(e);
                }
            }
        } else {
            lease_for
        };
        let at = inner.clock.now().saturating_add(left);
        lease.data.expires_at.store(nanos(at), Release);
        Ok(left)
    }

    /// Time until `lease` expires (zero once it has).
    pub fn remaining(&self, lease: &Lease) -> Duration {
        lease.expires_at().saturating_sub(self.inner.clock.now())
    }

    /// What `key` holds, changing nothing (no claim, no LRU touch).
    pub fn peek(&self, key: &str) -> Result<Peek, Error> {
        validate_key(key)?;
        self.inner.store.peek(key)
    }

    /// Runs `f` once for `key`: a replay returns the stored record without running; the
    /// first caller runs `f` and stores its output; duplicates wait for it (or are refused,
    /// per `on_duplicate`). When `f` fails the key is released and the error returned. A
    /// panic in `f` leaves the lease to expire (outcome unknown).
    ///
    /// ```
    /// use seawall::idempotency::{Fingerprint, Output};
    /// use seawall::{IdempotencyCache, IdempotencyConfig};
    /// let cache = IdempotencyCache::new(IdempotencyConfig::default()).unwrap();
    /// let mut runs = 0;
    /// for _ in 0..3 {
    ///     let r = cache.run("k", &Fingerprint::NONE, || {
    ///         runs += 1;
    ///         Ok::<_, std::io::Error>(Output::new(&b"done"[..], "text/plain"))
    ///     });
    ///     assert_eq!(r.unwrap().result(), b"done");
    /// }
    /// assert_eq!(runs, 1);
    /// ```
    pub fn run<E>(
        &self,
        key: &str,
        fingerprint: &Fingerprint,
        f: impl FnOnce() -> Result<Output, E>,
    ) -> Result<Record, RunError<E>> {
        match self.acquire(key, fingerprint).map_err(RunError::Seawall)? {
            Acquired::Replay(r) => Ok(r),
            Acquired::Execute(lease) => match f() {
                Ok(out) => self.complete(&lease, out).map_err(RunError::Seawall),
                Err(e) => {
                    let _ = self.release(&lease);
                    Err(RunError::Failed(e))
                }
            },
        }
    }

    /// Cumulative counts.
    pub fn stats(&self) -> IdempotencyStats {
        let c = &self.inner.counts;
        let l = |a: &AtomicU64| a.load(Relaxed);
        IdempotencyStats {
            executed: l(&c.executed),
            replayed: l(&c.replayed),
            in_progress: l(&c.in_progress),
            mismatched: l(&c.mismatched),
            waited: l(&c.waited),
            taken_over: l(&c.taken_over),
            completed: l(&c.completed),
            released: l(&c.released),
            abandoned: l(&c.abandoned),
            lease_lost: l(&c.lease_lost),
            store_errors: l(&c.store_errors),
            unprotected: l(&c.unprotected),
        }
    }

    /// Duplicates waiting now.
    pub fn waiting(&self) -> usize {
        self.inner.waiters.len()
    }
}

impl Inner {
    fn lease(&self, key: &str, fingerprint: &Fingerprint, token: u64, expires_in: Duration, took_over: bool) -> Lease {
        bump(&self.counts.executed);
        if took_over {
            bump(&self.counts.taken_over);
        }
        let at = self.clock.now().saturating_add(expires_in);
        Lease {
            data: Arc::new(LeaseData {
                cache: self.id,
                key: Arc::from(key),
                fingerprint: *fingerprint,
                token,
                expires_at: AtomicU64::new(nanos(at)),
                took_over,
                protected: true,
            }),
        }
    }

    /// A store failure in `begin` (or while a waiter claims): fail, or fail open.
    fn store_failed(&self, key: &str, fingerprint: &Fingerprint, e: Error) -> Result<Lease, Error> {
        bump(&self.counts.store_errors);
        if self.config.on_store_error == OnStoreError::Run && matches!(e, Error::StoreUnavailable(_)) {
            bump(&self.counts.unprotected);
            bump(&self.counts.executed);
            let at = self.clock.now().saturating_add(self.config.lease);
            return Ok(Lease {
                data: Arc::new(LeaseData {
                    cache: self.id,
                    key: Arc::from(key),
                    fingerprint: *fingerprint,
                    token: 0,
                    expires_at: AtomicU64::new(nanos(at)),
                    took_over: false,
                    protected: false,
                }),
            });
        }
        Err(e)
    }

    /// The record a run produced when nothing could be stored (unprotected runs).
    fn local_record(&self, lease: &Lease, output: Output) -> Record {
        let now = self.clock.now();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Record::new(output, *lease.fingerprint(), lease.token(), ms(now), ms(now.saturating_add(self.config.ttl)))
    }

    fn count_error(&self, e: &Error) {
        match e {
            Error::LeaseLost { .. } => bump(&self.counts.lease_lost),
            _ => bump(&self.counts.store_errors),
        }
    }

    /// `InvalidArgument` for a lease another cache issued: finishing it here would act on
    /// this cache's key with a token that only means something in the other one's store.
    fn owns(&self, lease: &Lease) -> Result<(), Error> {
        if lease.data.cache == self.id {
            return Ok(());
        }
        Err(Error::InvalidArgument(format!(
            "lease = <idempotency key {:?}, token {}>: issued by another cache; finish it on the cache that issued it (this is {:?})",
            lease.key(),
            lease.token(),
            &*self.name
        )))
    }

    /// Releases, ignoring errors; true when it released.
    pub(crate) fn release_quietly(&self, lease: &Lease) -> bool {
        if lease.data.cache != self.id {
            return false;
        }
        if !lease.is_protected() {
            return true;
        }
        let ok = self.store.release(lease.key(), lease.token()).is_ok();
        if ok {
            bump(&self.counts.released);
        }
        ok
    }

    /// A duplicate found the key in progress and waits: register, look again (the owner
    /// may have finished in between), then arm the timer.
    fn wait_for(self: &Arc<Self>, key: &str, fingerprint: &Fingerprint, lease_left: Duration) -> Result<Begin, Error> {
        bump(&self.counts.waited);
        let now = self.clock.now();
        let slot = Arc::new(Slot::new(key, *fingerprint, now, self.wait_timeout, lease_left));
        self.waiters.register(&slot);
        if self.settle(&slot) {
            let r = slot.state.lock().result.take();
            return match r {
                Some(Ok(Acquired::Execute(l))) => Ok(Begin::Execute(l)),
                Some(Ok(Acquired::Replay(r))) => Ok(Begin::Replay(r)),
                Some(Err(Error::IdempotencyMismatch { key })) => Ok(Begin::Mismatch(Mismatch { key, completed: true })),
                Some(Err(e)) => Err(e),
                None => Err(Error::Internal("a resolved waiter had no outcome".into())),
            };
        }
        self.arm(&slot);
        Ok(Begin::InProgress(InProgress {
            key: key.to_owned(),
            retry_after: lease_left,
            waiter: Some(Waiter { slot, inner: Arc::clone(self) }),
        }))
    }

    /// Resolves a waiter once: hands the outcome to its callback (outside every lock) or
    /// parks it for `wait`/`poll`. False when it was already resolved (an `Execute` that
    /// arrives too late is released).
    pub(crate) fn resolve(&self, slot: &Arc<Slot>, result: Result<Acquired, Error>) -> bool {
        let mut st = slot.state.lock();
        if st.resolved {
            drop(st);
            if let Ok(Acquired::Execute(lease)) = result {
                self.release_quietly(&lease);
            }
            return false;
        }
        st.resolved = true;
        match &result {
            Ok(Acquired::Replay(_)) => bump(&self.counts.replayed),
            Err(Error::IdempotencyInProgress(_)) => bump(&self.counts.in_progress),
            Err(Error::IdempotencyMismatch { .. }) => bump(&self.counts.mismatched),
            _ => {}
        }
        let timer = st.timer.take();
        let deliver = match st.callback.take() {
            Some(cb) => Some((cb, result)),
            None => {
                st.result = Some(result);
                None
            }
        };
        slot.cv.notify_all();
        drop(st);
        self.waiters.remove(slot);
        if let Some(id) = timer {
            self.clock.cancel_timer(id);
        }
        if let Some((cb, r)) = deliver {
            if catch_unwind(AssertUnwindSafe(|| cb(r))).is_err() {
                eprintln!("seawall: an idempotency waiter callback for key {:?} panicked; ignored", &*slot.key);
            }
        }
        true
    }

    /// Tries to claim for a waiter. True when the waiter is resolved (now or before).
    fn settle(&self, slot: &Arc<Slot>) -> bool {
        if slot.is_resolved() {
            return true;
        }
        let claim = self.store.claim(&slot.key, &slot.fingerprint, self.config.lease);
        let result = match claim {
            Ok(Claim::InProgress { expires_in, .. }) => {
                let at = self.clock.now().saturating_add(expires_in);
                slot.state.lock().lease_expires_at = at;
                return slot.is_resolved();
            }
            Ok(Claim::Acquired { token, expires_in, .. }) => {
                // A waiter that gets the key always takes over from an owner that released
                // or expired.
                Ok(Acquired::Execute(self.lease(&slot.key, &slot.fingerprint, token, expires_in, true)))
            }
            Ok(Claim::Completed(r)) => Ok(Acquired::Replay(r)),
            Ok(Claim::Mismatch { .. }) => Err(Error::IdempotencyMismatch { key: slot.key.to_string() }),
            Err(e) => self.store_failed(&slot.key, &slot.fingerprint, e).map(Acquired::Execute),
        };
        self.resolve(slot, result);
        true
    }

    /// Applies what is due at `now`: the owner's lease expired (try to take over), the
    /// wait timed out.
    pub(crate) fn check(&self, slot: &Arc<Slot>, now: Duration) {
        let lease_at = slot.state.lock().lease_expires_at;
        if now >= lease_at && self.settle(slot) {
            return;
        }
        if now >= slot.deadline {
            let retry_after = slot.state.lock().lease_expires_at.saturating_sub(now);
            let e = InProgressError { key: slot.key.to_string(), retry_after, waited: now.saturating_sub(slot.started) };
            self.resolve(slot, Err(Error::IdempotencyInProgress(e)));
        }
    }

    /// Schedules the waiter's next check on the clock: the owner's lease expiry or the
    /// wait deadline, whichever is first. What is already due is applied at once.
    pub(crate) fn arm(self: &Arc<Self>, slot: &Arc<Slot>) {
        loop {
            let now = self.clock.now();
            let (at, generation) = {
                let mut st = slot.state.lock();
                if st.resolved {
                    return;
                }
                let at = st.lease_expires_at.min(slot.deadline);
                if st.timer.is_some() && st.armed_at == at {
                    return; // already set for that time: keep its place in the clock's queue
                }
                st.generation += 1;
                (at, st.generation)
            };
            if at <= now {
                self.check(slot, now);
                continue;
            }
            let (inner, s) = (Arc::downgrade(self), Arc::downgrade(slot));
            let id = self.clock.schedule(
                at,
                Box::new(move || {
                    if let (Some(inner), Some(slot)) = (inner.upgrade(), s.upgrade()) {
                        inner.on_timer(&slot, generation);
                    }
                }),
            );
            let mut st = slot.state.lock();
            if st.resolved || st.generation != generation {
                drop(st);
                self.clock.cancel_timer(id);
                return;
            }
            let old = st.timer.replace(id);
            st.armed_at = at;
            drop(st);
            if let Some(old) = old {
                self.clock.cancel_timer(old);
            }
            return;
        }
    }

    fn on_timer(self: &Arc<Self>, slot: &Arc<Slot>, generation: u64) {
        {
            let mut st = slot.state.lock();
            if st.resolved || st.generation != generation {
                return;
            }
            st.timer = None;
        }
        self.check(slot, self.clock.now());
        self.arm(slot);
    }

    /// A store event: wake the waiters of the key.
    fn on_event(self: &Arc<Self>, e: &StoreEvent<'_>) {
        let slots = self.waiters.take(e.key());
        if slots.is_empty() {
            return;
        }
        if let StoreEvent::Completed { key, record: Some(record) } = e {
            for slot in slots {
                let r = if slot.fingerprint == *record.fingerprint() {
                    Ok(Acquired::Replay((*record).clone()))
                } else {
                    Err(Error::IdempotencyMismatch { key: key.to_string() })
                };
                self.resolve(&slot, r);
            }
            return;
        }
        // Released (or completed without the record at hand): in arrival order, each
        // waiter registers again and claims; the first may take over, the rest wait on.
        for slot in slots {
            if slot.is_resolved() {
                continue;
            }
            self.waiters.register(&slot);
            if self.settle(&slot) {
                // Resolved, possibly by another thread before it was registered again.
                self.waiters.remove(&slot);
            } else {
                self.arm(&slot);
            }
        }
    }
}
