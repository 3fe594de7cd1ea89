//! `lpips dirs`, `all-pairs` and `ref` end to end: every format parsed back, failures
//! reported with the rest still measured, sharding covering each pair exactly once, and
//! results equal to the library's (and, for the oracle's pair, the reference's).

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::{cli_oracle, oracle_file};
use assert_cmd::Command;
use lpips::{Lin, Net};

fn lpips() -> Command {
    let mut cmd = Command::cargo_bin("lpips").unwrap();
    cmd.env("LPIPS_OFFLINE", "1");
    cmd
}

fn trunk() -> Vec<String> {
    vec![
        "--trunk".into(),
        oracle_file("trunk_alex.safetensors").display().to_string(),
    ]
}

fn copy(from: &str, to: &Path) {
    std::fs::copy(oracle_file(from), to).unwrap();
}

/// d0 and d1 share a.png, b.png (both pairs the oracle's), broken.png (unreadable in d0)
/// and size.png (sizes differ); only0.png and only1.png are on one side only.
fn two_dirs() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let (d0, d1) = (t.path().join("d0"), t.path().join("d1"));
    std::fs::create_dir_all(d0.join("sub")).unwrap();
    std::fs::create_dir_all(d1.join("sub")).unwrap();
    copy("img_alex_0.png", &d0.join("a.png"));
    copy("img_alex_1.png", &d1.join("a.png"));
    copy("img_alex_1.png", &d0.join("b.png"));
    copy("img_alex_0.png", &d1.join("b.png"));
    copy("img_alex_0.png", &d0.join("only0.png"));
    copy("img_alex_1.png", &d1.join("only1.png"));
    std::fs::write(d0.join("broken.png"), b"not a png").unwrap();
    copy("img_alex_0.png", &d1.join("broken.png"));
    copy("img_vgg_0.png", &d0.join("size.png"));
    copy("img_alex_0.png", &d1.join("size.png"));
    copy("img_alex_grey.png", &d0.join("sub/c.png"));
    copy("img_alex_rgba.png", &d1.join("sub/c.png"));
    std::fs::write(d0.join("notes.txt"), b"not an image").unwrap();
    t
}

fn reference() -> f64 {
    cli_oracle()["alex/v0.1"].as_f64().unwrap()
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-6 + 1e-4 * want.abs(),
        "{what}: {got} vs {want}"
    );
}

#[test]
fn dirs_in_every_format() {
    dirs_formats();
}

#[test]
fn imagenet_dirs_in_every_format() {
    common::on_imagenet(dirs_formats);
}

fn dirs_formats() {
    let t = two_dirs();
    let (d0, d1) = (t.path().join("d0"), t.path().join("d1"));
    let run = |format: &str, extra: &[&str]| {
        let out = lpips()
            .arg("dirs")
            .arg(&d0)
            .arg(&d1)
            .args(trunk())
            .args(["--format", format])
            .args(extra)
            .assert()
            .failure()
            .code(1);
        let o = out.get_output();
        (
            String::from_utf8(o.stdout.clone()).unwrap(),
            String::from_utf8(o.stderr.clone()).unwrap(),
        )
    };
    // JSON: results, summary, unmatched names.
    let (stdout, stderr) = run("json", &[]);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "a, b, broken, size");
    for r in &results[..2] {
        close(r["distance"].as_f64().unwrap(), reference(), "a/b");
    }
    assert!(results[2]["error"].as_str().unwrap().contains("broken.png"));
    assert!(
        results[3]["error"]
            .as_str()
            .unwrap()
            .contains("differ in size")
    );
    assert_eq!(json["summary"]["count"], 2);
    assert_eq!(json["summary"]["failed"], 2);
    for key in ["mean", "median", "min", "max"] {
        close(json["summary"][key].as_f64().unwrap(), reference(), key);
    }
    let unmatched = json["unmatched"].to_string();
    assert!(
        unmatched.contains("only0.png") && unmatched.contains("only1.png"),
        "{unmatched}"
    );
    assert!(
        stderr.contains("only0.png")
            && stderr.contains("broken.png")
            && stderr.contains("2 of 4 pairs failed"),
        "{stderr}"
    );

    // CSV with a header; JSONL a row per line; text with a summary line.
    let (stdout, _) = run("csv", &[]);
    let mut reader = csv::Reader::from_reader(stdout.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "index", "img0", "img1", "distance", "error", "spatial", "img0_hex", "img1_hex"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4);
    close(rows[0][3].parse().unwrap(), reference(), "csv");
    let (stdout, _) = run("jsonl", &[]);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    close(lines[1]["distance"].as_f64().unwrap(), reference(), "jsonl");
    let (stdout, _) = run("text", &[]);
    let text: Vec<&str> = stdout.lines().collect();
    assert_eq!(text.len(), 3, "{stdout}");
    assert!(text[2].starts_with("# count 2 failed 2 mean"), "{stdout}");
    close(
        text[0].split('\t').next().unwrap().parse().unwrap(),
        reference(),
        "text",
    );

    // --recursive adds sub/c.png; --ext filters.
    let (stdout, _) = run("jsonl", &["--recursive"]);
    assert_eq!(stdout.lines().count(), 5);
    let grey_rgba = cli_oracle()["alex/v0.1/grey_rgba"].as_f64().unwrap();
    let c: serde_json::Value =
        serde_json::from_str(stdout.lines().find(|l| l.contains("c.png")).unwrap()).unwrap();
    close(c["distance"].as_f64().unwrap(), grey_rgba, "sub/c.png");
    let out = lpips()
        .arg("dirs")
        .arg(&d0)
        .arg(&d1)
        .args(trunk())
        .args(["--ext", "jpg"])
        .assert()
        .failure();
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("no images"));
}

