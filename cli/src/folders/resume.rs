//! The partial file of a run with `--out`: `OUT.partial.jsonl`, a header line naming the
//! run, then one row per finished pair, appended and flushed as each pair finishes. An
//! interrupted run (Ctrl-C, SIGTERM, a crash, a kill) leaves it behind; `--resume` reads
//! it back and measures only what is missing; the finished run writes `--out` and
//! removes it.
//!
//! One run at a time per job: the run holds a write lock on the partial file (`fcntl`,
//! released by the kernel when the process ends however it ends), and a second run of
//! the same job says which process holds it and stops at once. The file is opened
//! without blocking (a FIFO put there is refused, not waited on), must be a regular file
//! and is read line by line with a bound on each line.

use std::fs::File;
use std::io::{BufRead, Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::output::Row;
use crate::error::{CliError, Context};

/// The longest line a partial file may hold: a row names two paths (each at most 4 KiB
/// on Linux, twice over for non-UTF-8 names) and an error message.
const MAX_LINE: u64 = 1 << 20;

/// The partial file kept beside `out`: its name with `.partial.jsonl` appended.
pub(super) fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial.jsonl");
    PathBuf::from(name)
}

/// An open partial file, rows appended one by one, locked for this run.
pub(super) struct Partial {
    path: PathBuf,
    file: File,
}

impl Partial {
    /// Opens the partial file for `out`. Without `resume`, an existing one is refused (it
    /// holds the work of an interrupted run); with it, its rows are returned, a torn last
    /// line (a write cut short by a kill) dropped. `header` names the run: a partial file
    /// of another run (other folders, trunk, heads, shard) is refused, and so is a file
    /// with more rows than the run has pairs (`pairs`).
    pub(super) fn open(
        out: &Path,
        header: &serde_json::Value,
        resume: bool,
        pairs: usize,
    ) -> Result<(Partial, Vec<Row>), CliError> {
        let path = partial_path(out);
        let shown = path.display().to_string();
        // A file replaced between opening and locking (its run finished and removed it,
        // another one began) is opened again.
        for _ in 0..100 {
            let Some(file) = open_existing(&path).context(shown.as_str())? else {
                if let Some(file) = create(&path, header).context(shown.as_str())? {
                    if resume {
                        eprintln!(
                            "lpips: nothing to resume ({shown} does not exist): measuring every pair"
                        );
                    }
                    return Ok((Partial { path, file }, Vec::new()));
                }
                // A symlink whose target is missing is "not found" to open but taken to
                // the name: say so rather than retry.
                if let Some(target) = dangling_link(&path) {
                    return Err(CliError::Input(format!(
                        "{shown}: is a symlink to {}, which does not exist; the partial file \
                         of --out must be a regular file: remove the link",
                        target.display()
                    )));
                }
                continue;
            };
            if let Some(taken) = take_existing(file, &path, header, resume, pairs)? {
                return Ok(taken);
            }
        }
        Err(CliError::Input(format!(
            "{shown}: keeps being replaced by other runs of the same job; try again"
        )))
    }

    /// Appends a finished row and hands it to the kernel, so that it survives the
    /// process being killed.
    pub(super) fn append(&mut self, row: &Row) -> Result<(), CliError> {
        let shown = || format!("cannot write {}", self.path.display());
        let mut line = serde_json::to_vec(row).context(shown())?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.flush())
            .context(shown())
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the partial file once the output is written (still locked meanwhile, so
    /// that no second run takes it up half-removed).
    pub(super) fn remove(self) -> Result<(), CliError> {
        let removed = std::fs::remove_file(&self.path)
            .context(format!("cannot remove {}", self.path.display()));
        drop(self.file);
        removed
    }
}

/// The partial file of an earlier run, opened as `file`, locked and taken up: None when
/// `path` no longer names it (replaced meanwhile: open it again).
fn take_existing(
    mut file: File,
    path: &Path,
    header: &serde_json::Value,
    resume: bool,
    pairs: usize,
) -> Result<Option<(Partial, Vec<Row>)>, CliError> {
    let shown = path.display().to_string();
    let meta = file.metadata().context(shown.as_str())?;
    if !meta.is_file() {
        return Err(CliError::Input(format!(
            "{shown}: is {}, not a regular file: the partial file of --out must be one; \
             remove it",
            lpips::files::kind_of(&meta)
        )));
    }
    lock(&file, &shown)?;
    if !same_file(&file, path) {
        return Ok(None);
    }
    let path = path.to_path_buf();
    // An empty file holds no rows and no header (every run writes its header before the
    // file takes the name): there is nothing of a run to keep or resume, so it becomes
    // this run's partial file.
    if meta.len() == 0 {
        let mut line = serde_json::to_vec(header).context(shown.as_str())?;
        line.push(b'\n');
        file.write_all(&line)
            .and_then(|()| file.flush())
            .context(shown.as_str())?;
        return Ok(Some((Partial { path, file }, Vec::new())));
    }
    if !resume {
        return Err(CliError::Input(format!(
            "{shown} holds the finished rows of an interrupted run: pass --resume to \
             continue it, or delete it to start over"
        )));
    }
    let (whole, rows) = read_rows(&mut file, header, pairs, &shown)?;
    file.set_len(whole).context(shown.as_str())?;
    file.seek(std::io::SeekFrom::End(0))
        .context(shown.as_str())?;
    Ok(Some((Partial { path, file }, rows)))
}

/// Opens an existing partial file for reading and appending, without blocking on a
/// FIFO; `None` when there is none.
fn open_existing(path: &Path) -> std::io::Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    match opened {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A new partial file holding `header`, locked, put in place only if none is there
/// (`None` then): another run of the job never sees it without its header or unlocked.
fn create(path: &Path, header: &serde_json::Value) -> std::io::Result<Option<File>> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".lpips-partial-")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    let mut line = serde_json::to_vec(header)?;
    line.push(b'\n');
    tmp.write_all(&line)?;
    tmp.flush()?;
    if let Err(LockHeld(pid)) = try_lock(tmp.as_file()) {
        return Err(std::io::Error::other(format!(
            "cannot lock a new file (held by {pid:?})"
        )));
    }
    match tmp.persist_noclobber(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e.error),
    }
}

