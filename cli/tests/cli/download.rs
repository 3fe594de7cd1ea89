//! Downloads against a loopback HTTP server: verified success, digest mismatch and a
//! connection dropped mid-file (nothing left behind either way); time limits that apply
//! to stalls, not to slow but steady transfers; temporary files of killed downloads
//! removed by the next one; offline mode, and a cached file used without any network
//! access.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::oracle_file;
use assert_cmd::Command;
use sha2::{Digest, Sha256};

#[derive(Clone, Copy)]
pub(crate) enum Serve {
    /// The whole body.
    Full,
    /// Announce the whole length, send half, close.
    Drop,
    /// The whole body in `chunks` parts, `gap` apart.
    Drip { chunks: usize, gap: Duration },
    /// Accept the connection, then say nothing (for minutes).
    Silent,
    /// Announce the whole length, send half, then nothing more (for minutes).
    Stall,
}

/// How long a silent or stalled connection is held open: longer than any test waits.
const HOLD: Duration = Duration::from_secs(300);

/// Serves `body` for every GET until dropped; counts requests.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) requests: Arc<AtomicUsize>,
}

pub(crate) fn serve(body: Vec<u8>, mode: Serve) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/models/", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let body = Arc::new(body);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            std::thread::spawn(move || answer(stream, &body, mode));
        }
    });
    Server { base, requests }
}

