//! The breaker state machine against the reference model (core/tests/model_support): the
//! input decodes to a valid configuration and a sequence of operations; any disagreement
//! between the core and the model is a crash.
#![no_main]

#[path = "../../core/tests/model_support/mod.rs"]
mod model_support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (cfg, ops) = model_support::decode(data);
    if let Err(e) = model_support::run(&cfg, &ops) {
        panic!("core and model disagree: {e}\nconfig {cfg:?}\nops {ops:?}");
    }
});
