//! The partial file of a run with `--out`: `OUT.partial.jsonl`, a header line naming the
//! run, then one row per finished pair, appended and flushed as each pair finishes. An
//! interrupted run (Ctrl-C, SIGTERM, a crash, a kill) leaves it behind; `--resume` reads
//! it back and measures only what is missing; the finished run writes `--out` and
//! removes it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::output::Row;

/// The partial file kept beside `out`: its name with `.partial.jsonl` appended.
pub(super) fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial.jsonl");
    PathBuf::from(name)
}

/// An open partial file, rows appended one by one.
pub(super) struct Partial {
    path: PathBuf,
    file: File,
}

impl Partial {
    /// Opens the partial file for `out`. Without `resume`, an existing one is refused (it
    /// holds the work of an interrupted run); with it, its rows are returned, a torn last
    /// line (a write cut short by a kill) dropped. `header` names the run: a partial file
    /// of another run (other folders, trunk, heads, shard) is refused.
    pub(super) fn open(
        out: &Path,
        header: &serde_json::Value,
        resume: bool,
    ) -> Result<(Partial, Vec<Row>), String> {
        let path = partial_path(out);
        let shown = path.display().to_string();
        let err = |e: std::io::Error| format!("{shown}: {e}");
        let exists = std::fs::symlink_metadata(&path).is_ok();
        if exists && !resume {
            return Err(format!(
                "{shown} holds the finished rows of an interrupted run: pass --resume to \
                 continue it, or delete it to start over"
            ));
        }
        if !exists {
            if resume {
                eprintln!(
                    "lpips: nothing to resume ({shown} does not exist): measuring every pair"
                );
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(err)?;
            let mut line = serde_json::to_vec(header).map_err(|e| e.to_string())?;
            line.push(b'\n');
            file.write_all(&line)
                .and_then(|()| file.flush())
                .map_err(err)?;
            return Ok((Partial { path, file }, Vec::new()));
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(err)?;
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(err)?;
        // Only whole lines count: a line without its newline was cut short.
        let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut lines = text[..whole]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty());
        let found: Option<serde_json::Value> =
            lines.next().and_then(|l| serde_json::from_slice(l).ok());
        if found.as_ref() != Some(header) {
            return Err(format!(
                "{shown} is from another run ({}; this run is {header}): delete it to start over",
                found.map_or("no header".to_string(), |f| f.to_string())
            ));
        }
        let mut rows = Vec::new();
        for (n, line) in lines.enumerate() {
            let row: Row = serde_json::from_slice(line)
                .map_err(|e| format!("{shown}: line {} is not a row: {e}", n + 2))?;
            rows.push(row);
        }
        file.set_len(whole as u64).map_err(err)?;
        file.seek(std::io::SeekFrom::End(0)).map_err(err)?;
        Ok((Partial { path, file }, rows))
    }

    /// Appends a finished row and hands it to the kernel, so that it survives the
    /// process being killed.
    pub(super) fn append(&mut self, row: &Row) -> Result<(), String> {
        let mut line = serde_json::to_vec(row).map_err(|e| e.to_string())?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.flush())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the partial file once the output is written.
    pub(super) fn remove(self) -> Result<(), String> {
        drop(self.file);
        std::fs::remove_file(&self.path)
            .map_err(|e| format!("cannot remove {}: {e}", self.path.display()))
    }
}
