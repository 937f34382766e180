//! Fault injection for seawall's own tests: make the next operation at a named site panic.
//!
//! Why it exists: every binding promises that a panic inside seawall (a bug) never crosses
//! into the host language as undefined behaviour or a crashed process. A test can only
//! prove that by causing one through the real entry points, so a few cold sites check
//! whether a panic was armed for them. An unarmed check is one relaxed atomic load on a
//! path that already takes a lock or does I/O, never on a breaker's admission path.
//!
//! Each armed site fires once, then disarms itself. What the object is like after the
//! panic is part of the contract (docs/hardening.md, "Panic containment"):
//!
//! | site | fires in | afterwards |
//! |---|---|---|
//! | `breaker.trip` | a failure that would open a closed breaker, with the breaker's lock held | the breaker is still closed and usable; the failure was counted, so the next failure trips it |
//! | `idempotency.begin` | `begin` / `run`, before the store is asked | nothing was claimed; the cache is usable |
//! | `registry.render` | `prometheus()`, before anything is read | the registry is usable |
//!
//! ```
//! use seawall::{failpoint, Registry};
//! let registry = Registry::new();
//! failpoint::arm("registry.render").unwrap();
//! let render = std::panic::AssertUnwindSafe(|| registry.prometheus());
//! assert!(std::panic::catch_unwind(render).is_err());
//! assert!(registry.prometheus().contains("seawall_health_status")); // usable again
//! ```

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use crate::error::Error;

static ARMED: AtomicU32 = AtomicU32::new(0);

/// The sites a panic can be armed at, in the order of [`SITES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Site {
    BreakerTrip = 0,
    IdempotencyBegin = 1,
    RegistryRender = 2,
}

/// Every site's name.
pub const SITES: &[&str] = &["breaker.trip", "idempotency.begin", "registry.render"];

/// Arms a panic at `site` (one of [`SITES`]): the next operation that reaches it panics
/// (in whichever thread), once. `InvalidArgument` for an unknown site.
pub fn arm(site: &str) -> Result<(), Error> {
    let i = SITES.iter().position(|s| *s == site).ok_or_else(|| {
        Error::InvalidArgument(format!("site = {site:?}: not a fault site (one of {})", SITES.join(", ")))
    })?;
    ARMED.fetch_or(1 << i, Relaxed);
    Ok(())
}

/// Disarms every site.
pub fn disarm() {
    ARMED.store(0, Relaxed);
}

/// Panics when `site` is armed (and disarms it).
#[inline]
pub(crate) fn hit(site: Site) {
    let bit = 1u32 << site as u32;
    if ARMED.load(Relaxed) & bit != 0 && ARMED.fetch_and(!bit, Relaxed) & bit != 0 {
        fire(site);
    }
}

#[cold]
#[inline(never)]
fn fire(site: Site) -> ! {
    panic!("seawall fault injection: a deliberate panic at {}", SITES[site as usize]);
}
