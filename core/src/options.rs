//! Option values as bindings hand them over, and their checked conversion.
//!
//! Every language passes configuration as name/value pairs. Parsing lives here, in the
//! core, so that a refused value gets the same error (field, value, reason) everywhere.
//! Bindings only say how their users spell names ([`Naming`]) and which unit a bare number
//! means for a duration ([`DurationUnit`]): seconds in Python, milliseconds in Node and C.
//!
//! ```
//! use seawall::{ConfigValue, DurationUnit, Style, Naming};
//! let style = Style { naming: Naming::Snake, unit: DurationUnit::Seconds };
//! let d = style.duration("open_duration", &ConfigValue::Float(1.5), true).unwrap();
//! assert_eq!(d.as_millis(), 1500);
//! assert!(style.duration("open_duration", &ConfigValue::Float(-1.0), true).is_err());
//! ```

use std::fmt;
use std::time::Duration;

use crate::error::ConfigError;

/// One configuration value as a binding received it.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// A whole number.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// An already-typed duration (Rust callers).
    Duration(Duration),
    /// Something the binding could not represent (an object, a list...), described by its type name.
    Other(String),
}

impl From<i64> for ConfigValue {
    fn from(v: i64) -> Self {
        ConfigValue::Int(v)
    }
}
impl From<u32> for ConfigValue {
    fn from(v: u32) -> Self {
        ConfigValue::Int(i64::from(v))
    }
}
impl From<f64> for ConfigValue {
    fn from(v: f64) -> Self {
        ConfigValue::Float(v)
    }
}
impl From<&str> for ConfigValue {
    fn from(v: &str) -> Self {
        ConfigValue::Str(v.to_owned())
    }
}
impl From<String> for ConfigValue {
    fn from(v: String) -> Self {
        ConfigValue::Str(v)
    }
}
impl From<bool> for ConfigValue {
    fn from(v: bool) -> Self {
        ConfigValue::Bool(v)
    }
}
impl From<Duration> for ConfigValue {
    fn from(v: Duration) -> Self {
        ConfigValue::Duration(v)
    }
}

/// Unit of a bare number given for a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DurationUnit {
    /// Milliseconds (Node, C, conformance files).
    #[default]
    Millis,
    /// Seconds (Python).
    Seconds,
}

/// How a language spells option names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Naming {
    /// `open_duration` (Rust, Python, C).
    #[default]
    Snake,
    /// `openDuration` (Node).
    Camel,
}

/// A caller's conventions: used to read values and to word errors in the caller's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    /// How names are spelled.
    pub naming: Naming,
    /// What a bare number means for a duration.
    pub unit: DurationUnit,
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::Int(v) => write!(f, "{v}"),
            ConfigValue::Float(v) => write!(f, "{v:?}"),
            ConfigValue::Str(v) => write!(f, "{v:?}"),
            ConfigValue::Bool(v) => write!(f, "{v}"),
            ConfigValue::Duration(v) => write!(f, "{v:?}"),
            ConfigValue::Other(t) => write!(f, "<{t}>"),
        }
    }
}

