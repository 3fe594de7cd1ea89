//! The paper's L2 and SSIM baselines.

use ndarray::ArrayView3;
use serde::{Deserialize, Serialize};

/// Colour space for the L2 and SSIM baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colorspace {
    /// CIE Lab (the reference's default).
    #[default]
    Lab,
    /// RGB.
    Rgb,
}

/// L2 distance as the reference computes it.
pub fn l2(a: ArrayView3<f32>, b: ArrayView3<f32>, colorspace: Colorspace) -> f32 {
    let _ = (a, b, colorspace);
    unimplemented!("helper")
}

/// DSSIM as the reference computes it.
pub fn dssim(a: ArrayView3<f32>, b: ArrayView3<f32>, colorspace: Colorspace) -> f32 {
    let _ = (a, b, colorspace);
    unimplemented!("helper")
}
