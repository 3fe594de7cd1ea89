//! The README's first program (examples/first_call.rs) run as a new user runs it: offline,
//! no weights cached. It fails, and what `main` prints is the error's message with its
//! fix, not a struct dump. In a process of its own (harness = false): this file's `main`
//! runs the example's `main` in a child process with the environment set, and std prints
//! its error there exactly as it does for the example's binary.
// Tests, benches and examples may panic: the library denies tch's panicking methods
// (clippy.toml), not code built on it.
#![allow(clippy::disallowed_methods)]

mod example {
    // The example's file as it is (its comments are plain ones, so it can be included).
    include!("../examples/first_call.rs");

    pub(super) fn run() -> Result<(), lpips::LpipsError> {
        main()
    }
}

use std::process::{Command, ExitCode, Termination};

const CHILD: &str = "LPIPS_FIRST_CALL_CHILD";

fn main() -> ExitCode {
    if std::env::var_os(CHILD).is_some() {
        // What the example's binary does with the `Result` its `main` returns.
        return example::run().report();
    }
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .current_dir(work.path())
        .env(CHILD, "1")
        .env("TORCH_HOME", home.path())
        // Nothing listens on port 9 (discard): the download fails at once, offline.
        .env("LPIPS_DOWNLOAD_BASE", "http://127.0.0.1:9/")
        .env_remove("LPIPS_OFFLINE")
        .env_remove("LPIPS_STLPIPS_PYTHON")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing measured: {:?}", out.stdout);
    let cache = home.path().join("hub/checkpoints/alexnet-owt-7be5be79.pth");
    let expected_start = format!(
        "Error: no ImageNet weights for the alex trunk: looked for {}",
        cache.display()
    );
    assert!(stderr.starts_with(&expected_start), "{stderr}");
    for fix in [
        "`LpipsBuilder::trunk_file`",
        "put torchvision's alexnet-owt-7be5be79.pth into the torch hub cache (TORCH_HOME)",
        "allow the download",
        "127.0.0.1:9",
    ] {
        assert!(stderr.contains(fix), "{fix}: {stderr}");
    }
    assert!(!stderr.contains("TrunkNotFound"), "a struct dump: {stderr}");
    assert!(!stderr.contains("searched:"), "a struct dump: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    println!("first_call: the README's first program fails offline with its fix: ok");
    ExitCode::SUCCESS
}
