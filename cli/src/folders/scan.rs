//! Finding the images in folders and making the list of pairs. Names are paths
//! (`OsString`), never strings: two names that differ in any byte are different files.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::error::{CliError, Context};

/// One pair to measure; `index` is its place in the whole (unsharded) list.
pub(super) struct Job {
    pub(super) index: usize,
    pub(super) a: usize,
    pub(super) b: usize,
}

pub enum Mode {
    Dirs(PathBuf, PathBuf),
    AllPairs(PathBuf),
    Ref(PathBuf, Vec<PathBuf>),
}

impl Mode {
    pub(super) fn command(&self) -> &'static str {
        match self {
            Mode::Dirs(..) => "dirs",
            Mode::AllPairs(_) => "all-pairs",
            Mode::Ref(..) => "ref",
        }
    }
}

/// The images of a run and the pairs to measure.
pub(super) struct Plan {
    pub(super) images: Vec<PathBuf>,
    pub(super) jobs: Vec<Job>,
    /// Names found on one side of `dirs` only, by which side.
    pub(super) unmatched: BTreeMap<String, Vec<PathBuf>>,
}

/// The raw bytes of a name, for sorting as byte strings (UTF-8 names sort as strings do).
fn bytes(path: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes()
}

#[cfg(unix)]
fn folder_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

/// Image files under `dir` with one of `exts`, as (path relative to `dir`, path),
/// sorted by name. Symlinked folders are followed once each: a folder reached again (a
/// symlink loop, or a second link to it) is reported on stderr and skipped, so every file
/// is listed once. Anything with an image extension is listed, FIFOs and devices too:
/// reading them is refused later, as that pair's error.
pub(super) fn list_images(
    dir: &Path,
    recursive: bool,
    exts: &[String],
) -> Result<Vec<(PathBuf, PathBuf)>, CliError> {
    let mut out = Vec::new();
    let root = std::fs::metadata(dir).context(dir.display().to_string())?;
    if !root.is_dir() {
        return Err(CliError::Input(format!("{}: not a folder", dir.display())));
    }
    let mut seen: HashMap<(u64, u64), PathBuf> = HashMap::new();
    seen.insert(folder_id(&root), dir.to_path_buf());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).context(format!("cannot read folder {}", d.display()))?;
        for entry in entries {
            let path = entry.context(d.display().to_string())?.path();
            // Follows symlinks; a dangling one is listed if its name is an image's (and
            // fails as that pair's error).
            let meta = std::fs::metadata(&path).ok();
            if let Some(meta) = meta.as_ref().filter(|m| m.is_dir()) {
                if recursive && first_visit(&mut seen, meta, &path) {
                    stack.push(path);
                }
                continue;
            }
            let ext = path
                .extension()
                .and_then(OsStr::to_str)
                .map(str::to_ascii_lowercase);
            if ext.is_some_and(|e| exts.iter().any(|x| x.eq_ignore_ascii_case(&e))) {
                let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                out.push((rel, path));
            }
        }
    }
    out.sort_by(|a, b| bytes(&a.0).cmp(bytes(&b.0)));
    if out.is_empty() {
        return Err(CliError::Input(format!(
            "no images in {} (extensions {}{})",
            dir.display(),
            exts.join(","),
            if recursive {
                ""
            } else {
                "; --recursive descends into sub-folders"
            }
        )));
    }
    Ok(out)
}

/// Whether the folder `path` (its metadata `meta`) is reached for the first time; a
/// folder reached again is reported on stderr, to be skipped.
fn first_visit(
    seen: &mut HashMap<(u64, u64), PathBuf>,
    meta: &std::fs::Metadata,
    path: &Path,
) -> bool {
    match seen.get(&folder_id(meta)) {
        Some(first) => {
            let what = if path.starts_with(first) {
                "a symlink loop"
            } else {
                "listed already"
            };
            eprintln!(
                "lpips: warning: skipped {}: it is the folder {} ({what})",
                path.display(),
                first.display()
            );
            false
        }
        None => {
            seen.insert(folder_id(meta), path.to_path_buf());
            true
        }
    }
}

/// The images and pairs of a run, before sharding.
pub(super) fn plan(mode: &Mode, recursive: bool, exts: &[String]) -> Result<Plan, CliError> {
    match mode {
        Mode::Dirs(d0, d1) => plan_dirs(d0, d1, recursive, exts),
        Mode::AllPairs(dir) => plan_all_pairs(dir, recursive, exts),
        Mode::Ref(reference, targets) => plan_ref(reference, targets, recursive, exts),
    }
}

/// `dirs`: the files of the same relative name in both folders; the others unmatched.
fn plan_dirs(d0: &Path, d1: &Path, recursive: bool, exts: &[String]) -> Result<Plan, CliError> {
    let mut images: Vec<PathBuf> = Vec::new();
    let mut jobs = Vec::new();
    let mut unmatched: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let (l0, l1) = (
        list_images(d0, recursive, exts)?,
        list_images(d1, recursive, exts)?,
    );
    let right: HashMap<&Path, &PathBuf> = l1.iter().map(|(r, p)| (r.as_path(), p)).collect();
    let left: HashMap<&Path, &PathBuf> = l0.iter().map(|(r, p)| (r.as_path(), p)).collect();
    for (rel, p0) in &l0 {
        match right.get(rel.as_path()) {
            Some(p1) => {
                images.push(p0.clone());
                images.push((*p1).clone());
                jobs.push(Job {
                    index: jobs.len(),
                    a: images.len() - 2,
                    b: images.len() - 1,
                });
            }
            None => unmatched
                .entry(format!("only in {}", d0.display()))
                .or_default()
                .push(rel.clone()),
        }
    }
    for (rel, _) in l1.iter().filter(|(r, _)| !left.contains_key(r.as_path())) {
        unmatched
            .entry(format!("only in {}", d1.display()))
            .or_default()
            .push(rel.clone());
    }
    if jobs.is_empty() {
        return Err(CliError::Input(format!(
            "no file name is in both {} and {}",
            d0.display(),
            d1.display()
        )));
    }
    Ok(Plan {
        images,
        jobs,
        unmatched,
    })
}

/// `all-pairs`: every unordered pair of the folder's images.
fn plan_all_pairs(dir: &Path, recursive: bool, exts: &[String]) -> Result<Plan, CliError> {
    let images: Vec<PathBuf> = list_images(dir, recursive, exts)?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    if images.len() < 2 {
        return Err(CliError::Input(format!(
            "{} holds fewer than two images",
            dir.display()
        )));
    }
    let mut jobs = Vec::new();
    for a in 0..images.len() {
        for b in a + 1..images.len() {
            jobs.push(Job {
                index: jobs.len(),
                a,
                b,
            });
        }
    }
    Ok(Plan {
        images,
        jobs,
        unmatched: BTreeMap::new(),
    })
}

/// `ref`: the reference against each target file and each image in the target folders.
fn plan_ref(
    reference: &Path,
    targets: &[PathBuf],
    recursive: bool,
    exts: &[String],
) -> Result<Plan, CliError> {
    let mut images = vec![reference.to_path_buf()];
    for t in targets {
        if t.is_dir() {
            images.extend(list_images(t, recursive, exts)?.into_iter().map(|(_, p)| p));
        } else {
            images.push(t.clone());
        }
    }
    let jobs = (1..images.len())
        .map(|b| Job {
            index: b - 1,
            a: 0,
            b,
        })
        .collect();
    Ok(Plan {
        images,
        jobs,
        unmatched: BTreeMap::new(),
    })
}
