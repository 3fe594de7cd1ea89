//! The `lpips` command's tests, in one binary: they run the built command on the
//! reference's oracle files (generated into the repository's tests/oracle).
// Tests may panic: the library denies tch's panicking methods (clippy.toml), not tests.
#![allow(clippy::disallowed_methods)]

#[path = "../../../tests/library/common.rs"]
mod common;

mod bapps_cli;
mod child;
mod cli;
mod download;
mod folder_failures;
mod folders;
mod images;
mod messages;
mod openmp;
mod output_paths;
mod protocols;
mod resume;
mod stlpips;

use common::oracle_file;

/// Adds `compare` of the squeeze PNG pair (no `--trunk`) to a command.
pub fn compare_squeeze_pair(cmd: &mut assert_cmd::Command) -> &mut assert_cmd::Command {
    cmd.arg("compare")
        .arg(oracle_file("img_squeeze_0.png"))
        .arg(oracle_file("img_squeeze_1.png"))
        .args(["--net", "squeeze"])
}

/// The distance a command printed, asserting it succeeded.
pub fn printed_distance(cmd: &mut assert_cmd::Command) -> f64 {
    let out = cmd.assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a distance: {text}"))
}
