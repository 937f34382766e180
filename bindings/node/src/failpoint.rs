//! For seawall's own tests: arm a panic inside the core (`seawall::failpoint`) to prove
//! that a panic never unwinds into Node: every entry point runs under `catch_unwind`
//! (`errors::guard`, `hot.rs`, `#[napi(catch_unwind)]`), so the call throws an `Error`.
//! Reached from JS as `require('seawall')._internal` (not part of the public API).

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::errors::throw;

/// Arms a panic at `site` (`"breaker.trip"`, `"idempotency.begin"`, `"registry.render"`).
#[napi(catch_unwind)]
pub fn arm_panic(env: Env, site: String) -> Result<()> {
    seawall::failpoint::arm(&site).map_err(|e| throw(env.raw(), e))
}

/// Disarms every site.
#[napi(catch_unwind)]
pub fn disarm_panics() {
    seawall::failpoint::disarm();
}
