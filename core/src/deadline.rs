//! Deadlines: an absolute point on a clock, and the `grpc-timeout` header format.
//!
//! A deadline is fixed once (`after(duration)`) and then only read, so nested scopes and
//! callees share one budget: each takes the earliest of its own and the one it was given,
//! and passes what remains on (in a header, to a socket timeout...).
//!
//! ```
//! use std::time::Duration;
//! use seawall::{Deadline, ManualClock};
//!
//! let clock = ManualClock::shared();
//! let d = Deadline::after(clock.clone(), Duration::from_millis(250));
//! assert_eq!(d.to_grpc_timeout(), "250000u");
//! clock.advance(Duration::from_millis(200));
//! assert_eq!(d.remaining(), Duration::from_millis(50));
//! assert!(!d.expired());
//! clock.advance(Duration::from_millis(50));
//! assert!(d.expired());
//! assert_eq!(seawall::deadline::parse_grpc_timeout("3S").unwrap(), Duration::from_secs(3));
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::error::Error;
use crate::options::{ConfigValue, DurationUnit, Naming, Style};

/// Reads a duration argument (`seconds` in Python, `ms` in Node and C) for a deadline or a
/// timeout. Negative, NaN and infinite values are refused with an error that names the
/// argument and the value: a bad value never becomes a silently infinite timeout. Values
/// print the way Python (seconds) or JavaScript (milliseconds) would; C should use
/// [`duration_arg_styled`] with snake naming.
///
/// ```
/// use seawall::{ConfigValue, DurationUnit};
/// use seawall::deadline::duration_arg;
/// assert_eq!(duration_arg("ms", &ConfigValue::Int(250), DurationUnit::Millis).unwrap().as_millis(), 250);
/// let err = duration_arg("seconds", &ConfigValue::Float(f64::INFINITY), DurationUnit::Seconds).unwrap_err();
/// assert!(err.to_string().contains("seconds = infs: must be finite"), "{err}");
/// ```
pub fn duration_arg(name: &str, value: &ConfigValue, unit: DurationUnit) -> Result<Duration, Error> {
    let naming = if unit == DurationUnit::Seconds { Naming::Snake } else { Naming::Camel };
    duration_arg_styled(name, value, Style { naming, unit })
}

/// [`duration_arg`] in an explicit style (C: snake naming, milliseconds, `nan`/`inf`).
pub fn duration_arg_styled(name: &str, value: &ConfigValue, style: Style) -> Result<Duration, Error> {
    let infinite = matches!(value, ConfigValue::Float(x) if x.is_infinite() && *x > 0.0);
    style.duration(name, value, true).map_err(|e| {
        let why = if infinite { "must be finite" } else { e.reason.as_str() };
        Error::InvalidArgument(format!("{} = {}: {why}", e.field, e.value))
    })
}

/// An absolute point in time on a clock.
#[derive(Clone)]
pub struct Deadline {
    at: Duration,
    clock: SharedClock,
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadline").field("at", &self.at).field("remaining", &self.remaining()).finish()
    }
}

impl PartialEq for Deadline {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Deadline {
    /// The deadline `duration` from now on `clock`.
    pub fn after(clock: SharedClock, duration: Duration) -> Self {
        let at = clock.now().saturating_add(duration);
        Self { at, clock }
    }

    /// The deadline at clock time `at` (time since the clock's origin).
    pub fn at(clock: SharedClock, at: Duration) -> Self {
        Self { at, clock }
    }

    /// The deadline from a `grpc-timeout` header value, counted from now.
    pub fn from_grpc_timeout(clock: SharedClock, header: &str) -> Result<Self, Error> {
        Ok(Self::after(clock, parse_grpc_timeout(header)?))
    }

    /// Clock time of the deadline.
    pub fn instant(&self) -> Duration {
        self.at
    }

    /// The clock the deadline is measured on.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Time left; zero once expired.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_sub(self.clock.now())
    }

    /// True at or after the deadline.
    pub fn expired(&self) -> bool {
        self.clock.now() >= self.at
    }

    /// The earlier of two deadlines (nested scopes keep the tighter budget). Both must be
    /// on the same clock: times of different clocks cannot be compared.
    pub fn earliest(&self, other: &Deadline) -> Result<Deadline, Error> {
        if !Arc::ptr_eq(&self.clock, &other.clock) {
            return Err(Error::InvalidArgument("cannot compare deadlines on different clocks".into()));
        }
        Ok(if other.at < self.at { other.clone() } else { self.clone() })
    }

    /// The deadline `ms` milliseconds from now (a plain-milliseconds header such as
    /// `x-timeout-ms`).
    pub fn from_millis(clock: SharedClock, ms: u64) -> Self {
        Self::after(clock, Duration::from_millis(ms))
    }

