//! Folder runs lose nothing: one pair's failure (libtorch out of memory on a huge image,
//! a non-finite distance, a FIFO or a device) is that pair's error row while the others
//! are measured; symlink loops are skipped; names that differ only in non-UTF-8 bytes
//! stay apart; memory stays bounded by --batch-size whatever the mix of image sizes.

use std::path::Path;

use crate::child::{self, GUARD, lpips};
use crate::common::{self, oracle_file};
use lpips::{Lin, Net};

fn trunk(net: Net) -> [String; 4] {
    [
        "--net".into(),
        net.name().into(),
        "--trunk".into(),
        oracle_file(&format!("trunk_{}.safetensors", net.name()))
            .display()
            .to_string(),
    ]
}

fn copy(from: &str, to: &Path) {
    std::fs::copy(oracle_file(from), to).unwrap();
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-6 + 1e-4 * want.abs(),
        "{what}: {got} vs {want}"
    );
}

/// An RGB gradient image of the given size (compresses well; decodes to full size).
fn gradient(path: &Path, w: u32, h: u32) {
    gradient_shifted(path, w, h, 0);
}

fn gradient_shifted(path: &Path, w: u32, h: u32, shift: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((x + y + shift) % 256) as u8,
        ])
    });
    img.save(path).unwrap();
}

/// d0 and d1 with three small pairs of the vgg oracle images: a, b, c.
fn small_pairs(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (d0, d1) = (root.join("d0"), root.join("d1"));
    std::fs::create_dir_all(&d0).unwrap();
    std::fs::create_dir_all(&d1).unwrap();
    copy("img_vgg_0.png", &d0.join("a.png"));
    copy("img_vgg_1.png", &d1.join("a.png"));
    copy("img_vgg_1.png", &d0.join("b.png"));
    copy("img_vgg_0.png", &d1.join("b.png"));
    copy("img_vgg_grey.png", &d0.join("c.png"));
    copy("img_vgg_rgba.png", &d1.join("c.png"));
    (d0, d1)
}

/// `lpips ARGS` under an address-space limit (`ulimit -v`, KiB).
fn limited(limit_kib: u64, args: &[std::ffi::OsString]) -> std::process::Command {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v \"$0\" && exec \"$@\"")
        .arg(limit_kib.to_string())
        .arg(child::lpips_bin())
        .args(args)
        .env("TORCH_HOME", "/nonexistent/torch-home-for-tests")
        .env("LPIPS_OFFLINE", "1");
    cmd
}

