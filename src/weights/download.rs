//! Verified downloads into the torch hub cache: streamed to a temporary file beside the
//! destination, hashed on the way, renamed into place only when the whole SHA-256
//! matches. Anything else (HTTP error, dropped or stalled connection, wrong digest, too
//! many bytes) removes the temporary file. A process killed mid-download cannot remove
//! its own; the next download into the same folder does, once no process holds the
//! file's lock.
//!
//! Time limits apply to waiting, never to the whole transfer: connecting (DNS, TCP,
//! TLS) has one limit, and every read or write must make progress within the stall
//! limit, so a large file on a slow but steady link finishes while a server that goes
//! silent is given up on.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::Progress;
use super::hub::hex;
use crate::error::{LpipsError, Result};

/// Temporary download files start with this; each is locked by its writer.
const TEMP_PREFIX: &str = ".lpips-download-";
/// A temporary file's first name, before it is locked.
const NEW_PREFIX: &str = ".lpips-dlnew-";
/// A file still under its first name after this long was left by a killed process.
const NEW_STALE_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a download may wait: for a connection, and for the next bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DownloadLimits {
    /// Resolving the host, connecting and the TLS handshake, together.
    pub connect: Duration,
    /// The longest wait for any single read or write (the response headers, each part of
    /// the body); the transfer as a whole has no limit.
    pub stall: Duration,
}

impl Default for DownloadLimits {
    /// 30 seconds for each.
    fn default() -> Self {
        DownloadLimits {
            connect: Duration::from_secs(30),
            stall: Duration::from_secs(30),
        }
    }
}

impl DownloadLimits {
    /// Limits of the given durations.
    pub fn new(connect: Duration, stall: Duration) -> DownloadLimits {
        DownloadLimits { connect, stall }
    }

    /// The defaults, each overridden by `LPIPS_DOWNLOAD_CONNECT_SECS` and
    /// `LPIPS_DOWNLOAD_STALL_SECS` when set to a positive number of seconds.
    pub fn from_env() -> DownloadLimits {
        let secs = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
        };
        let default = DownloadLimits::default();
        DownloadLimits {
            connect: secs("LPIPS_DOWNLOAD_CONNECT_SECS").unwrap_or(default.connect),
            stall: secs("LPIPS_DOWNLOAD_STALL_SECS").unwrap_or(default.stall),
        }
    }
}

