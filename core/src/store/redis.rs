//! The Redis store: one idempotency cache shared by processes, hosts and languages.
//!
//! Each of `claim`, `complete`, `release`, `renew` (and `peek`) is one Lua script, run
//! atomically by the server in one round trip (`EVALSHA`; when the server has forgotten
//! the script, `SCRIPT LOAD` and again). The script reads the server's clock (`TIME`) for
//! every expiry decision, classifies what the key holds (absent, expired, lease expired, in
//! progress, completed, fingerprint mismatch) and acts in the same step, so two processes
//! never compare clocks and never read-then-write. A fresh run costs 2 round trips (claim
//! + complete), a replay 1.
//!
//! Keys (`docs/redis.md` has the full layout): for an idempotency key `k` under the prefix
//! `seawall:idem:`, with `h` the first 4 bytes of SHA-256(`k`) in hex,
//!
//! - `seawall:idem:{h}:e:k` — the entry: a lease (`SWL` + token, times, fingerprint, written
//!   twice so that the scripts refuse a corrupted one instead of taking it over early) or the
//!   completed record in seawall's versioned record format (`Record::encode`), so a record
//!   written by a Python service replays in a Node service. The complete script stamps the
//!   token, times and fingerprint into the record's header and writes the header's CRC-32C
//!   (the body's CRC is the writer's); the scripts check the header's CRC before they act on
//!   a record's expiry, fingerprint or token, so a corrupted record is refused, never taken
//!   for expired, for another payload's or for another owner's;
//! - `seawall:idem:{h}:t:k` — the key's fencing-token counter; `release` leaves it, and it
//!   lives as long as the key's entry could (TTL or lease, + 60 s); a new token is also
//!   never below `server time in ms × 1024`, so tokens are not handed out twice for a key
//!   even after the counter expired (`docs/redis.md` has the exact bound);
//! - `seawall:idem:{h}:n:k` — the pub/sub channel on which completions and releases of `k`
//!   are announced.
//!
//! `{h}` is a Redis Cluster hash tag: a key's entry, counter and channel map to one slot.
//!
//! Waiting duplicates in another process are woken by the pub/sub message (see the
//! `notify` module), not by polling; the cache's own timer at the owner's lease expiry is
//! the backstop. Connection handling is in `link`: one multiplexed connection for every
//! thread, failing fast with `StoreUnavailable` while Redis is down, reconnecting with
//! backoff. A completion that cannot be written after the operation ran is retried in the
//! background (bounded by `completion_retry_window` and by the lease), counted in
//! [`RedisStore::stats`] and reported on stderr when it is finally lost.
//!
//! The store runs its I/O on a small private tokio runtime (one worker thread) plus one
//! notifier thread; calls block the calling thread (Python releases the GIL around them;
//! Node calls them off the event loop). After a `fork`, the child builds its own runtime
//! and connections on first use.
//!
//! ```no_run
//! use std::sync::Arc;
//! use seawall::idempotency::{Fingerprint, Output};
//! use seawall::store::redis::{RedisStore, RedisStoreConfig};
//! use seawall::{IdempotencyCache, IdempotencyConfig};
//!
//! let store = RedisStore::new(RedisStoreConfig::new("redis://127.0.0.1:6379/0")).unwrap();
//! let cache = IdempotencyCache::new(IdempotencyConfig::named("payments").with_store(Arc::new(store))).unwrap();
//! let record = cache
//!     .run("charge-7", &Fingerprint::of(b"{\"amount\":100}"), || {
//!         Ok::<_, std::io::Error>(Output::new(&b"{\"id\":\"ch_1\"}"[..], "application/json"))
//!     })
//!     .unwrap();
//! assert_eq!(record.result(), b"{\"id\":\"ch_1\"}");
//! ```

mod config;
mod link;
mod notify;

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{mpsc, Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};

use ::redis::{Cmd, Value};
use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};

pub use config::{RedisStoreConfig, DEFAULT_PREFIX, DEFAULT_URL, MAX_PREFIX_BYTES, REDIS_OPTION_NAMES};

use super::{Claim, Peek, Store, StoreEvent, StoreListener, SubscriptionId};
use crate::clock::{Clock, ManualClock};
use crate::error::{ConfigError, Error};
use crate::idempotency::{Fingerprint, Output, Record};
use link::{Fail, Link};
use notify::{Note, MAX_WATCHED, WATCH_MARGIN};

