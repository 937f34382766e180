//! Idempotency keys: 1 to 255 bytes of UTF-8.
//!
//! The bound is in bytes, not characters, because stores (Redis keys, HTTP headers, C
//! buffers) measure bytes; 255 leaves room for a namespace prefix and a scope (method,
//! path, caller identity) that middlewares add. Bindings that receive raw bytes (C) check
//! them with [`key_from_bytes`], so a non-UTF-8 key gets the same error everywhere.
//!
//! ```
//! use seawall::idempotency::{validate_key, MAX_KEY_BYTES};
//! assert!(validate_key("order-42").is_ok());
//! assert!(validate_key("").is_err());
//! let long = "é".repeat(128); // 256 bytes
//! assert!(validate_key(&long).unwrap_err().to_string().contains("256 bytes"));
//! assert_eq!(MAX_KEY_BYTES, 255);
//! ```

use crate::error::Error;

/// The longest key accepted, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 255;

/// Checks a key's length: 1 to [`MAX_KEY_BYTES`] bytes.
pub fn validate_key(key: &str) -> Result<(), Error> {
    check_key_len(key.len())
}

/// Checks a key's length in bytes (1 to [`MAX_KEY_BYTES`]) before anything reads the key:
/// a binding handed a pointer and a length (C) calls it first, so an absurd length is
/// refused without touching memory.
pub fn check_key_len(n: usize) -> Result<(), Error> {
    if n == 0 {
        return Err(Error::InvalidArgument(
            "idempotency key is empty (0 bytes); a key is 1 to 255 bytes of UTF-8".to_owned(),
        ));
    }
    if n > MAX_KEY_BYTES {
        return Err(Error::InvalidArgument(format!(
            "idempotency key is {n} bytes long; a key is 1 to 255 bytes of UTF-8"
        )));
    }
    Ok(())
}

/// Checks raw bytes as a key: valid UTF-8 and 1 to [`MAX_KEY_BYTES`] bytes.
///
/// ```
/// use seawall::idempotency::key_from_bytes;
/// assert_eq!(key_from_bytes(b"k1").unwrap(), "k1");
/// let e = key_from_bytes(&[b'a', 0xff]).unwrap_err();
/// assert!(e.to_string().contains("not valid UTF-8"));
/// ```
pub fn key_from_bytes(bytes: &[u8]) -> Result<&str, Error> {
    // The length first: a key far too long is refused without reading it.
    check_key_len(bytes.len())?;
    let key = std::str::from_utf8(bytes).map_err(|e| {
        Error::InvalidArgument(format!(
            "idempotency key is not valid UTF-8 (invalid byte at offset {}); a key is 1 to 255 bytes of UTF-8",
            e.valid_up_to()
        ))
    })?;
    validate_key(key)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_in_bytes() {
        assert!(validate_key("a").is_ok());
        assert!(validate_key(&"a".repeat(255)).is_ok());
        assert!(validate_key(&"é".repeat(127)).is_ok()); // 254 bytes
        let e = validate_key(&"a".repeat(256)).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InvalidArgument);
        assert!(e.to_string().contains("256 bytes"), "{e}");
        assert!(validate_key("").unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn raw_bytes_must_be_utf8() {
        let e = key_from_bytes(&[0xc3]).unwrap_err();
        assert!(e.to_string().contains("offset 0"), "{e}");
        assert!(key_from_bytes(&[]).is_err());
    }
}
