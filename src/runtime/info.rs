//! What this build of lpips runs on: the first thing to look at when a set-up misbehaves
//! (`lpips info` prints it).

use std::path::PathBuf;

use serde::Serialize;

use crate::config::Net;
use crate::weights::{PublishedFile, find_cached, hub_checkpoint_dir};

/// The facts [`info`] gathers.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Info {
    /// This crate's version.
    pub lpips_version: &'static str,
    /// The libtorch this build was linked against, as its files state it (for a Python
    /// wheel, e.g. `2.11.0+cu130`); `None` when it could not be read at build time.
    pub libtorch_version: Option<&'static str>,
    /// The folder of libtorch's shared libraries at build time.
    pub libtorch_lib: Option<&'static str>,
    /// Whether libtorch's CUDA support is loaded in this process (`libtorch_cuda` mapped,
    /// on Linux), whether or not a device is there.
    pub cuda_compiled: bool,
    /// Whether a CUDA device can be used now.
    pub cuda_available: bool,
    /// How many CUDA devices libtorch sees.
    pub cuda_devices: i64,
    /// Whether cuDNN can be used.
    pub cudnn_available: bool,
    /// Whether Apple's Metal (MPS) backend is there.
    pub mps_available: bool,
    /// libtorch's intra-op thread count.
    pub threads: i32,
    /// The torch hub cache folder where trunk weights are looked for.
    pub hub_dir: Option<PathBuf>,
    /// Each trunk's weights in that cache.
    pub trunks: Vec<TrunkStatus>,
}

/// The facts as lines of text, e.g. for a harness's log:
/// `lpips 0.1.0`, `libtorch 2.11.0 (...)`, the CUDA and MPS support, threads, the weight
/// cache and each trunk's file in it.
impl std::fmt::Display for Info {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "lpips {}", self.lpips_version)?;
        writeln!(
            f,
            "libtorch {} ({})",
            self.libtorch_version.unwrap_or("version unknown"),
            self.libtorch_lib.unwrap_or("folder unknown")
        )?;
        writeln!(
            f,
            "CUDA: support loaded {}, available {}, {} device(s), cuDNN {}",
            yes_no(self.cuda_compiled),
            yes_no(self.cuda_available),
            self.cuda_devices,
            yes_no(self.cudnn_available)
        )?;
        writeln!(f, "MPS: {}", yes_no(self.mps_available))?;
        writeln!(f, "threads: {}", self.threads)?;
        match &self.hub_dir {
            Some(d) => write!(f, "weight cache: {}", d.display())?,
            None => write!(
                f,
                "weight cache: none (no TORCH_HOME, XDG_CACHE_HOME or HOME)"
            )?,
        }
        for t in &self.trunks {
            write!(f, "\n  {}: ", t.net)?;
            match (&t.path, t.verified) {
                (None, _) => write!(f, "not in the cache")?,
                (Some(p), Some(true)) => write!(f, "{} (SHA-256 verified)", p.display())?,
                (Some(p), Some(false)) => {
                    write!(f, "{} (SHA-256 MISMATCH: delete it)", p.display())?
                }
                (Some(p), None) => write!(f, "{} (not verified)", p.display())?,
            }
        }
        Ok(())
    }
}

/// One trunk's weight file in the hub cache.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TrunkStatus {
    /// The trunk.
    pub net: Net,
    /// The file found (torchvision's checkpoint, or a safetensors conversion beside it).
    pub path: Option<PathBuf>,
    /// Whether the checkpoint's SHA-256 is the published one: `None` when not checked
    /// (not asked, no file, or a conversion, which has no published digest).
    pub verified: Option<bool>,
}

/// The libtorch, devices, threads and weight files this process sees. With `verify`, the
/// cached torchvision checkpoints are hashed (about a second per 250 MB).
pub fn info(verify: bool) -> Info {
    let trunks = Net::ALL
        .iter()
        .map(|&net| {
            let path = find_cached(net).ok();
            let file = PublishedFile::torchvision(net);
            let verified = match &path {
                Some(p) if verify && p.file_name().is_some_and(|n| n == file.file_name) => {
                    Some(file.verify(p).unwrap_or(false))
                }
                _ => None,
            };
            TrunkStatus {
                net,
                path,
                verified,
            }
        })
        .collect();
    Info {
        lpips_version: env!("CARGO_PKG_VERSION"),
        libtorch_version: option_env!("LPIPS_LIBTORCH_VERSION"),
        libtorch_lib: option_env!("LPIPS_LIBTORCH_LIB"),
        cuda_compiled: cuda_library_loaded() || tch::Cuda::is_available(),
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
        mps_available: tch::utils::has_mps(),
        threads: tch::get_num_threads(),
        hub_dir: hub_checkpoint_dir(),
        trunks,
    }
}

/// Whether `libtorch_cuda` is mapped into this process: the linker drops it from a
/// binary that never calls into it, and then CUDA is never seen.
pub(crate) fn cuda_library_loaded() -> bool {
    tch::utils::has_cuda()
        || std::fs::read_to_string("/proc/self/maps")
            .is_ok_and(|maps| maps.contains("libtorch_cuda"))
}
