//! Node.js addon of seawall: thin napi classes over the Rust core.
//!
//! The JS layer (`node/index.js`) is the public API; this module only translates types and
//! errors. Every decision (state machine, option validation, error messages and codes)
//! comes from the `seawall` crate.
//!
//! Deadlines (`deadline.rs`) are the core's `Deadline` values, kept by JS as a clock and an
//! instant; the per-call operations are plain Node-API functions. Timers of JS code on a
//! `ManualClock` are core timers whose firing `advance` reports back to JS (`clock.rs`).
//!
//! The idempotency cache (`idempotency.rs`) has the same split: plain functions over lease
//! slots for `run`, native objects for the low-level surface; waiting duplicates are woken
//! through one thread-safe function, never by polling. The registry (`registry.rs`) runs
//! JavaScript health checks through the core's external-check protocol.
//!
//! Events: core listeners run synchronously on the calling (JS) thread, inside the native
//! call that caused the change. napi values are not `Send`, so the native listener only
//! queues the event; each native call then tells the JS layer whether events are pending
//! (a flag in its return value, or the JS layer asks on cold paths) and JS drains and emits
//! them, in order, before the call returns to the user.

#![deny(clippy::all)]

mod breaker;
mod clock;
mod deadline;
mod errors;
mod failpoint;
mod floor;
mod hot;
mod idempotency;
mod raw;
mod registry;

use napi_derive::napi;

/// The version of the core, which is the version of this package.
#[napi]
pub fn version() -> &'static str {
    seawall::VERSION
}
