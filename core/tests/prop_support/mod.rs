//! Shared settings of the hardening tests (docs/hardening.md): how many cases to run and
//! with which seed, from the environment, so CI runs a short deterministic variant and a
//! developer can run a long random one.
//!
//! - `SEAWALL_HARDENING_LONG=1`: the long variant (each test's own long count, a random
//!   seed unless `PROPTEST_RNG_SEED` is set);
//! - `SEAWALL_HARDENING_CASES=N`: exactly N cases per property;
//! - `PROPTEST_RNG_SEED=N`: replay a seed (printed by a failing run).
#![allow(dead_code)]

pub mod oracles;

use proptest::test_runner::{Config, RngSeed};

/// The fixed seed of the short (CI) variant: every CI run checks the same cases.
pub const CI_SEED: u64 = 0x5EA_3A11;

/// True when the long variant was asked for.
pub fn long() -> bool {
    std::env::var("SEAWALL_HARDENING_LONG").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Cases to run: `SEAWALL_HARDENING_CASES`, else `long_cases` in the long variant, else `short_cases`.
pub fn cases(short_cases: u32, long_cases: u32) -> u32 {
    if let Some(n) = std::env::var("SEAWALL_HARDENING_CASES").ok().and_then(|v| v.parse().ok()) {
        return n;
    }
    if long() {
        long_cases
    } else {
        short_cases
    }
}

/// A proptest configuration: no regression files written into the tree (found cases are
/// kept as explicit tests instead), a fixed seed in the short variant.
pub fn config(short_cases: u32, long_cases: u32) -> Config {
    let mut c = Config { cases: cases(short_cases, long_cases), failure_persistence: None, ..Config::default() };
    c.max_shrink_iters = 20_000;
    let seed_given = std::env::var("PROPTEST_RNG_SEED").is_ok();
    if !seed_given && !long() {
        c.rng_seed = RngSeed::Fixed(CI_SEED);
    }
    c
}

/// A small deterministic generator (splitmix64) for the threaded tests, seeded per run.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `p` (0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
}

/// The seed of a threaded randomized run: `SEAWALL_HARDENING_SEED`, else fixed in the short
/// variant, else from the time.
pub fn run_seed() -> u64 {
    if let Some(s) = std::env::var("SEAWALL_HARDENING_SEED").ok().and_then(|v| v.parse().ok()) {
        return s;
    }
    if long() {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    } else {
        CI_SEED
    }
}

/// Source text as tokens: comment and attribute lines dropped, whitespace ignored.
pub fn normalized(src: &str) -> String {
    src.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && !l.starts_with("#["))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect()
}

/// The drift guard of the loom models (docs/hardening.md): every block of `this` between
/// `// MIRROR <file> <what>` and `// END <file> <what>` must appear, as tokens, in the core
/// source named `<file>` in `core`. Returns the names of the blocks checked.
pub fn check_mirrors(this: &str, this_name: &str, core: &[(&str, &str, &str)]) -> Vec<String> {
    let mut checked = Vec::new();
    let mut open: Option<(String, String, String)> = None; // (file, what, text)
    for line in this.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("// MIRROR ") {
            let (file, what) = rest.split_once(' ').expect("// MIRROR <file> <what>");
            assert!(open.is_none(), "nested mirror {what}");
            open = Some((file.to_owned(), what.to_owned(), String::new()));
        } else if let Some(rest) = t.strip_prefix("// END ") {
            let (file, what, text) = open.take().unwrap_or_else(|| panic!("END without MIRROR: {rest}"));
            assert_eq!(rest, format!("{file} {what}"), "mismatched END");
            let (_, path, src) = core.iter().find(|(f, _, _)| *f == file).unwrap_or_else(|| panic!("unknown core file {file}"));
            assert!(
                normalized(src).contains(&normalized(&text)),
                "the mirror of {what} no longer matches {path}: update it in core/tests/{this_name} and run \
                 the loom models again (docs/hardening.md)"
            );
            checked.push(what);
        } else if let Some((_, _, text)) = open.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    assert!(open.is_none(), "unterminated mirror");
    checked
}
