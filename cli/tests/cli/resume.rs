//! Interrupted folder runs: SIGTERM (handled: the run stops at a safe point) and SIGKILL
//! (not handled) midway leave OUT.partial.jsonl; `--resume` measures only the missing
//! pairs and writes the same output as an uninterrupted run, shards included.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::child::{self, GUARD, lpips};
use crate::common::oracle_file;

/// 40 pairs in d0/d1, each of distinct images (so each needs its own trunk passes).
fn forty_pairs(root: &Path) {
    let files = [
        "img_alex_0.png",
        "img_alex_1.png",
        "img_alex_grey.png",
        "img_alex_rgba.png",
    ];
    for (side, shift) in [("d0", 0), ("d1", 1)] {
        std::fs::create_dir_all(root.join(side)).unwrap();
        for i in 0..40 {
            std::fs::copy(
                oracle_file(files[(i + shift) % 4]),
                root.join(side).join(format!("p{i:02}.png")),
            )
            .unwrap();
        }
    }
}

fn command(root: &Path, out: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = lpips();
    cmd.arg("dirs")
        .arg(root.join("d0"))
        .arg(root.join("d1"))
        .arg("--trunk")
        .arg(oracle_file("trunk_alex.safetensors"))
        .args([
            "--format",
            "jsonl",
            "--batch-size",
            "1",
            "--threads",
            "1",
            "-q",
        ])
        .arg("--out")
        .arg(out)
        .args(extra);
    cmd
}

fn rows(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Rows equal but for the last bits of the distances (batches differ in make-up).
fn assert_same_rows(got: &[serde_json::Value], want: &[serde_json::Value]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        for key in ["index", "img0", "img1", "error", "spatial"] {
            assert_eq!(g[key], w[key], "{key}: {g} vs {w}");
        }
        let (g, w) = (
            g["distance"].as_f64().unwrap(),
            w["distance"].as_f64().unwrap(),
        );
        assert!((g - w).abs() <= 1e-6 + 1e-5 * w.abs(), "{g} vs {w}");
    }
}

/// Starts the run, waits until `rows` pairs are in its partial file, then sends `signal`.
fn interrupt(
    cmd: &mut std::process::Command,
    partial: &Path,
    rows: usize,
    signal: i32,
) -> child::Outcome {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut running = cmd.spawn().unwrap();
    let start = Instant::now();
    loop {
        let lines = std::fs::read_to_string(partial).map_or(0, |t| t.lines().count());
        if lines > rows {
            break;
        }
        assert!(
            running.try_wait().unwrap().is_none(),
            "the run ended before it could be interrupted"
        );
        assert!(start.elapsed() < GUARD, "no rows written (hung?)");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(running.id() as i32, signal) }, 0);
    child::wait(running, GUARD, "interrupted run")
}

#[test]
fn interrupted_runs_resume_to_the_uninterrupted_output() {
    let t = tempfile::tempdir().unwrap();
    forty_pairs(t.path());
    let whole = t.path().join("whole.jsonl");
    let done = child::run(&mut command(t.path(), &whole, &[]), GUARD, "whole run");
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let want = rows(&whole);
    assert_eq!(want.len(), 40);

    for (signal, code) in [
        (libc::SIGTERM, Some(128 + libc::SIGTERM)),
        (libc::SIGKILL, None),
    ] {
        let out = t.path().join(format!("out-{signal}.jsonl"));
        let partial = t.path().join(format!("out-{signal}.jsonl.partial.jsonl"));
        let stopped = interrupt(&mut command(t.path(), &out, &[]), &partial, 3, signal);
        assert_eq!(stopped.code, code, "{}", stopped.stderr);
        if signal == libc::SIGTERM {
            assert!(
                stopped.stderr.contains("stopped by SIGTERM")
                    && stopped.stderr.contains("--resume"),
                "{}",
                stopped.stderr
            );
        } else {
            assert_eq!(stopped.signal, Some(libc::SIGKILL));
        }
        assert!(!out.exists(), "no final output from an interrupted run");
        let kept = std::fs::read_to_string(&partial).unwrap().lines().count() - 1;
        assert!((3..40).contains(&kept), "{kept} rows kept");

        // Without --resume the partial file is not overwritten.
        let refused = child::run(&mut command(t.path(), &out, &[]), GUARD, "no --resume");
        assert_eq!(refused.code, Some(1));
        assert!(refused.stderr.contains("--resume"), "{}", refused.stderr);

        let resumed = child::run(&mut command(t.path(), &out, &["--resume"]), GUARD, "resume");
        assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
        assert!(
            resumed
                .stderr
                .contains(&format!("{kept} pairs kept from {}", partial.display()))
                && resumed
                    .stderr
                    .contains(&format!("{} to measure", 40 - kept)),
            "{}",
            resumed.stderr
        );
        assert!(!partial.exists(), "the partial file is removed at the end");
        assert_same_rows(&rows(&out), &want);
    }

    // A shard: rows keep their index in the whole list.
    let shard_whole = t.path().join("shard-whole.jsonl");
    let done = child::run(
        &mut command(t.path(), &shard_whole, &["--shard", "2/3"]),
        GUARD,
        "whole shard",
    );
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let out = t.path().join("shard.jsonl");
    let partial = t.path().join("shard.jsonl.partial.jsonl");
    interrupt(
        &mut command(t.path(), &out, &["--shard", "2/3"]),
        &partial,
        2,
        libc::SIGKILL,
    );
    // Another shard's command is refused on this partial file.
    let other = child::run(
        &mut command(t.path(), &out, &["--shard", "1/3", "--resume"]),
        GUARD,
        "other shard",
    );
    assert_eq!(other.code, Some(1));
    assert!(other.stderr.contains("another run"), "{}", other.stderr);
    let resumed = child::run(
        &mut command(t.path(), &out, &["--shard", "2/3", "--resume"]),
        GUARD,
        "resume shard",
    );
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    let got = rows(&out);
    assert!(got.iter().all(|r| r["index"].as_u64().unwrap() % 3 == 1));
    assert_same_rows(&got, &rows(&shard_whole));
}

