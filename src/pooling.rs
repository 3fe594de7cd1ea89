//! From each layer's map to the distance: the reference's `spatial_average` (a mean
//! over space) or `upsample` (bilinear, `align_corners=False`, to the input's size).

use tch::{Kind, Tensor};

use crate::error::Result;

/// Mean over height and width, keeping `N x C` (the 1x1 head is applied after it:
/// both are linear, so they commute, and the head becomes a small matrix product).
pub(crate) fn spatial_average(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_mean_dim([2, 3].as_slice(), false, None::<Kind>)?)
}

/// A layer's `N x 1 x h x w` map upsampled to `height x width`.
pub(crate) fn upsample(x: &Tensor, height: i64, width: i64) -> Result<Tensor> {
    Ok(x.f_upsample_bilinear2d([height, width], false, None, None)?)
}
