//! The in-process store: bounded, sharded, exact.
//!
//! Bounds: `max_entries` entries and `max_bytes` bytes of payload (key + result + content
//! type + metadata; a lease counts its key). When a new claim or a completion would cross
//! a bound, entries are evicted in this order until it fits:
//!
//! 1. expired entries (results past their TTL, leases past their expiry), earliest expiry first;
//! 2. completed results, least recently used first (a use is a claim that returned the
//!    result: a replay);
//!
//! and never a live lease: when only live leases are left, the claim (or completion) fails
//! with [`Error::StoreUnavailable`] saying the store is full, instead of evicting a run in
//! progress and letting a duplicate run it again.
//!
//! Keys are spread over 16 shards, each behind its own short-held mutex (a hash lookup and
//! a few pointer moves); no user code or subscriber ever runs under one. Eviction is
//! global: it takes one eviction mutex and picks the globally first victim, so the order is
//! exact whatever the sharding. To do that without locking all 16 shards per eviction (a
//! full store evicts on every new key), each shard publishes its own first candidate
//! (earliest expiry, LRU tail) in atomics, rewritten under its lock whenever the lock is
//! released; the evictor compares those and locks only the winning shard. Recency comes from one global stamp counter, fencing tokens from one global
//! token counter (so tokens strictly increase per key even after eviction, with no per-key
//! state left behind).
//!
//! LRU order within a shard is kept by the `lru` crate; see `docs/idempotency.md` for why
//! not `moka` or `quick_cache`.
//!
//! ```
//! use std::time::Duration;
//! use seawall::idempotency::Fingerprint;
//! use seawall::store::{Claim, MemoryStore, MemoryStoreConfig, Store};
//!
//! let store = MemoryStore::new(MemoryStoreConfig { max_entries: 1, ..Default::default() }).unwrap();
//! let fp = Fingerprint::NONE;
//! assert!(matches!(store.claim("a", &fp, Duration::from_secs(1)).unwrap(), Claim::Acquired { .. }));
//! // "a" is a live lease and cannot be evicted: the store is full.
//! let err = store.claim("b", &fp, Duration::from_secs(1)).unwrap_err();
//! assert_eq!(err.code(), seawall::ErrorCode::StoreUnavailable);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::Arc;
use std::time::Duration;

use lru::LruCache;
use parking_lot::{Mutex, MutexGuard};

use super::{Claim, Peek, Store, StoreEvent, StoreListener, SubscriptionId};
use crate::clock::{nanos, SharedClock, SystemClock};
use crate::error::{ConfigError, Error};
use crate::idempotency::{Fingerprint, Output, Record};
use crate::options::{snake_case, ConfigValue, Style};

const SHARDS: usize = 16;
/// Claims and completions retry after making room; this bounds the retries under races.
const ATTEMPTS: usize = 8;

/// Every option [`MemoryStoreConfig::set`] accepts.
pub const MEMORY_OPTION_NAMES: &[&str] = &["max_entries", "max_bytes"];

/// Bounds of a [`MemoryStore`].
#[derive(Clone)]
pub struct MemoryStoreConfig {
    /// Most entries (leases + results). Default 10 000.
    pub max_entries: u64,
    /// Most payload bytes (key + result + content type + metadata). Default 64 MiB.
    pub max_bytes: u64,
    /// Where time comes from (expiry, record times).
    pub clock: SharedClock,
    /// How the caller spells names, for error messages.
    pub style: Style,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        Self { max_entries: 10_000, max_bytes: 64 << 20, clock: SystemClock::shared(), style: Style::default() }
    }
}

impl fmt::Debug for MemoryStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStoreConfig")
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

/// Largest accepted `max_entries` / `max_bytes` (2^53, exact in every language's numbers).
pub const MAX_BOUND: u64 = 1 << 53;

/// A whole number in `1..=max`, worded like [`Style::count`].
pub(crate) fn whole(s: &Style, field: &str, v: &ConfigValue, max: u64) -> Result<u64, ConfigError> {
    let err = |reason: String, type_mismatch: bool| ConfigError {
        field: s.field(field),
        value: s.show(v),
        reason,
        type_mismatch,
    };
    let n = match v {
        ConfigValue::Int(n) => i128::from(*n),
        ConfigValue::Float(f) if f.is_finite() && f.fract() == 0.0 => *f as i128,
        ConfigValue::Float(_) => return Err(err("must be a whole number".into(), false)),
        _ => return Err(err("expected a whole number".into(), true)),
    };
    if n < 1 {
        return Err(err("must be at least 1".into(), false));
    }
    if n > i128::from(max) {
        return Err(err(format!("must be at most {max}"), false));
    }
    Ok(n as u64)
}