/// Downloads `url` to `dest`, checking the full SHA-256 (lowercase hex) and, when
/// known, the size, within [`DownloadLimits::from_env`]. `progress` hears of the start,
/// each chunk and the end (the library itself prints nothing; pass `&mut |_| {}` to
/// ignore it).
pub fn download_verified(
    url: &str,
    sha256: &str,
    expected_bytes: Option<u64>,
    dest: &Path,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<()> {
    download_verified_with(
        url,
        sha256,
        expected_bytes,
        dest,
        DownloadLimits::from_env(),
        progress,
    )
}

/// [`download_verified`] with explicit time limits.
pub fn download_verified_with(
    url: &str,
    sha256: &str,
    expected_bytes: Option<u64>,
    dest: &Path,
    limits: DownloadLimits,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<()> {
    let dir = crate::files::parent_dir(dest);
    std::fs::create_dir_all(dir).map_err(|e| LpipsError::io(dir, e))?;
    remove_stale_temporaries(dir);
    let tmp = locked_temporary(dir)?;
    progress(Progress::Preparing {
        url,
        dest,
        temporary: tmp.path(),
    });
    let result = transfer(url, sha256, expected_bytes, dest, limits, tmp, progress);
    progress(Progress::Closed);
    result
}

/// The transfer into `tmp`, renamed to `dest` once verified (dropped, so removed, on
/// any failure).
fn transfer(
    url: &str,
    sha256: &str,
    expected_bytes: Option<u64>,
    dest: &Path,
    limits: DownloadLimits,
    mut tmp: tempfile::NamedTempFile,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<()> {
    let failed = |reason: String| LpipsError::Download {
        url: url.to_string(),
        reason,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_resolve(Some(limits.connect))
        .timeout_connect(Some(limits.connect))
        .timeout_per_read(Some(limits.stall))
        .timeout_per_write(Some(limits.stall))
        .build()
        .into();
    let response = agent
        .get(url)
        .call()
        .map_err(|e| failed(describe(&e, limits, "before the response")))?;
    let length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(length), Some(expected)) = (length, expected_bytes) {
        if length != expected {
            return Err(failed(format!(
                "server announces {length} bytes, expected {expected}"
            )));
        }
    }
    progress(Progress::Started {
        url,
        dest,
        total: length.or(expected_bytes),
    });

    let mut reader = response.into_body().into_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(|e| {
            let reason = match e.get_ref().and_then(|x| x.downcast_ref::<ureq::Error>()) {
                Some(inner) => describe(inner, limits, &format!("after {total} bytes")),
                None => format!("after {total} bytes: {e}"),
            };
            failed(reason)
        })?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if expected_bytes.is_some_and(|max| total > max) {
            return Err(failed(format!(
                "more than the expected {} bytes",
                expected_bytes.unwrap_or(0)
            )));
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| LpipsError::io(tmp.path(), e))?;
        progress(Progress::Advanced { done: total });
    }
    if let Some(expected) = expected_bytes.or(length) {
        if total != expected {
            return Err(failed(format!(
                "the connection ended after {total} of {expected} bytes"
            )));
        }
    }
    progress(Progress::Finished);
    let found = hex(&hasher.finalize());
    if found != sha256 {
        return Err(LpipsError::DigestMismatch {
            what: url.to_string(),
            expected: sha256.to_string(),
            found,
        });
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| LpipsError::io(tmp.path(), e))?;
    tmp.persist(dest)
        .map_err(|e| LpipsError::io(dest, e.error))?;
    Ok(())
}

/// A transfer error in words, naming the limit when one ran out.
fn describe(e: &ureq::Error, limits: DownloadLimits, when: &str) -> String {
    match e {
        ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => format!(
            "could not connect within {:?} (LPIPS_DOWNLOAD_CONNECT_SECS)",
            limits.connect
        ),
        ureq::Error::Timeout(_) => format!(
            "the server sent nothing for {:?} {when} (stalled; LPIPS_DOWNLOAD_STALL_SECS)",
            limits.stall
        ),
        other => format!("{when}: {other}"),
    }
}

/// A new temporary file in `dir` for a download, under [`TEMP_PREFIX`] and locked from
/// the moment it has that name: the exclusive `flock` held until the file is renamed or
/// removed is what tells other processes (in any PID namespace) that it is being
/// written. It is created and locked under [`NEW_PREFIX`] first, then linked to its
/// download name, so a sweep never sees an unlocked live one.
fn locked_temporary(dir: &Path) -> Result<tempfile::NamedTempFile> {
    let io = |e: std::io::Error| LpipsError::io(dir, e);
    let fresh = tempfile::Builder::new()
        .prefix(NEW_PREFIX)
        .tempfile_in(dir)
        .map_err(io)?;
    if !try_lock_exclusive(fresh.as_file()) && cfg!(unix) {
        return Err(io(std::io::Error::other(
            "cannot lock a new temporary file",
        )));
    }
    let suffix = fresh
        .path()
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_start_matches(NEW_PREFIX)
                .to_string()
        })
        .unwrap_or_default();
    let name = dir.join(format!("{TEMP_PREFIX}{suffix}"));
    // A hard link fails rather than replace a file of that name.
    std::fs::hard_link(fresh.path(), &name).map_err(io)?;
    let (file, fresh_path) = fresh.into_parts();
    drop(fresh_path); // removes the first name; the lock stays with the file
    let path = tempfile::TempPath::try_from_path(&name).map_err(|e| {
        let _ = std::fs::remove_file(&name);
        io(e)
    })?;
    Ok(tempfile::NamedTempFile::from_parts(file, path))
}

/// Removes the temporary files that downloads into `dir` left behind when their process
/// was killed. A live download holds an exclusive `flock` on its temporary file (released
/// by the kernel when its process ends, however it ends), so a file that can be locked
/// has no writer: this works across PID namespaces (containers sharing a cache), where
/// process ids say nothing. Failures are ignored: this is tidying, not part of the
/// download.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if name.starts_with(TEMP_PREFIX) {
            let Ok(file) = crate::files::open_regular(&entry.path()) else {
                continue;
            };
            if try_lock_exclusive(&file) {
                let _ = std::fs::remove_file(entry.path());
            }
        } else if name.starts_with(NEW_PREFIX) {
            // Killed between creating and naming its file (microseconds): only age tells.
            let old = meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age > NEW_STALE_AGE);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Takes an exclusive `flock` on the file, waiting for nothing; whether it was had.
fn try_lock_exclusive(file: &std::fs::File) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a descriptor the caller owns.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
    }
    #[cfg(not(unix))]
    {
        // No locks: nothing is ever taken for stale but its age.
        let _ = file;
        false
    }
}