/// An entry stays in Redis this long past its expiry (the scripts decide by the expiry
/// written in the entry, to the millisecond): an owner whose lease just expired is told
/// "its lease expired", and a claim after it reports `took_over`.
const GRACE_MS: &str = "60000";
/// Longest duration sent to a script, in ms (about 139 years; keeps Lua's doubles exact).
const MAX_MS: u128 = 1 << 42;

struct Script {
    source: &'static str,
    sha: String,
}

impl Script {
    fn new(source: &'static str) -> Script {
        Script { source, sha: ::redis::Script::new(source).get_hash().to_owned() }
    }
}

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(concat!(include_str!("redis/prelude.lua"), include_str!($file))))
    };
}

static CLAIM: LazyLock<Script> = script!("redis/claim.lua");
static COMPLETE: LazyLock<Script> = script!("redis/complete.lua");
static RELEASE: LazyLock<Script> = script!("redis/release.lua");
static RENEW: LazyLock<Script> = script!("redis/renew.lua");
static PEEK: LazyLock<Script> = script!("redis/peek.lua");

fn evalsha(script: &Script, keys: &[&[u8]], args: &[&[u8]]) -> Cmd {
    let mut c = ::redis::cmd("EVALSHA");
    c.arg(&script.sha).arg(keys.len());
    for k in keys {
        c.arg(*k);
    }
    for a in args {
        c.arg(*a);
    }
    c
}

/// Runs a script: `EVALSHA`, and when the server does not have it, `SCRIPT LOAD` and again.
async fn eval(link: &Link, script: &Script, cmd: &Cmd) -> Result<Value, Error> {
    match link.query(cmd).await {
        Ok(v) => return Ok(v),
        Err(Fail::Unavailable(e)) => return Err(e),
        Err(Fail::NoScript) => {}
    }
    link.counts().script_loads.fetch_add(1, Relaxed);
    let mut load = ::redis::cmd("SCRIPT");
    load.arg("LOAD").arg(script.source);
    match link.query(&load).await {
        Ok(_) => {}
        Err(Fail::Unavailable(e)) => return Err(e),
        Err(Fail::NoScript) => return Err(Error::StoreUnavailable("redis refused SCRIPT LOAD".into())),
    }
    match link.query(cmd).await {
        Ok(v) => Ok(v),
        Err(Fail::Unavailable(e)) => Err(e),
        Err(Fail::NoScript) => Err(Error::StoreUnavailable(format!(
            "redis at {} forgot a script right after loading it (is SCRIPT FLUSH running in a loop?)",
            link.target
        ))),
    }
}

fn ms_arg(d: Duration) -> String {
    d.as_millis().clamp(1, MAX_MS).to_string()
}

