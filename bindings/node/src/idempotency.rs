//! The idempotency cache: the core's `IdempotencyCache`, its memory store, records,
//! leases and waiters, for the JS layer (`node/index.js`, `IdempotencyCache`).
//!
//! Two surfaces:
//!
//! - **`run`'s hot path**: plain Node-API functions bound to the cache (`hotPath()`, see
//!   `hot.rs` for why), over handles: a lease is a slot number in a table on this side,
//!   so a fresh run creates no native object.
//!
//!   | function | returns |
//!   |---|---|
//!   | `begin(key, fingerprint, text)` | `(slot << 1) \| tookOver` (execute), `-(waiterId + 1)` (in progress, waiting), a string (replay of a JSON result, when `text`), `[Buffer, contentType, isError]` (another replay), or the `Error` (mismatch, in progress when rejecting, bad key, store unavailable), returned, not thrown |
//!   | `complete(slot, result, contentType)` | `wakePending`, or the `Error` |
//!   | `fail(slot, result?, contentType?)` | `wakePending`, or the `Error` |
//!   | `release(slot)` / `abandon(slot)` | `wakePending`, or the `Error` |
//!   | `renew(slot)` | ms until the renewed lease expires, or the `Error` |
//!   | `take(text)` | the waiters resolved since the last call: a flat array of `id, kind, value` (kind 0 execute: the slot as `begin` encodes it, or a `Lease` for a low-level waiter; 1 replay: as `begin`, or a `Record`; 2 the `Error`), or `null` |
//!
//!   `result` is a string (UTF-8) or a `Uint8Array`; `contentType` is 0
//!   (`application/json`), 1 (`application/octet-stream`) or a string.
//!
//! - **the low-level surface** (`beginRaw`, `completeRaw`, ..., `NativeLease`,
//!   `NativeRecord`, `NativeWaiter`): native objects, for the conformance runner and
//!   advanced users. Speed does not matter there.
//!
//! ## Waiting without blocking the event loop
//!
//! A duplicate that finds its key in progress gets a core `Waiter`. Its outcome arrives
//! through `Waiter::on_done`, on whatever thread resolved it: the JS thread itself (the
//! owner completed or released, a `ManualClock` advanced, the waiter was cancelled) or the
//! core's timer thread (a lease expiry or a wait timeout on the system clock). The callback
//! only queues the outcome (napi values are not `Send`) and wakes the JS thread through one
//! thread-safe function per JS environment (`NativeWakeup`), coalesced by a flag. The JS
//! layer drains the queues when woken, and also right after its own calls that can resolve
//! waiters (`complete`, `release`, `fail`, `ManualClock#advance`...; `wakePending` tells),
//! so an in-process completion reaches its duplicates without a trip through libuv.
//! Nothing polls. The thread-safe function keeps the event loop alive only while the JS
//! layer holds it (`hold(true)`: waiters on the system clock are pending).

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::collections::HashMap;
use std::ffi::c_void;
use std::ptr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::*};
use std::time::Duration;
use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use seawall::idempotency::{Acquired, Begin, Failed, Fingerprint, Output, WaitPoll};
use seawall::store::redis::{RedisStore, RedisStoreConfig};
use seawall::store::{MemoryStore, MemoryStoreConfig, Peek, SharedStore};
use seawall::{ConfigValue, DurationUnit, Error as CoreError, IdempotencyCache, IdempotencyConfig, Lease, Naming, Record, Style, Waiter};

use crate::breaker::RawValue;
use crate::clock::ManualClock;
use crate::errors::{config_value, duration_ms, guard, js_error, throw};
use crate::hot::{args, bound_function, guarded, Callback};
use crate::raw;

/// Node's conventions: camelCase names, durations in milliseconds.
pub(crate) const NODE_STYLE: Style = Style { naming: Naming::Camel, unit: DurationUnit::Millis };

const JSON: &str = "application/json";
const OCTETS: &str = "application/octet-stream";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn invalid(env: sys::napi_env, message: String) -> Error {
    throw(env, CoreError::InvalidArgument(message))
}

// ---------------------------------------------------------------------------------------
// Waking the JS thread
// ---------------------------------------------------------------------------------------

struct Tsfn(sys::napi_threadsafe_function);

// SAFETY: a thread-safe function handle may be used from any thread (that is its point);
// it is only used under `Wakeup::tsfn`'s lock, which its finalizer takes before clearing it.
unsafe impl Send for Tsfn {}

/// One per JS environment: wakes the JS thread to drain resolved waiters.
pub(crate) struct Wakeup {
    /// `None` once Node finalized the thread-safe function (environment teardown).
    tsfn: Mutex<Option<Tsfn>>,
    /// Set when an outcome was queued and not drained yet; coalesces wake-ups.
    scheduled: AtomicBool,
}

impl Wakeup {
    fn wake(&self) {
        if self.scheduled.swap(true, AcqRel) {
            return; // a wake-up is already on its way (or JS is about to drain)
        }
        let tsfn = lock(&self.tsfn);
        if let Some(t) = tsfn.as_ref() {
            // Non-blocking, unbounded queue: never waits, whatever thread this is.
            unsafe { sys::napi_call_threadsafe_function(t.0, ptr::null_mut(), sys::ThreadsafeFunctionCallMode::nonblocking) };
        }
    }

    #[inline]
    fn pending(&self) -> bool {
        self.scheduled.load(Acquire)
    }
}

