//! VGG16 as torchvision lays out `features`: 3x3 convolutions, index from position.

use tch::nn;

use super::{Layer, Trunk, conv, pool};

const TAPS: &[usize] = &[4, 9, 16, 23, 30];
// Output channels of each convolution; 0 marks a max-pool.
const PLAN: &[i64] = &[
    64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512,
];

pub(super) fn build(p: &nn::Path) -> Trunk {
    let mut layers = Vec::new();
    let mut cin = 3;
    for &cout in PLAN {
        if cout == 0 {
            layers.push(pool(2, 2, false));
        } else {
            layers.push(conv(&(p / layers.len()), cin, cout, 3, 1, 1));
            layers.push(Layer::Relu);
            cin = cout;
        }
    }
    Trunk { layers, taps: TAPS }
}
