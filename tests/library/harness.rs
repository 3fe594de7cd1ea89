//! The masks-and-protocols oracle (`scripts/gen_harness.py`, tests/oracle/harness/).

use std::path::PathBuf;

use crate::common::oracle_dir;

pub fn harness_file(name: &str) -> PathBuf {
    let dir = oracle_dir().join("harness");
    assert!(
        dir.join("stamp").is_file(),
        "the harness oracle is missing from {}: run `make oracle` (scripts/gen_harness.py)",
        dir.display()
    );
    dir.join(name)
}

pub fn harness() -> serde_json::Value {
    let text = std::fs::read_to_string(harness_file("harness.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}