#[test]
fn out_of_memory_on_one_huge_image_fails_that_pair_only() {
    let t = tempfile::tempdir().unwrap();
    let (d0, d1) = small_pairs(t.path());
    let args = |d0: &Path, d1: &Path| -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec!["dirs".into(), d0.into(), d1.into()];
        a.extend(trunk(Net::Vgg).map(Into::into));
        a.extend(
            [
                "--format",
                "json",
                "--threads",
                "1",
                "--batch-size",
                "2",
                "-q",
            ]
            .map(Into::into),
        );
        a
    };
    // The smallest address-space limit (in steps of 20%) under which the small pairs
    // alone run: libtorch and its CUDA libraries map gigabytes before any work.
    let mut limit = 2u64 << 20;
    let mut steps = 0;
    loop {
        let out = child::run(&mut limited(limit, &args(&d0, &d1)), GUARD, "small pairs");
        if out.code == Some(0) {
            break;
        }
        steps += 1;
        assert!(steps < 15, "the small pairs never ran: {}", out.stderr);
        limit += limit / 5;
    }
    // 1 GiB more: enough for decoding a 3200x3200 image (about 0.4 GB in all), not for
    // the VGG trunk on it (its first layer's output alone is 2.6 GB).
    let limit = limit + (1 << 20);
    gradient(&d0.join("huge.png"), 3200, 3200);
    gradient(&d1.join("huge.png"), 3200, 3200);
    let out = child::run(&mut limited(limit, &args(&d0, &d1)), GUARD, "with huge");
    assert_eq!(out.code, Some(1), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["results"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{json}");
    let huge = &rows[3];
    assert!(huge["img0"].as_str().unwrap().ends_with("huge.png"));
    assert!(huge["distance"].is_null());
    let reason = huge["error"].as_str().unwrap();
    assert!(
        reason.contains("allocate") && reason.contains("3200x3200"),
        "{reason}"
    );
    let model = common::model(Net::Vgg, Lin::V0_1);
    let mut sum = 0.0;
    for r in &rows[..3] {
        let want = f64::from(
            model
                .distance(r["img0"].as_str().unwrap(), r["img1"].as_str().unwrap())
                .unwrap(),
        );
        close(r["distance"].as_f64().unwrap(), want, "small pair");
        assert!(r["error"].is_null());
        sum += want;
    }
    assert_eq!(json["summary"]["count"], 3);
    assert_eq!(json["summary"]["failed"], 1);
    close(json["summary"]["mean"].as_f64().unwrap(), sum / 3.0, "mean");
    assert!(
        out.stderr.contains("1 of 4 pairs failed") && !out.stderr.contains("panicked"),
        "{}",
        out.stderr
    );

    // A pair whose pixels alone (Rust's buffer, not libtorch's) do not fit in what is
    // left: a header announcing 13000x13000 RGB (507 MB), under 256 MiB of room. That
    // allocation once aborted the whole run (`memory allocation of ... failed`).
    std::fs::remove_file(d0.join("huge.png")).unwrap();
    std::fs::remove_file(d1.join("huge.png")).unwrap();
    for d in [&d0, &d1] {
        std::fs::write(d.join("zz.png"), common::png_header(13_000, 13_000)).unwrap();
    }
    let tight = limit - (1 << 20) + (256 << 10);
    let out = child::run(
        &mut limited(tight, &args(&d0, &d1)),
        GUARD,
        "pixels too large",
    );
    assert_eq!((out.code, out.signal), (Some(1), None), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["results"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{json}");
    assert!(rows[..3].iter().all(|r| r["distance"].is_f64()), "{json}");
    let reason = rows[3]["error"].as_str().unwrap();
    assert!(
        reason.contains("zz.png") && reason.contains("not enough memory"),
        "{reason}"
    );
}

/// A heads file whose weights are so large that every distance overflows to infinity.
fn overflowing_heads(path: &Path) {
    let heads = common::read_tensors("heads_v0.1_alex.safetensors");
    let big: Vec<(String, lpips::Tensor)> = heads
        .into_iter()
        .map(|(k, v)| (k, v.zeros_like() + 3e38))
        .collect();
    lpips::Tensor::write_safetensors(&big, path).unwrap();
}

#[test]
fn non_finite_distances_are_errors_and_empty_selections_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let heads = t.path().join("inf.safetensors");
    overflowing_heads(&heads);
    let dir = t.path().join("imgs");
    std::fs::create_dir(&dir).unwrap();
    copy("img_alex_0.png", &dir.join("a.png"));
    copy("img_alex_1.png", &dir.join("b.png"));
    copy("img_alex_0.png", &dir.join("c.png"));
    let out = child::run(
        lpips()
            .arg("all-pairs")
            .arg(&dir)
            .args(trunk(Net::Alex))
            .arg("--lin")
            .arg(&heads)
            .args(["--format", "json"]),
        GUARD,
        "all-pairs",
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["results"].as_array().unwrap();
    // a-b and b-c overflow; a-c (the same pixels) is exactly 0.
    assert_eq!(rows.len(), 3);
    for r in [&rows[0], &rows[2]] {
        assert!(r["distance"].is_null(), "{r}");
        assert!(r["error"].as_str().unwrap().contains("not finite"), "{r}");
    }
    assert_eq!(rows[1]["distance"].as_f64(), Some(0.0));
    assert_eq!(json["summary"]["count"], 1);
    assert_eq!(json["summary"]["failed"], 2);
    assert_eq!(json["summary"]["max"].as_f64(), Some(0.0));

    let out = child::run(
        lpips()
            .arg("compare")
            .arg(dir.join("a.png"))
            .arg(dir.join("b.png"))
            .args(trunk(Net::Alex))
            .arg("--lin")
            .arg(&heads),
        GUARD,
        "compare",
    );
    assert_eq!(out.code, Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.starts_with("lpips: error: ")
            && out.stderr.contains("not finite")
            && out.stderr.lines().count() == 1,
        "{}",
        out.stderr
    );

    // Empty selections: refused by the argument parser, with the allowed range.
    for args in [
        vec!["eval", "2afc", "/nonexistent", "--limit", "0"],
        vec!["eval", "jnd", "/nonexistent", "--limit", "0"],
        vec![
            "train",
            "/nonexistent",
            "--out",
            "/nonexistent",
            "--limit",
            "0",
        ],
    ] {
        let out = child::run(lpips().args(&args), GUARD, "limit 0");
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("--limit") && out.stderr.contains("1.."),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn fifos_devices_and_symlink_loops_are_never_a_hang() {
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("imgs");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    copy("img_alex_0.png", &dir.join("a.png"));
    copy("img_alex_1.png", &dir.join("b.png"));
    let fifo = std::ffi::CString::new(dir.join("c.png").as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    std::os::unix::fs::symlink("/dev/zero", dir.join("d.png")).unwrap();
    // sub/up leads back to the folder itself: a loop; sub/again is a second way to sub.
    std::os::unix::fs::symlink("..", dir.join("sub/up")).unwrap();
    std::os::unix::fs::symlink(dir.join("sub"), dir.join("again")).unwrap();
    copy("img_alex_0.png", &dir.join("sub/e.png"));
    let out = child::run(
        lpips()
            .arg("all-pairs")
            .arg(&dir)
            .arg("--recursive")
            .args(trunk(Net::Alex))
            .args(["--format", "jsonl"]),
        GUARD,
        "all-pairs over a FIFO, a device and loops",
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    let rows: Vec<serde_json::Value> = out
        .stdout_text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // a, b, c (FIFO), d (device) and sub/e (reached once, through one of its two ways).
    let mut names: Vec<String> = rows
        .iter()
        .flat_map(|r| [r["img0"].to_string(), r["img1"].to_string()])
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 5, "{names:?}");
    assert_eq!(rows.len(), 10);
    for r in &rows {
        let pair = format!("{} {}", r["img0"], r["img1"]);
        if pair.contains("c.png") {
            assert!(r["error"].as_str().unwrap().contains("FIFO"), "{r}");
        } else if pair.contains("d.png") {
            assert!(r["error"].as_str().unwrap().contains("device"), "{r}");
        } else {
            assert!(r["distance"].as_f64().is_some(), "{r}");
        }
    }
    assert!(
        out.stderr.contains("symlink loop") && out.stderr.contains("listed already"),
        "{}",
        out.stderr
    );
}

#[test]
fn names_that_differ_in_non_utf8_bytes_are_never_paired() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    let (d0, d1) = (t.path().join("d0"), t.path().join("d1"));
    std::fs::create_dir_all(&d0).unwrap();
    std::fs::create_dir_all(&d1).unwrap();
    let fe = OsStr::from_bytes(b"a\xfe.png");
    let ff = OsStr::from_bytes(b"a\xff.png");
    // Same pixels under one name, different under the other: a mix-up shows.
    copy("img_alex_0.png", &d0.join(fe));
    copy("img_alex_0.png", &d1.join(fe));
    copy("img_alex_0.png", &d0.join(ff));
    copy("img_alex_1.png", &d1.join(ff));
    let reference = common::cli_oracle()["alex/v0.1"].as_f64().unwrap();
    let run = |format: &str| {
        let out = child::run(
            lpips()
                .arg("dirs")
                .arg(&d0)
                .arg(&d1)
                .args(trunk(Net::Alex))
                .args(["--format", format]),
            GUARD,
            "dirs",
        );
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        out
    };
    let hex = |name: &OsStr, dir: &Path| -> String {
        dir.join(name)
            .as_os_str()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let out = run("jsonl");
    let rows: Vec<serde_json::Value> = out
        .stdout_text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "one pair per name");
    assert_eq!(rows[0]["img0_hex"], hex(fe, &d0));
    assert_eq!(rows[0]["img1_hex"], hex(fe, &d1));
    assert_eq!(rows[0]["distance"].as_f64(), Some(0.0));
    assert_eq!(rows[1]["img0_hex"], hex(ff, &d0));
    assert_eq!(rows[1]["img1_hex"], hex(ff, &d1));
    close(rows[1]["distance"].as_f64().unwrap(), reference, "a\\xff");

    // CSV: the hex columns; text: the raw bytes themselves.
    let out = run("csv");
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(&rows[1][6], hex(ff, &d0));
    assert_eq!(&rows[1][7], hex(ff, &d1));
    let out = run("text");
    let lines: Vec<&[u8]> = out.stdout.split(|&b| b == b'\n').collect();
    let mut want = b"\t".to_vec();
    want.extend_from_slice(d0.join(ff).as_os_str().as_bytes());
    want.push(b'\t');
    want.extend_from_slice(d1.join(ff).as_os_str().as_bytes());
    assert!(
        lines[1].ends_with(&want),
        "{:?}",
        String::from_utf8_lossy(lines[1])
    );
}

#[test]
fn memory_is_bounded_by_the_batch_whatever_the_mix_of_sizes() {
    // 16 pairs of 16 sizes near 700 px, and one pair of the largest size alone.
    let t = tempfile::tempdir().unwrap();
    let (d0, d1) = (t.path().join("d0"), t.path().join("d1"));
    let (o0, o1) = (t.path().join("o0"), t.path().join("o1"));
    for d in [&d0, &d1, &o0, &o1] {
        std::fs::create_dir_all(d).unwrap();
    }
    let sizes: Vec<u32> = (0..16).map(|i| 700 + 4 * i).collect();
    for (i, &s) in sizes.iter().enumerate() {
        gradient(&d0.join(format!("im{i:02}.png")), s, s);
        gradient_shifted(&d1.join(format!("im{i:02}.png")), s, s, 64);
    }
    let last = "im15.png";
    std::fs::copy(d0.join(last), o0.join(last)).unwrap();
    std::fs::copy(d1.join(last), o1.join(last)).unwrap();
    let run = |a: &Path, b: &Path| {
        child::run(
            lpips()
                .arg("dirs")
                .arg(a)
                .arg(b)
                .args(trunk(Net::Alex))
                .args(["--batch-size", "8", "--threads", "1", "-q"]),
            GUARD,
            "dirs",
        )
    };
    let one = run(&o0, &o1);
    let all = run(&d0, &d1);
    assert_eq!(one.code, Some(0), "{}", one.stderr);
    assert_eq!(all.code, Some(0), "{}", all.stderr);
    let text = all.stdout_text();
    assert!(text.contains("# count 16 failed 0"), "{text}");
    // Holding every decoded image until the end (as the runner once did) costs at least
    // their f32 tensors; the bound allows half of that above a one-pair run.
    let held: u64 = sizes.iter().map(|&s| 2 * 3 * 4 * u64::from(s * s)).sum();
    let bound = one.max_rss + held / 2;
    eprintln!(
        "peak RSS: one pair {} MB, 16 pairs of 16 sizes {} MB, all images held {} MB, bound {} MB",
        one.max_rss >> 20,
        all.max_rss >> 20,
        held >> 20,
        bound >> 20
    );
    assert!(
        all.max_rss < bound,
        "peak RSS {} MB over the bound {} MB",
        all.max_rss >> 20,
        bound >> 20
    );
}