unsafe extern "C" fn wakeup_finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Arc<Wakeup>` leaked for the thread-safe function.
    let w = unsafe { Arc::from_raw(data as *const Wakeup) };
    *lock(&w.tsfn) = None;
}

/// The JS thread's wake-up for idempotency waiters (one per environment).
#[napi]
pub struct NativeWakeup {
    inner: Arc<Wakeup>,
}

#[napi]
impl NativeWakeup {
    /// `drain` is called, with no arguments, on the JS thread after waiters were resolved.
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, drain: Unknown<'_>) -> Result<Self> {
        if drain.get_type()? != ValueType::Function {
            return Err(invalid(env.raw(), "NativeWakeup needs a function".into()));
        }
        let inner = Arc::new(Wakeup { tsfn: Mutex::new(None), scheduled: AtomicBool::new(false) });
        let name = raw::string(env.raw(), b"seawall idempotency waiters")?;
        let data = Arc::into_raw(Arc::clone(&inner)) as *mut c_void;
        let mut tsfn = ptr::null_mut();
        let status = unsafe {
            sys::napi_create_threadsafe_function(
                env.raw(),
                drain.raw(),
                ptr::null_mut(),
                name,
                0,
                1,
                data,
                Some(wakeup_finalize),
                ptr::null_mut(),
                None,
                &mut tsfn,
            )
        };
        if status != sys::Status::napi_ok {
            unsafe { drop(Arc::from_raw(data as *const Wakeup)) };
            return Err(Error::new(Status::GenericFailure, "cannot create the waiters' thread-safe function"));
        }
        // It keeps the event loop alive only while `hold(true)`.
        unsafe { sys::napi_unref_threadsafe_function(env.raw(), tsfn) };
        *lock(&inner.tsfn) = Some(Tsfn(tsfn));
        Ok(Self { inner })
    }

    /// Clears the wake-up flag; JS calls it first when it drains. True when it was set.
    #[napi(catch_unwind)]
    pub fn clear(&self) -> bool {
        self.inner.scheduled.swap(false, AcqRel)
    }

    /// True when outcomes were queued since the last `clear`.
    #[napi(getter, catch_unwind)]
    pub fn pending(&self) -> bool {
        self.inner.pending()
    }

    /// Keeps the event loop alive (`true`: waiters on the system clock are pending) or not.
    #[napi(catch_unwind)]
    pub fn hold(&self, env: Env, on: bool) {
        let tsfn = lock(&self.inner.tsfn);
        if let Some(t) = tsfn.as_ref() {
            unsafe {
                if on {
                    sys::napi_ref_threadsafe_function(env.raw(), t.0);
                } else {
                    sys::napi_unref_threadsafe_function(env.raw(), t.0);
                }
            }
        }
    }
}

/// A waiter's outcome, queued by its callback until JS takes it.
struct Resolved {
    id: u32,
    /// A low-level waiter (its lease and record become native objects).
    raw: bool,
    outcome: std::result::Result<Acquired, CoreError>,
}

#[derive(Default)]
struct WaitQueue {
    items: Mutex<Vec<Resolved>>,
}

fn listen(waiter: &Waiter, id: u32, raw: bool, queue: &Arc<WaitQueue>, wakeup: &Arc<Wakeup>) {
    let (q, w) = (Arc::clone(queue), Arc::clone(wakeup));
    waiter.on_done(move |outcome| {
        lock(&q.items).push(Resolved { id, raw, outcome });
        w.wake();
    });
}

// ---------------------------------------------------------------------------------------
// The cache
// ---------------------------------------------------------------------------------------

/// Leases of `run` calls, by slot.
#[derive(Default)]
struct Leases {
    entries: Vec<Option<Lease>>,
    free: Vec<u32>,
}

/// Largest slot that fits `(slot << 1) | flag` in an i32.
const MAX_SLOTS: u32 = (1 << 30) - 1;

impl Leases {
    fn insert(&mut self, lease: Lease) -> Option<u32> {
        let i = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = Some(lease);
                i
            }
            None => {
                if self.entries.len() as u32 > MAX_SLOTS {
                    return None;
                }
                self.entries.push(Some(lease));
                (self.entries.len() - 1) as u32
            }
        };
        Some(i)
    }

    fn take(&mut self, i: u32) -> Option<Lease> {
        let l = self.entries.get_mut(i as usize)?.take()?;
        self.free.push(i);
        Some(l)
    }

    fn get(&self, i: u32) -> Option<Lease> {
        self.entries.get(i as usize)?.clone()
    }
}

/// Waiters of `run` calls, by id, until their outcome is taken (shared with the tasks of a
/// remote store, which register waiters when they resolve).
#[derive(Default)]
struct RunWaiters {
    map: Mutex<HashMap<u32, Waiter>>,
    next_id: AtomicU32,
}

impl RunWaiters {
    fn next_id(&self) -> u32 {
        self.next_id.fetch_add(1, Relaxed) & ((1 << 30) - 1)
    }
}

/// What the class and the hot-path functions share (the JS thread only).
pub(crate) struct IdemCore {
    cache: IdempotencyCache,
    leases: RefCell<Leases>,
    waiters: Arc<RunWaiters>,
    queue: Arc<WaitQueue>,
    wakeup: Arc<Wakeup>,
    /// The store does I/O (Redis): `run` calls it off the event loop (`*Async` methods),
    /// and leases reach JS as `NativeLease` objects instead of slots.
    remote: bool,
}

impl Drop for IdemCore {
    fn drop(&mut self) {
        lock(&self.waiters.map).clear(); // cancels them
        let left = std::mem::take(&mut *lock(&self.queue.items));
        for r in left {
            if let Ok(Acquired::Execute(lease)) = r.outcome {
                // Handed the key, but nobody will run the operation: let the next duplicate.
                let _ = self.cache.release(&lease);
            }
        }
    }
}

impl IdemCore {
    fn add_waiter(&self, w: Waiter) -> u32 {
        add_run_waiter(&self.waiters, w, &self.queue, &self.wakeup)
    }

    fn lease_slot(&self, env: sys::napi_env, lease: Lease) -> Result<raw::Value> {
        let took_over = u32::from(lease.took_over());
        match self.leases.borrow_mut().insert(lease) {
            Some(slot) => raw::int(env, ((slot << 1) | took_over) as i32),
            None => js_error(env, &CoreError::InvalidArgument("too many runs in flight".into())),
        }
    }

    fn take_lease(&self, env: sys::napi_env, slot: raw::Value) -> Result<Lease> {
        let i = slot_arg(env, slot)?;
        self.leases.borrow_mut().take(i).ok_or_else(|| invalid(env, format!("no lease in slot {i}")))
    }
}

fn add_run_waiter(waiters: &RunWaiters, w: Waiter, queue: &Arc<WaitQueue>, wakeup: &Arc<Wakeup>) -> u32 {
    let id = waiters.next_id();
    // The outcome may be queued at once (from another thread, or here if it is resolved
    // already); JS takes it only on its own thread, after this call returned.
    listen(&w, id, false, queue, wakeup);
    lock(&waiters.map).insert(id, w);
    id
}

fn slot_arg(env: sys::napi_env, v: raw::Value) -> Result<u32> {
    let mut out = 0u32;
    match unsafe { sys::napi_get_value_uint32(env, v, &mut out) } {
        sys::Status::napi_ok => Ok(out),
        _ => Err(raw::type_error(env, "slot", v, "a number")),
    }
}

/// A fingerprint argument: `undefined`/`null` (none), a string (its UTF-8 bytes) or a
/// `Uint8Array` (its bytes), hashed by the core.
fn fingerprint_arg(env: sys::napi_env, v: raw::Value) -> Result<Fingerprint> {
    match raw::type_of(env, v) {
        sys::ValueType::napi_undefined | sys::ValueType::napi_null => Ok(Fingerprint::NONE),
        sys::ValueType::napi_string => {
            Ok(raw::with_str(env, v, |s| Fingerprint::of(s.as_bytes()))?.unwrap_or(Fingerprint::NONE))
        }
        _ => match raw::uint8_bytes(env, v)? {
            Some(bytes) => Ok(Fingerprint::of(bytes)),
            None => Err(raw::type_error(env, "fingerprint", v, "a string, a Buffer or a Uint8Array")),
        },
    }
}

/// A result argument: a string (UTF-8) or a `Uint8Array`.
fn result_arg(env: sys::napi_env, v: raw::Value) -> Result<Vec<u8>> {
    if let Some(bytes) = raw::string_bytes(env, v)? {
        return Ok(bytes);
    }
    match raw::uint8_bytes(env, v)? {
        Some(bytes) => Ok(bytes.to_vec()),
        None => Err(raw::type_error(env, "result", v, "a string, a Buffer or a Uint8Array")),
    }
}

/// A content type argument: 0 (`application/json`), 1 (`application/octet-stream`) or a string.
fn content_type_arg(env: sys::napi_env, v: raw::Value) -> Result<String> {
    let mut n = 0u32;
    if unsafe { sys::napi_get_value_uint32(env, v, &mut n) } == sys::Status::napi_ok {
        return Ok(if n == 0 { JSON } else { OCTETS }.to_owned());
    }
    match raw::read_string(env, v)? {
        Some(bytes) => String::from_utf8(bytes).map_err(|e| invalid(env, e.to_string())),
        None => Err(raw::type_error(env, "contentType", v, "a string")),
    }
}

/// A replayed record as `run` takes it: the JSON text when `text` and the record holds a
/// JSON result, else `[Buffer, contentType, isError]`.
fn replay_value(env: sys::napi_env, r: &Record, text: bool) -> Result<raw::Value> {
    if text && !r.is_error() && r.content_type() == JSON {
        return raw::string(env, r.result());
    }
    let arr = raw::array(env, 3)?;
    raw::set_element(env, arr, 0, raw::buffer_copy(env, r.result())?)?;
    raw::set_element(env, arr, 1, raw::string(env, r.content_type().as_bytes())?)?;
    raw::set_element(env, arr, 2, raw::boolean(env, r.is_error())?)?;
    Ok(arr)
}

// ---- the hot path ----

const FUNCTIONS: &[(&str, Callback)] = &[
    ("begin", begin),
    ("complete", complete),
    ("fail", fail),
    ("release", release),
    ("abandon", abandon),
    ("renew", renew),
    ("take", take),
];

unsafe extern "C" fn begin(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let (argv, _, core) = unsafe { args::<3, IdemCore>(env, info)? };
        let fp = fingerprint_arg(env, argv[1])?;
        let text = raw::is_true(env, argv[2]);
        let Some(outcome) = raw::with_str(env, argv[0], |key| core.cache.begin(key, &fp))? else {
            return js_error(env, &key_type_error(env, argv[0]));
        };
        match outcome {
            Ok(Begin::Execute(lease)) => core.lease_slot(env, lease),
            Ok(Begin::Replay(r)) => replay_value(env, &r, text),
            Ok(Begin::InProgress(ip)) => match ip.waiter {
                Some(w) => raw::int(env, -(core.add_waiter(w) as i32) - 1),
                None => js_error(env, &ip.to_error()),
            },
            Ok(Begin::Mismatch(m)) => js_error(env, &m.to_error()),
            Err(e) => js_error(env, &e),
        }
    })
}

fn key_type_error(env: sys::napi_env, v: raw::Value) -> CoreError {
    let t = raw::type_name(raw::type_of(env, v));
    CoreError::InvalidArgument(format!("key = <{t}>: an idempotency key is a string"))
}

/// `wakePending` (true: JS should drain the waiters' queues) or the error, returned.
fn done(env: sys::napi_env, core: &IdemCore, r: std::result::Result<(), CoreError>) -> Result<raw::Value> {
    match r {
        Ok(()) => raw::boolean(env, core.wakeup.pending()),
        Err(e) => js_error(env, &e),
    }
}

unsafe extern "C" fn complete(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let (argv, _, core) = unsafe { args::<3, IdemCore>(env, info)? };
        let result = result_arg(env, argv[1])?;
        let content_type = content_type_arg(env, argv[2])?;
        let lease = core.take_lease(env, argv[0])?;
        done(env, core, core.cache.complete(&lease, Output::new(result, content_type)).map(drop))
    })
}

unsafe extern "C" fn fail(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let (argv, _, core) = unsafe { args::<3, IdemCore>(env, info)? };
        let output = match raw::type_of(env, argv[1]) {
            sys::ValueType::napi_undefined => None,
            _ => Some(Output::new(result_arg(env, argv[1])?, content_type_arg(env, argv[2])?)),
        };
        let lease = core.take_lease(env, argv[0])?;
        done(env, core, core.cache.fail(&lease, output).map(drop))
    })
}

unsafe extern "C" fn release(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let (argv, _, core) = unsafe { args::<1, IdemCore>(env, info)? };
        let lease = core.take_lease(env, argv[0])?;
        done(env, core, core.cache.release(&lease))
    })
}

unsafe extern "C" fn abandon(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let (argv, _, core) = unsafe { args::<1, IdemCore>(env, info)? };
        let lease = core.take_lease(env, argv[0])?;
        core.cache.abandon(&lease);
        done(env, core, Ok(()))
    })
}

unsafe extern "C" fn renew(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let (argv, _, core) = unsafe { args::<1, IdemCore>(env, info)? };
        let i = slot_arg(env, argv[0])?;
        let lease = core.leases.borrow().get(i).ok_or_else(|| invalid(env, format!("no lease in slot {i}")))?;
        match core.cache.renew(&lease) {
            Ok(left) => raw::double(env, duration_ms(left)),
            Err(e) => js_error(env, &e),
        }
    })
}

unsafe extern "C" fn take(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    guarded(env, || {
        let (argv, _, core) = unsafe { args::<1, IdemCore>(env, info)? };
        let text = raw::is_true(env, argv[0]);
        let items = std::mem::take(&mut *lock(&core.queue.items));
        if items.is_empty() {
            return raw::null(env);
        }
        let arr = raw::array(env, items.len() * 3)?;
        let mut i = 0;
        for r in items {
            if !r.raw {
                lock(&core.waiters.map).remove(&r.id);
            }
            let (kind, value) = match r.outcome {
                Ok(Acquired::Execute(lease)) if r.raw || core.remote => {
                    (0, NativeLease { lease }.into_instance(&Env::from_raw(env))?.value)
                }
                Ok(Acquired::Execute(lease)) => (0, core.lease_slot(env, lease)?),
                Ok(Acquired::Replay(record)) if r.raw => {
                    (1, NativeRecord { record }.into_instance(&Env::from_raw(env))?.value)
                }
                Ok(Acquired::Replay(record)) => (1, replay_value(env, &record, text)?),
                Err(e) => (2, js_error(env, &e)?),
            };
            raw::set_element(env, arr, i, raw::int(env, r.id as i32)?)?;
            raw::set_element(env, arr, i + 1, raw::int(env, kind)?)?;
            raw::set_element(env, arr, i + 2, value)?;
            i += 3;
        }
        Ok(arr)
    })
}

// ---- the class ----

/// Counts of one cache (`cache.stats()`); see `IdempotencyStats` in the core.
#[napi(object)]
pub struct IdempotencyStatsJs {
    pub executed: f64,
    pub replayed: f64,
    pub in_progress: f64,
    pub mismatched: f64,
    pub waited: f64,
    pub taken_over: f64,
    pub completed: f64,
    pub released: f64,
    pub abandoned: f64,
    pub lease_lost: f64,
    pub store_errors: f64,
    pub unprotected: f64,
}

/// The native idempotency cache behind the JS `IdempotencyCache`.
#[napi]
pub struct NativeIdempotencyCache {
    core: Rc<IdemCore>,
}

/// Reads every key of a JS options object through `set` (skipping `skip` and `undefined`).
fn each_option(
    options: Option<Object<'_>>,
    skip: &[&str],
    mut set: impl FnMut(&str, ConfigValue) -> Result<()>,
) -> Result<()> {
    let Some(opts) = options else { return Ok(()) };
    for key in Object::keys(&opts)? {
        if skip.contains(&key.as_str()) {
            continue;
        }
        let Some(v) = opts.get::<Unknown<'_>>(&key)? else { continue };
        if v.get_type()? == ValueType::Undefined {
            continue;
        }
        set(&key, config_value(&v)?)?;
    }
    Ok(())
}

#[napi]
impl NativeIdempotencyCache {
    /// Builds a cache from `options` (camelCase names, ms) through the core's
    /// `IdempotencyConfig::set`; `clock` (a `ManualClock`, or the system clock) and `store`
    /// (a `NativeMemoryStore`, or a new memory store) are separate arguments.
    #[napi(constructor, catch_unwind)]
    pub fn new(
        env: Env,
        options: Option<Object<'_>>,
        clock: Option<&ManualClock>,
        store: Option<Unknown<'_>>,
        wakeup: &NativeWakeup,
    ) -> Result<Self> {
        guard(env.raw(), || {
            let config = Self::config(env, options, clock, store)?;
            let cache = IdempotencyCache::new(config).map_err(|e| throw(env.raw(), e.into()))?;
            Ok(Self::wrap(cache, wakeup))
        })
    }

    /// The hot-path functions bound to this cache (see the module doc).
    /// (A cache of a registry is made by `NativeRegistry#idempotencyCache`.)
    #[napi(catch_unwind)]
    pub fn hot_path(&self, env: Env) -> Result<Object<'_>> {
        let mut obj = Object::new(&env)?;
        for (name, f) in FUNCTIONS {
            let value = bound_function(env.raw(), name, *f, &self.core)?;
            obj.set(name, RawValue(value))?;
        }
        Ok(obj)
    }

    #[napi(getter, catch_unwind)]
    pub fn name(&self) -> String {
        self.core.cache.name().to_owned()
    }

    /// Whether the operation's errors are stored (`cacheErrors`).
    #[napi(getter, catch_unwind)]
    pub fn cache_errors(&self) -> bool {
        self.core.cache.config().cache_errors
    }

    /// The kind of store (`'memory'`, ...).
    #[napi(getter, catch_unwind)]
    pub fn store_kind(&self) -> &'static str {
        self.core.cache.store().kind()
    }

    /// Duplicates waiting now.
    #[napi(getter, catch_unwind)]
    pub fn waiting(&self) -> u32 {
        u32::try_from(self.core.cache.waiting()).unwrap_or(u32::MAX)
    }

    /// Ms on the cache's clock.
    #[napi(catch_unwind)]
    pub fn now(&self) -> f64 {
        duration_ms(self.core.cache.clock().now())
    }

    /// The configuration in force, as JS options (durations in ms).
    #[napi(catch_unwind)]
    pub fn options(&self, env: Env) -> Result<Object<'_>> {
        let c = self.core.cache.config();
        let mut o = Object::new(&env)?;
        o.set("name", c.name.as_str())?;
        o.set("ttl", duration_ms(c.ttl))?;
        o.set("lease", duration_ms(c.lease))?;
        o.set("onDuplicate", c.on_duplicate.as_str())?;
        o.set("waitTimeout", duration_ms(c.effective_wait_timeout()))?;
        o.set("cacheErrors", c.cache_errors)?;
        o.set("maxResultBytes", f64::from(c.max_result_bytes))?;
        o.set("onStoreError", c.on_store_error.as_str())?;
        o.set("critical", c.critical())?;
        if c.store.is_none() {
            o.set("maxEntries", c.memory.max_entries as f64)?;
            o.set("maxBytes", c.memory.max_bytes as f64)?;
        }
        Ok(o)
    }

    /// `begin` with native objects: `{ kind, lease?, record?, retryAfter?, waiter?, completed? }`.
    #[napi(catch_unwind)]
    pub fn begin_raw<'e>(&self, env: &'e Env, key: Unknown<'_>, fingerprint: Unknown<'_>) -> Result<Object<'e>> {
        let e = env.raw();
        guard(e, || {
            let fp = fingerprint_arg(e, fingerprint.raw())?;
            let Some(outcome) = raw::with_str(e, key.raw(), |k| self.core.cache.begin(k, &fp))? else {
                return Err(throw(e, key_type_error(e, key.raw())));
            };
            let begin = outcome.map_err(|err| throw(e, err))?;
            let mut o = Object::new(env)?;
            o.set("kind", begin.as_str())?;
            match begin {
                Begin::Execute(lease) => o.set("lease", NativeLease { lease })?,
                Begin::Replay(record) => o.set("record", NativeRecord { record })?,
                Begin::InProgress(ip) => {
                    o.set("retryAfter", duration_ms(ip.retry_after))?;
                    match ip.waiter {
                        Some(waiter) => o.set("waiter", NativeWaiter { waiter, core: Rc::clone(&self.core) })?,
                        None => o.set("error", RawValue(js_error(e, &ip.to_error())?))?,
                    }
                }
                Begin::Mismatch(m) => {
                    o.set("completed", m.completed)?;
                    o.set("error", RawValue(js_error(e, &m.to_error())?))?;
                }
            }
            Ok(o)
        })
    }

    /// Stores `result` (string or bytes) for the lease; returns the record.
    #[napi(catch_unwind)]
    pub fn complete_raw(
        &self,
        env: Env,
        lease: &NativeLease,
        result: Unknown<'_>,
        content_type: String,
        metadata: Option<Vec<Vec<String>>>,
    ) -> Result<NativeRecord> {
        let e = env.raw();
        guard(e, || {
            let output = output_of(e, result.raw(), content_type, metadata)?;
            let record = self.core.cache.complete(&lease.lease, output).map_err(|err| throw(e, err))?;
            Ok(NativeRecord { record })
        })
    }

    /// The operation failed: stores the error output (with `cacheErrors`) and returns the
    /// record, or releases the key and returns `null`.
    #[napi(catch_unwind)]
    pub fn fail_raw(
        &self,
        env: Env,
        lease: &NativeLease,
        result: Option<Unknown<'_>>,
        content_type: Option<String>,
        metadata: Option<Vec<Vec<String>>>,
    ) -> Result<Option<NativeRecord>> {
        let e = env.raw();
        guard(e, || {
            let output = match result {
                Some(r) if r.get_type()? != ValueType::Undefined => {
                    Some(output_of(e, r.raw(), content_type.unwrap_or_default(), metadata)?)
                }
                _ => None,
            };
            match self.core.cache.fail(&lease.lease, output).map_err(|err| throw(e, err))? {
                Failed::Released => Ok(None),
                Failed::Stored(record) => Ok(Some(NativeRecord { record })),
            }
        })
    }

    #[napi(catch_unwind)]
    pub fn release_raw(&self, env: Env, lease: &NativeLease) -> Result<()> {
        guard(env.raw(), || self.core.cache.release(&lease.lease).map_err(|e| throw(env.raw(), e)))
    }

    /// Renews the lease; returns ms until it expires.
    #[napi(catch_unwind)]
    pub fn renew_raw(&self, env: Env, lease: &NativeLease) -> Result<f64> {
        guard(env.raw(), || self.core.cache.renew(&lease.lease).map(duration_ms).map_err(|e| throw(env.raw(), e)))
    }

    #[napi(catch_unwind)]
    pub fn abandon_raw(&self, env: Env, lease: &NativeLease) -> Result<()> {
        guard(env.raw(), || {
            self.core.cache.abandon(&lease.lease);
            Ok(())
        })
    }

    /// Ms until the lease expires (0 once it has).
    #[napi(catch_unwind)]
    pub fn remaining(&self, lease: &NativeLease) -> f64 {
        duration_ms(self.core.cache.remaining(&lease.lease))
    }

    /// What the key holds, changing nothing: `{ state, token?, expiresIn?, fingerprint?, record? }`.
    #[napi(catch_unwind)]
    pub fn peek<'e>(&self, env: &'e Env, key: Unknown<'_>) -> Result<Object<'e>> {
        let e = env.raw();
        guard(e, || {
            let Some(p) = raw::with_str(e, key.raw(), |k| self.core.cache.peek(k))? else {
                return Err(throw(e, key_type_error(e, key.raw())));
            };
            let p = p.map_err(|err| throw(e, err))?;
            let mut o = Object::new(env)?;
            o.set("state", p.state())?;
            match p {
                Peek::Absent => {}
                Peek::InProgress { token, fingerprint, expires_in } => {
                    o.set("token", token as f64)?;
                    o.set("fingerprint", fingerprint_hex(&fingerprint))?;
                    o.set("expiresIn", duration_ms(expires_in))?;
                }
                Peek::Completed(record) => o.set("record", NativeRecord { record })?,
            }
            Ok(o)
        })
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> IdempotencyStatsJs {
        let s = self.core.cache.stats();
        IdempotencyStatsJs {
            executed: s.executed as f64,
            replayed: s.replayed as f64,
            in_progress: s.in_progress as f64,
            mismatched: s.mismatched as f64,
            waited: s.waited as f64,
            taken_over: s.taken_over as f64,
            completed: s.completed as f64,
            released: s.released as f64,
            abandoned: s.abandoned as f64,
            lease_lost: s.lease_lost as f64,
            store_errors: s.store_errors as f64,
            unprotected: s.unprotected as f64,
        }
    }
}