    /// A share of what remains for one attempt: `fraction` of the remaining time, at least
    /// `min`, never more than what remains. `fraction` must be in [0, 1]; anything else
    /// (negative, above 1, NaN, infinite) is refused with an error naming it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use seawall::{Deadline, ManualClock};
    /// let d = Deadline::after(ManualClock::shared(), Duration::from_millis(100));
    /// assert_eq!(d.try_budget(0.4, Duration::from_millis(5)).unwrap(), Duration::from_millis(40));
    /// assert_eq!(d.try_budget(0.01, Duration::from_millis(5)).unwrap(), Duration::from_millis(5));
    /// assert_eq!(d.try_budget(0.4, Duration::from_secs(1)).unwrap(), Duration::from_millis(100));
    /// assert!(d.try_budget(f64::NAN, Duration::ZERO).is_err());
    /// ```
    pub fn try_budget(&self, fraction: f64, min: Duration) -> Result<Duration, Error> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(Error::InvalidArgument(format!("fraction = {fraction}: must be in [0, 1]")));
        }
        let left = self.remaining();
        Ok(left.mul_f64(fraction).max(min).min(left))
    }

    /// [`try_budget`](Self::try_budget) with an out-of-range `fraction` clamped to [0, 1]
    /// (NaN as 0), for callers that validated it already.
    pub fn budget(&self, fraction: f64, min: Duration) -> Duration {
        let f = if fraction.is_nan() { 0.0 } else { fraction.clamp(0.0, 1.0) };
        self.try_budget(f, min).unwrap_or(Duration::ZERO)
    }

    /// What remains, as a `grpc-timeout` header value.
    pub fn to_grpc_timeout(&self) -> String {
        format_grpc_timeout(self.remaining())
    }

    /// What remains, in whole milliseconds (rounded down).
    pub fn remaining_ms(&self) -> u64 {
        u64::try_from(self.remaining().as_millis()).unwrap_or(u64::MAX)
    }
}

const GRPC_MAX_VALUE: u128 = 99_999_999;

/// Parses a `grpc-timeout` header value: 1 to 8 ASCII digits and one unit
/// (`H` hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds).
pub fn parse_grpc_timeout(s: &str) -> Result<Duration, Error> {
    let bad = |why: &str| Error::InvalidArgument(format!("grpc-timeout {s:?}: {why}"));
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) => (&s[..i], c),
        None => return Err(bad("empty")),
    };
    if digits.is_empty() {
        return Err(bad("expected 1 to 8 digits before the unit"));
    }
    if digits.len() > 8 {
        return Err(bad("at most 8 digits"));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected digits followed by one of H M S m u n"));
    }
    let n: u64 = digits.parse().map_err(|_| bad("not a number"))?;
    let d = match unit {
        'H' => Duration::from_secs(n * 3600),
        'M' => Duration::from_secs(n * 60),
        'S' => Duration::from_secs(n),
        'm' => Duration::from_millis(n),
        'u' => Duration::from_micros(n),
        'n' => Duration::from_nanos(n),
        _ => return Err(bad("unknown unit (expected one of H M S m u n)")),
    };
    Ok(d)
}

/// Formats a duration as a `grpc-timeout` value: the finest unit whose value fits in
/// 8 digits, rounded up so that a positive budget never becomes zero.
pub fn format_grpc_timeout(d: Duration) -> String {
    let ns = d.as_nanos();
    for (unit_ns, unit) in [
        (1u128, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ] {
        let v = ns.div_ceil(unit_ns);
        if v <= GRPC_MAX_VALUE {
            return format!("{v}{unit}");
        }
    }
    format!("{GRPC_MAX_VALUE}H")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_round_trips_and_refuses_malformed_values() {
        for (s, d) in [
            ("250m", Duration::from_millis(250)),
            ("3S", Duration::from_secs(3)),
            ("1H", Duration::from_secs(3600)),
            ("2M", Duration::from_secs(120)),
            ("7u", Duration::from_micros(7)),
            ("99999999n", Duration::from_nanos(99_999_999)),
            ("0m", Duration::ZERO),
        ] {
            assert_eq!(parse_grpc_timeout(s).unwrap(), d, "{s}");
        }
        for s in ["", "m", "123456789m", "12", "1.5S", "-1S", "10s", "1 S", "٣S", "1SS"] {
            assert!(parse_grpc_timeout(s).is_err(), "{s:?} should be refused");
        }
        assert_eq!(format_grpc_timeout(Duration::from_millis(250)), "250000u");
        assert_eq!(format_grpc_timeout(Duration::from_secs(3)), "3000000u");
        assert_eq!(format_grpc_timeout(Duration::from_secs(1000)), "1000000m");
        assert_eq!(format_grpc_timeout(Duration::from_nanos(1)), "1n");
        assert_eq!(format_grpc_timeout(Duration::ZERO), "0n");
        assert_eq!(format_grpc_timeout(Duration::from_secs(400 * 86_400 * 365)), "3504000H");
        let d = Duration::from_nanos(123_456_789_123);
        let back = parse_grpc_timeout(&format_grpc_timeout(d)).unwrap();
        assert!(back >= d && back - d < Duration::from_millis(1));
    }
}
