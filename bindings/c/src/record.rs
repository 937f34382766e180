//! Stored idempotency results: read-only record handles whose bytes belong to the library,
//! and the version-1 record byte format (`seawall_idem_record_encode` / `_decode`).

use std::ffi::c_char;
use std::sync::OnceLock;

use seawall::{Error, Record};

use crate::status::{arg, free_boxed, guard, null, put, put_box, put_opt, seawall_status};

/// A completed result: the bytes the operation produced, its content type, ordered
/// metadata pairs, an error flag (`cache_errors`), the fencing token of the lease that
/// completed it and its created / expires times. Read-only; every pointer it hands out
/// points into the record and stays valid until `seawall_idem_record_free`.
///
/// Thread safety: a record handle may be read by any number of threads at once; free it
/// once, when no other thread uses it. Records are shared, not copied: a replay hands out
/// the stored record itself.
#[allow(non_camel_case_types)]
pub struct seawall_idem_record {
    pub(crate) inner: Record,
    /// The texts as NUL-terminated copies, made the first time C asks for them (a replay
    /// that only reads the result bytes copies nothing).
    texts: OnceLock<Texts>,
}

/// Text followed by a NUL.
type CText = Box<[u8]>;

struct Texts {
    content_type: CText,
    metadata: Vec<(CText, CText)>,
}

/// `s` followed by a NUL.
fn nul_terminated(s: &str) -> CText {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v.into_boxed_slice()
}

impl seawall_idem_record {
    pub(crate) fn new(inner: Record) -> Self {
        Self {
            inner,
            texts: OnceLock::new(),
        }
    }

    fn texts(&self) -> &Texts {
        self.texts.get_or_init(|| Texts {
            content_type: nul_terminated(self.inner.content_type()),
            metadata: self
                .inner
                .metadata()
                .iter()
                .map(|(k, v)| (nul_terminated(k), nul_terminated(v)))
                .collect(),
        })
    }
}

/// A record handle for C (NULL-safe out-parameter).
pub(crate) fn boxed_record(r: Record) -> *mut seawall_idem_record {
    Box::into_raw(Box::new(seawall_idem_record::new(r)))
}

/// The fixed-size facts of a record (`seawall_idem_record_get_info`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct seawall_idem_record_info {
    /// The fencing token of the lease that completed it.
    pub token: u64,
    /// When it was stored, in ms on the store's clock (the cache's clock for the memory
    /// store: a manual clock starts at 0).
    pub created_ms: u64,
    /// When it expires (`created_ms + ttl`), in ms on the store's clock.
    pub expires_ms: u64,
    /// True when the result is an error the operation raised (stored by
    /// `seawall_idem_fail` with `cache_errors`): raise it again rather than return it.
    pub error: bool,
    /// The SHA-256 of the request payload that produced it (all zeros: no fingerprint).
    pub fingerprint: [u8; 32],
}

/// The result bytes: `*out_data` points to `*out_len` bytes owned by the record, valid
/// until `seawall_idem_record_free` (never NULL, even for an empty result).
///
/// # Safety
/// `record` must be NULL or a live record; `out_data` and `out_len` NULL or valid for
/// writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_record_result(
    record: *const seawall_idem_record,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> seawall_status {
    guard(|| {
        let r = arg(record, "record")?;
        if out_data.is_null() {
            return Err(null("out_data"));
        }
        let bytes = r.inner.result();
        put(out_len, "out_len", bytes.len())?;
        out_data.write(bytes.as_ptr());
        Ok(())
    })
}

/// The content type (`""` when none was given), NUL-terminated, owned by the record and
/// valid until `seawall_idem_record_free`. `*out_len` (when `out_len` is not NULL)
/// receives its length in bytes, without the NUL.
///
/// # Safety
/// `record` must be NULL or a live record; `out_text` NULL or valid for writing;
/// `out_len` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_record_content_type(
    record: *const seawall_idem_record,
    out_text: *mut *const c_char,
    out_len: *mut usize,
) -> seawall_status {
    guard(|| {
        let r = arg(record, "record")?;
        if out_text.is_null() {
            return Err(null("out_text"));
        }
        let t = &r.texts().content_type;
        out_text.write(t.as_ptr().cast());
        put_opt(out_len, t.len() - 1);
        Ok(())
    })
}

/// The number of metadata pairs (e.g. an HTTP status and headers), in the order they were
/// stored, duplicates kept.
///
/// # Safety
/// `record` must be NULL or a live record; `out_count` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_record_metadata_count(
    record: *const seawall_idem_record,
    out_count: *mut usize,
) -> seawall_status {
    guard(|| {
        let r = arg(record, "record")?;
        put(out_count, "out_count", r.inner.metadata().len())
    })
}