impl MemoryStoreConfig {
    /// Defaults read in a binding's conventions.
    pub fn with_style(style: Style) -> Self {
        Self { style, ..Self::default() }
    }

    /// Uses `clock` instead of the system clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets `max_entries` or `max_bytes` (or `maxEntries`, `maxBytes`) by name.
    pub fn set(&mut self, key: &str, value: ConfigValue) -> Result<(), ConfigError> {
        let s = self.style;
        match snake_case(key).as_str() {
            "max_entries" => self.max_entries = whole(&s, "max_entries", &value, MAX_BOUND)?,
            "max_bytes" => self.max_bytes = whole(&s, "max_bytes", &value, MAX_BOUND)?,
            _ => return Err(ConfigError::new(key, s.show(&value), "unknown option")),
        }
        Ok(())
    }

    /// Checks the bounds (for configs filled in as a struct).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (f, n) in [("max_entries", self.max_entries), ("max_bytes", self.max_bytes)] {
            whole(&self.style, f, &ConfigValue::Int(n.min(i64::MAX as u64) as i64), MAX_BOUND)?;
        }
        Ok(())
    }
}

/// Counts of a [`MemoryStore`], for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStoreStats {
    /// Entries held (live or expired-but-not-yet-removed).
    pub entries: u64,
    /// Payload bytes held.
    pub bytes: u64,
    /// Entries evicted to make room, ever.
    pub evictions: u64,
    /// The entry bound.
    pub max_entries: u64,
    /// The byte bound.
    pub max_bytes: u64,
}

/// A live or expired claim.
struct Held {
    fingerprint: Fingerprint,
    token: u64,
    expires: u64,
    seq: u64,
    size: u64,
}

/// A completed result.
struct Stored {
    record: Record,
    expires: u64,
    seq: u64,
    stamp: u64,
    size: u64,
}

/// A key is in `leases` or in `records`, never both; every entry is in `expiry` under
/// `(expires, seq)`.
struct Shard {
    leases: HashMap<Arc<str>, Held>,
    records: LruCache<Arc<str>, Stored>,
    expiry: BTreeMap<(u64, u64), Arc<str>>,
}

impl Shard {
    fn new() -> Self {
        Self { leases: HashMap::new(), records: LruCache::unbounded(), expiry: BTreeMap::new() }
    }
}

/// A shard and its published first eviction candidates: what [`MemoryStore::pick_victim`]
/// compares without taking the shard's lock. `NONE` when the shard has no such entry.
#[repr(align(64))]
struct ShardCell {
    shard: Mutex<Shard>,
    /// `(expires, seq)` of the shard's earliest-expiring entry (lease or result).
    first_expiry: AtomicU64,
    first_expiry_seq: AtomicU64,
    /// The recency stamp of the shard's least recently used result.
    lru_stamp: AtomicU64,
}

const NONE: u64 = u64::MAX;

impl ShardCell {
    fn new() -> Self {
        Self {
            shard: Mutex::new(Shard::new()),
            first_expiry: AtomicU64::new(NONE),
            first_expiry_seq: AtomicU64::new(NONE),
            lru_stamp: AtomicU64::new(NONE),
        }
    }

    fn lock(&self) -> ShardGuard<'_> {
        ShardGuard { cell: self, shard: self.shard.lock() }
    }

    /// The rank of this shard's first victim at `now`, as published.
    fn published_rank(&self, now: u64) -> Option<(u8, u64, u64)> {
        let exp = self.first_expiry.load(Acquire);
        if exp <= now {
            return Some((0, exp, self.first_expiry_seq.load(Acquire)));
        }
        let stamp = self.lru_stamp.load(Acquire);
        (stamp != NONE).then_some((1, stamp, 0))
    }
}

/// A locked shard that republishes its first candidates when released, so the published
/// values are those of the last unlock (a shard changes only under its lock).
struct ShardGuard<'a> {
    cell: &'a ShardCell,
    shard: MutexGuard<'a, Shard>,
}