#[test]
fn out_file_and_spatial_maps() {
    out_file_and_maps();
}

#[test]
fn imagenet_out_file_and_spatial_maps() {
    common::on_imagenet(out_file_and_maps);
}

fn out_file_and_maps() {
    let t = two_dirs();
    let (d0, d1) = (t.path().join("d0"), t.path().join("d1"));
    let out = t.path().join("res/out.json");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let maps = t.path().join("maps");
    lpips()
        .arg("dirs")
        .arg(&d0)
        .arg(&d1)
        .args(trunk())
        .args(["--format", "json", "--spatial-format", "npy", "--out"])
        .arg(&out)
        .arg("--spatial-dir")
        .arg(&maps)
        .assert()
        .failure()
        .stdout("");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        std::fs::read_dir(out.parent().unwrap()).unwrap().count(),
        1,
        "no temporary file left"
    );
    let model = common::model(Net::Alex, Lin::V0_1);
    let want = model
        .distance_map(oracle_file("img_alex_0.png"), oracle_file("img_alex_1.png"))
        .unwrap();
    let path = json["results"][0]["spatial"].as_str().unwrap();
    let got: ndarray::Array2<f32> = ndarray_npy::read_npy(path).unwrap();
    common::assert_close_slice(got.as_slice().unwrap(), want.as_slice().unwrap(), "map");
    lpips()
        .arg("dirs")
        .arg(&d0)
        .arg(&d1)
        .args(trunk())
        .arg("--spatial-dir")
        .arg(t.path().join("png"))
        .assert()
        .failure();
    let png = image::open(t.path().join("png/pair_000000.png")).unwrap();
    let (width, _) = image::image_dimensions(oracle_file("img_alex_0.png")).unwrap();
    assert_eq!(png.width(), width);
}

fn all_pairs_dir(n: usize) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let files = [
        "img_alex_0.png",
        "img_alex_1.png",
        "img_alex_grey.png",
        "img_alex_rgba.png",
    ];
    for (i, f) in files.iter().cycle().take(n).enumerate() {
        copy(f, &t.path().join(format!("im{i}.png")));
    }
    t
}

fn jsonl_rows(cmd: &mut Command) -> Vec<serde_json::Value> {
    let out = cmd.assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn all_pairs_equal_the_library_and_shards_cover_each_pair_once() {
    all_pairs();
}

#[test]
fn imagenet_all_pairs_equal_the_library_and_shards_cover_each_pair_once() {
    common::on_imagenet(all_pairs);
}

fn all_pairs() {
    let t = all_pairs_dir(5);
    let full = jsonl_rows(lpips().arg("all-pairs").arg(t.path()).args(trunk()).args([
        "--format",
        "jsonl",
        "--batch-size",
        "2",
    ]));
    assert_eq!(full.len(), 10);
    let model = common::model(Net::Alex, Lin::V0_1);
    for r in &full {
        let want = model
            .distance(r["img0"].as_str().unwrap(), r["img1"].as_str().unwrap())
            .unwrap();
        close(
            r["distance"].as_f64().unwrap(),
            f64::from(want),
            "all-pairs",
        );
    }
    // Pairs by identity; distances agree within tolerance (batches differ in make-up).
    let key = |r: &serde_json::Value| {
        (
            r["index"].as_u64().unwrap(),
            r["img0"].to_string(),
            r["img1"].to_string(),
        )
    };
    let whole: std::collections::BTreeMap<_, f64> = full
        .iter()
        .map(|r| (key(r), r["distance"].as_f64().unwrap()))
        .collect();
    let mut union = BTreeSet::new();
    for i in 1..=3 {
        let shard = format!("{i}/3");
        let part = jsonl_rows(
            lpips()
                .arg("all-pairs")
                .arg(t.path())
                .args(trunk())
                .args(["--format", "jsonl", "--shard", &shard]),
        );
        for r in &part {
            assert!(union.insert(key(r)), "pair in two shards: {r}");
            close(r["distance"].as_f64().unwrap(), whole[&key(r)], "shard");
        }
    }
    assert_eq!(
        union,
        whole.keys().cloned().collect(),
        "the shards together are the whole"
    );
    let out = lpips()
        .arg("all-pairs")
        .arg(t.path())
        .args(trunk())
        .args(["--shard", "4/3"])
        .assert()
        .failure();
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("1 <= I <= N"));
}

