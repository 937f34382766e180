//! # libseawall: the C API of seawall
//!
//! A thin `extern "C"` layer over the Rust core (crate `seawall`): it translates types and
//! errors and holds no decisions. The header `include/seawall.h` is generated from this
//! crate by cbindgen (`SEAWALL_BLESS=1 cargo test -p seawall-ffi --test header`).
//!
//! Circuit breakers, deadlines and cancel tokens, the idempotency cache (`seawall_idem_*`)
//! with memory and Redis stores (`seawall_redis_*`), and the registry with health checks
//! and metrics (`seawall_registry_*`).
//!
//! Conventions, the same for every function:
//! - every function that can fail returns a `seawall_status`; results come back through
//!   out-parameters; on failure `seawall_last_error()` has a message for the calling thread;
//! - a NULL handle or required out-parameter is `SEAWALL_E_INVALID_ARGUMENT`; strings must
//!   be UTF-8; `*_free(NULL)` does nothing;
//! - durations are milliseconds (`double` where a negative, NaN or infinite value must be
//!   able to reach the core's checks);
//! - no Rust panic crosses the boundary: every entry point runs in one guard
//!   ([`status::guard`]) that turns a panic into `SEAWALL_E_INTERNAL`.
#![deny(missing_docs)]
#![allow(clippy::missing_safety_doc)] // every unsafe entry point has a "# Safety" section

// Declaration order is the order of the header.
pub mod breaker;
pub mod cancel;
pub mod clock;
pub mod config;
pub mod deadline;
pub mod events;
pub mod idempotency;
pub mod permit;
pub mod record;
pub mod registry;
pub mod status;
pub mod store;

pub use breaker::{seawall_breaker, seawall_snapshot, seawall_state};
pub use cancel::{seawall_cancel_fn, seawall_cancel_reason, seawall_cancel_token, seawall_timer};
pub use clock::seawall_clock;
pub use config::seawall_breaker_config;
pub use deadline::{seawall_deadline, SEAWALL_GRPC_TIMEOUT_BUFSIZE};
pub use events::{seawall_state_change, seawall_state_change_fn};
pub use idempotency::{
    seawall_idem_begin_result, seawall_idem_cache, seawall_idem_config, seawall_idem_done_fn,
    seawall_idem_key_state, seawall_idem_lease, seawall_idem_lease_info, seawall_idem_metadata,
    seawall_idem_outcome, seawall_idem_output, seawall_idem_stats, seawall_idem_waiter,
};
pub use permit::{seawall_permit, seawall_rejection};
pub use record::{seawall_bytes, seawall_idem_record, seawall_idem_record_info};
pub use registry::{
    seawall_check_fn, seawall_free_fn, seawall_health_status, seawall_registry,
    SEAWALL_CHECK_MESSAGE_SIZE,
};
pub use status::seawall_status;
pub use store::{seawall_redis_config, seawall_redis_store};