impl NativeIdempotencyCache {
    /// The cache config of a JS options object (every key through the core's `set`).
    pub(crate) fn config(
        env: Env,
        options: Option<Object<'_>>,
        clock: Option<&ManualClock>,
        store: Option<Unknown<'_>>,
    ) -> Result<IdempotencyConfig> {
        let mut config = IdempotencyConfig::with_style(NODE_STYLE);
        if let Some(c) = clock {
            config = config.with_clock(c.shared());
        }
        if let Some(s) = store_arg(&env, store)? {
            config = config.with_store(s);
        }
        each_option(options, &["clock", "store", "serializer"], |key, value| {
            config.set(key, value).map_err(|e| throw(env.raw(), e.into()))
        })?;
        Ok(config)
    }

    /// A JS-side handle on a core cache (a new one, or one a registry holds).
    pub(crate) fn wrap(cache: IdempotencyCache, wakeup: &NativeWakeup) -> Self {
        let remote = cache.store().kind() != "memory";
        Self {
            core: Rc::new(IdemCore {
                cache,
                leases: RefCell::new(Leases::default()),
                waiters: Arc::default(),
                queue: Arc::new(WaitQueue::default()),
                wakeup: Arc::clone(&wakeup.inner),
                remote,
            }),
        }
    }

    fn task(&self, op: RemoteOp, text: bool) -> AsyncTask<RemoteTask> {
        let core = &self.core;
        AsyncTask::new(RemoteTask {
            cache: core.cache.clone(),
            op: Some(op),
            text,
            waiters: Arc::clone(&core.waiters),
            queue: Arc::clone(&core.queue),
            wakeup: Arc::clone(&core.wakeup),
        })
    }
}

