//! One version for every package: the workspace's. The Python wheel takes it from Cargo
//! (maturin, `dynamic = ["version"]`), the npm package states it; both are checked here, and
//! each language's suite also checks the version the installed package reports.

use std::fs;
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn workspace_version_is_the_crate_version() {
    let ws = read("Cargo.toml");
    let line = format!("version = \"{}\"", seawall::VERSION);
    assert!(ws.contains(&line), "root Cargo.toml [workspace.package] should say {line}");
    for c in ["core", "bindings/c", "bindings/python", "bindings/node"] {
        assert!(read(&format!("{c}/Cargo.toml")).contains("version.workspace = true"), "{c} must inherit the version");
    }
}

#[test]
fn python_package_takes_the_workspace_version() {
    let py = read("python/pyproject.toml");
    assert!(
        py.contains("dynamic = [\"version\"]") || py.contains(&format!("version = \"{}\"", seawall::VERSION)),
        "python/pyproject.toml must take the version from Cargo or state {}",
        seawall::VERSION
    );
}

#[test]
fn npm_package_states_the_workspace_version() {
    for f in ["node/package.json", "node/package-lock.json"] {
        let json: serde_json::Value = serde_json::from_str(&read(f)).unwrap();
        assert_eq!(json["version"], seawall::VERSION, "{f}");
    }
}
