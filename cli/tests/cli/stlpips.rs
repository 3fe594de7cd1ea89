//! `--variant shift-tolerant` on the command line: the package's published weights from a
//! Python environment (flag or environment variable), from our cache folder, or
//! downloaded there from a loopback server (verified); distances equal to the package's
//! (`scripts/gen_stlpips.py`); and `--model`'s strict whole-model files.

use std::path::PathBuf;

use assert_cmd::Command;

use crate::common::{assert_close_slice, oracle_file};
use crate::download::{Serve, dir_entries, serve};

fn oracle() -> serde_json::Value {
    let text = std::fs::read_to_string(oracle_file("stlpips/oracle.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn photo(name: &str) -> PathBuf {
    oracle_file(&format!("stlpips/{name}"))
}

/// `lpips` with an empty cache, offline, and no Python environment named.
fn lpips(torch_home: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("lpips").unwrap();
    cmd.env("TORCH_HOME", torch_home)
        .env("LPIPS_OFFLINE", "1")
        .env_remove("LPIPS_STLPIPS_PYTHON")
        .env_remove("LPIPS_DOWNLOAD_BASE");
    cmd
}

fn compare_args<'a>(net: &'a str, other: &'a str) -> Vec<String> {
    vec![
        "compare".into(),
        photo("photo_chelsea_ref.png").display().to_string(),
        photo(&format!("photo_chelsea_{other}.png"))
            .display()
            .to_string(),
        "--variant".into(),
        "shift-tolerant".into(),
        "--net".into(),
        net.into(),
    ]
}

fn printed(cmd: &mut Command) -> f32 {
    let out = cmd.assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a distance: {text}"))
}

fn want(model: &str, other: &str) -> f32 {
    oracle()["distances"][model]["chelsea"][other]
        .as_f64()
        .unwrap() as f32
}

#[test]
fn compare_with_the_packages_weights_from_a_python_environment() {
    let o = oracle();
    let site = o["site_packages"].as_str().unwrap();
    let home = tempfile::tempdir().unwrap();
    let got = printed(
        lpips(home.path())
            .args(compare_args("alex", "blur1.0"))
            .env("LPIPS_STLPIPS_PYTHON", site),
    );
    assert_close_slice(&[got], &[want("st_alex", "blur1.0")], "cli ST alex (env)");
    let out = lpips(home.path())
        .args(compare_args("vgg", "shift2"))
        .args(["--python-env", site, "--format", "json"])
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["variant"], "shift-tolerant");
    let got = json["distance"].as_f64().unwrap() as f32;
    assert_close_slice(
        &[got],
        &[want("st_vgg", "shift2")],
        "cli ST vgg (--python-env)",
    );
    // The package's file as --trunk: the whole model.
    let file = o["weights"]["alex"].as_str().unwrap();
    let got = printed(
        lpips(home.path())
            .args(compare_args("alex", "noise8"))
            .args(["--trunk", file]),
    );
    assert_close_slice(
        &[got],
        &[want("st_alex", "noise8")],
        "cli ST alex (--trunk)",
    );
    // Nothing found offline: the error says where it looked and what to do.
    let out = lpips(home.path())
        .args(compare_args("alex", "noise8"))
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("LPIPS_STLPIPS_PYTHON"), "{stderr}");
    assert!(
        stderr.contains("hub/checkpoints/stlpips/alex_shift_tolerant.pth"),
        "{stderr}"
    );
    let out = lpips(home.path())
        .args(compare_args("squeeze", "noise8"))
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("alex and vgg only"), "{stderr}");
}

#[test]
fn downloaded_into_the_cache_verified_then_used_offline() {
    let o = oracle();
    let file = o["weights"]["alex"].as_str().unwrap();
    let body = std::fs::read(file).unwrap();
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join("hub/checkpoints/stlpips");

    // Same size, one byte changed: the digest refuses it and nothing is left.
    let mut bad = body.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let wrong = serve(bad, Serve::Full);
    let out = lpips(home.path())
        .args(compare_args("alex", "jpeg30"))
        .env_remove("LPIPS_OFFLINE")
        .env("LPIPS_DOWNLOAD_BASE", &wrong.base)
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("SHA-256"), "{stderr}");
    assert!(
        dir_entries(&cache).is_empty(),
        "nothing left after a mismatch"
    );

    let server = serve(body.clone(), Serve::Full);
    let got = printed(
        lpips(home.path())
            .args(compare_args("alex", "jpeg30"))
            .env_remove("LPIPS_OFFLINE")
            .env("LPIPS_DOWNLOAD_BASE", &server.base),
    );
    assert_close_slice(
        &[got],
        &[want("st_alex", "jpeg30")],
        "cli ST alex (downloaded)",
    );
    assert_eq!(dir_entries(&cache), vec!["alex_shift_tolerant.pth"]);
    assert_eq!(
        std::fs::read(cache.join("alex_shift_tolerant.pth")).unwrap(),
        body
    );
    let requests = server.requests.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(requests, 1);
    // Offline now: the cached copy serves.
    let got = printed(lpips(home.path()).args(compare_args("alex", "jpeg30")));
    assert_close_slice(&[got], &[want("st_alex", "jpeg30")], "cli ST alex (cached)");
}

#[test]
fn model_files_are_loaded_strictly() {
    let home = tempfile::tempdir().unwrap();
    let pair = [oracle_file("img_alex_0.png"), oracle_file("img_alex_1.png")];
    let out = lpips(home.path())
        .arg("compare")
        .args(&pair)
        .arg("--model")
        .arg(oracle_file("stlpips/model_alex_extra_key.pth"))
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("unexpected extra.weight"), "{stderr}");
    lpips(home.path())
        .arg("compare")
        .args(&pair)
        .arg("--model")
        .arg(oracle_file("stlpips/model_alex.pth"))
        .assert()
        .success();
}