/// A `store` argument: a `NativeMemoryStore`, a `NativeRedisStore`, or absent.
fn store_arg(env: &Env, store: Option<Unknown<'_>>) -> Result<Option<SharedStore>> {
    let Some(v) = store else { return Ok(None) };
    match v.get_type()? {
        ValueType::Undefined | ValueType::Null => return Ok(None),
        ValueType::Object => {
            if NativeMemoryStore::instance_of(env, &v)? {
                let s = unsafe { ClassInstance::<NativeMemoryStore>::from_napi_value(env.raw(), v.raw())? };
                return Ok(Some(Arc::clone(&s.store) as SharedStore));
            }
            if NativeRedisStore::instance_of(env, &v)? {
                let s = unsafe { ClassInstance::<NativeRedisStore>::from_napi_value(env.raw(), v.raw())? };
                return Ok(Some(Arc::clone(&s.store) as SharedStore));
            }
        }
        _ => {}
    }
    Err(raw::type_error(env.raw(), "store", v.raw(), "a MemoryStore or a RedisStore"))
}

// ---- a remote store: the same calls, off the event loop ----

/// One store call of `run` for a remote store, run on the libuv thread pool (public only
/// because `RemoteTask` is).
pub enum RemoteOp {
    Begin { key: String, fingerprint: Fingerprint },
    Complete { lease: Lease, output: Output },
    Fail { lease: Lease, output: Option<Output> },
    Release { lease: Lease },
    Renew { lease: Lease },
}

