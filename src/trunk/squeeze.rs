//! SqueezeNet 1.1 as torchvision lays out `features`; its max-pools round up.

use tch::nn;

use super::{Layer, Trunk, conv, fire, pool};

const TAPS: &[usize] = &[2, 5, 8, 10, 11, 12, 13];

pub(super) fn build(p: &nn::Path) -> Trunk {
    let layers = vec![
        conv(&(p / 0), 3, 64, 3, 2, 0),
        Layer::Relu,
        pool(3, 2, true),
        fire(&(p / 3), 64, 16, 64),
        fire(&(p / 4), 128, 16, 64),
        pool(3, 2, true),
        fire(&(p / 6), 128, 32, 128),
        fire(&(p / 7), 256, 32, 128),
        pool(3, 2, true),
        fire(&(p / 9), 256, 48, 192),
        fire(&(p / 10), 384, 48, 192),
        fire(&(p / 11), 384, 64, 256),
        fire(&(p / 12), 512, 64, 256),
    ];
    Trunk { layers, taps: TAPS }
}
