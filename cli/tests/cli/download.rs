//! Downloads against a loopback HTTP server: verified success, digest mismatch and a
//! connection dropped mid-file (nothing left behind either way), offline mode, and a
//! cached file used without any network access.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::oracle_file;
use assert_cmd::Command;
use sha2::{Digest, Sha256};

#[derive(Clone, Copy)]
enum Serve {
    /// The whole body.
    Full,
    /// Announce the whole length, send half, close.
    Drop,
}

/// Serves `body` for every GET until dropped; counts requests.
struct Server {
    base: String,
    requests: Arc<AtomicUsize>,
}

fn serve(body: Vec<u8>, mode: Serve) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/models/", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let part = match mode {
                Serve::Full => &body[..],
                Serve::Drop => &body[..body.len() / 2],
            };
            let _ = stream.write_all(part);
            let _ = stream.flush();
        }
    });
    Server { base, requests }
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn dir_entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn library_download_verified_success_mismatch_and_drop() {
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("cache/file.pth");

    let ok = serve(body.clone(), Serve::Full);
    let url = format!("{}file.pth", ok.base);
    lpips::weights::download_verified(
        &url,
        &sha256(&body),
        Some(body.len() as u64),
        &dest,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(
        dir_entries(dest.parent().unwrap()),
        vec!["file.pth"],
        "no temporary files left"
    );
    std::fs::remove_file(&dest).unwrap();

    let wrong = "0".repeat(64);
    match lpips::weights::download_verified(&url, &wrong, None, &dest, &mut |_| {}) {
        Err(lpips::LpipsError::DigestMismatch {
            expected, found, ..
        }) => {
            assert_eq!(expected, wrong);
            assert_eq!(found, sha256(&body));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        dir_entries(dest.parent().unwrap()).is_empty(),
        "nothing left after a mismatch"
    );

    let dropped = serve(body.clone(), Serve::Drop);
    let url = format!("{}file.pth", dropped.base);
    let e = lpips::weights::download_verified(&url, &sha256(&body), None, &dest, &mut |_| {})
        .unwrap_err();
    assert!(matches!(e, lpips::LpipsError::Download { .. }), "{e:?}");
    assert!(
        dir_entries(dest.parent().unwrap()).is_empty(),
        "nothing left after a drop"
    );

    // More bytes than expected: stopped, nothing left.
    let e = lpips::weights::download_verified(
        &format!("{}file.pth", ok.base),
        &sha256(&body),
        Some(1000),
        &dest,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, lpips::LpipsError::Download { .. }), "{e:?}");
    assert!(dir_entries(dest.parent().unwrap()).is_empty());
}

fn cli(torch_home: &Path, base: &str) -> Command {
    let mut cmd = Command::cargo_bin("lpips").unwrap();
    cmd.env("TORCH_HOME", torch_home)
        .env("LPIPS_DOWNLOAD_BASE", base)
        .env_remove("LPIPS_OFFLINE");
    cmd
}

#[test]
fn cli_fetch_rejects_wrong_digest_and_dropped_connections() {
    let home = tempfile::tempdir().unwrap();
    let checkpoints = home.path().join("hub/checkpoints");
    // Not torchvision's squeezenet, but of its exact size: only the digest can tell.
    let mut body = std::fs::read(oracle_file("ckpt_squeeze_full_zip.pth")).unwrap();
    body.resize(
        lpips::weights::TorchvisionFile::of(lpips::Net::Squeeze).bytes as usize,
        0,
    );
    for mode in [Serve::Full, Serve::Drop] {
        let server = serve(body.clone(), mode);
        let out = cli(home.path(), &server.base)
            .args(["weights", "fetch", "squeeze"])
            .assert()
            .failure();
        let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("squeezenet1_1-b8a52dc0.pth"), "{stderr}");
        if matches!(mode, Serve::Full) {
            assert!(stderr.contains("SHA-256 mismatch"), "{stderr}");
        }
        assert_eq!(server.requests.load(Ordering::SeqCst), 1);
        assert!(
            dir_entries(&checkpoints).is_empty(),
            "nothing left in the cache: {:?}",
            dir_entries(&checkpoints)
        );
    }
    // `compare` without --trunk tries the same download and says how to fix it.
    let server = serve(body.clone(), Serve::Full);
    let out = crate::compare_squeeze_pair(&mut cli(home.path(), &server.base))
        .assert()
        .failure();
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains("SHA-256 mismatch") && stderr.contains("--trunk"),
        "{stderr}"
    );
    assert!(dir_entries(&checkpoints).is_empty());
}

#[test]
fn offline_mode_makes_no_request() {
    let home = tempfile::tempdir().unwrap();
    let server = serve(vec![0; 10], Serve::Full);
    let mut fetch = cli(home.path(), &server.base);
    fetch.args(["weights", "fetch", "alex"]);
    let mut compare = cli(home.path(), &server.base);
    compare
        .arg("compare")
        .arg(oracle_file("img_alex_0.png"))
        .arg(oracle_file("img_alex_1.png"));
    for mut cmd in [fetch, compare] {
        let out = cmd.env("LPIPS_OFFLINE", "1").assert().failure();
        let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
        assert!(stderr.contains("LPIPS_OFFLINE"), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}

#[test]
fn cached_checkpoint_is_used_without_network_and_verify_reports_it() {
    let home =
        common::torch_home_with("ckpt_squeeze_full_legacy.pth", "squeezenet1_1-b8a52dc0.pth");
    let checkpoints = home.path().join("hub/checkpoints");
    let server = serve(vec![0; 10], Serve::Full);
    let want = common::cli_oracle();
    let got = crate::printed_distance(crate::compare_squeeze_pair(&mut cli(
        home.path(),
        &server.base,
    )));
    let want = want["squeeze/v0.1"].as_f64().unwrap();
    assert!(
        (got - want).abs() <= 1e-6 + 1e-4 * want.abs(),
        "{got} vs {want}"
    );
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        0,
        "a cached file needs no network"
    );

    // Trusted when used, checked on request: a random trunk is not torchvision's file.
    let out = cli(home.path(), &server.base)
        .args(["weights", "verify", "squeeze"])
        .assert()
        .failure();
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains("SHA-256 mismatch") && stderr.contains("b8a52dc049b60e4b"),
        "{stderr}"
    );
    let out = cli(home.path(), &server.base)
        .args(["weights", "list", "--format", "json"])
        .assert()
        .success();
    let rows: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(rows[2]["net"], "squeeze");
    assert_eq!(rows[2]["status"], "SHA-256 MISMATCH");
    assert!(rows[0]["path"].is_null());
    // fetch keeps what is cached, like torch.
    cli(home.path(), &server.base)
        .args(["weights", "fetch", "squeeze"])
        .assert()
        .success();
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);

    // convert writes the trunk; the result gives the same distance.
    let converted = home.path().join("squeeze.safetensors");
    cli(home.path(), &server.base)
        .args(["weights", "convert"])
        .arg(checkpoints.join("squeezenet1_1-b8a52dc0.pth"))
        .arg(&converted)
        .assert()
        .success();
    let again = crate::printed_distance(
        crate::compare_squeeze_pair(&mut cli(home.path(), &server.base))
            .arg("--trunk")
            .arg(&converted),
    );
    assert_eq!(again, got);
}
