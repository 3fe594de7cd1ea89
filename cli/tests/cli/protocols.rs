//! `--mask`, `--pixel-range` and `--map-mean` on `compare` and the folder commands,
//! against the harness oracle (scripts/gen_harness.py): weighted distances on the
//! reference's head maps, the [0, 1] feed, per-frame video LPIPS.

use std::path::PathBuf;

use assert_cmd::Command;
use lpips::Net;

use crate::common::{oracle_dir, oracle_file};

fn harness_file(name: &str) -> PathBuf {
    let dir = oracle_dir().join("harness");
    assert!(
        dir.join("stamp").is_file(),
        "run `make oracle` (scripts/gen_harness.py)"
    );
    dir.join(name)
}

fn harness(key: &str) -> f64 {
    let text = std::fs::read_to_string(harness_file("harness.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} not in harness.json"))
}

/// `lpips dirs D0 D1 --net NET --trunk <seeded trunk>`.
fn dirs(net: Net, d0: &std::path::Path, d1: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("lpips").unwrap();
    cmd.env("LPIPS_OFFLINE", "1").arg("dirs").arg(d0).arg(d1);
    cmd.args(["--net", net.name()]);
    cmd.arg("--trunk")
        .arg(oracle_file(&format!("trunk_{}.safetensors", net.name())));
    cmd
}

fn compare(net: Net) -> Command {
    let mut cmd = Command::cargo_bin("lpips").unwrap();
    let n = net.name();
    cmd.env("LPIPS_OFFLINE", "1")
        .arg("compare")
        .arg(harness_file(&format!("{n}_a.png")))
        .arg(harness_file(&format!("{n}_b.png")))
        .args(["--net", n, "--trunk"])
        .arg(oracle_file(&format!("trunk_{n}.safetensors")));
    cmd
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-6 + 1e-4 * want.abs(),
        "{what}: got {got}, reference arithmetic {want}"
    );
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.assert().success();
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

#[test]
fn compare_with_a_mask_and_a_masked_map() {
    masked_compare();
}

#[test]
fn imagenet_compare_with_a_mask_and_a_masked_map() {
    crate::common::on_imagenet(masked_compare);
}

fn masked_compare() {
    let last = if crate::common::imagenet() {
        Net::Vgg
    } else {
        Net::Squeeze
    };
    for (net, mask) in [(Net::Alex, "mask8"), (last, "mask16")] {
        let n = net.name();
        let t = tempfile::tempdir().unwrap();
        let npy = t.path().join("map.npy");
        let png = t.path().join("map.png");
        let mut cmd = compare(net);
        cmd.arg("--mask")
            .arg(harness_file(&format!("{n}_{mask}.png")))
            .arg("--spatial-out")
            .arg(&npy);
        let got: f64 = stdout(&mut cmd).trim().parse().unwrap();
        close(
            got,
            harness(&format!("{n}/v0.1/{mask}")),
            &format!("{n} {mask}"),
        );
        let map: lpips::ndarray::Array2<f32> = ndarray_npy::read_npy(&npy).unwrap();
        let w = lpips::maps::load_mask(harness_file(&format!("{n}_{mask}.png"))).unwrap();
        for (v, wt) in map.iter().zip(&w) {
            assert_eq!(v.is_nan(), *wt == 0.0, "NaN exactly outside the mask");
        }
        let mut cmd = compare(net);
        cmd.arg("--mask")
            .arg(harness_file(&format!("{n}_{mask}.png")))
            .arg("--spatial-out")
            .arg(&png);
        stdout(&mut cmd);
        let heat = image::open(&png).unwrap().to_rgba8();
        for ((x, y), wt) in w.indexed_iter().map(|((y, x), v)| ((x, y), v)) {
            let alpha = heat.get_pixel(x as u32, y as u32)[3];
            assert_eq!(
                alpha == 0,
                *wt == 0.0,
                "transparent exactly outside the mask"
            );
        }
    }
}

#[test]
fn compare_refuses_an_all_black_mask() {
    let t = tempfile::tempdir().unwrap();
    let black = t.path().join("black.png");
    let (w, h) = image::image_dimensions(harness_file("alex_a.png")).unwrap();
    image::GrayImage::new(w, h).save(&black).unwrap();
    let out = compare(Net::Alex)
        .arg("--mask")
        .arg(&black)
        .assert()
        .failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.contains("every weight is zero"), "{err}");
}

