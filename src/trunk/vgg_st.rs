//! ST-LPIPS's shift-tolerant VGG16 (Ghildyal and Liu, ECCV 2022): VGG16's convolutions,
//! each 2x2 max-pool at stride 1 followed by a blur-pool (3x3 binomial filter at stride 2
//! after reflection padding of 2). The same five taps as LPIPS's VGG, after the last
//! ReLU of each block; indices as in the authors' `features` stack.

use super::alex_st::{BASE_URL, blur};
use super::{Holds, Init, LayerSpec, Published, TrunkSpec};
use LayerSpec::{MaxPool, Relu};

#[rustfmt::skip]
const fn conv(cin: i64, cout: i64) -> LayerSpec {
    LayerSpec::Conv { cin, cout, kernel: 3, stride: 1, padding: 1 }
}

#[rustfmt::skip]
const POOL: LayerSpec = MaxPool { kernel: 2, stride: 1, ceil: false };

#[rustfmt::skip]
pub(super) static SPEC: TrunkSpec = TrunkSpec {
    names: &["vgg"],
    layers: &[
        conv(3, 64), Relu, conv(64, 64), Relu,
        POOL, blur(64), conv(64, 128), Relu, conv(128, 128), Relu,
        POOL, blur(128), conv(128, 256), Relu, conv(256, 256), Relu, conv(256, 256), Relu,
        POOL, blur(256), conv(256, 512), Relu, conv(512, 512), Relu, conv(512, 512), Relu,
        POOL, blur(512), conv(512, 512), Relu, conv(512, 512), Relu, conv(512, 512), Relu,
    ],
    taps: &[4, 10, 18, 26, 34],
    channels: &[64, 128, 256, 512, 512],
    published: Published {
        file_name: "vgg_shift_tolerant.pth",
        sha256: "44597da68f49c1837c100ff52299050f274d102eb102e5837178c79be6f0e250",
        bytes: 58_907_298,
    },
    holds: Holds::WholeModel { base_url: BASE_URL, cache_subfolder: "stlpips" },
    init: Init::KaimingNormalFanOut,
    joint_pass_pixels: 64 * 64 * 8,
};