fn bad_reply(what: &str, v: &impl fmt::Debug) -> Error {
    Error::StoreUnavailable(format!("unexpected reply from the redis {what} script: {v:?}"))
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn uint(v: &Value) -> Option<u64> {
    int(v).and_then(|n| u64::try_from(n).ok())
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn fingerprint_of(v: &Value) -> Option<Fingerprint> {
    let b: [u8; 32] = bytes(v)?.try_into().ok()?;
    Some(Fingerprint::from_bytes(b))
}

/// A script's reply: an array whose first item is a status code.
fn reply(what: &str, v: Value) -> Result<(i64, Vec<Value>), Error> {
    match v {
        Value::Array(items) => match items.first().and_then(int) {
            Some(code) => Ok((code, items)),
            None => Err(bad_reply(what, &items)),
        },
        other => Err(bad_reply(what, &other)),
    }
}

fn decode(key: &str, v: &Value) -> Result<Record, Error> {
    let b = bytes(v).ok_or_else(|| bad_reply("claim", v))?;
    Record::decode(b).map_err(|e| {
        Error::StoreUnavailable(format!("the record of idempotency key {key:?} in redis cannot be read: {e}"))
    })
}

/// `LeaseLost` from a script's `{1, why, holder}` reply, worded like the memory store.
fn lease_lost(key: &str, token: u64, items: &[Value]) -> Error {
    let why = items.get(1).and_then(int).unwrap_or(-1);
    let holder = items.get(2).and_then(uint).unwrap_or(0);
    let reason = match why {
        0 => {
            "the claim no longer exists (its lease expired, or it was released, or redis lost or evicted it)".to_owned()
        }
        1 => "its lease expired".to_owned(),
        2 => format!("the lease expired and another owner holds the key now (token {holder})"),
        3 => format!("the lease expired and a later owner's lease (token {holder}) expired too"),
        4 => "it was already completed".to_owned(),
        5 => format!("another owner completed the key (token {holder})"),
        _ => format!("unexpected reply {items:?}"),
    };
    Error::LeaseLost { key: key.to_owned(), token, reason }
}

fn message(e: Error) -> String {
    match e {
        Error::StoreUnavailable(m) => m,
        other => other.to_string(),
    }
}

/// Counts of a [`RedisStore`], for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisStoreStats {
    /// Commands sent to the server (scripts, script loads, pings): 2 per fresh run
    /// (claim + complete) and 1 per replay.
    pub round_trips: u64,
    /// Times the server did not have a script cached (`NOSCRIPT`) and it was loaded.
    pub script_loads: u64,
    /// Command connections made (the first one included).
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Calls that failed with `StoreUnavailable` (fast while Redis is down).
    pub unavailable: u64,
    /// Completions that could not be written at once and went to the background.
    pub completion_retries: u64,
    /// ... of which were written later.
    pub completions_recovered: u64,
    /// ... of which were given up (the lease was lost, or the retry window passed); each
    /// is also reported on stderr.
    pub completions_lost: u64,
    /// ... still being retried now.
    pub completions_pending: u64,
    /// Pub/sub messages received (completions and releases of watched keys).
    pub notifications: u64,
    /// Keys whose channel is subscribed now (keys this process waits on).
    pub watched_keys: u64,
    /// True while the command connection is up.
    pub connected: bool,
    /// True while the pub/sub connection is up (it opens when a key is first waited on).
    pub notifications_connected: bool,
}

#[derive(Default)]
pub(crate) struct Counters {
    round_trips: AtomicU64,
    script_loads: AtomicU64,
    connects: AtomicU64,
    connect_failures: AtomicU64,
    unavailable: AtomicU64,
    completion_retries: AtomicU64,
    completions_recovered: AtomicU64,
    completions_lost: AtomicU64,
    notifications: AtomicU64,
    watched: AtomicU64,
}

/// The Redis names of one idempotency key (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyNames {
    /// The entry: a lease or the completed record.
    pub entry: String,
    /// The fencing-token counter.
    pub counter: String,
    /// The pub/sub channel of completions and releases.
    pub channel: String,
}

