//! Where results go: output paths checked before any work, files created with the mode
//! the umask gives, symlinks written through, and stdout closed or full handled like any
//! Unix tool does; absurd counts refused by the parser with their range.

use std::path::Path;
use std::process::Stdio;

use crate::child::{self, GUARD, lpips};
use crate::common::{oracle_dir, oracle_file};

fn two_images(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(oracle_file("img_alex_0.png"), dir.join("a.png")).unwrap();
    std::fs::copy(oracle_file("img_alex_1.png"), dir.join("b.png")).unwrap();
}

/// One error line on stderr naming `words`, exit 1.
fn assert_error(out: &child::Outcome, words: &[&str]) {
    assert_eq!(out.code, Some(1), "{out:?}");
    let line = out.stderr.trim_end();
    assert!(
        line.starts_with("lpips: error: ")
            && line.lines().count() == 1
            && words.iter().all(|w| line.contains(w)),
        "{line}"
    );
}

#[test]
fn outputs_are_checked_before_any_work() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("imgs");
    two_images(&dir);
    let file = t.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    // The trunk does not exist: an error about it would mean work had begun.
    let all_pairs = |extra: &[&std::ffi::OsStr]| {
        let mut cmd = lpips();
        cmd.arg("all-pairs")
            .arg(&dir)
            .args(["--trunk", "/nonexistent/trunk.safetensors"])
            .args(extra);
        child::run(&mut cmd, GUARD, "all-pairs")
    };
    let missing = t.path().join("no/such/out.json");
    let out = all_pairs(&["--out".as_ref(), missing.as_os_str()]);
    assert_error(
        &out,
        &["--out", "does not exist", &missing.display().to_string()],
    );
    let out = all_pairs(&["--out".as_ref(), t.path().as_os_str()]);
    assert_error(&out, &["--out", "is a folder"]);
    let out = all_pairs(&["--out".as_ref(), "/proc/lpips-out.json".as_ref()]);
    assert_error(&out, &["--out", "cannot create files in /proc"]);
    let maps = file.join("maps");
    let out = all_pairs(&["--spatial-dir".as_ref(), maps.as_os_str()]);
    assert_error(&out, &["--spatial-dir", &maps.display().to_string()]);

    // eval and train: before reading any data set.
    let out = child::run(
        lpips()
            .args(["eval", "2afc", "/nonexistent/bapps", "--out"])
            .arg(&missing),
        GUARD,
        "eval",
    );
    assert_error(&out, &["--out", "does not exist"]);
    let out = child::run(
        lpips()
            .args(["train", "/nonexistent/bapps", "--out"])
            .arg(file.join("ckpt")),
        GUARD,
        "train",
    );
    assert_error(&out, &["--out", &file.join("ckpt").display().to_string()]);
    // compare: the map's path.
    let map = t.path().join("no/such/map.png");
    let out = child::run(
        lpips()
            .arg("compare")
            .arg(dir.join("a.png"))
            .arg(dir.join("b.png"))
            .args(["--trunk", "/nonexistent/trunk.safetensors", "--spatial-out"])
            .arg(&map),
        GUARD,
        "compare",
    );
    assert_error(&out, &["--spatial-out", &map.display().to_string()]);
}

#[test]
fn output_files_get_the_umask_mode_and_symlinks_keep_their_target() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("imgs");
    two_images(&dir);
    let run = |out: &Path| {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg("umask 027 && exec \"$@\"")
            .arg("sh")
            .arg(child::lpips_bin())
            .arg("all-pairs")
            .arg(&dir)
            .arg("--trunk")
            .arg(oracle_file("trunk_alex.safetensors"))
            .args(["--format", "csv", "--out"])
            .arg(out)
            .env("LPIPS_OFFLINE", "1");
        let done = child::run(&mut cmd, GUARD, "all-pairs");
        assert_eq!(done.code, Some(0), "{}", done.stderr);
    };
    let out = t.path().join("out.csv");
    run(&out);
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "mode {mode:o}");
    assert!(std::fs::read_to_string(&out).unwrap().starts_with("index,"));

    let real = t.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::write(real.join("target.csv"), b"old").unwrap();
    let link = t.path().join("link.csv");
    std::os::unix::fs::symlink(real.join("target.csv"), &link).unwrap();
    run(&link);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let text = std::fs::read_to_string(real.join("target.csv")).unwrap();
    assert!(
        text.starts_with("index,") && text.lines().count() == 2,
        "{text}"
    );
    assert_eq!(
        std::fs::read_dir(&real).unwrap().count(),
        1,
        "no stray files"
    );
}

