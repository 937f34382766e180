//! Stored results: what a completed operation leaves for its duplicates, and its byte format.
//!
//! The core treats a result as opaque bytes plus a content type (`application/json`, ...)
//! and an optional list of metadata pairs (an HTTP middleware keeps the status and headers
//! there). The encoding below is versioned and language-neutral, so a record written by a
//! Python service replays in a Node service that shares the store; its fixed 64-byte header
//! puts the token and times at fixed offsets, so a server-side store script can stamp them
//! without parsing the rest. The format is specified byte by byte in `docs/idempotency.md`.
//!
//! Version 2 ends with two CRC-32Cs, so a record that a store or a network corrupted is
//! refused when it is read (every error of up to 3 bits, every burst of up to 32 bits
//! within the header or the body), never replayed as another result: one over what the
//! writer wrote and a store keeps as it is (magic, version, flags and everything after the
//! header), one over the 64-byte header, whose token, times and fingerprint a store script
//! may stamp. The script then computes the header's CRC (64 bytes, never the result), and
//! can check it before it acts on a header field (`docs/redis.md`).
//!
//! A [`Record`] is a cheap handle (one `Arc`): handing it to every duplicate copies nothing.
//!
//! ```
//! use seawall::idempotency::{Fingerprint, Output, Record};
//! let out = Output::new(&b"{\"id\":7}"[..], "application/json").with_metadata("status", "201");
//! let record = Record::new(out, Fingerprint::of(b"body"), 3, 1_000, 86_401_000);
//! let bytes = record.encode();
//! let back = Record::decode(&bytes).unwrap();
//! assert_eq!(back, record);
//! assert_eq!(back.result(), b"{\"id\":7}");
//! assert_eq!(back.metadata_value("status"), Some("201"));
//! ```

use std::fmt;
use std::sync::Arc;

use super::fingerprint::Fingerprint;
use crate::error::Error;

/// The first three bytes of every encoded record.
pub const RECORD_MAGIC: [u8; 3] = *b"SWR";
/// The format version this build writes and the only one it reads (version 1, which had
/// no checksum, is refused).
pub const RECORD_VERSION: u8 = 2;
/// Size of the fixed header (magic, version, flags, token, times, fingerprint).
pub const RECORD_HEADER_LEN: usize = 64;
/// Flag bit: the stored result is an error the operation raised (`cache_errors`).
pub const FLAG_ERROR: u8 = 1;
/// Offset of the big-endian u64 token in an encoded record.
pub const TOKEN_OFFSET: usize = 8;
/// Offset of the big-endian u64 `created_ms` in an encoded record.
pub const CREATED_OFFSET: usize = 16;
/// Offset of the big-endian u64 `expires_ms` in an encoded record.
pub const EXPIRES_OFFSET: usize = 24;
/// Offset of the 32-byte fingerprint in an encoded record.
pub const FINGERPRINT_OFFSET: usize = 32;
/// Size of the two CRC-32Cs (big-endian u32 each) that end every encoded record: the
/// body's, then the header's.
pub const RECORD_CHECKSUM_LEN: usize = 8;
/// The shortest encoded record: header, empty content type, no metadata, empty result,
/// checksums.
pub const RECORD_MIN_LEN: usize = RECORD_HEADER_LEN + 2 + 2 + 4 + RECORD_CHECKSUM_LEN;

/// Longest content type, and longest metadata name, in bytes (u16 length).
pub const MAX_SHORT_TEXT: usize = u16::MAX as usize;
/// Most metadata pairs in one record (u16 count).
pub const MAX_METADATA: usize = u16::MAX as usize;

/// CRC-32C (Castagnoli, the iSCSI / ext4 / gRPC one), slice-by-16 tables.
const CRC32C: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// The body checksum of `record`, which ends with the result (no checksums): CRC-32C of
/// bytes `[0, 8)` (magic, version, flags, reserved), then `[64, len)`: what the writer
/// wrote and a store keeps unchanged.
fn body_checksum(record: &[u8]) -> u32 {
    let mut d = CRC32C.digest();
    d.update(&record[..TOKEN_OFFSET]);
    d.update(&record[RECORD_HEADER_LEN..]);
    d.finalize()
}

/// The header checksum: CRC-32C of bytes `[0, 64)` (what a store script may stamp).
fn header_checksum(record: &[u8]) -> u32 {
    CRC32C.checksum(&record[..RECORD_HEADER_LEN])
}