#[test]
fn ref_against_folders_and_files() {
    ref_command();
}

#[test]
fn imagenet_ref_against_folders_and_files() {
    common::on_imagenet(ref_command);
}

fn ref_command() {
    let t = all_pairs_dir(4);
    let rows = jsonl_rows(
        lpips()
            .arg("ref")
            .arg(oracle_file("img_alex_0.png"))
            .arg(t.path())
            .arg(oracle_file("img_alex_1.png"))
            .args(trunk())
            .args(["--format", "jsonl"]),
    );
    assert_eq!(rows.len(), 5);
    close(rows[0]["distance"].as_f64().unwrap(), 0.0, "itself");
    close(rows[1]["distance"].as_f64().unwrap(), reference(), "im1");
    close(rows[4]["distance"].as_f64().unwrap(), reference(), "file");
    // A missing target is reported, the rest still measured, exit 1.
    let out = lpips()
        .arg("ref")
        .arg(oracle_file("img_alex_0.png"))
        .arg(t.path().join("missing.png"))
        .arg(oracle_file("img_alex_1.png"))
        .args(trunk())
        .args(["--format", "csv"])
        .assert()
        .failure()
        .code(1);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 3);
    assert!(stdout.contains("missing.png"));
}

#[test]
fn folder_errors_and_help() {
    let empty = tempfile::tempdir().unwrap();
    let out = lpips()
        .arg("all-pairs")
        .arg(empty.path())
        .args(trunk())
        .assert()
        .failure()
        .code(1);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains("no images") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let out = lpips()
        .args(["dirs", "/no/such/dir", "/tmp"])
        .args(trunk())
        .assert()
        .failure()
        .code(1);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("/no/such/dir"));
    let help = lpips().args(["dirs", "--help"]).assert().success();
    assert!(String::from_utf8_lossy(&help.get_output().stdout).contains("Examples:"));
    for shell in ["bash", "zsh", "fish"] {
        let out = lpips().args(["completions", shell]).assert().success();
        let script = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(
            script.contains("all-pairs") && script.contains("lpips"),
            "{shell}"
        );
    }
}

/// On the CPU a batch with at least two images per libtorch thread is split across
/// single-threaded workers (cli/src/folders/runner.rs, `TrunkPool`): the distances are
/// the reference's, and an identical pair is exactly 0 though its images land in
/// different workers' shares.
#[test]
fn batches_split_across_workers_keep_the_reference_distances() {
    split_batches();
}

#[test]
fn imagenet_batches_split_across_workers_keep_the_reference_distances() {
    common::on_imagenet(split_batches);
}

fn split_batches() {
    let t = tempfile::tempdir().unwrap();
    let (d0, d1) = (t.path().join("d0"), t.path().join("d1"));
    std::fs::create_dir_all(&d0).unwrap();
    std::fs::create_dir_all(&d1).unwrap();
    for k in 0..5 {
        copy("img_alex_0.png", &d0.join(format!("p{k}.png")));
        copy("img_alex_1.png", &d1.join(format!("p{k}.png")));
    }
    copy("img_alex_0.png", &d0.join("same.png"));
    copy("img_alex_0.png", &d1.join("same.png"));
    // Two libtorch threads (so two workers) on any machine.
    {
        let threads = "2";
        let out = lpips()
            .env("OMP_NUM_THREADS", threads)
            .arg("dirs")
            .arg(&d0)
            .arg(&d1)
            .args(trunk())
            .args(["--format", "json", "--batch-size", "12", "--quiet"])
            .assert()
            .success();
        let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
        let rows = json["results"].as_array().unwrap();
        assert_eq!(rows.len(), 6);
        for r in rows {
            let d = r["distance"].as_f64().unwrap();
            if r["img0"].as_str().unwrap().ends_with("same.png") {
                assert_eq!(d, 0.0, "{threads} threads: {r}");
            } else {
                close(d, reference(), &format!("{threads} threads: {r}"));
            }
        }
    }
}

