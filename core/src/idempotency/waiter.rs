//! Waiting duplicates: single-flight without polling.
//!
//! A duplicate that arrives while another owner runs the operation gets a [`Waiter`]. The
//! waiter is resolved exactly once, with what the duplicate would get if it called `begin`
//! again at the right moment:
//!
//! - the owner completes: the store notifies the cache on the completing thread, and every
//!   waiter of the key gets the record (`Replay`), or `IdempotencyMismatch` if its
//!   fingerprint differs;
//! - the owner releases: waiters of the key try to claim it in arrival order; the first
//!   gets `Execute` (it takes over), the others keep waiting for *its* result;
//! - the owner's lease expires: a timer on the cache's clock, set at the lease's expiry,
//!   makes the waiter try to claim; again exactly one can succeed, because claiming is one
//!   atomic store step;
//! - `wait_timeout` passes: `IdempotencyInProgress`, with how long it waited.
//!
//! Timers come from the clock ([`Clock::schedule`](crate::Clock::schedule)): one shared
//! timer thread for the system clock, the clock's own queue for a `ManualClock` (fired
//! inside `advance`, so expiry and timeouts are exact in tests). Nothing polls.
//!
//! The outcome is taken in one of two ways: [`Waiter::wait`] blocks on a condition
//! variable (threads, C, Python without the GIL), or [`Waiter::on_done`] registers a
//! callback run once, outside every lock, on the thread that resolved the waiter (an event
//! loop binding hops back to its loop from there). A dropped waiter stops waiting; if it
//! had been handed the key (`Execute`) and nobody took that lease, the key is released.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{Acquired, Fingerprint, Inner};
use crate::error::Error;
use crate::timer::TimerId;

/// What a waiter's callback receives: `Execute` (this caller now owns the key), `Replay`,
/// or an error (`IdempotencyInProgress` when the wait timed out, `IdempotencyMismatch`,
/// `StoreUnavailable`, `Cancelled` when the waiter was cancelled or dropped).
pub type WaitCallback = Box<dyn FnOnce(Result<Acquired, Error>) + Send>;

pub(crate) struct SlotState {
    pub(crate) resolved: bool,
    pub(crate) result: Option<Result<Acquired, Error>>,
    pub(crate) callback: Option<WaitCallback>,
    pub(crate) timer: Option<TimerId>,
    /// The clock time `timer` is set for.
    pub(crate) armed_at: Duration,
    /// Bumped by every arming; a timer that fires with an older generation is stale.
    pub(crate) generation: u64,
    /// When the owner's lease expires, on the cache's clock (as last reported by the store).
    pub(crate) lease_expires_at: Duration,
}

/// One waiting duplicate.
pub(crate) struct Slot {
    pub(crate) key: Arc<str>,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) started: Duration,
    pub(crate) deadline: Duration,
    pub(crate) state: Mutex<SlotState>,
    pub(crate) cv: Condvar,
}

impl Slot {
    pub(crate) fn new(key: &str, fingerprint: Fingerprint, now: Duration, wait: Duration, lease_left: Duration) -> Self {
        Slot {
            key: Arc::from(key),
            fingerprint,
            started: now,
            deadline: now.saturating_add(wait),
            state: Mutex::new(SlotState {
                resolved: false,
                result: None,
                callback: None,
                timer: None,
                armed_at: Duration::ZERO,
                generation: 0,
                lease_expires_at: now.saturating_add(lease_left),
            }),
            cv: Condvar::new(),
        }
    }

    pub(crate) fn is_resolved(&self) -> bool {
        self.state.lock().resolved
    }
}

/// The waiting duplicates of one cache, by key. Sharded; a counter lets completions and
/// releases skip the lookup entirely when nobody waits (the common case).
pub(crate) struct Waiters {
    shards: Box<[Mutex<ByKey>]>,
    hasher: RandomState,
    count: AtomicUsize,
}

const SHARDS: usize = 16;

type ByKey = HashMap<Arc<str>, Vec<Arc<Slot>>>;

