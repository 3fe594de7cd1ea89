//! AlexNet (Krizhevsky, Sutskever and Hinton, NeurIPS 2012), torchvision's "one weird
//! trick" variant; LPIPS taps it after each ReLU.

use super::{Holds, Init, LayerSpec, Published, TrunkSpec};
use LayerSpec::{Conv, MaxPool, Relu};

#[rustfmt::skip]
pub(super) static SPEC: TrunkSpec = TrunkSpec {
    names: &["alex", "alexnet"],
    layers: &[
        Conv { cin: 3, cout: 64, kernel: 11, stride: 4, padding: 2 },
        Relu,
        MaxPool { kernel: 3, stride: 2, ceil: false },
        Conv { cin: 64, cout: 192, kernel: 5, stride: 1, padding: 2 },
        Relu,
        MaxPool { kernel: 3, stride: 2, ceil: false },
        Conv { cin: 192, cout: 384, kernel: 3, stride: 1, padding: 1 },
        Relu,
        Conv { cin: 384, cout: 256, kernel: 3, stride: 1, padding: 1 },
        Relu,
        Conv { cin: 256, cout: 256, kernel: 3, stride: 1, padding: 1 },
        Relu,
    ],
    taps: &[2, 5, 8, 10, 12],
    channels: &[64, 192, 384, 256, 256],
    published: Published {
        file_name: "alexnet-owt-7be5be79.pth",
        sha256: "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
        bytes: 244_408_911,
    },
    holds: Holds::Trunk {
        heads_v0_1: include_bytes!("../../weights/v0.1/alex.safetensors"),
        heads_v0_0: include_bytes!("../../weights/v0.0/alex.safetensors"),
    },
    init: Init::TorchDefault,
    joint_pass_pixels: 256 * 256 * 8,
};