/// Metadata pair `index` (0-based): name and value, NUL-terminated, owned by the record
/// and valid until `seawall_idem_record_free`. The lengths (without the NUL) go to
/// `out_name_len` / `out_value_len` when those are not NULL. An index past the last pair
/// is `SEAWALL_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `record` must be NULL or a live record; `out_name` and `out_value` NULL or valid for
/// writing; the length pointers NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_record_metadata_get(
    record: *const seawall_idem_record,
    index: usize,
    out_name: *mut *const c_char,
    out_name_len: *mut usize,
    out_value: *mut *const c_char,
    out_value_len: *mut usize,
) -> seawall_status {
    guard(|| {
        let r = arg(record, "record")?;
        if out_name.is_null() {
            return Err(null("out_name"));
        }
        if out_value.is_null() {
            return Err(null("out_value"));
        }
        let pairs = &r.texts().metadata;
        let (k, v) = pairs.get(index).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "index = {index}: the record has {} metadata pairs",
                pairs.len()
            ))
        })?;
        out_name.write(k.as_ptr().cast());
        out_value.write(v.as_ptr().cast());
        put_opt(out_name_len, k.len() - 1);
        put_opt(out_value_len, v.len() - 1);
        Ok(())
    })
}

/// Fills `out_info` with the record's token, times, error flag and fingerprint.
///
/// # Safety
/// `record` must be NULL or a live record; `out_info` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_record_get_info(
    record: *const seawall_idem_record,
    out_info: *mut seawall_idem_record_info,
) -> seawall_status {
    guard(|| {
        let r = &arg(record, "record")?.inner;
        put(
            out_info,
            "out_info",
            seawall_idem_record_info {
                token: r.token(),
                created_ms: r.created_ms(),
                expires_ms: r.expires_ms(),
                error: r.is_error(),
                fingerprint: *r.fingerprint().as_bytes(),
            },
        )
    })
}

/// Frees a record handle. `seawall_idem_record_free(NULL)` does nothing.
///
/// # Safety
/// `record` must be NULL or a live record, not used afterwards (by any thread).
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_record_free(record: *mut seawall_idem_record) {
    free_boxed(record);
}

/// Bytes owned by the library (e.g. an encoded record). Read `len` bytes at `data`; free
/// them with `seawall_bytes_free`, which also resets the struct to `{NULL, 0}`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug)]
pub struct seawall_bytes {
    /// The bytes (NULL only for a freed or never-filled struct).
    pub data: *mut u8,
    /// How many.
    pub len: usize,
}

/// Frees bytes the library handed out and sets `bytes` to `{NULL, 0}`. Freeing `{NULL, 0}`
/// (or passing NULL) does nothing, so freeing twice is harmless.
///
/// # Safety
/// `bytes` must be NULL or point to a `seawall_bytes` that is `{NULL, 0}` or was filled by
/// seawall and not changed since.
#[no_mangle]
pub unsafe extern "C" fn seawall_bytes_free(bytes: *mut seawall_bytes) {
    if let Some(b) = bytes.as_mut() {
        if !b.data.is_null() {
            let (data, len) = (b.data, b.len);
            let _ = guard(|| {
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, len)));
                Ok(())
            });
        }
        b.data = std::ptr::null_mut();
        b.len = 0;
    }
}

/// Encodes a record in the version-2 record format (`docs/idempotency.md`), the bytes
/// every language reads: store them anywhere, and `seawall_idem_record_decode` (or the
/// Python, Node or Rust decoder) gives the record back. `*out` receives bytes owned by the
/// library: free them with `seawall_bytes_free`.
///
/// # Safety
/// `record` must be NULL or a live record; `out` NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_record_encode(
    record: *const seawall_idem_record,
    out: *mut seawall_bytes,
) -> seawall_status {
    guard(|| {
        let r = arg(record, "record")?;
        if out.is_null() {
            return Err(null("out"));
        }
        let bytes = r.inner.encode().into_boxed_slice();
        let len = bytes.len();
        let data = Box::into_raw(bytes).cast::<u8>();
        out.write(seawall_bytes { data, len });
        Ok(())
    })
}

/// Decodes `len` bytes written by `seawall_idem_record_encode` (or any language's
/// encoder) into a new record handle. Refused with `SEAWALL_E_INVALID_ARGUMENT` and a
/// message saying why: not a seawall record, another format version, unknown flags,
/// truncated (naming the field and offset), trailing bytes, text that is not UTF-8,
/// a checksum that does not match (the bytes were corrupted).
///
/// # Safety
/// `data` must be NULL (only with `len` 0) or valid for reading `len` bytes;
/// `out_record` NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn seawall_idem_record_decode(
    data: *const u8,
    len: usize,
    out_record: *mut *mut seawall_idem_record,
) -> seawall_status {
    guard(|| {
        if out_record.is_null() {
            return Err(null("out_record"));
        }
        let bytes = crate::idempotency::bytes_arg(data, len, "data")?;
        let r = Record::decode(bytes)?;
        put_box(out_record, "out_record", seawall_idem_record::new(r))
    })
}