#[test]
fn compare_pixel_range_zero_to_one_is_the_3dgs_feed() {
    zero_to_one();
}

#[test]
fn imagenet_compare_pixel_range_zero_to_one_is_the_3dgs_feed() {
    crate::common::on_imagenet(zero_to_one);
}

fn zero_to_one() {
    for &net in crate::common::nets() {
        let mut cmd = compare(net);
        cmd.args(["--pixel-range", "zero-to-one"]);
        let got: f64 = stdout(&mut cmd).trim().parse().unwrap();
        let key = format!("{}/v0.1/zero_to_one", net.name());
        close(got, harness(&key), &key);
    }
}

/// dirs with a folder of masks named like the first folder's images.
#[test]
fn dirs_with_a_mask_folder() {
    mask_folder();
}

#[test]
fn imagenet_dirs_with_a_mask_folder() {
    crate::common::on_imagenet(mask_folder);
}

fn mask_folder() {
    let t = tempfile::tempdir().unwrap();
    let (d0, d1, masks) = (t.path().join("d0"), t.path().join("d1"), t.path().join("m"));
    for d in [&d0, &d1, &masks] {
        std::fs::create_dir_all(d).unwrap();
    }
    for n in ["alex", "vgg"] {
        std::fs::copy(
            harness_file(&format!("{n}_a.png")),
            d0.join(format!("{n}.png")),
        )
        .unwrap();
        std::fs::copy(
            harness_file(&format!("{n}_b.png")),
            d1.join(format!("{n}.png")),
        )
        .unwrap();
        std::fs::copy(
            harness_file(&format!("{n}_mask8.png")),
            masks.join(format!("{n}.png")),
        )
        .unwrap();
    }
    for net in [Net::Alex, Net::Vgg] {
        let mut cmd = dirs(net, &d0, &d1);
        cmd.arg("--mask").arg(&masks);
        cmd.args(["--format", "jsonl", "--quiet"]);
        let text = stdout(&mut cmd);
        let n = net.name();
        let row = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|r| r["img0"].as_str().unwrap().ends_with(&format!("{n}.png")))
            .unwrap();
        close(
            row["distance"].as_f64().unwrap(),
            harness(&format!("{n}/v0.1/mask8")),
            &format!("dirs {n} mask8"),
        );
    }
    // A FIFO where a mask should be: that pair's error row naming it so (not "no
    // mask"), opened without blocking; the other pair is measured.
    let fifo = masks.join("alex.png");
    std::fs::remove_file(&fifo).unwrap();
    let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0);
    let mut cmd = dirs(Net::Vgg, &d0, &d1);
    cmd.arg("--mask")
        .arg(&masks)
        .args(["--format", "jsonl", "--quiet"])
        .timeout(std::time::Duration::from_secs(300));
    let out = cmd.assert().code(1);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    for row in rows {
        if row["img0"].as_str().unwrap().ends_with("alex.png") {
            let error = row["error"].as_str().unwrap();
            assert!(error.contains("FIFO"), "{error}");
        } else {
            close(
                row["distance"].as_f64().unwrap(),
                harness("vgg/v0.1/mask8"),
                "the other pair",
            );
        }
    }
}

/// Per-frame video LPIPS: a folder of frames per video, `dirs --map-mean`; the summary's
/// mean is the video's LPIPS (the mean over frames of each frame's spatial-map mean).
#[test]
fn video_frames_as_a_dirs_run() {
    video_frames();
}

#[test]
fn imagenet_video_frames_as_a_dirs_run() {
    crate::common::on_imagenet(video_frames);
}

fn video_frames() {
    for &net in crate::common::nets() {
        let n = net.name();
        let (v0, v1) = (
            harness_file(&format!("{n}_video0")),
            harness_file(&format!("{n}_video1")),
        );
        let mut cmd = dirs(net, &v0, &v1);
        cmd.args(["--map-mean", "--quiet"]);
        let text = stdout(&mut cmd);
        let summary = text.lines().last().unwrap();
        let mean: f64 = summary
            .split_whitespace()
            .skip_while(|w| *w != "mean")
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        // The summary prints six decimals.
        let want = harness(&format!("{n}/video"));
        assert!(
            (mean - want).abs() <= 5e-7 + 1e-4 * want,
            "{n}: {mean} vs {want}"
        );
    }
}

