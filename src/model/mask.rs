//! Pixel weights in the model (masks are read by [`crate::maps::load_mask`]): which pixels a distance is measured over, and how much each
//! counts. Each tap's head map `d_l` (`h_l x w_l`) is averaged with the weights
//! area-averaged to its grid, `w_l`: distance = sum over taps of
//! `sum(w_l * d_l) / sum(w_l)`. Weights of ones give the plain distance.

use ndarray::Array2;
use tch::{Device, Tensor};

use crate::error::{LpipsError, Result};

/// Checks pixel weights for images of `height x width` and puts them on `device` as a
/// `1 x 1 x H x W` tensor: the same size, finite, non-negative, not all zero.
pub(crate) fn weight_tensor(
    weights: &Array2<f32>,
    height: i64,
    width: i64,
    device: Device,
) -> Result<Tensor> {
    let (h, w) = weights.dim();
    if (h as i64, w as i64) != (height, width) {
        return Err(LpipsError::Mask {
            reason: format!(
                "the weights are {h}x{w} (HxW) but the images are {height}x{width}; a mask \
                 must have the images' size"
            ),
        });
    }
    if let Some(v) = weights.iter().find(|v| !v.is_finite() || **v < 0.0) {
        return Err(LpipsError::Mask {
            reason: format!("weights must be finite and non-negative; found {v}"),
        });
    }
    if weights.iter().all(|&v| v == 0.0) {
        return Err(LpipsError::Mask {
            reason: "every weight is zero: the mask selects no pixel to measure".to_string(),
        });
    }
    // Only the weights' ratios count: scaled by a power of two (exactly) so that the
    // largest lies in [1, 2), subnormal or huge weights neither underflow nor overflow
    // in the area averages and sums.
    let max = weights.iter().fold(0.0f32, |m, &v| m.max(v));
    let scale = (-f64::from(max).log2().floor()).exp2();
    let flat: Vec<f32> = weights
        .iter()
        .map(|&v| (f64::from(v) * scale) as f32)
        .collect();
    Ok(Tensor::f_from_slice(&flat)?
        .f_view([1, 1, height, width])?
        .f_to_device(device)?)
}
