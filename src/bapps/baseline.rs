//! The paper's L2 and SSIM baselines.
//!
//! Both reproduce the reference's `lpips.L2` and `lpips.DSSIM` (`lpips/lpips.py`) on one
//! patch pair, including their detours: Lab values come from the patch rounded to 8 bits
//! (`tensor2im`) and are stored as f32 (`np2tensor`) before use; RGB SSIM works on those
//! 8-bit values; and SSIM runs in the float type scikit-image picks for its input (f64
//! for RGB, f32 for Lab).

use ndarray::ArrayView3;
use serde::{Deserialize, Serialize};

use super::lab;
use super::ssim;

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
///
/// `a` and `b` are `3 x H x W` patches in [-1, 1] as [`load_patch`](super::load_patch)
/// returns them. RGB: the mean of the squared differences of those values. Lab: half the
/// mean squared difference of Lab values divided by 100 (the reference's
/// `l2(..., range=100)`), Lab computed from the patches rounded to 8 bits.
///
/// Returns NaN when the shapes differ, there are not 3 channels, or a patch is empty:
/// the reference fails on such input, and callers are expected to check sizes first.
pub fn l2(a: ArrayView3<f32>, b: ArrayView3<f32>, colorspace: Colorspace) -> f32 {
    if a.dim() != b.dim() || a.dim().0 != 3 || a.is_empty() {
        return f32::NAN;
    }
    let n = a.len() as f64;
    match colorspace {
        Colorspace::Rgb => {
            let sum: f64 = a
                .iter()
                .zip(b.iter())
                .map(|(&x, &y)| f64::from((x - y) * (x - y)))
                .sum();
            (sum / n) as f32
        }
        Colorspace::Lab => {
            let (la, lb) = (lab_pixels(a), lab_pixels(b));
            let sum: f64 = la
                .iter()
                .zip(&lb)
                .flat_map(|(p, q)| p.iter().zip(q))
                .map(|(&x, &y)| {
                    // In f32, as NumPy computes on the reference's f32 Lab arrays.
                    let d = x / 100.0 - y / 100.0;
                    f64::from(d * d)
                })
                .sum();
            (0.5 * (sum / n)) as f32
        }
    }
}

/// DSSIM as the reference computes it.
///
/// `(1 - SSIM) / 2` for patches as [`l2`] takes them. RGB: SSIM of the 8-bit values
/// (`tensor2im`) with data range 255, in f64. Lab: SSIM of the f32 Lab arrays with data
/// range 100, in f32 as scikit-image computes on f32 input. SSIM is scikit-image's
/// `structural_similarity` on each channel (7 x 7 uniform window, edges mirrored, the
/// window's radius cropped off before averaging), averaged over the channels.
///
/// Returns NaN when the shapes differ, there are not 3 channels, or a side is shorter
/// than the 7-pixel window (the reference fails on such input).
pub fn dssim(a: ArrayView3<f32>, b: ArrayView3<f32>, colorspace: Colorspace) -> f32 {
    let (channels, height, width) = a.dim();
    if a.dim() != b.dim() || channels != 3 || height < 7 || width < 7 {
        return f32::NAN;
    }
    match colorspace {
        Colorspace::Rgb => {
            let planes = |p: ArrayView3<f32>| {
                let pixels = lab::to_u8(p);
                [0, 1, 2].map(|c| pixels.iter().map(|px| f64::from(px[c])).collect::<Vec<_>>())
            };
            let s = ssim::mean_ssim(&planes(a), &planes(b), height, width, 255.0);
            ((1.0 - s) / 2.0) as f32
        }
        Colorspace::Lab => {
            let planes = |p: ArrayView3<f32>| {
                let pixels = lab_pixels(p);
                [0, 1, 2].map(|c| pixels.iter().map(|px| px[c]).collect::<Vec<_>>())
            };
            let s = ssim::mean_ssim(&planes(a), &planes(b), height, width, 100.0);
            (1.0 - s) / 2.0
        }
    }
}

/// `tensor2tensorlab(patch, to_norm=False)`: Lab per pixel, row-major.
fn lab_pixels(patch: ArrayView3<f32>) -> Vec<[f32; 3]> {
    lab::to_u8(patch).into_iter().map(lab::rgb_to_lab).collect()
}
