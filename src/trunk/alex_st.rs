//! ST-LPIPS's shift-tolerant AlexNet (Ghildyal and Liu, ECCV 2022): the first convolution
//! at stride 1 followed by a blur-pool, each max-pool at stride 1 followed by a blur-pool,
//! every blur-pool a 3x3 binomial filter at stride 2 after reflection padding of 2. The
//! same five taps as LPIPS's AlexNet, after the ReLUs; indices as in the authors'
//! `features` stack, which their files' `net.slice{k}.{i}` names keep.

use super::{Holds, Init, LayerSpec, Published, TrunkSpec};
use LayerSpec::{Conv, MaxPool, Relu};

/// Where the authors publish their weights (the package `stlpips-pytorch` ships the
/// same files under `stlpips_pytorch/weights/vST0.0/`).
pub(crate) const BASE_URL: &str =
    "https://github.com/abhijay9/ShiftTolerant-LPIPS/raw/main/stlpips/weights/vST0.0/";

#[rustfmt::skip]
pub(super) const fn blur(channels: i64) -> LayerSpec {
    LayerSpec::BlurPool { channels, filter: 3, stride: 2, pad: 2 }
}

#[rustfmt::skip]
const POOL: LayerSpec = MaxPool { kernel: 3, stride: 1, ceil: false };

#[rustfmt::skip]
pub(super) static SPEC: TrunkSpec = TrunkSpec {
    names: &["alex"],
    layers: &[
        Conv { cin: 3, cout: 64, kernel: 11, stride: 1, padding: 2 },
        blur(64),
        Relu,
        POOL,
        blur(64),
        Conv { cin: 64, cout: 192, kernel: 5, stride: 1, padding: 2 },
        Relu,
        POOL,
        blur(192),
        Conv { cin: 192, cout: 384, kernel: 3, stride: 1, padding: 1 },
        Relu,
        Conv { cin: 384, cout: 256, kernel: 3, stride: 1, padding: 1 },
        Relu,
        Conv { cin: 256, cout: 256, kernel: 3, stride: 1, padding: 1 },
        Relu,
    ],
    taps: &[3, 7, 11, 13, 15],
    channels: &[64, 192, 384, 256, 256],
    published: Published {
        file_name: "alex_shift_tolerant.pth",
        sha256: "b356b382f96010f77d085ee8343ecd9fd322d0a56e8de2b2d0549fafcad8b9ee",
        bytes: 9_899_296,
    },
    holds: Holds::WholeModel { base_url: BASE_URL, cache_subfolder: "stlpips" },
    init: Init::TorchDefault,
    joint_pass_pixels: 64 * 64 * 8,
};