pub enum RemoteOut {
    Begin(std::result::Result<Begin, CoreError>),
    Done(std::result::Result<(), CoreError>),
    Renewed(std::result::Result<Duration, CoreError>),
}

/// Runs a blocking store call (a Redis round trip) on a worker thread and resolves a
/// Promise on the JS thread, encoded as the hot path encodes it (see the module doc;
/// leases are `NativeLease` objects). Errors are resolved as values, never rejected.
pub struct RemoteTask {
    cache: IdempotencyCache,
    op: Option<RemoteOp>,
    text: bool,
    waiters: Arc<RunWaiters>,
    queue: Arc<WaitQueue>,
    wakeup: Arc<Wakeup>,
}

impl Task for RemoteTask {
    type Output = RemoteOut;
    type JsValue = RawValue;

    fn compute(&mut self) -> Result<RemoteOut> {
        let c = &self.cache;
        let op = self.op.take().ok_or_else(|| Error::new(Status::GenericFailure, "task ran twice"))?;
        let out = catch_unwind(AssertUnwindSafe(|| match op {
            RemoteOp::Begin { key, fingerprint } => RemoteOut::Begin(c.begin(&key, &fingerprint)),
            RemoteOp::Complete { lease, output } => RemoteOut::Done(c.complete(&lease, output).map(drop)),
            RemoteOp::Fail { lease, output } => RemoteOut::Done(c.fail(&lease, output).map(drop)),
            RemoteOp::Release { lease } => RemoteOut::Done(c.release(&lease)),
            RemoteOp::Renew { lease } => RemoteOut::Renewed(c.renew(&lease)),
        }));
        out.map_err(|p| Error::new(Status::GenericFailure, crate::errors::panic_message(&*p)))
    }

