//! BAPPS folders as the reference's download scripts lay them out:
//! `2afc/{train,val}/<subset>/{ref,p0,p1,judge}` and `jnd/val/<subset>/{p0,p1,same}`.
//!
//! The reference's loaders list each folder's files sorted by path and pair them by
//! position; here they are paired by position too, and their names (without extension)
//! must agree, so that a missing or extra file is reported instead of silently shifting
//! every pair after it.

use std::path::{Path, PathBuf};

use crate::error::{LpipsError, Result};

// The image extensions the reference's `make_dataset` accepts (case-insensitive here).
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "ppm", "bmp", "pgm"];

/// One 2AFC subset: triplets of a reference patch, two distorted versions and the
/// fraction of people who judged `p1` closer to the reference.
#[derive(Debug, Clone)]
pub struct TwoAfcSet {
    /// The subset's name, as given on the command line relative to the data root when
    /// known (`val/cnn`), else its folder name.
    pub name: String,
    /// Its folder.
    pub root: PathBuf,
    /// Reference patches, sorted.
    pub refs: Vec<PathBuf>,
    /// First distorted patches.
    pub p0: Vec<PathBuf>,
    /// Second distorted patches.
    pub p1: Vec<PathBuf>,
    /// Judgement files (`.npy`, fraction preferring `p1`).
    pub judges: Vec<PathBuf>,
}

/// One JND subset: pairs of patches and the fraction of people who saw no difference.
#[derive(Debug, Clone)]
pub struct JndSet {
    /// The subset's name (see [`TwoAfcSet::name`]).
    pub name: String,
    /// Its folder.
    pub root: PathBuf,
    /// First patches, sorted.
    pub p0: Vec<PathBuf>,
    /// Second patches.
    pub p1: Vec<PathBuf>,
    /// Judgement files (`.npy`, fraction answering "same").
    pub sames: Vec<PathBuf>,
}

impl TwoAfcSet {
    /// Opens a subset folder holding `ref`, `p0`, `p1` and `judge`.
    pub fn open(dir: &Path) -> Result<TwoAfcSet> {
        let refs = list(&dir.join("ref"), Kind::Image)?;
        let p0 = list(&dir.join("p0"), Kind::Image)?;
        let p1 = list(&dir.join("p1"), Kind::Image)?;
        let judges = list(&dir.join("judge"), Kind::Npy)?;
        check_paired(
            dir,
            &[("ref", &refs), ("p0", &p0), ("p1", &p1), ("judge", &judges)],
        )?;
        Ok(TwoAfcSet {
            name: display_name(dir),
            root: dir.to_path_buf(),
            refs,
            p0,
            p1,
            judges,
        })
    }

    /// Number of triplets.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    /// Whether the subset holds no triplets.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// Keeps the first `n` triplets only (`--limit`).
    pub fn truncate(&mut self, n: usize) {
        for v in [&mut self.refs, &mut self.p0, &mut self.p1, &mut self.judges] {
            v.truncate(n);
        }
    }
}

impl JndSet {
    /// Opens a subset folder holding `p0`, `p1` and `same`.
    pub fn open(dir: &Path) -> Result<JndSet> {
        let p0 = list(&dir.join("p0"), Kind::Image)?;
        let p1 = list(&dir.join("p1"), Kind::Image)?;
        let sames = list(&dir.join("same"), Kind::Npy)?;
        check_paired(dir, &[("p0", &p0), ("p1", &p1), ("same", &sames)])?;
        Ok(JndSet {
            name: display_name(dir),
            root: dir.to_path_buf(),
            p0,
            p1,
            sames,
        })
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.p0.len()
    }

    /// Whether the subset holds no pairs.
    pub fn is_empty(&self) -> bool {
        self.p0.is_empty()
    }

    /// Keeps the first `n` pairs only (`--limit`).
    pub fn truncate(&mut self, n: usize) {
        for v in [&mut self.p0, &mut self.p1, &mut self.sames] {
            v.truncate(n);
        }
    }
}