/// `openDuration` -> `open_duration`; snake names pass through.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `open_duration` -> `openDuration`.
pub fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl Style {
    /// The canonical (snake) field name spelled the caller's way.
    pub fn field(&self, canonical: &str) -> String {
        match self.naming {
            Naming::Snake => canonical.to_owned(),
            Naming::Camel => camel_case(canonical),
        }
    }

    /// Renders a duration in the caller's unit (`1.5s`, `1500ms`).
    pub fn show_duration(&self, d: Duration) -> String {
        match self.unit {
            DurationUnit::Seconds => format!("{}s", d.as_secs_f64()),
            DurationUnit::Millis => format!("{}ms", d.as_secs_f64() * 1000.0),
        }
    }

    /// Renders a value the way the caller's language prints it (`inf`/`nan` in Python and
    /// C, `Infinity`/`NaN` in Node).
    pub fn show(&self, v: &ConfigValue) -> String {
        match (v, self.naming) {
            (ConfigValue::Float(x), Naming::Camel) if x.is_nan() => "NaN".into(),
            (ConfigValue::Float(x), Naming::Camel) if x.is_infinite() => {
                if *x > 0.0 { "Infinity" } else { "-Infinity" }.into()
            }
            (ConfigValue::Float(x), Naming::Snake) if x.is_nan() => "nan".into(),
            (ConfigValue::Float(x), Naming::Snake) if x.is_infinite() => {
                if *x > 0.0 { "inf" } else { "-inf" }.into()
            }
            _ => v.to_string(),
        }
    }

    fn err(&self, field: &str, v: &ConfigValue, reason: &str) -> ConfigError {
        ConfigError::new(&self.field(field), self.show(v), reason)
    }

    fn type_err(&self, field: &str, v: &ConfigValue, expected: &str) -> ConfigError {
        let mut e = self.err(field, v, &format!("expected {expected}"));
        e.type_mismatch = true;
        e
    }

    /// A whole number >= 1 (counts). Floats with no fraction are accepted (Node numbers).
    pub fn count(&self, field: &str, v: &ConfigValue, max: u32) -> Result<u32, ConfigError> {
        let n = match v {
            ConfigValue::Int(n) => *n,
            ConfigValue::Float(f) if f.is_finite() && f.fract() == 0.0 => *f as i64,
            ConfigValue::Float(_) => return Err(self.err(field, v, "must be a whole number")),
            _ => return Err(self.type_err(field, v, "a whole number")),
        };
        if n < 1 {
            return Err(self.err(field, v, "must be at least 1"));
        }
        if n > i64::from(max) {
            return Err(self.err(field, v, &format!("must be at most {max}")));
        }
        Ok(n as u32)
    }

    /// A rate in (0, 1].
    pub fn rate(&self, field: &str, v: &ConfigValue) -> Result<f64, ConfigError> {
        let x = self.number(field, v)?;
        check_rate(x).map(|()| x).map_err(|r| self.err(field, v, r))
    }

    /// A finite number >= 1.0 (multipliers).
    pub fn multiplier(&self, field: &str, v: &ConfigValue) -> Result<f64, ConfigError> {
        let x = self.number(field, v)?;
        check_multiplier(x).map(|()| x).map_err(|r| self.err(field, v, r))
    }

    fn number(&self, field: &str, v: &ConfigValue) -> Result<f64, ConfigError> {
        match v {
            ConfigValue::Int(n) => Ok(*n as f64),
            ConfigValue::Float(f) => Ok(*f),
            _ => Err(self.type_err(field, v, "a number")),
        }
    }

    /// A duration; bare numbers are in the caller's unit. Negative and NaN are refused,
    /// and zero too unless `zero_ok`.
    pub fn duration(&self, field: &str, v: &ConfigValue, zero_ok: bool) -> Result<Duration, ConfigError> {
        // The sign is judged on the number as given: a tiny negative count of milliseconds
        // must not pass as zero by underflowing to -0.0 in the conversion.
        let (secs, negative) = match v {
            ConfigValue::Duration(d) => (d.as_secs_f64(), false),
            ConfigValue::Int(_) | ConfigValue::Float(_) => {
                let x = self.number(field, v)?;
                let secs = match self.unit {
                    DurationUnit::Seconds => x,
                    DurationUnit::Millis => x / 1000.0,
                };
                (secs, x < 0.0)
            }
            _ => return Err(self.type_err(field, v, "a duration (number)")),
        };
        // Formatted only when refused: a valid duration allocates nothing.
        let bad = |reason: &str| {
            let shown = match (v, self.unit) {
                (ConfigValue::Duration(_), _) => v.to_string(),
                (_, DurationUnit::Seconds) => format!("{}s", self.show(v)),
                (_, DurationUnit::Millis) => format!("{}ms", self.show(v)),
            };
            ConfigError::new(&self.field(field), shown, reason)
        };
        if secs.is_nan() {
            return Err(bad("must be a number, not NaN"));
        }
        if negative || secs < 0.0 {
            return Err(bad("must not be negative"));
        }
        if secs == 0.0 && !zero_ok {
            return Err(bad("must be greater than zero"));
        }
        Duration::try_from_secs_f64(secs).map_err(|_| bad("is too large"))
    }

    /// A boolean.
    pub fn flag(&self, field: &str, v: &ConfigValue) -> Result<bool, ConfigError> {
        match v {
            ConfigValue::Bool(b) => Ok(*b),
            _ => Err(self.type_err(field, v, "a boolean")),
        }
    }

    /// Text.
    pub fn text(&self, field: &str, v: &ConfigValue) -> Result<String, ConfigError> {
        match v {
            ConfigValue::Str(s) => Ok(s.clone()),
            _ => Err(self.type_err(field, v, "a string")),
        }
    }
}

/// Why a rate is refused, if it is.
pub(crate) fn check_rate(x: f64) -> Result<(), &'static str> {
    if x.is_nan() || x <= 0.0 || x > 1.0 {
        Err("must be in (0, 1]")
    } else {
        Ok(())
    }
}

/// Why a multiplier is refused, if it is.
pub(crate) fn check_multiplier(x: f64) -> Result<(), &'static str> {
    if !x.is_finite() || x < 1.0 {
        Err("must be a finite number >= 1")
    } else {
        Ok(())
    }
}