impl Deref for ShardGuard<'_> {
    type Target = Shard;
    fn deref(&self) -> &Shard {
        &self.shard
    }
}

impl DerefMut for ShardGuard<'_> {
    fn deref_mut(&mut self) -> &mut Shard {
        &mut self.shard
    }
}

impl Drop for ShardGuard<'_> {
    fn drop(&mut self) {
        let (exp, seq) = self.shard.expiry.first_key_value().map_or((NONE, NONE), |(k, _)| *k);
        let stamp = self.shard.records.peek_lru().map_or(NONE, |(_, r)| r.stamp);
        self.cell.first_expiry_seq.store(seq, Release);
        self.cell.first_expiry.store(exp, Release);
        self.cell.lru_stamp.store(stamp, Release);
    }
}

/// Which entry to evict, and its rank (lower goes first).
struct Victim {
    shard: usize,
    key: Arc<str>,
    seq: u64,
    rank: (u8, u64, u64),
}

/// The in-process [`Store`]: bounded by entries and bytes, evicting expired entries first,
/// then least-recently-used results, never a live lease.
pub struct MemoryStore {
    shards: Box<[ShardCell]>,
    hasher: RandomState,
    clock: SharedClock,
    max_entries: u64,
    max_bytes: u64,
    entries: AtomicU64,
    bytes: AtomicU64,
    evictions: AtomicU64,
    next_token: AtomicU64,
    next_seq: AtomicU64,
    evicting: Mutex<()>,
    listeners: Mutex<Arc<Vec<(SubscriptionId, StoreListener)>>>,
    next_subscription: AtomicU64,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").field("stats", &self.stats()).finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(MemoryStoreConfig::default()).expect("the default bounds are valid")
    }
}

fn ms(n: u64) -> u64 {
    n / 1_000_000
}