/// A resume measures the missing pairs the way the kept ones were measured, or not at
/// all: every setting that changes the numbers is part of the run's identity.
#[test]
fn a_resume_with_other_measuring_settings_is_refused() {
    let t = tempfile::tempdir().unwrap();
    forty_pairs(t.path());
    let out = t.path().join("out.jsonl");
    let partial = t.path().join("out.jsonl.partial.jsonl");
    let maps = t.path().join("maps");
    let maps = maps.to_str().unwrap();
    interrupt(
        &mut command(t.path(), &out, &["--spatial-dir", maps]),
        &partial,
        2,
        libc::SIGKILL,
    );
    let mask = oracle_file("img_alex_grey.png");
    let mask = mask.to_str().unwrap();
    for other in [
        &["--pixel-range", "zero-to-one"][..],
        &["--map-mean"],
        &["--mask", mask],
        &["--lin", "none"],
        &["--spatial-format", "npy"],
    ] {
        let mut args = vec!["--resume", "--spatial-dir", maps];
        args.extend_from_slice(other);
        let refused = child::run(&mut command(t.path(), &out, &args), GUARD, "other settings");
        assert_eq!(refused.code, Some(1), "{other:?}: {}", refused.stderr);
        assert!(
            refused.stderr.contains("another run"),
            "{other:?}: {}",
            refused.stderr
        );
    }
    let resumed = child::run(
        &mut command(t.path(), &out, &["--resume", "--spatial-dir", maps]),
        GUARD,
        "same settings",
    );
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    assert_eq!(rows(&out).len(), 40);
}

/// A partial file that is not a regular file is refused at once (a FIFO would block the
/// open, `/dev/zero` would be read until memory ran out), and one with an endless line
/// is refused after a bounded read.
#[test]
fn partial_files_that_are_not_partial_files_are_refused_without_blocking() {
    let t = tempfile::tempdir().unwrap();
    forty_pairs(t.path());
    let out = t.path().join("out.jsonl");
    let partial = t.path().join("out.jsonl.partial.jsonl");
    let c = std::ffi::CString::new(partial.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    for resume in [&["--resume"][..], &[]] {
        let refused = child::run(&mut command(t.path(), &out, resume), GUARD, "FIFO partial");
        assert_eq!(refused.code, Some(1), "{}", refused.stderr);
        assert!(
            refused.stderr.contains("is a FIFO") && refused.stderr.lines().count() == 1,
            "{}",
            refused.stderr
        );
    }
    std::fs::remove_file(&partial).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &partial).unwrap();
    let refused = child::run(
        &mut command(t.path(), &out, &["--resume"]),
        GUARD,
        "/dev/zero partial",
    );
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains("is a device"), "{}", refused.stderr);
    assert!(refused.max_rss < 1 << 30, "read {} bytes", refused.max_rss);
    std::fs::remove_file(&partial).unwrap();
    // A regular file of one 8 MiB line: refused after the bound, not read whole.
    std::fs::write(&partial, vec![b'x'; 8 << 20]).unwrap();
    let refused = child::run(
        &mut command(t.path(), &out, &["--resume"]),
        GUARD,
        "long line",
    );
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("line 1 is longer"),
        "{}",
        refused.stderr
    );
    assert!(!out.exists());
}

