//! Configuration by name: `BreakerConfig::set` / `IdempotencyConfig::set` with names and
//! values decoded from the input (core/tests/prop_support/oracles.rs).
#![no_main]

#[path = "../../core/tests/prop_support/oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracles::check_config_bytes(data));