/// What survives a fork: configuration, subscribers, watch list.
pub(crate) struct Shared {
    client: ::redis::Client,
    url: String,
    target: String,
    prefix: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    reconnect_delay: Duration,
    reconnect_max_delay: Duration,
    retry_window: Duration,
    clock: Option<Arc<ManualClock>>,
    listeners: Mutex<Arc<Vec<(SubscriptionId, StoreListener)>>>,
    next_subscription: AtomicU64,
    /// Keys waited on, until when (see `notify`).
    watched: Mutex<HashMap<String, Instant>>,
    /// Completions being retried in the background: their leases are not released.
    pending: Mutex<HashSet<(String, u64)>>,
    pending_count: AtomicUsize,
    pubsub_up: AtomicBool,
    /// Keys whose channel is subscribed (and which were re-checked since).
    subscribed: Mutex<HashSet<String>>,
    /// Names this store instance in its pub/sub messages, so it skips its own.
    origin: u64,
    counts: Arc<Counters>,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Shared {
    /// `<prefix>{h}:<kind>:<key>`.
    fn name(&self, kind: u8, key: &str, tag: &[u8; 8]) -> Vec<u8> {
        let mut n = Vec::with_capacity(self.prefix.len() + 13 + key.len());
        n.extend_from_slice(self.prefix.as_bytes());
        n.push(b'{');
        n.extend_from_slice(tag);
        n.extend_from_slice(b"}:");
        n.push(kind);
        n.push(b':');
        n.extend_from_slice(key.as_bytes());
        n
    }

    fn channel_of(&self, key: &str) -> Vec<u8> {
        self.name(b'n', key, &tag(key))
    }

    /// The idempotency key of a channel name, if it is one of this store's.
    fn key_of_channel(&self, channel: &[u8]) -> Option<String> {
        let rest = channel.strip_prefix(self.prefix.as_bytes())?;
        if rest.len() < 13 || rest[0] != b'{' || &rest[9..13] != b"}:n:" {
            return None;
        }
        let key = std::str::from_utf8(&rest[13..]).ok()?;
        (rest[1..9] == tag(key)).then(|| key.to_owned())
    }

    /// The "now" argument of every script: empty (the server's `TIME`), or the test clock.
    fn now_arg(&self) -> String {
        match &self.clock {
            Some(c) => c.now().as_millis().to_string(),
            None => String::new(),
        }
    }

    fn notify(&self, event: &StoreEvent<'_>) {
        let listeners = Arc::clone(&self.listeners.lock());
        for (_, f) in listeners.iter() {
            if catch_unwind(AssertUnwindSafe(|| f(event))).is_err() {
                eprintln!("seawall: a store subscriber panicked on key {:?}; ignored", event.key());
            }
        }
    }

    /// Runs on the notifier thread.
    fn deliver(&self, note: Note) {
        match note {
            Note::Completed(key, record) => self.notify(&StoreEvent::Completed { key: &key, record: record.as_ref() }),
            Note::Released(key) => self.notify(&StoreEvent::Released { key: &key }),
            Note::Recheck(key) => self.notify(&StoreEvent::Completed { key: &key, record: None }),
        }
    }
}

/// The first 4 bytes of SHA-256(`key`), in hex: the key's Redis Cluster hash tag.
fn tag(key: &str) -> [u8; 8] {
    let h = Sha256::digest(key.as_bytes());
    let mut t = [0u8; 8];
    for (i, b) in h[..4].iter().enumerate() {
        t[2 * i] = HEX[usize::from(b >> 4)];
        t[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    t
}

/// The runtime, connections and threads of one process (rebuilt in a forked child).
struct Engine {
    pid: u32,
    runtime: Option<tokio::runtime::Runtime>,
    link: Arc<Link>,
    notes: mpsc::Sender<Note>,
    watch: OnceLock<tokio::sync::mpsc::UnboundedSender<String>>,
}

impl Engine {
    fn start(shared: &Arc<Shared>) -> Result<Engine, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("seawall-redis")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::StoreUnavailable(format!("cannot start the redis store's I/O thread: {e}")))?;
        let link = Arc::new(Link::new(
            shared.client.clone(),
            shared.target.clone(),
            shared.connect_timeout,
            shared.command_timeout,
            shared.reconnect_delay,
            shared.reconnect_max_delay,
            Arc::clone(&shared.counts),
        ));
        Ok(Engine {
            pid: std::process::id(),
            runtime: Some(runtime),
            link,
            notes: notify::spawn_notifier(Arc::clone(shared)),
            watch: OnceLock::new(),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives as long as the engine")
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            if self.pid == std::process::id() {
                rt.shutdown_background();
            } else {
                // A forked child: the parent's threads are not here; leave their state be.
                std::mem::forget(rt);
            }
        }
    }
}

/// The idempotency [`Store`] on Redis. See the module docs.
pub struct RedisStore {
    shared: Arc<Shared>,
    engine: RwLock<Option<Arc<Engine>>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.shared.url)
            .field("prefix", &self.shared.prefix)
            .field("stats", &self.stats())
            .finish()
    }
}

impl RedisStore {
    /// A store for this configuration. Nothing connects yet: the first call does (so an
    /// application starts while Redis is down, and its calls fail with `StoreUnavailable`
    /// until Redis is up). Use [`ping`](Self::ping) to connect and check at startup.
    pub fn new(config: RedisStoreConfig) -> Result<RedisStore, ConfigError> {
        config.validate()?;
        let client = ::redis::Client::open(config.url.as_str()).map_err(|e| {
            ConfigError::new(&config.style.field("url"), format!("{:?}", config::redact(&config.url)), e.to_string())
        })?;
        let info = client.get_connection_info();
        let target = format!("{}/{}", info.addr, info.redis.db);
        Ok(RedisStore {
            shared: Arc::new(Shared {
                client,
                url: config::redact(&config.url),
                target,
                prefix: config.prefix,
                connect_timeout: config.connect_timeout,
                command_timeout: config.command_timeout,
                reconnect_delay: config.reconnect_delay,
                reconnect_max_delay: config.reconnect_max_delay,
                retry_window: config.completion_retry_window,
                clock: config.clock,
                listeners: Mutex::new(Arc::new(Vec::new())),
                next_subscription: AtomicU64::new(1),
                watched: Mutex::new(HashMap::new()),
                pending: Mutex::new(HashSet::new()),
                pending_count: AtomicUsize::new(0),
                pubsub_up: AtomicBool::new(false),
                subscribed: Mutex::new(HashSet::new()),
                origin: RandomState::new().hash_one((std::process::id(), Instant::now())),
                counts: Arc::new(Counters::default()),
            }),
            engine: RwLock::new(None),
        })
    }

    /// A store for `url` with the default options.
    pub fn open(url: &str) -> Result<RedisStore, ConfigError> {
        RedisStore::new(RedisStoreConfig::new(url))
    }

