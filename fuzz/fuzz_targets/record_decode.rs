//! The idempotency record decoder on arbitrary bytes (core/tests/prop_support/oracles.rs).
//! The seed corpus holds valid records, so libFuzzer's mutations are corrupted records.
#![no_main]

#[path = "../../core/tests/prop_support/oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracles::check_record_bytes(data));