/// What an operation produced, as the binding serialised it. Becomes a [`Record`] when
/// the store takes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// The serialised result.
    pub result: Vec<u8>,
    /// How `result` is encoded (`application/json`, `application/octet-stream`, ...).
    pub content_type: String,
    /// Ordered name/value pairs (duplicates allowed), e.g. an HTTP status and headers.
    pub metadata: Vec<(String, String)>,
    /// True when `result` describes an error the operation raised (`cache_errors`).
    pub error: bool,
}

impl Output {
    /// A successful result.
    pub fn new(result: impl Into<Vec<u8>>, content_type: impl Into<String>) -> Output {
        Output { result: result.into(), content_type: content_type.into(), metadata: Vec::new(), error: false }
    }

    /// Adds one metadata pair.
    pub fn with_metadata(mut self, name: impl Into<String>, value: impl Into<String>) -> Output {
        self.metadata.push((name.into(), value.into()));
        self
    }

    /// Marks the result as an error the operation raised.
    pub fn into_error(mut self) -> Output {
        self.error = true;
        self
    }

    /// Bytes this output occupies in a store's budget: result + content type + metadata.
    pub fn size(&self) -> usize {
        self.result.len() + self.content_type.len() + self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }

    /// Checks what the record format can hold (content type and metadata name lengths,
    /// pair count, result under 4 GiB).
    pub fn check(&self) -> Result<(), Error> {
        let bad = |what: String| Err(Error::InvalidArgument(what));
        if self.content_type.len() > MAX_SHORT_TEXT {
            return bad(format!("content type is {} bytes; at most {MAX_SHORT_TEXT}", self.content_type.len()));
        }
        if self.metadata.len() > MAX_METADATA {
            return bad(format!("{} metadata pairs; at most {MAX_METADATA}", self.metadata.len()));
        }
        if let Some((k, _)) = self.metadata.iter().find(|(k, _)| k.len() > MAX_SHORT_TEXT) {
            return bad(format!("metadata name is {} bytes; at most {MAX_SHORT_TEXT}", k.len()));
        }
        if let Some((k, _)) = self.metadata.iter().find(|(_, v)| v.len() > u32::MAX as usize) {
            return bad(format!("metadata value of {k:?} is over 4 GiB"));
        }
        if self.result.len() > u32::MAX as usize {
            return bad(format!("result is {} bytes; at most {}", self.result.len(), u32::MAX));
        }
        Ok(())
    }
}

#[derive(PartialEq, Eq)]
struct Data {
    result: Box<[u8]>,
    content_type: String,
    metadata: Vec<(String, String)>,
    error: bool,
    fingerprint: Fingerprint,
    token: u64,
    created_ms: u64,
    expires_ms: u64,
}

/// A completed result as stored: the output plus the fingerprint, fencing token and times
/// (milliseconds on the store's clock) of the run that produced it. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    data: Arc<Data>,
}

impl Record {
    /// Builds a record (stores do this when a lease completes).
    pub fn new(output: Output, fingerprint: Fingerprint, token: u64, created_ms: u64, expires_ms: u64) -> Record {
        let Output { result, content_type, metadata, error } = output;
        Record {
            data: Arc::new(Data {
                result: result.into_boxed_slice(),
                content_type,
                metadata,
                error,
                fingerprint,
                token,
                created_ms,
                expires_ms,
            }),
        }
    }

    /// The serialised result.
    pub fn result(&self) -> &[u8] {
        &self.data.result
    }

    /// How the result is encoded.
    pub fn content_type(&self) -> &str {
        &self.data.content_type
    }

    /// The metadata pairs, in order.
    pub fn metadata(&self) -> &[(String, String)] {
        &self.data.metadata
    }

    /// The first value of metadata `name`.
    pub fn metadata_value(&self, name: &str) -> Option<&str> {
        self.data.metadata.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// True when the result is an error the operation raised (stored with `cache_errors`).
    pub fn is_error(&self) -> bool {
        self.data.error
    }

    /// The fingerprint of the request that produced it.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.data.fingerprint
    }

    /// The fencing token of the lease that completed it.
    pub fn token(&self) -> u64 {
        self.data.token
    }

    /// When it was stored, in ms on the store's clock.
    pub fn created_ms(&self) -> u64 {
        self.data.created_ms
    }

    /// When it expires (`created_ms + ttl`), in ms on the store's clock.
    pub fn expires_ms(&self) -> u64 {
        self.data.expires_ms
    }

    /// Bytes this record occupies in a store's budget (result + content type + metadata).
    pub fn size(&self) -> usize {
        let d = &self.data;
        d.result.len() + d.content_type.len() + d.metadata.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }

    /// A copy of the output (to store it elsewhere).
    pub fn to_output(&self) -> Output {
        let d = &self.data;
        Output {
            result: d.result.to_vec(),
            content_type: d.content_type.clone(),
            metadata: d.metadata.clone(),
            error: d.error,
        }
    }

    /// The version-2 encoding (see `docs/idempotency.md`). Records built from an [`Output`]
    /// that passed [`Output::check`] always encode; longer fields are cut to their limits.
    pub fn encode(&self) -> Vec<u8> {
        let d = &self.data;
        let mut out = Vec::with_capacity(RECORD_MIN_LEN + self.size() + 6 * d.metadata.len());
        out.extend_from_slice(&RECORD_MAGIC);
        out.push(RECORD_VERSION);
        out.push(if d.error { FLAG_ERROR } else { 0 });
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&d.token.to_be_bytes());
        out.extend_from_slice(&d.created_ms.to_be_bytes());
        out.extend_from_slice(&d.expires_ms.to_be_bytes());
        out.extend_from_slice(d.fingerprint.as_bytes());
        debug_assert_eq!(out.len(), RECORD_HEADER_LEN);
        put_short(&mut out, d.content_type.as_bytes());
        let pairs = d.metadata.len().min(MAX_METADATA);
        out.extend_from_slice(&(pairs as u16).to_be_bytes());
        for (k, v) in &d.metadata[..pairs] {
            put_short(&mut out, k.as_bytes());
            put_long(&mut out, v.as_bytes());
        }
        put_long(&mut out, &d.result);
        let (body, header) = (body_checksum(&out), header_checksum(&out));
        out.extend_from_slice(&body.to_be_bytes());
        out.extend_from_slice(&header.to_be_bytes());
        out
    }

    /// Reads an encoded record. Refuses other versions, unknown flags, truncated or
    /// trailing bytes, text that is not UTF-8 and a checksum that does not match (the bytes
    /// were corrupted), each with an error that says which.
    pub fn decode(bytes: &[u8]) -> Result<Record, Error> {
        let bad = |why: String| Error::InvalidArgument(format!("cannot decode idempotency record: {why}"));
        if bytes.len() < 4 || bytes[..3] != RECORD_MAGIC {
            return Err(bad("not a seawall record (it does not start with \"SWR\")".to_owned()));
        }
        if bytes[3] != RECORD_VERSION {
            return Err(bad(format!(
                "record format version {} is not supported (this build reads version {RECORD_VERSION})",
                bytes[3]
            )));
        }
        if bytes.len() < RECORD_HEADER_LEN {
            return Err(bad(format!("truncated header ({} of {RECORD_HEADER_LEN} bytes)", bytes.len())));
        }
        let flags = bytes[4];
        if flags & !FLAG_ERROR != 0 {
            return Err(bad(format!("unknown flags 0x{flags:02x}")));
        }
        if bytes[5..8] != [0, 0, 0] {
            return Err(bad("reserved header bytes 5..8 are not zero".to_owned()));
        }
        let u64_at = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let mut fp = [0u8; 32];
        fp.copy_from_slice(&bytes[FINGERPRINT_OFFSET..FINGERPRINT_OFFSET + 32]);
        let mut r = Reader { bytes, at: RECORD_HEADER_LEN };
        let content_type = r.text("content type", 2)?;
        let pairs = r.len("metadata count", 2)?;
        let mut metadata = Vec::with_capacity(pairs.min(1024));
        for _ in 0..pairs {
            let k = r.text("metadata name", 2)?;
            let v = r.text("metadata value", 4)?;
            metadata.push((k, v));
        }
        let n = r.len("result length", 4)?;
        let result = r.take("result", n)?.to_vec();
        let end = r.at;
        let sums = r.take("checksums", RECORD_CHECKSUM_LEN)?;
        if r.at != bytes.len() {
            return Err(bad(format!("{} trailing bytes after the checksums", bytes.len() - r.at)));
        }
        let u32_at = |at: usize| u32::from_be_bytes(sums[at..at + 4].try_into().expect("4 bytes"));
        let (body, header) = (u32_at(0), u32_at(4));
        for (what, stored, computed) in
            [("body", body, body_checksum(&bytes[..end])), ("header", header, header_checksum(bytes))]
        {
            if stored != computed {
                return Err(bad(format!(
                    "{what} checksum mismatch (CRC-32C stored 0x{stored:08x}, computed 0x{computed:08x}): the record \
                     was corrupted in the store or on the way"
                )));
            }
        }
        let output = Output { result, content_type, metadata, error: flags & FLAG_ERROR != 0 };
        Ok(Record::new(output, Fingerprint::from_bytes(fp), u64_at(TOKEN_OFFSET), u64_at(CREATED_OFFSET), u64_at(EXPIRES_OFFSET)))
    }
}

