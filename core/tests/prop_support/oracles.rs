//! Checks shared by the property tests, the fuzz targets (`fuzz/`, which include this file
//! by path) and the replay of the committed fuzz corpus: each takes raw input, feeds it to
//! one parser, and panics when the answer breaks the parser's contract (docs/hardening.md).
//! Depends on nothing but `seawall` and `std`.
#![allow(dead_code)]

use std::time::Duration;

use seawall::deadline::{format_grpc_timeout, parse_grpc_timeout};
use seawall::idempotency::{key_from_bytes, validate_key, Record, MAX_KEY_BYTES};
use seawall::options::snake_case;
use seawall::{BreakerConfig, CircuitBreaker, ConfigValue, DurationUnit, ErrorCode, IdempotencyConfig, ManualClock, Naming, Style};

const GRPC_UNITS: [(u8, u64); 6] =
    [(b'n', 1), (b'u', 1_000), (b'm', 1_000_000), (b'S', 1_000_000_000), (b'M', 60_000_000_000), (b'H', 3_600_000_000_000)];

/// `grpc-timeout`: a value exactly for 1 to 8 ASCII digits and a unit; the value they say;
/// otherwise an `InvalidArgument` quoting the header. A value formats back to a header
/// that reads as the same value.
pub fn check_grpc_timeout(s: &str) {
    let b = s.as_bytes();
    let unit = b.last().and_then(|u| GRPC_UNITS.iter().find(|(c, _)| c == u)).map(|(_, ns)| *ns);
    let well_formed = (2..=9).contains(&b.len()) && b[..b.len() - 1].iter().all(u8::is_ascii_digit) && unit.is_some();
    match parse_grpc_timeout(s) {
        Ok(d) => {
            assert!(well_formed, "accepted {s:?}");
            let n: u128 = s[..s.len() - 1].parse().unwrap();
            assert_eq!(d.as_nanos(), n * u128::from(unit.unwrap()), "{s:?}");
            let again = format_grpc_timeout(d);
            assert_eq!(parse_grpc_timeout(&again).unwrap(), d, "{s:?} -> {d:?} -> {again:?}");
        }
        Err(e) => {
            assert!(!well_formed, "refused well-formed {s:?}: {e}");
            assert_eq!(e.code(), ErrorCode::InvalidArgument);
            assert!(e.to_string().contains("grpc-timeout"), "{e}");
        }
    }
}

/// Raw key bytes: a key exactly for valid UTF-8 of 1 to 255 bytes; otherwise an
/// `InvalidArgument` naming the length (judged first, before the bytes are read) or the
/// offset of the first bad byte.
pub fn check_key_bytes(bytes: &[u8]) {
    match key_from_bytes(bytes) {
        Ok(k) => {
            assert_eq!(k.as_bytes(), bytes);
            assert!(!bytes.is_empty() && bytes.len() <= MAX_KEY_BYTES);
            assert!(validate_key(k).is_ok());
        }
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::InvalidArgument);
            let msg = e.to_string();
            assert!(msg.contains("idempotency key") && msg.contains("1 to 255 bytes"), "{msg}");
            match std::str::from_utf8(bytes) {
                _ if bytes.is_empty() => assert!(msg.contains("empty"), "{msg}"),
                _ if bytes.len() > MAX_KEY_BYTES => assert!(msg.contains(&format!("{} bytes long", bytes.len())), "{msg}"),
                Err(u) => assert!(msg.contains(&format!("invalid byte at offset {}", u.valid_up_to())), "{msg}"),
                Ok(_) => panic!("a short UTF-8 key was refused: {msg}"),
            }
        }
    }
}

/// Record bytes: an `InvalidArgument`, or a record whose encoding is exactly these bytes.
pub fn check_record_bytes(bytes: &[u8]) {
    match Record::decode(bytes) {
        Ok(r) => assert_eq!(r.encode(), bytes, "accepted bytes are not the canonical encoding of {r:?}"),
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::InvalidArgument);
            assert!(e.to_string().contains("cannot decode idempotency record: "), "{e}");
        }
    }
}

