//! The torch hub cache, where torch and torchvision keep downloaded checkpoints, so that
//! Python and Rust share one copy.

use std::path::PathBuf;

use crate::config::Net;
use crate::error::{LpipsError, Result};

/// torchvision's checkpoint file name for a trunk, as torch stores it in the hub cache.
pub fn torchvision_file_name(net: Net) -> &'static str {
    match net {
        Net::Alex => "alexnet-owt-7be5be79.pth",
        Net::Vgg => "vgg16-397923af.pth",
        Net::Squeeze => "squeezenet1_1-b8a52dc0.pth",
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

/// The trunk file in the hub cache: a safetensors conversion beside torchvision's
/// checkpoint first (readable by this build), then the checkpoint itself.
pub(super) fn find(net: Net) -> Result<PathBuf> {
    let pth = torchvision_file_name(net);
    let mut searched = Vec::new();
    if let Some(dir) = hub_checkpoint_dir() {
        let converted = dir.join(pth.replace(".pth", ".safetensors"));
        if converted.is_file() {
            return Ok(converted);
        }
        searched.push(converted);
        let checkpoint = dir.join(pth);
        if checkpoint.is_file() {
            return Ok(checkpoint);
        }
        searched.push(checkpoint);
    }
    Err(LpipsError::TrunkNotFound {
        net,
        searched,
        hint: format!(
            "Fix: pass a .safetensors trunk with torchvision's tensor names (`--trunk PATH` \
             on the CLI, `TrunkWeights::File` in the library); or run `make trunk NET={net}` \
             in the lpips repository, which fetches torchvision's checkpoint into the hub \
             cache (needs internet) and converts it; or set TORCH_HOME to a torch home \
             whose hub/checkpoints holds it"
        ),
    })
}