fn answer(mut stream: std::net::TcpStream, body: &[u8], mode: Serve) {
    if matches!(mode, Serve::Silent) {
        std::thread::sleep(HOLD);
        return;
    }
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
    match mode {
        Serve::Full => {
            let _ = stream.write_all(body);
        }
        Serve::Drop => {
            let _ = stream.write_all(&body[..body.len() / 2]);
        }
        Serve::Drip { chunks, gap } => {
            for part in body.chunks(body.len().div_ceil(chunks)) {
                let _ = stream.write_all(part);
                let _ = stream.flush();
                std::thread::sleep(gap);
            }
        }
        Serve::Stall => {
            let _ = stream.write_all(&body[..body.len() / 2]);
            let _ = stream.flush();
            std::thread::sleep(HOLD);
        }
        Serve::Silent => unreachable!(),
    }
    let _ = stream.flush();
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The one error line of a failed command's stderr (besides it, stderr may hold the
/// download notice and a hint on what to do).
fn error_line(stderr: &str) -> &str {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("lpips: error"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    errors[0]
}

pub(crate) fn dir_entries(dir: &Path) -> Vec<String> {
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
        lpips::weights::PublishedFile::torchvision(lpips::Net::Squeeze).bytes as usize,
        0,
    );
    for mode in [Serve::Full, Serve::Drop] {
        let server = serve(body.clone(), mode);
        let out = cli(home.path(), &server.base)
            .args(["weights", "fetch", "squeeze"])
            .assert()
            .failure();
        let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
        let error = error_line(&stderr);
        assert!(error.contains("squeezenet1_1-b8a52dc0.pth"), "{stderr}");
        if matches!(mode, Serve::Full) {
            assert!(error.contains("SHA-256 mismatch"), "{stderr}");
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
        assert!(error_line(&stderr).contains("LPIPS_OFFLINE"), "{stderr}");
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

/// Runs `f` on another thread; fails if it does not return within a minute (a guard
/// against hangs, not a timing).
fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what}: no answer within a minute (hung?)"))
}

fn limits(stall_secs: f64) -> lpips::weights::DownloadLimits {
    lpips::weights::DownloadLimits::new(
        Duration::from_secs(10),
        Duration::from_secs_f64(stall_secs),
    )
}

/// A body sent in parts over longer than the stall limit, each gap well within it,
/// arrives whole: the limit is on stalls, not on the transfer. Progress is reported
/// through the callback (the library prints nothing).
#[test]
fn slow_but_steady_download_finishes() {
    let body: Vec<u8> = (0..120_000u32).map(|i| (i * 13 % 251) as u8).collect();
    // 12 parts 0.4 s apart: about 4.8 s in all, more than twice the 2 s stall limit.
    let server = serve(
        body.clone(),
        Serve::Drip {
            chunks: 12,
            gap: Duration::from_millis(400),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("file.pth");
    let url = format!("{}file.pth", server.base);
    let digest = sha256(&body);
    let len = body.len() as u64;
    let dest2 = dest.clone();
    let (result, events) = within_a_minute("slow download", move || {
        let mut events = Vec::new();
        let result = lpips::weights::download_verified_with(
            &url,
            &digest,
            Some(len),
            &dest2,
            limits(2.0),
            &mut |p| {
                events.push(match p {
                    lpips::weights::Progress::Started { total, .. } => {
                        format!("started {total:?}")
                    }
                    lpips::weights::Progress::Advanced { done } => format!("{done}"),
                    lpips::weights::Progress::Finished => "finished".to_string(),
                    lpips::weights::Progress::Preparing { temporary, .. } => {
                        assert!(temporary.exists());
                        "preparing".to_string()
                    }
                    lpips::weights::Progress::Closed => "closed".to_string(),
                    _ => "other".to_string(),
                })
            },
        );
        (result.map_err(|e| e.to_string()), events)
    });
    result.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(dir_entries(dir.path()), vec!["file.pth"]);
    // The temporary file is announced before connecting; `closed` always comes last.
    assert_eq!(events[0], "preparing");
    assert_eq!(events[1], format!("started Some({len})"));
    assert_eq!(&events[events.len() - 2..], ["finished", "closed"]);
    let done: Vec<u64> = events[2..events.len() - 2]
        .iter()
        .map(|e| e.parse().unwrap())
        .collect();
    assert!(done.len() > 1, "{events:?}");
    assert!(done.windows(2).all(|w| w[0] < w[1]), "{events:?}");
    assert_eq!(*done.last().unwrap(), len);
}

/// A server that accepts and never answers, and one that stops mid-body: both given up
/// on (the stall limit, 1 s here), nothing left behind.
#[test]
fn silent_and_stalled_servers_fail_without_leaving_files() {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for (mode, when) in [
        (Serve::Silent, "before the response".to_string()),
        (Serve::Stall, format!("after {} bytes", body.len() / 2)),
    ] {
        let server = serve(body.clone(), mode);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("file.pth");
        let url = format!("{}file.pth", server.base);
        let digest = sha256(&body);
        let len = body.len() as u64;
        let dest2 = dest.clone();
        let e = within_a_minute(&when, move || {
            lpips::weights::download_verified_with(
                &url,
                &digest,
                Some(len),
                &dest2,
                limits(1.0),
                &mut |_| {},
            )
            .map_err(|e| e.to_string())
        })
        .unwrap_err();
        assert!(
            e.contains("sent nothing for 1s") && e.contains(&when) && e.contains("stalled"),
            "{e}"
        );
        assert!(
            dir_entries(dir.path()).is_empty(),
            "{:?}",
            dir_entries(dir.path())
        );
    }
}

/// Temporary files of downloads whose writer is gone are removed by the next download
/// into the folder; one whose writer still holds its lock is kept, whatever its name
/// or age says: a download in another PID namespace (a container sharing the cache) has
/// a process id that means nothing here, and once had its live file swept.
#[test]
fn stale_temporaries_are_removed_by_the_next_download() {
    let body = b"weights".to_vec();
    let server = serve(body.clone(), Serve::Full);
    let dir = tempfile::tempdir().unwrap();
    // Named as by a process that does not exist here (ids stop at 2^22), but live: this
    // test holds its lock, as its writer in another namespace would.
    let live_elsewhere = dir.path().join(".lpips-download-99999999-live");
    let gone = dir.path().join(".lpips-download-99999998-gone");
    let gone_recent = dir.path().join(".lpips-download-1-recent");
    let other = dir.path().join("unrelated.pth");
    for f in [&live_elsewhere, &gone, &gone_recent, &other] {
        std::fs::write(f, b"partial").unwrap();
    }
    let held = std::fs::File::open(&live_elsewhere).unwrap();
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(
        unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    let dest = dir.path().join("file.pth");
    lpips::weights::download_verified_with(
        &format!("{}file.pth", server.base),
        &sha256(&body),
        None,
        &dest,
        limits(10.0),
        &mut |_| {},
    )
    .unwrap();
    let mut left = dir_entries(dir.path());
    left.sort();
    assert_eq!(
        left,
        vec![".lpips-download-99999999-live", "file.pth", "unrelated.pth"]
    );
    drop(held);
}

/// Two downloads into one cache at once: the second's sweep leaves the first's live
/// temporary file alone, and both end with the verified file.
#[test]
fn a_download_never_sweeps_another_live_one() {
    let size = 200_000;
    let body: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
    let slow = serve(
        body.clone(),
        Serve::Drip {
            chunks: 20,
            gap: Duration::from_millis(100),
        },
    );
    let fast = serve(body.clone(), Serve::Full);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("file.pth");
    let digest = sha256(&body);
    let first = {
        let (url, dest, digest) = (
            format!("{}file.pth", slow.base),
            dest.clone(),
            digest.clone(),
        );
        std::thread::spawn(move || {
            lpips::weights::download_verified_with(
                &url,
                &digest,
                None,
                &dest,
                limits(30.0),
                &mut |_| {},
            )
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !dir_entries(dir.path())
        .iter()
        .any(|n| n.starts_with(".lpips-download-"))
    {
        assert!(std::time::Instant::now() < deadline, "no download started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let other = dir.path().join("other.pth");
    lpips::weights::download_verified_with(
        &format!("{}file.pth", fast.base),
        &digest,
        None,
        &other,
        limits(10.0),
        &mut |_| {},
    )
    .unwrap();
    first.join().unwrap().unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    let mut left = dir_entries(dir.path());
    left.sort();
    assert_eq!(left, vec!["file.pth", "other.pth"]);
}

/// The CLI gives up on a server that accepts and never answers, within the stall limit
/// set through LPIPS_DOWNLOAD_STALL_SECS, with one line saying so.
#[test]
fn cli_fetch_gives_up_on_a_silent_server() {
    let home = tempfile::tempdir().unwrap();
    let server = serve(Vec::new(), Serve::Silent);
    let out = cli(home.path(), &server.base)
        .env("LPIPS_DOWNLOAD_STALL_SECS", "1")
        .args(["weights", "fetch", "squeeze"])
        .timeout(Duration::from_secs(60))
        .assert()
        .failure();
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    let error = error_line(&stderr);
    assert!(
        error.contains("sent nothing for 1s") && error.contains("LPIPS_DOWNLOAD_STALL_SECS"),
        "{stderr}"
    );
    assert!(dir_entries(&home.path().join("hub/checkpoints")).is_empty());
}

/// `lpips weights fetch squeeze` from a server, in the background, quiet.
fn fetch_from(torch_home: &Path, server: &Server) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_lpips"))
        .env("TORCH_HOME", torch_home)
        .env("LPIPS_DOWNLOAD_BASE", &server.base)
        .env("LPIPS_DOWNLOAD_STALL_SECS", "300")
        .env_remove("LPIPS_OFFLINE")
        .args(["weights", "fetch", "squeeze"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// `lpips weights fetch` killed with SIGKILL mid-download leaves its temporary file
/// (nothing can remove it then); the next run removes it.
#[test]
fn killed_fetch_leaves_a_temporary_file_that_the_next_run_removes() {
    let home = tempfile::tempdir().unwrap();
    let checkpoints = home.path().join("hub/checkpoints");
    let size = lpips::weights::PublishedFile::torchvision(lpips::Net::Squeeze).bytes as usize;
    let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let stalled = serve(body.clone(), Serve::Stall);
    let mut child = fetch_from(home.path(), &stalled);
    // Wait (with a guard) until half the body has reached the temporary file.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let temporary = loop {
        let written = std::fs::read_dir(&checkpoints).ok().and_then(|entries| {
            entries.flatten().find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".lpips-download-")
                    && e.metadata().is_ok_and(|m| m.len() as usize >= size / 2)
            })
        });
        if let Some(entry) = written {
            break entry.path();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no partial download appeared in {}",
            checkpoints.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(temporary.exists(), "SIGKILL leaves the temporary file");

    // The next run (here against a server with the wrong file) removes it.
    let server = serve(body, Serve::Full);
    let out = cli(home.path(), &server.base)
        .args(["weights", "fetch", "squeeze"])
        .timeout(Duration::from_secs(60))
        .assert()
        .failure();
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("SHA-256 mismatch"), "{stderr}");
    assert!(
        dir_entries(&checkpoints).is_empty(),
        "left: {:?}",
        dir_entries(&checkpoints)
    );
}

/// Ctrl-C (SIGINT) or SIGTERM during a download, at every stage (before the server's
/// first response, or mid-body while it stalls), and in every command that may download
/// (`weights fetch`, `dirs`, which handles Ctrl-C itself between pairs, and `train`): the
/// temporary file is removed at once and the command ends with 128 + the signal.
#[test]
fn interrupted_fetch_leaves_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (d0, d1) = (t.path().join("d0"), t.path().join("d1"));
    for d in [&d0, &d1] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::copy(oracle_file("img_squeeze_0.png"), d.join("a.png")).unwrap();
    }
    let size = lpips::weights::PublishedFile::torchvision(lpips::Net::Squeeze).bytes as usize;
    let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    for (mode, mode_name) in [(Serve::Silent, "silent"), (Serve::Stall, "stalled")] {
        let server = serve(body.clone(), mode);
        for command in ["fetch", "dirs", "train"] {
            for signal in [libc::SIGINT, libc::SIGTERM] {
                let home = tempfile::tempdir().unwrap();
                let checkpoints = home.path().join("hub/checkpoints");
                let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lpips"));
                cmd.env("TORCH_HOME", home.path())
                    .env("LPIPS_DOWNLOAD_BASE", &server.base)
                    .env("LPIPS_DOWNLOAD_STALL_SECS", "300")
                    .env_remove("LPIPS_OFFLINE")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
                match command {
                    "fetch" => cmd.args(["weights", "fetch", "squeeze"]),
                    "dirs" => cmd
                        .arg("dirs")
                        .arg(&d0)
                        .arg(&d1)
                        .args(["--net", "squeeze", "-q"]),
                    _ => cmd
                        .arg("train")
                        .arg(common::oracle_dir().join("bapps/data/2afc/val/heldout"))
                        .arg("--out")
                        .arg(home.path().join("ckpt"))
                        .args(["--net", "squeeze", "--quiet"]),
                };
                let mut child = cmd.spawn().unwrap();
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                let what = format!("{command}, {mode_name} server, signal {signal}");
                loop {
                    let started = dir_entries(&checkpoints)
                        .iter()
                        .any(|n| n.starts_with(".lpips-download-"));
                    if started {
                        break;
                    }
                    assert!(std::time::Instant::now() < deadline, "{what}: no download");
                    std::thread::sleep(Duration::from_millis(20));
                }
                // Some bytes arrive from the stalling server; the silent one sends none.
                std::thread::sleep(Duration::from_millis(300));
                // SAFETY: signalling our own child.
                unsafe { libc::kill(child.id() as libc::pid_t, signal) };
                let waited = std::time::Instant::now();
                let status =
                    within_a_minute("the interrupted download", move || child.wait().unwrap());
                assert!(
                    waited.elapsed() < Duration::from_secs(10),
                    "{what}: took {:?} to stop",
                    waited.elapsed()
                );
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(
                    status.code(),
                    Some(128 + signal),
                    "{what}: {status:?} {:?}",
                    status.signal()
                );
                assert!(
                    dir_entries(&checkpoints)
                        .iter()
                        .all(|n| !n.starts_with(".lpips-")),
                    "{what}: left {:?}",
                    dir_entries(&checkpoints)
                );
            }
        }
    }
}