    fn resolve(&mut self, env: Env, out: RemoteOut) -> Result<RawValue> {
        let e = env.raw();
        let v = match out {
            RemoteOut::Begin(Ok(Begin::Execute(lease))) => NativeLease { lease }.into_instance(&env)?.value,
            RemoteOut::Begin(Ok(Begin::Replay(r))) => replay_value(e, &r, self.text)?,
            RemoteOut::Begin(Ok(Begin::InProgress(ip))) => match ip.waiter {
                Some(w) => raw::int(e, -(add_run_waiter(&self.waiters, w, &self.queue, &self.wakeup) as i32) - 1)?,
                None => js_error(e, &ip.to_error())?,
            },
            RemoteOut::Begin(Ok(Begin::Mismatch(m))) => js_error(e, &m.to_error())?,
            RemoteOut::Begin(Err(err)) | RemoteOut::Done(Err(err)) | RemoteOut::Renewed(Err(err)) => js_error(e, &err)?,
            RemoteOut::Done(Ok(())) => raw::boolean(e, self.wakeup.pending())?,
            RemoteOut::Renewed(Ok(left)) => raw::double(e, duration_ms(left))?,
        };
        Ok(RawValue(v))
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<RawValue> {
        Ok(RawValue(js_error(env.raw(), &CoreError::Internal(err.reason))?))
    }
}

#[napi]
impl NativeIdempotencyCache {
    /// True when the store does I/O (Redis): `run` uses the `*Async` calls.
    #[napi(getter, catch_unwind)]
    pub fn remote(&self) -> bool {
        self.core.remote
    }

    /// `begin` on the thread pool: resolves as the hot `begin` returns (a lease is a
    /// `NativeLease`).
    #[napi(catch_unwind)]
    pub fn begin_async(&self, env: Env, key: Unknown<'_>, fingerprint: Unknown<'_>, text: bool) -> Result<AsyncTask<RemoteTask>> {
        let e = env.raw();
        let fp = fingerprint_arg(e, fingerprint.raw())?;
        match raw::with_str(e, key.raw(), str::to_owned)? {
            Some(key) => Ok(self.task(RemoteOp::Begin { key, fingerprint: fp }, text)),
            None => Err(throw(e, key_type_error(e, key.raw()))),
        }
    }

    /// `complete` on the thread pool: resolves with `wakePending` or the `Error`.
    #[napi(catch_unwind)]
    pub fn complete_async(
        &self,
        env: Env,
        lease: &NativeLease,
        result: Unknown<'_>,
        content_type: Unknown<'_>,
    ) -> Result<AsyncTask<RemoteTask>> {
        let e = env.raw();
        let output = Output::new(result_arg(e, result.raw())?, content_type_arg(e, content_type.raw())?);
        Ok(self.task(RemoteOp::Complete { lease: lease.lease.clone(), output }, false))
    }

    /// `fail` on the thread pool (no `result`: release).
    #[napi(catch_unwind)]
    pub fn fail_async(
        &self,
        env: Env,
        lease: &NativeLease,
        result: Option<Unknown<'_>>,
        content_type: Option<Unknown<'_>>,
    ) -> Result<AsyncTask<RemoteTask>> {
        let e = env.raw();
        let output = match (result, content_type) {
            (Some(r), Some(ct)) if r.get_type()? != ValueType::Undefined => {
                Some(Output::new(result_arg(e, r.raw())?, content_type_arg(e, ct.raw())?))
            }
            _ => None,
        };
        Ok(self.task(RemoteOp::Fail { lease: lease.lease.clone(), output }, false))
    }

    /// `release` on the thread pool.
    #[napi(catch_unwind)]
    pub fn release_async(&self, lease: &NativeLease) -> AsyncTask<RemoteTask> {
        self.task(RemoteOp::Release { lease: lease.lease.clone() }, false)
    }