const BREAKER_NAMES: &[&str] = seawall::breaker::OPTION_NAMES;
/// Every name `IdempotencyConfig::set` accepts, canonical spelling: the core's own lists,
/// so a new option is fuzzed the day it lands.
pub fn idem_names() -> &'static [&'static str] {
    use seawall::idempotency::{OPTION_ALIASES, OPTION_NAMES};
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| OPTION_NAMES.iter().chain(OPTION_ALIASES).copied().collect())
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |n, _| n << 8 | u64::from(self.u8()))
    }

    fn text(&mut self) -> String {
        let n = usize::from(self.u8() % 40).min(self.0.len());
        let (t, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8_lossy(t).into_owned()
    }
}

fn value(r: &mut Reader<'_>) -> ConfigValue {
    match r.u8() % 8 {
        0 => ConfigValue::Int(r.u64() as i64),
        1 => ConfigValue::Int(i64::from(r.u8()) - 8),
        2 => ConfigValue::Float(f64::from_bits(r.u64())),
        3 => ConfigValue::Float(f64::from(r.u8()) / 8.0),
        4 => ConfigValue::Str(r.text()),
        5 => ConfigValue::Bool(r.u8() & 1 == 1),
        6 => ConfigValue::Duration(Duration::new(r.u64() >> (r.u8() % 64), u32::from(r.u8()) * 3_000_000)),
        _ => ConfigValue::Other(r.text()),
    }
}

fn name(r: &mut Reader<'_>, known: &[&str], s: Style) -> String {
    let k = known[usize::from(r.u8()) % known.len()];
    match r.u8() % 6 {
        0..=2 => s.field(k),
        3 => k.to_owned(),
        _ => r.text(),
    }
}

/// One configuration given option by option from raw bytes (both kinds, any style): no
/// panic; every refusal names the field as spelled (or the unknown name as given) and
/// shows the value; what `set` accepted builds, or `validate` names an option.
pub fn check_config_bytes(bytes: &[u8]) {
    let mut r = Reader(bytes);
    let first = r.u8();
    let s = Style {
        naming: if first & 1 == 0 { Naming::Snake } else { Naming::Camel },
        unit: if first & 2 == 0 { DurationUnit::Millis } else { DurationUnit::Seconds },
    };
    let breaker = first & 4 == 0;
    let known = if breaker { BREAKER_NAMES } else { idem_names() };
    let mut b = BreakerConfig::with_style(s).with_clock(ManualClock::shared());
    let mut c = IdempotencyConfig::with_style(s).with_clock(ManualClock::shared());
    for _ in 0..12 {
        if r.0.is_empty() {
            break;
        }
        let n = name(&mut r, known, s);
        let v = value(&mut r);
        let result = if breaker { b.set(&n, v) } else { c.set(&n, v) };
        if let Err(e) = result {
            let snake = snake_case(&n);
            if known.contains(&snake.as_str()) {
                assert_eq!(e.field, s.field(&snake), "set({n:?}) names the field as the caller spells it");
            } else {
                assert_eq!((e.field.as_str(), e.reason.as_str()), (n.as_str(), "unknown option"));
            }
            assert!(!e.value.is_empty() && !e.reason.is_empty());
            let msg = e.to_string();
            assert!(msg.contains(&e.field) && msg.contains(&e.value), "{msg}");
        }
    }
    let named = |field: &str| known.iter().any(|f| s.field(f) == field);
    if breaker {
        match b.validate() {
            Ok(()) => {
                let br = CircuitBreaker::new(b).expect("validated");
                let _ = br.try_acquire().map(|p| p.failure(Duration::from_millis(1)));
                let _ = br.snapshot();
            }
            Err(e) => assert!(named(&e.field), "validate names an option: {e:?}"),
        }
    } else {
        match c.validate() {
            Ok(()) => {
                seawall::IdempotencyCache::new(c).expect("validated");
            }
            Err(e) => assert!(named(&e.field), "validate names an option: {e:?}"),
        }
    }
}
