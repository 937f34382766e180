//! `ManualClock` and `SystemClock` as JS classes (time in milliseconds).

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use seawall::{Clock, SharedClock};

use crate::errors::{duration_ms, opt_ms, throw};

/// A test clock whose time moves only when `advance(ms)` is called. Starts at 0.
#[napi]
pub struct ManualClock {
    pub(crate) inner: Arc<seawall::ManualClock>,
}

#[napi]
impl ManualClock {
    #[napi(constructor, catch_unwind)]
    pub fn new() -> Self {
        Self { inner: seawall::ManualClock::shared() }
    }

    /// Moves time forward by `ms` milliseconds (finite, >= 0).
    #[napi(catch_unwind)]
    pub fn advance(&self, env: Env, ms: Option<Unknown<'_>>) -> Result<()> {
        match opt_ms(env.raw(), "ms", ms)? {
            Some(d) => {
                self.inner.advance(d);
                Ok(())
            }
            None => Err(throw(
                env.raw(),
                seawall::Error::InvalidArgument("advance(ms) needs a number of milliseconds".into()),
            )),
        }
    }

    /// Milliseconds since the clock's origin.
    #[napi(catch_unwind)]
    pub fn now(&self) -> f64 {
        duration_ms(self.inner.now())
    }
}

impl ManualClock {
    pub(crate) fn shared(&self) -> SharedClock {
        self.inner.clone()
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