    /// The URL (without its password).
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// The Redis names of `key`'s entry, counter and channel.
    pub fn key_names(&self, key: &str) -> KeyNames {
        let t = tag(key);
        let s = |kind| String::from_utf8(self.shared.name(kind, key, &t)).expect("UTF-8 prefix and key");
        KeyNames { entry: s(b'e'), counter: s(b't'), channel: s(b'n') }
    }

    /// True when completions and releases of `key` made by other processes reach this
    /// store now: it waits on the key (a claim found it in progress), Redis confirmed the
    /// subscription to its channel, and the key was re-checked since.
    pub fn is_subscribed(&self, key: &str) -> bool {
        self.shared.subscribed.lock().contains(key)
    }

    /// Current counts.
    pub fn stats(&self) -> RedisStoreStats {
        let c = &self.shared.counts;
        let l = |a: &AtomicU64| a.load(Relaxed);
        let connected = match &*self.engine.read() {
            Some(e) => e.link.is_up(),
            None => false,
        };
        RedisStoreStats {
            round_trips: l(&c.round_trips),
            script_loads: l(&c.script_loads),
            connects: l(&c.connects),
            connect_failures: l(&c.connect_failures),
            unavailable: l(&c.unavailable),
            completion_retries: l(&c.completion_retries),
            completions_recovered: l(&c.completions_recovered),
            completions_lost: l(&c.completions_lost),
            completions_pending: self.shared.pending_count.load(Acquire) as u64,
            notifications: l(&c.notifications),
            watched_keys: l(&c.watched),
            connected,
            notifications_connected: self.shared.pubsub_up.load(Relaxed),
        }
    }

    /// Connects if needed and sends `PING`; returns the round-trip time. For health checks
    /// and for checking the configuration at startup.
    pub fn ping(&self) -> Result<Duration, Error> {
        let engine = self.engine()?;
        let link = Arc::clone(&engine.link);
        self.run(&engine, async move {
            let started = Instant::now();
            match link.query(&::redis::cmd("PING")).await {
                Ok(_) => Ok(started.elapsed()),
                Err(Fail::Unavailable(e)) => Err(e),
                Err(Fail::NoScript) => Err(Error::StoreUnavailable("unexpected NOSCRIPT reply to PING".into())),
            }
        })
    }

    fn engine(&self) -> Result<Arc<Engine>, Error> {
        let pid = std::process::id();
        if let Some(e) = &*self.engine.read() {
            if e.pid == pid {
                return Ok(Arc::clone(e));
            }
        }
        let mut slot = self.engine.write();
        if let Some(e) = &*slot {
            if e.pid == pid {
                return Ok(Arc::clone(e));
            }
        }
        if let Some(parents) = slot.take() {
            std::mem::forget(parents); // a forked child: see Engine::drop
        }
        let e = Arc::new(Engine::start(&self.shared)?);
        *slot = Some(Arc::clone(&e));
        Ok(e)
    }