/// Two runs of one job at once: the second says which process holds the job and stops
/// at once (it neither measures nor touches the files); the first finishes whole.
#[test]
fn a_second_run_of_the_same_job_stops_at_once() {
    let t = tempfile::tempdir().unwrap();
    forty_pairs(t.path());
    let out = t.path().join("out.jsonl");
    let partial = t.path().join("out.jsonl.partial.jsonl");
    let mut first = command(t.path(), &out, &[]);
    first
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let first = first.spawn().unwrap();
    let start = Instant::now();
    while std::fs::read_to_string(&partial).map_or(0, |t| t.lines().count()) < 2 {
        assert!(start.elapsed() < GUARD, "the first run wrote no row");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Held still (its lock with it) while the second run tries, so that timing cannot
    // decide the test.
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(first.id() as i32, libc::SIGSTOP) }, 0);
    for extra in [&["--resume"][..], &[]] {
        let second = child::run(&mut command(t.path(), &out, extra), GUARD, "second run");
        assert_eq!(second.code, Some(1), "{}", second.stderr);
        assert!(
            second.stderr.contains("another lpips run of the same job")
                && second.stderr.contains(&format!("process {}", first.id()))
                && second.stderr.lines().count() == 1,
            "{}",
            second.stderr
        );
    }
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(first.id() as i32, libc::SIGCONT) }, 0);
    let first = child::wait(first, GUARD, "first run");
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(rows(&out).len(), 40);
    assert!(!partial.exists());
    // The job can run again once the first is done (the lock went with its process).
    let again = child::run(&mut command(t.path(), &out, &["--resume"]), GUARD, "again");
    assert_eq!(again.code, Some(0), "{}", again.stderr);
}

/// A partial file that is a dangling symlink is named as one (not retried as if other
/// runs kept replacing it); an empty one holds no run's work and is taken over; rows
/// edited to distances no run writes are measured again, never carried into the output.
#[test]
fn empty_dangling_and_edited_partial_files() {
    let t = tempfile::tempdir().unwrap();
    forty_pairs(t.path());
    let whole = t.path().join("whole.jsonl");
    let done = child::run(&mut command(t.path(), &whole, &[]), GUARD, "whole run");
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let want = rows(&whole);

    let out = t.path().join("out.jsonl");
    let partial = t.path().join("out.jsonl.partial.jsonl");
    std::os::unix::fs::symlink(t.path().join("nowhere"), &partial).unwrap();
    for resume in [&["--resume"][..], &[]] {
        let refused = child::run(&mut command(t.path(), &out, resume), GUARD, "dangling");
        assert_eq!(refused.code, Some(1), "{}", refused.stderr);
        assert!(
            refused.stderr.contains("is a symlink to")
                && refused.stderr.contains("nowhere")
                && refused.stderr.contains("does not exist")
                && refused.stderr.lines().count() == 1,
            "{}",
            refused.stderr
        );
    }
    assert!(!out.exists() && !t.path().join("nowhere").exists());
    std::fs::remove_file(&partial).unwrap();

    for resume in [&["--resume"][..], &[]] {
        std::fs::write(&partial, b"").unwrap();
        let _ = std::fs::remove_file(&out);
        let run = child::run(&mut command(t.path(), &out, resume), GUARD, "empty partial");
        assert_eq!(run.code, Some(0), "{resume:?}: {}", run.stderr);
        assert_same_rows(&rows(&out), &want);
        assert!(!partial.exists());
    }

    std::fs::remove_file(&out).unwrap();
    interrupt(
        &mut command(t.path(), &out, &[]),
        &partial,
        3,
        libc::SIGKILL,
    );
    let text = std::fs::read_to_string(&partial).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for (line, bad) in lines[1..3].iter_mut().zip(["-0.5", "1e39"]) {
        let mut row: serde_json::Value = serde_json::from_str(line).unwrap();
        row["distance"] = serde_json::from_str(bad).unwrap();
        *line = row.to_string();
    }
    std::fs::write(&partial, lines.join("\n") + "\n").unwrap();
    let resumed = child::run(&mut command(t.path(), &out, &["--resume"]), GUARD, "edited");
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    assert_eq!(
        resumed
            .stderr
            .matches("which no run writes: measuring it again")
            .count(),
        2,
        "{}",
        resumed.stderr
    );
    assert_same_rows(&rows(&out), &want);
}
