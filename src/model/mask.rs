//! Masks and pixel weights: which pixels a distance is measured over, and how much each
//! counts. Each tap's head map `d_l` (`h_l x w_l`) is averaged with the weights
//! area-averaged to its grid, `w_l`: distance = sum over taps of
//! `sum(w_l * d_l) / sum(w_l)`. Weights of ones give the plain distance.

use std::path::Path;

use image::DynamicImage;
use ndarray::Array2;
use tch::{Device, Tensor};

use crate::error::{LpipsError, Result};

/// Pixel weights from a greyscale mask image: 8-bit values / 255, 16-bit values / 65535
/// (an `H x W` array in [0, 1]). Colour images and images with alpha are refused, so that
/// a mask is never read by a guess at which channel holds it.
pub fn load_mask(path: impl AsRef<Path>) -> Result<Array2<f32>> {
    let path = path.as_ref();
    let img = crate::image_io::load_image(path)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let values: Vec<f32> = match &img {
        DynamicImage::ImageLuma8(g) => g.as_raw().iter().map(|&v| f32::from(v) / 255.0).collect(),
        DynamicImage::ImageLuma16(g) => {
            g.as_raw().iter().map(|&v| f32::from(v) / 65535.0).collect()
        }
        other => {
            return Err(LpipsError::Mask {
                reason: format!(
                    "{} decodes as {:?} (colour, palette or alpha); a mask must be an 8-bit or \
                     16-bit greyscale image without alpha",
                    path.display(),
                    other.color()
                ),
            });
        }
    };
    Array2::from_shape_vec((h, w), values).map_err(|e| LpipsError::Mask {
        reason: format!("{}: {e}", path.display()),
    })
}

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

/// Blanks a distance map outside a mask: NaN where the weight is zero (transparent in
/// [`write_heatmap`](crate::write_heatmap), NaN in [`write_npy`](crate::write_npy)).
pub fn mask_map(map: &mut Array2<f32>, weights: &Array2<f32>) -> Result<()> {
    if map.dim() != weights.dim() {
        return Err(LpipsError::Mask {
            reason: format!(
                "the map is {:?} but the weights are {:?} (HxW)",
                map.dim(),
                weights.dim()
            ),
        });
    }
    map.zip_mut_with(weights, |m, &w| {
        if w == 0.0 {
            *m = f32::NAN;
        }
    });
    Ok(())
}
