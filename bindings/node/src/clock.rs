//! `ManualClock` and `SystemClock` as JS classes (time in milliseconds), and the timers JS
//! code schedules on a manual clock.
//!
//! JS callbacks cannot run inside the core's timer closures (napi values are not `Send`,
//! and the core runs timers inside `advance`). So a JS timer on a manual clock is a core
//! timer whose closure only records its id: the core decides what is due and in which
//! order (due time, then scheduling order), `advance` returns the ids that fired, in that
//! order, and the JS layer runs their callbacks synchronously before its `advance` returns.
//! On the system clock the JS layer uses `setTimeout` instead (see `node/index.js`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use seawall::{Clock, SharedClock, TimerId};

use crate::errors::{duration_arg, duration_ms};

/// The process's one system clock handle: deadlines compare clocks by identity, so every
/// system-clock deadline must hold the same `Arc`.
pub(crate) fn system_clock() -> &'static SharedClock {
    static CLOCK: OnceLock<SharedClock> = OnceLock::new();
    CLOCK.get_or_init(seawall::SystemClock::shared)
}

/// Ids of JS timers, unique in the process (never 0; exact as JS numbers up to 2^53).
fn next_timer_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A manual clock and the JS timers scheduled on it.
pub(crate) struct ManualShared {
    pub(crate) clock: Arc<seawall::ManualClock>,
    /// Ids whose core timer fired, in firing order, until `advance` hands them to JS.
    fired: Arc<Mutex<Vec<u64>>>,
    /// JS timer id -> core timer, for cancellation.
    timers: Mutex<HashMap<u64, TimerId>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ManualShared {
    /// Schedules a JS timer at clock time `at`; its id is reported by the `advance` that
    /// reaches `at`. `None` when `at` has already passed (the caller fires it now).
    pub(crate) fn schedule(&self, at: std::time::Duration) -> Option<u64> {
        if at <= self.clock.now() {
            return None;
        }
        let id = next_timer_id();
        let fired = Arc::clone(&self.fired);
        // `at` is in the future, so the timer cannot fire before it is registered below
        // (only `advance`, on this thread, moves the clock).
        let timer = self.clock.schedule(at, Box::new(move || lock(&fired).push(id)));
        lock(&self.timers).insert(id, timer);
        Some(id)
    }

    /// Unschedules a JS timer; false when it fired or was cancelled already.
    pub(crate) fn cancel(&self, id: u64) -> bool {
        match lock(&self.timers).remove(&id) {
            Some(timer) => self.clock.cancel_timer(timer),
            None => false,
        }
    }

    /// The ids fired since the last call, in order, forgotten by the registry.
    fn take_fired(&self) -> Vec<u64> {
        let ids = std::mem::take(&mut *lock(&self.fired));
        if !ids.is_empty() {
            let mut timers = lock(&self.timers);
            for id in &ids {
                timers.remove(id);
            }
        }
        ids
    }
}

/// A test clock whose time moves only when `advance(ms)` is called. Starts at 0.
#[napi]
pub struct ManualClock {
    pub(crate) shared: Arc<ManualShared>,
}

#[napi]
impl ManualClock {
    #[napi(constructor, catch_unwind)]
    pub fn new() -> Self {
        Self {
            shared: Arc::new(ManualShared {
                clock: seawall::ManualClock::shared(),
                fired: Arc::default(),
                timers: Mutex::default(),
            }),
        }
    }

    /// Moves time forward by `ms` milliseconds (finite, >= 0); core timers that became due
    /// run inside. Returns the ids of the JS timers that fired, in due order, or `null`
    /// (the JS layer's `advance` runs their callbacks).
    #[napi(catch_unwind)]
    pub fn advance(&self, env: Env, ms: Option<Unknown<'_>>) -> Result<Option<Vec<f64>>> {
        let by = duration_arg(env.raw(), "ms", ms.as_ref())?;
        self.shared.clock.advance(by);
        let ids = self.shared.take_fired();
        Ok(if ids.is_empty() { None } else { Some(ids.into_iter().map(|id| id as f64).collect()) })
    }

    /// Milliseconds since the clock's origin.
    #[napi(catch_unwind)]
    pub fn now(&self) -> f64 {
        duration_ms(self.shared.clock.now())
    }

    /// Timers scheduled on this clock and not yet fired (from `timeout()`, `cancelAt()`...).
    #[napi(getter, catch_unwind)]
    pub fn pending_timers(&self) -> u32 {
        u32::try_from(self.shared.clock.pending_timers()).unwrap_or(u32::MAX)
    }
}

impl ManualClock {
    pub(crate) fn shared(&self) -> SharedClock {
        self.shared.clock.clone()
    }
}

/// The real monotonic clock; `now()` is milliseconds since the process first read it.
#[napi]
pub struct SystemClock {}

#[napi]
impl SystemClock {
    #[napi(constructor, catch_unwind)]
    pub fn new() -> Self {
        Self {}
    }

    /// Milliseconds since the process's clock origin (monotonic).
    #[napi(catch_unwind)]
    pub fn now(&self) -> f64 {
        duration_ms(seawall::SystemClock.now())
    }
}