#[test]
fn stdout_closed_or_full_and_absurd_counts() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("imgs");
    two_images(&dir);
    let trunk = oracle_file("trunk_alex.safetensors");
    let commands: Vec<Vec<std::ffi::OsString>> = vec![
        vec![
            "compare".into(),
            dir.join("a.png").into(),
            dir.join("b.png").into(),
            "--trunk".into(),
            trunk.clone().into(),
        ],
        vec![
            "all-pairs".into(),
            dir.clone().into(),
            "--trunk".into(),
            trunk.clone().into(),
        ],
        vec!["completions".into(), "bash".into()],
    ];
    for args in &commands {
        // The reading end is closed before the command writes: `lpips ... | head -0`.
        let mut cmd = lpips();
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut running = cmd.spawn().unwrap();
        drop(running.stdout.take());
        let out = child::wait(running, GUARD, "closed stdout");
        assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""), "{args:?}");

        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let mut cmd = lpips();
        cmd.args(args).stdout(full).stderr(Stdio::piped());
        let running = cmd.spawn().unwrap();
        let out = child::wait(running, GUARD, "full stdout");
        assert_error(&out, &["cannot write to standard output"]);
    }

    for (flag, range) in [("--batch-size", "1..=4096"), ("--threads", "1..=1024")] {
        for value in ["0", "1000000000000"] {
            let out = child::run(
                lpips().arg("all-pairs").arg(&dir).args([flag, value]),
                GUARD,
                flag,
            );
            assert_eq!(out.code, Some(2), "{flag} {value}: {}", out.stderr);
            assert!(
                out.stderr.contains(flag)
                    && out.stderr.contains(range)
                    && !out.stderr.contains("panicked"),
                "{}",
                out.stderr
            );
        }
    }
    for args in [
        vec![
            "eval",
            "2afc",
            "/nonexistent",
            "--batch-size",
            "1000000000000",
        ],
        vec![
            "train",
            "/nonexistent",
            "--out",
            "/nonexistent",
            "--batch-size",
            "0",
        ],
    ] {
        let out = child::run(lpips().args(&args), GUARD, "batch size");
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("1..=4096"), "{}", out.stderr);
    }
}

/// The bytes of every file under `dir`, by path, to show nothing was replaced.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn outputs_never_replace_the_inputs() {
    let t = tempfile::tempdir().unwrap();
    let (d0, d1) = (t.path().join("d0"), t.path().join("d1"));
    two_images(&d0);
    two_images(&d1);
    // A map's name among the inputs, and a mask that is also an output target.
    std::fs::copy(oracle_file("img_alex_0.png"), d0.join("pair_000000.png")).unwrap();
    std::fs::copy(oracle_file("img_alex_1.png"), d1.join("pair_000000.png")).unwrap();
    let mask = t.path().join("mask.png");
    std::fs::copy(oracle_dir().join("harness/alex_mask8.png"), &mask).unwrap();
    std::os::unix::fs::symlink(d0.join("a.png"), t.path().join("link.png")).unwrap();
    std::fs::hard_link(d0.join("b.png"), t.path().join("hard.png")).unwrap();
    let before = (snapshot(&d0), snapshot(&d1), std::fs::read(&mask).unwrap());
    let trunk = oracle_file("trunk_alex.safetensors");

    let compare = |out: &Path, with_mask: bool| {
        let mut cmd = lpips();
        cmd.arg("compare")
            .arg(d0.join("a.png"))
            .arg(d0.join("b.png"))
            .arg("--trunk")
            .arg(&trunk)
            .arg("--spatial-out")
            .arg(out);
        if with_mask {
            cmd.arg("--mask").arg(&mask);
        }
        child::run(&mut cmd, GUARD, "compare")
    };
    let a = d0.join("a.png").display().to_string();
    let b = d0.join("b.png").display().to_string();
    assert_error(&compare(&d0.join("a.png"), false), &["--spatial-out", &a]);
    assert_error(
        &compare(&t.path().join("link.png"), false),
        &["link.png", &a],
    );
    assert_error(
        &compare(&t.path().join("hard.png"), false),
        &["hard.png", &b],
    );
    assert_error(&compare(&mask, true), &["--spatial-out", "mask.png"]);

    let dirs = |extra: &[&std::ffi::OsStr]| {
        let mut cmd = lpips();
        cmd.arg("dirs")
            .arg(&d0)
            .arg(&d1)
            .arg("--trunk")
            .arg(&trunk)
            .arg("-q")
            .args(extra);
        child::run(&mut cmd, GUARD, "dirs")
    };
    let out = dirs(&["--out".as_ref(), d1.join("b.png").as_os_str()]);
    assert_error(&out, &["--out", "is the input", "b.png"]);
    let out = dirs(&["--spatial-dir".as_ref(), d0.as_os_str()]);
    assert_error(&out, &["--spatial-dir", "pair_000000.png", "would replace"]);
    let out = dirs(&[
        "--mask".as_ref(),
        mask.as_os_str(),
        "--out".as_ref(),
        mask.as_os_str(),
    ]);
    assert_error(&out, &["--out", "mask.png"]);
    assert_eq!(
        (snapshot(&d0), snapshot(&d1), std::fs::read(&mask).unwrap()),
        before,
        "an input was changed"
    );
    // Not an input: measured as usual.
    let out = dirs(&["--out".as_ref(), t.path().join("r.csv").as_os_str()]);
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[test]
fn compare_takes_one_mask_file_not_a_folder() {
    let t = tempfile::tempdir().unwrap();
    two_images(t.path());
    // With absolute image paths, a folder joined with the image's path is the image:
    // this once measured with the image as its own mask.
    let masks = t.path().join("masks");
    std::fs::create_dir(&masks).unwrap();
    let out = child::run(
        lpips()
            .arg("compare")
            .arg(t.path().join("a.png"))
            .arg(t.path().join("b.png"))
            .arg("--trunk")
            .arg(oracle_file("trunk_alex.safetensors"))
            .arg("--mask")
            .arg(&masks),
        GUARD,
        "compare",
    );
    assert_error(&out, &["--mask", "is a folder", "one mask file"]);
}