/// The 2AFC subsets under `dir`: `dir` itself when it holds `ref/`, else each of its
/// sub-folders that does (so `dataset/2afc/val` means all six validation subsets), in
/// name order.
pub fn find_2afc_sets(dir: &Path) -> Result<Vec<TwoAfcSet>> {
    find_sets(dir, "ref", "2AFC", TwoAfcSet::open)
}

/// The JND subsets under `dir`, found as [`find_2afc_sets`] finds 2AFC ones (by `same/`).
pub fn find_jnd_sets(dir: &Path) -> Result<Vec<JndSet>> {
    find_sets(dir, "same", "JND", JndSet::open)
}

fn find_sets<T>(
    dir: &Path,
    marker: &str,
    what: &str,
    open: impl Fn(&Path) -> Result<T>,
) -> Result<Vec<T>> {
    if !dir.is_dir() {
        return Err(LpipsError::Dataset {
            path: dir.to_path_buf(),
            reason: "not a folder".into(),
        });
    }
    if dir.join(marker).is_dir() {
        return Ok(vec![open(dir)?]);
    }
    let mut subsets: Vec<PathBuf> = read_dir(dir)?
        .into_iter()
        .filter(|p| p.join(marker).is_dir())
        .collect();
    subsets.sort();
    if subsets.is_empty() {
        return Err(LpipsError::Dataset {
            path: dir.to_path_buf(),
            reason: format!(
                "no {what} subset here: expected a `{marker}` folder in it or in its sub-folders \
                 (BAPPS layout: 2afc/val/<subset>/{{ref,p0,p1,judge}}, jnd/val/<subset>/{{p0,p1,same}})"
            ),
        });
    }
    subsets.iter().map(|p| open(p)).collect()
}

#[derive(Clone, Copy)]
enum Kind {
    Image,
    Npy,
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| LpipsError::io(dir, e))?;
    entries
        .map(|e| e.map(|e| e.path()).map_err(|e| LpipsError::io(dir, e)))
        .collect()
}

/// The folder's files of one kind, sorted by path, as the reference lists them.
fn list(dir: &Path, kind: Kind) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(LpipsError::Dataset {
            path: dir.to_path_buf(),
            reason: "missing folder".into(),
        });
    }
    let mut files: Vec<PathBuf> = read_dir(dir)?
        .into_iter()
        .filter(|p| p.is_file())
        .filter(|p| {
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            match (kind, ext.as_deref()) {
                (Kind::Image, Some(e)) => IMAGE_EXTENSIONS.contains(&e),
                (Kind::Npy, Some(e)) => e == "npy",
                _ => false,
            }
        })
        .collect();
    files.sort();
    Ok(files)
}

fn check_paired(dir: &Path, lists: &[(&str, &Vec<PathBuf>)]) -> Result<()> {
    let (first_name, first) = lists[0];
    if first.is_empty() {
        return Err(LpipsError::Dataset {
            path: dir.join(first_name),
            reason: "no files".into(),
        });
    }
    for &(name, files) in &lists[1..] {
        if files.len() != first.len() {
            return Err(LpipsError::Dataset {
                path: dir.to_path_buf(),
                reason: format!(
                    "{first_name}/ holds {} files but {name}/ holds {}",
                    first.len(),
                    files.len()
                ),
            });
        }
        for (a, b) in first.iter().zip(files.iter()) {
            if a.file_stem() != b.file_stem() {
                return Err(LpipsError::Dataset {
                    path: dir.to_path_buf(),
                    reason: format!(
                        "files do not pair up: {first_name}/{} sits beside {name}/{}",
                        file_name(a),
                        file_name(b)
                    ),
                });
            }
        }
    }
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `val/cnn` for `.../2afc/val/cnn`: the split and subset, as the reference names them.
fn display_name(dir: &Path) -> String {
    let parts: Vec<String> = dir
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [subset, split] if ["train", "val"].contains(&split.as_str()) => {
            format!("{split}/{subset}")
        }
        [subset, ..] => subset.clone(),
        [] => dir.display().to_string(),
    }
}