    /// `renew` on the thread pool: resolves with the ms left, or the `Error`.
    #[napi(catch_unwind)]
    pub fn renew_async(&self, lease: &NativeLease) -> AsyncTask<RemoteTask> {
        self.task(RemoteOp::Renew { lease: lease.lease.clone() }, false)
    }
}

fn output_of(env: sys::napi_env, result: raw::Value, content_type: String, metadata: Option<Vec<Vec<String>>>) -> Result<Output> {
    let mut out = Output::new(result_arg(env, result)?, content_type);
    for pair in metadata.unwrap_or_default() {
        let [name, value]: [String; 2] = pair.try_into().map_err(|p: Vec<String>| {
            invalid(env, format!("metadata: each entry is a [name, value] pair, got {} strings", p.len()))
        })?;
        out.metadata.push((name, value));
    }
    Ok(out)
}

/// `null` for no fingerprint, else 64 hex digits.
fn fingerprint_hex(f: &Fingerprint) -> Option<String> {
    (!f.is_none()).then(|| f.to_hex())
}

// ---- leases, records, waiters ----

/// A lease of the low-level API.
#[napi]
pub struct NativeLease {
    lease: Lease,
}

#[napi]
impl NativeLease {
    #[napi(getter, catch_unwind)]
    pub fn key(&self) -> String {
        self.lease.key().to_owned()
    }

    #[napi(getter, catch_unwind)]
    pub fn token(&self) -> f64 {
        self.lease.token() as f64
    }

    /// When it expires, in ms on the cache's clock.
    #[napi(getter, catch_unwind)]
    pub fn expires_at(&self) -> f64 {
        duration_ms(self.lease.expires_at())
    }

    #[napi(getter, catch_unwind)]
    pub fn took_over(&self) -> bool {
        self.lease.took_over()
    }

    #[napi(getter, catch_unwind)]
    pub fn protected(&self) -> bool {
        self.lease.is_protected()
    }

    #[napi(getter, catch_unwind)]
    pub fn fingerprint(&self) -> Option<String> {
        fingerprint_hex(self.lease.fingerprint())
    }
}

/// A stored result.
#[napi]
pub struct NativeRecord {
    record: Record,
}

#[napi]
impl NativeRecord {
    /// Reads an encoded record (format version 2); refuses anything else with the core's
    /// `SEAWALL_INVALID_ARGUMENT`.
    #[napi(factory, catch_unwind)]
    pub fn decode(env: Env, bytes: Unknown<'_>) -> Result<Self> {
        let e = env.raw();
        guard(e, || {
            let Some(b) = raw::uint8_bytes(e, bytes.raw())? else {
                return Err(raw::type_error(e, "bytes", bytes.raw(), "a Buffer or a Uint8Array"));
            };
            Record::decode(b).map(|record| Self { record }).map_err(|err| throw(e, err))
        })
    }

    /// The version-1 encoding (`docs/idempotency.md`), shared by every language.
    #[napi(catch_unwind)]
    pub fn encode(&self, env: Env) -> Result<RawValue> {
        Ok(RawValue(raw::buffer_copy(env.raw(), &self.record.encode())?))
    }

    /// The result bytes (a copy).
    #[napi(getter, catch_unwind)]
    pub fn result(&self, env: Env) -> Result<RawValue> {
        Ok(RawValue(raw::buffer_copy(env.raw(), self.record.result())?))
    }

    #[napi(getter, catch_unwind)]
    pub fn content_type(&self) -> String {
        self.record.content_type().to_owned()
    }

    /// `[name, value]` pairs, in order.
    #[napi(getter, catch_unwind)]
    pub fn metadata(&self) -> Vec<Vec<String>> {
        self.record.metadata().iter().map(|(k, v)| vec![k.clone(), v.clone()]).collect()
    }

    /// True when the result is an error the operation raised (`cacheErrors`).
    #[napi(getter, catch_unwind)]
    pub fn error(&self) -> bool {
        self.record.is_error()
    }

    #[napi(getter, catch_unwind)]
    pub fn token(&self) -> f64 {
        self.record.token() as f64
    }

    /// Ms on the store's clock.
    #[napi(getter, catch_unwind)]
    pub fn created_ms(&self) -> f64 {
        self.record.created_ms() as f64
    }

    /// Ms on the store's clock.
    #[napi(getter, catch_unwind)]
    pub fn expires_ms(&self) -> f64 {
        self.record.expires_ms() as f64
    }

    #[napi(getter, catch_unwind)]
    pub fn fingerprint(&self) -> Option<String> {
        fingerprint_hex(self.record.fingerprint())
    }
}

/// A duplicate waiting for the owner of its key (low-level API).
#[napi]
pub struct NativeWaiter {
    waiter: Waiter,
    core: Rc<IdemCore>,
}

#[napi]
impl NativeWaiter {
    #[napi(getter, catch_unwind)]
    pub fn key(&self) -> String {
        self.waiter.key().to_owned()
    }

    /// True once resolved.
    #[napi(getter, catch_unwind)]
    pub fn done(&self) -> bool {
        self.waiter.is_done()
    }

    /// Applies what is due and reports without blocking: `{ state: 'pending',
    /// leaseExpiresIn, timeoutIn }`, `{ state: 'execute', lease }`, `{ state: 'replay',
    /// record }` or `{ state: 'taken' }`; an outcome that is an error is thrown.
    #[napi(catch_unwind)]
    pub fn poll<'e>(&self, env: &'e Env) -> Result<Object<'e>> {
        let e = env.raw();
        guard(e, || {
            let mut o = Object::new(env)?;
            match self.waiter.poll() {
                WaitPoll::Pending { lease_expires_in, timeout_in } => {
                    o.set("state", "pending")?;
                    o.set("leaseExpiresIn", duration_ms(lease_expires_in))?;
                    o.set("timeoutIn", duration_ms(timeout_in))?;
                }
                WaitPoll::Ready(Ok(Acquired::Execute(lease))) => {
                    o.set("state", "execute")?;
                    o.set("lease", NativeLease { lease })?;
                }
                WaitPoll::Ready(Ok(Acquired::Replay(record))) => {
                    o.set("state", "replay")?;
                    o.set("record", NativeRecord { record })?;
                }
                WaitPoll::Ready(Err(err)) => return Err(throw(e, err)),
                WaitPoll::Taken => o.set("state", "taken")?,
            }
            Ok(o)
        })
    }

    /// Stops waiting: the outcome becomes `SEAWALL_CANCELLED`.
    #[napi(catch_unwind)]
    pub fn cancel(&self) {
        self.waiter.cancel();
    }

    /// Delivers the outcome to the cache's queue (taken by `take`) under a new id, which it
    /// returns. The JS layer's `waiter.result()` uses it.
    #[napi(catch_unwind)]
    pub fn subscribe(&self) -> u32 {
        let id = self.core.waiters.next_id();
        listen(&self.waiter, id, true, &self.core.queue, &self.core.wakeup);
        id
    }
}

