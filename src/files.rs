//! Reading and writing files safely: what every loader and writer of this crate goes
//! through, so that a FIFO, a folder or a device given as a file is an error at once
//! (never a hang), and no reader ever sees half a written file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{LpipsError, Result};

/// Opens a regular file for reading. A folder, FIFO, socket or device is refused without
/// blocking: the file is opened non-blocking (a FIFO with no writer would otherwise hang
/// the open) and checked before anything is read.
pub fn open_regular(path: &Path) -> Result<File> {
    #[cfg(unix)]
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
    };
    #[cfg(not(unix))]
    let file = File::open(path);
    let file = file.map_err(|e| LpipsError::io(path, e))?;
    let meta = file.metadata().map_err(|e| LpipsError::io(path, e))?;
    if !meta.is_file() {
        return Err(LpipsError::NotAFile {
            path: path.to_path_buf(),
            kind: kind_of(&meta),
        });
    }
    #[cfg(unix)]
    {
        // Back to blocking reads for the regular file it is.
        use std::os::unix::io::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this function owns.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
    }
    Ok(file)
}

/// What a file is, in words for messages ("a folder", "a FIFO (named pipe)", "a device").
pub fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_block_device() || ft.is_char_device() {
            return "a device";
        }
    }
    "not a regular file"
}

/// Whether two paths name the same existing file (device and inode, through symlinks).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(a), Ok(b)) if a == b)
    }
}

/// Maps a regular file read-only.
pub(crate) fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    let file = open_regular(path)?;
    // SAFETY: a read-only map; a file truncated under us while it is read could fault,
    // as with any mmap reader: weights and images are not expected to change meanwhile.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| LpipsError::io(path, e))
}

/// The file a write to `path` should replace: `path` itself, or, when it is a symlink,
/// the file it points to (so that the link stays a link). Only a regular file is ever
/// replaced: renaming over a device (`/dev/null`), FIFO, socket or folder would put a
/// regular file in its place, so such a target is refused.
fn write_target(path: &Path) -> Result<PathBuf> {
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(LpipsError::NotAFile {
                path: path.to_path_buf(),
                kind: kind_of(&meta),
            });
        }
    }
    Ok(match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(path).unwrap_or_else(|_| match std::fs::read_link(path) {
                Ok(target) if target.is_absolute() => target,
                Ok(target) => path.parent().unwrap_or(Path::new(".")).join(target),
                Err(_) => path.to_path_buf(),
            })
        }
        _ => path.to_path_buf(),
    })
}

/// The folder a file is written into (`.` for a bare name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A temporary file in `target`'s folder, with the mode a new file gets (0666 less the
/// umask, where tempfile's default would be 0600).
fn temporary_beside(target: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = parent_dir(target);
    let mut builder = tempfile::Builder::new();
    builder.prefix(".lpips-tmp-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir).map_err(|e| LpipsError::io(dir, e))
}

/// Writes a whole file atomically: into a temporary file beside it, flushed to disk,
/// then renamed over it, so a reader sees the old file or the new one and an interrupted
/// write leaves the old one. The new file gets the permissions a plain `File::create`
/// would (0666 less the umask); writing through a symlink replaces its target.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    let target = write_target(path)?;
    let mut tmp = temporary_beside(&target)?;
    write(tmp.as_file_mut())
        .and_then(|()| tmp.as_file_mut().flush())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| LpipsError::io(&target, e))?;
    tmp.persist(&target)
        .map_err(|e| LpipsError::io(&target, e.error))?;
    Ok(())
}

/// [`write_atomic`] for a file written by a library that takes a path (safetensors,
/// npy): it writes the temporary file by name.
pub(crate) fn write_atomic_path(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let target = write_target(path)?;
    let tmp = temporary_beside(&target)?;
    write(tmp.path())?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| LpipsError::io(&target, e))?;
    tmp.persist(&target)
        .map_err(|e| LpipsError::io(&target, e.error))?;
    Ok(())
}
