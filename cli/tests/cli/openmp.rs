//! The OpenMP wait policy the command runs with, as libgomp itself reports it
//! (`OMP_DISPLAY_ENV=verbose` prints its settings on stderr when it starts, once per
//! process): `lpips train` waits passively unless the user chose a policy; the other
//! commands keep libgomp's default.

use assert_cmd::Command;

use crate::common::oracle_file;

/// The `GOMP_SPINCOUNT` values libgomp reported, one per process start.
fn spin_counts(args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let mut cmd = Command::cargo_bin("lpips").unwrap();
    cmd.args(args)
        .env("OMP_DISPLAY_ENV", "verbose")
        .env_remove("OMP_WAIT_POLICY")
        .env_remove("GOMP_SPINCOUNT")
        .timeout(std::time::Duration::from_secs(120));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.assert().success().get_output().clone();
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("GOMP_SPINCOUNT = "))
        .map(|v| v.trim_matches('\'').to_string())
        .collect()
}

fn train_args(out: &std::path::Path) -> Vec<String> {
    let data = oracle_file("bapps").join("data/2afc/train/synth");
    [
        "train",
        data.to_str().unwrap(),
        "--trunk",
        oracle_file("trunk_alex.safetensors").to_str().unwrap(),
        "--epochs",
        "1",
        "--decay-epochs",
        "0",
        "--limit",
        "4",
        "--batch-size",
        "2",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn training_waits_passively_unless_the_user_chose() {
    let dir = tempfile::tempdir().unwrap();
    let args = train_args(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The first start has libgomp's default; the command then runs itself again with
    // OMP_WAIT_POLICY=PASSIVE, under which libgomp does not spin at all.
    let counts = spin_counts(&args, &[]);
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert_ne!(counts[0], "0");
    assert_eq!(counts[1], "0");
    assert!(dir.path().join("latest.safetensors").is_file());
    // A policy or spin count of the user's is kept, and nothing restarts.
    assert_eq!(spin_counts(&args, &[("GOMP_SPINCOUNT", "1234")]), ["1234"]);
    let active = spin_counts(&args, &[("OMP_WAIT_POLICY", "active")]);
    assert_eq!(active.len(), 1, "{active:?}");
    assert_ne!(active[0], "0");
}

#[test]
fn other_commands_keep_the_default() {
    let counts = spin_counts(
        &[
            "compare",
            oracle_file("img_alex_0.png").to_str().unwrap(),
            oracle_file("img_alex_1.png").to_str().unwrap(),
            "--trunk",
            oracle_file("trunk_alex.safetensors").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_ne!(counts[0], "0");
}