/// Names holding a newline, tab, carriage return, backslash or other control character
/// cannot break or forge `text` rows: each pair is one line of three tab-separated
/// fields, the names escaped; JSON keeps them exact.
#[test]
fn text_rows_escape_control_characters_in_names() {
    let t = tempfile::tempdir().unwrap();
    let (d0, d1) = (t.path().join("d0"), t.path().join("d1"));
    std::fs::create_dir_all(&d0).unwrap();
    std::fs::create_dir_all(&d1).unwrap();
    // A name crafted to look like a second result row once its newline is written raw.
    let forged = "x.png\n0.000000\tfake0.png\tfake1.png";
    let names = [forged, "tab\there.png", "cr\rback\\slash\x07.png"];
    for name in names {
        copy("img_alex_0.png", &d0.join(name));
        copy("img_alex_1.png", &d1.join(name));
    }
    let out = lpips()
        .arg("dirs")
        .arg(&d0)
        .arg(&d1)
        .args(trunk())
        .arg("-q")
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let rows: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(rows.len(), 3, "{text}");
    for row in &rows {
        assert_eq!(row.split('\t').count(), 3, "{row:?}");
        assert!(!row.contains('\r') && !row.contains('\x07'), "{row:?}");
    }
    let want_forged = format!(
        "{}\\n0.000000\\tfake0.png\\tfake1.png",
        d0.join("x.png").display()
    );
    assert!(
        rows.iter()
            .any(|r| r.split('\t').nth(1) == Some(want_forged.as_str())),
        "{text}"
    );
    assert!(text.contains("cr\\rback\\\\slash\\x07.png"), "{text}");
    assert!(text.contains("tab\\there.png"), "{text}");
    assert!(text.contains("# count 3 failed 0"), "{text}");

    let out = lpips()
        .arg("dirs")
        .arg(&d0)
        .arg(&d1)
        .args(trunk())
        .args(["-q", "--format", "json"])
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let got: BTreeSet<String> = json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["img0"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = names
        .iter()
        .map(|n| d0.join(n).display().to_string())
        .collect();
    assert_eq!(got, want);
}

/// `lpips dirs` is a layer over the library's folder engine: on the same folders (sizes,
/// a broken file, grey and RGBA, sub-folders), its rows are the engine's, pair for pair:
/// the same pairs in the same order, the same distances (to 1e-6), errors where the
/// engine gives errors (with the same text).
#[test]
fn dirs_rows_equal_the_library_engine() {
    use lpips::engine::{self, Job, Options, Scan};
    let t = two_dirs();
    let (d0, d1) = (t.path().join("d0"), t.path().join("d1"));
    let out = lpips()
        .env("OMP_NUM_THREADS", "2")
        .arg("dirs")
        .arg(&d0)
        .arg(&d1)
        .args(trunk())
        .args([
            "--recursive",
            "--format",
            "json",
            "--batch-size",
            "3",
            "--quiet",
        ])
        .assert()
        .failure()
        .code(1);
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let rows = json["results"].as_array().unwrap();

    let scan = Scan {
        recursive: true,
        ..Scan::default()
    };
    let job = Job::dirs(&d0, &d1, &scan).unwrap();
    assert_eq!(job.pairs().len(), rows.len());
    let model = common::model(Net::Alex, Lin::V0_1);
    lpips::tch::set_num_threads(2);
    let mut got = std::collections::BTreeMap::new();
    let options = Options {
        batch_size: 3,
        ..Options::default()
    };
    engine::run(
        &model,
        &job,
        &options,
        |k, r| {
            got.insert(k, r);
        },
        |_| {},
    )
    .unwrap();
    for (k, row) in rows.iter().enumerate() {
        let pair = &job.pairs()[k];
        assert_eq!(row["index"], k);
        assert_eq!(row["img0"].as_str().unwrap(), job.image_name(pair.a));
        assert_eq!(row["img1"].as_str().unwrap(), job.image_name(pair.b));
        match &got[&k] {
            Ok(r) => {
                // Equal up to the last bits: which images share a trunk pass depends on
                // which decode thread finishes first, in both runs.
                let d = row["distance"].as_f64().unwrap();
                assert!(
                    (d - f64::from(r.distance)).abs() <= 1e-6,
                    "{row} vs {}",
                    r.distance
                );
            }
            Err(e) => {
                assert!(row["distance"].is_null(), "{row}");
                let text = e.to_string();
                let cli = row["error"].as_str().unwrap();
                // The command line words unreadable images for its users (cli_error).
                assert!(
                    cli == text || (text.contains("broken.png") && cli.contains("broken.png")),
                    "{cli} vs {text}"
                );
            }
        }
    }
}
