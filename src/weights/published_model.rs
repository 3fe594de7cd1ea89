//! [`PublishedFile`]s of whole models published by their authors (ST-LPIPS's `alex_shift_tolerant.pth` and
//! `vgg_shift_tolerant.pth`): where they are looked for and how they are verified.
//!
//! In order: the Python environment named by `LPIPS_STLPIPS_PYTHON` (the files that
//! `pip install stlpips-pytorch` put under `stlpips_pytorch/weights/vST0.0/`), then our
//! cache folder `$TORCH_HOME/hub/checkpoints/stlpips/` (beside torchvision's files), then
//! a verified download from the authors' repository into that folder. Every file found
//! this way must have the published SHA-256.

use std::path::{Path, PathBuf};

use super::Progress;
use super::hub::{offline, sha256_file};
use crate::error::{LpipsError, Result};
use crate::trunk::PublishedFile;

/// The environment variable naming a Python environment with `stlpips-pytorch`
/// installed: its `python` executable, its prefix (a virtualenv's folder) or its
/// `site-packages` folder.
pub const STLPIPS_PYTHON_ENV: &str = "LPIPS_STLPIPS_PYTHON";

/// The package's folder of weights inside `site-packages`.
const PACKAGE_WEIGHTS: &str = "stlpips_pytorch/weights/vST0.0";

impl PublishedFile {
    /// The file as `stlpips-pytorch` installed it in the Python environment at `env` (its
    /// `python` executable, prefix or `site-packages`), checked against the published
    /// SHA-256. Only the file system is read: no Python runs.
    pub fn in_python_env(&self, env: &Path) -> Result<PathBuf> {
        let candidates: Vec<PathBuf> = site_packages(env)
            .into_iter()
            .map(|site| site.join(PACKAGE_WEIGHTS).join(self.file_name))
            .collect();
        match candidates.iter().find(|p| p.is_file()) {
            Some(path) => self.verified(path),
            None => Err(LpipsError::ModelNotFound {
                what: self.what(),
                file_name: self.file_name.to_string(),
                searched: candidates,
                reason: format!(
                    "the Python environment {} has no stlpips-pytorch installed there \
                     (pip install stlpips-pytorch==0.0.2)",
                    env.display()
                ),
            }),
        }
    }

    /// The model's file: from `LPIPS_STLPIPS_PYTHON`'s environment when that is set,
    /// else from the cache, else downloaded into it and verified (`download` feature,
    /// unless `LPIPS_OFFLINE` is set).
    pub fn resolve(&self, progress: &mut dyn FnMut(Progress<'_>)) -> Result<PathBuf> {
        if let Some(env) = std::env::var_os(STLPIPS_PYTHON_ENV).filter(|v| !v.is_empty()) {
            return self.in_python_env(Path::new(&env));
        }
        let Some(dest) = self.cache_path() else {
            return Err(self.not_found(
                Vec::new(),
                "no torch hub cache folder: set TORCH_HOME (or HOME)".into(),
            ));
        };
        if dest.is_file() {
            return self.verified(&dest);
        }
        if offline() {
            return Err(self.not_found(vec![dest], "LPIPS_OFFLINE forbids network access".into()));
        }
        self.download(&dest, progress)
            .map_err(|e| self.not_found(vec![dest.clone()], e.to_string()))?;
        Ok(dest)
    }

    #[cfg(feature = "download")]
    fn download(&self, dest: &Path, progress: &mut dyn FnMut(Progress<'_>)) -> Result<()> {
        super::download::download_verified(
            &self.url(),
            self.sha256,
            Some(self.bytes),
            dest,
            progress,
        )
    }

    #[cfg(not(feature = "download"))]
    fn download(&self, _dest: &Path, _progress: &mut dyn FnMut(Progress<'_>)) -> Result<()> {
        Err(LpipsError::Download {
            url: self.url(),
            reason: "this build of lpips has no `download` feature".into(),
        })
    }

    fn verified(&self, path: &Path) -> Result<PathBuf> {
        let found = sha256_file(path)?;
        if found != self.sha256 {
            return Err(LpipsError::DigestMismatch {
                what: path.display().to_string(),
                expected: self.sha256.to_string(),
                found,
            });
        }
        Ok(path.to_path_buf())
    }

    fn what(&self) -> String {
        format!("the {} {} model", self.variant, self.net)
    }

    fn not_found(&self, searched: Vec<PathBuf>, reason: String) -> LpipsError {
        LpipsError::ModelNotFound {
            what: self.what(),
            file_name: self.file_name.to_string(),
            searched,
            reason,
        }
    }
}

/// The `site-packages` folders a Python environment may have, given its `python`
/// executable, its prefix, or a `site-packages` folder itself.
fn site_packages(env: &Path) -> Vec<PathBuf> {
    let mut prefixes = Vec::new();
    let mut out = Vec::new();
    if env.is_dir() {
        out.push(env.to_path_buf());
        prefixes.push(env.to_path_buf());
    } else if let Some(bin) = env.parent() {
        // `<prefix>/bin/python` (the executable itself may link elsewhere: not followed),
        // or `<prefix>\Scripts\python.exe` and `<prefix>\python.exe` on Windows.
        prefixes.extend(bin.parent().map(Path::to_path_buf));
        prefixes.push(bin.to_path_buf());
    }
    for prefix in prefixes {
        for lib in ["lib", "lib64"] {
            let Ok(entries) = std::fs::read_dir(prefix.join(lib)) else {
                continue;
            };
            let mut versions: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("python"))
                .map(|e| e.path().join("site-packages"))
                .collect();
            versions.sort();
            out.extend(versions);
        }
        out.push(prefix.join("Lib").join("site-packages"));
    }
    out
}