/// A character device node like /dev/null (1, 3) in `dir`, where the test runs as root;
/// `None` elsewhere (the test then checks a FIFO only).
fn device_node(dir: &Path) -> Option<std::path::PathBuf> {
    let path = dir.join("null.png");
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mknod with a valid C string; fails without privileges.
    let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    if made != 0 {
        eprintln!("not root: the device-node case is skipped (FIFO only)");
        return None;
    }
    Some(path)
}

fn is_char_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

/// No output replaces the weights a run reads, a BAPPS file, or anything that is not a
/// regular file (a device such as /dev/null, a FIFO): each refused before any work, the
/// file untouched. `-` and `/dev/stdout` are standard output.
#[test]
fn outputs_never_replace_weights_devices_fifos_or_bapps_files() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("imgs");
    two_images(&dir);
    let trunk = t.path().join("trunk.safetensors");
    std::fs::copy(oracle_file("trunk_alex.safetensors"), &trunk).unwrap();
    let trunk_bytes = std::fs::read(&trunk).unwrap();
    let fifo = t.path().join("fifo.png");
    nix_mkfifo(&fifo);
    let node = device_node(t.path());
    let mut specials = vec![(fifo.clone(), "a FIFO")];
    specials.extend(node.clone().map(|n| (n, "a device")));

    let folder_run = |command: &str, out: &Path| {
        let mut cmd = lpips();
        cmd.arg(command);
        match command {
            "dirs" => cmd.arg(&dir).arg(&dir),
            "ref" => cmd.arg(dir.join("a.png")).arg(dir.join("b.png")),
            _ => cmd.arg(&dir),
        };
        cmd.arg("--trunk")
            .arg(&trunk)
            .arg("-q")
            .arg("--out")
            .arg(out);
        child::run(&mut cmd, GUARD, command)
    };
    for command in ["dirs", "all-pairs", "ref"] {
        let out = folder_run(command, &trunk);
        assert_error(&out, &["--out", "is the input", "trunk.safetensors"]);
        for (special, kind) in &specials {
            let out = folder_run(command, special);
            assert_error(&out, &["--out", kind, "not a regular file", "--out -"]);
        }
    }
    // The default trunk from the hub cache is an input too.
    let home = t.path().join("torch");
    let cached = home.join("hub/checkpoints/alexnet-owt-7be5be79.pth");
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    std::fs::copy(&trunk, &cached).unwrap();
    let out = child::run(
        lpips()
            .env("TORCH_HOME", &home)
            .arg("all-pairs")
            .arg(&dir)
            .arg("--out")
            .arg(&cached),
        GUARD,
        "all-pairs",
    );
    assert_error(&out, &["--out", "is the input", "alexnet-owt-7be5be79.pth"]);
    assert_eq!(std::fs::read(&cached).unwrap(), trunk_bytes);

    // compare's map, weights convert, eval.
    for (special, kind) in &specials {
        let out = child::run(
            lpips()
                .arg("compare")
                .arg(dir.join("a.png"))
                .arg(dir.join("b.png"))
                .arg("--trunk")
                .arg(&trunk)
                .arg("--spatial-out")
                .arg(special),
            GUARD,
            "compare",
        );
        assert_error(&out, &["--spatial-out", kind]);
        // Neither takes `-` for standard output, so neither offers it.
        assert!(!out.stderr.contains("standard output"), "{out:?}");
        let out = child::run(
            lpips()
                .args(["weights", "convert"])
                .arg(&trunk)
                .arg(special),
            GUARD,
            "convert",
        );
        assert_error(&out, &[kind, "not a regular file"]);
        assert!(!out.stderr.contains("standard output"), "{out:?}");
    }
    // A map's path in --spatial-dir taken by a FIFO or device: refused before any
    // pair is measured (no map, no results), not when the first map is written.
    for (special, kind) in &specials {
        let maps = t.path().join("maps");
        std::fs::create_dir_all(&maps).unwrap();
        let map = maps.join("pair_000000.png");
        std::os::unix::fs::symlink(special, &map).unwrap();
        let results = t.path().join("maps.csv");
        let out = child::run(
            lpips()
                .arg("dirs")
                .arg(&dir)
                .arg(&dir)
                .arg("--trunk")
                .arg(&trunk)
                .arg("-q")
                .arg("--spatial-dir")
                .arg(&maps)
                .arg("--out")
                .arg(&results),
            GUARD,
            "dirs --spatial-dir",
        );
        assert_error(&out, &["--spatial-dir", "pair_000000.png", kind]);
        assert!(!results.exists() && !maps.join("pair_000001.png").exists());
        std::fs::remove_dir_all(&maps).unwrap();
    }
    let out = child::run(
        lpips().args(["weights", "convert"]).arg(&trunk).arg(&trunk),
        GUARD,
        "convert",
    );
    assert_error(&out, &["is the input", "trunk.safetensors"]);
    assert_eq!(std::fs::read(&trunk).unwrap(), trunk_bytes);

    let bapps = t.path().join("bapps");
    std::fs::create_dir_all(&bapps).unwrap();
    let subset = oracle_dir().join("bapps/data/2afc/val/heldout");
    for part in ["ref", "p0", "p1", "judge"] {
        let to = bapps.join(part);
        std::fs::create_dir_all(&to).unwrap();
        let first = std::fs::read_dir(subset.join(part))
            .unwrap()
            .map(|e| e.unwrap().path())
            .min()
            .unwrap();
        std::fs::copy(&first, to.join(first.file_name().unwrap())).unwrap();
    }
    let patch = std::fs::read_dir(bapps.join("p0"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let patch_bytes = std::fs::read(&patch).unwrap();
    let eval = |out: &Path| {
        child::run(
            lpips()
                .args(["eval", "2afc"])
                .arg(&bapps)
                .arg("--trunk")
                .arg(&trunk)
                .arg("--out")
                .arg(out),
            GUARD,
            "eval",
        )
    };
    assert_error(&eval(&patch), &["--out", "is the input"]);
    assert_eq!(std::fs::read(&patch).unwrap(), patch_bytes);
    for (special, kind) in &specials {
        assert_error(&eval(special), &["--out", kind]);
    }
    // Standard output, by name.
    for name in ["-", "/dev/stdout"] {
        let out = eval(Path::new(name));
        assert_eq!(out.code, Some(0), "{out:?}");
        assert!(out.stdout_text().contains("bapps"), "{out:?}");
        let out = folder_run("all-pairs", Path::new(name));
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(out.stdout_text().lines().count(), 2, "{out:?}");
    }
    if let Some(node) = &node {
        assert!(is_char_device(node), "the device node was replaced");
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(std::fs::read(&trunk).unwrap(), trunk_bytes);
}

fn nix_mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}
