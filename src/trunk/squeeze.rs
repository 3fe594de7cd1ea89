//! SqueezeNet 1.1 (Iandola et al., 2016): fire modules between max-pools that round up
//! (`ceil_mode=True`); LPIPS taps seven points.

use super::{Holds, Init, LayerSpec, Published, TrunkSpec};
use LayerSpec::{Conv, Fire, Relu};

#[rustfmt::skip]
const POOL: LayerSpec = LayerSpec::MaxPool { kernel: 3, stride: 2, ceil: true };

#[rustfmt::skip]
pub(super) static SPEC: TrunkSpec = TrunkSpec {
    names: &["squeeze", "squeezenet", "squeezenet1_1"],
    layers: &[
        Conv { cin: 3, cout: 64, kernel: 3, stride: 2, padding: 0 },
        Relu,
        POOL,
        Fire { cin: 64, squeeze: 16, expand: 64 },
        Fire { cin: 128, squeeze: 16, expand: 64 },
        POOL,
        Fire { cin: 128, squeeze: 32, expand: 128 },
        Fire { cin: 256, squeeze: 32, expand: 128 },
        POOL,
        Fire { cin: 256, squeeze: 48, expand: 192 },
        Fire { cin: 384, squeeze: 48, expand: 192 },
        Fire { cin: 384, squeeze: 64, expand: 256 },
        Fire { cin: 512, squeeze: 64, expand: 256 },
    ],
    taps: &[2, 5, 8, 10, 11, 12, 13],
    channels: &[64, 128, 256, 384, 384, 512, 512],
    published: Published {
        file_name: "squeezenet1_1-b8a52dc0.pth",
        sha256: "b8a52dc049b60e4b6ab68ad0df457362afab8b6304b2febdc1650a5dab4d7e7b",
        bytes: 4_958_839,
    },
    holds: Holds::Trunk {
        heads_v0_1: include_bytes!("../../weights/v0.1/squeeze.safetensors"),
        heads_v0_0: include_bytes!("../../weights/v0.0/squeeze.safetensors"),
    },
    init: Init::KaimingUniform,
    joint_pass_pixels: 64 * 64 * 8,
};