/// The header and rows of a partial file, and the length of its whole lines.
fn read_rows(
    file: &mut File,
    header: &serde_json::Value,
    pairs: usize,
    shown: &str,
) -> Result<(u64, Vec<Row>), CliError> {
    let mut reader = std::io::BufReader::new(&mut *file);
    let mut whole = 0u64;
    let mut rows = Vec::new();
    let mut line = Vec::new();
    for n in 1.. {
        line.clear();
        (&mut reader)
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut line)
            .context(shown)?;
        if line.last() != Some(&b'\n') {
            if line.len() as u64 > MAX_LINE {
                return Err(CliError::Input(format!(
                    "{shown}: line {n} is longer than {MAX_LINE} bytes: not a partial file \
                     of lpips; delete it to start over"
                )));
            }
            // The end, or a line cut short by a kill: only whole lines count.
            break;
        }
        whole += line.len() as u64;
        let text = &line[..line.len() - 1];
        if n == 1 {
            let found: Option<serde_json::Value> = serde_json::from_slice(text).ok();
            if found.as_ref() != Some(header) {
                return Err(CliError::Input(format!(
                    "{shown} is from another run ({}; this run is {header}): delete it to \
                     start over",
                    found.map_or("no header".to_string(), |f| f.to_string())
                )));
            }
            continue;
        }
        if text.is_empty() {
            continue;
        }
        if rows.len() >= pairs {
            return Err(CliError::Input(format!(
                "{shown}: more rows than the run's {pairs} pairs: not this run's partial \
                 file; delete it to start over"
            )));
        }
        let row: Row =
            serde_json::from_slice(text).context(format!("{shown}: line {n} is not a row"))?;
        rows.push(row);
    }
    if whole == 0 {
        return Err(CliError::Input(format!(
            "{shown} is from another run (no header; this run is {header}): delete it to \
             start over"
        )));
    }
    Ok((whole, rows))
}

/// The target of `path` when it is a symlink to nothing.
fn dangling_link(path: &Path) -> Option<PathBuf> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    (meta.file_type().is_symlink() && std::fs::metadata(path).is_err())
        .then(|| std::fs::read_link(path).ok())
        .flatten()
}

/// Whether `path` still names the open file.
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// The lock is held by another process (its id, when the kernel can tell: 0 or none
/// for a process in another PID namespace).
struct LockHeld(Option<i32>);

/// Takes the write lock on the whole file without waiting.
fn try_lock(file: &File) -> Result<(), LockHeld> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: a zeroed flock is a valid value; fcntl on a descriptor we own.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as _;
    lock.l_whence = libc::SEEK_SET as _;
    let fd = file.as_raw_fd();
    // SAFETY: as above; `lock` outlives the calls.
    unsafe {
        if libc::fcntl(fd, libc::F_SETLK, &lock) == 0 {
            return Ok(());
        }
        let mut probe: libc::flock = std::mem::zeroed();
        probe.l_type = libc::F_WRLCK as _;
        probe.l_whence = libc::SEEK_SET as _;
        let pid = (libc::fcntl(fd, libc::F_GETLK, &mut probe) == 0
            && i32::from(probe.l_type) != libc::F_UNLCK
            && probe.l_pid > 0)
            .then_some(probe.l_pid);
        Err(LockHeld(pid))
    }
}

/// [`try_lock`], with the message a second run of the same job stops with.
fn lock(file: &File, shown: &str) -> Result<(), CliError> {
    try_lock(file).map_err(|LockHeld(pid)| {
        let who = pid.map_or("another process".to_string(), |p| format!("process {p}"));
        CliError::Input(format!(
            "{shown}: another lpips run of the same job ({who}) is writing it now; wait for \
             it to finish, or stop it (its finished rows are kept for --resume)"
        ))
    })
}