    /// Runs `fut` on the store's runtime and waits for it on this thread.
    fn run<T: Send + 'static>(
        &self,
        engine: &Engine,
        fut: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let rt = engine.runtime();
        if tokio::runtime::Handle::try_current().is_err() {
            return rt.block_on(fut);
        }
        // Called from inside some tokio runtime (an async application calling the
        // synchronous API): block_on would panic there, so hand the work over.
        let (tx, rx) = mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().unwrap_or_else(|_| Err(Error::StoreUnavailable("the redis store shut down during the call".into())))
    }

    /// `key` was found in progress: make sure its channel is subscribed while it may be
    /// waited on (see `notify`).
    fn watch(&self, engine: &Engine, key: &str, expires_in: Duration) {
        let now = Instant::now();
        let until =
            now.checked_add(expires_in.saturating_add(WATCH_MARGIN)).unwrap_or(now + Duration::from_secs(86_400));
        let mut w = self.shared.watched.lock();
        if let Some(u) = w.get_mut(key) {
            if *u < until {
                *u = until;
            }
            return;
        }
        if w.len() >= MAX_WATCHED {
            return;
        }
        w.insert(key.to_owned(), until);
        drop(w);
        let tx = engine.watch.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let (shared, link) = (Arc::clone(&self.shared), Arc::clone(&engine.link));
            engine.runtime().spawn(notify::pubsub_loop(shared, link, engine.notes.clone(), rx));
            tx
        });
        let _ = tx.send(key.to_owned());
    }

    /// The completion of `job` failed for want of Redis: retry it in the background.
    fn retry_completion(&self, engine: &Engine, job: Arc<Completion>, draft: Record) {
        let shared = Arc::clone(&self.shared);
        shared.pending.lock().insert((job.key.clone(), job.token));
        shared.pending_count.fetch_add(1, AcqRel);
        shared.counts.completion_retries.fetch_add(1, Relaxed);
        let link = Arc::clone(&engine.link);
        let notes = engine.notes.clone();
        let deadline = Instant::now() + shared.retry_window;
        engine.runtime().spawn(async move {
            let mut delay = shared.reconnect_delay;
            let outcome: Result<Option<Record>, String> = loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break Err(format!("redis stayed unavailable for completion_retry_window ({} ms)", shared.retry_window.as_millis()));
                }
                tokio::time::sleep(delay.min(left)).await;
                delay = (delay * 2).min(shared.reconnect_max_delay);
                let cmd = job.cmd(&shared.now_arg());
                let Ok(v) = eval(&link, &COMPLETE, &cmd).await else { continue };
                break match reply("complete", v) {
                    Ok((0, items)) => match stored(&draft, job.token, &items) {
                        Some(r) => Ok(Some(r)),
                        None => Err(format!("unexpected reply {items:?}")),
                    },
                    // The first attempt was written after all (it timed out on the way back).
                    Ok((1, items)) if items.get(1).and_then(int) == Some(4) => Ok(None),
                    Ok((_, items)) => Err(lease_lost(&job.key, job.token, &items).to_string()),
                    Err(e) => Err(e.to_string()),
                };
            };
            shared.pending.lock().remove(&(job.key.clone(), job.token));
            shared.pending_count.fetch_sub(1, AcqRel);
            match outcome {
                Ok(record) => {
                    shared.counts.completions_recovered.fetch_add(1, Relaxed);
                    let note = match record {
                        Some(r) => Note::Completed(job.key.clone(), Some(r)),
                        None => Note::Recheck(job.key.clone()),
                    };
                    let _ = notes.send(note);
                }
                Err(why) => {
                    shared.counts.completions_lost.fetch_add(1, Relaxed);
                    eprintln!(
                        "seawall: the result of idempotency key {:?} (token {}) could not be stored in redis at {} and is lost: {why}",
                        job.key, job.token, shared.target
                    );
                }
            }
        });
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        let pending = self.shared.pending_count.load(Acquire);
        if pending > 0 {
            eprintln!(
                "seawall: a redis store for {} was dropped while {pending} completion(s) were still being retried; \
                 those results are lost (their leases expire and a retry runs the operations again)",
                self.shared.target
            );
        }
    }
}

/// The arguments of one completion, kept for background retries.
struct Completion {
    key: String,
    token: u64,
    entry: Vec<u8>,
    counter: Vec<u8>,
    channel: Vec<u8>,
    ttl: String,
    body: Vec<u8>,
    origin: u64,
}

impl Completion {
    fn cmd(&self, now: &str) -> Cmd {
        evalsha(
            &COMPLETE,
            &[&self.entry, &self.counter],
            &[
                &self.token.to_be_bytes(),
                self.ttl.as_bytes(),
                GRACE_MS.as_bytes(),
                now.as_bytes(),
                &self.channel,
                &self.body,
                &self.origin.to_be_bytes(),
            ],
        )
    }
}

/// What `key` holds (the peek script).
async fn peek_async(s: &Shared, link: &Link, key: &str) -> Result<Peek, Error> {
    let t = tag(key);
    let cmd = evalsha(&PEEK, &[&s.name(b'e', key, &t)], &[s.now_arg().as_bytes()]);
    let v = eval(link, &PEEK, &cmd).await?;
    let (code, items) = reply("peek", v)?;
    Ok(match code {
        0 => Peek::Absent,
        1 => {
            let token = items.get(1).and_then(uint);
            let left = items.get(2).and_then(uint);
            let fp = items.get(3).and_then(fingerprint_of);
            match (token, left, fp) {
                (Some(token), Some(left), Some(fingerprint)) => {
                    Peek::InProgress { token, fingerprint, expires_in: Duration::from_millis(left) }
                }
                _ => return Err(bad_reply("peek", &items)),
            }
        }
        2 => Peek::Completed(decode(key, items.get(1).unwrap_or(&Value::Nil))?),
        _ => return Err(bad_reply("peek", &items)),
    })
}

/// The record a successful complete script stored: `{0, created, expires, fingerprint}`.
fn stored(draft: &Record, token: u64, items: &[Value]) -> Option<Record> {
    let created = uint(items.get(1)?)?;
    let expires = uint(items.get(2)?)?;
    let fp = fingerprint_of(items.get(3)?)?;
    Some(Record::new(draft.to_output(), fp, token, created, expires))
}

impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn check(&self) -> Result<(), Error> {
        self.ping().map(|_| ())
    }

    fn claim(&self, key: &str, fingerprint: &Fingerprint, lease: Duration) -> Result<Claim, Error> {
        let engine = self.engine()?;
        let t = tag(key);
        let s = &self.shared;
        let cmd = evalsha(
            &CLAIM,
            &[&s.name(b'e', key, &t), &s.name(b't', key, &t)],
            &[fingerprint.as_bytes(), ms_arg(lease).as_bytes(), GRACE_MS.as_bytes(), s.now_arg().as_bytes()],
        );
        let link = Arc::clone(&engine.link);
        let v = self.run(&engine, async move { eval(&link, &CLAIM, &cmd).await })?;
        let (code, items) = reply("claim", v)?;
        let field = |i: usize| items.get(i).and_then(uint).ok_or_else(|| bad_reply("claim", &items));
        Ok(match code {
            0 => Claim::Acquired {
                token: field(1)?,
                expires_in: Duration::from_millis(field(2)?),
                took_over: field(3)? == 1,
            },
            1 => {
                let expires_in = Duration::from_millis(field(2)?);
                self.watch(&engine, key, expires_in);
                Claim::InProgress { token: field(1)?, expires_in }
            }
            2 => Claim::Completed(decode(key, items.get(1).unwrap_or(&Value::Nil))?),
            3 => Claim::Mismatch { completed: field(1)? == 1 },
            _ => return Err(bad_reply("claim", &items)),
        })
    }

    fn complete(&self, key: &str, token: u64, output: Output, ttl: Duration) -> Result<Record, Error> {
        let engine = self.engine()?;
        let t = tag(key);
        let s = &self.shared;
        let draft = Record::new(output, Fingerprint::NONE, token, 0, 0);
        let job = Arc::new(Completion {
            key: key.to_owned(),
            token,
            entry: s.name(b'e', key, &t),
            counter: s.name(b't', key, &t),
            channel: s.name(b'n', key, &t),
            ttl: ms_arg(ttl),
            body: draft.encode(),
            origin: s.origin,
        });
        let cmd = job.cmd(&s.now_arg());
        let link = Arc::clone(&engine.link);
        match self.run(&engine, async move { eval(&link, &COMPLETE, &cmd).await }) {
            Ok(v) => {
                let (code, items) = reply("complete", v)?;
                match code {
                    0 => {
                        let record = stored(&draft, token, &items).ok_or_else(|| bad_reply("complete", &items))?;
                        s.notify(&StoreEvent::Completed { key, record: Some(&record) });
                        Ok(record)
                    }
                    1 => Err(lease_lost(key, token, &items)),
                    _ => Err(bad_reply("complete", &items)),
                }
            }
            Err(e) if !s.retry_window.is_zero() && matches!(e, Error::StoreUnavailable(_)) => {
                self.retry_completion(&engine, job, draft);
                Err(Error::StoreUnavailable(format!(
                    "{}; the result of idempotency key {key:?} (token {token}) is not stored yet: it is retried in \
                     the background for up to {} ms while the lease holds (the lease is kept meanwhile)",
                    message(e),
                    s.retry_window.as_millis()
                )))
            }
            Err(e) => Err(e),
        }
    }

    fn release(&self, key: &str, token: u64) -> Result<(), Error> {
        let s = &self.shared;
        if s.pending_count.load(Acquire) > 0 && s.pending.lock().contains(&(key.to_owned(), token)) {
            return Err(Error::StoreUnavailable(format!(
                "the result of idempotency key {key:?} (token {token}) is still being written in the background; \
                 the lease is kept so that result is not thrown away"
            )));
        }
        let engine = self.engine()?;
        let t = tag(key);
        let cmd = evalsha(
            &RELEASE,
            &[&s.name(b'e', key, &t), &s.name(b't', key, &t)],
            &[&token.to_be_bytes(), s.now_arg().as_bytes(), &s.name(b'n', key, &t), &s.origin.to_be_bytes()],
        );
        let link = Arc::clone(&engine.link);
        let v = self.run(&engine, async move { eval(&link, &RELEASE, &cmd).await })?;
        match reply("release", v)? {
            (0, _) => {
                s.notify(&StoreEvent::Released { key });
                Ok(())
            }
            (1, items) => Err(lease_lost(key, token, &items)),
            (_, items) => Err(bad_reply("release", &items)),
        }
    }

    fn renew(&self, key: &str, token: u64, lease: Duration) -> Result<Duration, Error> {
        let engine = self.engine()?;
        let t = tag(key);
        let s = &self.shared;
        let cmd = evalsha(
            &RENEW,
            &[&s.name(b'e', key, &t), &s.name(b't', key, &t)],
            &[&token.to_be_bytes(), ms_arg(lease).as_bytes(), GRACE_MS.as_bytes(), s.now_arg().as_bytes()],
        );
        let link = Arc::clone(&engine.link);
        let v = self.run(&engine, async move { eval(&link, &RENEW, &cmd).await })?;
        match reply("renew", v)? {
            (0, items) => {
                items.get(1).and_then(uint).map(Duration::from_millis).ok_or_else(|| bad_reply("renew", &items))
            }
            (1, items) => Err(lease_lost(key, token, &items)),
            (_, items) => Err(bad_reply("renew", &items)),
        }
    }

    fn peek(&self, key: &str) -> Result<Peek, Error> {
        let engine = self.engine()?;
        let (shared, link) = (Arc::clone(&self.shared), Arc::clone(&engine.link));
        let key = key.to_owned();
        self.run(&engine, async move { peek_async(&shared, &link, &key).await })
    }

    fn subscribe(&self, listener: StoreListener) -> SubscriptionId {
        let s = &self.shared;
        let id = SubscriptionId(s.next_subscription.fetch_add(1, Relaxed));
        let mut l = s.listeners.lock();
        let mut v: Vec<_> = l.as_ref().clone();
        v.push((id, listener));
        *l = Arc::new(v);
        id
    }

    fn unsubscribe(&self, id: SubscriptionId) -> bool {
        let mut l = self.shared.listeners.lock();
        let before = l.len();
        let v: Vec<_> = l.iter().filter(|(i, _)| *i != id).cloned().collect();
        let removed = v.len() != before;
        *l = Arc::new(v);
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(prefix: &str) -> RedisStore {
        RedisStore::new(RedisStoreConfig { prefix: prefix.into(), ..RedisStoreConfig::default() }).unwrap()
    }

    #[test]
    fn names_share_one_hash_tag_and_map_back() {
        let s = store("p:");
        for key in ["order-42", "}{odd}", "é", &"k".repeat(255)] {
            let n = s.key_names(key);
            let t = String::from_utf8(tag(key).to_vec()).unwrap();
            assert_eq!(n.entry, format!("p:{{{t}}}:e:{key}"));
            assert_eq!(n.counter, format!("p:{{{t}}}:t:{key}"));
            assert_eq!(s.shared.key_of_channel(n.channel.as_bytes()).as_deref(), Some(key));
        }
        assert_eq!(s.shared.key_of_channel(b"other:{00000000}:n:x"), None);
        assert_eq!(s.shared.key_of_channel(b"p:{00000000}:n:x"), None, "a tag that is not the key's");
    }

    #[test]
    fn replies_map_to_lease_lost_reasons() {
        let e = lease_lost("k", 7, &[Value::Int(1), Value::Int(2), Value::Int(9)]);
        assert!(e.to_string().contains("another owner holds the key now (token 9)"), "{e}");
        let e = lease_lost("k", 7, &[Value::Int(1), Value::Int(0), Value::Int(0)]);
        assert!(e.to_string().contains("no longer exists"), "{e}");
    }

    #[test]
    fn scripts_have_distinct_hashes() {
        let all = [&*CLAIM, &*COMPLETE, &*RELEASE, &*RENEW, &*PEEK];
        let hashes: HashSet<&str> = all.iter().map(|s| s.sha.as_str()).collect();
        assert_eq!(hashes.len(), 5);
        assert!(all.iter().all(|s| s.source.starts_with("-- seawall RedisStore")));
    }

    /// The scripts' CRC-32C table is the CRC-32C table (a wrong entry would only show on
    /// the records whose CRC passes through it).
    #[test]
    fn the_scripts_crc_table_is_crc32c() {
        let src = include_str!("redis/prelude.lua");
        let start = src.find("CRC32C = {").expect("the table") + "CRC32C = {".len();
        let end = start + src[start..].find('}').unwrap();
        let got: Vec<u32> = src[start..end]
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| u32::from_str_radix(t.trim_start_matches("0x"), 16).unwrap())
            .collect();
        let want: Vec<u32> = (0..256u32)
            .map(|i| (0..8).fold(i, |c, _| (c >> 1) ^ (0x82F6_3B78 & (c & 1).wrapping_neg())))
            .collect();
        assert_eq!(got, want);
    }
}
