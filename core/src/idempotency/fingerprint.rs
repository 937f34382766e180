//! Request fingerprints: the SHA-256 of the canonical payload a binding supplies.
//!
//! A key reused with another payload is a client bug (Stripe, the IETF draft: 422), not a
//! retry, so the cache compares fingerprints. The core hashes bytes and nothing else; how a
//! payload becomes canonical bytes (sorted JSON keys, the raw body, method + path + body) is
//! the binding's or the user's choice, so a Python and a Node service that canonicalise the
//! same way produce the same fingerprint.
//!
//! "No fingerprint" is [`Fingerprint::NONE`] (32 zero bytes): it matches only itself, so
//! a key used once without and once with a fingerprint is a mismatch. No SHA-256 output is
//! expected to be all zeros.
//!
//! ```
//! use seawall::idempotency::{fingerprint, Fingerprint};
//! let f = fingerprint(b"abc");
//! assert_eq!(f.to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
//! assert_eq!(Fingerprint::from_hex(&f.to_hex()).unwrap(), f);
//! assert!(Fingerprint::NONE.is_none());
//! ```

use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::Error;

/// A 32-byte request fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// No fingerprint: 32 zero bytes. Matches only itself.
    pub const NONE: Fingerprint = Fingerprint([0; 32]);

    /// The SHA-256 of `payload`.
    pub fn of(payload: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(payload).into())
    }

    /// A fingerprint computed elsewhere (or read back from a record).
    pub const fn from_bytes(bytes: [u8; 32]) -> Fingerprint {
        Fingerprint(bytes)
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// True for [`Fingerprint::NONE`].
    pub fn is_none(&self) -> bool {
        self.0 == [0; 32]
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(DIGITS[usize::from(b >> 4)] as char);
            s.push(DIGITS[usize::from(b & 15)] as char);
        }
        s
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(hex: &str) -> Result<Fingerprint, Error> {
        let bad = || Error::InvalidArgument(format!("a fingerprint is 64 hex digits, got {hex:?}"));
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return Err(bad());
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = (digit(pair[0]).ok_or_else(bad)? << 4) | digit(pair[1]).ok_or_else(bad)?;
        }
        Ok(Fingerprint(out))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            f.write_str("Fingerprint(NONE)")
        } else {
            write!(f, "Fingerprint({})", self.to_hex())
        }
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The SHA-256 of `payload` (same as [`Fingerprint::of`]).
///
/// ```
/// assert_eq!(seawall::idempotency::fingerprint(b"").to_hex(),
///            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
/// ```
pub fn fingerprint(payload: &[u8]) -> Fingerprint {
    Fingerprint::of(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors_and_hex_round_trip() {
        let f = fingerprint(b"abc");
        assert_eq!(f.to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(Fingerprint::from_hex(&f.to_hex().to_uppercase()).unwrap(), f);
        assert!(!f.is_none());
        assert_ne!(fingerprint(b"abd"), f);
    }

    #[test]
    fn bad_hex_is_refused_with_the_text() {
        for bad in ["", "zz", &"g".repeat(64), &"a".repeat(63)] {
            let e = Fingerprint::from_hex(bad).unwrap_err();
            assert!(e.to_string().contains("64 hex digits"), "{e}");
        }
    }

    #[test]
    fn none_is_zero_and_debug_says_so() {
        assert_eq!(Fingerprint::default(), Fingerprint::NONE);
        assert_eq!(format!("{:?}", Fingerprint::NONE), "Fingerprint(NONE)");
    }
}