impl Waiters {
    pub(crate) fn new() -> Self {
        Waiters {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            count: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<ByKey> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    pub(crate) fn register(&self, slot: &Arc<Slot>) {
        let mut m = self.shard(&slot.key).lock();
        m.entry(Arc::clone(&slot.key)).or_default().push(Arc::clone(slot));
        self.count.fetch_add(1, AcqRel);
    }

    /// Removes and returns every waiter of `key`, in arrival order.
    pub(crate) fn take(&self, key: &str) -> Vec<Arc<Slot>> {
        if self.count.load(Acquire) == 0 {
            return Vec::new();
        }
        let taken = self.shard(key).lock().remove(key).unwrap_or_default();
        self.count.fetch_sub(taken.len(), AcqRel);
        taken
    }

    pub(crate) fn remove(&self, slot: &Arc<Slot>) {
        if self.count.load(Acquire) == 0 {
            return;
        }
        let mut m = self.shard(&slot.key).lock();
        if let Some(v) = m.get_mut(&*slot.key) {
            if let Some(i) = v.iter().position(|s| Arc::ptr_eq(s, slot)) {
                v.remove(i);
                self.count.fetch_sub(1, AcqRel);
            }
            if v.is_empty() {
                m.remove(&*slot.key);
            }
        }
    }

    /// Waiters registered now (for stats and tests).
    pub(crate) fn len(&self) -> usize {
        self.count.load(Acquire)
    }
}

/// Where a waiter stands, as [`Waiter::poll`] sees it.
#[derive(Debug)]
pub enum WaitPoll {
    /// Still waiting.
    Pending {
        /// Time until the owner's lease expires (as last reported by the store).
        lease_expires_in: Duration,
        /// Time until the wait times out.
        timeout_in: Duration,
    },
    /// Resolved; the outcome is handed over by this call.
    Ready(Result<Acquired, Error>),
    /// Resolved earlier and already handed over (to `wait`, `poll` or the callback).
    Taken,
}

/// A duplicate waiting for the owner of its key. See the module docs.
///
/// ```
/// use std::sync::mpsc;
/// use seawall::idempotency::{Acquired, Begin, Fingerprint, Output};
/// use seawall::{IdempotencyCache, IdempotencyConfig};
///
/// let cache = IdempotencyCache::new(IdempotencyConfig::default()).unwrap();
/// let fp = Fingerprint::of(b"payload");
/// let Begin::Execute(lease) = cache.begin("k", &fp).unwrap() else { panic!() };
/// let Begin::InProgress(dup) = cache.begin("k", &fp).unwrap() else { panic!() };
/// let waiter = dup.waiter.unwrap();
/// let (tx, rx) = mpsc::channel();
/// waiter.on_done(move |outcome| tx.send(outcome).unwrap()); // e.g. hop to an event loop
/// cache.complete(&lease, Output::new(&b"42"[..], "application/json")).unwrap();
/// match rx.recv().unwrap().unwrap() {
///     Acquired::Replay(record) => assert_eq!(record.result(), b"42"),
///     Acquired::Execute(_) => unreachable!(),
/// }
/// ```
pub struct Waiter {
    pub(crate) slot: Arc<Slot>,
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter").field("key", &self.slot.key).field("done", &self.is_done()).finish()
    }
}

fn taken() -> Error {
    Error::InvalidArgument("this waiter's outcome was already handed over (to wait, poll or on_done)".into())
}

impl Waiter {
    /// The key waited for.
    pub fn key(&self) -> &str {
        &self.slot.key
    }

    /// The fingerprint the duplicate came with.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.slot.fingerprint
    }

    /// True once resolved (whether or not the outcome was handed over).
    pub fn is_done(&self) -> bool {
        self.slot.is_resolved()
    }

    /// Blocks until the waiter is resolved and returns its outcome, or returns `None` when
    /// `timeout` (real time; `None`: no limit besides `wait_timeout`) passes first, in
    /// which case the waiter goes on waiting and `wait` may be called again. Bindings wait
    /// in short slices to stay responsive (Python checks signals between slices).
    pub fn wait(&self, timeout: Option<Duration>) -> Option<Result<Acquired, Error>> {
        let until = timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future));
        let mut st = self.slot.state.lock();
        loop {
            if let Some(r) = st.result.take() {
                return Some(r);
            }
            if st.resolved {
                return Some(Err(taken()));
            }
            match until {
                Some(u) => {
                    if self.slot.cv.wait_until(&mut st, u).timed_out() {
                        return st.result.take().map(Some).unwrap_or_else(|| st.resolved.then(|| Err(taken())));
                    }
                }
                None => self.slot.cv.wait(&mut st),
            }
        }
    }

    /// Registers `f` to receive the outcome, once, outside every lock: on the thread that
    /// resolves the waiter (a completing or releasing owner, the clock's timer), or right
    /// here if it is already resolved. Replaces a callback registered before.
    pub fn on_done(&self, f: impl FnOnce(Result<Acquired, Error>) + Send + 'static) {
        let mut st = self.slot.state.lock();
        if let Some(r) = st.result.take() {
            drop(st);
            f(r);
        } else if st.resolved {
            drop(st);
            f(Err(taken()));
        } else {
            st.callback = Some(Box::new(f));
        }
    }

    /// Applies what time has made due (the owner's lease expired: try to take over; the
    /// wait timed out), then reports where the waiter stands without blocking. With a
    /// clock that can schedule (both built-in clocks), the clock's timer does the same at
    /// the right time by itself; `poll` is for checking, and for clocks that cannot.
    pub fn poll(&self) -> WaitPoll {
        if !self.slot.is_resolved() {
            self.inner.check(&self.slot, self.inner.clock.now());
            self.inner.arm(&self.slot);
        }
        let now = self.inner.clock.now();
        let mut st = self.slot.state.lock();
        if let Some(r) = st.result.take() {
            return WaitPoll::Ready(r);
        }
        if st.resolved {
            return WaitPoll::Taken;
        }
        WaitPoll::Pending {
            lease_expires_in: st.lease_expires_at.saturating_sub(now),
            timeout_in: self.slot.deadline.saturating_sub(now),
        }
    }

    /// Stops waiting: the outcome becomes `Cancelled` (delivered to the callback if one is
    /// registered). No effect once resolved.
    pub fn cancel(&self) {
        if !self.slot.is_resolved() {
            let msg = format!("stopped waiting for idempotency key {:?}", &*self.slot.key);
            self.inner.resolve(&self.slot, Err(Error::Cancelled(msg)));
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.cancel();
        let left = self.slot.state.lock().result.take();
        if let Some(Ok(Acquired::Execute(lease))) = left {
            // Handed the key, but nobody will run the operation: let the next duplicate.
            self.inner.release_quietly(&lease);
        }
    }
}
