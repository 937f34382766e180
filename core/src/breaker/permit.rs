//! Permits: the right to make one call, on which exactly one outcome is recorded.
//!
//! [`Permit`] borrows its breaker and takes `self` by value, so Rust code cannot record
//! twice. [`SharedPermit`] owns a breaker handle for bindings, where a permit is an object
//! of another language: it refuses a second outcome at run time with
//! [`Error::PermitConsumed`]. Either one dropped without an outcome is a cancellation: it
//! frees its half-open slot and counts nowhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{CircuitBreaker, Outcome, Ticket, NO_PROBE};
use crate::error::Error;

/// Permission for one call. Record one outcome, or drop it to cancel.
#[must_use = "record an outcome on the permit; dropping it cancels the call"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    ticket: Ticket,
    done: bool,
}

impl<'a> Permit<'a> {
    #[inline]
    pub(crate) fn new(breaker: &'a CircuitBreaker, ticket: Ticket) -> Self {
        Self { breaker, ticket, done: false }
    }

    /// The call succeeded after `took`.
    #[inline(always)]
    pub fn success(self, took: Duration) {
        self.record(Outcome::Success, took);
    }

    /// A success on a breaker without a slow-call threshold (`call` checked): no duration.
    #[inline(always)]
    pub(crate) fn success_unmeasured(mut self) {
        self.done = true;
        self.breaker.record_success_unmeasured(self.ticket);
    }

    /// The call failed after `took`.
    #[inline]
    pub fn failure(self, took: Duration) {
        self.record(Outcome::Failure, took);
    }

    /// The call timed out after `took` (a failure, also counted as a timeout).
    pub fn timeout(self, took: Duration) {
        self.record(Outcome::Timeout, took);
    }

    /// The call ended with an error the user excluded: counted only in metrics.
    pub fn ignore(self) {
        self.record(Outcome::Ignore, Duration::ZERO);
    }

    /// Records `outcome` after `took`.
    #[inline(always)]
    pub fn record(mut self, outcome: Outcome, took: Duration) {
        self.done = true;
        self.breaker.record(self.ticket, outcome, took);
    }

    /// True when this permit is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.ticket.probe != NO_PROBE
    }

    /// The generation (epoch) of the state that issued this permit. Every transition
    /// starts a new generation; outcomes of older generations only update metrics.
    pub fn generation(&self) -> u64 {
        self.ticket.epoch
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.done {
            self.breaker.cancel(self.ticket);
        }
    }
}

/// A permit that owns a handle to its breaker (for bindings and for moving across threads).
pub struct SharedPermit {
    breaker: CircuitBreaker,
    ticket: Ticket,
    done: AtomicBool,
}

impl SharedPermit {
    pub(crate) fn new(breaker: CircuitBreaker, ticket: Ticket) -> Self {
        Self { breaker, ticket, done: AtomicBool::new(false) }
    }

    /// Records `outcome` after `took`; a second outcome (or one after `cancel`) is refused.
    pub fn record(&self, outcome: Outcome, took: Duration) -> Result<(), Error> {
        if self.done.swap(true, Ordering::AcqRel) {
            return Err(Error::PermitConsumed);
        }
        self.breaker.record(self.ticket, outcome, took);
        Ok(())
    }

    /// Cancels: frees a half-open slot, counts nowhere. Refused after an outcome.
    pub fn cancel(&self) -> Result<(), Error> {
        if self.done.swap(true, Ordering::AcqRel) {
            return Err(Error::PermitConsumed);
        }
        self.breaker.cancel(self.ticket);
        Ok(())
    }

    /// True once an outcome was recorded or the permit was cancelled.
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// True when this permit is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.ticket.probe != NO_PROBE
    }

    /// The generation (epoch) of the state that issued this permit. Every transition
    /// starts a new generation; outcomes of older generations only update metrics.
    pub fn generation(&self) -> u64 {
        self.ticket.epoch
    }

    /// The breaker that issued this permit.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl Drop for SharedPermit {
    fn drop(&mut self) {
        if !*self.done.get_mut() {
            self.breaker.cancel(self.ticket);
        }
    }
}
