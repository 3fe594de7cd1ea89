//! torchvision's ImageNet checkpoints in the torch hub cache, where torch and
//! torchvision keep them, so that Python and Rust share one copy; and, with the
//! `download` feature, verified downloads into it.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::Net;
use crate::error::{LpipsError, Result};
use crate::trunk::PublishedFile;

impl PublishedFile {
    /// Whether a file's SHA-256 is the published one.
    pub fn verify(&self, path: &Path) -> Result<bool> {
        Ok(sha256_file(path)? == self.sha256)
    }
}

/// Whether `LPIPS_OFFLINE` forbids network access (`1`, `true` or `yes`).
pub fn offline() -> bool {
    std::env::var("LPIPS_OFFLINE")
        .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
        .unwrap_or(false)
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| LpipsError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| LpipsError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The trunk's file in the hub cache: torchvision's checkpoint, or else a safetensors
/// conversion beside it. Returns the paths looked at when neither is there.
pub fn find_cached(net: Net) -> std::result::Result<PathBuf, Vec<PathBuf>> {
    let Some(checkpoint) = PublishedFile::torchvision(net).cache_path() else {
        return Err(Vec::new());
    };
    let converted = checkpoint.with_extension("safetensors");
    for path in [&checkpoint, &converted] {
        if path.is_file() {
            return Ok(path.clone());
        }
    }
    Err(vec![checkpoint, converted])
}

/// Downloads the trunk's checkpoint into the hub cache, verified (needs the `download`
/// feature); returns its path. A file already there is kept as it is, like torch does.
/// `progress` hears how the download goes (`&mut |_| {}` to ignore it).
pub fn fetch(net: Net, progress: &mut dyn FnMut(super::Progress<'_>)) -> Result<PathBuf> {
    let file = PublishedFile::torchvision(net);
    let dest = file.cache_path().ok_or_else(|| LpipsError::Download {
        url: file.url(),
        reason: "no torch hub cache folder: set TORCH_HOME (or HOME)".into(),
    })?;
    if dest.is_file() {
        return Ok(dest);
    }
    if offline() {
        return Err(LpipsError::Download {
            url: file.url(),
            reason: "LPIPS_OFFLINE forbids network access".into(),
        });
    }
    #[cfg(feature = "download")]
    {
        super::download::download_verified(
            &file.url(),
            file.sha256,
            Some(file.bytes),
            &dest,
            progress,
        )?;
        Ok(dest)
    }
    #[cfg(not(feature = "download"))]
    {
        let _ = progress;
        Err(LpipsError::Download {
            url: file.url(),
            reason: "this build of lpips has no `download` feature".into(),
        })
    }
}

/// The trunk's weights: from the hub cache, else downloaded into it.
pub(crate) fn resolve(net: Net, progress: &mut dyn FnMut(super::Progress<'_>)) -> Result<PathBuf> {
    let searched = match find_cached(net) {
        Ok(path) => return Ok(path),
        Err(searched) => searched,
    };
    fetch(net, progress).map_err(|e| LpipsError::TrunkNotFound {
        net,
        searched,
        reason: e.to_string(),
    })
}
