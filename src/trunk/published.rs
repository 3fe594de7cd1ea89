//! A weight file as published, of either kind: torchvision's ImageNet checkpoint of a
//! trunk, or a whole model as its authors published it (ST-LPIPS). One type for both:
//! name, digest, size, where it is downloaded from and where it is cached. Reading,
//! verifying and downloading it is `weights`' side (`src/weights/published_model.rs`).

use std::path::PathBuf;

use super::{Holds, spec};
use crate::config::{Net, Variant};

/// torchvision's base URL for its ImageNet checkpoints.
pub const TORCHVISION_BASE_URL: &str = "https://download.pytorch.org/models/";

/// A published weight file: file name, full SHA-256, size, URL and cache place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishedFile {
    /// The trunk.
    pub net: Net,
    /// The variant ([`Variant::Lpips`]: torchvision's checkpoint of the trunk alone).
    pub variant: Variant,
    /// File name, on the server, in the cache (and in a Python package, for whole models).
    pub file_name: &'static str,
    /// SHA-256 of the whole file, lowercase hex (torch checks only the prefix in the name).
    pub sha256: &'static str,
    /// Size in bytes.
    pub bytes: u64,
    /// Whether the file holds the whole model (trunk, heads and scaling) rather than the
    /// trunk alone.
    pub whole_model: bool,
    /// The publisher's URL of the folder holding the file.
    pub base_url: &'static str,
    /// The subfolder of the hub cache's `checkpoints` it is cached in (`""`: that folder
    /// itself, where torchvision keeps its files).
    pub cache_subfolder: &'static str,
}

impl PublishedFile {
    /// The published file of a trunk and variant; `None` for a trunk the variant was not
    /// published for.
    pub fn of(net: Net, variant: Variant) -> Option<PublishedFile> {
        let spec = spec(net, variant)?;
        let (whole_model, base_url, cache_subfolder) = match spec.holds {
            Holds::Trunk { .. } => (false, TORCHVISION_BASE_URL, ""),
            Holds::WholeModel {
                base_url,
                cache_subfolder,
            } => (true, base_url, cache_subfolder),
        };
        Some(PublishedFile {
            net,
            variant,
            file_name: spec.published.file_name,
            sha256: spec.published.sha256,
            bytes: spec.published.bytes,
            whole_model,
            base_url,
            cache_subfolder,
        })
    }

    /// torchvision's ImageNet checkpoint of a trunk.
    pub fn torchvision(net: Net) -> PublishedFile {
        let spec = net.spec();
        PublishedFile {
            net,
            variant: Variant::Lpips,
            file_name: spec.published.file_name,
            sha256: spec.published.sha256,
            bytes: spec.published.bytes,
            whole_model: false,
            base_url: TORCHVISION_BASE_URL,
            cache_subfolder: "",
        }
    }

    /// The published whole model of a trunk and variant; `None` for plain LPIPS (its
    /// trunks are torchvision's files and its heads are embedded) and for trunks a variant
    /// was not published for.
    pub fn whole_model(net: Net, variant: Variant) -> Option<PublishedFile> {
        Self::of(net, variant).filter(|f| f.whole_model)
    }

    /// Where to download it: `$LPIPS_DOWNLOAD_BASE` + file name when that is set (a
    /// mirror), else the publisher's URL.
    pub fn url(&self) -> String {
        let base = std::env::var("LPIPS_DOWNLOAD_BASE")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| self.base_url.to_string());
        let sep = if base.ends_with('/') { "" } else { "/" };
        format!("{base}{sep}{}", self.file_name)
    }

    /// Its path in the hub cache (which may not exist): `$TORCH_HOME/hub/checkpoints/`,
    /// in its subfolder for whole models.
    pub fn cache_path(&self) -> Option<PathBuf> {
        let dir = hub_checkpoint_dir()?;
        Some(match self.cache_subfolder {
            "" => dir.join(self.file_name),
            sub => dir.join(sub).join(self.file_name),
        })
    }
}

/// `$TORCH_HOME/hub/checkpoints`, where `TORCH_HOME` defaults to `$XDG_CACHE_HOME/torch`,
/// else `~/.cache/torch`, exactly as torch resolves it. `None` without any home folder.
pub fn hub_checkpoint_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let torch_home = var("TORCH_HOME").map(PathBuf::from).or_else(|| {
        var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|cache| cache.join("torch"))
    })?;
    Some(torch_home.join("hub").join("checkpoints"))
}
