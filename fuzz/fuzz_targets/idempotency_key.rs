//! Idempotency keys from raw bytes, as C hands them over (core/tests/prop_support/oracles.rs).
#![no_main]

#[path = "../../core/tests/prop_support/oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracles::check_key_bytes(data));
