//! VGG16 (Simonyan and Zisserman, ICLR 2015): 3x3 convolutions in five blocks; LPIPS
//! taps the last ReLU of each block.

use super::{Holds, Init, LayerSpec, Published, TrunkSpec};
use LayerSpec::{MaxPool, Relu};

#[rustfmt::skip]
const fn conv(cin: i64, cout: i64) -> LayerSpec {
    LayerSpec::Conv { cin, cout, kernel: 3, stride: 1, padding: 1 }
}

#[rustfmt::skip]
const POOL: LayerSpec = MaxPool { kernel: 2, stride: 2, ceil: false };

#[rustfmt::skip]
pub(super) static SPEC: TrunkSpec = TrunkSpec {
    names: &["vgg", "vgg16"],
    layers: &[
        conv(3, 64), Relu, conv(64, 64), Relu, POOL,
        conv(64, 128), Relu, conv(128, 128), Relu, POOL,
        conv(128, 256), Relu, conv(256, 256), Relu, conv(256, 256), Relu, POOL,
        conv(256, 512), Relu, conv(512, 512), Relu, conv(512, 512), Relu, POOL,
        conv(512, 512), Relu, conv(512, 512), Relu, conv(512, 512), Relu,
    ],
    taps: &[4, 9, 16, 23, 30],
    channels: &[64, 128, 256, 512, 512],
    published: Published {
        file_name: "vgg16-397923af.pth",
        sha256: "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
        bytes: 553_433_881,
    },
    holds: Holds::Trunk {
        heads_v0_1: include_bytes!("../../weights/v0.1/vgg.safetensors"),
        heads_v0_0: include_bytes!("../../weights/v0.0/vgg.safetensors"),
    },
    init: Init::KaimingNormalFanOut,
    joint_pass_pixels: 64 * 64 * 8,
};
