//! The command reads files as the reference does: 16-bit PNGs reduced to 8 bits as
//! OpenCV reduces them, EXIF orientation applied, JPEG by libjpeg-turbo, damaged JPEGs
//! and FIFOs refused (the image oracle of scripts/gen_images.py).

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::Command;

use crate::common::oracle_file;

fn lpips() -> Command {
    let mut cmd = Command::cargo_bin("lpips").unwrap();
    cmd.env("TORCH_HOME", "/nonexistent/torch-home-for-tests")
        .env("LPIPS_OFFLINE", "1");
    cmd
}

fn image(name: &str) -> PathBuf {
    let dir = oracle_file("images");
    assert!(
        dir.join("stamp").is_file(),
        "the image oracle is missing: run `make oracle` (scripts/gen_images.py)"
    );
    dir.join(name)
}

fn reference(key: &str) -> (PathBuf, PathBuf, f64) {
    let text = std::fs::read_to_string(image("distances.json")).unwrap();
    let pairs: serde_json::Value = serde_json::from_str(&text).unwrap();
    let pair = &pairs[key];
    (
        image(pair["a"].as_str().unwrap()),
        image(pair["b"].as_str().unwrap()),
        pair["alex/v0.1"].as_f64().unwrap(),
    )
}

fn compare(a: &PathBuf, b: &PathBuf) -> Command {
    let mut cmd = lpips();
    cmd.arg("compare")
        .arg(a)
        .arg(b)
        .arg("--trunk")
        .arg(oracle_file("trunk_alex.safetensors"));
    cmd
}

fn close(got: f64, want: f64, what: &str) {
    let tol = 1e-6 + 1e-4 * want.abs();
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, reference {want}"
    );
    eprintln!("{what}: {got} vs reference {want}");
}

#[test]
fn sixteen_bit_exif_and_jpeg_pairs_give_the_references_distance() {
    reference_pairs();
}

#[test]
fn imagenet_sixteen_bit_exif_and_jpeg_pairs_give_the_references_distance() {
    crate::common::on_imagenet(reference_pairs);
}

fn reference_pairs() {
    for key in [
        "png16",
        "jpeg_exif",
        "jpeg_q50_420_vs_q95_444",
        "jpeg_prog_vs_cmyk",
    ] {
        let (a, b, want) = reference(key);
        let got = crate::printed_distance(&mut compare(&a, &b));
        close(got, want, key);
    }
    // The same 16-bit pair in the folder modes.
    let (a, b, want) = reference("png16");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::copy(&a, d1.path().join("x.png")).unwrap();
    std::fs::copy(&b, d2.path().join("x.png")).unwrap();
    let out = lpips()
        .arg("dirs")
        .arg(d1.path())
        .arg(d2.path())
        .arg("--trunk")
        .arg(oracle_file("trunk_alex.safetensors"))
        .args(["--format", "jsonl"])
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let row: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    close(row["distance"].as_f64().unwrap(), want, "png16 dirs");
}

#[test]
fn damaged_jpeg_is_an_error_naming_the_file() {
    let bad = image("chelsea_q75_420_truncated.jpg");
    let out = compare(&bad, &bad).assert().failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("chelsea_q75_420_truncated.jpg"), "{stderr}");
    assert!(stderr.contains("Premature end of JPEG file"), "{stderr}");
}

#[test]
fn fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.png");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let mut cmd = compare(&fifo, &image("rocket.jpg"));
    // assert_cmd's own timeout kills the command if it hangs on the FIFO.
    cmd.timeout(Duration::from_secs(120));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cmd.output().unwrap());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(180))
        .expect("lpips compare hung on a FIFO");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FIFO"), "{stderr}");
}
