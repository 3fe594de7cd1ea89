//! Output paths checked before any work: a missing folder or an unwritable target fails
//! in the first second, not after an hour of measuring.

use std::path::{Path, PathBuf};

use crate::error::{CliError, Context};

/// The file that writing to `path` replaces: the target of a symlink, else `path`.
fn resolved(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => match std::fs::read_link(path) {
            Ok(target) if target.is_absolute() => target,
            Ok(target) => path.parent().unwrap_or(Path::new("")).join(target),
            Err(_) => path.to_path_buf(),
        },
        _ => path.to_path_buf(),
    }
}

/// The folder a file is written into (`.` for a bare name).
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Creates (and removes) a file in `dir`: the only sure test that files can be made there.
fn probe(flag: &str, shown: &Path, dir: &Path) -> Result<(), CliError> {
    tempfile::Builder::new()
        .prefix(".lpips-check-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| {
            CliError::Usage(format!(
                "{flag} {}: cannot create files in {}: {e}",
                shown.display(),
                dir.display()
            ))
        })
}

/// Whether an output path names standard output: `-` or `/dev/stdout`, the two spellings
/// the output flags accept for it.
pub(crate) fn is_stdout(path: &Path) -> bool {
    path == Path::new("-") || path == Path::new("/dev/stdout")
}

/// Whether an output flag can also write to standard output (`-`), which its error
/// messages then offer as the way to write to a device or pipe.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stdout {
    Accepted,
    NotAccepted,
}

/// An error when an existing `path` (the value of `flag`) is not a regular file: a
/// device (e.g. `/dev/null`), FIFO or socket there would be replaced by a regular file.
pub(crate) fn check_regular(flag: &str, path: &Path, stdout: Stdout) -> Result<(), CliError> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if meta.is_dir() {
        return Err(CliError::Usage(format!(
            "{flag} {}: is a folder",
            path.display()
        )));
    }
    if meta.is_file() {
        return Ok(());
    }
    let hint = match stdout {
        Stdout::Accepted => format!(" (`{flag} -` writes to standard output)"),
        Stdout::NotAccepted => String::new(),
    };
    Err(CliError::Usage(format!(
        "{flag} {}: is {}, not a regular file; outputs only replace regular files{hint}",
        path.display(),
        lpips::files::kind_of(&meta)
    )))
}

/// Checks that a file can be written (atomically: a new file beside it, renamed over it)
/// at `path`, the value of `flag`: only a regular file is ever replaced
/// ([`check_regular`]), and its folder must take new files.
pub(crate) fn check_file(flag: &str, path: &Path, stdout: Stdout) -> Result<(), CliError> {
    check_regular(flag, path, stdout)?;
    let target = resolved(path);
    let dir = parent_dir(&target);
    if !dir.is_dir() {
        return Err(CliError::Usage(format!(
            "{flag} {}: the folder {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    probe(flag, path, dir)
}

/// Creates the folder `path` (the value of `flag`) if needed and checks that files can
/// be written into it.
pub(crate) fn check_dir(flag: &str, path: &Path) -> Result<(), CliError> {
    if path.exists() && !path.is_dir() {
        return Err(CliError::Usage(format!(
            "{flag} {}: is not a folder",
            path.display()
        )));
    }
    std::fs::create_dir_all(path).context(format!(
        "{flag} {}: cannot create the folder",
        path.display()
    ))?;
    probe(flag, path, path)
}

/// The files a run reads, by identity (device and inode), so that no output replaces one
/// of them: an output named like an input, a hard link or a symlink to it is the input.
pub(crate) struct Inputs(std::collections::HashMap<(u64, u64), PathBuf>);

/// The identity of an existing file (through symlinks); None when there is none.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Inputs {
    pub(crate) fn new<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Inputs {
        Inputs(
            paths
                .into_iter()
                .filter_map(|p| file_id(p).map(|id| (id, p.to_path_buf())))
                .collect(),
        )
    }

    /// These inputs and the files the model reads (trunk, heads, whole model).
    pub(crate) fn with_model(mut self, model: &crate::args::ModelArgs) -> Inputs {
        for p in model.input_files() {
            if let Some(id) = file_id(&p) {
                self.0.entry(id).or_insert(p);
            }
        }
        self
    }

    /// [`check_file`], then [`Inputs::refuse`]: everything an output file must pass
    /// before any work.
    pub(crate) fn check_file(
        &self,
        flag: &str,
        out: &Path,
        stdout: Stdout,
    ) -> Result<(), CliError> {
        check_file(flag, out, stdout)?;
        self.refuse(flag, out)
    }

    /// The input that writing `out` would replace, if any.
    pub(crate) fn replaced_by(&self, out: &Path) -> Option<&Path> {
        file_id(out)
            .and_then(|id| self.0.get(&id))
            .map(PathBuf::as_path)
    }

    /// An error when writing `out` (the value of `flag`) would replace one of the inputs.
    pub(crate) fn refuse(&self, flag: &str, out: &Path) -> Result<(), CliError> {
        match self.replaced_by(out) {
            Some(input) => Err(CliError::Usage(format!(
                "{flag} {}: is the input {}; writing there would replace it",
                out.display(),
                input.display()
            ))),
            None => Ok(()),
        }
    }
}

/// Writes a command's output to stdout (a closed pipe ends the command quietly), or
/// whole to a file (a temporary file renamed into place, so a reader never sees half of
/// it; through a symlink, its target is replaced).
pub(crate) fn emit(out: Option<&Path>, buf: &[u8]) -> Result<(), CliError> {
    match out {
        None => crate::terminal::print_bytes(buf),
        Some(path) => {
            use std::io::Write;
            lpips::files::write_atomic(path, |f| f.write_all(buf))
                .context("cannot write the output")
        }
    }
}