impl MemoryStore {
    /// A store with these bounds and clock.
    pub fn new(config: MemoryStoreConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            shards: (0..SHARDS).map(|_| ShardCell::new()).collect(),
            hasher: RandomState::new(),
            clock: config.clock,
            max_entries: config.max_entries,
            max_bytes: config.max_bytes,
            entries: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            next_token: AtomicU64::new(0),
            next_seq: AtomicU64::new(0),
            evicting: Mutex::new(()),
            listeners: Mutex::new(Arc::new(Vec::new())),
            next_subscription: AtomicU64::new(1),
        })
    }

    /// Current counts.
    pub fn stats(&self) -> MemoryStoreStats {
        MemoryStoreStats {
            entries: self.entries.load(Acquire),
            bytes: self.bytes.load(Acquire),
            evictions: self.evictions.load(Acquire),
            max_entries: self.max_entries,
            max_bytes: self.max_bytes,
        }
    }

    /// The clock the store reads.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn now(&self) -> u64 {
        nanos(self.clock.now())
    }

    fn shard_index(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Relaxed) + 1
    }

    /// Takes `n` entries and `b` bytes of the budget, or nothing.
    fn reserve(&self, n: u64, b: u64) -> bool {
        let max_e = self.max_entries;
        if n > 0 && self.entries.fetch_update(AcqRel, Acquire, |e| (e + n <= max_e).then_some(e + n)).is_err() {
            return false;
        }
        let max_b = self.max_bytes;
        if b > 0 && self.bytes.fetch_update(AcqRel, Acquire, |x| (x + b <= max_b).then_some(x + b)).is_err() {
            self.entries.fetch_sub(n, AcqRel);
            return false;
        }
        true
    }

    fn free(&self, n: u64, b: u64) {
        self.entries.fetch_sub(n, AcqRel);
        self.bytes.fetch_sub(b, AcqRel);
    }

    fn remove_lease(&self, s: &mut Shard, key: &str) {
        if let Some(h) = s.leases.remove(key) {
            s.expiry.remove(&(h.expires, h.seq));
            self.free(1, h.size);
        }
    }

    fn remove_record(&self, s: &mut Shard, key: &str) {
        if let Some(r) = s.records.pop(key) {
            s.expiry.remove(&(r.expires, r.seq));
            self.free(1, r.size);
        }
    }

    /// Evicts until `n` more entries and `b` more bytes fit; false when only live leases
    /// (and `protect`) are left.
    fn make_room(&self, n: u64, b: u64, now: u64, protect: Option<&str>) -> bool {
        if n > self.max_entries || b > self.max_bytes {
            return false;
        }
        let _one_evictor = self.evicting.lock();
        loop {
            let fits = self.entries.load(Acquire) + n <= self.max_entries && self.bytes.load(Acquire) + b <= self.max_bytes;
            if fits {
                return true;
            }
            match self.pick_victim(now, protect) {
                Some(v) => self.evict(v),
                None => return false,
            }
        }
    }

    /// The globally first victim: the earliest-expiring expired entry, else the least
    /// recently used result. The shards' published candidates name the shard that holds
    /// it, and only that one is locked; when its own candidate is not the one published
    /// (`protect`, or a change since), every shard is looked at under its lock.
    fn pick_victim(&self, now: u64, protect: Option<&str>) -> Option<Victim> {
        let mut first: Option<(usize, (u8, u64, u64))> = None;
        for (i, cell) in self.shards.iter().enumerate() {
            if let Some(rank) = cell.published_rank(now) {
                if first.is_none_or(|(_, r)| rank < r) {
                    first = Some((i, rank));
                }
            }
        }
        let (i, published) = first?;
        match self.candidate(i, now, protect) {
            Some(v) if (v.rank.0, v.rank.1) == (published.0, published.1) => Some(v),
            _ => self.scan_for_victim(now, protect),
        }
    }

    /// The first victim of shard `i`.
    fn candidate(&self, i: usize, now: u64, protect: Option<&str>) -> Option<Victim> {
        let s = self.shards[i].lock();
        let expired = s
            .expiry
            .iter()
            .take_while(|((exp, _), _)| *exp <= now)
            .find(|(_, k)| Some(&***k) != protect)
            .map(|((exp, seq), k)| (k, *seq, (0, *exp, *seq)));
        let candidate = expired.or_else(|| s.records.peek_lru().map(|(k, r)| (k, r.seq, (1, r.stamp, r.seq))));
        candidate.map(|(key, seq, rank)| Victim { shard: i, key: Arc::clone(key), seq, rank })
    }

    /// The first victim over every shard, each looked at under its lock.
    #[cold]
    fn scan_for_victim(&self, now: u64, protect: Option<&str>) -> Option<Victim> {
        (0..self.shards.len()).filter_map(|i| self.candidate(i, now, protect)).min_by_key(|v| v.rank)
    }

    fn evict(&self, v: Victim) {
        let mut s = self.shards[v.shard].lock();
        let key = &*v.key;
        // The usual victim is the shard's least recently used result: taken from the end of
        // the list, without hashing the key.
        let removed = if s.records.peek_lru().is_some_and(|(k, r)| r.seq == v.seq && **k == *key) {
            let (_, r) = s.records.pop_lru().expect("peeked under the lock");
            s.expiry.remove(&(r.expires, r.seq));
            self.free(1, r.size);
            true
        } else if s.leases.get(key).is_some_and(|h| h.seq == v.seq) {
            self.remove_lease(&mut s, key);
            true
        } else if s.records.peek(key).is_some_and(|r| r.seq == v.seq) {
            self.remove_record(&mut s, key);
            true
        } else {
            false // changed meanwhile; the caller looks again
        };
        if removed {
            self.evictions.fetch_add(1, Relaxed);
        }
    }

    fn full(&self, what: &str) -> Error {
        let st = self.stats();
        Error::StoreUnavailable(format!(
            "memory store is full: {what}; it holds {} of {} entries and {} of {} bytes, and live leases are never evicted",
            st.entries, st.max_entries, st.bytes, st.max_bytes
        ))
    }

    /// Why `token` no longer holds `key` (shard lock held).
    fn lost(&self, s: &Shard, key: &str, token: u64, now: u64) -> Error {
        let reason = if let Some(h) = s.leases.get(key) {
            if h.token == token {
                "its lease expired".to_owned()
            } else if now < h.expires {
                format!("the lease expired and another owner holds the key now (token {})", h.token)
            } else {
                format!("the lease expired and a later owner's lease (token {}) expired too", h.token)
            }
        } else if let Some(r) = s.records.peek(key) {
            if r.record.token() == token {
                "it was already completed".to_owned()
            } else {
                format!("another owner completed the key (token {})", r.record.token())
            }
        } else {
            "the claim no longer exists (its lease expired, or it was released or evicted)".to_owned()
        };
        Error::LeaseLost { key: key.to_owned(), token, reason }
    }

    fn notify(&self, event: &StoreEvent<'_>) {
        let listeners = Arc::clone(&self.listeners.lock());
        for (_, f) in listeners.iter() {
            if catch_unwind(AssertUnwindSafe(|| f(event))).is_err() {
                eprintln!("seawall: a store subscriber panicked on key {:?}; ignored", event.key());
            }
        }
    }
}