/// `--max-memory` tiles folder runs and compare alike, with the one-pass results.
#[test]
fn max_memory_gives_the_one_pass_results() {
    let t = tempfile::tempdir().unwrap();
    let (d0, d1) = (t.path().join("d0"), t.path().join("d1"));
    std::fs::create_dir_all(&d0).unwrap();
    std::fs::create_dir_all(&d1).unwrap();
    // 8-bit pairs of 300x260, textured.
    for (i, d) in [&d0, &d1].into_iter().enumerate() {
        let img = image::RgbImage::from_fn(300, 260, |x, y| {
            let v = |k: u32| ((x * (7 + k + i as u32) + y * (3 + 2 * k) + x * y / 13) % 251) as u8;
            image::Rgb([v(0), v(1), v(2)])
        });
        img.save(d.join("p.png")).unwrap();
    }
    let row = |extra: &[&str]| -> f64 {
        let mut cmd = dirs(Net::Alex, &d0, &d1);
        cmd.args(["--format", "jsonl", "--quiet"]).args(extra);
        let text = stdout(&mut cmd);
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        v["distance"].as_f64().unwrap()
    };
    let compare_under = |max_memory: &str| {
        let mut cmd = Command::cargo_bin("lpips").unwrap();
        cmd.env("LPIPS_OFFLINE", "1")
            .arg("compare")
            .arg(d0.join("p.png"))
            .arg(d1.join("p.png"))
            .args(["--max-memory", max_memory, "--trunk"])
            .arg(oracle_file("trunk_alex.safetensors"));
        cmd
    };
    let whole = row(&[]);
    close(
        row(&["--max-memory", "24M"]),
        whole,
        "dirs --max-memory 24M",
    );
    let mut cmd = compare_under("24M");
    let got: f64 = stdout(&mut cmd).trim().parse().unwrap();
    close(got, whole, "compare --max-memory 24M");
    let mut cmd = compare_under("1M");
    let out = cmd.assert().failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(err.contains("--max-memory"), "{err}");
    // Enough for the distance (in tiles) but not for the map: refused before the
    // distance is computed (on a large image that took minutes), no map written.
    let map = t.path().join("map.npy");
    let mut cmd = compare_under("9.5M");
    let got: f64 = stdout(&mut cmd).trim().parse().unwrap();
    close(got, whole, "compare --max-memory 9.5M");
    let out = cmd.arg("--spatial-out").arg(&map).assert().failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        err.contains("needs at least") && err.lines().count() == 1,
        "{err}"
    );
    assert!(out.get_output().stdout.is_empty(), "no distance printed");
    assert!(!map.exists());
}

/// ref with a folder of masks named like the targets: a missing mask's error row names
/// the target it is named after, not the reference.
#[test]
fn ref_with_a_missing_mask_names_the_target() {
    let t = tempfile::tempdir().unwrap();
    let (targets, masks) = (t.path().join("targets"), t.path().join("masks"));
    std::fs::create_dir_all(&targets).unwrap();
    std::fs::create_dir_all(&masks).unwrap();
    let reference = t.path().join("the_reference.png");
    std::fs::copy(harness_file("alex_a.png"), &reference).unwrap();
    for n in ["first.png", "second.png"] {
        std::fs::copy(harness_file("alex_b.png"), targets.join(n)).unwrap();
    }
    std::fs::copy(harness_file("alex_mask8.png"), masks.join("first.png")).unwrap();
    let mut cmd = Command::cargo_bin("lpips").unwrap();
    cmd.env("LPIPS_OFFLINE", "1")
        .arg("ref")
        .arg(&reference)
        .arg(&targets)
        .args(["--net", "alex", "--trunk"])
        .arg(oracle_file("trunk_alex.safetensors"))
        .arg("--mask")
        .arg(&masks)
        .args(["--format", "jsonl", "--quiet"]);
    let out = cmd.assert().code(1);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let error = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find_map(|r| r["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no error row in {text}"));
    let missing = masks.join("second.png");
    let target = targets.join("second.png");
    assert!(
        error.contains(&format!(
            "no mask {} for {}",
            missing.display(),
            target.display()
        )),
        "{error}"
    );
    assert!(!error.contains("the_reference"), "{error}");
}
