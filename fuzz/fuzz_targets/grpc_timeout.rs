//! The `grpc-timeout` header parser on arbitrary text (core/tests/prop_support/oracles.rs).
#![no_main]

#[path = "../../core/tests/prop_support/oracles.rs"]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracles::check_grpc_timeout(&String::from_utf8_lossy(data)));