fn dur(n: u64) -> Duration {
    Duration::from_nanos(n)
}

impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn claim(&self, key: &str, fingerprint: &Fingerprint, lease: Duration) -> Result<Claim, Error> {
        let now = self.now();
        let size = key.len() as u64;
        let mut took_over = false;
        let index = self.shard_index(key);
        for _ in 0..ATTEMPTS {
            let mut s = self.shards[index].lock();
            if let Some(h) = s.leases.get(key) {
                if now < h.expires {
                    return Ok(if h.fingerprint == *fingerprint {
                        Claim::InProgress { token: h.token, expires_in: dur(h.expires - now) }
                    } else {
                        Claim::Mismatch { completed: false }
                    });
                }
                took_over = true;
                self.remove_lease(&mut s, key);
            } else if let Some(r) = s.records.peek(key) {
                if now < r.expires {
                    if r.record.fingerprint() != fingerprint {
                        return Ok(Claim::Mismatch { completed: true });
                    }
                    let stamp = self.next_seq();
                    let r = s.records.get_mut(key).expect("present under the lock");
                    r.stamp = stamp;
                    return Ok(Claim::Completed(r.record.clone()));
                }
                self.remove_record(&mut s, key);
            }
            if self.reserve(1, size) {
                let token = self.next_token.fetch_add(1, AcqRel) + 1;
                let seq = self.next_seq();
                let expires = now.saturating_add(nanos(lease));
                let k: Arc<str> = Arc::from(key);
                s.expiry.insert((expires, seq), Arc::clone(&k));
                s.leases.insert(k, Held { fingerprint: *fingerprint, token, expires, seq, size });
                return Ok(Claim::Acquired { token, expires_in: dur(expires - now), took_over });
            }
            drop(s);
            if !self.make_room(1, size, now, None) {
                break;
            }
        }
        Err(self.full(&format!("cannot claim key {key:?} ({size} bytes)")))
    }

    fn complete(&self, key: &str, token: u64, output: Output, ttl: Duration) -> Result<Record, Error> {
        let now = self.now();
        let new_size = key.len() as u64 + output.size() as u64;
        let index = self.shard_index(key);
        let mut output = Some(output);
        for _ in 0..ATTEMPTS {
            let mut s = self.shards[index].lock();
            let old_size = match s.leases.get(key) {
                Some(h) if h.token == token && now < h.expires => h.size,
                _ => return Err(self.lost(&s, key, token, now)),
            };
            let extra = new_size.saturating_sub(old_size);
            if !self.reserve(0, extra) {
                drop(s);
                if !self.make_room(0, extra, now, Some(key)) {
                    break;
                }
                continue;
            }
            let (k, h) = s.leases.remove_entry(key).expect("checked under the lock");
            s.expiry.remove(&(h.expires, h.seq));
            let expires = now.saturating_add(nanos(ttl));
            let out = output.take().expect("taken once");
            let record = Record::new(out, h.fingerprint, token, ms(now), ms(expires));
            let seq = self.next_seq();
            s.expiry.insert((expires, seq), Arc::clone(&k));
            s.records.push(k, Stored { record: record.clone(), expires, seq, stamp: seq, size: new_size });
            drop(s);
            self.notify(&StoreEvent::Completed { key, record: Some(&record) });
            return Ok(record);
        }
        Err(self.full(&format!("cannot store the result of key {key:?} ({new_size} bytes)")))
    }

    fn release(&self, key: &str, token: u64) -> Result<(), Error> {
        let now = self.now();
        let mut s = self.shards[self.shard_index(key)].lock();
        match s.leases.get(key) {
            Some(h) if h.token == token && now < h.expires => self.remove_lease(&mut s, key),
            _ => return Err(self.lost(&s, key, token, now)),
        }
        drop(s);
        self.notify(&StoreEvent::Released { key });
        Ok(())
    }

    fn renew(&self, key: &str, token: u64, lease: Duration) -> Result<Duration, Error> {
        let now = self.now();
        let mut s = self.shards[self.shard_index(key)].lock();
        let s = &mut *s;
        match s.leases.get_mut(key) {
            Some(h) if h.token == token && now < h.expires => {
                let expires = now.saturating_add(nanos(lease));
                if let Some(k) = s.expiry.remove(&(h.expires, h.seq)) {
                    s.expiry.insert((expires, h.seq), k);
                }
                h.expires = expires;
                Ok(dur(expires - now))
            }
            _ => Err(self.lost(s, key, token, now)),
        }
    }

    fn peek(&self, key: &str) -> Result<Peek, Error> {
        let now = self.now();
        let s = self.shards[self.shard_index(key)].lock();
        if let Some(h) = s.leases.get(key) {
            if now < h.expires {
                return Ok(Peek::InProgress { token: h.token, fingerprint: h.fingerprint, expires_in: dur(h.expires - now) });
            }
        } else if let Some(r) = s.records.peek(key) {
            if now < r.expires {
                return Ok(Peek::Completed(r.record.clone()));
            }
        }
        Ok(Peek::Absent)
    }

    fn subscribe(&self, listener: StoreListener) -> SubscriptionId {
        let id = SubscriptionId(self.next_subscription.fetch_add(1, Relaxed));
        let mut l = self.listeners.lock();
        let mut v: Vec<_> = l.as_ref().clone();
        v.push((id, listener));
        *l = Arc::new(v);
        id
    }

    fn unsubscribe(&self, id: SubscriptionId) -> bool {
        let mut l = self.listeners.lock();
        let before = l.len();
        let v: Vec<_> = l.iter().filter(|(i, _)| *i != id).cloned().collect();
        let removed = v.len() != before;
        *l = Arc::new(v);
        removed
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;
    use crate::clock::ManualClock;

    fn store(max_entries: u64, max_bytes: u64) -> (MemoryStore, Arc<ManualClock>) {
        let clock = ManualClock::shared();
        let c: SharedClock = clock.clone();
        let s = MemoryStore::new(MemoryStoreConfig { max_entries, max_bytes, clock: c, style: Style::default() }).unwrap();
        (s, clock)
    }

    const FP: Fingerprint = Fingerprint::NONE;
    const LEASE: Duration = Duration::from_secs(30);
    const TTL: Duration = Duration::from_secs(100);

    fn acquire(s: &MemoryStore, key: &str) -> u64 {
        match s.claim(key, &FP, LEASE).unwrap() {
            Claim::Acquired { token, .. } => token,
            other => panic!("expected Acquired for {key}, got {other:?}"),
        }
    }

    fn put(s: &MemoryStore, key: &str, body: &str) {
        let t = acquire(s, key);
        s.complete(key, t, Output::new(body.as_bytes(), ""), TTL).unwrap();
    }

    #[test]
    fn tokens_increase_per_key_even_after_eviction() {
        let (s, _) = store(1, 1000);
        put(&s, "a", "x");
        let Claim::Completed(r) = s.claim("a", &FP, LEASE).unwrap() else { panic!() };
        let first = r.token();
        put(&s, "b", "y"); // evicts "a"
        assert_eq!(s.peek("a").unwrap(), Peek::Absent);
        assert!(acquire(&s, "a") > first);
        assert_eq!(s.stats().evictions, 2);
    }

    #[test]
    fn expired_first_then_lru_and_replay_refreshes() {
        let (s, _) = store(3, 1000);
        put(&s, "a", "1");
        put(&s, "b", "2");
        put(&s, "c", "3");
        // a replay of "a" makes "b" the least recently used
        assert!(matches!(s.claim("a", &FP, LEASE).unwrap(), Claim::Completed(_)));
        put(&s, "d", "4");
        assert_eq!(s.peek("b").unwrap(), Peek::Absent);
        assert_eq!(s.peek("a").unwrap().state(), "completed");
        assert_eq!(s.peek("c").unwrap().state(), "completed");
        // "r" is the least recently used, but the expired lease on "dead" goes first
        let (s2, clock2) = store(2, 1000);
        put(&s2, "r", "1");
        let _ = s2.claim("dead", &FP, Duration::from_millis(10)).unwrap();
        clock2.advance(Duration::from_millis(10));
        put(&s2, "new", "2");
        assert_eq!(s2.peek("r").unwrap().state(), "completed");
        assert_eq!(s2.stats().evictions, 1);
    }

    #[test]
    fn byte_bound_counts_key_result_content_type_and_metadata() {
        let (s, _) = store(100, 10);
        let t = acquire(&s, "k"); // 1 byte
        assert_eq!(s.stats().bytes, 1);
        let out = Output::new(&b"abc"[..], "ct").with_metadata("m", "v"); // 3 + 2 + 2
        s.complete("k", t, out, TTL).unwrap();
        assert_eq!(s.stats().bytes, 8);
        put(&s, "z", "12"); // 1 + 2 = 3 -> 11 > 10: evicts "k"
        assert_eq!(s.peek("k").unwrap(), Peek::Absent);
        assert_eq!(s.stats().bytes, 3);
    }

    #[test]
    fn live_leases_are_never_evicted() {
        let (s, clock) = store(2, 1000);
        let ta = acquire(&s, "a");
        acquire(&s, "b");
        let e = s.claim("c", &FP, LEASE).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::StoreUnavailable);
        assert!(e.to_string().contains("2 of 2 entries"), "{e}");
        assert_eq!(s.peek("a").unwrap().state(), "in_progress");
        // a completion that needs bytes the leases hold fails too, and keeps the lease
        let (s3, _) = store(10, 3);
        let t = acquire(&s3, "x");
        acquire(&s3, "y");
        let e = s3.complete("x", t, Output::new(&b"toolong"[..], ""), TTL).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::StoreUnavailable);
        assert_eq!(s3.peek("x").unwrap().state(), "in_progress");
        // once "a" expires it may go
        clock.advance(LEASE);
        acquire(&s, "c");
        assert!(s.complete("a", ta, Output::default(), TTL).is_err());
    }

    #[test]
    fn stale_tokens_are_refused_with_reasons() {
        let (s, clock) = store(10, 1000);
        let t1 = acquire(&s, "k");
        clock.advance(LEASE);
        let e = s.release("k", t1).unwrap_err();
        assert!(e.to_string().contains("its lease expired"), "{e}");
        let t2 = match s.claim("k", &FP, LEASE).unwrap() {
            Claim::Acquired { token, took_over, .. } => {
                assert!(took_over);
                token
            }
            o => panic!("{o:?}"),
        };
        assert!(t2 > t1);
        let e = s.complete("k", t1, Output::default(), TTL).unwrap_err();
        assert!(e.to_string().contains(&format!("another owner holds the key now (token {t2})")), "{e}");
        s.complete("k", t2, Output::default(), TTL).unwrap();
        let e = s.complete("k", t2, Output::default(), TTL).unwrap_err();
        assert!(e.to_string().contains("already completed"), "{e}");
        let e = s.renew("k", t1, LEASE).unwrap_err();
        assert!(e.to_string().contains(&format!("another owner completed the key (token {t2})")), "{e}");
    }

    #[test]
    fn renew_moves_the_expiry() {
        let (s, clock) = store(10, 1000);
        let t = acquire(&s, "k");
        clock.advance(Duration::from_secs(20));
        assert_eq!(s.renew("k", t, LEASE).unwrap(), LEASE);
        clock.advance(Duration::from_secs(20));
        assert!(matches!(s.claim("k", &FP, LEASE).unwrap(), Claim::InProgress { expires_in, .. } if expires_in == Duration::from_secs(10)));
        clock.advance(Duration::from_secs(10));
        assert!(matches!(s.claim("k", &FP, LEASE).unwrap(), Claim::Acquired { took_over: true, .. }));
    }

    /// Eviction order is exact across the 16 shards (the evictor reads the shards'
    /// published candidates and locks one): random puts with mixed TTLs, replays and clock
    /// steps, against a plain model of the rule (expired first by `(expiry, seq)`, then the
    /// least recently used); after every step the same keys are present.
    #[test]
    fn eviction_order_is_exact_across_shards() {
        use std::collections::BTreeMap as Model;
        const CAP: u64 = 40;
        for seed in 1..=20u64 {
            let (s, clock) = store(CAP, 1 << 40);
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            // key -> (expires, seq, stamp), in the store's units (ns, one global counter)
            let mut model: Model<String, (u64, u64, u64)> = Model::new();
            let (mut counter, mut now, mut fresh) = (0u64, 0u64, 0u64);
            for step in 0..600 {
                match next() % 8 {
                    0..=3 => {
                        fresh += 1;
                        let key = format!("k{fresh}");
                        let ttl = [50u64, 120, 1000][(next() % 3) as usize] * 1_000_000;
                        if model.len() as u64 == CAP {
                            let expired = model.iter().filter(|(_, e)| e.0 <= now).min_by_key(|(_, e)| (e.0, e.1));
                            let victim = expired.or_else(|| model.iter().min_by_key(|(_, e)| e.2)).map(|(k, _)| k.clone());
                            model.remove(&victim.expect("a full store has a victim"));
                        }
                        counter += 2; // the lease's seq, then the result's
                        model.insert(key.clone(), (now + ttl, counter, counter));
                        let t = acquire(&s, &key);
                        s.complete(&key, t, Output::new(&b"v"[..], ""), Duration::from_nanos(ttl)).unwrap();
                    }
                    4 | 5 => {
                        let live: Vec<String> = model.iter().filter(|(_, e)| now < e.0).map(|(k, _)| k.clone()).collect();
                        if let Some(k) = live.get((next() % (live.len() as u64).max(1)) as usize) {
                            counter += 1;
                            model.get_mut(k).unwrap().2 = counter;
                            assert!(matches!(s.claim(k, &FP, LEASE).unwrap(), Claim::Completed(_)), "seed {seed} step {step}");
                        }
                    }
                    _ => {
                        let d = [1u64, 10, 40][(next() % 3) as usize] * 1_000_000;
                        now += d;
                        clock.advance(Duration::from_nanos(d));
                    }
                }
                assert_eq!(s.stats().entries, model.len() as u64, "seed {seed} step {step}");
                for (k, e) in &model {
                    let want = if now < e.0 { "completed" } else { "absent" };
                    assert_eq!(s.peek(k).unwrap().state(), want, "seed {seed} step {step} key {k}");
                }
                for k in 1..=fresh {
                    let k = format!("k{k}");
                    if !model.contains_key(&k) {
                        assert_eq!(s.peek(&k).unwrap(), Peek::Absent, "seed {seed} step {step}: {k} was evicted");
                    }
                }
            }
            assert!(s.stats().evictions > 100, "seed {seed}: the run evicts");
        }
    }

    #[test]
    fn subscribers_hear_completions_and_releases_outside_locks() {
        let (s, _) = store(10, 1000);
        let s = Arc::new(s);
        let heard: Arc<StdMutex<Vec<String>>> = Arc::default();
        let h = heard.clone();
        let inner = Arc::clone(&s);
        let id = s.subscribe(Arc::new(move |e: &StoreEvent<'_>| {
            // calling back into the store must not deadlock
            let state = inner.peek(e.key()).unwrap().state();
            h.lock().unwrap().push(format!("{}:{state}", e.key()));
        }));
        let t = acquire(&s, "a");
        s.complete("a", t, Output::default(), TTL).unwrap();
        let t = acquire(&s, "b");
        s.release("b", t).unwrap();
        assert_eq!(*heard.lock().unwrap(), ["a:completed", "b:absent"]);
        assert!(s.unsubscribe(id));
        assert!(!s.unsubscribe(id));
    }

    #[test]
    fn config_set_names_fields() {
        let mut c = MemoryStoreConfig::with_style(Style { naming: crate::Naming::Camel, ..Style::default() });
        let e = c.set("maxEntries", ConfigValue::Int(0)).unwrap_err();
        assert_eq!(e.field, "maxEntries");
        let e = c.set("maxBytes", ConfigValue::Str("x".into())).unwrap_err();
        assert!(e.type_mismatch);
        c.set("maxBytes", ConfigValue::Float(2048.0)).unwrap();
        assert_eq!(c.max_bytes, 2048);
        assert_eq!(c.set("nope", ConfigValue::Int(1)).unwrap_err().reason, "unknown option");
    }
}