fn put_short(out: &mut Vec<u8>, b: &[u8]) {
    let b = &b[..b.len().min(MAX_SHORT_TEXT)];
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

fn put_long(out: &mut Vec<u8>, b: &[u8]) {
    let b = &b[..b.len().min(u32::MAX as usize)];
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, what: &str, n: usize) -> Result<&'a [u8], Error> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "cannot decode idempotency record: truncated {what} (needs {n} bytes at offset {}, {} left)",
                self.at,
                self.bytes.len() - self.at
            ))
        })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn len(&mut self, what: &str, width: usize) -> Result<usize, Error> {
        let b = self.take(what, width)?;
        Ok(b.iter().fold(0usize, |n, &x| (n << 8) | usize::from(x)))
    }

    fn text(&mut self, what: &str, width: usize) -> Result<String, Error> {
        let n = self.len(what, width)?;
        let at = self.at;
        let b = self.take(what, n)?;
        String::from_utf8(b.to_vec()).map_err(|_| {
            Error::InvalidArgument(format!("cannot decode idempotency record: {what} at offset {at} is not UTF-8"))
        })
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.data;
        f.debug_struct("Record")
            .field("result_len", &d.result.len())
            .field("content_type", &d.content_type)
            .field("metadata", &d.metadata)
            .field("error", &d.error)
            .field("fingerprint", &d.fingerprint)
            .field("token", &d.token)
            .field("created_ms", &d.created_ms)
            .field("expires_ms", &d.expires_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        let out = Output::new(&b"hello"[..], "text/plain")
            .with_metadata("status", "201")
            .with_metadata("set-cookie", "a=1")
            .with_metadata("set-cookie", "b=2");
        Record::new(out, Fingerprint::of(b"x"), 0x0102_0304_0506_0708, 5, 86_400_005)
    }

    #[test]
    fn round_trip_and_fixed_offsets() {
        let r = sample();
        let b = r.encode();
        assert_eq!(&b[..4], b"SWR\x02");
        assert_eq!(b[4], 0);
        assert_eq!(&b[TOKEN_OFFSET..TOKEN_OFFSET + 8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(u64::from_be_bytes(b[CREATED_OFFSET..CREATED_OFFSET + 8].try_into().unwrap()), 5);
        assert_eq!(u64::from_be_bytes(b[EXPIRES_OFFSET..EXPIRES_OFFSET + 8].try_into().unwrap()), 86_400_005);
        assert_eq!(&b[FINGERPRINT_OFFSET..FINGERPRINT_OFFSET + 32], Fingerprint::of(b"x").as_bytes());
        let back = Record::decode(&b).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.metadata().len(), 3);
        assert_eq!(back.metadata_value("set-cookie"), Some("a=1"));
        assert_eq!(back.size(), 5 + 10 + (6 + 3) + (10 + 3) * 2);
    }

    #[test]
    fn exact_bytes_of_a_small_record() {
        let r = Record::new(Output::new(&b"ok"[..], "t").into_error(), Fingerprint::NONE, 1, 2, 3);
        let mut want = b"SWR\x02\x01\0\0\0".to_vec();
        want.extend_from_slice(&1u64.to_be_bytes());
        want.extend_from_slice(&2u64.to_be_bytes());
        want.extend_from_slice(&3u64.to_be_bytes());
        want.extend_from_slice(&[0; 32]);
        want.extend_from_slice(&[0, 1, b't', 0, 0, 0, 0, 0, 2, b'o', b'k']);
        // CRC-32C of [0, 8) + [64, 75), then of [0, 64): the example of docs/idempotency.md.
        want.extend_from_slice(&[0xe7, 0x29, 0x7c, 0x37, 0x8c, 0x74, 0x66, 0xd5]);
        assert_eq!(r.encode(), want);
        assert!(Record::decode(&want).unwrap().is_error());
    }

    #[test]
    fn decode_refuses_bad_input_clearly() {
        let good = sample().encode();
        let msg = |b: &[u8]| Record::decode(b).unwrap_err().to_string();
        let mut v1 = good.clone();
        v1[3] = 1;
        assert!(msg(&v1).contains("record format version 1 is not supported (this build reads version 2)"), "{}", msg(&v1));
        assert!(msg(b"nope").contains("not a seawall record"));
        assert!(msg(&good[..40]).contains("truncated header"));
        let short = |n: usize| msg(&good[..good.len() - n]);
        assert!(short(1).contains("truncated checksums (needs 8 bytes"), "{}", short(1));
        assert!(short(9).contains("truncated result"), "{}", short(9));
        let mut extra = good.clone();
        extra.push(0);
        assert!(msg(&extra).contains("1 trailing bytes after the checksums"), "{}", msg(&extra));
        let flip = |at: usize, bit: u8| {
            let mut b = good.clone();
            b[at] ^= bit;
            msg(&b)
        };
        let m = flip(good.len() - RECORD_CHECKSUM_LEN - 1, 1); // the last byte of the result
        assert!(m.contains("body checksum mismatch (CRC-32C stored 0x") && m.contains("corrupted"), "{m}");
        assert!(flip(4, 1).contains("body checksum mismatch"), "the error flag: {}", flip(4, 1));
        assert!(flip(TOKEN_OFFSET + 7, 0x80).contains("header checksum mismatch"), "{}", flip(TOKEN_OFFSET + 7, 0x80));
        assert!(flip(good.len() - 5, 1).contains("body checksum mismatch"));
        assert!(flip(good.len() - 1, 1).contains("header checksum mismatch"));
        let mut flags = good.clone();
        flags[4] = 0x80;
        assert!(msg(&flags).contains("unknown flags"));
        let mut reserved = good.clone();
        reserved[6] = 1;
        assert!(msg(&reserved).contains("reserved"));
        let mut utf = good;
        utf[RECORD_HEADER_LEN + 2] = 0xff; // first byte of the content type
        assert!(msg(&utf).contains("content type at offset 66 is not UTF-8"), "{}", msg(&utf));
    }

    /// CRC-32C one bit at a time (the definition; the Redis scripts use a table).
    fn crc32c_bitwise(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = (c >> 1) ^ (0x82F6_3B78 & (c & 1).wrapping_neg());
            }
        }
        !c
    }

    #[test]
    fn the_checksums_are_crc32c_of_the_body_and_of_the_header() {
        assert_eq!(crc32c_bitwise(b"123456789"), 0xe306_9283, "the CRC-32C check value");
        assert_eq!(CRC32C.checksum(b"123456789"), 0xe306_9283);
        let b = sample().encode();
        let n = b.len() - RECORD_CHECKSUM_LEN;
        let body: Vec<u8> = b[..8].iter().chain(&b[64..n]).copied().collect();
        assert_eq!(b[n..n + 4], crc32c_bitwise(&body).to_be_bytes());
        assert_eq!(b[n + 4..], crc32c_bitwise(&b[..64]).to_be_bytes());
        // What a store script does (the Redis complete script): stamp [8, 64) of a draft and
        // write the header's CRC; the body's CRC stays the writer's.
        let draft = Record::new(sample().to_output(), Fingerprint::NONE, 0, 0, 0).encode();
        assert_eq!(draft[..8], b[..8]);
        assert_eq!(draft[64..n + 4], b[64..n + 4]);
        let mut stamped = draft.clone();
        stamped[8..64].copy_from_slice(&b[8..64]);
        assert!(Record::decode(&stamped).unwrap_err().to_string().contains("header checksum mismatch"));
        let crc = crc32c_bitwise(&stamped[..64]);
        stamped[n + 4..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(stamped, b);
        assert_eq!(Record::decode(&stamped).unwrap(), sample());
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        for r in [sample(), Record::new(Output::new(vec![], ""), Fingerprint::NONE, 0, 0, 0)] {
            let good = r.encode();
            assert_eq!(Record::decode(&good).unwrap(), r);
            for at in 0..good.len() {
                for bit in 0..8 {
                    let mut b = good.clone();
                    b[at] ^= 1 << bit;
                    assert!(Record::decode(&b).is_err(), "bit {bit} at offset {at}");
                }
            }
        }
    }

    #[test]
    fn output_check_limits() {
        assert!(Output::new(vec![], "x".repeat(MAX_SHORT_TEXT + 1)).check().is_err());
        assert!(Output::new(vec![], "x".repeat(MAX_SHORT_TEXT)).check().is_ok());
        let e = Output::new(vec![], "t").with_metadata("k".repeat(70_000), "v").check().unwrap_err();
        assert!(e.to_string().contains("metadata name is 70000 bytes"));
    }
}