// ---- the memory store and fingerprints ----

/// A `MemoryStore` that caches can share (the `store` option).
#[napi]
pub struct NativeMemoryStore {
    store: Arc<MemoryStore>,
}

/// Counts of a memory store.
#[napi(object)]
pub struct MemoryStoreStatsJs {
    pub entries: f64,
    pub bytes: f64,
    pub evictions: f64,
    pub max_entries: f64,
    pub max_bytes: f64,
}

#[napi]
impl NativeMemoryStore {
    /// `options`: `maxEntries`, `maxBytes` (through the core's `MemoryStoreConfig::set`).
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, options: Option<Object<'_>>, clock: Option<&ManualClock>) -> Result<Self> {
        guard(env.raw(), || {
            let mut config = MemoryStoreConfig::with_style(NODE_STYLE);
            if let Some(c) = clock {
                config = config.with_clock(c.shared());
            }
            each_option(options, &["clock"], |key, value| {
                config.set(key, value).map_err(|e| throw(env.raw(), e.into()))
            })?;
            let store = MemoryStore::new(config).map_err(|e| throw(env.raw(), e.into()))?;
            Ok(Self { store: Arc::new(store) })
        })
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> MemoryStoreStatsJs {
        let s = self.store.stats();
        MemoryStoreStatsJs {
            entries: s.entries as f64,
            bytes: s.bytes as f64,
            evictions: s.evictions as f64,
            max_entries: s.max_entries as f64,
            max_bytes: s.max_bytes as f64,
        }
    }
}

/// A `RedisStore` (the `store` option): one idempotency cache shared by processes, hosts
/// and languages (`docs/redis.md`).
#[napi]
pub struct NativeRedisStore {
    store: Arc<RedisStore>,
}

/// Counts of a Redis store.
#[napi(object)]
pub struct RedisStoreStatsJs {
    pub round_trips: f64,
    pub script_loads: f64,
    pub connects: f64,
    pub connect_failures: f64,
    pub unavailable: f64,
    pub completion_retries: f64,
    pub completions_recovered: f64,
    pub completions_lost: f64,
    pub completions_pending: f64,
    pub notifications: f64,
    pub watched_keys: f64,
    pub connected: bool,
    pub notifications_connected: bool,
}

/// `ping()` on the thread pool: resolves with the round trip in ms, or the `Error`.
pub struct PingTask {
    store: Arc<RedisStore>,
}

impl Task for PingTask {
    type Output = std::result::Result<Duration, CoreError>;
    type JsValue = RawValue;

    fn compute(&mut self) -> Result<Self::Output> {
        catch_unwind(AssertUnwindSafe(|| self.store.ping()))
            .map_err(|p| Error::new(Status::GenericFailure, crate::errors::panic_message(&*p)))
    }

    fn resolve(&mut self, env: Env, out: Self::Output) -> Result<RawValue> {
        let e = env.raw();
        Ok(RawValue(match out {
            Ok(d) => raw::double(e, duration_ms(d))?,
            Err(err) => js_error(e, &err)?,
        }))
    }
}

#[napi]
impl NativeRedisStore {
    /// `options`: `url`, `prefix`, `connectTimeout`, `commandTimeout`, `reconnectDelay`,
    /// `reconnectMaxDelay`, `completionRetryWindow` (through the core's
    /// `RedisStoreConfig::set`). `clock` (tests only): scripts read "now" from that
    /// `ManualClock` instead of the server's `TIME`. Connects nothing.
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, options: Option<Object<'_>>, clock: Option<&ManualClock>) -> Result<Self> {
        guard(env.raw(), || {
            let mut config = RedisStoreConfig::with_style(NODE_STYLE);
            if let Some(c) = clock {
                config = config.with_clock(Arc::clone(&c.shared.clock));
            }
            each_option(options, &["clock"], |key, value| config.set(key, value).map_err(|e| throw(env.raw(), e.into())))?;
            let store = RedisStore::new(config).map_err(|e| throw(env.raw(), e.into()))?;
            Ok(Self { store: Arc::new(store) })
        })
    }

    /// The URL, without its password.
    #[napi(getter, catch_unwind)]
    pub fn url(&self) -> String {
        self.store.url().to_owned()
    }

    #[napi(getter, catch_unwind)]
    pub fn prefix(&self) -> String {
        self.store.prefix().to_owned()
    }

    /// Connects (if needed) and measures one round trip, off the event loop.
    #[napi(catch_unwind)]
    pub fn ping(&self) -> AsyncTask<PingTask> {
        AsyncTask::new(PingTask { store: Arc::clone(&self.store) })
    }

    #[napi(catch_unwind)]
    pub fn stats(&self) -> RedisStoreStatsJs {
        let s = self.store.stats();
        RedisStoreStatsJs {
            round_trips: s.round_trips as f64,
            script_loads: s.script_loads as f64,
            connects: s.connects as f64,
            connect_failures: s.connect_failures as f64,
            unavailable: s.unavailable as f64,
            completion_retries: s.completion_retries as f64,
            completions_recovered: s.completions_recovered as f64,
            completions_lost: s.completions_lost as f64,
            completions_pending: s.completions_pending as f64,
            notifications: s.notifications as f64,
            watched_keys: s.watched_keys as f64,
            connected: s.connected,
            notifications_connected: s.notifications_connected,
        }
    }
}

/// The core's fingerprint (SHA-256) of `payload` (a string's UTF-8 bytes, or the bytes of a
/// `Uint8Array`), as 64 hex digits.
#[napi(catch_unwind)]
pub fn fingerprint_hex_of(env: Env, payload: Unknown<'_>) -> Result<String> {
    let e = env.raw();
    guard(e, || {
        if payload.get_type()? == ValueType::String {
            let bytes = raw::read_string(e, payload.raw())?.unwrap_or_default();
            return Ok(Fingerprint::of(&bytes).to_hex());
        }
        match raw::uint8_bytes(e, payload.raw())? {
            Some(b) => Ok(Fingerprint::of(b).to_hex()),
            None => Err(raw::type_error(e, "payload", payload.raw(), "a string, a Buffer or a Uint8Array")),
        }
    })
}
