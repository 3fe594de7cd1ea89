//! AlexNet as torchvision lays out `features`; taps after each ReLU.

use tch::nn;

use super::{Layer, Trunk, conv, pool};

const TAPS: &[usize] = &[2, 5, 8, 10, 12];

pub(super) fn build(p: &nn::Path) -> Trunk {
    let layers = vec![
        conv(&(p / 0), 3, 64, 11, 4, 2),
        Layer::Relu,
        pool(3, 2, false),
        conv(&(p / 3), 64, 192, 5, 1, 2),
        Layer::Relu,
        pool(3, 2, false),
        conv(&(p / 6), 192, 384, 3, 1, 1),
        Layer::Relu,
        conv(&(p / 8), 384, 256, 3, 1, 1),
        Layer::Relu,
        conv(&(p / 10), 256, 256, 3, 1, 1),
        Layer::Relu,
    ];
    Trunk { layers, taps: TAPS }
}
