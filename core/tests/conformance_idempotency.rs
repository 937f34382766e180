//! The Rust runner of the language-neutral idempotency scenarios in
//! `tests/conformance/idempotency/`, on the default memory store.
//!
//! The format is described in `tests/conformance/README.md` ("Idempotency scenarios"); the
//! C, Python and Node runners replay the same files. Every file runs on a `ManualClock`. A
//! scenario stops at its first failing step, but every file is replayed and all failures
//! are reported together, each with its file, step index, and expected vs actual value.
//! Unknown keys are reported too, so a typo cannot silently skip an expectation.
//!
//! The runner itself is `conformance_support/idempotency.rs`, shared with
//! `redis_conformance.rs` (the same files on a `RedisStore`).

mod conformance_support;
use conformance_support::idempotency::{run_file, scenario_dir, MemoryStore};
use conformance_support::{replay_files, scenario_files};

#[test]
fn idempotency_conformance_scenarios() {
    let files = scenario_files(&scenario_dir());
    let replayed = replay_files(&files, |i, path, _| Some(run_file(path, i, &mut MemoryStore)));
    println!("conformance (Rust): {} of {} idempotency scenarios passed", replayed.passed, files.len());
    replayed.panic_on_failures("idempotency scenarios failed");
}
