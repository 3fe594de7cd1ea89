//! Messages for the command line's reader: a library error met by a command names the
//! command's flags (or what to do on the command line), never the library calls that
//! the library's own messages name (`ImageReader::accept_damaged`,
//! `LpipsBuilder::trunk_file`, `TrunkWeights::PythonEnv`, `TrainConfig::lr`).

use std::path::{Path, PathBuf};

use assert_cmd::Command;

use crate::common::oracle_file;

/// Library names that a command-line message must not mention.
const LIBRARY_NAMES: [&str; 6] = [
    "Variant::",
    "ImageReader",
    "accept_damaged",
    "LpipsBuilder",
    "TrunkWeights",
    "TrainConfig",
];

fn lpips(torch_home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("lpips").unwrap();
    cmd.env("TORCH_HOME", torch_home)
        .env("LPIPS_OFFLINE", "1")
        .env_remove("LPIPS_STLPIPS_PYTHON")
        .env_remove("LPIPS_DOWNLOAD_BASE");
    cmd
}

/// Runs a command that must fail with exit status 1 and a one-line message naming no
/// library call; returns the message.
fn cli_error(cmd: &mut Command) -> String {
    let out = cmd.assert().code(1);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for name in LIBRARY_NAMES {
        assert!(!stderr.contains(name), "names `{name}`: {stderr}");
    }
    stderr
}

fn truncated_jpeg() -> PathBuf {
    let dir = oracle_file("images");
    assert!(
        dir.join("stamp").is_file(),
        "the image oracle is missing: run `make oracle` (scripts/gen_images.py)"
    );
    dir.join("chelsea_q75_420_truncated.jpg")
}

#[test]
fn a_damaged_jpeg_names_what_to_do_on_the_command_line() {
    let home = tempfile::tempdir().unwrap();
    let bad = truncated_jpeg();
    let err = cli_error(
        lpips(home.path())
            .arg("compare")
            .arg(&bad)
            .arg(&bad)
            .arg("--trunk")
            .arg(oracle_file("trunk_alex.safetensors")),
    );
    assert!(err.contains("chelsea_q75_420_truncated.jpg"), "{err}");
    assert!(err.contains("re-encode"), "{err}");

    // The same file as a BAPPS patch in `lpips eval`.
    let tmp = tempfile::tempdir().unwrap();
    let set = tmp.path().join("set");
    for folder in ["ref", "p0", "p1", "judge"] {
        std::fs::create_dir_all(set.join(folder)).unwrap();
    }
    for folder in ["ref", "p0", "p1"] {
        std::fs::copy(&bad, set.join(folder).join("000000.jpg")).unwrap();
    }
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (), }".to_string();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    npy.extend_from_slice(&0.5f32.to_le_bytes());
    std::fs::write(set.join("judge/000000.npy"), npy).unwrap();
    let err = cli_error(
        lpips(home.path())
            .args(["eval", "2afc"])
            .arg(&set)
            .args(["--metric", "l2"]),
    );
    assert!(err.contains("re-encode"), "{err}");
}

#[test]
fn missing_weights_name_the_flags() {
    let home = tempfile::tempdir().unwrap();
    let img = |i: &str| oracle_file(&format!("img_alex_{i}.png"));
    // The ImageNet trunk.
    let err = cli_error(
        lpips(home.path())
            .arg("compare")
            .arg(img("0"))
            .arg(img("1")),
    );
    assert!(err.contains("`--trunk FILE`"), "{err}");
    assert!(err.contains("alexnet-owt-7be5be79.pth"), "{err}");
    // ST-LPIPS' whole model.
    let err = cli_error(
        lpips(home.path())
            .arg("compare")
            .arg(img("0"))
            .arg(img("1"))
            .args(["--variant", "shift-tolerant"]),
    );
    assert!(err.contains("`--trunk FILE`"), "{err}");
    assert!(err.contains("`--python-env DIR`"), "{err}");
    assert!(err.contains("alex_shift_tolerant.pth"), "{err}");
}

#[test]
fn weight_files_that_cannot_be_opened_or_fit_another_net_name_the_flags() {
    let home = tempfile::tempdir().unwrap();
    let img = |i: &str| oracle_file(&format!("img_alex_{i}.png"));
    let missing = home.path().join("missing.pth");
    let err = cli_error(
        lpips(home.path())
            .arg("compare")
            .arg(img("0"))
            .arg(img("1"))
            .arg("--trunk")
            .arg(&missing),
    );
    assert!(
        err.contains(&format!(
            "cannot open the trunk weight file {} (given with --trunk FILE)",
            missing.display()
        )),
        "{err}"
    );
    // A trunk of another net: the --net that fits it.
    let err = cli_error(
        lpips(home.path())
            .arg("compare")
            .arg(img("0"))
            .arg(img("1"))
            .args(["--net", "vgg", "--trunk"])
            .arg(oracle_file("trunk_alex.safetensors")),
    );
    assert!(
        err.contains("holds the alex trunk, but the model is vgg"),
        "{err}"
    );
    assert!(err.contains("`--net alex`"), "{err}");
    // A whole lpips.LPIPS model given as a trunk: the flag it belongs to.
    let err = cli_error(
        lpips(home.path())
            .arg("compare")
            .arg(img("0"))
            .arg(img("1"))
            .arg("--trunk")
            .arg(oracle_file("stlpips/model_alex.pth")),
    );
    assert!(
        err.contains("holds a whole lpips.LPIPS model") && err.contains("`--model FILE`"),
        "{err}"
    );
}

fn train_set() -> PathBuf {
    let dir = oracle_file("bapps");
    assert!(
        dir.join("stamp").is_file(),
        "run `make oracle` (scripts/gen_bapps.py)"
    );
    dir.join("data/2afc/train/synth")
}

#[test]
fn train_epoch_counts_that_overflow_are_refused() {
    let out = tempfile::tempdir().unwrap();
    let err = cli_error(
        Command::cargo_bin("lpips")
            .unwrap()
            .arg("train")
            .arg(train_set())
            .arg("--out")
            .arg(out.path().join("run"))
            .arg("--trunk")
            .arg(oracle_file("trunk_alex.safetensors"))
            .args(["--epochs", &u64::MAX.to_string(), "--decay-epochs", "1"]),
    );
    assert!(
        err.contains(&format!("--epochs + --decay-epochs = {} + 1", u64::MAX)),
        "{err}"
    );
    assert!(!err.contains("0 epochs"), "{err}");
    assert!(!out.path().join("run/latest.safetensors").exists());
}

#[test]
fn a_diverging_training_run_stops_naming_the_learning_rate() {
    let out = tempfile::tempdir().unwrap();
    let err = cli_error(
        Command::cargo_bin("lpips")
            .unwrap()
            .arg("train")
            .arg(train_set())
            .arg("--out")
            .arg(out.path().join("run"))
            .arg("--trunk")
            .arg(oracle_file("trunk_alex.safetensors"))
            .args(["--lr", "1e30", "--limit", "40", "--batch-size", "10"])
            .args(["--epochs", "3", "--decay-epochs", "0", "--quiet"]),
    );
    assert!(err.contains("training diverged at epoch "), "{err}");
    assert!(err.contains("lower --lr (now 1e30)"), "{err}");
}

#[test]
fn python_env_without_the_shift_tolerant_variant_names_the_flags() {
    let home = tempfile::tempdir().unwrap();
    let img = |i: &str| oracle_file(&format!("img_alex_{i}.png"));
    let err = cli_error(
        lpips(home.path())
            .arg("compare")
            .arg(img("0"))
            .arg(img("1"))
            .arg("--python-env")
            .arg(home.path()),
    );
    assert!(err.contains("--variant shift-tolerant"), "{err}");
}
